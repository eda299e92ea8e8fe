//! The Bot API calls approval makes: `sendMessage` with inline buttons,
//! `getUpdates` (long polling, with offsets), `answerCallbackQuery`,
//! `editMessageReplyMarkup` and `editMessageText`. Each is a POST of JSON
//! to `{api}/bot{token}/{method}`; an answer whose `ok` is not `true` is an
//! error with Telegram's `description`. The URL holds the bot's token, so
//! no error repeats it. (Checked against the Bot API's documentation,
//! `../shared/notes/integrations.md` §3; the tests run against a loopback
//! server that answers as it does.)

use serde_json::{json, Value};
use std::time::Duration;

/// A bot, reached through the Bot API.
#[derive(Clone)]
pub struct BotApi {
    api_url: String,
    token: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotApi")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

impl BotApi {
    /// The bot with `token` at `api_url` (`https://api.telegram.org`).
    pub fn new(api_url: &str, token: &str) -> Self {
        BotApi {
            api_url: api_url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .user_agent(concat!("darkfactory/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Calls `method` with `body`; its `result`.
    pub async fn call(
        &self,
        method: &str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, String> {
        let url = format!("{}/bot{}/{method}", self.api_url, self.token);
        let response = self
            .http
            .post(&url)
            .json(&body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "Telegram {method}: cannot reach the Bot API: {}",
                    e.without_url()
                )
            })?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| {
            format!(
                "Telegram {method} answered {status} without JSON: {}",
                e.without_url()
            )
        })?;
        if answer["ok"] == true {
            Ok(answer["result"].clone())
        } else {
            Err(format!(
                "Telegram refused {method} ({status}): {}",
                answer["description"].as_str().unwrap_or("no description")
            ))
        }
    }

    /// Sends `text` with one row of buttons `(label, callback_data)`; the
    /// message's id.
    pub async fn send_buttons(
        &self,
        chat: &str,
        text: &str,
        buttons: &[(&str, String)],
    ) -> Result<i64, String> {
        let row: Vec<Value> = buttons
            .iter()
            .map(|(label, data)| json!({ "text": label, "callback_data": data }))
            .collect();
        let message = self
            .call(
                "sendMessage",
                json!({
                    "chat_id": chat,
                    "text": text,
                    "disable_web_page_preview": true,
                    "reply_markup": { "inline_keyboard": [row] },
                }),
                Duration::from_secs(10),
            )
            .await?;
        message["message_id"]
            .as_i64()
            .ok_or_else(|| "Telegram sendMessage answered no message_id".to_string())
    }

    /// The updates from `offset` on, waiting up to `wait` for one.
    pub async fn updates(&self, offset: i64, wait: Duration) -> Result<Vec<Value>, String> {
        let result = self
            .call(
                "getUpdates",
                json!({
                    "offset": offset,
                    "timeout": wait.as_secs(),
                    "allowed_updates": ["callback_query"],
                }),
                wait + Duration::from_secs(10),
            )
            .await?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// Answers a button press (the toast the presser sees).
    pub async fn answer_callback(&self, id: &str, text: &str) -> Result<(), String> {
        self.call(
            "answerCallbackQuery",
            json!({ "callback_query_id": id, "text": crate::runtime::bounded::cut(text, 200) }),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }

    /// Removes a message's buttons, and writes `text` as its text.
    pub async fn close_message(&self, chat: &str, message: i64, text: &str) -> Result<(), String> {
        self.call(
            "editMessageReplyMarkup",
            json!({ "chat_id": chat, "message_id": message, "reply_markup": { "inline_keyboard": [] } }),
            Duration::from_secs(10),
        )
        .await?;
        self.call(
            "editMessageText",
            json!({ "chat_id": chat, "message_id": message, "text": text, "disable_web_page_preview": true }),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
    }
}
