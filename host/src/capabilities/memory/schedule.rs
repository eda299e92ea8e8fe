//! The scheduled ingest inside `serve`: at a fixed UTC time each day (or
//! every interval, with `--ingest-every`), every configured transcript
//! directory is ingested from its watermarks.

use super::ingest::{IngestOptions, Ingestor};
use super::Namespace;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A directory (or file) ingested every night, and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestSource {
    /// Transcripts: a `.jsonl` file or a directory of them.
    pub path: PathBuf,
    /// The namespace its memories go to.
    pub namespace: Namespace,
}

impl IngestSource {
    /// Parses `NAMESPACE=PATH`, or a bare `PATH` (namespace `org`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some((ns, path)) = text.split_once('=') {
            if let Ok(namespace) = Namespace::parse(ns) {
                if path.is_empty() {
                    return Err(format!("`{text}` names no path after `=`"));
                }
                return Ok(IngestSource {
                    path: path.into(),
                    namespace,
                });
            }
        }
        if text.is_empty() {
            return Err("an empty ingest source".to_string());
        }
        Ok(IngestSource {
            path: text.into(),
            namespace: Namespace::Org,
        })
    }
}

/// The daily time, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyAt {
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute, 0–59.
    pub minute: u32,
}

impl DailyAt {
    /// Parses `HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a time of day as HH:MM (UTC), e.g. 02:30");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        let (hour, minute): (u32, u32) =
            (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(DailyAt { hour, minute })
    }

    /// Time from `now` to the next occurrence (never zero: a run that just
    /// happened waits a day).
    pub fn until_next(&self, now: chrono::DateTime<chrono::Utc>) -> Duration {
        use chrono::{Duration as Span, Timelike};
        let today = now
            .with_hour(self.hour)
            .and_then(|t| t.with_minute(self.minute))
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .expect("a valid time of day");
        let next = if today > now {
            today
        } else {
            today + Span::days(1)
        };
        (next - now).to_std().unwrap_or(Duration::from_secs(60))
    }
}

/// When the scheduled ingest runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Once a day, at this time (UTC).
    Daily(DailyAt),
    /// At the start, then every interval from the start of the pass
    /// before; a pass longer than the interval delays the next (passes
    /// never overlap, and missed ones are not piled up).
    Every(Duration),
}

/// Runs the scheduled ingest until the task is dropped.
pub fn spawn(
    ingestor: Arc<Ingestor>,
    sources: Vec<IngestSource>,
    schedule: Schedule,
    min_density: f64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        match schedule {
            Schedule::Every(every) => {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    run_once(&ingestor, &sources, min_density).await;
                }
            }
            Schedule::Daily(at) => loop {
                let wait = at.until_next(chrono::Utc::now());
                tracing::info!(
                    in_secs = wait.as_secs(),
                    sources = sources.len(),
                    "next nightly ingest"
                );
                tokio::time::sleep(wait).await;
                run_once(&ingestor, &sources, min_density).await;
            },
        }
    })
}

/// One pass over every source; failures are logged, never fatal.
pub async fn run_once(ingestor: &Ingestor, sources: &[IngestSource], min_density: f64) {
    for source in sources {
        let options = IngestOptions {
            namespace: source.namespace.clone(),
            min_density,
            agent: None,
        };
        match ingestor
            .ingest_path(&source.path, &options, &|_, _| {})
            .await
        {
            // A pass that found nothing new says so quietly: at a short
            // interval most do.
            Ok(report)
                if report.stored == 0
                    && report.usage_recorded == 0
                    && report.unreadable.is_empty()
                    && report.malformed_lines == 0 =>
            {
                tracing::debug!(
                    path = %source.path.display(),
                    files = report.files,
                    "scheduled ingest: nothing new"
                )
            }
            Ok(report) => tracing::info!(
                path = %source.path.display(),
                namespace = %source.namespace,
                files = report.files,
                exchanges = report.exchanges,
                stored = report.stored,
                duplicates = report.duplicates,
                dropped = report.too_short + report.low_density,
                malformed = report.malformed_lines,
                usage_recorded = report.usage_recorded,
                unreadable = report.unreadable.len(),
                "scheduled ingest done"
            ),
            Err(e) => tracing::warn!(
                path = %source.path.display(),
                error = %e,
                "scheduled ingest failed; the watermarks keep what was done"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sources_and_times_parse() {
        let s = IngestSource::parse("agent:alfred=/h/.openclaw/agents/alfred/sessions").unwrap();
        assert_eq!(s.namespace, Namespace::Agent("alfred".into()));
        assert_eq!(s.path, PathBuf::from("/h/.openclaw/agents/alfred/sessions"));
        let bare = IngestSource::parse("/var/log/chats").unwrap();
        assert_eq!(bare.namespace, Namespace::Org);
        // A `=` that does not follow a namespace belongs to the path.
        assert_eq!(
            IngestSource::parse("/x/a=b").unwrap().path,
            PathBuf::from("/x/a=b")
        );
        assert!(IngestSource::parse("org=").is_err());
        assert_eq!(
            DailyAt::parse("02:30").unwrap(),
            DailyAt {
                hour: 2,
                minute: 30
            }
        );
        for bad in ["2", "24:00", "02:60", "ab:cd"] {
            assert!(DailyAt::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_nightly_pass_ingests_every_source_from_its_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let memory =
            Arc::new(super::super::Memory::open_embedded(&dir.path().join("m"), None).unwrap());
        let state = crate::state::StateStore::open(&dir.path().join("s.db")).unwrap();
        let ingestor = Ingestor::new(memory.clone(), Arc::new(state));
        let chats = dir.path().join("chats");
        std::fs::create_dir_all(&chats).unwrap();
        let reply: String = (0..120).map(|i| format!("topic{i} ")).collect();
        let line = |role: &str, text: &str| {
            serde_json::json!({"role": role, "content": text, "session_id": "n"}).to_string()
        };
        let file = chats.join("night.jsonl");
        std::fs::write(
            &file,
            format!(
                "{}\n{}\n",
                line("user", "what happened?"),
                line("assistant", &reply)
            ),
        )
        .unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let sources = vec![
            IngestSource::parse(&format!("agent:night={}", chats.display())).unwrap(),
            IngestSource::parse("/no/such/dir").unwrap(), // logged, not fatal
        ];
        run_once(&ingestor, &sources, 0.5).await;
        run_once(&ingestor, &sources, 0.5).await;
        let counts = memory.counts().await.unwrap();
        assert_eq!(counts.namespaces.get("agent:night"), Some(&1), "{counts:?}");
        assert!(ingestor.status().await.unwrap().is_some());
        assert_eq!(ingestor.files_tracked().await, 1);
    }

    #[test]
    fn next_run_is_later_today_or_tomorrow() {
        let at = DailyAt {
            hour: 2,
            minute: 30,
        };
        let before = chrono::Utc.with_ymd_and_hms(2026, 11, 26, 1, 0, 0).unwrap();
        assert_eq!(at.until_next(before), Duration::from_secs(90 * 60));
        let after = chrono::Utc
            .with_ymd_and_hms(2026, 11, 26, 2, 30, 0)
            .unwrap();
        assert_eq!(at.until_next(after), Duration::from_secs(24 * 3600));
    }
}
