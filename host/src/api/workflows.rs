//! `POST /api/workflows/check` and `POST /api/workflows/compile`: the
//! workflow compiler over HTTP. The body is the `workflow.md` text; `?name=`
//! gives the skill name when the front matter does not.

use super::error::Detail;
use super::openapi::errors;
use super::{skills::body_or_error, ApiError};
use crate::workflow::{self, CompileError, Diagnostics};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Query;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The query of both endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct NameQuery {
    /// The skill's name, when the front matter does not give it.
    name: Option<String>,
}

fn source(body: Result<Bytes, BytesRejection>) -> Result<String, ApiError> {
    let body = body_or_error(body, workflow::MAX_SOURCE_BYTES)?;
    String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_workflow_source",
            "the workflow is not UTF-8 text",
        )
    })
}

fn query(
    q: Result<Query<NameQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Option<String>, ApiError> {
    q.map(|Query(q)| q.name)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))
}

/// What a check found.
#[derive(Serialize, ToSchema)]
pub(super) struct CheckReport {
    /// The skill's name, when the front matter or the query gives one.
    name: Option<String>,
    /// Whether it compiles: no errors (warnings allowed).
    ok: bool,
    /// Errors found.
    errors: usize,
    /// Warnings found.
    warnings: usize,
    /// Every diagnostic, in source order.
    diagnostics: Diagnostics,
    /// The diagnostics as a compiler prints them, with the source lines.
    rendered: String,
    /// When it runs: `manual`, `cron: ...` or `gap: KIND`.
    trigger: String,
    /// The capability functions it calls.
    calls: Vec<String>,
}

errors!(CheckErrors {
    400 => ["invalid_query", "invalid_workflow_source", "bad_request"],
    413 => ["payload_too_large"],
    500 => ["checker_failed"],
});

/// Checks a workflow: always `200`, with `ok` and every diagnostic.
#[utoipa::path(
    post,
    path = "/api/workflows/check",
    tag = "workflows",
    operation_id = "check_workflow",
    params(NameQuery),
    request_body(content = Option<String>, content_type = "text/markdown", description = "The `workflow.md` source (none: an empty one)."),
    responses((status = 200, description = "What the check found.", body = CheckReport), CheckErrors)
)]
pub(super) async fn check(
    q: Result<Query<NameQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CheckReport>, ApiError> {
    let name = query(q)?;
    let source = source(body)?;
    let checked = tokio::task::spawn_blocking(move || {
        let checked = workflow::check(&source, name.as_deref());
        let file = format!(
            "{}{}",
            checked.name.as_deref().unwrap_or("workflow"),
            workflow::SUFFIX
        );
        let rendered = checked.diagnostics.render(&file, &source);
        (checked, rendered)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "checker_failed",
            e.to_string(),
        )
    })?;
    let (checked, rendered) = checked;
    let errors = checked.diagnostics.errors();
    Ok(Json(CheckReport {
        name: checked.name,
        ok: errors == 0,
        errors,
        warnings: checked.diagnostics.0.len() - errors,
        rendered,
        trigger: checked.header.trigger.to_string(),
        calls: checked.usage.calls(),
        diagnostics: checked.diagnostics,
    }))
}

errors!(CompileErrors {
    400 => ["invalid_query", "invalid_workflow_source", "bad_request"],
    413 => ["payload_too_large"],
    422 => ["invalid_workflow"],
    500 => ["compiler_failed"],
});

/// Compiles a workflow: `200` with the component (`application/wasm`), or
/// `422 invalid_workflow` with every diagnostic.
#[utoipa::path(
    post,
    path = "/api/workflows/compile",
    tag = "workflows",
    operation_id = "compile_workflow",
    params(NameQuery),
    request_body(content = Option<String>, content_type = "text/markdown", description = "The `workflow.md` source (none: an empty one)."),
    responses(
        (status = 200, description = "The component.", body = super::openapi::Binary, content_type = "application/wasm",
            headers(
                ("x-darkfactory-skill" = String, description = "The skill's name."),
                ("x-darkfactory-sha256" = String, description = "sha256 of the component."),
                ("x-darkfactory-source-sha256" = String, description = "sha256 of the source."),
                ("x-darkfactory-warnings" = u32, description = "Warnings found."),
            )),
        CompileErrors
    )
)]
pub(super) async fn compile(
    q: Result<Query<NameQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = query(q)?;
    let source = source(body)?;
    let result = tokio::task::spawn_blocking(move || {
        let result = workflow::compile(&source, name.as_deref());
        (result, source, name)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "compiler_failed",
            e.to_string(),
        )
    })?;
    match result {
        (Ok(compiled), _, _) => {
            let headers = [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/wasm"),
                ),
                (
                    HeaderName::from_static("x-darkfactory-skill"),
                    header_value(&compiled.name),
                ),
                (
                    HeaderName::from_static("x-darkfactory-sha256"),
                    header_value(&compiled.sha256),
                ),
                (
                    HeaderName::from_static("x-darkfactory-source-sha256"),
                    header_value(&compiled.source_sha256),
                ),
                (
                    HeaderName::from_static("x-darkfactory-warnings"),
                    header_value(&compiled.diagnostics.0.len().to_string()),
                ),
            ];
            Ok((headers, compiled.component).into_response())
        }
        (Err(CompileError::Invalid(diags)), source, name) => {
            Err(invalid(&diags, &source, name.as_deref()))
        }
        (Err(e), _, _) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "compiler_failed",
            e.to_string(),
        )),
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// `422` with the rendered diagnostics as the message and each of them in
/// `error.diagnostics`.
pub(super) fn invalid(diags: &Diagnostics, source: &str, name: Option<&str>) -> ApiError {
    let file = format!("{}{}", name.unwrap_or("workflow"), workflow::SUFFIX);
    ApiError {
        detail: serde_json::to_value(diags)
            .ok()
            .map(|d| Box::new(Detail::Diagnostics(d))),
        ..ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            diags.render(&file, source),
        )
    }
}
