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
//! 7.7 µs; docs/benchmarks.md). So is the `wasi:http` context, whose hooks
//! (what decides and sends a request) come from the capabilities.
//!
//! The last [`STDERR_TAIL`] bytes of stderr are kept too, so that a trap's
//! answer can say what the guest printed before it died (a Python
//! traceback, a JavaScript error).

use super::limiter::{CallLimiter, ComponentBounds};
use super::log_budget::LogBudget;
use super::stdio::{SkillOutput, Tail};
use super::CallLimits;
use std::any::Any;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// How much of a call's stderr is kept for its error (the end of it).
pub const STDERR_TAIL: usize = 4 * 1024;

/// What the host's capabilities know about the calling skill (its grants,
/// the services it may use). Opaque here: the runtime only carries it into
/// the store, and each capability takes out the type it put in; the one
/// thing the runtime asks of it is how to send the call's HTTP requests.
pub trait CallCapabilities: Any + Send + Sync {
    /// The hooks that decide on and send the outgoing HTTP requests of one
    /// call that must end by `deadline`.
    fn outgoing_http(&self, deadline: Instant) -> Box<dyn WasiHttpHooks>;
}

/// What [`WasiHttpHooks::send_request`] returns.
pub type SendRequestFuture = Box<
    dyn std::future::Future<
            Output = Result<
                (
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<
                        dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                            + Send,
                    >,
                ),
                wasmtime_wasi_http::Error,
            >,
        > + Send,
>;

/// The calling skill's capabilities, shared by its calls.
pub type CallContext = Arc<dyn CallCapabilities>;

/// The hooks of a call without capabilities: every request is denied.
struct NoOutgoingHttp;

impl WasiHttpHooks for NoOutgoingHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> SendRequestFuture {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}

/// Host state reachable from a skill's imports during one call.
pub struct SkillState {
    skill: Arc<str>,
    context: Option<CallContext>,
    /// Built on first use, see the module's documentation.
    wasi: Option<WasiCtx>,
    /// Built on first use, like `wasi`.
    http: Option<(WasiHttpCtx, Box<dyn WasiHttpHooks>)>,
    /// When the call must be over.
    deadline: Instant,
    /// The end of stderr; made with the WASI context (a pure call has none).
    stderr: Option<Arc<Mutex<Tail>>>,
    table: ResourceTable,
    limits: CallLimiter,
    log_budget: LogBudget,
    /// Tokens the call has spent on the host's model (held to the skill's
    /// `llm_tokens` budget by the `llm` capability).
    tokens_spent: u64,
}

impl SkillState {
    pub(crate) fn new(
        skill: Arc<str>,
        limits: &CallLimits,
        bounds: ComponentBounds,
        context: Option<CallContext>,
    ) -> Self {
        let log_budget = LogBudget::new(skill.clone(), limits.log_records);
        let deadline = Instant::now() + limits.deadline;
        let limits = CallLimiter::new(limits.memory_bytes, bounds);
        SkillState {
            skill,
            context,
            wasi: None,
            http: None,
            deadline,
            stderr: None,
            table: ResourceTable::new(),
            limits,
            log_budget,
            tokens_spent: 0,
        }
    }

    /// When the call must be over.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The model tokens this call has spent so far.
    pub fn tokens_spent(&self) -> u64 {
        self.tokens_spent
    }

    /// Counts `tokens` more model tokens against this call.
    pub fn spend_tokens(&mut self, tokens: u64) {
        self.tokens_spent = self.tokens_spent.saturating_add(tokens);
    }

    /// The name of the skill this store runs.
    pub fn skill(&self) -> &str {
        &self.skill
    }

    /// The call's context, when it is a `T`.
    pub fn context<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.context.clone()?;
        any.downcast::<T>().ok()
    }

    /// The end of what the call wrote to stderr, if it wrote anything.
    pub fn stderr_tail(&self) -> Option<String> {
        self.stderr.as_ref()?.lock().ok()?.text()
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
        let (skill, budget, stderr) = (&self.skill, &self.log_budget, &mut self.stderr);
        let ctx = self.wasi.get_or_insert_with(|| {
            let stderr = stderr.insert(Arc::new(Mutex::new(Tail::new(STDERR_TAIL))));
            WasiCtx::builder()
                .stdout(SkillOutput::new(skill.clone(), "stdout", budget.clone()))
                .stderr(
                    SkillOutput::new(skill.clone(), "stderr", budget.clone())
                        .keeping(stderr.clone()),
                )
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SkillState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        let (context, deadline) = (&self.context, self.deadline);
        let (ctx, hooks) = self.http.get_or_insert_with(|| {
            let hooks = match context {
                Some(context) => context.outgoing_http(deadline),
                None => Box::new(NoOutgoingHttp),
            };
            (WasiHttpCtx::new(), hooks)
        });
        WasiHttpCtxView {
            ctx,
            hooks: hooks.as_mut(),
            table: &mut self.table,
        }
    }
}
