//! The host's language model: one chat completion at a time, from the
//! OpenAI-compatible server the operator configured. The host keeps the key
//! and retries what is worth retrying; the skill gets the answer, what it
//! cost and what is left of its budget.
//!
//! The manifest grants `llm_tokens`: the most tokens (prompts and answers,
//! over all its requests) one call of the skill may spend. A skill that
//! imports this module's functions without the grant is refused at load.
//!
//! ```no_run
//! use darkfactory_sdk::{export_skill, llm, SkillError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     text: String,
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Summary {
//!     summary: String,
//! }
//!
//! fn summarise(input: Input) -> Result<Summary, SkillError> {
//!     let schema = r#"{"type":"object","required":["summary"],
//!         "properties":{"summary":{"type":"string"}}}"#;
//!     let answer = llm::Chat::new()
//!         .system("Summarise the text in one sentence.")
//!         .user(&input.text)
//!         .json_schema(schema)
//!         .max_tokens(200)
//!         .send()?;
//!     answer.json()
//! }
//!
//! export_skill!(summarise, llm_tokens = 2000);
//! # fn main() {}
//! ```

use crate::bindings::darkfactory::skill::llm as wit;
use crate::SkillError;
use serde::de::DeserializeOwned;

pub use wit::{Answer, FinishReason, LlmError, Message, Request, Role};

impl From<LlmError> for SkillError {
    /// A failed chat as the skill's own error: code `llm-denied`,
    /// `llm-invalid`, `llm-budget-exceeded`, `llm-unavailable` or
    /// `llm-refused`.
    fn from(e: LlmError) -> Self {
        let (code, message) = match e {
            LlmError::Denied(m) => ("llm-denied", m),
            LlmError::Invalid(m) => ("llm-invalid", m),
            LlmError::BudgetExceeded(m) => ("llm-budget-exceeded", m),
            LlmError::Unavailable(m) => ("llm-unavailable", m),
            LlmError::Refused(m) => ("llm-refused", m),
        };
        SkillError::new(code, message)
    }
}

/// Asks for one chat completion.
pub fn chat(request: &Request) -> Result<Answer, LlmError> {
    wit::chat(request)
}

/// A chat completion to ask for, built a message at a time.
#[derive(Debug, Clone)]
pub struct Chat {
    request: Request,
}

impl Default for Chat {
    fn default() -> Self {
        Self::new()
    }
}

impl Chat {
    /// An empty conversation.
    pub fn new() -> Self {
        Chat {
            request: Request {
                messages: Vec::new(),
                json_schema: None,
                max_tokens: None,
                temperature: None,
            },
        }
    }

    fn say(mut self, role: Role, content: &str) -> Self {
        self.request.messages.push(Message {
            role,
            content: content.to_string(),
        });
        self
    }

    /// Adds instructions.
    pub fn system(self, content: &str) -> Self {
        self.say(Role::System, content)
    }

    /// Adds the user's words.
    pub fn user(self, content: &str) -> Self {
        self.say(Role::User, content)
    }

    /// Adds an earlier answer of the model.
    pub fn assistant(self, content: &str) -> Self {
        self.say(Role::Assistant, content)
    }

    /// Holds the answer to a JSON Schema (JSON text).
    pub fn json_schema(mut self, schema: &str) -> Self {
        self.request.json_schema = Some(schema.to_string());
        self
    }

    /// The most tokens the answer may have.
    pub fn max_tokens(mut self, tokens: u32) -> Self {
        self.request.max_tokens = Some(tokens);
        self
    }

    /// The sampling temperature.
    pub fn temperature(mut self, temperature: f64) -> Self {
        self.request.temperature = Some(temperature);
        self
    }

    /// Sends it.
    pub fn send(&self) -> Result<Answer, LlmError> {
        wit::chat(&self.request)
    }
}

impl Answer {
    /// The answer parsed as `T` (for a chat with a JSON schema). A cut
    /// answer (`finish-reason` `length`) or one that is not a `T` is the
    /// error `llm-invalid-answer`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, SkillError> {
        if self.finish_reason == FinishReason::Length {
            return Err(SkillError::new(
                "llm-invalid-answer",
                "the model's answer was cut short (it ran out of tokens)",
            ));
        }
        serde_json::from_str(&self.content).map_err(|e| {
            SkillError::new(
                "llm-invalid-answer",
                format!("the model's answer is not what was asked for: {e}"),
            )
        })
    }
}
