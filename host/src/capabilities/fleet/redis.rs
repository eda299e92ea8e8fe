//! The Redis registry: several hosts share one fleet.
//!
//! Four hashes under a prefix (default `darkfactory:fleet`): `:agents`
//! (agent → its last heartbeat and when a host received it, JSON),
//! `:first_seen`, `:heartbeats` and `:routed` (agent → a number). A
//! heartbeat is one `MULTI`/`EXEC`: the record is replaced, the count
//! incremented, the first-seen time set if absent and the routed count
//! cleared, so two hosts receiving heartbeats at once never lose one. Reads
//! are one pipeline of `HGET`s or `HGETALL`s. Agents never expire on their
//! own: a down agent stays listed (as down) until it is forgotten.
//!
//! The connection is a `redis::aio::ConnectionManager`: it reconnects by
//! itself; every command has a timeout, and an unreachable Redis is a clear
//! `Unavailable` error, never a hang.

use super::{AgentRecord, FleetBackend, FleetError, Heartbeat};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[[user]:password@]host:port[/db]`.
    pub url: String,
    /// Key prefix of the registry's hashes.
    pub prefix: String,
    /// Timeout of one command and of one connection attempt.
    pub timeout: Duration,
}

impl RedisConfig {
    /// The default prefix, and a 2 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            prefix: "darkfactory:fleet".to_string(),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A registry in Redis.
pub struct RedisFleet {
    conn: ConnectionManager,
    keys: Keys,
    url: String,
}

struct Keys {
    agents: String,
    first_seen: String,
    heartbeats: String,
    routed: String,
}

/// What `:agents` holds per agent.
#[derive(Serialize, Deserialize)]
struct Stored {
    heartbeat: Heartbeat,
    received_at_ms: u64,
}

impl RedisFleet {
    /// A registry at `config.url`; nothing is sent until
    /// [`ping`](Self::ping) or the first call.
    pub fn new(config: RedisConfig) -> Result<Self, FleetError> {
        let client = redis::Client::open(config.url.as_str()).map_err(|e| {
            FleetError::Invalid(format!(
                "the Redis URL `{}` is invalid: {e}",
                redact(&config.url)
            ))
        })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn =
            ConnectionManager::new_lazy_with_config(client, manager_config).map_err(|e| {
                FleetError::Unavailable(format!("cannot set up the Redis connection: {e}"))
            })?;
        let p = config.prefix.trim_end_matches(':');
        Ok(RedisFleet {
            conn,
            keys: Keys {
                agents: format!("{p}:agents"),
                first_seen: format!("{p}:first_seen"),
                heartbeats: format!("{p}:heartbeats"),
                routed: format!("{p}:routed"),
            },
            url: redact(&config.url),
        })
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), FleetError> {
        let mut pipe = redis::pipe();
        pipe.cmd("PING").ignore();
        self.run::<()>(&pipe).await
    }

    /// Runs a pipeline; once more when Redis had dropped the connection (a
    /// restart), which the manager replaces by then. Every pipeline here
    /// may be repeated: at worst a heartbeat is counted twice.
    async fn run<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, FleetError> {
        let mut conn = self.conn.clone();
        match pipe.query_async(&mut conn).await {
            Ok(value) => Ok(value),
            Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                tracing::debug!(error = %e, "Redis dropped the connection; once more");
                pipe.query_async(&mut conn).await.map_err(|e| self.error(e))
            }
            Err(e) => Err(self.error(e)),
        }
    }

    fn error(&self, e: redis::RedisError) -> FleetError {
        FleetError::Unavailable(format!("Redis at {} failed: {e}", self.url))
    }

    fn record(
        &self,
        json: &str,
        first_seen: Option<u64>,
        heartbeats: Option<u64>,
        routed: Option<u64>,
    ) -> Result<AgentRecord, FleetError> {
        let stored: Stored = serde_json::from_str(json).map_err(|e| {
            FleetError::Unavailable(format!(
                "Redis key `{}` holds an entry this host cannot read: {e}",
                self.keys.agents
            ))
        })?;
        Ok(AgentRecord {
            first_seen_ms: first_seen.unwrap_or(stored.received_at_ms),
            heartbeats: heartbeats.unwrap_or(1),
            routed_since_heartbeat: routed.unwrap_or(0),
            heartbeat: stored.heartbeat,
            received_at_ms: stored.received_at_ms,
        })
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[async_trait::async_trait]
impl FleetBackend for RedisFleet {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn heartbeat(
        &self,
        beat: Heartbeat,
        now_ms: u64,
    ) -> Result<Arc<AgentRecord>, FleetError> {
        let k = &self.keys;
        let agent = beat.agent.clone();
        let stored = Stored {
            heartbeat: beat,
            received_at_ms: now_ms,
        };
        let json = serde_json::to_string(&stored)
            .map_err(|e| FleetError::Invalid(format!("cannot encode the heartbeat: {e}")))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset(&k.agents, &agent, &json)
            .ignore()
            .hset_nx(&k.first_seen, &agent, now_ms)
            .ignore()
            .hdel(&k.routed, &agent)
            .ignore()
            .hget(&k.first_seen, &agent)
            .hincr(&k.heartbeats, &agent, 1);
        let (first_seen, heartbeats): (u64, u64) = self.run(&pipe).await?;
        Ok(Arc::new(AgentRecord {
            heartbeat: stored.heartbeat,
            received_at_ms: now_ms,
            first_seen_ms: first_seen,
            heartbeats,
            routed_since_heartbeat: 0,
        }))
    }

    async fn get(&self, agent: &str) -> Result<Option<Arc<AgentRecord>>, FleetError> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        pipe.hget(&k.agents, agent)
            .hget(&k.first_seen, agent)
            .hget(&k.heartbeats, agent)
            .hget(&k.routed, agent);
        let (json, first, count, routed): (Option<String>, Option<u64>, Option<u64>, Option<u64>) =
            self.run(&pipe).await?;
        json.map(|j| self.record(&j, first, count, routed).map(Arc::new))
            .transpose()
    }

    async fn all(&self) -> Result<Vec<Arc<AgentRecord>>, FleetError> {
        let k = &self.keys;
        type Counts = HashMap<String, u64>;
        let mut pipe = redis::pipe();
        pipe.hgetall(&k.agents)
            .hgetall(&k.first_seen)
            .hgetall(&k.heartbeats)
            .hgetall(&k.routed);
        let (agents, first, counts, routed): (HashMap<String, String>, Counts, Counts, Counts) =
            self.run(&pipe).await?;
        let mut out = agents
            .iter()
            .map(|(name, json)| {
                self.record(
                    json,
                    first.get(name).copied(),
                    counts.get(name).copied(),
                    routed.get(name).copied(),
                )
                .map(Arc::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.heartbeat.agent.cmp(&b.heartbeat.agent));
        Ok(out)
    }

    async fn routed(&self, agent: &str) -> Result<(), FleetError> {
        let mut pipe = redis::pipe();
        pipe.hincr(&self.keys.routed, agent, 1).ignore();
        self.run::<()>(&pipe).await
    }

    async fn remove(&self, agent: &str) -> Result<bool, FleetError> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hdel(&k.agents, agent)
            .hdel(&k.first_seen, agent)
            .ignore()
            .hdel(&k.heartbeats, agent)
            .ignore()
            .hdel(&k.routed, agent)
            .ignore();
        let (removed,): (u64,) = self.run(&pipe).await?;
        Ok(removed > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            super::redact("redis://:s3cret@10.0.0.5:6379/2"),
            "redis://***@10.0.0.5:6379/2"
        );
        assert_eq!(
            super::redact("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }
}
