//! `llm`: a client of OpenAI-compatible chat completions (Ollama, vLLM,
//! llama.cpp's server, OpenAI), the one the factory's synthesis and the
//! skills' `llm` interface share.
//!
//! `POST {base}/v1/chat/completions` (the base may end in `/v1` or not),
//! `Authorization: Bearer` when a key is set, never streamed. What it adds
//! to a bare request, as a mature client does:
//!
//! - **Structured output.** A request with a JSON schema is sent with
//!   `response_format: {"type": "json_schema", ...}`; a server that refuses
//!   it (400 or 422) is asked again with `{"type": "json_object"}`, then
//!   with none, the schema then given in a system message. What the server
//!   took is remembered per schema name, so the next request of that
//!   schema starts there (and one schema a server cannot compile does not
//!   weaken the others). The answer is always untrusted text: the caller
//!   checks it.
//! - **Retries.** A 429, a 5xx, a timeout or a refused connection is tried
//!   again, up to [`LlmConfig::attempts`] in all (a time-out only once: a
//!   model that cannot answer in time will not the second time either),
//!   after the server's `Retry-After` (seconds or an HTTP date) or a
//!   backoff from 1 s doubling, with jitter, each wait capped at
//!   [`LlmConfig::max_retry_wait`]. Any other status is an error at once,
//!   with the server's own words.
//! - **Accounting.** Every answer carries its `usage` (prompt, completion,
//!   total tokens), and the client keeps the totals of all its calls.
//!
//! Checked against the OpenAI-compatible subset that Ollama, vLLM and
//! llama.cpp's server document (`../shared/notes/integrations.md` §4); the
//! tests run against a loopback server that answers as they do.

mod grant;
mod host;

pub use grant::LlmGrant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Where the model is, and how patiently it is asked.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmConfig {
    /// Base URL, e.g. `http://localhost:11434/v1`.
    pub url: String,
    /// The model, e.g. `qwen3:8b`.
    pub model: String,
    /// Bearer key, if the server wants one.
    pub api_key: Option<String>,
    /// Timeout of one request (a model writing a long answer is slow).
    pub timeout: Duration,
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The longest wait between attempts, whatever `Retry-After` says.
    pub max_retry_wait: Duration,
    /// What the model costs, when the operator says: skills' spending is
    /// then recorded in dollars as well as tokens.
    pub price: Option<Price>,
}

/// What a model costs, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per million prompt (input) tokens.
    pub prompt: f64,
    /// Per million completion (output) tokens.
    pub completion: f64,
}

impl Price {
    /// What `usage` cost.
    pub fn of(&self, usage: &Usage) -> f64 {
        (usage.prompt_tokens as f64 * self.prompt
            + usage.completion_tokens as f64 * self.completion)
            / 1_000_000.0
    }
}

impl LlmConfig {
    /// A configuration with the defaults: 120 s a request, 4 attempts,
    /// at most 60 s between them.
    pub fn new(url: &str, model: &str) -> Self {
        LlmConfig {
            url: url.to_string(),
            model: model.to_string(),
            api_key: None,
            timeout: Duration::from_secs(120),
            attempts: 4,
            max_retry_wait: Duration::from_secs(60),
            price: None,
        }
    }
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions.
    System,
    /// The question.
    User,
    /// An earlier answer.
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A message of `role`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message {
            role,
            content: content.into(),
        }
    }
}

/// A JSON schema the answer should follow.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Its name (letters, digits, `_` and `-`, as OpenAI wants).
    pub name: String,
    /// The schema.
    pub schema: Value,
    /// OpenAI's `strict` mode: only for a schema written for it (every
    /// property required, `additionalProperties: false`).
    pub strict: bool,
}

/// One chat completion to ask for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// The shape the answer should have, when it is JSON.
    pub schema: Option<Schema>,
    /// The most tokens the answer may have.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// A seed, for servers that honour one.
    pub seed: Option<u64>,
}

/// How the answer was constrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Structured {
    /// `response_format` `json_schema`: the server held the answer to it.
    JsonSchema,
    /// `response_format` `json_object`: JSON, of no particular shape.
    JsonObject,
    /// No `response_format`: the schema was in the prompt only.
    None,
}

impl Structured {
    fn next(self) -> Option<Self> {
        match self {
            Structured::JsonSchema => Some(Structured::JsonObject),
            Structured::JsonObject => Some(Structured::None),
            Structured::None => None,
        }
    }
}

/// Tokens a call used, as the server counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens of the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens of the answer.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Both.
    #[serde(default)]
    pub total_tokens: u64,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// It was done.
    Stop,
    /// It ran out of `max_tokens`: the answer is cut.
    Length,
    /// Anything else the server said (`content_filter`, `tool_calls`, ...).
    Other(String),
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatAnswer {
    /// The text (untrusted: check it).
    pub content: String,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// The tokens it used (zeros when the server did not say).
    pub usage: Usage,
    /// The model that answered, as the server names it.
    pub model: String,
    /// How the answer was constrained.
    pub structured: Structured,
    /// Requests sent, retries and fallbacks included.
    pub requests: u32,
    /// From the first request to the answer.
    pub elapsed: Duration,
}

/// What every call of a client has used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Calls answered.
    pub calls: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Answer tokens.
    pub completion_tokens: u64,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// The server could not be reached, or kept failing (429, 5xx, time
    /// outs) until the attempts ran out.
    #[error("the model server at {endpoint} is unavailable: {reason}")]
    Unavailable {
        /// The endpoint.
        endpoint: String,
        /// The last failure.
        reason: String,
    },
    /// The server refused the request (a 4xx but 429).
    #[error("the model server at {endpoint} refused the request ({status}): {message}")]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// Its status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The server answered something that is not a chat completion.
    #[error("the model server at {endpoint} answered no chat completion: {reason}")]
    Invalid {
        /// The endpoint.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request itself is not one to send.
    #[error("{0}")]
    Request(String),
}

/// A client of one chat-completions endpoint.
pub struct Llm {
    http: reqwest::Client,
    endpoint: String,
    config: LlmConfig,
    /// The strongest `response_format` the server took, per schema name.
    structured: Mutex<HashMap<String, Structured>>,
    calls: AtomicU64,
    failures: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    #[serde(default)]
    content: Option<String>,
}

/// What one request came to.
enum Outcome {
    Answer(Completion),
    /// Worth another attempt, after the server's wait if it gave one;
    /// whether it was a time-out.
    Retry(String, Option<Duration>, bool),
    /// Not worth another attempt (the request could not be built).
    Fatal(String),
    /// Refused: the status and what the server said.
    Refused(u16, String),
    /// Answered, but not with a chat completion.
    Invalid(String),
}

impl Llm {
    /// A client of the endpoint in `config` (nothing is sent yet).
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        if config.model.trim().is_empty() {
            return Err(LlmError::Request("an LLM needs a model name".into()));
        }
        let parsed = reqwest::Url::parse(&config.url)
            .map_err(|e| LlmError::Request(format!("the LLM URL `{}`: {e}", config.url)))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(LlmError::Request(format!(
                "the LLM URL `{}` is not http or https",
                config.url
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| LlmError::Request(format!("cannot build the LLM client: {e}")))?;
        let base = config.url.trim_end_matches('/');
        let endpoint = if base.ends_with("/v1") {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/v1/chat/completions")
        };
        Ok(Llm {
            http,
            endpoint,
            config,
            structured: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            prompt_tokens: AtomicU64::new(0),
            completion_tokens: AtomicU64::new(0),
        })
    }

    /// The endpoint asked.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// What the model costs, when the operator said.
    pub fn price(&self) -> Option<Price> {
        self.config.price
    }

    /// What every call so far has used.
    pub fn totals(&self) -> Totals {
        Totals {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
        }
    }

    /// Asks for one chat completion.
    pub async fn chat(&self, request: &ChatRequest) -> Result<ChatAnswer, LlmError> {
        let result = self.chat_inner(request).await;
        match &result {
            Ok(answer) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                self.prompt_tokens
                    .fetch_add(answer.usage.prompt_tokens, Ordering::Relaxed);
                self.completion_tokens
                    .fetch_add(answer.usage.completion_tokens, Ordering::Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn chat_inner(&self, request: &ChatRequest) -> Result<ChatAnswer, LlmError> {
        if request.messages.is_empty() {
            return Err(LlmError::Request(
                "a chat needs at least one message".into(),
            ));
        }
        let started = Instant::now();
        let mut structured = match &request.schema {
            Some(schema) => self
                .structured
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&schema.name)
                .copied()
                .unwrap_or(Structured::JsonSchema),
            None => Structured::None,
        };
        let mut requests = 0u32;
        let mut attempt = 0u32;
        let mut timed_out = false;
        loop {
            requests += 1;
            attempt += 1;
            let body = self.body(request, structured);
            match self.send(&body).await {
                Outcome::Answer(completion) => {
                    if let Some(schema) = &request.schema {
                        self.structured
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(schema.name.clone(), structured);
                    }
                    return self.answer(completion, structured, requests, started);
                }
                Outcome::Refused(status, message)
                    if matches!(status, 400 | 422) && structured != Structured::None =>
                {
                    // The server does not take this `response_format`: the
                    // next weaker one, at once (it is not a retry).
                    tracing::info!(
                        endpoint = %self.endpoint,
                        status,
                        refused = ?structured,
                        message = %message,
                        "the model server refused a response_format; asking with a weaker one"
                    );
                    structured = structured.next().unwrap_or(Structured::None);
                    attempt -= 1;
                }
                Outcome::Refused(status, message) => {
                    return Err(LlmError::Refused {
                        endpoint: self.endpoint.clone(),
                        status,
                        message,
                    })
                }
                Outcome::Invalid(reason) => {
                    return Err(LlmError::Invalid {
                        endpoint: self.endpoint.clone(),
                        reason,
                    })
                }
                Outcome::Fatal(reason) => {
                    return Err(LlmError::Unavailable {
                        endpoint: self.endpoint.clone(),
                        reason,
                    })
                }
                Outcome::Retry(reason, wait, timeout) => {
                    let last = attempt >= self.config.attempts.max(1) || (timeout && timed_out);
                    timed_out |= timeout;
                    if last {
                        return Err(LlmError::Unavailable {
                            endpoint: self.endpoint.clone(),
                            reason: format!("{reason} (after {attempt} attempts)"),
                        });
                    }
                    let wait = wait
                        .unwrap_or_else(|| backoff(attempt))
                        .min(self.config.max_retry_wait);
                    tracing::debug!(
                        endpoint = %self.endpoint,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        reason = %reason,
                        "the model server will be asked again"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    fn body(&self, request: &ChatRequest, structured: Structured) -> Value {
        let mut body = json!({
            "model": self.config.model,
            "messages": request.messages,
            "stream": false,
        });
        let map = body.as_object_mut().expect("an object");
        if let Some(max) = request.max_tokens {
            map.insert("max_tokens".into(), json!(max));
        }
        if let Some(t) = request.temperature {
            map.insert("temperature".into(), json!(t));
        }
        if let Some(seed) = request.seed {
            map.insert("seed".into(), json!(seed));
        }
        if let (Some(schema), Structured::JsonObject | Structured::None) =
            (&request.schema, structured)
        {
            // Without json_schema the server does not know the shape: the
            // prompt says it (and says "JSON", which json_object wants).
            if let Some(messages) = map.get_mut("messages").and_then(Value::as_array_mut) {
                messages.insert(
                    0,
                    json!({"role": "system", "content": format!(
                        "Answer with one JSON value and nothing else, following this JSON \
                         schema:\n{}",
                        schema.schema
                    )}),
                );
            }
        }
        if let Some(schema) = &request.schema {
            match structured {
                Structured::JsonSchema => {
                    map.insert(
                        "response_format".into(),
                        json!({"type": "json_schema",
                               "json_schema": {"name": schema.name, "schema": schema.schema,
                                               "strict": schema.strict}}),
                    );
                }
                Structured::JsonObject => {
                    map.insert("response_format".into(), json!({"type": "json_object"}));
                }
                Structured::None => {}
            }
        }
        body
    }

    async fn send(&self, body: &Value) -> Outcome {
        let mut rb = self.http.post(&self.endpoint).json(body);
        if let Some(key) = &self.config.api_key {
            rb = rb.bearer_auth(key);
        }
        let response = match rb.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Outcome::Retry(
                    format!("no answer within {:?}", self.config.timeout),
                    None,
                    true,
                )
            }
            Err(e) if e.is_builder() || e.is_redirect() => {
                return Outcome::Fatal(format!("the request cannot be sent: {}", chain(&e)))
            }
            Err(e) => {
                return Outcome::Retry(format!("cannot reach it: {}", chain(&e)), None, false)
            }
        };
        let status = response.status();
        let wait = retry_after(response.headers());
        if status.as_u16() == 429 || status.is_server_error() {
            let text = response.text().await.unwrap_or_default();
            return Outcome::Retry(
                format!("it answered {status}: {}", brief(&error_message(&text))),
                wait,
                false,
            );
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Outcome::Refused(status.as_u16(), brief(&error_message(&text)));
        }
        match response.bytes().await {
            Ok(bytes) => match serde_json::from_slice::<Completion>(&bytes) {
                Ok(c) => Outcome::Answer(c),
                // Not the protocol's shape: an error now, not a retry.
                Err(e) => {
                    Outcome::Invalid(format!("{e}: {}", brief(&String::from_utf8_lossy(&bytes))))
                }
            },
            Err(e) => Outcome::Retry(format!("the answer was cut: {}", chain(&e)), None, false),
        }
    }

    fn answer(
        &self,
        completion: Completion,
        structured: Structured,
        requests: u32,
        started: Instant,
    ) -> Result<ChatAnswer, LlmError> {
        let invalid = |reason: &str| LlmError::Invalid {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        };
        let choice = completion
            .choices
            .into_iter()
            .next()
            .ok_or_else(|| invalid("no `choices`"))?;
        let finish_reason = match choice.finish_reason.as_deref() {
            Some("stop") | None => FinishReason::Stop,
            Some("length") => FinishReason::Length,
            Some(other) => FinishReason::Other(other.to_string()),
        };
        let content = choice.message.content.unwrap_or_default();
        let mut usage = completion.usage.unwrap_or_default();
        if usage.total_tokens == 0 {
            usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
        }
        Ok(ChatAnswer {
            content,
            finish_reason,
            usage,
            model: completion
                .model
                .unwrap_or_else(|| self.config.model.clone()),
            structured,
            requests,
            elapsed: started.elapsed(),
        })
    }
}

/// The wait before attempt `attempt + 1` when the server gave none: 1 s
/// doubling, less up to half of it at random (so clients that failed
/// together do not come back together).
fn backoff(attempt: u32) -> Duration {
    let full = 1000u64 << (attempt.saturating_sub(1)).min(10);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
        % (full / 2 + 1);
    Duration::from_millis(full - jitter)
}

/// An error with its causes (reqwest's own message leaves them out).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `Retry-After`: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// The `error.message` of an OpenAI-shaped error body, or the body.
fn error_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.to_string())
}

/// At most 300 characters of a server's words.
pub(crate) fn brief(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;
