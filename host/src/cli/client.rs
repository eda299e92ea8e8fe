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

    /// Every page of a listing: the first page, with each next page (by
    /// its `next_cursor`, at most 1 000 items a page) merged into it by
    /// `merge`.
    pub(super) async fn all_pages(
        &self,
        path: &str,
        query: &[(&str, String)],
        merge: impl Fn(&mut Value, Value),
    ) -> anyhow::Result<Value> {
        let page = |cursor: Option<String>| {
            let mut query: Vec<(&str, String)> = query.to_vec();
            query.push(("limit", "1000".to_string()));
            if let Some(cursor) = cursor {
                query.push(("cursor", cursor));
            }
            self.request(Method::GET, path).query(&query)
        };
        let mut all = self.json(page(None)).await?;
        let mut cursor = all["next_cursor"].as_str().map(str::to_string);
        while let Some(next) = cursor {
            let more = self.json(page(Some(next))).await?;
            cursor = more["next_cursor"].as_str().map(str::to_string);
            merge(&mut all, more);
        }
        all["next_cursor"] = Value::Null;
        Ok(all)
    }

    pub(super) async fn json(&self, rb: RequestBuilder) -> anyhow::Result<Value> {
        let response = self.send(rb).await?;
        response
            .json()
            .await
            .context("the host answered with something that is not JSON")
    }
}

/// Appends the array `key` of `more` to the one of `all`.
pub(super) fn extend_array(all: &mut Value, more: &Value, key: &str) {
    if let (Some(all), Some(more)) = (all[key].as_array_mut(), more[key].as_array()) {
        all.extend(more.iter().cloned());
    }
}
