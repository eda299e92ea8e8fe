//! The fleet's memory: store texts in namespaces and find them again.
//!
//! Namespaces are `"agent"` (the agent this skill acts for, named by the
//! manifest key `agent`, else the skill's name), `"org"` and `"user:<id>"`.
//! A search may also use `"all"`: every namespace the skill may read. The
//! manifest says which namespaces the skill may read and write; the host
//! refuses the rest with [`MemoryError::Denied`], and every call of a skill
//! without any memory grant too:
//!
//! ```no_run
//! use darkfactory_sdk::{export_skill, memory, SkillError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     question: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     answers: Vec<String>,
//! }
//!
//! fn recall(input: Input) -> Result<Output, SkillError> {
//!     let hits = memory::search(&input.question)
//!         .scope("all")
//!         .limit(3)
//!         .run()?;
//!     memory::store("asked: ".to_string() + &input.question)
//!         .namespace("agent")
//!         .meta("kind", "question")
//!         .run()?;
//!     Ok(Output { answers: hits.into_iter().map(|h| h.text).collect() })
//! }
//!
//! export_skill!(recall,
//!     agent = "alfred",
//!     memory_read = "agent, org",
//!     memory_write = "agent",
//! );
//! # fn main() {}
//! ```

use crate::bindings::darkfactory::skill::memory as wit;
use crate::SkillError;

pub use wit::{Hit, MemoryError};

impl From<MemoryError> for SkillError {
    /// A memory error as the skill's own error: code `memory-denied`,
    /// `memory-invalid` or `memory-unavailable`.
    fn from(e: MemoryError) -> Self {
        let (code, message) = match e {
            MemoryError::Denied(m) => ("memory-denied", m),
            MemoryError::Invalid(m) => ("memory-invalid", m),
            MemoryError::Unavailable(m) => ("memory-unavailable", m),
        };
        SkillError::new(code, message)
    }
}

impl Hit {
    /// The value of a metadata key, if the memory has it.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A store to run: [`store`]`(text).namespace(..).meta(..).run()`.
#[must_use = "nothing is stored until `run` is called"]
pub struct Store {
    text: String,
    namespace: String,
    metadata: Vec<(String, String)>,
}

/// Starts storing `text`, by default in the namespace `agent`.
pub fn store(text: impl Into<String>) -> Store {
    Store {
        text: text.into(),
        namespace: "agent".to_string(),
        metadata: Vec::new(),
    }
}

impl Store {
    /// The namespace: `agent`, `org` or `user:<id>`.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Adds a metadata pair.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.push((key.into(), value.into()));
        self
    }

    /// Stores the memory and returns its id. The same text in the same
    /// namespace always has the same id, and is kept once.
    pub fn run(self) -> Result<String, MemoryError> {
        wit::store(&self.text, &self.namespace, &self.metadata)
    }
}

/// A search to run: [`search`]`(query).scope(..).limit(..).meta(..).run()`.
#[must_use = "nothing is searched until `run` is called"]
pub struct Search {
    query: String,
    scope: String,
    limit: u32,
    filter: Vec<(String, String)>,
}

/// Starts a search for `query`, by default in `all` with 10 hits.
pub fn search(query: impl Into<String>) -> Search {
    Search {
        query: query.into(),
        scope: "all".to_string(),
        limit: 10,
        filter: Vec::new(),
    }
}

impl Search {
    /// One namespace, `agent`, or `all` (every namespace the skill may read).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = scope.into();
        self
    }

    /// The most hits to return, 1 to 100.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Keeps only memories whose metadata has `key` = `value`.
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.filter.push((key.into(), value.into()));
        self
    }

    /// Runs the search; hits come best first.
    pub fn run(self) -> Result<Vec<Hit>, MemoryError> {
        wit::search(&self.query, &self.scope, self.limit, &self.filter)
    }
}

/// Deletes the memory with this id; `false` when there was none. The skill
/// must be allowed to write the memory's namespace.
pub fn forget(id: &str) -> Result<bool, MemoryError> {
    wit::forget(id)
}
