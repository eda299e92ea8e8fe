//! Gaps: what a rule found, durable, one per fingerprint at a time.
//!
//! A gap is `pending` while its rule's condition holds for less than `for`,
//! `firing` once it has held that long, and `resolved` when the clear
//! condition holds. Every transition is written to SQLite (`DATA/gaps.db`)
//! before anything acts on it, so a restart in the middle of a `for`
//! resumes the same pending gap instead of starting again, and a firing gap
//! keeps its card. The card is reconciled with the gap at each evaluation
//! (`card_state` says what the card shows), so a board that was down when a
//! gap fired gets its card at the next evaluation, and never two.

use crate::capabilities::kpi::Labels;
use crate::state::Db;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// Evaluations kept per gap; older ones are dropped.
pub const KEPT_EVALUATIONS: usize = 200;

/// Where a gap is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GapState {
    /// The condition holds, not yet for `for`.
    Pending,
    /// The condition has held for `for`: the gap has a card.
    Firing,
    /// The clear condition held after it fired.
    Resolved,
}

impl GapState {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            GapState::Pending => "pending",
            GapState::Firing => "firing",
            GapState::Resolved => "resolved",
        }
    }

    /// Reads a name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(GapState::Pending),
            "firing" => Some(GapState::Firing),
            "resolved" => Some(GapState::Resolved),
            _ => None,
        }
    }
}

/// What the gap's card shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// Open, in the factory's list.
    Open,
    /// Moved to Done.
    Done,
}

/// One gap.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Gap {
    /// Its id.
    pub id: i64,
    /// The rule that found it.
    pub rule: String,
    /// The values of the rule's `by` labels: with the rule, the fingerprint.
    pub labels: Labels,
    /// Where it is.
    pub state: GapState,
    /// Its rule's severity when it was found.
    pub severity: String,
    /// Since when the condition held this time, ms.
    pub pending_since_ms: u64,
    /// When it last fired, ms.
    pub fired_at_ms: Option<u64>,
    /// When it last resolved, ms.
    pub resolved_at_ms: Option<u64>,
    /// The newest value its rule measured.
    pub value: f64,
    /// The rule's fire condition, as text (`> 2`).
    pub condition: String,
    /// The card it has, once it fired.
    pub card_id: Option<String>,
    /// What the card shows.
    pub card_state: Option<CardState>,
    /// The value the card last reported.
    pub reported_value: Option<f64>,
    /// Since when the clear condition has held while it fires, ms: it
    /// resolves once that has lasted `keep_firing_for`.
    pub clearing_since_ms: Option<u64>,
    /// Until when it opens, comments and escalates nothing, ms.
    pub silenced_until_ms: Option<u64>,
    /// The channels a critical gap was escalated to since it last fired
    /// (`telegram`, `openclaw`).
    #[serde(rename = "escalated_to", serialize_with = "channels")]
    #[schema(value_type = Vec<String>)]
    pub escalated: i64,
    /// When it last changed, ms.
    pub updated_at_ms: u64,
}

/// One evaluation of a gap's rule and group.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Evaluation {
    /// When, ms.
    pub at_ms: u64,
    /// The value measured; `None` when there was none.
    pub value: Option<f64>,
    /// The samples it came from.
    pub samples: u64,
    /// The gap's state after it.
    pub state: GapState,
    /// What happened: `fired`, `pending`, `resolved`, `no data`, `inhibited by ...`.
    pub note: String,
}

/// Why the gap store failed.
#[derive(Debug, thiserror::Error)]
#[error("gap database: {0}")]
pub struct GapError(#[from] rusqlite::Error);

type Key = (String, String);

/// The gaps, in SQLite, with the newest gap of each fingerprint in memory.
#[derive(Clone)]
pub struct GapStore {
    db: Db,
    latest: Arc<RwLock<BTreeMap<Key, Gap>>>,
}

/// The fingerprint of a group within its rule: its labels as JSON.
pub fn fingerprint(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_default()
}

const COLUMNS: &str = "id, rule, labels, state, severity, pending_since_ms, fired_at_ms, \
     resolved_at_ms, value, condition, card_id, card_state, reported_value, \
     silenced_until_ms, escalated, updated_at_ms, clearing_since_ms";

fn gap_of(r: &Row<'_>) -> rusqlite::Result<Gap> {
    let labels: String = r.get(2)?;
    let state: String = r.get(3)?;
    let card_state: Option<String> = r.get(11)?;
    let ms = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
    };
    Ok(Gap {
        id: r.get(0)?,
        rule: r.get(1)?,
        labels: serde_json::from_str(&labels).unwrap_or_default(),
        state: GapState::parse(&state).unwrap_or(GapState::Resolved),
        severity: r.get(4)?,
        pending_since_ms: r.get::<_, i64>(5)? as u64,
        fired_at_ms: ms(6)?,
        resolved_at_ms: ms(7)?,
        value: r.get(8)?,
        condition: r.get(9)?,
        card_id: r.get(10)?,
        card_state: card_state.as_deref().map(|s| match s {
            "open" => CardState::Open,
            _ => CardState::Done,
        }),
        reported_value: r.get(12)?,
        silenced_until_ms: ms(13)?,
        escalated: r.get::<_, i64>(14)?,
        updated_at_ms: r.get::<_, i64>(15)? as u64,
        clearing_since_ms: ms(16)?,
    })
}

impl GapStore {
    /// Opens (or creates) the store at `path`. Blocking: call it at start-up.
    pub fn open(path: &Path) -> Result<Self, GapError> {
        let db = Db::open(path, |conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS gaps (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     rule TEXT NOT NULL,
                     fingerprint TEXT NOT NULL,
                     labels TEXT NOT NULL,
                     state TEXT NOT NULL,
                     severity TEXT NOT NULL,
                     pending_since_ms INTEGER NOT NULL,
                     fired_at_ms INTEGER,
                     resolved_at_ms INTEGER,
                     value REAL NOT NULL,
                     condition TEXT NOT NULL,
                     card_id TEXT,
                     card_state TEXT,
                     reported_value REAL,
                     silenced_until_ms INTEGER,
                     escalated INTEGER NOT NULL DEFAULT 0,
                     updated_at_ms INTEGER NOT NULL,
                     clearing_since_ms INTEGER
                 );
                 CREATE INDEX IF NOT EXISTS gaps_by_fingerprint ON gaps(rule, fingerprint, id);
                 CREATE TABLE IF NOT EXISTS gap_evaluations (
                     gap INTEGER NOT NULL,
                     at_ms INTEGER NOT NULL,
                     value REAL,
                     samples INTEGER NOT NULL,
                     state TEXT NOT NULL,
                     note TEXT NOT NULL,
                     PRIMARY KEY (gap, at_ms)
                 ) WITHOUT ROWID;",
            )
        })?;
        let latest = db.blocking(|conn| -> rusqlite::Result<BTreeMap<Key, Gap>> {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM gaps WHERE id IN (
                     SELECT MAX(id) FROM gaps GROUP BY rule, fingerprint)"
            ))?;
            let gaps = stmt.query_map([], gap_of)?;
            let mut latest = BTreeMap::new();
            for gap in gaps {
                let gap = gap?;
                latest.insert((gap.rule.clone(), fingerprint(&gap.labels)), gap);
            }
            Ok(latest)
        })?;
        Ok(GapStore {
            db,
            latest: Arc::new(RwLock::new(latest)),
        })
    }

    /// The newest gap of a rule's group.
    pub fn latest(&self, rule: &str, labels: &Labels) -> Option<Gap> {
        self.read()
            .get(&(rule.to_string(), fingerprint(labels)))
            .cloned()
    }

    /// The newest gap of each fingerprint of rule `rule`.
    pub fn latest_of_rule(&self, rule: &str) -> Vec<Gap> {
        self.read()
            .range((rule.to_string(), String::new())..)
            .take_while(|((r, _), _)| r == rule)
            .map(|(_, g)| g.clone())
            .collect()
    }

    /// The newest gap of every fingerprint.
    pub fn all_latest(&self) -> Vec<Gap> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Key, Gap>> {
        self.latest.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a new gap (its `id` is given by the store) and answers it.
    pub async fn insert(&self, mut gap: Gap) -> Result<Gap, GapError> {
        let latest = self.latest.clone();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                tx.execute(
                    "INSERT INTO gaps (rule, fingerprint, labels, state, severity,
                         pending_since_ms, value, condition, updated_at_ms)
                     VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        gap.rule,
                        fingerprint(&gap.labels),
                        gap.state.name(),
                        gap.severity,
                        gap.pending_since_ms as i64,
                        gap.value,
                        gap.condition,
                        gap.updated_at_ms as i64,
                    ],
                )?;
                gap.id = tx.last_insert_rowid();
                write_fields(&tx, &gap)?;
                tx.commit()?;
                let mut latest = latest.write().unwrap_or_else(|p| p.into_inner());
                latest.insert((gap.rule.clone(), fingerprint(&gap.labels)), gap.clone());
                Ok(gap)
            })
            .await
    }

    /// Writes every field of a stored gap (a gap no longer stored is left
    /// alone).
    pub async fn update(&self, gap: Gap) -> Result<(), GapError> {
        let latest = self.latest.clone();
        self.db
            .call(move |conn| {
                if write_fields(conn, &gap)? == 0 {
                    return Ok(());
                }
                let mut latest = latest.write().unwrap_or_else(|p| p.into_inner());
                let key = (gap.rule.clone(), fingerprint(&gap.labels));
                if latest.get(&key).is_some_and(|g| g.id == gap.id) {
                    latest.insert(key, gap);
                }
                Ok(())
            })
            .await
    }

    /// Silences gap `id` until `until_ms` (only that field is written):
    /// the gap, or `None` when there is none.
    pub async fn silence(&self, id: i64, until_ms: u64) -> Result<Option<Gap>, GapError> {
        let latest = self.latest.clone();
        self.db
            .call(move |conn| {
                let changed = conn.execute(
                    "UPDATE gaps SET silenced_until_ms = ?2 WHERE id = ?1",
                    params![id, until_ms as i64],
                )?;
                if changed == 0 {
                    return Ok(None);
                }
                let gap = conn.query_row(
                    &format!("SELECT {COLUMNS} FROM gaps WHERE id = ?1"),
                    [id],
                    gap_of,
                )?;
                let mut latest = latest.write().unwrap_or_else(|p| p.into_inner());
                let key = (gap.rule.clone(), fingerprint(&gap.labels));
                if latest.get(&key).is_some_and(|g| g.id == id) {
                    latest.insert(key, gap.clone());
                }
                Ok(Some(gap))
            })
            .await
    }

    /// Resolved gaps whose card is still open and which are no longer the
    /// newest of their fingerprint (their card's close failed, and a newer
    /// gap came).
    pub async fn resolved_with_open_cards(&self) -> Result<Vec<Gap>, GapError> {
        let newest: std::collections::BTreeSet<i64> = self.read().values().map(|g| g.id).collect();
        let gaps = self
            .db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM gaps WHERE state = 'resolved' AND card_state = 'open'"
                ))?;
                let gaps = stmt
                    .query_map([], gap_of)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, GapError>(gaps)
            })
            .await?;
        Ok(gaps
            .into_iter()
            .filter(|g| !newest.contains(&g.id))
            .collect())
    }

    /// Forgets a gap that never fired (its condition cleared while pending).
    pub async fn remove(&self, gap: &Gap) -> Result<(), GapError> {
        let (id, key) = (gap.id, (gap.rule.clone(), fingerprint(&gap.labels)));
        let latest = self.latest.clone();
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                tx.execute("DELETE FROM gap_evaluations WHERE gap = ?1", [id])?;
                tx.execute("DELETE FROM gaps WHERE id = ?1", [id])?;
                let previous = tx
                    .query_row(
                        &format!(
                            "SELECT {COLUMNS} FROM gaps WHERE rule = ?1 AND fingerprint = ?2
                             ORDER BY id DESC LIMIT 1"
                        ),
                        params![key.0, key.1],
                        gap_of,
                    )
                    .optional()?;
                tx.commit()?;
                let mut latest = latest.write().unwrap_or_else(|p| p.into_inner());
                match previous {
                    Some(previous) => latest.insert(key, previous),
                    None => latest.remove(&key),
                };
                Ok(())
            })
            .await
    }

    /// Records the evaluations of one pass in one transaction, keeping the
    /// newest [`KEPT_EVALUATIONS`] of each gap.
    pub async fn record_many(&self, evaluations: Vec<(i64, Evaluation)>) -> Result<(), GapError> {
        if evaluations.is_empty() {
            return Ok(());
        }
        self.db
            .call(move |conn| {
                let tx = conn.transaction()?;
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT OR REPLACE INTO gap_evaluations (gap, at_ms, value, samples, state, note)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    let mut trim = tx.prepare_cached(
                        "DELETE FROM gap_evaluations WHERE gap = ?1 AND at_ms <= (
                             SELECT at_ms FROM gap_evaluations WHERE gap = ?1
                             ORDER BY at_ms DESC LIMIT 1 OFFSET ?2)",
                    )?;
                    for (gap, e) in &evaluations {
                        insert.execute(params![
                            gap,
                            e.at_ms as i64,
                            e.value,
                            e.samples as i64,
                            e.state.name(),
                            e.note,
                        ])?;
                        trim.execute(params![gap, KEPT_EVALUATIONS as i64])?;
                    }
                }
                tx.commit()
            })
            .await?;
        Ok(())
    }

    /// Gaps in `state` (all when `None`), newest first, at most `limit`,
    /// with ids below `before`.
    pub async fn list(
        &self,
        state: Option<GapState>,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Gap>, GapError> {
        self.db
            .call(move |conn| {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM gaps
                     WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3"
                ))?;
                let gaps = stmt
                    .query_map(
                        params![state.map(GapState::name), before, limit as i64],
                        gap_of,
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(gaps)
            })
            .await
    }

    /// One gap and its evaluations, newest first.
    pub async fn get(&self, id: i64) -> Result<Option<(Gap, Vec<Evaluation>)>, GapError> {
        self.db.call(move |conn| get(conn, id)).await
    }
}

fn get(conn: &mut Connection, id: i64) -> Result<Option<(Gap, Vec<Evaluation>)>, GapError> {
    let Some(gap) = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM gaps WHERE id = ?1"),
            [id],
            gap_of,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, value, samples, state, note FROM gap_evaluations
         WHERE gap = ?1 ORDER BY at_ms DESC",
    )?;
    let evaluations = stmt
        .query_map([id], |r| {
            let state: String = r.get(3)?;
            Ok(Evaluation {
                at_ms: r.get::<_, i64>(0)? as u64,
                value: r.get(1)?,
                samples: r.get::<_, i64>(2)? as u64,
                state: GapState::parse(&state).unwrap_or(GapState::Resolved),
                note: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((gap, evaluations)))
}

fn channels<S: serde::Serializer>(bits: &i64, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    super::escalate::Channel::of(*bits).serialize(s)
}

/// Writes the fields of `gap` that change into its row: the rows changed.
fn write_fields(conn: &Connection, gap: &Gap) -> rusqlite::Result<usize> {
    conn.execute(
        "UPDATE gaps SET state = ?2, severity = ?3, pending_since_ms = ?4,
             fired_at_ms = ?5, resolved_at_ms = ?6, value = ?7, condition = ?8,
             card_id = ?9, card_state = ?10, reported_value = ?11,
             silenced_until_ms = ?12, escalated = ?13, updated_at_ms = ?14,
             clearing_since_ms = ?15
         WHERE id = ?1",
        params![
            gap.id,
            gap.state.name(),
            gap.severity,
            gap.pending_since_ms as i64,
            gap.fired_at_ms.map(|v| v as i64),
            gap.resolved_at_ms.map(|v| v as i64),
            gap.value,
            gap.condition,
            gap.card_id,
            card_state_text(gap.card_state),
            gap.reported_value,
            gap.silenced_until_ms.map(|v| v as i64),
            gap.escalated,
            gap.updated_at_ms as i64,
            gap.clearing_since_ms.map(|v| v as i64),
        ],
    )
}

fn card_state_text(state: Option<CardState>) -> Option<&'static str> {
    state.map(|s| match s {
        CardState::Open => "open",
        CardState::Done => "done",
    })
}
