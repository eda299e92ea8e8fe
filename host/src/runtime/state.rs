//! The data of one skill call's [`wasmtime::Store`].
//!
//! Built fresh for every call: WASI denies by default (no filesystem, no
//! sockets, no environment, no arguments, no stdin), stdout and stderr go to
//! the host log tagged with the skill's name within the call's log budget,
//! and the store limiter enforces the call's memory limit over all its
//! memories and tables together ([`CallLimiter`]).
//!
//! The WASI context is built when the skill first calls WASI: most calls of
//! a pure skill never do, and building it (two output streams, the random
//! sources, the clocks) made a call of `echo` ~0.5 µs slower (8.2 against
//! 7.7 µs; docs/benchmarks.md).

use super::limiter::{CallLimiter, ComponentBounds};
use super::log_budget::LogBudget;
use super::stdio::SkillOutput;
use super::CallLimits;
use std::any::Any;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the host's capabilities know about the calling skill (its grants,
/// the services it may use). Opaque here: the runtime only carries it into
/// the store, and each capability takes out the type it put in.
pub type CallContext = Arc<dyn Any + Send + Sync>;

/// Host state reachable from a skill's imports during one call.
pub struct SkillState {
    skill: Arc<str>,
    context: Option<CallContext>,
    /// Built on first use, see the module's documentation.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    limits: CallLimiter,
    log_budget: LogBudget,
}

impl SkillState {
    pub(crate) fn new(
        skill: Arc<str>,
        limits: &CallLimits,
        bounds: ComponentBounds,
        context: Option<CallContext>,
    ) -> Self {
        let log_budget = LogBudget::new(skill.clone(), limits.log_records);
        let limits = CallLimiter::new(limits.memory_bytes, bounds);
        SkillState {
            skill,
            context,
            wasi: None,
            table: ResourceTable::new(),
            limits,
            log_budget,
        }
    }

    /// The name of the skill this store runs.
    pub fn skill(&self) -> &str {
        &self.skill
    }

    /// The call's context, when it is a `T`.
    pub fn context<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.context.clone()?.downcast::<T>().ok()
    }

    /// Takes one record from the call's log budget: `false` means drop it.
    pub(crate) fn take_log_record(&self) -> bool {
        self.log_budget.take()
    }

    pub(crate) fn limiter(&mut self) -> &mut CallLimiter {
        &mut self.limits
    }
}

impl WasiView for SkillState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let (skill, budget) = (&self.skill, &self.log_budget);
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .stdout(SkillOutput::new(skill.clone(), "stdout", budget.clone()))
                .stderr(SkillOutput::new(skill.clone(), "stderr", budget.clone()))
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}
