//! The fleet monitor: how many heartbeat cycles each agent has missed, as
//! `fleet.missed_heartbeats{agent}` (whole cycles of the agent's own
//! interval since the host last heard from it, or since the host started
//! when that is later: the host's own downtime is not the agents').

use super::{labels, when, Measurement, Monitor};
use crate::capabilities::fleet::Fleet;
use std::sync::Arc;

/// The series it writes.
pub const SERIES: &str = "fleet.missed_heartbeats";

/// Counts missed heartbeats.
pub struct FleetMonitor {
    fleet: Arc<Fleet>,
    started_ms: u64,
}

impl FleetMonitor {
    /// Watches the agents of `fleet`, from `started_ms` (the host's start)
    /// on.
    pub fn new(fleet: Arc<Fleet>, started_ms: u64) -> Self {
        FleetMonitor { fleet, started_ms }
    }
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
            let since = agent.last_seen_ms.max(self.started_ms);
            let missed = now_ms.saturating_sub(since) / interval_ms;
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
