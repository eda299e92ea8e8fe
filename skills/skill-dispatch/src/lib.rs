//! `dispatch`: which agent should take this task?
//!
//! One of three actions per call:
//!
//! - `{"task": "literature review of RAG papers", "require": ["research"]}`
//!   answers `{"agent", "score", "reasons", "candidates": [{"agent",
//!   "score", "reason"}]}`; when no agent fits, the error `fleet-not-found`
//!   says why each was passed over;
//! - `{"agents": true}` answers `{"agents": [{"name", "status", "load",
//!   "skills"}]}`;
//! - `{"report": {"load": 0.2, "skills": [...], "task": "..."}}` sends a
//!   heartbeat for the skill's own agent. Its manifest grants `fleet =
//!   "read"` only, so the host refuses with `fleet-denied` until a sidecar
//!   `dispatch.toml` grants `fleet = "write"`.

use darkfactory_sdk::{export_skill, fleet, SkillError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    task: Option<String>,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    agents: bool,
    report: Option<Report>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Report {
    load: f64,
    #[serde(default)]
    skills: Vec<String>,
    task: Option<String>,
}

#[derive(Serialize)]
struct Considered {
    agent: String,
    score: f64,
    reason: String,
}

#[derive(Serialize)]
struct Listed {
    name: String,
    status: &'static str,
    load: f64,
    skills: Vec<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Routed {
        agent: String,
        score: f64,
        reasons: Vec<String>,
        candidates: Vec<Considered>,
    },
    Agents {
        agents: Vec<Listed>,
    },
    Reported {
        reported: bool,
    },
}

fn status(s: fleet::AgentStatus) -> &'static str {
    match s {
        fleet::AgentStatus::Up => "up",
        fleet::AgentStatus::Stale => "stale",
        fleet::AgentStatus::Down => "down",
    }
}

fn dispatch(input: Input) -> Result<Output, SkillError> {
    match (input.task, input.agents, input.report) {
        (Some(task), false, None) => {
            let mut route = fleet::route(task);
            for skill in input.require {
                route = route.require(skill);
            }
            let d = route.run()?;
            Ok(Output::Routed {
                agent: d.agent,
                score: d.score,
                reasons: d.reasons,
                candidates: d
                    .candidates
                    .into_iter()
                    .map(|c| Considered {
                        agent: c.agent,
                        score: c.score,
                        reason: c.reason,
                    })
                    .collect(),
            })
        }
        (None, true, None) => Ok(Output::Agents {
            agents: fleet::agents()?
                .into_iter()
                .map(|a| Listed {
                    name: a.name,
                    status: status(a.status),
                    load: a.load,
                    skills: a.skills,
                })
                .collect(),
        }),
        (None, false, Some(report)) => {
            let mut beat = fleet::heartbeat(report.load);
            for skill in report.skills {
                beat = beat.skill(skill);
            }
            if let Some(task) = report.task {
                beat = beat.task(task);
            }
            beat.send()?;
            Ok(Output::Reported { reported: true })
        }
        _ => Err(SkillError::invalid_input(
            "give exactly one of `task`, `agents: true` or `report`",
        )),
    }
}

export_skill!(
    dispatch,
    deadline_ms = 5000,
    memory_mib = 16,
    fleet = "read"
);
