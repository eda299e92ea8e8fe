//! The skills directory: what is loaded, which version serves, and how a new
//! version replaces the old one.
//!
//! `NAME.wasm` in the skills directory is skill `NAME` (with an optional
//! sidecar manifest `NAME.toml`); so is `NAME.workflow.md`, which the
//! workflow compiler turns into a component first. A file becomes a
//! [`Version`] through one pipeline, whether it arrived by the watcher, at
//! start-up, through `PUT /api/skills/NAME` or by a rollback:
//!
//! (compile the workflow) → sha256 → inspect (is it a component? its embedded manifest) → merge the
//! manifest → compile (artifact cache hit by sha256 and engine hash) →
//! resolve imports and check the `run` export → instantiate once → publish.
//!
//! Publishing is one atomic pointer store ([`ArcSwapOption`]): a call clones
//! the `Arc` of the version it starts on and finishes on it, whatever is
//! published meanwhile. A failure at any step leaves the serving version in
//! place and is kept as the skill's `last_error`.

mod inspect;
mod manifest;
mod name;
mod stats;
mod store;
mod watch;

pub use inspect::{inspect_component, ComponentInfo, MANIFEST_SECTION};
pub use manifest::{Manifest, ResolvedManifest};
pub use name::{SkillName, MAX_NAME_LEN};
pub use stats::StatsSnapshot;
pub use store::write_atomically;
pub use watch::WatchHandle;

use crate::capabilities::skills::{SkillCallError, SkillInvoker};
use crate::capabilities::{check_imports, Capabilities, SkillContext};
use crate::runtime::{CallContext, InvokeError, Runtime, SkillPre, SkillState};
use crate::state::{StateStore, VersionRow};
use arc_swap::ArcSwapOption;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stats::Stats;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store::ArtifactStore;
use tracing::Instrument;

/// Where the registry lives and how it watches.
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
}

impl RegistryConfig {
    /// A configuration with the default history, debounce and rescan period.
    pub fn new(skills_dir: PathBuf, data_dir: PathBuf) -> Self {
        RegistryConfig {
            skills_dir,
            data_dir,
            history_limit: 5,
            debounce: Duration::from_millis(50),
            rescan_interval: Duration::from_secs(2),
        }
    }
}

/// What went wrong with a registry operation.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name is not a valid skill name.
    #[error("{0}")]
    InvalidName(String),
    /// No skill of that name is loaded.
    #[error("no skill named `{0}` is loaded")]
    NotFound(String),
    /// The skill exists but no version of it loads.
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
    /// Its manifest, limits and schema.
    pub resolved: ResolvedManifest,
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
    /// File stamps of the last sync, so a rescan skips unchanged files.
    seen: Mutex<Option<Stamp>>,
}

#[derive(Default)]
struct Failure {
    error: Option<String>,
    at: Option<SystemTime>,
    /// (sha256, sidecar) of the input that failed, so it is not retried
    /// until the file changes.
    key: Option<(String, Option<String>)>,
    /// The failure may pass by itself (no free instance slot): the rescan
    /// retries it.
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

/// File stamps of `NAME.wasm`, `NAME.workflow.md` and `NAME.toml`.
type Stamp = [Option<(SystemTime, u64)>; 3];

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
        }
    }

    /// The version serving now, if any.
    pub fn active(&self) -> Option<Arc<Version>> {
        self.active.load_full()
    }

    fn fail(&self, key: (String, Option<String>), error: String, transient: bool) {
        let mut f = lock(&self.failure);
        f.error = Some(error);
        f.at = Some(SystemTime::now());
        f.key = Some(key);
        f.transient = transient;
    }

    fn clear_failure(&self) {
        *lock(&self.failure) = Failure::default();
    }
}

/// The summary of a skill that `GET /api/skills` lists.
#[derive(Debug, Clone, Serialize)]
pub struct SkillSummary {
    /// Skill name.
    pub name: String,
    /// `ready`, `degraded` (serving, but the newest file failed) or `failed`
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
    /// Effective memory limit of a call, in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Whether the serving version's compiled artifact came from the cache.
    pub compiled_from_cache: Option<bool>,
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
}

/// The skills directory and every loaded skill.
pub struct Registry {
    runtime: Arc<Runtime>,
    capabilities: Capabilities,
    config: RegistryConfig,
    slots: RwLock<BTreeMap<SkillName, Arc<Slot>>>,
    artifacts: Arc<ArtifactStore>,
    state: StateStore,
}

impl Registry {
    /// Opens the directories and state, and loads every skill in the
    /// skills directory. Skills that fail are listed with their error.
    pub async fn open(
        runtime: Arc<Runtime>,
        capabilities: Capabilities,
        config: RegistryConfig,
    ) -> Result<Arc<Self>, RegistryError> {
        let storage = |what: &str, path: &Path, e: std::io::Error| {
            RegistryError::Storage(format!("cannot create {what} `{}`: {e}", path.display()))
        };
        std::fs::create_dir_all(&config.skills_dir)
            .map_err(|e| storage("the skills directory", &config.skills_dir, e))?;
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| storage("the data directory", &config.data_dir, e))?;
        let artifacts = ArtifactStore::open(&config.data_dir)
            .map_err(|e| storage("the artifact store in", &config.data_dir, e))?;
        let state = StateStore::open(&config.data_dir.join("state.db"))
            .map_err(|e| RegistryError::Storage(e.to_string()))?;
        let registry = Arc::new(Registry {
            runtime,
            capabilities,
            config,
            slots: RwLock::new(BTreeMap::new()),
            artifacts: Arc::new(artifacts),
            state,
        });
        // Skills call skills through the registry; a weak reference, since
        // the registry owns the capabilities.
        let invoker: Arc<dyn SkillInvoker> = registry.clone();
        registry.capabilities.skills.set(Arc::downgrade(&invoker));
        let started = Instant::now();
        let names = registry.names_on_disk()?;
        for name in &names {
            registry.sync(name).await;
        }
        tracing::info!(
            skills = names.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            dir = %registry.config.skills_dir.display(),
            "skills directory loaded"
        );
        Ok(registry)
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

    fn wasm_path(&self, name: &SkillName) -> PathBuf {
        self.config.skills_dir.join(format!("{name}.wasm"))
    }

    fn sidecar_path(&self, name: &SkillName) -> PathBuf {
        self.config.skills_dir.join(format!("{name}.toml"))
    }

    fn workflow_path(&self, name: &SkillName) -> PathBuf {
        self.config
            .skills_dir
            .join(format!("{name}{}", crate::workflow::SUFFIX))
    }

    fn stamp(&self, name: &SkillName) -> Stamp {
        [
            file_stamp(&self.wasm_path(name)),
            file_stamp(&self.workflow_path(name)),
            file_stamp(&self.sidecar_path(name)),
        ]
    }

    /// Reads the skill's main file: the component, or the workflow compiled
    /// into one. `Ok(None)`: neither file is there.
    fn read_main_file(&self, name: &SkillName) -> Result<Option<MainFile>, String> {
        let (wasm, workflow) = (self.wasm_path(name), self.workflow_path(name));
        let read = |path: &Path| match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
        };
        match (read(&wasm)?, read(&workflow)?) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(format!(
                "both `{name}.wasm` and `{name}{}` are in the skills directory; remove one",
                crate::workflow::SUFFIX
            )),
            (Some(bytes), None) => Ok(Some(MainFile {
                bytes,
                workflow: None,
            })),
            (None, Some(source)) => {
                let source = String::from_utf8(source)
                    .map_err(|_| format!("`{}` is not UTF-8 text", workflow.display()))?;
                Ok(Some(MainFile {
                    bytes: Vec::new(),
                    workflow: Some(source),
                }))
            }
        }
    }

    /// Names of the skills whose `NAME.wasm` is in the skills directory.
    fn names_on_disk(&self) -> Result<Vec<SkillName>, RegistryError> {
        let entries = std::fs::read_dir(&self.config.skills_dir).map_err(|e| {
            RegistryError::Storage(format!(
                "cannot read the skills directory `{}`: {e}",
                self.config.skills_dir.display()
            ))
        })?;
        let mut names: Vec<SkillName> = entries
            .flatten()
            .filter_map(|e| skill_file_name(&e.path()))
            .filter(|(_, kind)| *kind != FileKind::Sidecar)
            .map(|(name, _)| name)
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
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
    /// changed file, unloads a deleted one, does nothing for an unchanged one.
    pub async fn sync(&self, name: &SkillName) {
        let stamp = self.stamp(name);
        if stamp[0].is_none() && stamp[1].is_none() && self.get(name.as_str()).is_none() {
            return;
        }
        let (slot, _guard) = self.lock_slot(name, true).await.expect("created");
        let stamp = self.stamp(name);
        let main = match self.read_main_file(name) {
            Ok(Some(main)) => main,
            Ok(None) => {
                self.unload(&slot);
                return;
            }
            Err(msg) => {
                // Retried by every rescan; say it once, not every 2 s.
                if lock(&slot.failure).error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(skill = %name, error = %msg, "skill file unusable");
                }
                slot.fail((String::new(), None), msg, true);
                return;
            }
        };
        *lock(&slot.seen) = Some(stamp);
        let sidecar = match self.read_sidecar(name) {
            Ok(sidecar) => sidecar,
            Err(msg) => {
                if lock(&slot.failure).error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(skill = %name, error = %msg, "sidecar manifest unreadable");
                }
                slot.fail((String::new(), None), msg, true);
                return;
            }
        };
        let (bytes, workflow) = match main.workflow {
            None => (main.bytes, None),
            Some(source) => {
                let key = (sha256_hex(source.as_bytes()), sidecar.clone());
                {
                    let failure = lock(&slot.failure);
                    if failure.key.as_ref() == Some(&key) && !failure.transient {
                        return;
                    }
                }
                match compile_workflow(name, source.clone()).await {
                    Ok(bytes) => (bytes, Some(source)),
                    Err(msg) => {
                        let serving = slot.active().map(|v| v.sha256[..12].to_string());
                        tracing::warn!(skill = %name, serving = ?serving, "workflow does not compile; the serving version stays");
                        slot.fail(key, msg, false);
                        return;
                    }
                }
            }
        };
        let sha = sha256_hex(&bytes);
        if let Some(active) = slot.active() {
            if active.sha256 == sha && active.sidecar == sidecar {
                slot.clear_failure();
                return;
            }
        }
        let key = (sha.clone(), sidecar.clone());
        {
            let failure = lock(&slot.failure);
            if failure.key.as_ref() == Some(&key) && !failure.transient {
                return;
            }
        }
        let span = tracing::info_span!("swap", skill = %name, sha256 = %&sha[..12]);
        async {
            match self
                .build_version(&slot, bytes.clone(), sha, sidecar, workflow, Source::File)
                .await
            {
                Ok(version) => {
                    if let Err(e) = self.publish(&slot, version, &bytes, true) {
                        tracing::error!(error = %e, "cannot record the new version");
                        slot.fail(key, e.to_string(), true);
                    }
                }
                Err(failure) => {
                    let serving = slot.active().map(|v| v.sha256[..12].to_string());
                    tracing::warn!(error = %failure.message, serving = ?serving, "skill file rejected; the serving version stays");
                    slot.fail(key, failure.message, failure.transient);
                }
            }
        }
        .instrument(span)
        .await
    }

    fn read_sidecar(&self, name: &SkillName) -> Result<Option<String>, String> {
        let path = self.sidecar_path(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read `{}`: {e}", path.display())),
        }
    }

    /// The load pipeline: from bytes to a runnable, health-checked version.
    async fn build_version(
        &self,
        slot: &Slot,
        bytes: Vec<u8>,
        sha: String,
        sidecar: Option<String>,
        workflow: Option<String>,
        source: Source,
    ) -> Result<Version, LoadFailure> {
        let started = Instant::now();
        let info = inspect_component(&bytes)?;
        let resolved = Manifest::merge(info.manifest.as_deref(), sidecar.as_deref())?
            .resolve(slot.name.as_str(), self.runtime.config())?;
        let context = SkillContext {
            skill: slot.name.as_str().to_string(),
            capabilities: self.capabilities.clone(),
            memory: resolved.memory.clone(),
            board: resolved.board.clone(),
            fleet: resolved.fleet.clone(),
            skills: resolved.skills.clone(),
        };
        check_imports(&info.imports, &context)?;
        let context: CallContext = Arc::new(context);
        let size = bytes.len() as u64;
        let (runtime, artifacts, sha_c) =
            (self.runtime.clone(), self.artifacts.clone(), sha.clone());
        let (pre, from_cache) = tokio::task::spawn_blocking(move || {
            let (component, from_cache) = artifacts
                .compile(&runtime, &sha_c, &bytes)
                .map_err(|e| e.to_string())?;
            let pre = runtime.prepare(&component).map_err(|e| e.to_string())?;
            Ok::<_, String>((pre, from_cache))
        })
        .await
        .map_err(|e| format!("the compiler thread failed: {e}"))??;
        self.runtime
            .health_check(&pre, &slot.tag, &resolved.limits, Some(&context))
            .await
            .map_err(|e| LoadFailure {
                transient: matches!(e, InvokeError::Busy(_)),
                message: format!("the component does not start: {e}"),
            })?;
        tracing::debug!(
            from_cache,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "version built"
        );
        Ok(Version {
            sha256: sha,
            size,
            loaded_at: SystemTime::now(),
            source,
            from_cache,
            resolved,
            sidecar,
            workflow,
            pre,
            context,
        })
    }

    /// Records the version (unless it is already the newest in the history)
    /// and swaps it in.
    fn publish(
        &self,
        slot: &Slot,
        version: Version,
        bytes: &[u8],
        record: bool,
    ) -> Result<Published, RegistryError> {
        let storage = |e: String| RegistryError::Storage(e);
        self.artifacts
            .put_blob(&version.sha256, bytes)
            .map_err(|e| storage(format!("cannot keep the component bytes: {e}")))?;
        if record {
            let latest = self
                .state
                .latest(slot.name.as_str())
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
                    .push_version(&row, self.config.history_limit)
                    .map_err(|e| storage(e.to_string()))?;
                for sha in orphans {
                    self.artifacts.remove(&sha);
                }
            }
        }
        let published = Published {
            name: slot.name.to_string(),
            sha256: version.sha256.clone(),
            size: version.size,
            from_cache: version.from_cache,
        };
        let previous = slot.active.swap(Some(Arc::new(version)));
        slot.clear_failure();
        tracing::info!(
            skill = %slot.name,
            sha256 = %published.sha256,
            previous = ?previous.map(|p| p.sha256[..12].to_string()),
            from_cache = published.from_cache,
            "skill version published"
        );
        Ok(published)
    }

    fn is_current(&self, slot: &Arc<Slot>) -> bool {
        read(&self.slots)
            .get(&slot.name)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
    }

    fn unload(&self, slot: &Arc<Slot>) {
        let mut slots = write(&self.slots);
        if slots.get(&slot.name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&slot.name);
        }
        drop(slots);
        if slot.active.swap(None).is_some() {
            tracing::info!(skill = %slot.name, "skill unloaded");
        }
    }

    /// Validates `bytes` as a new version of `name`, writes it into the skills
    /// directory atomically and publishes it. A refused component changes
    /// nothing.
    pub async fn deploy(&self, name: &str, bytes: Vec<u8>) -> Result<Published, RegistryError> {
        let name = SkillName::parse(name).map_err(RegistryError::InvalidName)?;
        let (slot, _guard) = self.lock_slot(&name, true).await.expect("created");
        let result = async {
            let sidecar = self.read_sidecar(&name).map_err(RegistryError::Storage)?;
            let sha = sha256_hex(&bytes);
            let version = self
                .build_version(&slot, bytes.clone(), sha, sidecar, None, Source::Api)
                .await?;
            self.write_main_file(&name, &bytes, None)?;
            *lock(&slot.seen) = Some(self.stamp(&name));
            self.publish(&slot, version, &bytes, true)
        }
        .await;
        if result.is_err() && slot.active().is_none() && lock(&slot.failure).error.is_none() {
            // A refused first upload leaves no trace of a skill.
            self.unload(&slot);
        }
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
        let (slot, _guard) = self.lock_slot(&name, true).await.expect("created");
        let result = async {
            let sidecar = self.read_sidecar(&name).map_err(RegistryError::Storage)?;
            let bytes = compile_workflow(&name, source.clone())
                .await
                .map_err(RegistryError::InvalidWorkflow)?;
            let sha = sha256_hex(&bytes);
            let version = self
                .build_version(
                    &slot,
                    bytes.clone(),
                    sha,
                    sidecar,
                    Some(source.clone()),
                    Source::Api,
                )
                .await?;
            self.write_main_file(&name, &bytes, Some(&source))?;
            *lock(&slot.seen) = Some(self.stamp(&name));
            self.publish(&slot, version, &bytes, true)
        }
        .await;
        if result.is_err() && slot.active().is_none() && lock(&slot.failure).error.is_none() {
            self.unload(&slot);
        }
        result
    }

    /// Makes the skills directory hold this version: `NAME.workflow.md` for
    /// a workflow, else `NAME.wasm`; the other file goes.
    fn write_main_file(
        &self,
        name: &SkillName,
        bytes: &[u8],
        workflow: Option<&str>,
    ) -> Result<(), RegistryError> {
        let (write, other, content) = match workflow {
            Some(source) => (
                self.workflow_path(name),
                self.wasm_path(name),
                source.as_bytes(),
            ),
            None => (self.wasm_path(name), self.workflow_path(name), bytes),
        };
        write_atomically(&write, content).map_err(|e| {
            RegistryError::Storage(format!("cannot write into the skills directory: {e}"))
        })?;
        match std::fs::remove_file(&other) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RegistryError::Storage(
                format!("cannot delete `{}`: {e}", other.display()),
            )),
            _ => Ok(()),
        }
    }

    /// Goes back to the previous version in the history and makes the skills
    /// directory match it.
    pub async fn rollback(&self, name: &str) -> Result<Published, RegistryError> {
        let (slot, _guard) = self
            .lock_existing(name)
            .await
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let storage = |e: String| RegistryError::Storage(e);
        let history = self
            .state
            .history(slot.name.as_str(), self.config.history_limit)
            .map_err(|e| storage(e.to_string()))?;
        let (Some(current), Some(target)) = (history.first(), history.get(1)) else {
            return Err(RegistryError::NothingToRollBack(name.to_string()));
        };
        let bytes = self.artifacts.blob(&target.sha256).map_err(|e| {
            storage(format!(
                "the bytes of version {} are gone: {e}",
                target.sha256
            ))
        })?;
        let version = self
            .build_version(
                &slot,
                bytes.clone(),
                target.sha256.clone(),
                target.sidecar.clone(),
                target.workflow.clone(),
                Source::Rollback,
            )
            .await
            .map_err(|mut failure| {
                failure.message =
                    format!("the previous version no longer loads: {}", failure.message);
                RegistryError::from(failure)
            })?;
        self.write_main_file(&slot.name, &bytes, target.workflow.as_deref())?;
        let sidecar_path = self.sidecar_path(&slot.name);
        match &target.sidecar {
            Some(text) => write_atomically(&sidecar_path, text.as_bytes()),
            None => match std::fs::remove_file(&sidecar_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
        }
        .map_err(|e| storage(format!("cannot restore the sidecar manifest: {e}")))?;
        *lock(&slot.seen) = Some(self.stamp(&slot.name));
        if let Some(orphan) = self
            .state
            .remove_version(current.id)
            .map_err(|e| storage(e.to_string()))?
        {
            self.artifacts.remove(&orphan);
        }
        self.publish(&slot, version, &bytes, false)
    }

    /// Deletes the skill's files from the skills directory and unloads it.
    /// Its version history stays in the state database.
    pub async fn remove(&self, name: &str) -> Result<(), RegistryError> {
        let (slot, _guard) = self
            .lock_existing(name)
            .await
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        for path in [
            self.wasm_path(&slot.name),
            self.workflow_path(&slot.name),
            self.sidecar_path(&slot.name),
        ] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RegistryError::Storage(format!(
                        "cannot delete `{}`: {e}",
                        path.display()
                    )))
                }
                _ => {}
            }
        }
        self.unload(&slot);
        Ok(())
    }

    /// Calls skill `name` with JSON text `input`.
    pub async fn invoke(&self, name: &str, input: &str) -> Result<String, RegistryError> {
        let slot = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let Some(version) = slot.active() else {
            let reason = lock(&slot.failure)
                .error
                .clone()
                .unwrap_or_else(|| "it is still loading".into());
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
                    if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("at `{at}`: {e}")
                    }
                })
                .collect();
            if !problems.is_empty() {
                return Err(RegistryError::InvalidInput(problems.join("; ")));
            }
        }
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

    /// One skill with its manifest and version history.
    pub fn describe(&self, name: &str) -> Result<SkillDetails, RegistryError> {
        let slot = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let history = self
            .state
            .history(slot.name.as_str(), self.config.history_limit)
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
            compiled_from_cache: active.as_ref().map(|v| v.from_cache),
            history,
        })
    }

    /// Re-syncs every skill whose files changed since its last sync, and
    /// unloads skills whose file is gone. Backs up the watcher.
    pub async fn rescan(&self) {
        let Ok(on_disk) = self.names_on_disk() else {
            return;
        };
        let loaded: Vec<Arc<Slot>> = read(&self.slots).values().cloned().collect();
        for slot in &loaded {
            if !on_disk.contains(&slot.name) {
                self.sync(&slot.name).await;
            }
        }
        for name in &on_disk {
            let stamp = self.stamp(name);
            let changed = match self.get(name.as_str()) {
                Some(slot) => *lock(&slot.seen) != Some(stamp) || lock(&slot.failure).transient,
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

/// A skill's main file, read.
struct MainFile {
    /// The component (empty for a workflow: compiled later).
    bytes: Vec<u8>,
    /// The workflow source, when the skill is a `NAME.workflow.md`.
    workflow: Option<String>,
}

/// Compiles a workflow off the async threads; the error is every
/// diagnostic, rendered with the file's name, line and column.
async fn compile_workflow(name: &SkillName, source: String) -> Result<Vec<u8>, String> {
    let name = name.to_string();
    tokio::task::spawn_blocking(
        move || match crate::workflow::compile(&source, Some(&name)) {
            Ok(compiled) => Ok(compiled.component),
            Err(crate::workflow::CompileError::Invalid(diags)) => {
                Err(diags.render(&format!("{name}{}", crate::workflow::SUFFIX), &source))
            }
            Err(e) => Err(e.to_string()),
        },
    )
    .await
    .map_err(|e| format!("the workflow compiler failed: {e}"))?
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

fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
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
