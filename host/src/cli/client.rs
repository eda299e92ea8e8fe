//! A small HTTP client for the host's API, shared by the client commands.

use super::HostArgs;
use anyhow::{anyhow, Context};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// A client of one running host.
pub(super) struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub(super) fn new(args: &HostArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("darkfactory/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            base: args.url.trim_end_matches('/').to_string(),
            token: args.token.clone().filter(|t| !t.is_empty()),
        })
    }

    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(token) => rb.bearer_auth(token),
            None => rb,
        }
    }

    /// Sends, and turns an API error body into an error that shows its code.
    pub(super) async fn send(&self, rb: RequestBuilder) -> anyhow::Result<Response> {
        let response = rb
            .send()
            .await
            .with_context(|| format!("cannot reach the host at {}", self.base))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some(format!(
                    "{} ({}): {}",
                    e.get("code")?.as_str()?,
                    status.as_u16(),
                    e.get("message")?.as_str()?
                ))
            })
            .unwrap_or_else(|| format!("HTTP {status}: {text}"));
        Err(anyhow!(detail))
    }

    pub(super) async fn json(&self, rb: RequestBuilder) -> anyhow::Result<Value> {
        let response = self.send(rb).await?;
        response
            .json()
            .await
            .context("the host answered with something that is not JSON")
    }
}
