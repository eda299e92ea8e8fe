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
//! limit: [`files`]) → (compile the workflow) → sha256 → inspect (is it a
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
//! ([`share`]), so one skill cannot take the pool from the others.
//!
//! Nothing here touches the file system or SQLite on an async worker: every
//! such call goes to the blocking pool.

mod files;
mod share;
mod stats;
mod store;
mod watch;

pub use stats::StatsSnapshot;
pub use store::write_atomically;
pub use watch::WatchHandle;

use crate::capabilities::skills::{SkillCallError, SkillInvoker};
use crate::capabilities::{
    ungranted_imports, ungranted_message, unserved_import, Capabilities, SkillContext,
};
use crate::runtime::bounded::{cut, cut_owned, MAX_MESSAGE_BYTES};
use crate::runtime::{CallContext, InvokeError, Runtime, SkillPre, SkillState};
use crate::capabilities::grants::ResolvedManifest;
use crate::skill::{inspect_component, Manifest, SkillName};
use crate::skill::sha256_hex;
use crate::state::{FailureRow, StateStore, VersionRow};
use arc_swap::ArcSwapOption;
use files::{SkillsDir, Stamp};
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

/// Why a file did not become a version.
struct LoadFailure {
    message: String,
    transient: bool,
}

impl From<String> for LoadFailure {
    fn from(message: String) -> Self {
        LoadFailure {
            message,
            transient: false,
        }
    }
}

impl From<LoadFailure> for RegistryError {
    fn from(failure: LoadFailure) -> Self {
        if failure.transient {
            RegistryError::Invoke(InvokeError::Busy(failure.message))
        } else {
            RegistryError::Rejected(failure.message)
        }
    }
}

/// What one of a skill's files looked like, without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Missing,
    File(Stamp),
    /// There, but not to be read (a link that leaves the directory, a FIFO,
    /// a file over the size limit): why.
    Refused(String),
}

/// `NAME.wasm`, `NAME.workflow.md` and `NAME.toml`, as last looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Observed {
    wasm: Seen,
    workflow: Seen,
    sidecar: Seen,
}

impl Observed {
    fn has_main_file(&self) -> bool {
        self.wasm != Seen::Missing || self.workflow != Seen::Missing
    }

    /// The first refusal, if a file must not be read.
    fn refusal(&self) -> Option<&str> {
        [&self.wasm, &self.workflow, &self.sidecar]
            .into_iter()
            .find_map(|seen| match seen {
                Seen::Refused(why) => Some(why.as_str()),
                _ => None,
            })
    }
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SkillCounts {
    /// Every skill.
    pub skills: usize,
    /// Those serving a version.
    pub serving: usize,
    /// Those not serving yet whose files are still being loaded.
    pub loading: usize,
}

/// What a successful deploy or rollback published.
#[derive(Debug, Clone, Serialize)]
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
    /// version and limits): part of the key a failure is kept under.
    fingerprint: String,
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
        let fingerprint = {
            let seen = format!(
                "{}|{}|{:?}",
                env!("CARGO_PKG_VERSION"),
                runtime.compatibility_hash(),
                runtime.config()
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

    /// Looks at the skill's three files without reading them.
    async fn observe(&self, name: &SkillName) -> Observed {
        let (dir, name) = (self.dir.clone(), name.clone());
        let limit = self.config.max_file_bytes;
        blocking(move || observe_files(&dir, &name, limit)).await
    }

    /// Names of the skills whose main file is in the skills directory.
    async fn names_on_disk(&self) -> Result<Vec<SkillName>, RegistryError> {
        let dir = self.dir.clone();
        let entries = blocking(move || dir.entries())
            .await
            .map_err(RegistryError::Storage)?;
        Ok(skill_names(&entries))
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

    /// Brings skill `name` in line with the skills directory: loads a new or
    /// changed file, unloads a deleted one, does nothing for an unchanged
    /// one (which is not even read).
    ///
    /// A sync takes its place in the compile queue before the skill's lock,
    /// as deploys and rollbacks do, so that a delete of a skill whose file
    /// waits in the queue is not held up by it. Syncs of one skill coalesce:
    /// while one waits, another has nothing to add, since the waiting one
    /// looks at the files only once it runs.
    pub async fn sync(&self, name: &SkillName) {
        let existing = self.get(name.as_str());
        let observed = self.observe(name).await;
        match &existing {
            None if !observed.has_main_file() => return,
            Some(slot) if slot.is_unchanged(&observed) => return,
            Some(slot) if slot.queued.swap(true, Ordering::AcqRel) => return,
            _ => {}
        }
        let Ok(queued) = self.builds.acquire().await else {
            return;
        };
        let locked = self.lock_slot(name, true).await;
        if let Some(slot) = &existing {
            slot.queued.store(false, Ordering::Release);
        }
        let Some((slot, _guard)) = locked else {
            return;
        };
        slot.queued.store(false, Ordering::Release);
        self.sync_locked(&slot, queued).await;
        slot.loading.store(false, Ordering::Release);
    }

    async fn sync_locked(&self, slot: &Arc<Slot>, queued: tokio::sync::SemaphorePermit<'_>) {
        let name = &slot.name;
        let observed = self.observe(name).await;
        // An unchanged file is never read again (unless what stopped it may
        // pass by itself).
        if slot.is_unchanged(&observed) {
            return;
        }
        if !observed.has_main_file() {
            self.unload(slot).await;
            return;
        }
        if let Some(why) = observed.refusal() {
            let why = why.to_string();
            *lock(&slot.seen) = Some(observed);
            self.fail(slot, None, why, false).await;
            return;
        }
        if observed.wasm != Seen::Missing && observed.workflow != Seen::Missing {
            *lock(&slot.seen) = Some(observed);
            let both = format!(
                "both `{name}.wasm` and `{name}{}` are in the skills directory; remove one",
                crate::workflow::SUFFIX
            );
            self.fail(slot, None, both, false).await;
            return;
        }
        let inputs = {
            let (dir, name) = (self.dir.clone(), name.clone());
            let (limit, fingerprint) = (self.config.max_file_bytes, self.fingerprint.clone());
            blocking(move || read_inputs(&dir, &name, limit, &fingerprint)).await
        };
        let inputs = match inputs {
            Ok(inputs) => inputs,
            Err(failure) => {
                // A file that changed while it was read is read again by the
                // rescan; anything else waits for the file to change.
                if !failure.transient {
                    *lock(&slot.seen) = Some(observed);
                }
                self.fail(slot, None, failure.message, failure.transient)
                    .await;
                return;
            }
        };
        *lock(&slot.seen) = Some(observed);
        let key = inputs.key.clone();
        if slot.failed_before(&key) {
            return;
        }
        let (bytes, sha, workflow) = match inputs.workflow {
            None => (inputs.main, inputs.main_sha, None),
            Some(source) => match compile_workflow(name, source.clone()).await {
                Ok((bytes, sha)) => (bytes, sha, Some(source)),
                Err(failure) => {
                    let serving = slot.active().map(|v| v.sha256[..12].to_string());
                    tracing::warn!(skill = %name, serving = ?serving, "workflow does not compile; the serving version stays");
                    self.fail(slot, Some(key), failure.message, failure.transient)
                        .await;
                    return;
                }
            },
        };
        if let Some(active) = slot.active() {
            if active.sha256 == sha && active.sidecar == inputs.sidecar {
                self.clear_failure(slot).await;
                return;
            }
        }
        let span = tracing::info_span!("swap", skill = %name, sha256 = %&sha[..12]);
        async {
            let built = self
                .build_version(
                    slot,
                    bytes.clone(),
                    sha,
                    inputs.sidecar,
                    workflow,
                    Source::File,
                    queued,
                )
                .await;
            match built {
                Ok(version) => {
                    if let Err(e) = self.publish(slot, version, bytes, true).await {
                        tracing::error!(error = %e, "cannot record the new version");
                        // Looked at again by the rescan.
                        *lock(&slot.seen) = None;
                        self.fail(slot, None, e.to_string(), true).await;
                    }
                }
                Err(failure) => {
                    let serving = slot.active().map(|v| v.sha256[..12].to_string());
                    tracing::warn!(error = %failure.message, serving = ?serving, "skill file rejected; the serving version stays");
                    self.fail(slot, Some(key), failure.message, failure.transient)
                        .await;
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Records why the skill's newest input did not load; a lasting failure
    /// with a `key` is also kept in the state database.
    async fn fail(&self, slot: &Slot, key: Option<String>, error: String, transient: bool) {
        let error = cut_owned(error, MAX_MESSAGE_BYTES);
        let at = SystemTime::now();
        let (repeated, was_kept) = {
            let mut f = lock(&slot.failure);
            let repeated = f.error.as_deref() == Some(error.as_str());
            let was_kept = f.key.is_some() && !f.transient;
            *f = Failure {
                error: Some(error.clone()),
                at: Some(at),
                key: key.clone(),
                transient,
            };
            (repeated, was_kept)
        };
        // Retried by every rescan; say it once, not every 2 s.
        if !repeated {
            tracing::warn!(skill = %slot.name, error = %error, transient, "skill file not loaded");
        }
        let persisted = match (&key, transient) {
            (Some(key), false) => {
                let row = FailureRow {
                    name: slot.name.to_string(),
                    key: key.clone(),
                    error,
                    at_ms: unix_ms(at),
                };
                self.state.record_failure(row).await
            }
            _ if was_kept => self.state.clear_failure(slot.name.as_str()).await,
            _ => Ok(()),
        };
        if let Err(e) = persisted {
            tracing::warn!(skill = %slot.name, error = %e, "cannot record the load failure");
        }
    }

    async fn clear_failure(&self, slot: &Slot) {
        let was_kept = {
            let mut failure = lock(&slot.failure);
            let was_kept = failure.key.is_some() && !failure.transient;
            *failure = Failure::default();
            was_kept
        };
        if was_kept {
            if let Err(e) = self.state.clear_failure(slot.name.as_str()).await {
                tracing::warn!(skill = %slot.name, error = %e, "cannot clear the load failure");
            }
        }
    }

    /// The load pipeline: from bytes to a runnable, health-checked version.
    /// `queued` is the place in the compile queue, given up once compiled.
    /// Parsing, hashing, the manifest and the compile run on the blocking
    /// pool; only the health check runs here.
    #[allow(clippy::too_many_arguments)]
    async fn build_version(
        &self,
        slot: &Slot,
        bytes: Bytes,
        sha: String,
        sidecar: Option<String>,
        workflow: Option<String>,
        source: Source,
        queued: tokio::sync::SemaphorePermit<'_>,
    ) -> Result<Version, LoadFailure> {
        let started = Instant::now();
        let (runtime, artifacts) = (self.runtime.clone(), self.artifacts.clone());
        let (capabilities, name) = (self.capabilities.clone(), slot.name.clone());
        let (sha_c, sidecar_c) = (sha.clone(), sidecar.clone());
        let size = bytes.len() as u64;
        let strict = self.config.strict_imports;
        let prepared = tokio::task::spawn_blocking(move || {
            let info = inspect_component(&bytes)?;
            let resolved = Manifest::merge(info.manifest.as_deref(), sidecar_c.as_deref())?
                .resolve(name.as_str(), runtime.config())?;
            let context = SkillContext {
                skill: name.as_str().to_string(),
                capabilities,
                memory: resolved.memory.clone(),
                board: resolved.board.clone(),
                fleet: resolved.fleet.clone(),
                skills: resolved.skills.clone(),
                http: resolved.http.clone(),
            };
            if let Some(refusal) = unserved_import(&info.imports) {
                return Err(refusal);
            }
            let ungranted = ungranted_imports(&info.imports, &context)?;
            if strict && !ungranted.is_empty() {
                return Err(format!(
                    "{} (this host runs with --strict-imports)",
                    ungranted_message(&ungranted[0])
                ));
            }
            let compiling = Instant::now();
            let (component, from_cache) = artifacts
                .compile(&runtime, &sha_c, &bytes)
                .map_err(|e| e.to_string())?;
            let compile_time = compiling.elapsed();
            let needs = share::CallNeeds::of(&component, &info, runtime.config());
            let pre = runtime.prepare(&component).map_err(|e| e.to_string())?;
            Ok::<_, String>((
                resolved,
                context,
                pre,
                from_cache,
                compile_time,
                ungranted,
                needs,
            ))
        })
        .await
        .map_err(|e| LoadFailure {
            message: format!("the compiler thread failed: {e}"),
            transient: true,
        })?;
        let (resolved, context, pre, from_cache, compile_time, ungranted, needs) = prepared?;
        let context: CallContext = Arc::new(context);
        drop(queued);
        let concurrency = share::concurrency(
            &needs,
            resolved.manifest.concurrency,
            &self.runtime.config().pool(),
        );
        let _start = self
            .starts
            .acquire()
            .await
            .map_err(|_| "the host is shutting down".to_string())?;
        // A full instance pool (other skills' calls, or other health checks
        // at start) is waited for as a call waits for its turn; only then
        // is the load a (transient) failure, retried by the rescan.
        let waiting = Instant::now();
        loop {
            match self
                .runtime
                .health_check(&pre, &slot.tag, &resolved.limits, Some(&context))
                .await
            {
                Ok(()) => break,
                Err(InvokeError::Busy(_)) if waiting.elapsed() < QUEUE_WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(LoadFailure {
                        transient: matches!(e, InvokeError::Busy(_)),
                        message: format!("the component does not start: {e}"),
                    })
                }
            }
        }
        tracing::debug!(
            from_cache,
            concurrency,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "version built"
        );
        Ok(Version {
            sha256: sha,
            size,
            loaded_at: SystemTime::now(),
            source,
            from_cache,
            compile_time,
            ungranted,
            resolved,
            concurrency,
            sidecar,
            workflow,
            pre,
            context,
        })
    }

    /// Records the version (unless it is already the newest in the history)
    /// and swaps it in.
    async fn publish(
        &self,
        slot: &Slot,
        version: Version,
        bytes: Bytes,
        record: bool,
    ) -> Result<Published, RegistryError> {
        let storage = |e: String| RegistryError::Storage(e);
        {
            let (artifacts, sha) = (self.artifacts.clone(), version.sha256.clone());
            blocking(move || artifacts.put_blob(&sha, &bytes))
                .await
                .map_err(|e| storage(format!("cannot keep the component bytes: {e}")))?;
        }
        if record {
            let latest = self
                .state
                .latest(slot.name.as_str())
                .await
                .map_err(|e| storage(e.to_string()))?;
            let same = latest.as_ref().is_some_and(|r| {
                r.sha256 == version.sha256
                    && r.sidecar == version.sidecar
                    && r.workflow == version.workflow
            });
            if !same {
                let row = VersionRow {
                    id: 0,
                    name: slot.name.to_string(),
                    sha256: version.sha256.clone(),
                    size: version.size,
                    sidecar: version.sidecar.clone(),
                    published_at_ms: unix_ms(version.loaded_at),
                    source: version.source.as_str().to_string(),
                    workflow: version.workflow.clone(),
                };
                let (_, orphans) = self
                    .state
                    .push_version(row, self.config.history_limit)
                    .await
                    .map_err(|e| storage(e.to_string()))?;
                self.forget_blobs(orphans).await;
            }
        }
        let published = Published {
            name: slot.name.to_string(),
            sha256: version.sha256.clone(),
            size: version.size,
            from_cache: version.from_cache,
            compile_ms: millis(version.compile_time),
            ungranted_imports: version.ungranted.clone(),
        };
        for import in &version.ungranted {
            tracing::warn!(
                skill = %slot.name,
                "{}; its calls of it answer `denied`",
                ungranted_message(import)
            );
        }
        // The skill's gate follows the version it serves; calls already
        // inside count against the new limit.
        slot.calls.set_limit(version.concurrency);
        let previous = slot.active.swap(Some(Arc::new(version)));
        self.clear_failure(slot).await;
        tracing::info!(
            skill = %slot.name,
            sha256 = %published.sha256,
            previous = ?previous.map(|p| p.sha256[..12].to_string()),
            from_cache = published.from_cache,
            compile_ms = published.compile_ms,
            "skill version published"
        );
        Ok(published)
    }

    async fn forget_blobs(&self, shas: Vec<String>) {
        if shas.is_empty() {
            return;
        }
        let artifacts = self.artifacts.clone();
        blocking(move || {
            for sha in shas {
                artifacts.remove(&sha);
            }
        })
        .await;
    }

    fn is_current(&self, slot: &Arc<Slot>) -> bool {
        read(&self.slots)
            .get(&slot.name)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    async fn unload(&self, slot: &Arc<Slot>) {
        {
            let mut slots = write(&self.slots);
            if slots.get(&slot.name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                slots.remove(&slot.name);
            }
        }
        if slot.active.swap(None).is_some() {
            tracing::info!(skill = %slot.name, "skill unloaded");
        }
        self.clear_failure(slot).await;
    }

    /// A place in the compile queue.
    async fn queue(&self) -> Result<tokio::sync::SemaphorePermit<'_>, RegistryError> {
        self.builds
            .acquire()
            .await
            .map_err(|_| RegistryError::Storage("the host is shutting down".into()))
    }

    /// Validates `bytes` as a new version of `name`, writes it into the skills
    /// directory atomically and publishes it. A refused component changes
    /// nothing.
    pub async fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Published, RegistryError> {
        let name = SkillName::parse(name).map_err(RegistryError::InvalidName)?;
        if bytes.len() as u64 > self.config.max_file_bytes {
            return Err(RegistryError::Rejected(format!(
                "the component is {} bytes; a skill may be at most {} bytes (--max-skill-bytes)",
                bytes.len(),
                self.config.max_file_bytes
            )));
        }
        let queued = self.queue().await?;
        let (slot, _guard) = self.lock_slot(&name, true).await.expect("created");
        let result = async {
            let sidecar = self.read_sidecar(&name).await?;
            let bytes: Bytes = Arc::new(bytes);
            let sha = {
                let bytes = bytes.clone();
                blocking(move || sha256_hex(&bytes)).await
            };
            let version = self
                .build_version(
                    &slot,
                    bytes.clone(),
                    sha,
                    sidecar,
                    None,
                    Source::Api,
                    queued,
                )
                .await?;
            self.write_and_publish(&slot, version, bytes, None).await
        }
        .await;
        self.after_deploy(&slot, &result).await;
        result
    }

    /// Compiles `source` as a new version of workflow skill `name`, writes
    /// it into the skills directory as `NAME.workflow.md` and publishes it.
    /// A workflow that does not compile changes nothing; the error lists
    /// every problem with its line and column.
    pub async fn deploy_workflow(
        &self,
        name: &str,
        source: String,
    ) -> Result<Published, RegistryError> {
        let name = SkillName::parse(name).map_err(RegistryError::InvalidName)?;
        let queued = self.queue().await?;
        let (slot, _guard) = self.lock_slot(&name, true).await.expect("created");
        let result = async {
            let sidecar = self.read_sidecar(&name).await?;
            let (bytes, sha) = compile_workflow(&name, source.clone())
                .await
                .map_err(|f| RegistryError::InvalidWorkflow(f.message))?;
            let version = self
                .build_version(
                    &slot,
                    bytes.clone(),
                    sha,
                    sidecar,
                    Some(source.clone()),
                    Source::Api,
                    queued,
                )
                .await?;
            self.write_and_publish(&slot, version, bytes, Some(&source))
                .await
        }
        .await;
        self.after_deploy(&slot, &result).await;
        result
    }

    /// Writes a deployed version into the skills directory, then publishes
    /// it. When publishing fails after the write, the directory holds the
    /// new file while the old version serves: the rescan is told to look at
    /// it again, so the two come back in line.
    async fn write_and_publish(
        &self,
        slot: &Slot,
        version: Version,
        bytes: Bytes,
        workflow: Option<&str>,
    ) -> Result<Published, RegistryError> {
        self.write_main_file(&slot.name, &bytes, workflow).await?;
        *lock(&slot.seen) = Some(self.observe(&slot.name).await);
        match self.publish(slot, version, bytes, true).await {
            Ok(published) => Ok(published),
            Err(e) => {
                *lock(&slot.seen) = None;
                self.fail(slot, None, e.to_string(), true).await;
                Err(e)
            }
        }
    }

    async fn after_deploy(&self, slot: &Arc<Slot>, result: &Result<Published, RegistryError>) {
        slot.loading.store(false, Ordering::Release);
        if result.is_err() && slot.active().is_none() && lock(&slot.failure).error.is_none() {
            // A refused first upload leaves no trace of a skill.
            self.unload(slot).await;
        }
    }

    /// The sidecar manifest of `name`, if there is one; a sidecar that may
    /// not be read is an error.
    async fn read_sidecar(&self, name: &SkillName) -> Result<Option<String>, RegistryError> {
        let (dir, file) = (self.dir.clone(), format!("{name}.toml"));
        blocking(move || read_text(&dir, &file, MAX_SIDECAR_BYTES))
            .await
            .map_err(|f| {
                RegistryError::Rejected(format!(
                    "the skill's sidecar manifest cannot be used: {}",
                    f.message
                ))
            })
    }

    /// Makes the skills directory hold this version: `NAME.workflow.md` for
    /// a workflow, else `NAME.wasm`; the other file goes.
    async fn write_main_file(
        &self,
        name: &SkillName,
        bytes: &Bytes,
        workflow: Option<&str>,
    ) -> Result<(), RegistryError> {
        let dir = self.config.skills_dir.clone();
        let (write, other) = match workflow {
            Some(_) => (
                format!("{name}{}", crate::workflow::SUFFIX),
                format!("{name}.wasm"),
            ),
            None => (
                format!("{name}.wasm"),
                format!("{name}{}", crate::workflow::SUFFIX),
            ),
        };
        let content: Bytes = match workflow {
            Some(source) => Arc::new(source.as_bytes().to_vec()),
            None => bytes.clone(),
        };
        blocking(move || {
            write_atomically(&dir.join(&write), &content).map_err(|e| {
                RegistryError::Storage(format!("cannot write into the skills directory: {e}"))
            })?;
            remove_if_there(&dir.join(&other))
        })
        .await
    }

    /// Goes back to the previous version in the history and makes the skills
    /// directory match it. The newest entry of the history is dropped only
    /// once the previous version serves.
    pub async fn rollback(&self, name: &str) -> Result<Published, RegistryError> {
        let queued = self.queue().await?;
        let (slot, _guard) = self
            .lock_existing(name)
            .await
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let storage = |e: String| RegistryError::Storage(e);
        let history = self
            .state
            .history(slot.name.as_str(), self.config.history_limit)
            .await
            .map_err(|e| storage(e.to_string()))?;
        let (Some(current), Some(target)) = (history.first(), history.get(1)) else {
            return Err(RegistryError::NothingToRollBack(name.to_string()));
        };
        let bytes: Bytes = {
            let (artifacts, sha) = (self.artifacts.clone(), target.sha256.clone());
            Arc::new(blocking(move || artifacts.blob(&sha)).await.map_err(|e| {
                storage(format!(
                    "the bytes of version {} are gone: {e}",
                    target.sha256
                ))
            })?)
        };
        let version = self
            .build_version(
                &slot,
                bytes.clone(),
                target.sha256.clone(),
                target.sidecar.clone(),
                target.workflow.clone(),
                Source::Rollback,
                queued,
            )
            .await
            .map_err(|mut failure| {
                failure.message =
                    format!("the previous version no longer loads: {}", failure.message);
                RegistryError::from(failure)
            })?;
        self.write_main_file(&slot.name, &bytes, target.workflow.as_deref())
            .await?;
        let sidecar_path = self.config.skills_dir.join(format!("{}.toml", slot.name));
        let sidecar = target.sidecar.clone();
        blocking(move || match sidecar {
            Some(text) => write_atomically(&sidecar_path, text.as_bytes())
                .map_err(|e| storage(format!("cannot restore the sidecar manifest: {e}"))),
            None => remove_if_there(&sidecar_path),
        })
        .await?;
        *lock(&slot.seen) = Some(self.observe(&slot.name).await);
        let published = match self.publish(&slot, version, bytes, false).await {
            Ok(published) => published,
            Err(e) => {
                *lock(&slot.seen) = None;
                self.fail(&slot, None, e.to_string(), true).await;
                return Err(e);
            }
        };
        match self.state.remove_version(current.id).await {
            Ok(Some(orphan)) => self.forget_blobs(vec![orphan]).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(skill = %slot.name, error = %e, "rolled back, but the newer version stays in the history")
            }
        }
        Ok(published)
    }

    /// Deletes the skill's files from the skills directory and unloads it.
    /// Its version history stays in the state database.
    pub async fn remove(&self, name: &str) -> Result<(), RegistryError> {
        let (slot, _guard) = self
            .lock_existing(name)
            .await
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let dir = self.config.skills_dir.clone();
        let name = slot.name.clone();
        blocking(move || {
            for file in [
                format!("{name}.wasm"),
                format!("{name}{}", crate::workflow::SUFFIX),
                format!("{name}.toml"),
            ] {
                remove_if_there(&dir.join(file))?;
            }
            Ok::<_, RegistryError>(())
        })
        .await?;
        self.unload(&slot).await;
        Ok(())
    }

    /// Calls skill `name` with JSON text `input`.
    pub async fn invoke(&self, name: &str, input: &str) -> Result<String, RegistryError> {
        let slot = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let Some(version) = slot.active() else {
            let reason = match lock(&slot.failure).error.clone() {
                Some(error) => error,
                None => "it is still loading".into(),
            };
            return Err(RegistryError::Unavailable {
                name: name.to_string(),
                reason,
            });
        };
        if let Some(schema) = &version.resolved.schema {
            let value: serde_json::Value = serde_json::from_str(input)
                .map_err(|e| RegistryError::InvalidInput(e.to_string()))?;
            let problems: Vec<String> = schema
                .iter_errors(&value)
                .take(5)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    let e = cut_owned(e.to_string(), 512);
                    if at.is_empty() {
                        e
                    } else {
                        format!("at `{}`: {e}", cut(&at, 256))
                    }
                })
                .collect();
            if !problems.is_empty() {
                return Err(RegistryError::InvalidInput(problems.join("; ")));
            }
        }
        // The skill's share of the pool: wait a moment for a place, then
        // answer busy rather than queue without bound.
        let Some(_call) = slot.calls.enter(QUEUE_WAIT).await else {
            return Err(RegistryError::Invoke(InvokeError::Busy(format!(
                "skill `{name}` is running its limit of {} calls at once (its \
                 `concurrency`, within its share of the instance pool); try again shortly",
                version.concurrency
            ))));
        };
        let started = Instant::now();
        let result = self
            .runtime
            .invoke(
                &version.pre,
                &slot.tag,
                &version.resolved.limits,
                Some(&version.context),
                input,
            )
            .await;
        let result = match result {
            Ok(output) => match serde_json::from_str::<serde::de::IgnoredAny>(&output) {
                Ok(_) => Ok(output),
                Err(e) => Err(RegistryError::InvalidOutput(e.to_string())),
            },
            Err(e) => Err(RegistryError::Invoke(e)),
        };
        let elapsed = started.elapsed();
        slot.stats.record(elapsed, result.is_ok());
        match &result {
            Ok(_) => {
                tracing::debug!(skill = %name, elapsed_us = elapsed.as_micros() as u64, "invoked")
            }
            Err(e) => {
                tracing::info!(skill = %name, elapsed_us = elapsed.as_micros() as u64, error = %e, "invocation failed")
            }
        }
        result
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

    /// Re-syncs every skill whose files changed since its last sync, and
    /// unloads skills whose file is gone. Backs up the watcher; one rescan
    /// runs at a time.
    pub async fn rescan(&self) {
        if self.rescanning.swap(true, Ordering::AcqRel) {
            return;
        }
        self.rescan_once().await;
        self.rescanning.store(false, Ordering::Release);
    }

    async fn rescan_once(&self) {
        let Ok(on_disk) = self.names_on_disk().await else {
            return;
        };
        let loaded: Vec<Arc<Slot>> = read(&self.slots).values().cloned().collect();
        for slot in &loaded {
            if on_disk.binary_search(&slot.name).is_err() {
                self.sync(&slot.name).await;
            }
        }
        for name in &on_disk {
            let changed = match self.get(name.as_str()) {
                Some(slot) => {
                    // A slot being loaded is the loader's business.
                    if slot.load.try_lock().is_err() {
                        continue;
                    }
                    let observed = self.observe(name).await;
                    lock(&slot.seen).as_ref() != Some(&observed) || lock(&slot.failure).transient
                }
                None => true,
            };
            if changed {
                self.sync(name).await;
            }
        }
    }
}

/// A skill calling a skill: the same path as an HTTP invoke.
#[async_trait::async_trait]
impl SkillInvoker for Registry {
    async fn invoke_skill(&self, name: &str, input: &str) -> Result<String, SkillCallError> {
        self.invoke(name, input).await.map_err(|e| match e {
            RegistryError::NotFound(_)
            | RegistryError::InvalidName(_)
            | RegistryError::Unavailable { .. } => SkillCallError::NotFound(e.to_string()),
            RegistryError::InvalidInput(_) => SkillCallError::Invalid(e.to_string()),
            RegistryError::Invoke(InvokeError::Skill { code, message }) => {
                SkillCallError::Failed { code, message }
            }
            other => SkillCallError::Unavailable(other.to_string()),
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

/// A skill's files, read and hashed.
struct Inputs {
    /// The main file's bytes: the component, or the workflow's source.
    main: Bytes,
    /// sha256 of `main` (for a component, its version's sha256).
    main_sha: String,
    /// The workflow source, when the skill is a `NAME.workflow.md`.
    workflow: Option<String>,
    /// The sidecar manifest.
    sidecar: Option<String>,
    /// What identifies this input when it fails: the hashes of the main
    /// file and of the sidecar, and the host's fingerprint.
    key: String,
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

/// Looks at a skill's three files. Blocking.
fn observe_files(dir: &SkillsDir, name: &SkillName, max_file_bytes: u64) -> Observed {
    let look = |file: String, limit: u64| match dir.look(&file) {
        Ok(None) => Seen::Missing,
        Ok(Some(found)) if found.size > limit => Seen::Refused(format!(
            "`{file}` is {} bytes; it may be at most {limit} bytes{}",
            found.size,
            if limit == max_file_bytes {
                " (--max-skill-bytes)"
            } else {
                ""
            }
        )),
        Ok(Some(found)) => Seen::File(found.stamp),
        Err(why) => Seen::Refused(why),
    };
    Observed {
        wasm: look(format!("{name}.wasm"), max_file_bytes),
        workflow: look(
            format!("{name}{}", crate::workflow::SUFFIX),
            crate::workflow::MAX_SOURCE_BYTES as u64,
        ),
        sidecar: look(format!("{name}.toml"), MAX_SIDECAR_BYTES),
    }
}

/// Reads a skill's main file and sidecar, and hashes them. Blocking.
fn read_inputs(
    dir: &SkillsDir,
    name: &SkillName,
    max_file_bytes: u64,
    fingerprint: &str,
) -> Result<Inputs, LoadFailure> {
    let sidecar = read_text(dir, &format!("{name}.toml"), MAX_SIDECAR_BYTES)?;
    let wasm = dir
        .read(&format!("{name}.wasm"), max_file_bytes)
        .map_err(changed_or_refused)?;
    let (main, workflow): (Vec<u8>, Option<String>) = match wasm {
        Some((bytes, _)) => (bytes, None),
        None => {
            let file = format!("{name}{}", crate::workflow::SUFFIX);
            match read_text(dir, &file, crate::workflow::MAX_SOURCE_BYTES as u64)? {
                Some(source) => (source.clone().into_bytes(), Some(source)),
                // Gone since it was looked at: the watcher reports the removal.
                None => {
                    return Err(LoadFailure {
                        message: format!("`{name}.wasm` and `{file}` went away while being read"),
                        transient: true,
                    })
                }
            }
        }
    };
    let main_sha = sha256_hex(&main);
    let sidecar_sha = sidecar
        .as_deref()
        .map_or_else(|| "-".to_string(), |s| sha256_hex(s.as_bytes()));
    Ok(Inputs {
        key: format!("{main_sha}:{sidecar_sha}:{fingerprint}"),
        main: Arc::new(main),
        main_sha,
        workflow,
        sidecar,
    })
}

/// Reads a text file of the skills directory. Blocking.
fn read_text(dir: &SkillsDir, file: &str, limit: u64) -> Result<Option<String>, LoadFailure> {
    match dir.read(file, limit).map_err(changed_or_refused)? {
        None => Ok(None),
        Some((bytes, _)) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| LoadFailure::from(format!("`{file}` is not UTF-8 text"))),
    }
}

/// A file that changed while it was being read is tried again; anything
/// else waits for the file to change.
fn changed_or_refused(message: String) -> LoadFailure {
    LoadFailure {
        transient: message.contains("changed while"),
        message,
    }
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

/// Deletes a file of the skills directory; one that is not there is fine.
fn remove_if_there(path: &Path) -> Result<(), RegistryError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RegistryError::Storage(format!(
            "cannot delete `{}`: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// Compiles a workflow off the async threads into a component and its
/// sha256; the error is every diagnostic, rendered with the file's name,
/// line and column.
async fn compile_workflow(
    name: &SkillName,
    source: String,
) -> Result<(Bytes, String), LoadFailure> {
    let name = name.to_string();
    tokio::task::spawn_blocking(
        move || match crate::workflow::compile(&source, Some(&name)) {
            Ok(compiled) => {
                let sha = sha256_hex(&compiled.component);
                Ok((Arc::new(compiled.component), sha))
            }
            Err(crate::workflow::CompileError::Invalid(diags)) => Err(LoadFailure::from(
                diags.render(&format!("{name}{}", crate::workflow::SUFFIX), &source),
            )),
            Err(e) => Err(LoadFailure::from(e.to_string())),
        },
    )
    .await
    .map_err(|e| LoadFailure {
        message: format!("the workflow compiler failed: {e}"),
        transient: true,
    })?
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
