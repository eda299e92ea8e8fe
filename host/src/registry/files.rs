//! The skills directory, read as an untrusted place.
//!
//! Whoever can write the skills directory chooses what is in it: a symbolic
//! link to `/proc/self/environ`, a FIFO that blocks whoever opens it, a link
//! to `/dev/zero`, a file of any size. The registry reads it only through
//! [`SkillsDir`], which guarantees:
//!
//! - a file is resolved and opened in one step by the kernel, beneath the
//!   directory (`openat2` with `RESOLVE_BENEATH`, relative to a handle on
//!   the directory): a link that leaves it (by an absolute path, by `..`,
//!   through `/proc`'s magic links, or by a directory swapped for a link
//!   while it is being opened) fails to open, so nothing outside is ever
//!   read; the error names the link and nothing of what it points at;
//! - a link inside the directory must point at a file of its own kind (a
//!   `.wasm` at a `.wasm`, a `.workflow.md` at a `.workflow.md`, a `.toml`
//!   at a `.toml`), never at a dotfile, so no other file of the directory
//!   (an operator's `.env`, say) can be passed off as a skill's;
//! - only regular files are read: a directory, device, FIFO or socket is
//!   refused; looking at a file opens no more than a path handle
//!   (`O_PATH`), and reading opens it non-blocking, so a FIFO never blocks;
//! - no file is read past the size limit: the limit is checked while
//!   reading, so a file that grows meanwhile is still cut off;
//! - a file is recognised by its [`Stamp`] (device, inode, size, change
//!   times), so an unchanged file is never read again.
//!
//! On a kernel without `openat2` (before Linux 5.6) the directory is
//! resolved with `canonicalize` first and opened without following links:
//! the same checks, without the guarantee against a swap in between.
//!
//! Every function here blocks on the file system: call it from a blocking
//! thread, never from an async worker.

use std::ffi::CString;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// A handle on the directory, what files are opened beneath.
    handle: std::sync::Arc<OwnedFd>,
}

/// A file that is there and may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// Its stamp.
    pub stamp: Stamp,
    /// Its size in bytes.
    pub size: u64,
}

/// Set once `openat2` turned out to be missing (the kernel is older than
/// 5.6), so that it is not tried, and said, again.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

impl SkillsDir {
    /// Creates the directory if needed and resolves it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let root = std::fs::canonicalize(dir)?;
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&root)?;
        Ok(SkillsDir {
            shown: dir.to_path_buf(),
            root,
            handle: std::sync::Arc::new(OwnedFd::from(handle)),
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

    /// Looks at `file` (a name in the directory) without reading it:
    /// `Ok(None)` when it is not there, an error when it is there but must
    /// not be read.
    pub fn look(&self, file: &str) -> Result<Option<Found>, String> {
        let Some(opened) = self.open_beneath(file, libc::O_PATH)? else {
            return Ok(None);
        };
        let meta = opened
            .metadata()
            .map_err(|e| format!("cannot look at `{file}`: {}", io_reason(&e)))?;
        refuse_unless_regular(file, &meta)?;
        Ok(Some(Found {
            stamp: Stamp::of(&meta),
            size: meta.len(),
        }))
    }

    /// Reads `file`, at most `limit` bytes: `Ok(None)` when it is not there.
    pub fn read(&self, file: &str, limit: u64) -> Result<Option<(Vec<u8>, Stamp)>, String> {
        // Non-blocking: a FIFO opens at once (and is refused below) instead
        // of waiting for a writer.
        let Some(mut opened) = self.open_beneath(file, libc::O_RDONLY | libc::O_NONBLOCK)? else {
            return Ok(None);
        };
        let meta = opened
            .metadata()
            .map_err(|e| format!("cannot read `{file}`: {}", io_reason(&e)))?;
        refuse_unless_regular(file, &meta)?;
        check_size(file, meta.len(), limit)?;
        let bytes = read_limited(&mut opened, file, limit)?;
        Ok(Some((bytes, Stamp::of(&meta))))
    }

    /// Opens `file` beneath the directory with `flags`, and checks where it
    /// led: `Ok(None)` when there is nothing there.
    fn open_beneath(&self, file: &str, flags: i32) -> Result<Option<File>, String> {
        debug_assert!(!file.contains('/'), "a name in the directory: {file}");
        let opened = if NO_OPENAT2.load(Ordering::Relaxed) {
            self.open_resolved(file, flags)
        } else {
            match openat2(&self.handle, file, flags) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    if !NO_OPENAT2.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "this kernel has no openat2 (Linux 5.6 and later): skill files are \
                             resolved before they are opened, without the guarantee against a \
                             directory swapped in between"
                        );
                    }
                    self.open_resolved(file, flags)
                }
                other => other,
            }
        };
        let opened = match opened {
            Ok(opened) => opened,
            Err(e) => return self.why_not(file, e),
        };
        self.check_kind(file, &opened)?;
        Ok(Some(opened))
    }

    /// The fallback of a kernel without `openat2`: resolve, check, open the
    /// resolved path without following a link.
    fn open_resolved(&self, file: &str, flags: i32) -> std::io::Result<File> {
        let target = std::fs::canonicalize(self.root.join(file))?;
        if !target.starts_with(&self.root) {
            return Err(std::io::Error::from_raw_os_error(libc::EXDEV));
        }
        let mut options = std::fs::OpenOptions::new();
        if flags & libc::O_PATH == 0 {
            options.read(true);
        }
        options
            .custom_flags(flags | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(target)
    }

    /// What a failed open means for `file`.
    fn why_not<T>(&self, file: &str, e: std::io::Error) -> Result<Option<T>, String> {
        let is_link = std::fs::symlink_metadata(self.root.join(file))
            .is_ok_and(|m| m.file_type().is_symlink());
        match e.raw_os_error() {
            Some(libc::ENOENT) if is_link => Err(format!(
                "`{file}` is a symbolic link to nothing (its target does not exist)"
            )),
            Some(libc::ENOENT) => Ok(None),
            Some(libc::EXDEV) | Some(libc::ELOOP) => Err(format!(
                "`{file}` is a symbolic link that leaves the skills directory; a link there \
                 may only point at a file of its own kind inside the skills directory"
            )),
            _ => Err(format!("cannot open `{file}`: {}", io_reason(&e))),
        }
    }

    /// A link must lead to a file of the link's own kind, not a dotfile.
    fn check_kind(&self, file: &str, opened: &File) -> Result<(), String> {
        let is_link = std::fs::symlink_metadata(self.root.join(file))
            .is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return Ok(());
        }
        let target = std::fs::read_link(format!("/proc/self/fd/{}", opened.as_raw_fd()))
            .map_err(|e| format!("cannot tell where `{file}` leads: {}", io_reason(&e)))?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let kind = [".workflow.md", ".wasm", ".toml"]
            .into_iter()
            .find(|suffix| file.ends_with(suffix))
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(kind) || !target.starts_with(&self.root) {
            return Err(format!(
                "`{file}` is a symbolic link to a file that is not a `{kind}` file of the \
                 skills directory; a link there may only point at a file of its own kind"
            ));
        }
        Ok(())
    }
}

/// `openat2(dir, name, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
fn openat2(dir: &OwnedFd, name: &str, flags: i32) -> std::io::Result<File> {
    let name = CString::new(name).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `open_how` is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the pointers are valid for the call; the size is the struct's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else
    // owns it.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// The reason of an I/O error, without the path (the caller names the file).
fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => e.kind().to_string(),
        None => e.to_string(),
    }
}

fn refuse_unless_regular(file: &str, meta: &Metadata) -> Result<(), String> {
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
        "`{file}` is {what} (or a link to one); the skills directory holds regular files only"
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
        std::fs::create_dir(skills.root.join("builds")).unwrap();
        std::fs::write(skills.root.join("builds/c-1.wasm"), b"bytes").unwrap();
        symlink("builds/c-1.wasm", skills.root.join("c.wasm")).unwrap();
        assert!(skills.read("c.wasm", 100).unwrap().is_some());
        let (a, stamp_a) = skills.read("a.wasm", 100).unwrap().unwrap();
        let (b, stamp_b) = skills.read("b.wasm", 100).unwrap().unwrap();
        assert_eq!((a.as_slice(), b.as_slice()), (&b"bytes"[..], &b"bytes"[..]));
        assert_eq!(stamp_a, stamp_b);
        assert_eq!(skills.look("a.wasm").unwrap().unwrap().stamp, stamp_a);
        assert!(skills.read("d.wasm", 100).unwrap().is_none());
    }

    #[test]
    fn a_link_inside_must_point_at_a_file_of_its_kind() {
        let (_tmp, skills) = dir();
        std::fs::write(skills.root.join(".env"), "TOKEN=hunter2").unwrap();
        std::fs::write(skills.root.join("notes.txt"), "x").unwrap();
        std::fs::write(skills.root.join("real.toml"), "x").unwrap();
        symlink(".env", skills.root.join("a.workflow.md")).unwrap();
        symlink("notes.txt", skills.root.join("b.toml")).unwrap();
        symlink("real.toml", skills.root.join("c.wasm")).unwrap();
        symlink("../skills/real.toml", skills.root.join("d.toml")).unwrap();
        for file in ["a.workflow.md", "b.toml", "c.wasm"] {
            let err = skills.read(file, 100).unwrap_err();
            assert!(
                err.contains("of its own kind") && !err.contains("hunter2"),
                "{err}"
            );
        }
        // `..` back into the directory leaves it first: refused by the kernel.
        assert!(skills.read("d.toml", 100).is_err());
    }

    #[test]
    fn a_directory_swapped_for_a_link_cannot_lead_out() {
        let (tmp, skills) = dir();
        std::fs::create_dir(skills.root.join("sub")).unwrap();
        std::fs::write(skills.root.join("sub/x.toml"), "ok = 1").unwrap();
        symlink("sub/x.toml", skills.root.join("x.toml")).unwrap();
        assert!(skills.read("x.toml", 100).unwrap().is_some());
        // The directory on the way becomes a link out, as a racing writer
        // would make it: the kernel refuses to follow it out.
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("x.toml"), "secret = 1").unwrap();
        std::fs::remove_dir_all(skills.root.join("sub")).unwrap();
        symlink(&outside, skills.root.join("sub")).unwrap();
        let err = skills.read("x.toml", 100).unwrap_err();
        assert!(err.contains("leaves the skills directory"), "{err}");
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
        assert!(skills.look("f.wasm").unwrap_err().contains("FIFO"));
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
