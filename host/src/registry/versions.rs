//! Versions arriving by the API and going back: deploy (a component or a
//! workflow, validated before its file is written), rollback to the
//! previous version of the history, and remove.

use super::*;

impl Registry {
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
    pub(super) async fn write_and_publish(
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

    pub(super) async fn after_deploy(
        &self,
        slot: &Arc<Slot>,
        result: &Result<Published, RegistryError>,
    ) {
        slot.loading.store(false, Ordering::Release);
        if result.is_err() && slot.active().is_none() && lock(&slot.failure).error.is_none() {
            // A refused first upload leaves no trace of a skill.
            self.unload(slot).await;
        }
    }

    /// The sidecar manifest of `name`, if there is one; a sidecar that may
    /// not be read is an error.
    pub(super) async fn read_sidecar(
        &self,
        name: &SkillName,
    ) -> Result<Option<String>, RegistryError> {
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
    pub(super) async fn write_main_file(
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
}

/// Deletes a file of the skills directory; one that is not there is fine.
pub(super) fn remove_if_there(path: &Path) -> Result<(), RegistryError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RegistryError::Storage(format!(
            "cannot delete `{}`: {e}",
            path.display()
        ))),
        _ => Ok(()),
    }
}
