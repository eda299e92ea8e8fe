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

use super::corpus::{self, Malformed, Position};
use super::{Memory, MemoryError, Metadata, Namespace, NewMemory};
use crate::runtime::bounded::prefix;
use crate::state::{StateStore, Watermark};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
}

impl Ingestor {
    /// An ingestor storing into `memory`, keeping watermarks in `state`.
    pub fn new(memory: Arc<Memory>, state: Arc<StateStore>) -> Self {
        Ingestor { memory, state }
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

    /// Ingests a transcript file, or every `*.jsonl` file under a directory,
    /// from their watermarks; `progress` is told the bytes done so far and
    /// the bytes in all.
    pub async fn ingest_path(
        &self,
        path: &Path,
        options: &IngestOptions,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<IngestReport, IngestError> {
        // The file system is read on the blocking pool, never on an async
        // worker: a slow disk or a huge directory holds no other request.
        let files = {
            let path = path.to_path_buf();
            off_worker(move || transcript_files(&path)).await?
        };
        let mut plan = Vec::new();
        let mut total = 0u64;
        for file in files {
            let key = file.to_string_lossy().into_owned();
            let meta = {
                let (file, key) = (file.clone(), key.clone());
                off_worker(move || {
                    std::fs::metadata(&file)
                        .map_err(|e| IngestError::Io(format!("cannot read `{key}`: {e}")))
                })
                .await?
            };
            let mut mark = self.watermark(&key, &options.namespace).await?;
            if meta.len() < mark.offset {
                // Truncated or replaced: read it again from the top.
                mark = Watermark::default();
            }
            total += meta.len() - mark.offset;
            let idle = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= IDLE);
            plan.push((file, key, mark.offset, meta.len(), idle));
        }
        let mut report = IngestReport::default();
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
                    off_worker(move || read_range(&file, offset, chunk_size)).await?
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
                    if at_end {
                        break; // an exchange still open in a live file
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

/// A file, or the `*.jsonl` files under a directory (sorted, recursive).
pub fn transcript_files(path: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| IngestError::Io(format!("cannot read `{}`: {e}", path.display())))?;
    let path = std::fs::canonicalize(path)
        .map_err(|e| IngestError::Io(format!("cannot resolve `{}`: {e}", path.display())))?;
    if meta.is_file() {
        return Ok(vec![path]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| IngestError::Io(format!("cannot list `{}`: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let p = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(p);
            } else if kind.is_file() && p.extension().is_some_and(|e| e == "jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Up to `max` bytes of `file` from `offset`.
pub fn read_range(file: &Path, offset: u64, max: usize) -> Result<Vec<u8>, IngestError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| IngestError::Io(format!("cannot read `{}`: {e}", file.display()));
    let mut f = std::fs::File::open(file).map_err(io)?;
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = Vec::with_capacity(max.min(CHUNK_BYTES));
    f.take(max as u64).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}
