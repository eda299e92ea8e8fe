//! Escalation: a `critical` gap, when it fires, is also told to a person
//! and to an agent, wherever they are configured: a Telegram chat (Bot API
//! `sendMessage`) and an OpenClaw gateway (`POST /hooks/agent`, which wakes
//! an agent with the message). Each channel is told once per firing; a
//! channel that fails is tried again at the next evaluation, and a channel
//! that was told is not told twice.

use std::time::Duration;

/// A Telegram chat reached through a bot.
#[derive(Clone)]
pub struct Telegram {
    /// The Bot API's base URL: `https://api.telegram.org`.
    pub api_url: String,
    /// The bot's token.
    pub bot_token: String,
    /// The chat the messages go to (a user, a group: its id or `@name`).
    pub chat_id: String,
}

/// An OpenClaw gateway's hooks.
#[derive(Clone)]
pub struct OpenClaw {
    /// The hooks' base URL: `http://127.0.0.1:18789/hooks`.
    pub hooks_url: String,
    /// The hooks' token.
    pub token: String,
    /// The agent woken (`agentId`).
    pub agent: String,
}

impl std::fmt::Debug for Telegram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telegram")
            .field("api_url", &self.api_url)
            .field("chat_id", &self.chat_id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for OpenClaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenClaw")
            .field("hooks_url", &self.hooks_url)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

/// A URL as a message may show it: without a user, a password or a query
/// (where credentials travel).
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(the configured URL)".to_string(),
    }
}

/// A channel a gap is escalated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The Telegram chat.
    Telegram,
    /// The OpenClaw agent.
    OpenClaw,
}

impl Channel {
    /// Its bit in a gap's record of the channels told.
    pub fn bit(self) -> i64 {
        match self {
            Channel::Telegram => 1,
            Channel::OpenClaw => 2,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::OpenClaw => "openclaw",
        }
    }

    /// The channels of a record.
    pub fn of(bits: i64) -> Vec<&'static str> {
        [Channel::Telegram, Channel::OpenClaw]
            .into_iter()
            .filter(|c| bits & c.bit() != 0)
            .map(Channel::name)
            .collect()
    }
}

/// Where critical gaps are escalated.
#[derive(Debug, Clone, Default)]
pub struct Escalation {
    /// The Telegram chat, when configured.
    pub telegram: Option<Telegram>,
    /// The OpenClaw agent, when configured.
    pub openclaw: Option<OpenClaw>,
}

impl Escalation {
    /// The channels configured.
    pub fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        if self.telegram.is_some() {
            channels.push(Channel::Telegram);
        }
        if self.openclaw.is_some() {
            channels.push(Channel::OpenClaw);
        }
        channels
    }

    /// Tells `channel` `text`.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        channel: Channel,
        text: &str,
    ) -> Result<(), String> {
        match channel {
            Channel::Telegram => {
                let Some(t) = &self.telegram else {
                    return Err("no Telegram chat is configured".into());
                };
                let url = format!(
                    "{}/bot{}/sendMessage",
                    t.api_url.trim_end_matches('/'),
                    t.bot_token
                );
                let response = http
                    .post(&url)
                    .json(&serde_json::json!({
                        "chat_id": t.chat_id,
                        "text": text,
                        "disable_web_page_preview": true,
                    }))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    // The URL holds the bot's token: it is not repeated.
                    .map_err(|e| {
                        format!("Telegram: cannot reach the Bot API: {}", e.without_url())
                    })?;
                let status = response.status();
                let body: serde_json::Value = response.json().await.map_err(|e| {
                    format!(
                        "Telegram answered {status} without JSON: {}",
                        e.without_url()
                    )
                })?;
                if body["ok"] == true {
                    Ok(())
                } else {
                    Err(format!(
                        "Telegram refused the message ({status}): {}",
                        body["description"].as_str().unwrap_or("no description")
                    ))
                }
            }
            Channel::OpenClaw => {
                let Some(o) = &self.openclaw else {
                    return Err("no OpenClaw gateway is configured".into());
                };
                let url = format!("{}/agent", o.hooks_url.trim_end_matches('/'));
                let response = http
                    .post(&url)
                    .bearer_auth(&o.token)
                    .json(&serde_json::json!({
                        "message": text,
                        "name": "Dark Factory",
                        "agentId": o.agent,
                        "wakeMode": "now",
                    }))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| {
                        format!(
                            "OpenClaw: cannot reach {}: {}",
                            shown_url(&url),
                            e.without_url()
                        )
                    })?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    let text = response.text().await.unwrap_or_default();
                    Err(format!(
                        "OpenClaw refused the hook ({status}): {}",
                        crate::runtime::bounded::cut(&text, 300)
                    ))
                }
            }
        }
    }
}
