//! Handlers of `/healthz` and `/api/skills/...`.

use super::{ApiError, AppState};
use crate::registry::{Published, SkillDetails, SkillName, SkillSummary};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub(super) async fn healthz(State(state): State<AppState>) -> Json<Value> {
    let skills = state.registry.list();
    let ready = skills.iter().filter(|s| s.status != "failed").count();
    Json(json!({
        "status": "ok",
        "skills": skills.len(),
        "skills_serving": ready,
        "pooling_allocator": state.registry.runtime().is_pooling(),
    }))
}

pub(super) async fn list(State(state): State<AppState>) -> Json<Value> {
    let skills: Vec<SkillSummary> = state.registry.list();
    Json(json!({ "skills": skills }))
}

pub(super) async fn describe(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SkillDetails>, ApiError> {
    valid_name(&name)?;
    Ok(Json(state.registry.describe(&name)?))
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
    let body = body_or_error(body, super::MAX_COMPONENT_BYTES)?;
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
        state.registry.deploy_workflow(&name, source).await?
    } else {
        state.registry.deploy(&name, body.to_vec()).await?
    };
    Ok((StatusCode::CREATED, Json(published)))
}

pub(super) async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Published>, ApiError> {
    valid_name(&name)?;
    Ok(Json(state.registry.rollback(&name).await?))
}

pub(super) async fn remove(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    valid_name(&name)?;
    state.registry.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
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
