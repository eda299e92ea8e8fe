//! Watching the skills directory.
//!
//! inotify (through `notify`) reports changes. An event that says a file is
//! complete (renamed into place, or closed after writing) is acted on at once;
//! any other change waits for a quiet period (the debounce) after its last
//! event, so a file written in many pieces is read once it is complete, even
//! by a writer that never closes it. Events can be lost (queue overflow,
//! network filesystems), so a periodic rescan compares file stamps and syncs
//! whatever the events missed.
//!
//! Only changes are acted on: opens, reads and closes without a write are
//! dropped here, and a sync that finds a file's stamp (inode, size, mtime,
//! ctime) unchanged does not read it, so an idle host reads nothing.

use super::{skill_file_name, Registry, RegistryError, SkillName};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Keeps the watcher running; dropping it stops watching.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn start(registry: Arc<Registry>) -> Result<WatchHandle, RegistryError> {
    let (tx, rx) = mpsc::unbounded_channel::<(SkillName, bool)>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                if !is_change(&event.kind) {
                    return;
                }
                let complete = is_complete(&event.kind);
                for path in &event.paths {
                    if let Some((name, _)) = skill_file_name(path) {
                        let _ = tx.send((name, complete));
                    }
                }
            }
            Err(err) => {
                tracing::warn!(%err, "skills directory watcher error; the rescan will catch up")
            }
        })
        .map_err(|e| RegistryError::Storage(format!("cannot watch the skills directory: {e}")))?;
    watcher
        .watch(&registry.config.skills_dir, RecursiveMode::NonRecursive)
        .map_err(|e| {
            RegistryError::Storage(format!(
                "cannot watch `{}`: {e}",
                registry.config.skills_dir.display()
            ))
        })?;
    let task = tokio::spawn(debounce_loop(registry, rx));
    Ok(WatchHandle {
        _watcher: watcher,
        task,
    })
}

/// Whether an event may mean a file changed. Opens, reads and closes
/// without a write change nothing; acting on them would make every load
/// (which opens the file) schedule another one, and any program that reads
/// the skills directory (a backup, a checksum) wake the host.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => matches!(access, AccessKind::Close(AccessMode::Write)),
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        // Unknown kinds are looked at: a stat is cheap, and an unchanged
        // file is not read. (A queue overflow names no file; the periodic
        // rescan catches up.)
        EventKind::Any | EventKind::Other => true,
    }
}

/// Whether an event says the file is whole: renamed into place, closed after
/// a write, or removed.
fn is_complete(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
            | EventKind::Remove(_)
    )
}

/// Delay before acting on an event that says the file is complete: long
/// enough to coalesce the burst of events one write produces.
const SETTLE: Duration = Duration::from_millis(2);

async fn debounce_loop(
    registry: Arc<Registry>,
    mut rx: mpsc::UnboundedReceiver<(SkillName, bool)>,
) {
    let debounce = registry.config.debounce;
    let mut pending: HashMap<SkillName, Instant> = HashMap::new();
    let mut rescan = tokio::time::interval(registry.config.rescan_interval);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    rescan.tick().await;
    loop {
        let next_due = pending.values().min().copied();
        tokio::select! {
            event = rx.recv() => match event {
                Some((name, complete)) => {
                    let wait = if complete { SETTLE } else { debounce };
                    pending.insert(name, Instant::now() + wait);
                }
                None => return,
            },
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let now = Instant::now();
                let due: Vec<SkillName> = pending
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in due {
                    pending.remove(&name);
                    let registry = registry.clone();
                    tokio::spawn(async move { registry.sync(&name).await });
                }
            }
            _ = rescan.tick() => {
                let registry = registry.clone();
                tokio::spawn(async move { registry.rescan().await });
            }
        }
    }
}
