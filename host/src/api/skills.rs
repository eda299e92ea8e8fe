//! Handlers of `/healthz` and `/api/skills/...`.

use super::openapi::{errors, ANY_CODE};
use super::{ApiError, AppState};
use crate::registry::{Published, SkillDetails, SkillSummary};
use crate::skill::SkillName;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// The answer of `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok`: the host answers.
    status: &'static str,
    /// Skills in the registry.
    skills: usize,
    /// Those serving a version.
    skills_serving: usize,
    /// Those whose files are still being loaded.
    skills_loading: usize,
    /// Whether every skill found at start has loaded or failed.
    ready: bool,
    /// Whether instances come from the pooling allocator.
    pooling_allocator: bool,
}

/// Liveness: the host answers, with counts of its skills.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "probes",
    operation_id = "healthz",
    security(()),
    responses((status = 200, description = "The host answers.", body = Health))
)]
pub(super) async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let counts = state.registry.counts();
    Json(Health {
        status: "ok",
        skills: counts.skills,
        skills_serving: counts.serving,
        skills_loading: counts.loading,
        ready: state.registry.is_ready(),
        pooling_allocator: state.registry.runtime().is_pooling(),
    })
}

/// The answer of `GET /readyz` once ready.
#[derive(Serialize, ToSchema)]
pub(super) struct Ready {
    /// Always `ready`.
    status: &'static str,
    /// Skills in the registry.
    skills: usize,
}

errors!(ReadyErrors { 503 => ["loading"] });

/// Readiness: `200` once every skill found at start has loaded or failed,
/// `503 loading` before.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    operation_id = "readyz",
    security(()),
    responses((status = 200, description = "Every skill found at start has loaded or failed.", body = Ready), ReadyErrors)
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let counts = state.registry.counts();
    if state.registry.is_ready() {
        return Ok(Json(Ready {
            status: "ready",
            skills: counts.skills,
        }));
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

/// A page of skills.
#[derive(Serialize, ToSchema)]
pub(super) struct SkillPage {
    /// The skills of this page, by name.
    skills: Vec<SkillSummary>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
}

errors!(ListErrors { 400 => ["invalid_query"] });

/// A page of skills by name, with `next_cursor` when there are more.
#[utoipa::path(
    get,
    path = "/api/skills",
    tag = "skills",
    operation_id = "list_skills",
    params(super::PageQuery),
    responses((status = 200, description = "A page of skills.", body = SkillPage), ListErrors)
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<super::PageQuery>, QueryRejection>,
) -> Result<Json<SkillPage>, ApiError> {
    let Query(query) = query
        .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))?;
    let limit = super::page_limit(query.limit, "invalid_query")?;
    let mut skills = state.registry.page(query.cursor.as_deref(), limit + 1);
    let next_cursor = (skills.len() > limit).then(|| {
        skills.truncate(limit);
        skills.last().map(|s| s.name.clone())
    });
    Ok(Json(SkillPage {
        skills,
        next_cursor: next_cursor.flatten(),
    }))
}

errors!(DescribeErrors {
    400 => ["invalid_name", "bad_request"],
    404 => ["skill_not_found"],
});

/// A skill: its status, manifest, limits, statistics and version history.
#[utoipa::path(
    get,
    path = "/api/skills/{name}",
    tag = "skills",
    operation_id = "describe_skill",
    params(("name" = String, Path, description = "The skill's name: 1 to 64 of a-z, 0-9, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9-]{0,63}$")),
    responses((status = 200, description = "The skill.", body = SkillDetails), DescribeErrors)
)]
pub(super) async fn describe(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<SkillDetails>, ApiError> {
    valid_name(&name)?;
    Ok(Json(state.registry.describe(&name).await?))
}

errors!(InvokeErrors {
    400 => ["invalid_name", "bad_request", "invalid_json", "invalid_input"],
    404 => ["skill_not_found"],
    413 => ["payload_too_large"],
    422 => [ANY_CODE],
    500 => ["trap", "memory_limit_exceeded", "output_too_large", "invalid_output"],
    503 => ["skill_unavailable", "busy"],
    504 => ["deadline_exceeded"],
});

/// Calls the skill with a JSON input; its JSON output is the answer. An
/// error the skill answers itself is a `422` with the skill's own code.
#[utoipa::path(
    post,
    path = "/api/skills/{name}/invoke",
    tag = "skills",
    operation_id = "invoke_skill",
    params(("name" = String, Path, description = "The skill's name: 1 to 64 of a-z, 0-9, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9-]{0,63}$")),
    request_body(content = serde_json::Value, content_type = "application/json", description = "The skill's input: any JSON its `input_schema` accepts."),
    responses((status = 200, description = "The skill's output.", body = serde_json::Value), InvokeErrors)
)]
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

errors!(DeployErrors {
    400 => ["invalid_name", "bad_request", "invalid_workflow_source"],
    413 => ["payload_too_large", "workflow_too_large"],
    422 => ["invalid_component", "invalid_workflow"],
    500 => ["storage_error", "internal_error"],
});

/// Publishes a version of the skill: a component, or a `workflow.md` (sent
/// as `text/markdown`, or recognised by its `+++` front matter), which is
/// compiled first. It serves once it has loaded and passed its health
/// check; until then, and when it fails, the last good version keeps
/// serving.
#[utoipa::path(
    put,
    path = "/api/skills/{name}",
    tag = "skills",
    operation_id = "deploy_skill",
    params(("name" = String, Path, description = "The skill's name: 1 to 64 of a-z, 0-9, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9-]{0,63}$")),
    request_body(description = "A Wasm component, or a workflow's Markdown source.", content(
        (super::openapi::Binary = "application/wasm"),
        (String = "text/markdown"),
    )),
    responses((status = 201, description = "The version published.", body = Published), DeployErrors)
)]
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

errors!(RollbackErrors {
    400 => ["invalid_name", "bad_request"],
    404 => ["skill_not_found"],
    409 => ["nothing_to_roll_back"],
    422 => ["invalid_component"],
    500 => ["storage_error", "internal_error"],
});

/// Serves the version before the serving one again.
#[utoipa::path(
    post,
    path = "/api/skills/{name}/rollback",
    tag = "skills",
    operation_id = "roll_back_skill",
    params(("name" = String, Path, description = "The skill's name: 1 to 64 of a-z, 0-9, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9-]{0,63}$")),
    responses((status = 200, description = "The version now serving.", body = Published), RollbackErrors)
)]
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

errors!(RemoveErrors {
    400 => ["invalid_name", "bad_request"],
    404 => ["skill_not_found"],
    500 => ["storage_error", "internal_error"],
});

/// Removes the skill: its files leave the skills directory and it stops
/// serving.
#[utoipa::path(
    delete,
    path = "/api/skills/{name}",
    tag = "skills",
    operation_id = "remove_skill",
    params(("name" = String, Path, description = "The skill's name: 1 to 64 of a-z, 0-9, `-`, starting with a letter or digit.", pattern = "^[a-z0-9][a-z0-9-]{0,63}$")),
    responses((status = 204, description = "Removed."), RemoveErrors)
)]
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
