//! The memory monitor: how far the memory ingest is behind the agents'
//! transcripts, as `memory.ingest.lag_seconds`: the time of the newest
//! transcript file minus the newest message the ingest has read (or, when
//! the ingest has read nothing yet, minus the oldest transcript file). A
//! host with no ingest sources measures nothing here.

use super::{hours, when, Measurement, Monitor};
use crate::capabilities::kpi::Labels;
use crate::capabilities::memory::ingest::Ingestor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The series it writes.
pub const SERIES: &str = "memory.ingest.lag_seconds";

/// Measures the ingest's lag.
pub struct MemoryMonitor {
    ingest: Arc<Ingestor>,
    sources: Vec<PathBuf>,
}

impl MemoryMonitor {
    /// Watches the transcripts under `sources` (files or directories).
    pub fn new(ingest: Arc<Ingestor>, sources: Vec<PathBuf>) -> Self {
        MemoryMonitor { ingest, sources }
    }
}

/// The oldest and newest modification times (ms) of the transcripts under
/// `path`, and how many there are.
fn transcript_times(path: &Path, out: &mut Vec<u64>) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            // A file that goes while it is read (a rotation) is not counted.
            let Ok(entry) = entry else { continue };
            let p = entry.path();
            // The entry's own type: a link to a directory is not followed
            // (a link back up would never end).
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                transcript_times(&p, out)?;
            } else if kind.is_symlink() {
                continue;
            } else if p
                .extension()
                .is_some_and(|e| e == "jsonl" || e == "sqlite" || e == "db")
            {
                if let Ok(meta) = entry.metadata() {
                    out.push(mtime_ms(&meta));
                }
            }
        }
    } else {
        out.push(mtime_ms(&meta));
    }
    Ok(())
}

fn mtime_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

#[async_trait::async_trait]
impl Monitor for MemoryMonitor {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn measure(&self, now_ms: u64) -> Result<Measurement, String> {
        let mut m = Measurement::default();
        if self.sources.is_empty() {
            return Ok(m);
        }
        let sources = self.sources.clone();
        let times = tokio::task::spawn_blocking(move || {
            let mut times = Vec::new();
            for source in &sources {
                transcript_times(source, &mut times).map_err(|e| {
                    format!("cannot read the transcripts at {}: {e}", source.display())
                })?;
            }
            Ok::<_, String>(times)
        })
        .await
        .map_err(|e| format!("the transcript scan failed: {e}"))??;
        let (Some(&oldest), Some(&newest)) = (times.iter().min(), times.iter().max()) else {
            return Ok(m);
        };
        let status = self
            .ingest
            .status()
            .await
            .map_err(|e| format!("cannot read the ingest's state: {e}"))?;
        let read_up_to = status
            .and_then(|s| s.newest_message_ms)
            .map(|ms| ms as u64)
            .unwrap_or(oldest);
        let lag_ms = newest.saturating_sub(read_up_to);
        m.sample(SERIES, Labels::new(), (lag_ms / 1000) as f64, now_ms);
        m.evidence(
            SERIES,
            Labels::new(),
            format!(
                "newest transcript written {}; the ingest has read up to {} ({} behind, {} files)",
                when(newest),
                when(read_up_to),
                hours(lag_ms),
                times.len()
            ),
        );
        Ok(m)
    }
}
