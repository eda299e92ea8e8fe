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
///
/// The temporary file is created new (`O_CREAT | O_EXCL`, which never
/// follows a link) under a name no one can guess, so a link planted in the
/// skills directory under a temporary name cannot turn the write into one
/// of another file. The rename replaces `path` itself, a link there
/// included, never what a link points at.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempts = 0;
    let (tmp, mut file) = loop {
        // A leading dot keeps the skills-directory watcher from reading it.
        let tmp = dir.join(format!(".{file_name}.{:016x}.tmp", unguessable()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => {
                attempts += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_data()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// 64 bits no one outside the process can predict: the standard library's
/// per-process random hash keys, mixed with a counter and the clock.
fn unguessable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(NEXT.fetch_add(1, Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::write_atomically;

    #[test]
    fn a_write_replaces_a_link_and_never_what_it_points_at() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let path = dir.path().join("echo.wasm");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        // No temporary file is left behind.
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty());
    }
}
