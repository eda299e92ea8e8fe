//! The embedded registry: agents in a SQLite file in the data directory,
//! read from a copy in memory. A heartbeat is written through (one upsert)
//! before it is acknowledged, so a restart keeps every agent; reads and
//! routing never touch the disk. Routed counts live in memory only: they
//! matter until the agent's next heartbeat.

use super::{AgentRecord, FleetBackend, FleetError, Heartbeat};
use crate::state::Db;
use rusqlite::params;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

type Agents = Arc<RwLock<BTreeMap<String, Arc<AgentRecord>>>>;

/// A registry in SQLite (written on the blocking pool, never on an async
/// worker).
pub struct EmbeddedFleet {
    db: Db,
    agents: Agents,
}

fn db(e: rusqlite::Error) -> FleetError {
    FleetError::Unavailable(format!("fleet database: {e}"))
}

impl EmbeddedFleet {
    /// Opens (or creates) the registry at `path`.
    pub fn open(path: &Path) -> Result<Self, FleetError> {
        let database = Db::open(path, |conn| {
            // WAL with NORMAL: a heartbeat survives a crash of the host; an
            // OS crash may lose the last ones, which the agents send again.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS fleet_agents (
                     agent TEXT PRIMARY KEY,
                     heartbeat TEXT NOT NULL,
                     received_at_ms INTEGER NOT NULL,
                     first_seen_ms INTEGER NOT NULL,
                     heartbeats INTEGER NOT NULL
                 );",
            )
        })
        .map_err(db)?;
        let mut agents = BTreeMap::new();
        database.blocking(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT heartbeat, received_at_ms, first_seen_ms, heartbeats FROM fleet_agents",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(db)?;
            for row in rows {
                let (json, received, first, count) = row.map_err(db)?;
                let heartbeat: Heartbeat = serde_json::from_str(&json).map_err(|e| {
                    FleetError::Unavailable(format!(
                        "fleet database: a stored heartbeat is unreadable: {e}"
                    ))
                })?;
                agents.insert(
                    heartbeat.agent.clone(),
                    Arc::new(AgentRecord {
                        heartbeat,
                        received_at_ms: received as u64,
                        first_seen_ms: first as u64,
                        heartbeats: count as u64,
                        routed_since_heartbeat: 0,
                    }),
                );
            }
            Ok::<_, FleetError>(())
        })?;
        Ok(EmbeddedFleet {
            db: database,
            agents: Arc::new(RwLock::new(agents)),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<AgentRecord>>> {
        self.agents.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn write(agents: &Agents) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<AgentRecord>>> {
    agents.write().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl FleetBackend for EmbeddedFleet {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn heartbeat(
        &self,
        beat: Heartbeat,
        now_ms: u64,
    ) -> Result<Arc<AgentRecord>, FleetError> {
        let json = serde_json::to_string(&beat)
            .map_err(|e| FleetError::Invalid(format!("cannot encode the heartbeat: {e}")))?;
        let agents = self.agents.clone();
        self.db
            .call(move |conn| {
                // One writer at a time (the connection's lock): the database
                // and the copy change together.
                let (first_seen_ms, heartbeats): (i64, i64) = conn
                    .query_row(
                        "INSERT INTO fleet_agents (agent, heartbeat, received_at_ms, first_seen_ms, heartbeats)
                         VALUES (?1, ?2, ?3, ?3, 1)
                         ON CONFLICT (agent) DO UPDATE SET heartbeat = excluded.heartbeat,
                             received_at_ms = excluded.received_at_ms, heartbeats = heartbeats + 1
                         RETURNING first_seen_ms, heartbeats",
                        params![beat.agent, json, now_ms as i64],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(db)?;
                let record = Arc::new(AgentRecord {
                    heartbeat: beat,
                    received_at_ms: now_ms,
                    first_seen_ms: first_seen_ms as u64,
                    heartbeats: heartbeats as u64,
                    routed_since_heartbeat: 0,
                });
                write(&agents).insert(record.heartbeat.agent.clone(), record.clone());
                Ok(record)
            })
            .await
    }

    async fn get(&self, agent: &str) -> Result<Option<Arc<AgentRecord>>, FleetError> {
        Ok(self.read().get(agent).cloned())
    }

    async fn all(&self) -> Result<Vec<Arc<AgentRecord>>, FleetError> {
        Ok(self.read().values().cloned().collect())
    }

    async fn routed(&self, agent: &str) -> Result<(), FleetError> {
        if let Some(record) = write(&self.agents).get_mut(agent) {
            // Copies the record only if a reader still holds this version.
            Arc::make_mut(record).routed_since_heartbeat += 1;
        }
        Ok(())
    }

    async fn remove(&self, agent: &str) -> Result<bool, FleetError> {
        let (agents, agent) = (self.agents.clone(), agent.to_string());
        self.db
            .call(move |conn| {
                let removed = conn
                    .execute("DELETE FROM fleet_agents WHERE agent = ?1", params![agent])
                    .map_err(db)?;
                write(&agents).remove(&agent);
                Ok(removed > 0)
            })
            .await
    }
}
