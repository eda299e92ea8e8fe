//! The host's own durable state, in one SQLite file in the data directory.
//!
//! Today it holds each skill's version history (what was published, when,
//! from which sidecar manifest), which is what rollback and a restart read.
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
             CREATE INDEX IF NOT EXISTS skill_versions_by_name ON skill_versions(name, id);",
        )?;
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
            "INSERT INTO skill_versions (name, sha256, size, sidecar, published_at_ms, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.name,
                row.sha256,
                row.size as i64,
                row.sidecar,
                row.published_at_ms,
                row.source
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
            "SELECT id, name, sha256, size, sidecar, published_at_ms, source
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
