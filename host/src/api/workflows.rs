//! `POST /api/workflows/check` and `POST /api/workflows/compile`: the
//! workflow compiler over HTTP. The body is the `workflow.md` text; `?name=`
//! gives the skill name when the front matter does not.

use super::{skills::body_or_error, ApiError};
use crate::workflow::{self, CompileError, Diagnostics};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::Query;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

/// The query of both endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NameQuery {
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

/// Checks a workflow: always `200`, with `ok` and every diagnostic.
pub(super) async fn check(
    q: Result<Query<NameQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({
        "name": checked.name,
        "ok": errors == 0,
        "errors": errors,
        "warnings": checked.diagnostics.0.len() - errors,
        "diagnostics": checked.diagnostics,
        "rendered": rendered,
        "trigger": checked.header.trigger.to_string(),
        "calls": checked.usage.calls(),
    })))
}

/// Compiles a workflow: `200` with the component (`application/wasm`), or
/// `422 invalid_workflow` with every diagnostic.
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
            Ok(invalid(&diags, &source, name.as_deref()))
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
pub(super) fn invalid(diags: &Diagnostics, source: &str, name: Option<&str>) -> Response {
    let file = format!("{}{}", name.unwrap_or("workflow"), workflow::SUFFIX);
    let body = json!({
        "error": {
            "code": "invalid_workflow",
            "message": diags.render(&file, source),
            "diagnostics": diags,
        }
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}
