//! The memory monitor: how far the memory ingest is behind the agents'
//! transcripts, as `memory.ingest.lag_seconds`: the time of the newest
//! transcript (a JSONL file, or an OpenClaw store and its write-ahead log)
//! minus the newest message the ingest has read (or, when
//! the ingest has read nothing yet, minus the oldest transcript file). A
//! host with no ingest sources measures nothing here.

use super::{hours, when, Measurement, Monitor};
use crate::capabilities::kpi::Labels;
use crate::capabilities::memory::ingest::Ingestor;
use crate::capabilities::memory::transcript;
use std::path::PathBuf;
use std::sync::Arc;

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
                transcript::modified_times(source, &mut times).map_err(|e| {
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
