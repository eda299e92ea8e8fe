//! The cost monitor: what each agent costs per session against the fleet's
//! average, from the `agent.cost_usd` samples (one per model call, labelled
//! `agent` and `session`; the memory ingest records them from OpenClaw
//! transcripts, and any agent may push its own) over the last day:
//! `agent.cost_per_session_usd{agent}` and `agent.cost_ratio{agent}`, the
//! agent's cost per session divided by the fleet's; and, beside them,
//! `agent.sessions{agent}` and `agent.tokens_per_session{agent}` (from
//! `agent.tokens`).

use super::{labels, Measurement, Monitor};
use crate::capabilities::kpi::{KpiError, KpiStore, Labels, SeriesPoints};
use crate::factory::rules::number;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// The series it reads.
pub const COST: &str = "agent.cost_usd";
/// The series it writes.
pub const PER_SESSION: &str = "agent.cost_per_session_usd";
/// The series it writes.
pub const RATIO: &str = "agent.cost_ratio";
/// The series it reads.
pub const TOKENS: &str = "agent.tokens";
/// The series it writes.
pub const SESSIONS: &str = "agent.sessions";
/// The series it writes.
pub const TOKENS_PER_SESSION: &str = "agent.tokens_per_session";

/// Per agent: the sum of a series' samples in a window, and its sessions.
type PerAgent = BTreeMap<String, (f64, BTreeSet<String>)>;

/// Sums what each agent's series hold in the window, and counts their
/// sessions (a series with nothing in the window is no session of it).
fn per_agent(series: &[SeriesPoints]) -> PerAgent {
    let mut agents = PerAgent::new();
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let Some(agent) = s.series.labels.get("agent") else {
            continue;
        };
        let session = s.series.labels.get("session").cloned().unwrap_or_default();
        let entry = agents.entry(agent.clone()).or_default();
        entry.0 += s
            .points
            .iter()
            .map(|p| p.value * p.count as f64)
            .sum::<f64>();
        entry.1.insert(session);
    }
    agents
}

/// Compares agents' costs.
pub struct CostMonitor {
    kpi: Arc<KpiStore>,
    window: Duration,
}

impl CostMonitor {
    /// Compares the costs of the last `window`.
    pub fn new(kpi: Arc<KpiStore>, window: Duration) -> Self {
        CostMonitor { kpi, window }
    }
}

#[async_trait::async_trait]
impl Monitor for CostMonitor {
    fn name(&self) -> &'static str {
        "cost"
    }

    async fn measure(&self, now_ms: u64) -> Result<Measurement, String> {
        let mut m = Measurement::default();
        let from = now_ms.saturating_sub(self.window.as_millis() as u64);
        let series = match self.kpi.read(COST, &Labels::new(), from, now_ms).await {
            Ok(series) => series,
            Err(KpiError::NotFound(_)) => return Ok(m),
            Err(e) => return Err(format!("cannot read {COST}: {e}")),
        };
        let agents = per_agent(&series);
        let tokens = match self.kpi.read(TOKENS, &Labels::new(), from, now_ms).await {
            Ok(series) => per_agent(&series),
            Err(KpiError::NotFound(_)) => PerAgent::new(),
            Err(e) => return Err(format!("cannot read {TOKENS}: {e}")),
        };
        let sessions: usize = agents.values().map(|(_, s)| s.len()).sum();
        let total: f64 = agents.values().map(|(c, _)| c).sum();
        if sessions == 0 || total <= 0.0 {
            return Ok(m);
        }
        let fleet_average = total / sessions as f64;
        for (agent, (cost, agent_sessions)) in &agents {
            let per_session = cost / agent_sessions.len() as f64;
            let ratio = per_session / fleet_average;
            let l = labels([("agent", agent.as_str())]);
            m.sample(PER_SESSION, l.clone(), per_session, now_ms);
            m.sample(RATIO, l.clone(), ratio, now_ms);
            m.sample(SESSIONS, l.clone(), agent_sessions.len() as f64, now_ms);
            if let Some((sum, sessions)) = tokens.get(agent) {
                let per_session = sum / sessions.len() as f64;
                m.sample(TOKENS_PER_SESSION, l.clone(), per_session, now_ms);
            }
            m.evidence(
                RATIO,
                l,
                format!(
                    "agent {agent}: ${} over {} in {} h, ${} a session against the fleet's ${} \
                     ({} agents, {})",
                    number(*cost),
                    plural(agent_sessions.len(), "session"),
                    self.window.as_secs() / 3600,
                    number(per_session),
                    number(fleet_average),
                    agents.len(),
                    plural(sessions, "session"),
                ),
            );
        }
        Ok(m)
    }
}

/// `1 session`, `2 sessions`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
