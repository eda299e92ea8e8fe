//! The host's own durable state, in one SQLite file in the data directory.
//!
//! It holds each skill's version history (what was published, when, from
//! which sidecar manifest), which is what rollback and a restart read, and
//! the memory ingest's per-file watermarks and last run.
//! Writes are small and rare, so one connection behind a mutex is enough;
//! WAL mode keeps a crash from losing a committed row.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

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

/// The state database.
pub struct StateStore {
    conn: Mutex<Connection>,
}

impl StateStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
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
             );",
        )?;
        // Added with workflows; older databases gain the column.
        let has_workflow: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('skill_versions') WHERE name = 'workflow'")?
            .exists([])?;
        if !has_workflow {
            conn.execute_batch("ALTER TABLE skill_versions ADD COLUMN workflow TEXT")?;
        }
        Ok(StateStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a publish and keeps only the newest `keep` rows of that skill.
    /// Returns the shas that no row references any more.
    pub fn push_version(
        &self,
        row: &VersionRow,
        keep: usize,
    ) -> Result<(i64, Vec<String>), StateError> {
        let mut conn = self.conn();
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
    }

    /// The newest `limit` versions of a skill, newest first.
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<VersionRow>, StateError> {
        let conn = self.conn();
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
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The newest version of a skill.
    pub fn latest(&self, name: &str) -> Result<Option<VersionRow>, StateError> {
        Ok(self.history(name, 1)?.into_iter().next())
    }

    /// Removes one version row (the one a rollback leaves). Returns its sha if
    /// no other row references it.
    pub fn remove_version(&self, id: i64) -> Result<Option<String>, StateError> {
        let mut conn = self.conn();
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
    }
}

impl StateStore {
    /// Where the ingest of `source` into `namespace` stopped.
    pub fn watermark(&self, source: &str, namespace: &str) -> Result<Watermark, StateError> {
        let conn = self.conn();
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
    }

    /// Moves the watermark of `source` to `to`, if it is still at `from`
    /// (another ingest of the same file may have moved it): `false` if not.
    pub fn advance_watermark(
        &self,
        source: &str,
        namespace: &str,
        from: u64,
        to: &Watermark,
        now_ms: i64,
    ) -> Result<bool, StateError> {
        let mut conn = self.conn();
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
    }

    /// Records an ingest run and the newest message it read.
    pub fn record_ingest(
        &self,
        now_ms: i64,
        newest_message_ms: Option<i64>,
    ) -> Result<(), StateError> {
        self.conn().execute(
            "INSERT INTO ingest_status (id, last_run_at_ms, newest_message_ms) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET last_run_at_ms = ?1,
                 newest_message_ms = max(coalesce(newest_message_ms, ?2), coalesce(?2, newest_message_ms))",
            params![now_ms, newest_message_ms],
        )?;
        Ok(())
    }

    /// The last ingest run, if any.
    pub fn ingest_status(&self) -> Result<Option<IngestStatus>, StateError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT last_run_at_ms, newest_message_ms FROM ingest_status WHERE id = 1",
                [],
                |r| {
                    Ok(IngestStatus {
                        last_run_at_ms: r.get(0)?,
                        newest_message_ms: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// How many files have a watermark.
    pub fn watermark_count(&self) -> Result<u64, StateError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT count(*) FROM ingest_watermarks", [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

fn unreferenced(conn: &Connection, shas: Vec<String>) -> Result<Vec<String>, StateError> {
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

    #[test]
    fn watermarks_move_only_from_where_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateStore::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(db.watermark("/a", "org").unwrap(), Watermark::default());
        let w1 = Watermark {
            offset: 100,
            lines: 4,
            session_id: Some("s".into()),
        };
        assert!(db.advance_watermark("/a", "org", 0, &w1, 1).unwrap());
        assert_eq!(db.watermark("/a", "org").unwrap(), w1);
        assert_eq!(db.watermark("/a", "user:1").unwrap(), Watermark::default());
        let w2 = Watermark {
            offset: 250,
            lines: 9,
            session_id: None,
        };
        // A stale writer (still at 50) is refused; the one at 100 moves it.
        assert!(!db.advance_watermark("/a", "org", 50, &w2, 2).unwrap());
        assert!(db.advance_watermark("/a", "org", 100, &w2, 2).unwrap());
        assert_eq!(db.watermark("/a", "org").unwrap().offset, 250);
        assert_eq!(db.watermark_count().unwrap(), 1);

        assert_eq!(db.ingest_status().unwrap(), None);
        db.record_ingest(10, Some(5)).unwrap();
        db.record_ingest(20, None).unwrap();
        db.record_ingest(30, Some(3)).unwrap();
        let status = db.ingest_status().unwrap().unwrap();
        assert_eq!(
            (status.last_run_at_ms, status.newest_message_ms),
            (30, Some(5))
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

    #[test]
    fn keeps_the_newest_versions_and_reports_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let db = StateStore::open(&dir.path().join("state.db")).unwrap();
        for sha in ["a", "b", "c"] {
            db.push_version(&row("echo", sha), 2).unwrap();
        }
        db.push_version(&row("other", "a"), 2).unwrap();
        let (_, orphans) = db.push_version(&row("echo", "d"), 2).unwrap();
        assert_eq!(orphans, vec!["b".to_string()]);
        let shas: Vec<_> = db
            .history("echo", 10)
            .unwrap()
            .into_iter()
            .map(|r| r.sha256)
            .collect();
        assert_eq!(shas, ["d", "c"]);
        let top = db.latest("echo").unwrap().unwrap();
        assert_eq!(db.remove_version(top.id).unwrap(), Some("d".into()));
        assert_eq!(db.latest("echo").unwrap().unwrap().sha256, "c");
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        StateStore::open(&path)
            .unwrap()
            .push_version(&row("echo", "a"), 5)
            .unwrap();
        let db = StateStore::open(&path).unwrap();
        assert_eq!(db.latest("echo").unwrap().unwrap().sha256, "a");
    }
}
