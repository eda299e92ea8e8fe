//! The load pipeline: from a file in the skills directory (or an upload)
//! to a runnable, health-checked version that serves. Look at the files
//! (without reading an unchanged one), read and hash them, compile (or
//! take the cached artifact), link, check the grants, health-check, then
//! publish; a failure is recorded and keeps the serving version.

use super::*;

impl Registry {
    /// Looks at the skill's three files without reading them.
    pub(super) async fn observe(&self, name: &SkillName) -> Observed {
        let (dir, name) = (self.dir.clone(), name.clone());
        let limit = self.config.max_file_bytes;
        blocking(move || observe_files(&dir, &name, limit)).await
    }

    /// Names of the skills whose main file is in the skills directory.
    pub(super) async fn names_on_disk(&self) -> Result<Vec<SkillName>, RegistryError> {
        let dir = self.dir.clone();
        let entries = blocking(move || dir.entries())
            .await
            .map_err(RegistryError::Storage)?;
        Ok(skill_names(&entries))
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

    pub(super) async fn sync_locked(
        &self,
        slot: &Arc<Slot>,
        queued: tokio::sync::SemaphorePermit<'_>,
    ) {
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
    pub(super) async fn fail(
        &self,
        slot: &Slot,
        key: Option<String>,
        error: String,
        transient: bool,
    ) {
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
            self.failed_loads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    pub(super) async fn clear_failure(&self, slot: &Slot) {
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
    pub(super) async fn build_version(
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
                kpi: resolved.kpi.clone(),
                http: resolved.http.clone(),
                llm: resolved.llm,
                shadow: None,
            };
            if let Some(refusal) = unserved_import(&info.imports) {
                return Err(refusal);
            }
            if let Some(refusal) = refused_import(&info.imports, &context) {
                return Err(refusal);
            }
            let ungranted = ungranted_imports(&info.imports, &context);
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
    pub(super) async fn publish(
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
        self.swaps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

    pub(super) async fn forget_blobs(&self, shas: Vec<String>) {
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

    pub(super) async fn unload(&self, slot: &Arc<Slot>) {
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
    pub(super) async fn queue(&self) -> Result<tokio::sync::SemaphorePermit<'_>, RegistryError> {
        self.builds
            .acquire()
            .await
            .map_err(|_| RegistryError::Storage("the host is shutting down".into()))
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

    pub(super) async fn rescan_once(&self) {
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

/// Why a file did not become a version.
pub(super) struct LoadFailure {
    pub(super) message: String,
    pub(super) transient: bool,
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
pub(super) enum Seen {
    Missing,
    File(Stamp),
    /// There, but not to be read (a link that leaves the directory, a FIFO,
    /// a file over the size limit): why.
    Refused(String),
}

/// `NAME.wasm`, `NAME.workflow.md` and `NAME.toml`, as last looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Observed {
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

/// A skill's files, read and hashed.
pub(super) struct Inputs {
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

/// Looks at a skill's three files. Blocking.
pub(super) fn observe_files(dir: &SkillsDir, name: &SkillName, max_file_bytes: u64) -> Observed {
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
pub(super) fn read_inputs(
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
pub(super) fn read_text(
    dir: &SkillsDir,
    file: &str,
    limit: u64,
) -> Result<Option<String>, LoadFailure> {
    match dir.read(file, limit).map_err(changed_or_refused)? {
        None => Ok(None),
        Some((bytes, _)) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| LoadFailure::from(format!("`{file}` is not UTF-8 text"))),
    }
}

/// A file that changed while it was being read is tried again; anything
/// else waits for the file to change.
pub(super) fn changed_or_refused(message: String) -> LoadFailure {
    LoadFailure {
        transient: message.contains("changed while"),
        message,
    }
}

/// Compiles a workflow off the async threads into a component and its
/// sha256; the error is every diagnostic, rendered with the file's name,
/// line and column.
pub(super) async fn compile_workflow(
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
