//! Handlers of `/api/memory/...`: the memory service for operators and
//! their tools. Every namespace is reachable here (writes need the bearer
//! token when one is set); skills get only their grants, through WIT.

use super::{json_body, ApiError, AppState};
use crate::capabilities::memory::ingest::{ChunkSource, IngestOptions, Ingestor};
use crate::capabilities::memory::{
    metadata_from_json, Access, Memory, Metadata, Namespace, DEFAULT_MIN_DENSITY,
};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
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

/// `GET /api/memory/stats`: counts per namespace, and the ingest's last
/// run and lag (now minus the newest message it has read).
pub(super) async fn stats(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let counts = memory(&state)?.counts().await?;
    let mut body = json!(counts);
    if let Some(ingest) = &state.ingest {
        let status = ingest.status().await?;
        let now = crate::capabilities::now_ms() as i64;
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        body["ingest"] = json!({
            "last_run_at": status.and_then(|s| time(s.last_run_at_ms)),
            "newest_message_at": status.and_then(|s| s.newest_message_ms).and_then(time),
            "lag_seconds": status
                .and_then(|s| s.newest_message_ms)
                .map(|newest| (now - newest).max(0) / 1000),
            "files_tracked": ingest.files_tracked().await,
        });
    }
    Ok(Json(body))
}

/// Largest `POST /api/memory/ingest` body.
pub const MAX_INGEST_BYTES: usize = 16 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IngestParams {
    namespace: String,
    #[serde(default = "default_density")]
    min_density: f64,
    source: Option<String>,
    #[serde(default)]
    offset: u64,
    #[serde(default = "yes")]
    last: bool,
}

fn default_density() -> f64 {
    DEFAULT_MIN_DENSITY
}

fn yes() -> bool {
    true
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_memory_request",
        rejection.body_text(),
    )
}

fn ingestor(state: &AppState) -> Result<&Arc<Ingestor>, ApiError> {
    state.ingest.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_unavailable",
            "this host runs without a memory backend",
        )
    })
}

fn ingest_options(namespace: &str, min_density: f64) -> Result<IngestOptions, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_memory_request", m);
    let namespace = Namespace::parse(namespace).map_err(bad)?;
    if !(0.0..=1.0).contains(&min_density) {
        return Err(bad(format!(
            "min_density is {min_density}; it must be between 0 and 1"
        )));
    }
    Ok(IngestOptions {
        namespace,
        min_density,
    })
}

/// `POST /api/memory/ingest?namespace=&min_density=&source=&offset=&last=`:
/// a JSONL body of transcript lines. With `source` (the file's path, as a
/// key) and `offset`, the body continues that file from its watermark.
pub(super) async fn ingest(
    State(state): State<AppState>,
    params: Result<Query<IngestParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let body = super::skills::body_or_error(body, MAX_INGEST_BYTES)?;
    let options = ingest_options(&params.namespace, params.min_density)?;
    let source = params.source.map(|file| ChunkSource {
        file,
        offset: params.offset,
    });
    let result = ingestor(&state)?
        .ingest_chunk(&body, source.as_ref(), params.last, &options)
        .await?;
    Ok(Json(json!(result)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WatermarkParams {
    source: String,
    namespace: String,
}

/// `GET /api/memory/ingest/watermark?source=&namespace=`: where the next
/// chunk of that file starts.
pub(super) async fn watermark(
    State(state): State<AppState>,
    params: Result<Query<WatermarkParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let options = ingest_options(&params.namespace, 0.0)?;
    let mark = ingestor(&state)?
        .watermark(&params.source, &options.namespace)
        .await?;
    Ok(Json(json!({
        "source": params.source,
        "namespace": params.namespace,
        "offset": mark.offset,
        "lines": mark.lines,
    })))
}
