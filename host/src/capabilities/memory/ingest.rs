//! The corpus pipeline: transcripts in, memories out, each exchange once.
//!
//! A chunk of JSONL (an HTTP body, or bytes of a file on this machine) is
//! parsed into exchanges ([`corpus`](super::corpus)), filtered by length and
//! information density, and stored with ids derived from the text, so the
//! same exchange is never stored twice however often it is read. When the
//! chunk comes from a named file, a per-file watermark (bytes and lines done
//! with, and the session in effect there) records where the next read
//! starts: a growing transcript is read from where the last run stopped, and
//! an interrupted run resumes without duplicates. An exchange still open at
//! the end of a file that is still being written is left for the next run.
//! A session of an OpenClaw agent store is read the same way, as the JSONL
//! it would be ([`transcript`](super::transcript)).
//!
//! With a KPI store ([`Ingestor::with_usage`]), the usage each assistant
//! message records is written as `agent.cost_usd` and `agent.tokens`
//! samples (labels `agent` and `session`, at the message's time), once per
//! message: within the chunk's done-with bytes, so with the watermark, and
//! by a fingerprint of the call (agent, entry id, time) kept in the state,
//! so a session OpenClaw copies forward on compaction, or the same
//! transcript ingested into a second namespace, is not counted twice.

use super::corpus::{self, Malformed, Position, Usage};
use super::transcript;
use super::{Memory, MemoryError, Metadata, Namespace, NewMemory};
use crate::capabilities::kpi::{check_labels, KpiStore, Labels, NewSample};
use crate::runtime::bounded::prefix;
use crate::state::{StateStore, Watermark};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The series of a model call's cost, in USD.
pub const COST_SERIES: &str = "agent.cost_usd";
/// The series of a model call's tokens.
pub const TOKENS_SERIES: &str = "agent.tokens";

/// Exchanges stored per backend write.
const BATCH: usize = 256;
/// Malformed lines listed in a report (all are counted).
const MAX_LISTED_MALFORMED: usize = 100;
/// Bytes read from a file per chunk.
pub const CHUNK_BYTES: usize = 4 << 20;
/// A file not written for this long is finished: its last exchange is read.
pub const IDLE: Duration = Duration::from_secs(300);

/// How an ingest filters and where it stores.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Where the memories go.
    pub namespace: Namespace,
    /// Exchanges with a density under this are dropped (0 keeps all).
    pub min_density: f64,
    /// The agent whose transcripts these are, for their usage; when absent,
    /// the `agents/<agentId>/` part of the transcript's path.
    pub agent: Option<String>,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Files read.
    pub files: u64,
    /// Bytes done with.
    pub bytes: u64,
    /// Exchanges found.
    pub exchanges: u64,
    /// Stored as new memories.
    pub stored: u64,
    /// Already stored (same text, same namespace).
    pub duplicates: u64,
    /// Dropped: fewer than 100 tokens.
    pub too_short: u64,
    /// Dropped: density under the threshold.
    pub low_density: u64,
    /// Entries that are not exchanges (tool results, model changes, …).
    pub skipped_entries: u64,
    /// Lines that could not be read.
    pub malformed_lines: u64,
    /// The first of them, with file and line.
    pub malformed: Vec<MalformedLine>,
    /// The newest message read, in milliseconds since the Unix epoch.
    pub newest_message_ms: Option<u64>,
    /// Model calls whose usage was recorded (`agent.cost_usd`,
    /// `agent.tokens`).
    pub usage_recorded: u64,
    /// Model calls whose usage was recorded before.
    pub usage_duplicates: u64,
    /// Model calls not recorded: no agent is known for the transcript.
    pub usage_unattributed: u64,
    /// Model calls not recorded: no time, or one the KPI store does not
    /// take (older than `--kpi-downsample-after`, or ahead of the clock).
    pub usage_out_of_range: u64,
    /// Transcripts that could not be read at all (a file gone since it was
    /// listed, a store whose table is not OpenClaw's), each with why; the
    /// others were read.
    pub unreadable: Vec<Unreadable>,
}

/// A transcript that could not be read, and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unreadable {
    /// The file, or `STORE#SESSION`.
    pub file: String,
    /// Why.
    pub error: String,
}

/// A line that could not be read, and where.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MalformedLine {
    /// The file (or `-` for a request body).
    pub file: String,
    /// The line, 1-based.
    pub line: usize,
    /// Why.
    pub error: String,
}

impl IngestReport {
    /// Notes a transcript that could not be read.
    fn unreadable(&mut self, file: String, error: String) {
        tracing::warn!(%file, %error, "a transcript could not be read");
        if self.unreadable.len() < MAX_LISTED_MALFORMED {
            self.unreadable.push(Unreadable { file, error });
        }
    }

    /// Adds `other` into this report.
    pub fn merge(&mut self, other: IngestReport) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.exchanges += other.exchanges;
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        self.too_short += other.too_short;
        self.low_density += other.low_density;
        self.skipped_entries += other.skipped_entries;
        self.malformed_lines += other.malformed_lines;
        for m in other.malformed {
            if self.malformed.len() < MAX_LISTED_MALFORMED {
                self.malformed.push(m);
            }
        }
        self.newest_message_ms = self.newest_message_ms.max(other.newest_message_ms);
        self.usage_recorded += other.usage_recorded;
        self.usage_duplicates += other.usage_duplicates;
        self.usage_unattributed += other.usage_unattributed;
        self.usage_out_of_range += other.usage_out_of_range;
        for u in other.unreadable {
            if self.unreadable.len() < MAX_LISTED_MALFORMED {
                self.unreadable.push(u);
            }
        }
    }
}

/// Why an ingest could not run.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The memory refused or failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Another ingest moved this file's watermark: start again from it.
    #[error("the watermark of `{file}` is at byte {current}, not {given}; resume from {current}")]
    Conflict {
        /// The file.
        file: String,
        /// The offset the caller gave.
        given: u64,
        /// Where the watermark is.
        current: u64,
    },
    /// A file or directory could not be read, or the state not written.
    #[error("{0}")]
    Io(String),
}

/// Where a chunk comes from.
#[derive(Debug, Clone)]
pub struct ChunkSource {
    /// The file's path, as the watermark's key.
    pub file: String,
    /// Where the chunk starts in the file (must be the watermark, or 0).
    pub offset: u64,
}

/// What one chunk did: the report, and how far the file is done with.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChunkResult {
    /// The report of this chunk.
    #[serde(flatten)]
    pub report: IngestReport,
    /// Bytes of the chunk done with; the rest starts an exchange that may
    /// still grow (send it again with the next bytes).
    pub consumed: u64,
    /// The file's watermark after this chunk, when the chunk named a file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<u64>,
}

/// Runs ingests against one memory and the host's state.
pub struct Ingestor {
    memory: Arc<Memory>,
    state: Arc<StateStore>,
    kpi: Option<Arc<KpiStore>>,
}

impl Ingestor {
    /// An ingestor storing into `memory`, keeping watermarks in `state`.
    pub fn new(memory: Arc<Memory>, state: Arc<StateStore>) -> Self {
        Ingestor {
            memory,
            state,
            kpi: None,
        }
    }

    /// Also records the usage of model calls into `kpi`.
    pub fn with_usage(mut self, kpi: Arc<KpiStore>) -> Self {
        self.kpi = Some(kpi);
        self
    }

    /// The watermark of a file.
    pub async fn watermark(
        &self,
        file: &str,
        namespace: &Namespace,
    ) -> Result<Watermark, IngestError> {
        self.state
            .watermark(file, &namespace.to_string())
            .await
            .map_err(|e| IngestError::Io(e.to_string()))
    }

    /// The state: last run and newest message.
    pub async fn status(&self) -> Result<Option<crate::state::IngestStatus>, IngestError> {
        self.state
            .ingest_status()
            .await
            .map_err(|e| IngestError::Io(e.to_string()))
    }

    /// Files with a watermark.
    pub async fn files_tracked(&self) -> u64 {
        self.state.watermark_count().await.unwrap_or(0)
    }

    /// Ingests one chunk of JSONL. With a `source`, the chunk continues that
    /// file from its watermark and moves it; `last` says the file ends here
    /// and is finished (its last exchange is complete).
    pub async fn ingest_chunk(
        &self,
        bytes: &[u8],
        source: Option<&ChunkSource>,
        last: bool,
        options: &IngestOptions,
    ) -> Result<ChunkResult, IngestError> {
        let namespace = options.namespace.to_string();
        let mark = match source {
            Some(src) if src.offset == 0 => Watermark::default(),
            Some(src) => {
                let mark = self.watermark(&src.file, &options.namespace).await?;
                if mark.offset != src.offset {
                    return Err(IngestError::Conflict {
                        file: src.file.clone(),
                        given: src.offset,
                        current: mark.offset,
                    });
                }
                mark
            }
            None => Watermark::default(),
        };
        let position = Position {
            lines_before: mark.lines as usize,
            session_id: mark.session_id.clone(),
        };
        let parsed = corpus::parse(bytes, &position, last);
        let file_label = source.map_or("-".to_string(), |s| s.file.clone());
        let file_name = source.and_then(|s| {
            Path::new(&s.file)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        });
        let mut report = IngestReport {
            files: u64::from(source.is_some()),
            bytes: parsed.consumed as u64,
            skipped_entries: parsed.skipped as u64,
            malformed_lines: parsed.malformed.len() as u64,
            malformed: parsed
                .malformed
                .iter()
                .take(MAX_LISTED_MALFORMED)
                .map(|Malformed { line, error }| MalformedLine {
                    file: file_label.clone(),
                    line: *line,
                    error: error.clone(),
                })
                .collect(),
            ..IngestReport::default()
        };
        let mut pending = Vec::new();
        let now = super::now_ms();
        for exchange in &parsed.exchanges {
            report.exchanges += 1;
            report.newest_message_ms = report
                .newest_message_ms
                .max(exchange.last_timestamp_ms.or(exchange.timestamp_ms));
            let text = exchange.text();
            let quality = corpus::quality(&text);
            if quality.tokens < corpus::MIN_TOKENS {
                report.too_short += 1;
                continue;
            }
            if quality.density < options.min_density {
                report.low_density += 1;
                continue;
            }
            let mut metadata = Metadata::new();
            if let Some(session) = &exchange.session_id {
                metadata.insert("session".into(), prefix(session, 200).to_string());
            }
            if let Some(name) = &file_name {
                metadata.insert("file".into(), prefix(name, 200).to_string());
                metadata.insert("line".into(), exchange.line.to_string());
            }
            metadata.insert("density".into(), format!("{:.2}", quality.density));
            let memory = match NewMemory::new(
                &text,
                options.namespace.clone(),
                metadata,
                exchange.timestamp_ms.unwrap_or(now),
                "ingest",
            ) {
                Ok(m) => m,
                Err(reason) => {
                    // Over 64 KiB: reported like a bad line, never fatal.
                    report.malformed_lines += 1;
                    if report.malformed.len() < MAX_LISTED_MALFORMED {
                        report.malformed.push(MalformedLine {
                            file: file_label.clone(),
                            line: exchange.line,
                            error: format!("exchange not stored: {reason}"),
                        });
                    }
                    continue;
                }
            };
            pending.push(memory);
            if pending.len() == BATCH {
                self.store(std::mem::take(&mut pending), &mut report)
                    .await?;
            }
        }
        self.store(pending, &mut report).await?;
        self.record_usage(&parsed.usage, source, options, &mut report)
            .await?;
        // Only once everything before it is stored does the watermark move:
        // an interrupted ingest re-reads (and de-duplicates) the rest.
        let watermark = match source {
            Some(src) => {
                let to = Watermark {
                    offset: src.offset + parsed.consumed as u64,
                    lines: mark.lines + parsed.consumed_lines as u64,
                    session_id: parsed.session_id.clone(),
                };
                let moved = self
                    .state
                    .advance_watermark(&src.file, &namespace, src.offset, &to, now as i64)
                    .await
                    .map_err(|e| IngestError::Io(e.to_string()))?;
                if !moved {
                    let current = self.watermark(&src.file, &options.namespace).await?.offset;
                    return Err(IngestError::Conflict {
                        file: src.file.clone(),
                        given: src.offset,
                        current,
                    });
                }
                Some(to.offset)
            }
            None => None,
        };
        self.state
            .record_ingest(now as i64, report.newest_message_ms.map(|t| t as i64))
            .await
            .map_err(|e| IngestError::Io(e.to_string()))?;
        Ok(ChunkResult {
            report,
            consumed: parsed.consumed as u64,
            watermark,
        })
    }

    /// Records the usage of the chunk's model calls that are not recorded
    /// yet: samples first, then their fingerprints, so a failure between
    /// the two records the same samples again (a sample at the same series
    /// and time replaces the one there).
    async fn record_usage(
        &self,
        usage: &[Usage],
        source: Option<&ChunkSource>,
        options: &IngestOptions,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        let Some(kpi) = &self.kpi else {
            return Ok(());
        };
        if usage.is_empty() {
            return Ok(());
        }
        let parts = source
            .map(|s| transcript::key_parts(&s.file))
            .unwrap_or_default();
        let Some(agent) = options.agent.clone().or(parts.agent) else {
            report.usage_unattributed += usage.len() as u64;
            return Ok(());
        };
        let (oldest, latest) = kpi.accepted_times();
        // A minute inside the edge: the store reads its clock again when it
        // takes the batch, and one sample it refused would refuse them all.
        let from = oldest + 60_000;
        let mut calls = Vec::new();
        for call in usage {
            let Some(at) = call.timestamp_ms.filter(|t| (from..=latest).contains(t)) else {
                report.usage_out_of_range += 1;
                continue;
            };
            // A store's session is its own; a file's, its header's (or the
            // file's name).
            let session = if parts.in_store {
                parts.session.clone()
            } else {
                call.session_id.clone().or_else(|| parts.session.clone())
            };
            let mut labels = Labels::from([("agent".to_string(), agent.clone())]);
            if let Some(session) = &session {
                labels.insert("session".into(), session.clone());
            }
            if check_labels(&labels).is_err() {
                // An agent or session name the store refuses (too long, a
                // control character): counted, never a failed ingest.
                report.usage_unattributed += 1;
                continue;
            }
            let identity = call.entry_id.as_deref().or(session.as_deref());
            calls.push((fingerprint(&agent, identity, at), labels, at, call));
        }
        let seen = self
            .state
            .usage_recorded(calls.iter().map(|c| c.0.clone()).collect())
            .await
            .map_err(|e| IngestError::Io(e.to_string()))?;
        let mut fresh = HashSet::new();
        // Calls at the same series and millisecond are one sample: summed.
        let mut sums: BTreeMap<(Labels, u64), (f64, f64)> = BTreeMap::new();
        let mut recorded = Vec::new();
        for (fp, labels, at, call) in calls {
            if seen.contains(&fp) || !fresh.insert(fp.clone()) {
                report.usage_duplicates += 1;
                continue;
            }
            let sum = sums.entry((labels, at)).or_default();
            sum.0 += call.cost_usd;
            sum.1 += call.tokens;
            recorded.push((fp, at as i64));
        }
        if recorded.is_empty() {
            return Ok(());
        }
        let mut samples = Vec::with_capacity(sums.len() * 2);
        for ((labels, at), (cost, tokens)) in sums {
            for (name, value) in [(COST_SERIES, cost), (TOKENS_SERIES, tokens)] {
                samples.push(NewSample {
                    name: name.to_string(),
                    value,
                    at: Some(at),
                    labels: labels.clone(),
                });
            }
        }
        kpi.push(samples)
            .await
            .map_err(|e| IngestError::Io(format!("cannot record the usage: {e}")))?;
        report.usage_recorded += recorded.len() as u64;
        self.state
            .record_usage(recorded, oldest as i64)
            .await
            .map_err(|e| IngestError::Io(e.to_string()))
    }

    async fn store(
        &self,
        batch: Vec<NewMemory>,
        report: &mut IngestReport,
    ) -> Result<(), IngestError> {
        if batch.is_empty() {
            return Ok(());
        }
        for stored in self.memory.store_new(batch).await? {
            if stored.created {
                report.stored += 1;
            } else {
                report.duplicates += 1;
            }
        }
        Ok(())
    }

    /// Ingests the transcripts at `path` (a JSONL file, an OpenClaw store,
    /// or every one of them under a directory; see
    /// [`transcript::transcripts`]) from their watermarks; `progress` is
    /// told the bytes done so far and the bytes in all.
    pub async fn ingest_path(
        &self,
        path: &Path,
        options: &IngestOptions,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<IngestReport, IngestError> {
        // The file system is read on the blocking pool, never on an async
        // worker: a slow disk or a huge directory holds no other request.
        let listing = {
            let path = path.to_path_buf();
            off_worker(move || transcript::transcripts(&path)).await?
        };
        let mut report = IngestReport::default();
        for (file, error) in listing.unreadable {
            report.unreadable(file, error);
        }
        let mut plan = Vec::new();
        let mut total = 0u64;
        for file in listing.transcripts {
            let key = file.key();
            let stat = {
                let file = file.clone();
                off_worker(move || file.stat()).await
            };
            let stat = match stat {
                Ok(stat) => stat,
                Err(e) => {
                    // Gone since it was listed, or a store that refuses: the
                    // others are still read.
                    report.unreadable(key, e.to_string());
                    continue;
                }
            };
            let mut mark = self.watermark(&key, &options.namespace).await?;
            if stat.len < mark.offset {
                // Truncated or replaced: read it again from the top.
                mark = Watermark::default();
            }
            total += stat.len - mark.offset;
            plan.push((file, key, mark.offset, stat.len, is_idle(stat.modified_ms)));
        }
        let mut done = 0u64;
        progress(0, total);
        for (file, key, mut offset, len, idle) in plan {
            let mut file_report = IngestReport {
                files: 1,
                ..IngestReport::default()
            };
            let mut chunk_size = CHUNK_BYTES;
            while offset < len {
                let bytes = {
                    let file = file.clone();
                    off_worker(move || file.read_range(offset, chunk_size)).await
                };
                let bytes = match bytes {
                    // Shorter than it was a moment ago: read again next run.
                    Ok(bytes) if bytes.is_empty() => break,
                    Ok(bytes) => bytes,
                    Err(e) => {
                        file_report.unreadable(key.clone(), e.to_string());
                        break;
                    }
                };
                let at_end = offset + bytes.len() as u64 >= len;
                let src = ChunkSource {
                    file: key.clone(),
                    offset,
                };
                let result = self
                    .ingest_chunk(&bytes, Some(&src), at_end && idle, options)
                    .await?;
                let mut r = result.report;
                r.files = 0;
                file_report.merge(r);
                if result.consumed == 0 {
                    // An exchange still open at the end of a live file, or
                    // at the end of all there is to read now (a file that
                    // shrank since it was measured): the next run.
                    if at_end || bytes.len() < chunk_size {
                        break;
                    }
                    // One exchange longer than the chunk: read more at once.
                    chunk_size = chunk_size.saturating_mul(2);
                    continue;
                }
                offset += result.consumed;
                done += result.consumed;
                progress(done, total);
                if at_end {
                    break;
                }
            }
            report.merge(file_report);
        }
        if report.stored > 0 {
            let started = std::time::Instant::now();
            self.memory.optimize().await?;
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "memory optimized after ingest"
            );
        }
        progress(total, total);
        Ok(report)
    }
}

/// Runs file-system work on the blocking pool.
async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IngestError> + Send + 'static,
) -> Result<T, IngestError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| IngestError::Io(format!("the reading thread failed: {e}")))?
}

/// Whether a transcript last written at `modified_ms` is finished: its
/// last exchange is read even without a user turn after it.
pub fn is_idle(modified_ms: u64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now.saturating_sub(modified_ms) >= IDLE.as_millis() as u64
}

/// A call's fingerprint: the agent, the entry's id (or the session), and
/// the message's time.
fn fingerprint(agent: &str, identity: Option<&str>, at_ms: u64) -> String {
    let mut h = Sha256::new();
    h.update(agent.as_bytes());
    h.update([0]);
    h.update(identity.unwrap_or("").as_bytes());
    h.update([0]);
    h.update(at_ms.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::kpi::KpiConfig;
    use crate::capabilities::memory::transcript::tests::write_store;
    use crate::capabilities::Clock;
    use serde_json::json;

    /// 2027-01-15T08:00:00Z.
    const T0: u64 = 1_800_000_000_000;

    fn user(id: &str, at: u64) -> String {
        json!({"type": "message", "id": id, "timestamp": "2027-01-15T08:00:00Z",
               "message": {"role": "user", "content": "what is the state of the fleet?", "timestamp": at}})
        .to_string()
    }

    fn assistant(id: &str, at: u64, cost: f64, tokens: u64) -> String {
        json!({"type": "message", "id": id, "parentId": null, "timestamp": "2027-01-15T08:00:01Z",
               "message": {"role": "assistant", "content": [{"type": "text", "text": "all green"}],
                           "api": "anthropic-messages", "provider": "anthropic", "model": "claude-x",
                           "usage": {"input": tokens / 2, "output": tokens / 4, "cacheRead": tokens / 4,
                                     "cacheWrite": 0, "totalTokens": tokens,
                                     "cost": {"input": cost / 2.0, "output": cost / 2.0, "cacheRead": 0,
                                              "cacheWrite": 0, "total": cost}},
                           "stopReason": "stop", "timestamp": at}})
        .to_string()
    }

    fn header(id: &str) -> String {
        json!({"type": "session", "version": 3, "id": id, "timestamp": "2027-01-15T07:00:00Z", "cwd": "/w"})
            .to_string()
    }

    fn set_old(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    async fn cost(kpi: &KpiStore, series: &str, agent: &str) -> (f64, usize) {
        let labels = Labels::from([("agent".to_string(), agent.to_string())]);
        let read = kpi.read(series, &labels, 0, u64::MAX / 2).await.unwrap();
        let points: Vec<_> = read.iter().flat_map(|s| s.points.iter()).collect();
        (points.iter().map(|p| p.value).sum(), points.len())
    }

    #[tokio::test]
    async fn usage_is_recorded_once_per_call_from_files_and_stores() {
        let dir = tempfile::tempdir().unwrap();
        let memory =
            Arc::new(super::super::Memory::open_embedded(&dir.path().join("m"), None).unwrap());
        let state = StateStore::open(&dir.path().join("s.db")).unwrap();
        let clock = Clock::manual(T0 + 60_000);
        let kpi = Arc::new(
            KpiStore::open(&dir.path().join("kpi.db"), KpiConfig::default(), clock).unwrap(),
        );
        let ingestor = Ingestor::new(memory, Arc::new(state)).with_usage(kpi.clone());
        let home = dir.path().join(".openclaw");

        // A legacy JSONL session, still being written: the call of its last,
        // open exchange waits for the next read.
        let sessions = home.join("agents/alfred/sessions");
        std::fs::create_dir_all(&sessions).unwrap();
        let jsonl = sessions.join("s1.jsonl");
        let lines = [
            header("s1"),
            user("u1", T0),
            assistant("a1", T0 + 1000, 0.5, 1000),
            "not json".to_string(),
            user("u2", T0 + 2000),
            assistant("a2", T0 + 3000, 0.25, 400),
        ];
        std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
        // A store: one call compressed, and the same call copied forward
        // into the next session (as compaction does), and one too old to
        // record.
        let store = home.join("agents/bruce/agent/openclaw-agent.sqlite");
        let (h9, u9, a9) = (
            header("s9"),
            user("u9", T0),
            assistant("a9", T0 + 500, 1.0, 2000),
        );
        let old = assistant("a0", T0 - 8 * 24 * 3_600_000, 7.0, 10);
        let h10 = header("s10");
        write_store(
            &store,
            &[
                ("s9", 0, &h9, false),
                ("s9", 1, &u9, false),
                ("s9", 2, &a9, true),
                ("s9", 3, &old, false),
                ("s10", 0, &h10, false),
                ("s10", 1, &a9, false),
            ],
        );
        let options = IngestOptions {
            namespace: Namespace::Org,
            min_density: 0.0,
            agent: None,
        };
        let report = ingestor
            .ingest_path(&home, &options, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(report.files, 3, "{report:?}");
        assert_eq!(report.usage_recorded, 2, "{report:?}");
        assert_eq!(report.usage_duplicates, 1, "the copy: {report:?}");
        assert_eq!(report.usage_out_of_range, 1, "eight days old: {report:?}");
        assert_eq!(cost(&kpi, COST_SERIES, "alfred").await, (0.5, 1));
        assert_eq!(cost(&kpi, COST_SERIES, "bruce").await, (1.0, 1));
        assert_eq!(cost(&kpi, TOKENS_SERIES, "bruce").await, (2000.0, 1));
        // One series for the call, under whichever session was read first.
        let bruce = kpi.matching(
            COST_SERIES,
            &Labels::from([("agent".into(), "bruce".into())]),
        );
        assert_eq!(bruce.len(), 1, "{bruce:?}");
        assert!(bruce[0].labels.contains_key("session"), "{bruce:?}");

        // Again: nothing new. Then the file is finished: its last call.
        let again = ingestor
            .ingest_path(&home, &options, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(
            (again.usage_recorded, again.usage_duplicates),
            (0, 0),
            "{again:?}"
        );
        set_old(&jsonl);
        let last = ingestor
            .ingest_path(&home, &options, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(last.usage_recorded, 1, "{last:?}");
        assert_eq!(cost(&kpi, COST_SERIES, "alfred").await, (0.75, 2));

        // Into a second namespace, from the top: every call is known.
        let other = IngestOptions {
            namespace: Namespace::parse("agent:alfred").unwrap(),
            ..options.clone()
        };
        let second = ingestor
            .ingest_path(&home, &other, &|_, _| {})
            .await
            .unwrap();
        assert_eq!(
            (second.usage_recorded, second.usage_duplicates),
            (0, 4),
            "{second:?}"
        );
        assert_eq!(cost(&kpi, COST_SERIES, "alfred").await, (0.75, 2));
    }

    #[tokio::test]
    async fn usage_without_an_agent_is_counted_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let memory =
            Arc::new(super::super::Memory::open_embedded(&dir.path().join("m"), None).unwrap());
        let state = StateStore::open(&dir.path().join("s.db")).unwrap();
        let kpi = Arc::new(
            KpiStore::open(
                &dir.path().join("kpi.db"),
                KpiConfig::default(),
                Clock::manual(T0),
            )
            .unwrap(),
        );
        let ingestor = Ingestor::new(memory, Arc::new(state)).with_usage(kpi.clone());
        let body = [user("u", T0), assistant("a", T0, 0.1, 5)].join("\n");
        let mut options = IngestOptions {
            namespace: Namespace::Org,
            min_density: 0.0,
            agent: None,
        };
        let r = ingestor
            .ingest_chunk(body.as_bytes(), None, true, &options)
            .await
            .unwrap();
        assert_eq!(
            (r.report.usage_unattributed, r.report.usage_recorded),
            (1, 0)
        );
        assert!(!kpi.knows(COST_SERIES));
        // Named by the caller: recorded, once.
        options.agent = Some("clark".into());
        for recorded in [1, 0] {
            let r = ingestor
                .ingest_chunk(body.as_bytes(), None, true, &options)
                .await
                .unwrap();
            assert_eq!(r.report.usage_recorded, recorded);
        }
        assert_eq!(cost(&kpi, COST_SERIES, "clark").await, (0.1, 1));
        // A usage that is not OpenClaw's is reported with its line; the
        // exchange is still read.
        let bad = json!({"type": "message", "message": {"role": "assistant", "content": "x",
                         "usage": {"input": "many"}}})
        .to_string();
        let r = ingestor
            .ingest_chunk(
                format!("{}\n{bad}\n", user("u", T0)).as_bytes(),
                None,
                true,
                &options,
            )
            .await
            .unwrap();
        assert_eq!(r.report.malformed_lines, 1);
        assert!(
            r.report.malformed[0].error.starts_with("usage not read"),
            "{:?}",
            r.report.malformed
        );
        assert_eq!(r.report.exchanges, 1);
    }
}
