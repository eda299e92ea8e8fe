//! Handlers of the fleet registry: heartbeats in, capabilities and routes
//! out.

use super::openapi::errors;
use super::{ApiError, AppState};
use crate::capabilities::fleet::{AgentView, Fleet, Heartbeat, RouteDecision, RouteRequest};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// axum's default body limit, which these endpoints keep.
const MAX_BODY: usize = 2 << 20;

fn fleet(state: &AppState) -> Result<&Arc<Fleet>, ApiError> {
    state.fleet.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "fleet_unavailable",
            "this host runs without a fleet registry",
        )
    })
}

/// The body as JSON, whatever its `Content-Type` (a cron's `curl -d`
/// sends a form type), or `400 invalid_json` saying what is wrong.
fn json_of<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON of the expected shape: {e}"),
        )
    })
}

errors!(HeartbeatErrors {
    400 => ["invalid_json", "invalid_fleet_request"],
    403 => ["fleet_denied"],
    413 => ["payload_too_large"],
    503 => ["fleet_unavailable"],
});

/// Records an agent's heartbeat (any `Content-Type`: the body is read as
/// JSON); `200` with the agent as the registry now sees it.
#[utoipa::path(
    post,
    path = "/api/fleet/heartbeat",
    tag = "fleet",
    operation_id = "heartbeat",
    request_body = Heartbeat,
    responses((status = 200, description = "The agent.", body = AgentView), HeartbeatErrors)
)]
pub(super) async fn heartbeat(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AgentView>, ApiError> {
    let body = super::skills::body_or_error(body, MAX_BODY)?;
    let beat: Heartbeat = json_of(&body)?;
    Ok(Json(fleet(&state)?.heartbeat(beat).await?))
}

/// A page of the fleet.
#[derive(Serialize, ToSchema)]
pub(super) struct AgentPage {
    /// `embedded` or `redis`.
    backend: &'static str,
    /// The heartbeat interval of agents that do not give their own.
    default_interval_seconds: u64,
    /// Agents up (of all, not only this page).
    up: usize,
    /// Agents stale.
    stale: usize,
    /// Agents down.
    down: usize,
    /// The agents of this page, by name.
    agents: Vec<AgentView>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
}

errors!(ListErrors {
    400 => ["invalid_fleet_request"],
    503 => ["fleet_unavailable"],
});

/// The counts of agents up, stale and down, and one page of agents by name
/// with `next_cursor` when there are more.
#[utoipa::path(
    get,
    path = "/api/capabilities",
    tag = "fleet",
    operation_id = "list_agents",
    params(super::PageQuery),
    responses((status = 200, description = "A page of agents.", body = AgentPage), ListErrors)
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<super::PageQuery>, QueryRejection>,
) -> Result<Json<AgentPage>, ApiError> {
    let Query(query) = query.map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_fleet_request",
            r.body_text(),
        )
    })?;
    let limit = super::page_limit(query.limit, "invalid_fleet_request")?;
    let fleet = fleet(&state)?;
    let mut agents = fleet.agents().await?;
    let count = |s: &str| agents.iter().filter(|a| a.status.as_str() == s).count();
    let (up, stale, down) = (count("up"), count("stale"), count("down"));
    agents.sort_by(|a, b| a.agent.cmp(&b.agent));
    if let Some(cursor) = &query.cursor {
        agents.retain(|a| a.agent.as_str() > cursor.as_str());
    }
    let next_cursor = (agents.len() > limit).then(|| agents[limit - 1].agent.clone());
    agents.truncate(limit);
    Ok(Json(AgentPage {
        backend: fleet.backend_name(),
        default_interval_seconds: fleet.default_interval().as_secs(),
        up,
        stale,
        down,
        agents,
        next_cursor,
    }))
}

errors!(AgentErrors {
    400 => ["invalid_fleet_request", "bad_request"],
    404 => ["agent_not_found"],
    503 => ["fleet_unavailable"],
});

/// One agent.
#[utoipa::path(
    get,
    path = "/api/capabilities/{agent}",
    tag = "fleet",
    operation_id = "show_agent",
    params(("agent" = String, Path, description = "The agent's name: 1 to 64 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")),
    responses((status = 200, description = "The agent.", body = AgentView), AgentErrors)
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<AgentView>, ApiError> {
    Ok(Json(fleet(&state)?.agent(&agent).await?))
}

/// Forgets an agent (its next heartbeat brings it back): `204`, or `404`.
#[utoipa::path(
    delete,
    path = "/api/capabilities/{agent}",
    tag = "fleet",
    operation_id = "forget_agent",
    params(("agent" = String, Path, description = "The agent's name: 1 to 64 of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")),
    responses((status = 204, description = "Forgotten."), AgentErrors)
)]
pub(super) async fn forget(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<StatusCode, ApiError> {
    if fleet(&state)?.forget(&agent).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "agent_not_found",
            format!("no agent `{agent}` has sent a heartbeat"),
        ))
    }
}

/// A task to route, in the query.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RouteQuery {
    /// The task, in words or as a skill tag (or give it in the body): not
    /// only white space, at most 2048 characters, without control
    /// characters.
    #[param(
        pattern = "^\\s*[^\\s\\x00-\\x1f\\x7f-\\x9f](?:[^\\x00-\\x1f\\x7f-\\x9f]{0,2046}[^\\s\\x00-\\x1f\\x7f-\\x9f])?\\s*$"
    )]
    task: Option<String>,
    /// Skills the agent must have, comma-separated (each at most 64
    /// characters).
    #[param(
        pattern = "^\\s*[^,\\s\\x00-\\x1f\\x7f-\\x9f][^,\\x00-\\x1f\\x7f-\\x9f]*(,\\s*[^,\\s\\x00-\\x1f\\x7f-\\x9f][^,\\x00-\\x1f\\x7f-\\x9f]*)*$"
    )]
    require: Option<String>,
}

errors!(RouteErrors {
    400 => ["invalid_route_request", "invalid_json", "invalid_fleet_request"],
    404 => ["no_agent_fits"],
    413 => ["payload_too_large"],
    503 => ["fleet_unavailable"],
});

/// Routes a task, given as `?task=...&require=a,b` or as a JSON body
/// `{"task", "required_skills"}`: the chosen agent, its score, the reasons
/// and every candidate; `404 no_agent_fits` with the reasons otherwise.
#[utoipa::path(
    post,
    path = "/api/route",
    tag = "fleet",
    operation_id = "route_task",
    params(RouteQuery),
    request_body(content = Option<RouteRequest>, content_type = "application/json", description = "The task, when the query does not give it."),
    responses((status = 200, description = "Where the task goes, and why.", body = RouteDecision), RouteErrors)
)]
pub(super) async fn route(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<RouteDecision>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_route_request", m);
    let Query(query) = query.map_err(|r| bad(r.body_text()))?;
    let body = super::skills::body_or_error(body, MAX_BODY)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(json_of::<RouteRequest>(&body)?)
    };
    let request = match (query.task, body) {
        (Some(task), None) => RouteRequest {
            task,
            required_skills: query
                .require
                .map(|r| r.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        },
        (None, Some(request)) if query.require.is_none() => request,
        (Some(_), Some(_)) => {
            return Err(bad(
                "give the task in the query or in the body, not both".into()
            ))
        }
        _ => {
            return Err(bad(
                "give a task: `?task=...` (and `&require=a,b`), or a body \
                 {\"task\": \"...\", \"required_skills\": [...]}"
                    .into(),
            ))
        }
    };
    Ok(Json(fleet(&state)?.route(request).await?))
}
