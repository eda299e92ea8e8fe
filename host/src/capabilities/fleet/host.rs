//! The host side of the `fleet` interface: reads for a skill whose manifest
//! says `fleet = "read"` or `"write"`, heartbeats for its own agent only
//! with `"write"`.

use super::{AgentView, Fleet, FleetError, Heartbeat, RouteRequest, Status};
use crate::capabilities::SkillContext;
use crate::runtime::bindings::darkfactory::skill::fleet as wit;
use crate::runtime::SkillState;
use std::sync::Arc;

type Result<T> = wasmtime::Result<std::result::Result<T, wit::FleetError>>;

impl wit::Host for SkillState {
    async fn agents(&mut self) -> Result<Vec<wit::Agent>> {
        let (fleet, _) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        Ok(fleet
            .agents()
            .await
            .map(|agents| agents.into_iter().map(to_wit_agent).collect())
            .map_err(to_wit))
    }

    async fn get_agent(&mut self, name: String) -> Result<wit::Agent> {
        let (fleet, _) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        Ok(fleet.agent(&name).await.map(to_wit_agent).map_err(to_wit))
    }

    async fn route(
        &mut self,
        task: String,
        required_skills: Vec<String>,
    ) -> Result<wit::RouteDecision> {
        let (fleet, _) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let request = RouteRequest {
            task,
            required_skills,
        };
        Ok(fleet
            .route(request)
            .await
            .map(|d| wit::RouteDecision {
                agent: d.agent,
                score: d.score,
                reasons: d.reasons,
                candidates: d
                    .candidates
                    .into_iter()
                    .map(|c| wit::Candidate {
                        agent: c.agent,
                        status: to_wit_status(c.status),
                        eligible: c.eligible,
                        score: c.score,
                        skill_match: c.skill_match,
                        load: c.load,
                        reason: c.reason,
                    })
                    .collect(),
            })
            .map_err(to_wit))
    }

    async fn send_heartbeat(&mut self, beat: wit::Heartbeat) -> Result<()> {
        let (fleet, ctx) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let Some(grant) = ctx.fleet.as_ref().filter(|g| g.write) else {
            return Ok(Err(wit::FleetError::Denied(format!(
                "skill `{}` may not send heartbeats: its manifest needs `fleet = \"write\"`",
                ctx.skill
            ))));
        };
        let beat = Heartbeat {
            agent: grant.agent.clone(),
            skills: beat.skills,
            current_task: beat.current_task,
            load: beat.load,
            specialties: beat.specialties,
            last_heartbeat: None,
            interval_seconds: None,
        };
        Ok(fleet.heartbeat(beat).await.map(drop).map_err(to_wit))
    }
}

/// The registry and the skill's context: `denied` when its manifest has no
/// `fleet` grant (a component may import `fleet` without one; every call
/// then answers this), `unavailable` when the host has no registry.
fn service(
    state: &SkillState,
) -> std::result::Result<(Arc<Fleet>, Arc<SkillContext>), wit::FleetError> {
    let Some(ctx) = state.context::<SkillContext>() else {
        return Err(wit::FleetError::Denied("this skill has no grants".into()));
    };
    if ctx.fleet.is_none() {
        return Err(wit::FleetError::Denied(format!(
            "skill `{}` may not use the fleet registry: its manifest has no `fleet` grant \
             (`fleet = \"read\"` or `\"write\"`)",
            ctx.skill
        )));
    }
    let Some(fleet) = ctx.capabilities.fleet.clone() else {
        return Err(wit::FleetError::Unavailable(
            "this host has no fleet registry".to_string(),
        ));
    };
    Ok((fleet, ctx))
}

fn to_wit(e: FleetError) -> wit::FleetError {
    match e {
        FleetError::Invalid(m) => wit::FleetError::Invalid(m),
        FleetError::Denied(m) => wit::FleetError::Denied(m),
        FleetError::NotFound(m) | FleetError::NoAgentFits(m) => wit::FleetError::NotFound(m),
        FleetError::Unavailable(_) => wit::FleetError::Unavailable(e.to_string()),
    }
}

fn to_wit_status(s: Status) -> wit::AgentStatus {
    match s {
        Status::Up => wit::AgentStatus::Up,
        Status::Stale => wit::AgentStatus::Stale,
        Status::Down => wit::AgentStatus::Down,
    }
}

fn to_wit_agent(a: AgentView) -> wit::Agent {
    wit::Agent {
        name: a.agent,
        status: to_wit_status(a.status),
        skills: a.skills,
        specialties: a.specialties,
        current_task: a.current_task,
        load: a.load,
        interval_seconds: a.interval_seconds,
        last_seen: a.last_seen_ms,
    }
}
