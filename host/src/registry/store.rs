//! On-disk stores of the registry, both content-addressed by sha256:
//!
//! - `blobs/<sha256>.wasm`: the component bytes of every version in the
//!   history, so a rollback can restore a version whose file is gone;
//! - `cache/<sha256>-<engine>.cwasm`: compiled artifacts, keyed also by the
//!   engine's compatibility hash, so a restart or a rollback skips Cranelift.
//!
//! Files are written to a temporary name and renamed, so a crash leaves either
//! the old state or the new one, never a torn file.

use crate::runtime::{Runtime, RuntimeError};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;

/// The registry's blob and artifact directories.
pub struct ArtifactStore {
    blobs: PathBuf,
    cache: PathBuf,
}

impl ArtifactStore {
    /// Creates the directories under `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let blobs = data_dir.join("blobs");
        let cache = data_dir.join("cache");
        std::fs::create_dir_all(&blobs)?;
        std::fs::create_dir_all(&cache)?;
        Ok(ArtifactStore { blobs, cache })
    }

    fn blob_path(&self, sha: &str) -> PathBuf {
        self.blobs.join(format!("{sha}.wasm"))
    }

    fn artifact_path(&self, sha: &str, runtime: &Runtime) -> PathBuf {
        self.cache
            .join(format!("{sha}-{}.cwasm", runtime.compatibility_hash()))
    }

    /// Keeps the component bytes of a version (no-op when already kept).
    pub fn put_blob(&self, sha: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.blob_path(sha);
        if path.exists() {
            return Ok(());
        }
        write_atomically(&path, bytes)
    }

    /// The component bytes of a kept version.
    pub fn blob(&self, sha: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.blob_path(sha))
    }

    /// Compiles `bytes` or loads the cached artifact for `sha`.
    ///
    /// Returns the component and whether the cache answered. Blocking and
    /// CPU-heavy on a miss: call it from a blocking thread.
    pub fn compile(
        &self,
        runtime: &Runtime,
        sha: &str,
        bytes: &[u8],
    ) -> Result<(Component, bool), RuntimeError> {
        let path = self.artifact_path(sha, runtime);
        if path.exists() {
            // SAFETY: only this host writes into the cache directory, always
            // through `serialize` and an atomic rename, and the file name
            // carries the engine's compatibility hash. Wasmtime re-checks the
            // header and refuses an incompatible artifact.
            match unsafe { runtime.deserialize_file(&path) } {
                Ok(component) => return Ok((component, true)),
                Err(err) => {
                    tracing::warn!(path = %path.display(), %err, "dropping an unreadable cached artifact");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = runtime.compile(bytes)?;
        match runtime.serialize(&component) {
            Ok(artifact) => {
                if let Err(err) = write_atomically(&path, &artifact) {
                    tracing::warn!(path = %path.display(), %err, "cannot write the artifact cache");
                }
            }
            Err(err) => tracing::warn!(%err, "cannot serialize a compiled component"),
        }
        Ok((component, false))
    }

    /// Forgets a version nobody references any more: its blob and artifacts.
    pub fn remove(&self, sha: &str) {
        let _ = std::fs::remove_file(self.blob_path(sha));
        if let Ok(entries) = std::fs::read_dir(&self.cache) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(sha) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, after an fsync of the data.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A leading dot keeps the skills-directory watcher from reading it.
    let tmp = dir.join(format!(
        ".{file_name}.{}.{}.tmp",
        std::process::id(),
        unique_suffix()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn unique_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
