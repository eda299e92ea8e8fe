//! The host's own durable state, in one SQLite file in the data directory.
//!
//! It holds each skill's version history (what was published, when, from
//! which sidecar manifest), which is what rollback and a restart read; the
//! load failures of skill files, so that a file that failed is not tried
//! again after a restart until it changes; and the memory ingest's per-file
//! watermarks, its last run, and the model calls whose usage it recorded.
//! Writes are small and rare, so one connection is enough; WAL mode keeps a
//! crash from losing a committed row, and every call runs on the blocking
//! pool ([`Db`]), never on an async worker.

mod db;

pub use db::Db;

use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::path::Path;

/// Errors of the state database.
#[derive(Debug, thiserror::Error)]
#[error("state database: {0}")]
pub struct StateError(#[from] rusqlite::Error);

/// One published version of a skill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Row id; grows with every publish.
    pub id: i64,
    /// Skill name.
    pub name: String,
    /// sha256 of the component bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// Text of the sidecar manifest in force, if any.
    pub sidecar: Option<String>,
    /// When it was published, milliseconds since the Unix epoch.
    pub published_at_ms: i64,
    /// How it arrived: `file`, `api` or `rollback`.
    pub source: String,
    /// The `workflow.md` source the component was compiled from, if it was.
    pub workflow: Option<String>,
}

/// Where the ingest of one transcript file stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    /// Bytes of the file done with.
    pub offset: u64,
    /// Lines within those bytes.
    pub lines: u64,
    /// The session in effect at `offset`.
    pub session_id: Option<String>,
}

/// The last ingest run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestStatus {
    /// When an ingest last ran, in milliseconds since the Unix epoch.
    pub last_run_at_ms: i64,
    /// The newest message any ingest has read.
    pub newest_message_ms: Option<i64>,
}

/// A skill file that failed to load, kept so that a restart does not try
/// it again until it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    /// Skill name.
    pub name: String,
    /// What identifies the input that failed (its content hashes).
    pub key: String,
    /// The error, as the skill's `last_error` shows it.
    pub error: String,
    /// When it failed, milliseconds since the Unix epoch.
    pub at_ms: i64,
}

/// The state database.
#[derive(Clone)]
pub struct StateStore {
    db: Db,
}

impl StateStore {
    /// Opens (or creates) the database at `path`. Blocking: call it at
    /// start-up.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = Db::open(path, |conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS skill_versions (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     name TEXT NOT NULL,
                     sha256 TEXT NOT NULL,
                     size INTEGER NOT NULL,
                     sidecar TEXT,
                     published_at_ms INTEGER NOT NULL,
                     source TEXT NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS skill_versions_by_name ON skill_versions(name, id);
                 CREATE TABLE IF NOT EXISTS skill_load_failures (
                     name TEXT PRIMARY KEY,
                     input_key TEXT NOT NULL,
                     error TEXT NOT NULL,
                     at_ms INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS ingest_watermarks (
                     source TEXT NOT NULL,
                     namespace TEXT NOT NULL,
                     offset INTEGER NOT NULL,
                     lines INTEGER NOT NULL,
                     session_id TEXT,
                     updated_at_ms INTEGER NOT NULL,
                     PRIMARY KEY (source, namespace)
                 );
                 CREATE TABLE IF NOT EXISTS ingest_status (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     last_run_at_ms INTEGER NOT NULL,
                     newest_message_ms INTEGER
                 );
                 CREATE TABLE IF NOT EXISTS usage_recorded (
                     fingerprint TEXT PRIMARY KEY,
                     message_at_ms INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX IF NOT EXISTS usage_recorded_by_time
                     ON usage_recorded(message_at_ms);
                 CREATE TABLE IF NOT EXISTS host_downtime (
                     from_ms INTEGER NOT NULL,
                     to_ms INTEGER NOT NULL,
                     PRIMARY KEY (from_ms, to_ms)
                 ) WITHOUT ROWID;",
            )?;
            // Added with workflows; older databases gain the column.
            let has_workflow: bool = conn
                .prepare(
                    "SELECT 1 FROM pragma_table_info('skill_versions') WHERE name = 'workflow'",
                )?
                .exists([])?;
            if !has_workflow {
                conn.execute_batch("ALTER TABLE skill_versions ADD COLUMN workflow TEXT")?;
            }
            Ok(())
        })?;
        Ok(StateStore { db })
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, StateError> {
        Ok(self.db.call(f).await?)
    }

    /// Records a publish and keeps only the newest `keep` rows of that skill.
    /// Returns the shas that no row references any more.
    pub async fn push_version(
        &self,
        row: VersionRow,
        keep: usize,
    ) -> Result<(i64, Vec<String>), StateError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO skill_versions (name, sha256, size, sidecar, published_at_ms, source, workflow)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.name,
                    row.sha256,
                    row.size as i64,
                    row.sidecar,
                    row.published_at_ms,
                    row.source,
                    row.workflow
                ],
            )?;
            let id = tx.last_insert_rowid();
            let pruned: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT sha256 FROM skill_versions WHERE name = ?1
                     ORDER BY id DESC LIMIT -1 OFFSET ?2",
                )?;
                let rows = stmt.query_map(params![row.name, keep as i64], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            tx.execute(
                "DELETE FROM skill_versions WHERE name = ?1 AND id NOT IN
                 (SELECT id FROM skill_versions WHERE name = ?1 ORDER BY id DESC LIMIT ?2)",
                params![row.name, keep as i64],
            )?;
            let orphans = unreferenced(&tx, pruned)?;
            tx.commit()?;
            Ok((id, orphans))
        })
        .await
    }

    /// The newest `limit` versions of a skill, newest first.
    pub async fn history(&self, name: &str, limit: usize) -> Result<Vec<VersionRow>, StateError> {
        let name = name.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, sha256, size, sidecar, published_at_ms, source, workflow
                 FROM skill_versions WHERE name = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![name, limit as i64], |r| {
                Ok(VersionRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    sha256: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    sidecar: r.get(4)?,
                    published_at_ms: r.get(5)?,
                    source: r.get(6)?,
                    workflow: r.get(7)?,
                })
            })?;
            rows.collect::<Result<_, _>>()
        })
        .await
    }

    /// The newest version of a skill.
    pub async fn latest(&self, name: &str) -> Result<Option<VersionRow>, StateError> {
        Ok(self.history(name, 1).await?.into_iter().next())
    }

    /// Removes one version row (the one a rollback leaves). Returns its sha if
    /// no other row references it.
    pub async fn remove_version(&self, id: i64) -> Result<Option<String>, StateError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let sha: Option<String> = tx
                .query_row(
                    "SELECT sha256 FROM skill_versions WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute("DELETE FROM skill_versions WHERE id = ?1", params![id])?;
            let orphans = unreferenced(&tx, sha.into_iter().collect())?;
            tx.commit()?;
            Ok(orphans.into_iter().next())
        })
        .await
    }

    /// Every recorded load failure. Blocking: the registry reads them once,
    /// at start-up.
    pub fn load_failures(&self) -> Result<Vec<FailureRow>, StateError> {
        Ok(self.db.blocking(|conn| {
            let mut stmt =
                conn.prepare("SELECT name, input_key, error, at_ms FROM skill_load_failures")?;
            let rows = stmt.query_map([], |r| {
                Ok(FailureRow {
                    name: r.get(0)?,
                    key: r.get(1)?,
                    error: r.get(2)?,
                    at_ms: r.get(3)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?)
    }

    /// Forgets a skill's load failure, on this thread. Blocking: for the
    /// registry's start-up.
    pub fn forget_failure_now(&self, name: &str) -> Result<(), StateError> {
        Ok(self.db.blocking(|conn| {
            conn.execute(
                "DELETE FROM skill_load_failures WHERE name = ?1",
                params![name],
            )
            .map(|_| ())
        })?)
    }

    /// Records that the input `row.key` of a skill failed to load.
    pub async fn record_failure(&self, row: FailureRow) -> Result<(), StateError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO skill_load_failures (name, input_key, error, at_ms)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET input_key = ?2, error = ?3, at_ms = ?4",
                params![row.name, row.key, row.error, row.at_ms],
            )?;
            Ok(())
        })
        .await
    }

    /// Forgets a skill's load failure (it loaded, or its file is gone).
    pub async fn clear_failure(&self, name: &str) -> Result<(), StateError> {
        let name = name.to_string();
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM skill_load_failures WHERE name = ?1",
                params![name],
            )?;
            Ok(())
        })
        .await
    }
}

impl StateStore {
    /// Where the ingest of `source` into `namespace` stopped.
    pub async fn watermark(&self, source: &str, namespace: &str) -> Result<Watermark, StateError> {
        let (source, namespace) = (source.to_string(), namespace.to_string());
        self.call(move |conn| {
            let row = conn
                .query_row(
                    "SELECT offset, lines, session_id FROM ingest_watermarks
                     WHERE source = ?1 AND namespace = ?2",
                    params![source, namespace],
                    |r| {
                        Ok(Watermark {
                            offset: r.get::<_, i64>(0)? as u64,
                            lines: r.get::<_, i64>(1)? as u64,
                            session_id: r.get(2)?,
                        })
                    },
                )
                .optional()?;
            Ok(row.unwrap_or_default())
        })
        .await
    }

    /// Moves the watermark of `source` to `to`, if it is still at `from`
    /// (another ingest of the same file may have moved it): `false` if not.
    pub async fn advance_watermark(
        &self,
        source: &str,
        namespace: &str,
        from: u64,
        to: &Watermark,
        now_ms: i64,
    ) -> Result<bool, StateError> {
        let (source, namespace, to) = (source.to_string(), namespace.to_string(), to.clone());
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let current: Option<i64> = tx
                .query_row(
                    "SELECT offset FROM ingest_watermarks WHERE source = ?1 AND namespace = ?2",
                    params![source, namespace],
                    |r| r.get(0),
                )
                .optional()?;
            // Offset 0 is a deliberate restart from the top (ids keep it idempotent).
            if from != 0 && current.unwrap_or(0) as u64 != from {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO ingest_watermarks (source, namespace, offset, lines, session_id, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (source, namespace) DO UPDATE SET offset = ?3, lines = ?4,
                     session_id = ?5, updated_at_ms = ?6",
                params![source, namespace, to.offset as i64, to.lines as i64, to.session_id, now_ms],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// Records an ingest run and the newest message it read.
    pub async fn record_ingest(
        &self,
        now_ms: i64,
        newest_message_ms: Option<i64>,
    ) -> Result<(), StateError> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO ingest_status (id, last_run_at_ms, newest_message_ms) VALUES (1, ?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET last_run_at_ms = ?1,
                     newest_message_ms = max(coalesce(newest_message_ms, ?2), coalesce(?2, newest_message_ms))",
                params![now_ms, newest_message_ms],
            )?;
            Ok(())
        })
        .await
    }

    /// The last ingest run, if any.
    pub async fn ingest_status(&self) -> Result<Option<IngestStatus>, StateError> {
        self.call(|conn| {
            conn.query_row(
                "SELECT last_run_at_ms, newest_message_ms FROM ingest_status WHERE id = 1",
                [],
                |r| {
                    Ok(IngestStatus {
                        last_run_at_ms: r.get(0)?,
                        newest_message_ms: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Which of `fingerprints` (of model calls whose usage the ingest
    /// records) are recorded already.
    pub async fn usage_recorded(
        &self,
        fingerprints: Vec<String>,
    ) -> Result<HashSet<String>, StateError> {
        self.call(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT 1 FROM usage_recorded WHERE fingerprint = ?1")?;
            let mut seen = HashSet::new();
            for fp in fingerprints {
                if stmt.exists(params![fp])? {
                    seen.insert(fp);
                }
            }
            Ok(seen)
        })
        .await
    }

    /// Notes model calls as recorded (fingerprint, the message's time), and
    /// forgets those older than `forget_before_ms` (which no ingest can
    /// record again).
    pub async fn record_usage(
        &self,
        calls: Vec<(String, i64)>,
        forget_before_ms: i64,
    ) -> Result<(), StateError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO usage_recorded (fingerprint, message_at_ms)
                     VALUES (?1, ?2)",
                )?;
                for (fp, at) in &calls {
                    stmt.execute(params![fp, at])?;
                }
            }
            tx.execute(
                "DELETE FROM usage_recorded WHERE message_at_ms < ?1",
                params![forget_before_ms],
            )?;
            tx.commit()
        })
        .await
    }

    /// Records that the host was down from `from_ms` (its last
    /// measurement) to `to_ms` (its start), forgets the times it was down
    /// that ended before `forget_before_ms`, and answers every one kept,
    /// oldest first.
    pub async fn record_downtime(
        &self,
        from_ms: u64,
        to_ms: u64,
        forget_before_ms: u64,
    ) -> Result<Vec<(u64, u64)>, StateError> {
        self.call(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR IGNORE INTO host_downtime (from_ms, to_ms) VALUES (?1, ?2)",
                params![from_ms as i64, to_ms as i64],
            )?;
            tx.execute(
                "DELETE FROM host_downtime WHERE to_ms < ?1",
                params![forget_before_ms as i64],
            )?;
            let kept = tx
                .prepare("SELECT from_ms, to_ms FROM host_downtime ORDER BY from_ms")?
                .query_map([], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit()?;
            Ok(kept)
        })
        .await
    }

    /// How many files have a watermark.
    pub async fn watermark_count(&self) -> Result<u64, StateError> {
        self.call(|conn| {
            let n: i64 =
                conn.query_row("SELECT count(*) FROM ingest_watermarks", [], |r| r.get(0))?;
            Ok(n as u64)
        })
        .await
    }
}

fn unreferenced(conn: &Connection, shas: Vec<String>) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    for sha in shas {
        let n: i64 = conn.query_row(
            "SELECT count(*) FROM skill_versions WHERE sha256 = ?1",
            params![sha],
            |r| r.get(0),
        )?;
        if n == 0 && !out.contains(&sha) {
            out.push(sha);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod ingest_tests {
    use super::*;

    #[tokio::test]
    async fn watermarks_move_only_from_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateStore::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(
            db.watermark("/a", "org").await.unwrap(),
            Watermark::default()
        );
        let w1 = Watermark {
            offset: 100,
            lines: 4,
            session_id: Some("s".into()),
        };
        assert!(db.advance_watermark("/a", "org", 0, &w1, 1).await.unwrap());
        assert_eq!(db.watermark("/a", "org").await.unwrap(), w1);
        assert_eq!(
            db.watermark("/a", "user:1").await.unwrap(),
            Watermark::default()
        );
        let w2 = Watermark {
            offset: 250,
            lines: 9,
            session_id: None,
        };
        // A stale writer (still at 50) is refused; the one at 100 moves it.
        assert!(!db.advance_watermark("/a", "org", 50, &w2, 2).await.unwrap());
        assert!(db
            .advance_watermark("/a", "org", 100, &w2, 2)
            .await
            .unwrap());
        assert_eq!(db.watermark("/a", "org").await.unwrap().offset, 250);
        assert_eq!(db.watermark_count().await.unwrap(), 1);

        assert_eq!(db.ingest_status().await.unwrap(), None);
        db.record_ingest(10, Some(5)).await.unwrap();
        db.record_ingest(20, None).await.unwrap();
        db.record_ingest(30, Some(3)).await.unwrap();
        let status = db.ingest_status().await.unwrap().unwrap();
        assert_eq!(
            (status.last_run_at_ms, status.newest_message_ms),
            (30, Some(5))
        );
    }

    #[tokio::test]
    async fn recorded_usage_is_known_until_it_is_too_old_to_record() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateStore::open(&dir.path().join("s.db")).unwrap();
        let fps = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(db
            .usage_recorded(fps(&["a", "b"]))
            .await
            .unwrap()
            .is_empty());
        db.record_usage(vec![("a".into(), 100), ("b".into(), 200)], 0)
            .await
            .unwrap();
        // Again: nothing changes.
        db.record_usage(vec![("a".into(), 100)], 0).await.unwrap();
        let seen = db.usage_recorded(fps(&["a", "b", "c"])).await.unwrap();
        assert_eq!(seen, HashSet::from(["a".to_string(), "b".to_string()]));
        db.record_usage(vec![], 150).await.unwrap();
        let seen = db.usage_recorded(fps(&["a", "b"])).await.unwrap();
        assert_eq!(seen, HashSet::from(["b".to_string()]));
    }

    #[tokio::test]
    async fn the_hosts_downtimes_are_kept_until_they_are_old() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateStore::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(db.record_downtime(0, 100, 0).await.unwrap(), [(0, 100)]);
        assert_eq!(
            db.record_downtime(500, 900, 0).await.unwrap(),
            [(0, 100), (500, 900)]
        );
        assert_eq!(
            db.record_downtime(950, 960, 200).await.unwrap(),
            [(500, 900), (950, 960)]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, sha: &str) -> VersionRow {
        VersionRow {
            id: 0,
            name: name.into(),
            sha256: sha.into(),
            size: 1,
            sidecar: None,
            published_at_ms: 1,
            source: "file".into(),
            workflow: None,
        }
    }

    #[tokio::test]
    async fn keeps_the_newest_versions_and_reports_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateStore::open(&dir.path().join("state.db")).unwrap();
        for sha in ["a", "b", "c"] {
            db.push_version(row("echo", sha), 2).await.unwrap();
        }
        db.push_version(row("other", "a"), 2).await.unwrap();
        let (_, orphans) = db.push_version(row("echo", "d"), 2).await.unwrap();
        assert_eq!(orphans, vec!["b".to_string()]);
        let shas: Vec<_> = db
            .history("echo", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.sha256)
            .collect();
        assert_eq!(shas, ["d", "c"]);
        let top = db.latest("echo").await.unwrap().unwrap();
        assert_eq!(db.remove_version(top.id).await.unwrap(), Some("d".into()));
        assert_eq!(db.latest("echo").await.unwrap().unwrap().sha256, "c");
    }

    #[tokio::test]
    async fn load_failures_are_kept_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let db = StateStore::open(&path).unwrap();
        let failure = FailureRow {
            name: "spin".into(),
            key: "abc:-".into(),
            error: "does not start".into(),
            at_ms: 7,
        };
        db.record_failure(failure.clone()).await.unwrap();
        let again = FailureRow {
            error: "still does not start".into(),
            ..failure.clone()
        };
        db.record_failure(again.clone()).await.unwrap();
        let db = StateStore::open(&path).unwrap();
        assert_eq!(db.load_failures().unwrap(), vec![again]);
        db.clear_failure("spin").await.unwrap();
        assert!(db.load_failures().unwrap().is_empty());
    }

    #[tokio::test]
    async fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        StateStore::open(&path)
            .unwrap()
            .push_version(row("echo", "a"), 5)
            .await
            .unwrap();
        let db = StateStore::open(&path).unwrap();
        assert_eq!(db.latest("echo").await.unwrap().unwrap().sha256, "a");
    }
}
