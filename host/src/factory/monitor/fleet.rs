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
    /// When the host was not listening, `(from, to)` in ms, sorted and
    /// apart.
    down: Vec<(u64, u64)>,
}

impl FleetMonitor {
    /// Watches the agents of `fleet` on a host that was down over `down`
    /// (each from its last measurement before a stop to its next start;
    /// the first from 0 to its first start).
    pub fn new(fleet: Arc<Fleet>, mut down: Vec<(u64, u64)>) -> Self {
        FleetMonitor {
            fleet,
            down: merged(&mut down),
        }
    }
}

/// Sorted intervals, overlapping ones joined (a host killed before it
/// measured anything starts its next downtime before its last start).
fn merged(down: &mut [(u64, u64)]) -> Vec<(u64, u64)> {
    down.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(down.len());
    for &(from, to) in down.iter() {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to.max(from))),
        }
    }
    out
}

/// Time from `last_seen_ms` to `now_ms` that the host was up, when it was
/// down over `down` (sorted, apart).
fn up_since(down: &[(u64, u64)], last_seen_ms: u64, now_ms: u64) -> u64 {
    let overlap: u64 = down
        .iter()
        .map(|&(from, to)| now_ms.min(to).saturating_sub(last_seen_ms.max(from)))
        .sum();
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
            let missed = up_since(&self.down, agent.last_seen_ms, now_ms) / interval_ms;
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
    use super::{merged, up_since};

    #[test]
    fn the_hosts_downtime_is_not_counted_against_an_agent() {
        // Down until its first start at 10; measured last at 100, started
        // again at 1000.
        let down = merged(&mut [(100, 1000), (0, 10)]);
        // Seen at 40: 60 ms before the host went down, 500 since it is up.
        assert_eq!(up_since(&down, 40, 1500), 560);
        // Seen while the host was down (another host took the beat).
        assert_eq!(up_since(&down, 400, 1500), 500);
        // Seen after the start.
        assert_eq!(up_since(&down, 1200, 1500), 300);
        // Before the host ever ran: only its time up counts.
        assert_eq!(up_since(&down, 0, 1500), 590);
        // Every downtime is left out, not only the last: a daily agent
        // seen at 0, a host down from 1 h to 73 h and restarted at 74 h.
        let h = 3_600_000;
        let down = merged(&mut [(h, 73 * h), (74 * h - 60_000, 74 * h)]);
        assert_eq!(up_since(&down, 0, 74 * h) / (24 * h), 0);
        // A host killed before it measured anything: the overlap is one.
        assert_eq!(
            merged(&mut [(0, 100), (50, 200), (300, 400)]),
            [(0, 200), (300, 400)]
        );
    }
}
