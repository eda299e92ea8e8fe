//! The skills directory, read as an untrusted place.
//!
//! Whoever can write the skills directory chooses what is in it: a symbolic
//! link to `/proc/self/environ`, a FIFO that blocks whoever opens it, a link
//! to `/dev/zero`, a file of any size. The registry reads it only through
//! [`SkillsDir`], which guarantees:
//!
//! - only regular files are read, and only when they resolve inside the
//!   skills directory: a link that leaves it, or that points at a directory,
//!   a device, a FIFO or a socket, is refused without being opened, with an
//!   error that names the link and nothing of what it points at;
//! - a file is opened non-blocking and without following links, and the
//!   opened file is checked to be the one that was looked at, so a file
//!   swapped for a FIFO between the look and the open cannot block;
//! - no file is read past the size limit: the limit is checked while
//!   reading, so a file that grows meanwhile is still cut off;
//! - a file is recognised by its [`Stamp`] (device, inode, size, change
//!   times), so an unchanged file is never read again.
//!
//! Every function here blocks on the file system: call it from a blocking
//! thread, never from an async worker.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    fn of(meta: &Metadata) -> Self {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The skills directory.
#[derive(Debug, Clone)]
pub struct SkillsDir {
    /// The directory as configured (what messages name).
    shown: PathBuf,
    /// The directory with every link resolved (what files must be in).
    root: PathBuf,
}

/// A file that is there and may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Its stamp.
    pub stamp: Stamp,
    /// Its size in bytes.
    pub size: u64,
}

impl SkillsDir {
    /// Creates the directory if needed and resolves it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(SkillsDir {
            shown: dir.to_path_buf(),
            root: std::fs::canonicalize(dir)?,
        })
    }

    /// The names of the entries of the directory (not read, not followed).
    pub fn entries(&self) -> Result<Vec<String>, String> {
        let entries = std::fs::read_dir(&self.root).map_err(|e| {
            format!(
                "cannot read the skills directory `{}`: {e}",
                self.shown.display()
            )
        })?;
        Ok(entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }

    /// Looks at `file` (a name in the directory) without opening it:
    /// `Ok(None)` when it is not there, an error when it is there but must
    /// not be read.
    pub fn look(&self, file: &str) -> Result<Option<Found>, String> {
        Ok(self.resolve(file)?.map(|(_, meta)| Found {
            stamp: Stamp::of(&meta),
            size: meta.len(),
        }))
    }

    /// Reads `file`, at most `limit` bytes: `Ok(None)` when it is not there.
    pub fn read(&self, file: &str, limit: u64) -> Result<Option<(Vec<u8>, Stamp)>, String> {
        let Some((target, meta)) = self.resolve(file)? else {
            return Ok(None);
        };
        check_size(file, meta.len(), limit)?;
        // Non-blocking: a FIFO put in place since the look opens at once
        // (and is refused below) instead of waiting for a writer. No links:
        // the target is already resolved, so a link swapped in is refused.
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&target);
        let mut handle = match opened {
            Ok(handle) => handle,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot open `{file}`: {}", io_reason(&e))),
        };
        let opened = handle
            .metadata()
            .map_err(|e| format!("cannot read `{file}`: {}", io_reason(&e)))?;
        if !opened.is_file() || opened.dev() != meta.dev() || opened.ino() != meta.ino() {
            return Err(format!(
                "`{file}` changed while it was being opened; it is read again when it settles"
            ));
        }
        let bytes = read_limited(&mut handle, file, limit)?;
        Ok(Some((bytes, Stamp::of(&opened))))
    }

    /// Where `file` leads and what is there, when it may be read.
    fn resolve(&self, file: &str) -> Result<Option<(PathBuf, Metadata)>, String> {
        debug_assert!(!file.contains('/'), "a name in the directory: {file}");
        let path = self.root.join(file);
        let own = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot look at `{file}`: {}", io_reason(&e))),
        };
        if !own.file_type().is_symlink() {
            refuse_unless_regular(file, &own, "")?;
            return Ok(Some((path, own)));
        }
        let target = match std::fs::canonicalize(&path) {
            Ok(target) => target,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "`{file}` is a symbolic link to nothing (its target does not exist)"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "`{file}` is a symbolic link that cannot be followed: {}",
                    io_reason(&e)
                ))
            }
        };
        if !target.starts_with(&self.root) {
            return Err(format!(
                "`{file}` is a symbolic link that leaves the skills directory; a link there \
                 may only point at a file inside the skills directory"
            ));
        }
        let meta = std::fs::metadata(&target)
            .map_err(|e| format!("cannot look at `{file}`: {}", io_reason(&e)))?;
        refuse_unless_regular(file, &meta, "a symbolic link to ")?;
        Ok(Some((target, meta)))
    }
}

/// The reason of an I/O error, without the path (the caller names the file).
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => e.kind().to_string(),
        None => e.to_string(),
    }
}

fn refuse_unless_regular(file: &str, meta: &Metadata, via: &str) -> Result<(), String> {
    let kind = meta.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(format!(
        "`{file}` is {via}{what}; the skills directory holds regular files only"
    ))
}

fn check_size(file: &str, size: u64, limit: u64) -> Result<(), String> {
    if size > limit {
        return Err(format!(
            "`{file}` is {size} bytes; a skill file may be at most {limit} bytes \
             (--max-skill-bytes)"
        ));
    }
    Ok(())
}

/// Reads at most `limit` bytes; a file that turns out longer is refused.
fn read_limited(handle: &mut File, file: &str, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    handle
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{file}`: {}", io_reason(&e)))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "`{file}` grew past {limit} bytes while it was being read; a skill file may be \
             at most {limit} bytes (--max-skill-bytes)"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir() -> (tempfile::TempDir, SkillsDir) {
        let tmp = tempfile::tempdir().unwrap();
        let skills = SkillsDir::open(&tmp.path().join("skills")).unwrap();
        (tmp, skills)
    }

    #[test]
    fn reads_regular_files_and_links_inside_the_directory() {
        let (_tmp, skills) = dir();
        std::fs::write(skills.root.join("a.wasm"), b"bytes").unwrap();
        symlink("a.wasm", skills.root.join("b.wasm")).unwrap();
        let (a, stamp_a) = skills.read("a.wasm", 100).unwrap().unwrap();
        let (b, stamp_b) = skills.read("b.wasm", 100).unwrap().unwrap();
        assert_eq!((a.as_slice(), b.as_slice()), (&b"bytes"[..], &b"bytes"[..]));
        assert_eq!(stamp_a, stamp_b);
        assert_eq!(skills.look("a.wasm").unwrap().unwrap().stamp, stamp_a);
        assert!(skills.read("c.wasm", 100).unwrap().is_none());
    }

    #[test]
    fn refuses_links_that_leave_and_names_only_the_link() {
        let (tmp, skills) = dir();
        let secret = tmp.path().join("secret.toml");
        std::fs::write(&secret, "token = \"hunter2\"").unwrap();
        symlink(&secret, skills.root.join("x.toml")).unwrap();
        symlink("/proc/self/cmdline", skills.root.join("x.workflow.md")).unwrap();
        symlink("/dev/zero", skills.root.join("z.wasm")).unwrap();
        symlink("missing.wasm", skills.root.join("d.wasm")).unwrap();
        for file in ["x.toml", "x.workflow.md", "z.wasm", "d.wasm"] {
            let err = skills.read(file, 1 << 20).unwrap_err();
            assert!(err.contains(&format!("`{file}`")), "{err}");
            assert!(
                !err.contains("hunter2") && !err.contains("secret") && !err.contains("proc"),
                "{err}"
            );
            assert!(skills.look(file).is_err(), "{file}");
        }
    }

    #[test]
    fn refuses_fifos_without_opening_them_and_directories() {
        let (_tmp, skills) = dir();
        let fifo = skills.root.join("f.wasm");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = skills.read("f.wasm", 100).unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
        std::fs::create_dir(skills.root.join("d.wasm")).unwrap();
        assert!(skills
            .read("d.wasm", 100)
            .unwrap_err()
            .contains("directory"));
    }

    #[test]
    fn the_size_limit_holds() {
        let (_tmp, skills) = dir();
        std::fs::write(skills.root.join("big.wasm"), vec![0u8; 101]).unwrap();
        let err = skills.read("big.wasm", 100).unwrap_err();
        assert!(
            err.contains("101 bytes") && err.contains("at most 100"),
            "{err}"
        );
        assert!(skills.read("big.wasm", 101).is_ok());
    }

    #[test]
    fn a_rewritten_file_has_a_new_stamp() {
        let (_tmp, skills) = dir();
        let path = skills.root.join("a.wasm");
        std::fs::write(&path, b"one").unwrap();
        let first = skills.look("a.wasm").unwrap().unwrap().stamp;
        std::fs::write(path.with_extension("tmp"), b"two").unwrap();
        std::fs::rename(path.with_extension("tmp"), &path).unwrap();
        assert_ne!(skills.look("a.wasm").unwrap().unwrap().stamp, first);
    }
}
