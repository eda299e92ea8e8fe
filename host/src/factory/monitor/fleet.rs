//! The fleet monitor: how many heartbeat cycles each agent has missed, as
//! `fleet.missed_heartbeats{agent}`: whole cycles of the agent's own
//! interval since the host last heard from it, less the time the host
//! itself was down (from its last measurement before it stopped to its
//! start): the host's own downtime is not the agents', and a restart
//! neither forgets nor adds an agent's missed cycles.

use super::{labels, when, Measurement, Monitor};
use crate::capabilities::fleet::Fleet;
use std::sync::Arc;

/// The series it writes.
pub const SERIES: &str = "fleet.missed_heartbeats";

/// Counts missed heartbeats.
pub struct FleetMonitor {
    fleet: Arc<Fleet>,
    /// When the host was not listening: `(last measured, started)`.
    down: (u64, u64),
}

impl FleetMonitor {
    /// Watches the agents of `fleet` on a host that started at
    /// `started_ms`, and last measured them before at `last_measured_ms`
    /// (none: the host's whole past is downtime).
    pub fn new(fleet: Arc<Fleet>, started_ms: u64, last_measured_ms: Option<u64>) -> Self {
        let from = last_measured_ms.unwrap_or(0).min(started_ms);
        FleetMonitor {
            fleet,
            down: (from, started_ms),
        }
    }
}

/// Time from `last_seen_ms` to `now_ms` that the host was up, when it was
/// down over `down` (from, to).
fn up_since(down: (u64, u64), last_seen_ms: u64, now_ms: u64) -> u64 {
    let (down_from, down_to) = down;
    let overlap = now_ms
        .min(down_to)
        .saturating_sub(last_seen_ms.max(down_from));
    now_ms.saturating_sub(last_seen_ms).saturating_sub(overlap)
}

#[async_trait::async_trait]
impl Monitor for FleetMonitor {
    fn name(&self) -> &'static str {
        "fleet"
    }

    async fn measure(&self, now_ms: u64) -> Result<Measurement, String> {
        let agents = self.fleet.agents().await.map_err(|e| {
            format!(
                "cannot read the fleet registry ({}): {e}",
                self.fleet.backend_name()
            )
        })?;
        let mut m = Measurement::default();
        for agent in agents {
            let interval_ms = agent.interval_seconds.max(1) * 1000;
            let missed = up_since(self.down, agent.last_seen_ms, now_ms) / interval_ms;
            let l = labels([("agent", agent.agent.as_str())]);
            m.sample(SERIES, l.clone(), missed as f64, now_ms);
            if missed > 0 {
                m.evidence(
                    SERIES,
                    l,
                    format!(
                        "agent {}: last heartbeat {} (every {} s), {missed} cycles missed",
                        agent.agent,
                        when(agent.last_seen_ms),
                        agent.interval_seconds
                    ),
                );
            }
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::up_since;

    #[test]
    fn the_hosts_downtime_is_not_counted_against_an_agent() {
        // Host measured last at 100, started again at 1000.
        let down = (100, 1000);
        // Seen at 40: 60 ms before the host went down, 500 since it is up.
        assert_eq!(up_since(down, 40, 1500), 560);
        // Seen while the host was down (another host took the beat).
        assert_eq!(up_since(down, 400, 1500), 500);
        // Seen after the start.
        assert_eq!(up_since(down, 1200, 1500), 300);
        // A host with no past measurement counts from its start.
        assert_eq!(up_since((0, 1000), 40, 1500), 500);
    }
}
