//! The `skills` capability: a skill calls another skill of the same host.
//!
//! The callee runs exactly as an HTTP invoke would run it: its own version,
//! sandbox, limits, grants and input schema. The caller needs a grant that
//! names it (manifest key `skills`, `"*"` for every skill). Calls nest at
//! most [`MAX_DEPTH`] deep: the depth travels with the call in a task-local,
//! because a nested call runs inside its caller's host function, on the
//! same task.
//!
//! The registry does the calling ([`SkillInvoker`]); it is reached through a
//! weak reference set once the registry exists, so the capabilities, which
//! the registry owns, never keep it alive.

mod host;

use async_trait::async_trait;
use std::future::Future;
use std::sync::{Arc, OnceLock, Weak};

/// How deeply calls from skill to skill may nest.
pub const MAX_DEPTH: u32 = 4;

/// Why a call to another skill failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkillCallError {
    /// Not granted, or nested too deep.
    #[error("{0}")]
    Denied(String),
    /// No such skill, or nothing of it is serving.
    #[error("{0}")]
    NotFound(String),
    /// The input is not JSON or fails the callee's schema.
    #[error("{0}")]
    Invalid(String),
    /// The callee's own error.
    #[error("{code}: {message}")]
    Failed { code: String, message: String },
    /// A trap, a deadline, the memory limit, a busy host.
    #[error("{0}")]
    Unavailable(String),
}

/// What calls a skill by name: the registry.
#[async_trait]
pub trait SkillInvoker: Send + Sync {
    /// Invokes skill `name` with JSON text `input`.
    async fn invoke_skill(&self, name: &str, input: &str) -> Result<String, SkillCallError>;
}

/// Where the invoker is found; set once the registry is open.
#[derive(Clone, Default)]
pub struct InvokerSlot(Arc<OnceLock<Weak<dyn SkillInvoker>>>);

impl InvokerSlot {
    /// Sets the invoker (the first call wins).
    pub fn set(&self, invoker: Weak<dyn SkillInvoker>) {
        let _ = self.0.set(invoker);
    }

    fn get(&self) -> Option<Arc<dyn SkillInvoker>> {
        self.0.get().and_then(Weak::upgrade)
    }
}

/// The skills one skill may call: the manifest's `skills` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkillsGrant {
    /// `"*"`.
    All,
    /// These names.
    Only(Vec<String>),
}

impl SkillsGrant {
    /// Parses the manifest's `skills` list; `None` when it is empty.
    pub fn parse(names: &[String]) -> Result<Option<Self>, String> {
        if names.is_empty() {
            return Ok(None);
        }
        if names.iter().any(|n| n == "*") {
            return Ok(Some(SkillsGrant::All));
        }
        for name in names {
            crate::skill::SkillName::check(name).map_err(|e| format!("`skills`: {e}"))?;
        }
        Ok(Some(SkillsGrant::Only(names.to_vec())))
    }

    /// Whether it allows calling `name`.
    pub fn allows(&self, name: &str) -> bool {
        match self {
            SkillsGrant::All => true,
            SkillsGrant::Only(names) => names.iter().any(|n| n == name),
        }
    }
}

tokio::task_local! {
    static DEPTH: u32;
}

/// How deeply the current call is nested (0: invoked over HTTP).
pub fn depth() -> u32 {
    DEPTH.try_with(|d| *d).unwrap_or(0)
}

/// Runs `call` one level deeper.
async fn nested<F: Future>(call: F) -> F::Output {
    DEPTH.scope(depth() + 1, call).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants() {
        assert_eq!(SkillsGrant::parse(&[]).unwrap(), None);
        let all = SkillsGrant::parse(&["*".into()]).unwrap().unwrap();
        assert!(all.allows("anything"));
        let some = SkillsGrant::parse(&["echo".into()]).unwrap().unwrap();
        assert!(some.allows("echo") && !some.allows("text-stats"));
        assert!(SkillsGrant::parse(&["Echo".into()]).is_err());
    }

    #[tokio::test]
    async fn depth_follows_the_nesting() {
        assert_eq!(depth(), 0);
        let inner = nested(async { nested(async { depth() }).await }).await;
        assert_eq!(inner, 2);
        assert_eq!(depth(), 0);
    }
}
