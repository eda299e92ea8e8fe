//! Handlers of the fleet registry: heartbeats in, capabilities and routes
//! out.

use super::{ApiError, AppState};
use crate::capabilities::fleet::{Fleet, Heartbeat, RouteRequest};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

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

/// `POST /api/fleet/heartbeat`: records an agent's heartbeat; `200` with
/// the agent as the registry now sees it.
pub(super) async fn heartbeat(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = super::skills::body_or_error(body, MAX_BODY)?;
    let beat: Heartbeat = json_of(&body)?;
    Ok(Json(json!(fleet(&state)?.heartbeat(beat).await?)))
}

/// `GET /api/capabilities?limit=&cursor=`: the counts of agents up, stale
/// and down, and one page of agents by name with `next_cursor` when there
/// are more.
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<super::PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "backend": fleet.backend_name(),
        "default_interval_seconds": fleet.default_interval().as_secs(),
        "up": up,
        "stale": stale,
        "down": down,
        "agents": agents,
        "next_cursor": next_cursor,
    })))
}

/// `GET /api/capabilities/{agent}`.
pub(super) async fn show(
    State(state): State<AppState>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(fleet(&state)?.agent(&agent).await?)))
}

/// `DELETE /api/capabilities/{agent}`: forgets an agent (its next heartbeat
/// brings it back); `204`, or `404`.
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteQuery {
    task: Option<String>,
    /// Comma-separated.
    require: Option<String>,
}

/// `POST /api/route?task=...&require=a,b`, or a JSON body
/// `{"task", "required_skills"}`: the chosen agent, its score, the reasons
/// and every candidate; `404 no_agent_fits` with the reasons otherwise.
pub(super) async fn route(
    State(state): State<AppState>,
    query: Result<Query<RouteQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!(fleet(&state)?.route(request).await?)))
}
