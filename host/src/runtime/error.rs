//! Errors of compiling, linking and calling a skill.

use super::bounded::{cut_lines, cut_owned, MAX_FRAME_BYTES, MAX_MESSAGE_BYTES};
use super::limiter::OverBudget;
use super::CallLimits;
use std::time::Duration;

/// Why a component could not be turned into a runnable skill.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The runtime configuration is inconsistent.
    #[error("invalid runtime configuration: {0}")]
    Config(String),
    /// The engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// A host capability could not be added to the linker.
    #[error("cannot link host capabilities: {0}")]
    Link(String),
    /// The bytes are not a valid component for this engine.
    #[error("not a valid component: {0}")]
    Compile(String),
    /// The component imports something the host does not provide (or does
    /// not grant).
    #[error("unsatisfied import: {0}")]
    Imports(String),
    /// The component does not export `run` with the expected signature.
    #[error("missing or mistyped export (expected `run: func(input: string) -> result<string, skill-error>`): {0}")]
    Exports(String),
}

/// Why a call did not produce the skill's output.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The skill returned its own error.
    #[error("{code}: {message}")]
    Skill {
        /// The skill's code.
        code: String,
        /// The skill's message.
        message: String,
    },
    /// The guest trapped (panic, unreachable, out-of-bounds, an uncaught
    /// exception of Python or JavaScript, ...).
    #[error("the skill trapped: {detail}")]
    Trap {
        /// The cause, the end of stderr (when there is any), then where
        /// (the wasm backtrace).
        detail: String,
        /// The end of what the call wrote to stderr (a traceback, say).
        stderr: Option<String>,
    },
    /// The call ran past its deadline and was stopped.
    #[error("the skill did not answer within its deadline of {0:?}")]
    DeadlineExceeded(Duration),
    /// The guest tried to grow its memory past the limit.
    #[error("the skill exceeded its memory limit of {limit_bytes} bytes: {detail}")]
    MemoryLimit {
        /// The limit in force.
        limit_bytes: u64,
        /// Wasmtime's description.
        detail: String,
    },
    /// No instance slot was free, or the skill is at its concurrency
    /// limit; try again later.
    #[error("{0}")]
    Busy(String),
    /// The output is larger than the host passes on.
    #[error("the skill's output is {size} bytes, over this host's limit of {limit} bytes (--max-output-bytes)")]
    OutputTooLarge {
        /// Its size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
}

impl InvokeError {
    /// Classifies an error that wasmtime returned from instantiate or call.
    ///
    /// Its text is bounded: the guest chooses the names in its backtrace,
    /// and a trap in a function with a megabyte of name must not make a
    /// megabyte of answer or of log.
    pub(crate) fn from_wasmtime(
        err: wasmtime::Error,
        limits: &CallLimits,
        stderr: Option<String>,
    ) -> Self {
        if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
            if *trap == wasmtime::Trap::Interrupt {
                return InvokeError::DeadlineExceeded(limits.deadline);
            }
        }
        // The root cause says what happened; the wasm backtrace (context)
        // says where. Lead with the cause so the first line is the answer.
        let cause = cut_owned(err.root_cause().to_string(), MAX_MESSAGE_BYTES);
        let detail = match err.downcast_ref::<wasmtime::WasmBacktrace>() {
            Some(backtrace) => format!("{cause}\n{backtrace}"),
            None => format!("{err:#}"),
        };
        let detail = cut_lines(&detail, MAX_FRAME_BYTES.max(cause.len()), MAX_MESSAGE_BYTES);
        if let Some(over) = err.downcast_ref::<OverBudget>() {
            return InvokeError::MemoryLimit {
                limit_bytes: over.limit as u64,
                detail,
            };
        }
        // The type, not the text: a guest names the functions of its
        // backtrace, and could name one after wasmtime's message.
        if err
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
        {
            return InvokeError::Busy(format!("the host is at its instance capacity: {cause}"));
        }
        let detail = match &stderr {
            Some(text) => match detail.split_once('\n') {
                Some((cause, backtrace)) => {
                    format!("{cause}\nthe call's stderr ended with:\n{text}\n{backtrace}")
                }
                None => format!("{detail}\nthe call's stderr ended with:\n{text}"),
            },
            None => detail,
        };
        InvokeError::Trap { detail, stderr }
    }
}
