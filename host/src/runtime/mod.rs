//! The one place that talks to wasmtime.
//!
//! A [`Runtime`] owns the process-wide [`Engine`] (pooling allocator when the
//! address space allows it, epoch interruption for deadlines), the
//! [`Linker`] with WASI and every host capability, and the code that turns a
//! component into a [`SkillPre`] and runs one call in a fresh [`Store`].
//! A fresh store per call means no state leaks from one call to the next; the
//! pre-instantiation means a call costs an instantiation, not a link.
//!
//! Nothing in here knows about the skills directory or HTTP.

pub mod bindings;
pub mod bounded;
mod config;
mod error;
mod limiter;
mod log_budget;
mod state;
mod stdio;

pub use bindings::{SkillError as WitSkillError, SkillWithLlmPre as SkillPre};
pub use config::{CallLimits, PoolCapacity, RuntimeConfig};
pub use error::{InvokeError, RuntimeError};
pub use limiter::{ComponentBounds, OverBudget};
pub use state::{CallCapabilities, CallContext, SendRequestFuture, SkillState};

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

/// Adds host capabilities (the `darkfactory:skill` imports) to a linker.
pub type CapabilityLinker =
    dyn Fn(&mut Linker<SkillState>) -> Result<(), RuntimeError> + Send + Sync;

/// The process-wide Wasm engine, linker and call machinery.
pub struct Runtime {
    engine: Engine,
    linker: Linker<SkillState>,
    config: RuntimeConfig,
    pooling: bool,
    compatibility_hash: String,
    /// The engine's epoch ticker, shared with the runtimes on this engine
    /// ([`Runtime::sibling`]): it stops when the last of them goes.
    ticker: Arc<Ticker>,
}

/// The thread that advances an engine's epoch; stopped and joined on drop.
struct Ticker {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Runtime {
    /// Builds the engine and linker; `add_capabilities` links the host imports.
    ///
    /// The pooling allocator is tried first; when the address space cannot be
    /// reserved (a `ulimit -v`, a small VM) the engine falls back to on-demand
    /// allocation and says so in the log.
    pub fn new(
        config: RuntimeConfig,
        add_capabilities: &CapabilityLinker,
    ) -> Result<Self, RuntimeError> {
        config.validate()?;
        let (engine, pooling) = match Engine::new(&engine_config(&config, true)) {
            Ok(engine) => (engine, true),
            Err(err) => {
                tracing::warn!(
                    error = %format!("{err:#}"),
                    "pooling allocator unavailable (address space too small?); \
                     falling back to on-demand instance allocation"
                );
                let engine = Engine::new(&engine_config(&config, false))
                    .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
                (engine, false)
            }
        };

        let linker = link(&engine, add_capabilities)?;

        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compatibility_hash = format!("{:016x}", hasher.finish());

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handle = spawn_epoch_ticker(&engine, config.epoch_tick, stop.clone())?;
        let ticker = Arc::new(Ticker {
            stop,
            handle: Some(handle),
        });
        tracing::debug!(
            pooling,
            max_instances = config.max_instances,
            "wasm engine ready"
        );
        Ok(Runtime {
            engine,
            linker,
            config,
            pooling,
            compatibility_hash,
            ticker,
        })
    }

    /// A runtime on this one's engine (its pool, its epoch ticker) with
    /// another linker: a component compiled by one runs on both.
    pub fn sibling(&self, add_capabilities: &CapabilityLinker) -> Result<Self, RuntimeError> {
        let linker = link(&self.engine, add_capabilities)?;
        Ok(Runtime {
            engine: self.engine.clone(),
            linker,
            config: self.config.clone(),
            pooling: self.pooling,
            compatibility_hash: self.compatibility_hash.clone(),
            ticker: self.ticker.clone(),
        })
    }

    /// The engine every component of this host is compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }

    /// A short hex key that changes whenever compiled artifacts stop being
    /// loadable by this engine (other wasmtime version, other settings).
    pub fn compatibility_hash(&self) -> &str {
        &self.compatibility_hash
    }

    /// Compiles a component. CPU-heavy: call it off the async threads.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component, RuntimeError> {
        Component::new(&self.engine, bytes).map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }

    /// Compiles a component on the blocking pool, for a caller on an async
    /// thread.
    pub async fn compile_off_thread(&self, bytes: Vec<u8>) -> Result<Component, RuntimeError> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
            .await
            .map_err(|e| RuntimeError::Compile(format!("the compilation stopped: {e}")))?
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }

    /// Serializes a compiled component for the artifact cache.
    pub fn serialize(&self, component: &Component) -> Result<Vec<u8>, RuntimeError> {
        component
            .serialize()
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }

    /// Loads a component that [`Runtime::serialize`] wrote.
    ///
    /// # Safety
    ///
    /// `path` must hold bytes produced by `serialize` of a runtime with the same
    /// [`Runtime::compatibility_hash`], and must not be modified while the
    /// component lives (the file is memory-mapped).
    pub unsafe fn deserialize_file(&self, path: &Path) -> Result<Component, RuntimeError> {
        // SAFETY: forwarded to the caller, see above.
        unsafe { Component::deserialize_file(&self.engine, path) }
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }

    /// Resolves every import and checks the `run` export: the load-time gate.
    ///
    /// Errors name the offending import or export.
    pub fn prepare(&self, component: &Component) -> Result<SkillPre<SkillState>, RuntimeError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| RuntimeError::Imports(format!("{e:#}")))?;
        SkillPre::new(pre).map_err(|e| RuntimeError::Exports(format!("{e:#}")))
    }

    /// Instantiates once without calling anything: proves the skill starts
    /// within its limits before it is published.
    pub async fn health_check(
        &self,
        pre: &SkillPre<SkillState>,
        skill: &Arc<str>,
        limits: &CallLimits,
        context: Option<&CallContext>,
    ) -> Result<(), InvokeError> {
        let mut store = self.new_store(skill, limits, context);
        let deadline = limits.deadline;
        let result = tokio::time::timeout(deadline, pre.instantiate_async(&mut store)).await;
        match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(InvokeError::from_wasmtime(
                err,
                limits,
                store.data().stderr_tail(),
            )),
            Err(_) => Err(InvokeError::DeadlineExceeded(deadline)),
        }
    }

    /// Runs `run(input)` of a skill in a fresh store; `context` is what the
    /// skill's capabilities see of it.
    pub async fn invoke(
        &self,
        pre: &SkillPre<SkillState>,
        skill: &Arc<str>,
        limits: &CallLimits,
        context: Option<&CallContext>,
        input: &str,
    ) -> Result<String, InvokeError> {
        let mut store = self.new_store(skill, limits, context);
        let deadline = limits.deadline;
        let max_output = self.config.max_output_bytes;
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, input).await
        };
        // The epoch deadline stops guest code; the timer also covers time
        // spent in host imports, with a little slack so the trap wins a race.
        // It costs a pure call nothing: `Timeout` polls the call first, and
        // its `Sleep` enters the timer wheel only when first polled.
        let started = Instant::now();
        let result = tokio::time::timeout(deadline + Duration::from_millis(100), call).await;
        match result {
            Ok(Ok(Ok(output))) if output.len() > max_output => Err(InvokeError::OutputTooLarge {
                size: output.len(),
                limit: max_output,
            }),
            Ok(Ok(Ok(output))) => Ok(output),
            // The skill chose these words: the host repeats a bounded part.
            Ok(Ok(Err(skill_error))) => Err(InvokeError::Skill {
                code: bounded::cut_code(&skill_error.code),
                message: bounded::cut_owned(skill_error.message, bounded::MAX_MESSAGE_BYTES),
            }),
            Ok(Err(err)) => Err(InvokeError::from_wasmtime(
                err,
                limits,
                store.data().stderr_tail(),
            )),
            Err(_) => {
                tracing::warn!(skill = %skill, elapsed = ?started.elapsed(), "host-side deadline hit");
                Err(InvokeError::DeadlineExceeded(deadline))
            }
        }
    }

    fn new_store(
        &self,
        skill: &Arc<str>,
        limits: &CallLimits,
        context: Option<&CallContext>,
    ) -> Store<SkillState> {
        let state = SkillState::new(
            skill.clone(),
            limits,
            self.config.component_bounds,
            context.cloned(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| state.limiter());
        // Every epoch tick the guest is still running, it yields to tokio
        // (so a long call never holds a worker thread, and the tasks queued
        // behind it run) until its deadline's ticks are spent; then it traps.
        let mut ticks_left = limits
            .deadline
            .as_micros()
            .div_ceil(self.config.epoch_tick.as_micros().max(1))
            .max(1) as u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            ticks_left = ticks_left.saturating_sub(1);
            Ok(if ticks_left == 0 {
                UpdateDeadline::Interrupt
            } else {
                // tokio's own yield puts the task behind the others queued on
                // this worker; a plain self-wake would run it again first.
                UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
            })
        });
        store
    }
}

/// A linker of WASI, `wasi:http` and the capabilities `add_capabilities`
/// links.
fn link(
    engine: &Engine,
    add_capabilities: &CapabilityLinker,
) -> Result<Linker<SkillState>, RuntimeError> {
    let mut linker = Linker::<SkillState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
    add_capabilities(&mut linker)?;
    Ok(linker)
}

/// Bytes of each linear memory that stay mapped between instances and are
/// reset with `memset` instead of `madvise`: no page faults on the next call.
/// A skill linked with a small stack (the 64 KiB the SDK docs recommend) fits
/// whole; measured on 2 cores, instantiate + call of `echo` drops from ~32 µs
/// (0 bytes kept) to ~12 µs. PAGEMAP_SCAN was slower in our VM, so it is off.
const KEEP_RESIDENT: usize = 1 << 20;

fn engine_config(config: &RuntimeConfig, pooling: bool) -> wasmtime::Config {
    let mut cfg = wasmtime::Config::new();
    cfg.epoch_interruption(true);
    cfg.wasm_component_model(true);
    if pooling {
        let capacity = config.pool();
        let bounds = config.component_bounds;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(capacity.component_instances)
            .total_core_instances(capacity.core_instances)
            .total_memories(capacity.memories)
            .total_tables(capacity.tables)
            .total_stacks(capacity.component_instances)
            // What one component may take of the pool, checked when it is
            // compiled (and by each call's limiter on the on-demand path).
            .max_core_instances_per_component(bounds.core_instances)
            .max_memories_per_component(bounds.memories)
            .max_tables_per_component(bounds.tables)
            .max_memories_per_module(2)
            .max_tables_per_module(4)
            .max_memory_size(config.max_memory_bytes as usize)
            .max_component_instance_size(4 << 20)
            .max_core_instance_size(4 << 20)
            .max_unused_warm_slots(capacity.component_instances.min(100))
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

fn spawn_epoch_ticker(
    engine: &Engine,
    tick: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, RuntimeError> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch ticker: {e}")))
}
