//! The host's other skills: call one by name, a serde value in and out.
//!
//! The callee runs in its own sandbox under its own limits, as an HTTP
//! invoke would run it. The manifest names the skills a skill may call
//! (`skills = "text-stats,echo"`, or `"*"`); a skill without that grant
//! gets `Denied` from every call. Calls nest at most 4 deep.
//!
//! ```no_run
//! use darkfactory_sdk::{export_skill, skills, SkillError};
//! use serde::{Deserialize, Serialize};
//! use serde_json::{json, Value};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     text: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     words: u64,
//! }
//!
//! fn count(input: Input) -> Result<Output, SkillError> {
//!     let stats: Value = skills::invoke("text-stats", &json!({ "text": input.text }))?;
//!     Ok(Output { words: stats["words"].as_u64().unwrap_or(0) })
//! }
//!
//! export_skill!(count, skills = "text-stats");
//! # fn main() {}
//! ```

use crate::bindings::darkfactory::skill::skills as wit;
use crate::SkillError;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use wit::CallError;

impl From<CallError> for SkillError {
    /// A failed call as the skill's own error: code `skills-denied`,
    /// `skills-not-found`, `skills-invalid` or `skills-unavailable`; the
    /// callee's own error passes through with its code.
    fn from(e: CallError) -> Self {
        let (code, message) = match e {
            CallError::Denied(m) => ("skills-denied", m),
            CallError::NotFound(m) => ("skills-not-found", m),
            CallError::Invalid(m) => ("skills-invalid", m),
            CallError::Failed(e) => return e,
            CallError::Unavailable(m) => ("skills-unavailable", m),
        };
        SkillError::new(code, message)
    }
}

/// Calls skill `name` with `input`; its output as `O`.
pub fn invoke<I: Serialize, O: DeserializeOwned>(name: &str, input: &I) -> Result<O, CallError> {
    let input = serde_json::to_string(input)
        .map_err(|e| CallError::Invalid(format!("the input cannot be JSON: {e}")))?;
    let output = wit::invoke(name, &input)?;
    serde_json::from_str(&output)
        .map_err(|e| CallError::Invalid(format!("`{name}` answered what `O` cannot hold: {e}")))
}
