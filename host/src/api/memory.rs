//! Handlers of `/api/memory/...`: the memory service for operators and
//! their tools. Every namespace is reachable here (writes need the bearer
//! token when one is set); skills get only their grants, through WIT.

use super::{ApiError, AppState};
use crate::capabilities::memory::{metadata_from_json, Access, Memory, Metadata};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Hits a search returns when `limit` is not given.
const DEFAULT_LIMIT: usize = 10;

fn memory(state: &AppState) -> Result<&Arc<Memory>, ApiError> {
    state.memory.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_unavailable",
            "this host runs without a memory backend",
        )
    })
}

fn json_body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            rejection.body_text(),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreBody {
    text: String,
    namespace: String,
    #[serde(default)]
    metadata: Option<Value>,
}

/// `POST /api/memory`: 201 with the id when stored, 200 when the same text
/// was already in that namespace.
pub(super) async fn store(
    State(state): State<AppState>,
    body: Result<Json<StoreBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    let metadata = match &body.metadata {
        Some(value) => metadata_from_json(value)
            .map_err(|m| ApiError::new(StatusCode::BAD_REQUEST, "invalid_memory_request", m))?,
        None => Metadata::new(),
    };
    let stored = memory(&state)?
        .store(
            &Access::Operator,
            &body.text,
            &body.namespace,
            metadata,
            "api",
        )
        .await?;
    let status = if stored.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!(stored))))
}

/// `GET /api/memory/search?q=&namespace=&limit=&meta.KEY=VALUE`.
pub(super) async fn search(
    State(state): State<AppState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_memory_request", m);
    let mut query = None;
    let mut namespace = "all".to_string();
    let mut limit = DEFAULT_LIMIT;
    let mut filter = Metadata::new();
    for (key, value) in params {
        match key.as_str() {
            "q" => query = Some(value),
            "namespace" => namespace = value,
            "limit" => {
                limit = value
                    .parse()
                    .map_err(|_| bad(format!("limit `{value}` is not a number")))?
            }
            other => match other.strip_prefix("meta.") {
                Some(meta) => {
                    filter.insert(meta.to_string(), value);
                }
                None => {
                    return Err(bad(format!(
                        "unknown parameter `{other}`; expected q, namespace, limit or \
                         meta.KEY"
                    )))
                }
            },
        }
    }
    let query = query.ok_or_else(|| bad("the query parameter `q` is missing".to_string()))?;
    let hits = memory(&state)?
        .search(&Access::Operator, &query, &namespace, limit, filter)
        .await?;
    Ok(Json(json!({ "hits": hits })))
}

/// `GET /api/memory/{id}`.
pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(memory(&state)?.get(&id).await?)))
}

/// `DELETE /api/memory/{id}`: 204, or 404 when there is no such memory.
pub(super) async fn forget(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if memory(&state)?.forget(&Access::Operator, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "memory_not_found",
            format!("no memory with id `{id}`"),
        ))
    }
}

/// `GET /api/memory/stats`.
pub(super) async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(memory(&state)?.counts().await?)))
}
