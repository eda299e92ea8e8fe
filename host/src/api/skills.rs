//! Handlers of `/healthz` and `/api/skills/...`.

use super::{ApiError, AppState};
use crate::registry::{Published, SkillDetails};
use crate::skill::SkillName;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// `GET /healthz`: the host answers (liveness), with counts of its skills.
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let counts = state.registry.counts();
    Json(json!({
        "status": "ok",
        "skills": counts.skills,
        "skills_serving": counts.serving,
        "skills_loading": counts.loading,
        "ready": state.registry.is_ready(),
        "pooling_allocator": state.registry.runtime().is_pooling(),
    }))
}

/// `GET /readyz`: `200` once every skill found at start has loaded or
/// failed, `503` before (readiness).
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = state.registry.counts();
    if state.registry.is_ready() {
        return Ok(Json(json!({"status": "ready", "skills": counts.skills})));
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "loading",
        format!(
            "{} of {} skills are still loading",
            counts.loading, counts.skills
        ),
    ))
}

/// `GET /api/skills?limit=&cursor=`: a page of skills by name, with
/// `next_cursor` when there are more.
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<super::PageQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))?;
    let limit = super::page_limit(query.limit, "invalid_query")?;
    let mut skills = state.registry.page(query.cursor.as_deref(), limit + 1);
    let next_cursor = (skills.len() > limit).then(|| {
        skills.truncate(limit);
        skills.last().map(|s| s.name.clone())
    });
    Ok(Json(
        json!({ "skills": skills, "next_cursor": next_cursor.flatten() }),
    ))
}

pub(super) async fn describe(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SkillDetails>, ApiError> {
    valid_name(&name)?;
    Ok(Json(state.registry.describe(&name).await?))
}

pub(super) async fn invoke(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    valid_name(&name)?;
    let body = body_or_error(body, state.max_body_bytes)?;
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {e}"),
        ));
    }
    // Valid JSON is valid UTF-8.
    let input = std::str::from_utf8(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.to_string()))?;
    let output = state.registry.invoke(&name, input).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], output).into_response())
}

/// A component, or a `workflow.md` (sent as `text/markdown`, or recognised
/// by its `+++` front matter), which is compiled first.
pub(super) async fn deploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Published>), ApiError> {
    valid_name(&name)?;
    let body = body_or_error(body, state.max_upload_bytes())?;
    let markdown = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/markdown"));
    let published = if markdown || body.starts_with(b"+++") {
        if body.len() > crate::workflow::MAX_SOURCE_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "workflow_too_large",
                format!(
                    "a workflow may be at most {} KiB",
                    crate::workflow::MAX_SOURCE_BYTES / 1024
                ),
            ));
        }
        let source = String::from_utf8(body.to_vec()).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_workflow_source",
                "the workflow is not UTF-8 text",
            )
        })?;
        let registry = state.registry.clone();
        to_the_end(async move { registry.deploy_workflow(&name, source).await }).await?
    } else {
        let (registry, bytes) = (state.registry.clone(), body.to_vec());
        to_the_end(async move { registry.deploy(&name, bytes).await }).await?
    };
    Ok((StatusCode::CREATED, Json(published)))
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Published>, ApiError> {
    valid_name(&name)?;
    let registry = state.registry.clone();
    Ok(Json(
        to_the_end(async move { registry.rollback(&name).await }).await?,
    ))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    valid_name(&name)?;
    let registry = state.registry.clone();
    to_the_end(async move { registry.remove(&name).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a change of the registry to its end even when the client goes away
/// meanwhile (hyper drops a request's future when its connection closes):
/// half a deploy would leave the directory and the serving version apart.
async fn to_the_end<T: Send + 'static>(
    change: impl std::future::Future<Output = Result<T, crate::registry::RegistryError>>
        + Send
        + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(change).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("the change did not finish: {e}"),
        )),
    }
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    SkillName::check(name).map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", m))
}

pub(super) fn body_or_error(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the request body is larger than this endpoint's limit of {limit} bytes"),
            )
        } else {
            ApiError::new(rejection.status(), "bad_request", rejection.body_text())
        }
    })
}
