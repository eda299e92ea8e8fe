//! The runs the factory made of skills by their triggers (`gap: KIND`,
//! `cron: …`), kept in `DATA/runs.db`: what ran, why, with what input,
//! how it ended and how long it took.
//!
//! A run is written before the skill is called, under a key that names
//! what it is for (`gap:ID:FIRED_AT`, `cron:SLOT`), unique per skill: a
//! firing or a schedule slot runs a skill once, whatever the evaluations
//! and restarts. A run a restart cut short is kept as `interrupted` and
//! not made again (the skill may have acted already).

use crate::state::Db;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database failed.
    #[error("run store: {0}")]
    Db(#[from] rusqlite::Error),
    /// A stored row could not be read back.
    #[error("run store: a stored run is unreadable: {0}")]
    Corrupt(String),
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Being run.
    Running,
    /// The skill answered.
    Ok,
    /// The skill failed (its error says how).
    Failed,
    /// Not run: the previous run of the skill was still running.
    Skipped,
    /// The host stopped while it ran.
    Interrupted,
}

impl RunState {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Ok => "ok",
            RunState::Failed => "failed",
            RunState::Skipped => "skipped",
            RunState::Interrupted => "interrupted",
        }
    }
}

/// One run of a skill by its trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Run {
    /// Its id.
    pub id: i64,
    /// The skill run.
    pub skill: String,
    /// sha256 of the version that ran.
    pub sha256: String,
    /// The trigger that ran it: `gap: KIND` or `cron: …`.
    pub trigger: String,
    /// What it was for: `gap:ID:FIRED_AT_MS` or `cron:SLOT_MS`.
    pub key: String,
    /// The gap it answered, for a gap trigger.
    pub gap_id: Option<i64>,
    /// When it was due, ms on the host's clock: the gap's firing, or the
    /// schedule's minute.
    pub due_at_ms: u64,
    /// How it ended, or that it runs.
    pub state: RunState,
    /// Its input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Its output, when it answered one: its JSON, or the text when it is
    /// not JSON or longer than 4 KiB (then cut).
    #[schema(value_type = Option<serde_json::Value>)]
    pub output: Option<Value>,
    /// Why it failed, or was skipped or interrupted.
    pub error: Option<String>,
    /// When it started, ms on the host's clock.
    pub started_at_ms: u64,
    /// How long it took, ms.
    pub took_ms: Option<f64>,
}

/// `DATA/runs.db`.
#[derive(Clone)]
pub struct RunStore {
    db: Db,
}

fn corrupt(e: serde_json::Error) -> RunError {
    RunError::Corrupt(e.to_string())
}

fn read_doc(doc: String, id: i64) -> Result<Run, RunError> {
    let mut run: Run = serde_json::from_str(&doc).map_err(corrupt)?;
    run.id = id;
    Ok(run)
}

impl RunStore {
    /// Opens (or creates) the store; runs a previous process left running
    /// are marked interrupted. Blocking: call it at start-up.
    pub fn open(path: &Path) -> Result<Self, RunError> {
        let db = Db::open(path, |conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS runs (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     skill TEXT NOT NULL,
                     key TEXT NOT NULL,
                     state TEXT NOT NULL,
                     due_at_ms INTEGER NOT NULL,
                     doc TEXT NOT NULL,
                     UNIQUE (skill, key)
                 );
                 CREATE INDEX IF NOT EXISTS runs_by_skill ON runs(skill, due_at_ms);",
            )
        })?;
        let store = RunStore { db };
        store.db.blocking(|conn| -> Result<(), RunError> {
            let mut stmt = conn.prepare("SELECT id, doc FROM runs WHERE state = 'running'")?;
            let left: Vec<(i64, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            for (id, doc) in left {
                let mut run = read_doc(doc, id)?;
                run.state = RunState::Interrupted;
                run.error = Some("the host stopped while it ran; it is not run again".into());
                let doc = serde_json::to_string(&run).map_err(corrupt)?;
                conn.execute(
                    "UPDATE runs SET state = 'interrupted', doc = ?2 WHERE id = ?1",
                    params![id, doc],
                )?;
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// Writes a run about to start (or a skipped one), unless the skill
    /// already has one of its key: the run with its id, or `None`.
    pub async fn start(&self, mut run: Run) -> Result<Option<Run>, RunError> {
        self.db
            .call(move |conn| {
                let doc = serde_json::to_string(&run).map_err(corrupt)?;
                let added = conn.execute(
                    "INSERT OR IGNORE INTO runs (skill, key, state, due_at_ms, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        run.skill,
                        run.key,
                        run.state.name(),
                        run.due_at_ms as i64,
                        doc
                    ],
                )?;
                if added == 0 {
                    return Ok(None);
                }
                run.id = conn.last_insert_rowid();
                Ok(Some(run))
            })
            .await
    }

    /// Writes how a run ended.
    pub async fn finish(&self, run: &Run) -> Result<(), RunError> {
        let doc = serde_json::to_string(run).map_err(corrupt)?;
        let (id, state) = (run.id, run.state.name());
        self.db
            .call(move |conn| {
                conn.execute(
                    "UPDATE runs SET state = ?2, doc = ?3 WHERE id = ?1",
                    params![id, state, doc],
                )?;
                Ok(())
            })
            .await
    }

    /// The latest time a run of `skill` by `trigger` was due.
    pub async fn last_due(&self, skill: &str, trigger: &str) -> Result<Option<u64>, RunError> {
        let (skill, trigger) = (skill.to_string(), trigger.to_string());
        self.db
            .call(move |conn| {
                Ok(conn
                    .query_row(
                        "SELECT MAX(due_at_ms) FROM runs
                         WHERE skill = ?1 AND json_extract(doc, '$.trigger') = ?2",
                        params![skill, trigger],
                        |r| r.get::<_, Option<i64>>(0),
                    )
                    .optional()?
                    .flatten()
                    .map(|v| v as u64))
            })
            .await
    }

    /// Runs, newest first: of `skill` if given, with ids below `before`.
    pub async fn list(
        &self,
        skill: Option<String>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Run>, RunError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT id, doc FROM runs
                     WHERE (?1 IS NULL OR skill = ?1) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3",
                )?;
                let rows: Vec<(i64, String)> = stmt
                    .query_map(params![skill, before, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                    .collect::<Result<_, _>>()?;
                rows.into_iter()
                    .map(|(id, doc)| read_doc(doc, id))
                    .collect()
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(skill: &str, key: &str, due: u64) -> Run {
        Run {
            id: 0,
            skill: skill.into(),
            sha256: "ab".into(),
            trigger: "cron: * * * * *".into(),
            key: key.into(),
            gap_id: None,
            due_at_ms: due,
            state: RunState::Running,
            input: serde_json::json!({}),
            output: None,
            error: None,
            started_at_ms: due,
            took_ms: None,
        }
    }

    #[tokio::test]
    async fn a_key_runs_once_and_a_run_cut_short_is_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let store = RunStore::open(&path).unwrap();
        let first = store.start(run("a", "cron:60000", 60_000)).await.unwrap();
        assert!(first.is_some());
        assert!(store
            .start(run("a", "cron:60000", 60_000))
            .await
            .unwrap()
            .is_none());
        assert!(store
            .start(run("b", "cron:60000", 60_000))
            .await
            .unwrap()
            .is_some());
        let mut done = store
            .start(run("a", "cron:120000", 120_000))
            .await
            .unwrap()
            .unwrap();
        done.state = RunState::Ok;
        store.finish(&done).await.unwrap();
        assert_eq!(
            store.last_due("a", "cron: * * * * *").await.unwrap(),
            Some(120_000)
        );
        assert_eq!(store.last_due("a", "cron: 0 9 * * *").await.unwrap(), None);
        drop(store);
        let store = RunStore::open(&path).unwrap();
        let runs = store.list(Some("a".into()), None, 10).await.unwrap();
        let states: Vec<RunState> = runs.iter().map(|r| r.state).collect();
        assert_eq!(states, [RunState::Ok, RunState::Interrupted]);
        assert_eq!(
            store.list(None, Some(runs[0].id), 10).await.unwrap().len(),
            2
        );
    }
}
