//! The skills directory: what is loaded, which version serves, and how a new
//! version replaces the old one.
//!
//! `NAME.wasm` in the skills directory is skill `NAME` (with an optional
//! sidecar manifest `NAME.toml`); so is `NAME.workflow.md`, which the
//! workflow compiler turns into a component first. A file becomes a
//! [`Version`] through one pipeline, whether it arrived by the watcher, at
//! start-up, through `PUT /api/skills/NAME` or by a rollback:
//!
//! look at the files (unchanged: stop) → wait for a place in the compile
//! queue → read them (regular files inside the directory, within the size
//! limit: `files`) → (compile the workflow) → sha256 → inspect (is it a
//! component? its embedded manifest) → merge the manifest → compile
//! (artifact cache hit by sha256 and engine hash) → resolve imports and
//! check the `run` export → leave the queue → instantiate once → publish.
//!
//! The compile queue holds as many loads as the machine has cores, so a
//! thousand files dropped at once are compiled a few at a time while the
//! serving path keeps its threads; instantiation has a bound of its own, so
//! a skill whose start function loops holds up neither the queue nor the
//! others. The host listens before any of this has finished: a skill still
//! loading answers `503` until it is ready. A file that fails is recorded
//! with the hashes of what failed, in memory and in the state database, and
//! is not tried again (after a restart either) until it changes.
//!
//! Publishing is one atomic pointer store ([`ArcSwapOption`]): a call clones
//! the `Arc` of the version it starts on and finishes on it, whatever is
//! published meanwhile. A failure at any step leaves the serving version in
//! place and is kept as the skill's `last_error`. Each version admits a
//! bounded number of calls at once, its share of the instance pool
//! (`share`), so one skill cannot take the pool from the others.
//!
//! Nothing here touches the file system or SQLite on an async worker: every
//! such call goes to the blocking pool.
//!
//! By stage: the types and the registry's state are here; the load
//! pipeline (sync, build, publish, rescan) is `load`, deploys, rollbacks
//! and removals are `versions`, calls are `invoke`; the watcher is
//! `watch`, the files `files`, the artifact cache `store`.

mod files;
mod invoke;
mod load;
mod share;
mod stats;
mod store;
mod versions;
mod watch;

pub use stats::{SkillMetrics, StatsSnapshot};
pub use store::write_atomically;
pub use watch::WatchHandle;

use crate::capabilities::grants::ResolvedManifest;
use crate::capabilities::skills::{SkillCallError, SkillInvoker};
use crate::capabilities::{
    refused_import, ungranted_imports, ungranted_message, unserved_import, Capabilities,
    SkillContext,
};
use crate::runtime::bounded::{cut, cut_owned, MAX_MESSAGE_BYTES};
use crate::runtime::{CallContext, InvokeError, Runtime, SkillPre, SkillState};
use crate::skill::sha256_hex;
use crate::skill::{inspect_component, Manifest, SkillName};
use crate::state::{FailureRow, StateStore, VersionRow};
use arc_swap::ArcSwapOption;
use files::{SkillsDir, Stamp};
use load::{compile_workflow, read_text, Observed};
use serde::Serialize;
use stats::Stats;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::ArtifactStore;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Where the registry lives, how it watches, and how much it takes on at
/// once.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The skills directory users drop `NAME.wasm` files into.
    pub skills_dir: PathBuf,
    /// The host's data directory (state database, blobs, artifact cache).
    pub data_dir: PathBuf,
    /// Versions kept per skill for rollback, the serving one included.
    pub history_limit: usize,
    /// Quiet time after the last change to a file before it is loaded.
    pub debounce: Duration,
    /// Period of the full directory rescan that backs up the watcher.
    pub rescan_interval: Duration,
    /// The largest component a file or an upload may hold, in bytes.
    pub max_file_bytes: u64,
    /// Loads compiled at once: the length of the compile queue's head.
    pub compile_concurrency: usize,
    /// New versions instantiated at once for their health check.
    pub start_concurrency: usize,
    /// Refuse a component that imports an interface its manifest grants
    /// nothing of (by default it loads, and those calls answer `denied`).
    pub strict_imports: bool,
}

impl RegistryConfig {
    /// A configuration with the default history, debounce, rescan period,
    /// size limit (64 MiB) and queue (one compile per core).
    pub fn new(skills_dir: PathBuf, data_dir: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        RegistryConfig {
            skills_dir,
            data_dir,
            history_limit: 5,
            debounce: Duration::from_millis(50),
            rescan_interval: Duration::from_secs(2),
            max_file_bytes: 64 << 20,
            compile_concurrency: cores,
            start_concurrency: (cores * 4).max(8),
            strict_imports: false,
        }
    }
}

/// A component's bytes, shared (not copied) by the steps of a load.
type Bytes = Arc<Vec<u8>>;

/// The largest sidecar manifest, in bytes.
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

/// How long a call waits for a place among its skill's calls before it is
/// answered `busy`.
const QUEUE_WAIT: Duration = Duration::from_secs(1);

/// What went wrong with a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name is not a valid skill name.
    #[error("{0}")]
    InvalidName(String),
    /// No skill of that name is loaded.
    #[error("no skill named `{0}` is loaded")]
    NotFound(String),
    /// The skill exists but no version of it loads (yet).
    #[error("skill `{name}` has no version that loads: {reason}")]
    Unavailable {
        /// The skill.
        name: String,
        /// Its last load error.
        reason: String,
    },
    /// A component was refused; nothing was written or swapped.
    #[error("{0}")]
    Rejected(String),
    /// A workflow does not compile (every diagnostic, rendered); nothing
    /// was written or swapped.
    #[error("{0}")]
    InvalidWorkflow(String),
    /// Rollback has no earlier version to go to.
    #[error("skill `{0}` has no earlier version to roll back to")]
    NothingToRollBack(String),
    /// The input does not satisfy the skill's input schema.
    #[error("the input does not match the skill's input schema: {0}")]
    InvalidInput(String),
    /// The skill answered with something that is not JSON.
    #[error("the skill's output is not valid JSON: {0}")]
    InvalidOutput(String),
    /// The call failed.
    #[error(transparent)]
    Invoke(#[from] InvokeError),
    /// The skills directory or data directory could not be read or written.
    #[error("storage error: {0}")]
    Storage(String),
}

/// How a version arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Found in the skills directory.
    File,
    /// Uploaded through the HTTP API.
    Api,
    /// Restored by a rollback.
    Rollback,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Api => "api",
            Source::Rollback => "rollback",
        }
    }
}

/// One loaded, runnable version of a skill.
pub struct Version {
    /// sha256 of the component bytes, hex.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// When this version started serving.
    pub loaded_at: SystemTime,
    /// How it arrived.
    pub source: Source,
    /// Whether the compiled artifact came from the cache.
    pub from_cache: bool,
    /// How long compiling it (or loading it from the cache) took.
    pub compile_time: Duration,
    /// Interfaces it imports that its manifest grants nothing of: their
    /// calls answer `denied`.
    pub ungranted: Vec<String>,
    /// Its manifest, limits and schema.
    pub resolved: ResolvedManifest,
    /// How many of its calls may run at once.
    pub concurrency: u32,
    sidecar: Option<String>,
    /// The `workflow.md` it was compiled from, if it was.
    workflow: Option<String>,
    pre: SkillPre<SkillState>,
    context: CallContext,
}

/// A skill: its serving version, its last error and its counters.
pub struct Slot {
    name: SkillName,
    tag: Arc<str>,
    active: ArcSwapOption<Version>,
    failure: Mutex<Failure>,
    stats: Stats,
    /// Serialises loads, deploys, rollbacks and deletes of this skill.
    load: Arc<tokio::sync::Mutex<()>>,
    /// What its files looked like at the last sync, so that an unchanged
    /// file is never read again.
    seen: Mutex<Option<Observed>>,
    /// Its files have not been through the load pipeline yet.
    loading: AtomicBool,
    /// A sync waits for its turn (later ones have nothing to add).
    queued: AtomicBool,
    /// Admits as many calls at once as the serving version's concurrency;
    /// it belongs to the skill, so a swap does not add room.
    calls: share::CallGate,
}

#[derive(Default)]
struct Failure {
    error: Option<String>,
    at: Option<SystemTime>,
    /// What identifies the input that failed (sha256 of the main file and
    /// of the sidecar), so it is not retried until the file changes.
    key: Option<String>,
    /// The failure may pass by itself (no free instance slot, a file that
    /// changed while it was read): the rescan retries it.
    transient: bool,
}

impl Slot {
    fn new(name: SkillName) -> Self {
        Slot {
            tag: Arc::from(name.as_str()),
            name,
            active: ArcSwapOption::empty(),
            failure: Mutex::new(Failure::default()),
            stats: Stats::default(),
            load: Arc::new(tokio::sync::Mutex::new(())),
            seen: Mutex::new(None),
            loading: AtomicBool::new(true),
            queued: AtomicBool::new(false),
            calls: share::CallGate::new(1),
        }
    }

    /// Whether the files look as they did at the last sync, and what
    /// stopped them then (if anything) does not pass by itself.
    fn is_unchanged(&self, observed: &Observed) -> bool {
        lock(&self.seen).as_ref() == Some(observed) && !lock(&self.failure).transient
    }

    /// The version serving now, if any.
    pub fn active(&self) -> Option<Arc<Version>> {
        self.active.load_full()
    }

    /// Whether `key` is the input that failed last (and not by chance).
    fn failed_before(&self, key: &str) -> bool {
        let failure = lock(&self.failure);
        failure.key.as_deref() == Some(key) && !failure.transient
    }
}

/// The summary of a skill that `GET /api/skills` lists.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SkillSummary {
    /// Skill name.
    pub name: String,
    /// `ready`, `degraded` (serving, but the newest file failed), `loading`
    /// (its files have not been through the load pipeline yet) or `failed`
    /// (nothing serving).
    pub status: &'static str,
    /// sha256 of the serving version.
    pub sha256: Option<String>,
    /// When the serving version was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The author's version string of the serving version.
    pub version: Option<String>,
    /// What the skill does.
    pub description: Option<String>,
    /// The last load error, if the newest file did not load.
    pub last_error: Option<String>,
    /// When that error happened (RFC 3339).
    pub last_error_at: Option<String>,
    /// Calls and latency.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// Everything `GET /api/skills/NAME` shows.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SkillDetails {
    /// The summary fields.
    #[serde(flatten)]
    pub summary: SkillSummary,
    /// The serving version's manifest.
    pub manifest: Option<Manifest>,
    /// Effective deadline of a call, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Effective memory limit of a call (all its memories and tables), in
    /// bytes.
    pub memory_limit_bytes: Option<u64>,
    /// How many calls of it may run at once: its manifest's `concurrency`
    /// within its share of the instance pool.
    pub concurrency: Option<u32>,
    /// Whether the serving version's compiled artifact came from the cache.
    pub compiled_from_cache: Option<bool>,
    /// How long compiling the serving version (or loading it from the
    /// cache) took, in milliseconds.
    pub compile_ms: Option<f64>,
    /// Interfaces the serving version imports that its manifest grants
    /// nothing of: a warning, since their calls answer `denied`.
    pub ungranted_imports: Vec<String>,
    /// Versions kept for rollback, newest (serving) first.
    pub history: Vec<HistoryEntry>,
}

/// One entry of a skill's version history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// sha256 of the component.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was published (RFC 3339).
    pub published_at: String,
    /// `file`, `api` or `rollback`.
    pub source: String,
    /// Whether a sidecar manifest was part of the version.
    pub sidecar: bool,
    /// Whether it was compiled from a `workflow.md` (kept for rollback).
    pub workflow: bool,
}

/// How many skills a registry holds, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SkillCounts {
    /// Every skill.
    pub skills: usize,
    /// Those serving a version.
    pub serving: usize,
    /// Those not serving yet whose files are still being loaded.
    pub loading: usize,
}

/// What a successful deploy or rollback published.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Published {
    /// Skill name.
    pub name: String,
    /// sha256 of the serving component.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the compiled artifact came from the cache.
    pub from_cache: bool,
    /// How long compiling it (or loading it from the cache) took, in ms.
    pub compile_ms: f64,
    /// Interfaces it imports that its manifest grants nothing of.
    pub ungranted_imports: Vec<String>,
}

/// The skills directory and every loaded skill.
pub struct Registry {
    runtime: Arc<Runtime>,
    capabilities: Capabilities,
    config: RegistryConfig,
    dir: SkillsDir,
    slots: RwLock<BTreeMap<SkillName, Arc<Slot>>>,
    artifacts: Arc<ArtifactStore>,
    state: StateStore,
    /// The compile queue: loads that read, hash and compile at once.
    builds: Semaphore,
    /// Health checks (first instantiations) at once.
    starts: Semaphore,
    /// Set once every file found at start has been through the pipeline.
    ready: tokio::sync::watch::Sender<bool>,
    rescanning: AtomicBool,
    /// What besides a file decides whether it loads (the engine, the host's
    /// version and limits, `strict_imports`): part of the key a failure is
    /// kept under.
    fingerprint: String,
    /// Versions published since start.
    swaps: std::sync::atomic::AtomicU64,
    /// Loads that failed since start (a failure retried and repeated
    /// counts once).
    failed_loads: std::sync::atomic::AtomicU64,
}

impl Registry {
    /// Opens the directories and state and loads every skill in the skills
    /// directory before it returns. Skills that fail are listed with their
    /// error. A server uses [`Registry::new`] and [`Registry::load_all`]
    /// instead, so that it listens while skills load.
    pub async fn open(
        runtime: Arc<Runtime>,
        capabilities: Capabilities,
        config: RegistryConfig,
    ) -> Result<Arc<Self>, RegistryError> {
        let registry = Self::new(runtime, capabilities, config).await?;
        registry.load_all().await;
        Ok(registry)
    }

    /// Opens the directories and state and lists the skills directory; each
    /// skill found is `loading` until [`Registry::load_all`] (or the
    /// watcher) has been through its files. A skill whose files failed
    /// before, unchanged since, shows that failure at once.
    pub async fn new(
        runtime: Arc<Runtime>,
        capabilities: Capabilities,
        config: RegistryConfig,
    ) -> Result<Arc<Self>, RegistryError> {
        let opened = {
            let config = config.clone();
            blocking(move || open_storage(&config)).await?
        };
        let (dir, artifacts, state, failures, names) = opened;
        // Everything but the files that decides whether a skill loads: the
        // host's build, the engine and its limits, and whether an ungranted
        // import is refused.
        let fingerprint = {
            let seen = format!(
                "{}|{}|{:?}|strict_imports={}",
                env!("CARGO_PKG_VERSION"),
                runtime.compatibility_hash(),
                runtime.config(),
                config.strict_imports
            );
            sha256_hex(seen.as_bytes())[..16].to_string()
        };
        let registry = Arc::new(Registry {
            runtime,
            capabilities,
            builds: Semaphore::new(config.compile_concurrency.max(1)),
            starts: Semaphore::new(config.start_concurrency.max(1)),
            config,
            dir,
            slots: RwLock::new(BTreeMap::new()),
            artifacts: Arc::new(artifacts),
            state,
            ready: tokio::sync::watch::channel(false).0,
            rescanning: AtomicBool::new(false),
            fingerprint,
            swaps: Default::default(),
            failed_loads: Default::default(),
        });
        {
            let mut slots = write(&registry.slots);
            for name in names {
                let slot = Slot::new(name.clone());
                if let Some(row) = failures.get(name.as_str()) {
                    *lock(&slot.failure) = Failure {
                        error: Some(row.error.clone()),
                        at: Some(UNIX_EPOCH + Duration::from_millis(row.at_ms.max(0) as u64)),
                        key: Some(row.key.clone()),
                        transient: false,
                    };
                }
                slots.insert(name, Arc::new(slot));
            }
        }
        // Skills call skills through the registry; a weak reference, since
        // the registry owns the capabilities.
        let invoker: Arc<dyn SkillInvoker> = registry.clone();
        registry.capabilities.skills.set(Arc::downgrade(&invoker));
        Ok(registry)
    }

    /// Takes every skill found at start through the load pipeline, all at
    /// once within the queue's bounds; returns when each has loaded or
    /// failed, and marks the registry ready.
    pub async fn load_all(self: &Arc<Self>) {
        let started = Instant::now();
        let names: Vec<SkillName> = read(&self.slots).keys().cloned().collect();
        let count = names.len();
        let mut loads = tokio::task::JoinSet::new();
        for name in names {
            let registry = self.clone();
            loads.spawn(async move { registry.sync(&name).await });
        }
        while loads.join_next().await.is_some() {}
        self.ready.send_replace(true);
        let failed = self.list().iter().filter(|s| s.status == "failed").count();
        tracing::info!(
            skills = count,
            failed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            dir = %self.config.skills_dir.display(),
            "skills directory loaded"
        );
    }

    /// Whether every skill found at start has been through the pipeline.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Resolves once [`Registry::is_ready`].
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    /// Starts watching the skills directory; stops when the handle drops.
    pub fn watch(self: &Arc<Self>) -> Result<WatchHandle, RegistryError> {
        watch::start(self.clone())
    }

    /// The registry's configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The runtime skills run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The skill of that name, if loaded (or failed to load).
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        // Only valid names are ever in the map: an invalid one is not found.
        read(&self.slots).get(name).cloned()
    }

    /// The skill's slot with its load lock held, created when `create`.
    ///
    /// A concurrent operation may unload the slot while this one waits for
    /// the lock; then it starts again with the slot the map holds now, so no
    /// work lands in a slot nobody can see.
    async fn lock_slot(
        &self,
        name: &SkillName,
        create: bool,
    ) -> Option<(Arc<Slot>, tokio::sync::OwnedMutexGuard<()>)> {
        loop {
            let slot = if create {
                self.slot_or_create(name)
            } else {
                read(&self.slots).get(name).cloned()?
            };
            let guard = slot.load.clone().lock_owned().await;
            if self.is_current(&slot) {
                return Some((slot, guard));
            }
        }
    }

    async fn lock_existing(
        &self,
        name: &str,
    ) -> Option<(Arc<Slot>, tokio::sync::OwnedMutexGuard<()>)> {
        let name = SkillName::parse(name).ok()?;
        self.lock_slot(&name, false).await
    }

    fn slot_or_create(&self, name: &SkillName) -> Arc<Slot> {
        if let Some(slot) = read(&self.slots).get(name) {
            return slot.clone();
        }
        write(&self.slots)
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Slot::new(name.clone())))
            .clone()
    }

    fn is_current(&self, slot: &Arc<Slot>) -> bool {
        read(&self.slots)
            .get(&slot.name)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    /// Every skill, by name.
    pub fn list(&self) -> Vec<SkillSummary> {
        let slots: Vec<Arc<Slot>> = read(&self.slots).values().cloned().collect();
        slots.iter().map(|s| summary(s)).collect()
    }

    /// At most `limit` skills by name, after the skill named `after`.
    pub fn page(&self, after: Option<&str>, limit: usize) -> Vec<SkillSummary> {
        let slots: Vec<Arc<Slot>> = {
            let slots = read(&self.slots);
            let range = match after {
                Some(after) => slots
                    .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(limit)
                    .map(|(_, s)| s.clone())
                    .collect(),
                None => slots.values().take(limit).cloned().collect(),
            };
            range
        };
        slots.iter().map(|s| summary(s)).collect()
    }

    /// Every skill's counters and latency histogram, by name.
    pub fn metrics(&self) -> Vec<SkillMetrics> {
        read(&self.slots)
            .values()
            .map(|slot| slot.stats.metrics(slot.name.as_str(), slot.calls.running()))
            .collect()
    }

    /// Versions published, and loads failed, since start.
    pub fn load_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.swaps.load(Relaxed), self.failed_loads.load(Relaxed))
    }

    /// How many skills there are, how many of them serve a version, and
    /// how many are still loading (cheap: no statistics are computed).
    pub fn counts(&self) -> SkillCounts {
        let slots = read(&self.slots);
        let mut counts = SkillCounts {
            skills: slots.len(),
            ..SkillCounts::default()
        };
        for slot in slots.values() {
            if slot.active.load().is_some() {
                counts.serving += 1;
            } else if slot.loading.load(Ordering::Acquire) {
                counts.loading += 1;
            }
        }
        counts
    }

    /// One skill with its manifest and version history.
    pub async fn describe(&self, name: &str) -> Result<SkillDetails, RegistryError> {
        let slot = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let history = self
            .state
            .history(slot.name.as_str(), self.config.history_limit)
            .await
            .map_err(|e| RegistryError::Storage(e.to_string()))?
            .into_iter()
            .map(|row| HistoryEntry {
                sha256: row.sha256,
                size: row.size,
                published_at: rfc3339(
                    UNIX_EPOCH + Duration::from_millis(row.published_at_ms as u64),
                ),
                source: row.source,
                sidecar: row.sidecar.is_some(),
                workflow: row.workflow.is_some(),
            })
            .collect();
        let active = slot.active();
        Ok(SkillDetails {
            summary: summary(&slot),
            manifest: active.as_ref().map(|v| v.resolved.manifest.clone()),
            deadline_ms: active
                .as_ref()
                .map(|v| v.resolved.limits.deadline.as_millis() as u64),
            memory_limit_bytes: active.as_ref().map(|v| v.resolved.limits.memory_bytes),
            concurrency: active.as_ref().map(|v| v.concurrency),
            compiled_from_cache: active.as_ref().map(|v| v.from_cache),
            compile_ms: active.as_ref().map(|v| millis(v.compile_time)),
            ungranted_imports: active
                .as_ref()
                .map(|v| v.ungranted.clone())
                .unwrap_or_default(),
            history,
        })
    }
}

fn summary(slot: &Slot) -> SkillSummary {
    let active = slot.active();
    let failure = lock(&slot.failure);
    let status = match (&active, &failure.error) {
        (Some(_), None) => "ready",
        (Some(_), Some(_)) => "degraded",
        (None, None) if slot.loading.load(Ordering::Acquire) => "loading",
        (None, _) => "failed",
    };
    SkillSummary {
        name: slot.name.to_string(),
        status,
        sha256: active.as_ref().map(|v| v.sha256.clone()),
        loaded_at: active.as_ref().map(|v| rfc3339(v.loaded_at)),
        version: active
            .as_ref()
            .and_then(|v| v.resolved.manifest.version.clone()),
        description: active
            .as_ref()
            .and_then(|v| v.resolved.manifest.description.clone()),
        last_error: failure.error.clone(),
        last_error_at: failure.at.map(rfc3339),
        stats: slot.stats.snapshot(),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum FileKind {
    Wasm,
    Workflow,
    Sidecar,
}

/// Opens the skills directory, the data directory and its stores, reads
/// the recorded load failures and lists the skills. Blocking.
#[allow(clippy::type_complexity)]
fn open_storage(
    config: &RegistryConfig,
) -> Result<
    (
        SkillsDir,
        ArtifactStore,
        StateStore,
        HashMap<String, FailureRow>,
        Vec<SkillName>,
    ),
    RegistryError,
> {
    let storage = |what: &str, path: &Path, e: std::io::Error| {
        RegistryError::Storage(format!("cannot open {what} `{}`: {e}", path.display()))
    };
    let dir = SkillsDir::open(&config.skills_dir)
        .map_err(|e| storage("the skills directory", &config.skills_dir, e))?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| storage("the data directory", &config.data_dir, e))?;
    let artifacts = ArtifactStore::open(&config.data_dir)
        .map_err(|e| storage("the artifact store in", &config.data_dir, e))?;
    let state = StateStore::open(&config.data_dir.join("state.db"))
        .map_err(|e| RegistryError::Storage(e.to_string()))?;
    let names = skill_names(&dir.entries().map_err(RegistryError::Storage)?);
    let mut failures = HashMap::new();
    for row in state
        .load_failures()
        .map_err(|e| RegistryError::Storage(e.to_string()))?
    {
        if names
            .binary_search_by(|n| n.as_str().cmp(&row.name))
            .is_ok()
        {
            failures.insert(row.name.clone(), row);
        } else {
            // The file went while the host was down: nothing to remember.
            state
                .forget_failure_now(&row.name)
                .map_err(|e| RegistryError::Storage(e.to_string()))?;
        }
    }
    Ok((dir, artifacts, state, failures, names))
}

/// Runs blocking work (the file system, SQLite, the artifact store) on the
/// blocking pool.
async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a blocking registry task was cancelled: {e}"),
    }
}

/// The skills among the entries of the skills directory (those with a main
/// file), sorted.
fn skill_names(entries: &[String]) -> Vec<SkillName> {
    let mut names: Vec<SkillName> = entries
        .iter()
        .filter_map(|file| skill_file_name(Path::new(file)))
        .filter(|(_, kind)| *kind != FileKind::Sidecar)
        .map(|(name, _)| name)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `NAME.wasm`, `NAME.workflow.md` or `NAME.toml` with a valid name;
/// dotfiles (temporary files) and everything else are not skill files.
fn skill_file_name(path: &Path) -> Option<(SkillName, FileKind)> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let (stem, kind) = if let Some(stem) = file.strip_suffix(".wasm") {
        (stem, FileKind::Wasm)
    } else if let Some(stem) = file.strip_suffix(crate::workflow::SUFFIX) {
        (stem, FileKind::Workflow)
    } else {
        (file.strip_suffix(".toml")?, FileKind::Sidecar)
    };
    SkillName::parse(stem).ok().map(|name| (name, kind))
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// A duration in milliseconds, to a tenth.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_skill_files() {
        let p = |s: &str| skill_file_name(Path::new(s));
        assert_eq!(p("/d/echo.wasm").unwrap().1, FileKind::Wasm);
        assert_eq!(p("/d/echo.toml").unwrap().1, FileKind::Sidecar);
        assert_eq!(p("/d/esc.workflow.md").unwrap().1, FileKind::Workflow);
        assert!(p("/d/notes.md").is_none());
        assert!(p("/d/.echo.wasm.1.0.tmp").is_none());
        assert!(p("/d/.echo.wasm").is_none());
        assert!(p("/d/Echo.wasm").is_none());
        assert!(p("/d/echo.wat").is_none());
        assert!(p("/d/notes.md").is_none());
    }
}
