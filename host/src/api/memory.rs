//! Handlers of `/api/memory/...`: the memory service for operators and
//! their tools. Every namespace is reachable here (writes need the bearer
//! token when one is set); skills get only their grants, through WIT.

use super::openapi::errors;
use super::{json_body, ApiError, AppState};
use crate::capabilities::kpi::{check_labels, Labels};
use crate::capabilities::memory::ingest::{ChunkResult, ChunkSource, IngestOptions, Ingestor};
use crate::capabilities::memory::{
    metadata_from_json, Access, Hit, Memory, MemoryCounts, MemoryRecord, Metadata, Namespace,
    Stored, DEFAULT_MIN_DENSITY,
};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

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

/// A memory to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreBody {
    /// Its text (at most 64 KiB, not only white space).
    #[schema(pattern = "[^\\s\\x85]|\\ufeff")]
    text: String,
    /// Where: `org`, `agent:NAME` or `user:ID` (1 to 128 of A-Z, a-z, 0-9,
    /// `.`, `_`, `@`, `-`).
    #[schema(pattern = "^(org|(agent|user):[A-Za-z0-9][A-Za-z0-9._@-]{0,127})$")]
    namespace: String,
    /// Up to 32 values (strings, numbers or booleans, kept as text) by key
    /// (1 to 64 of A-Z, a-z, 0-9, `_`, `-`).
    #[serde(default)]
    #[schema(schema_with = metadata_schema)]
    metadata: Option<Value>,
}

errors!(StoreErrors {
    400 => ["invalid_json", "invalid_memory_request"],
    403 => ["namespace_denied"],
    503 => ["memory_unavailable"],
});

/// Stores a memory: `201` with its id when stored, `200` when the same
/// text was already in that namespace.
#[utoipa::path(
    post,
    path = "/api/memory",
    tag = "memory",
    operation_id = "store_memory",
    request_body = StoreBody,
    responses(
        (status = 201, description = "Stored.", body = Stored),
        (status = 200, description = "The same text was already there.", body = Stored),
        StoreErrors
    )
)]
pub(super) async fn store(
    State(state): State<AppState>,
    body: Result<Json<StoreBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Stored>), ApiError> {
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
    Ok((status, Json(stored)))
}

/// The hits of a search.
#[derive(Serialize, ToSchema)]
pub(super) struct Hits {
    /// Best first.
    hits: Vec<Hit>,
}

errors!(SearchErrors {
    400 => ["invalid_memory_request", "bad_request"],
    403 => ["namespace_denied"],
    503 => ["memory_unavailable"],
});

/// Searches memory (BM25, with dense vectors when they are on); `meta.KEY=VALUE`
/// parameters keep only memories whose metadata has that value.
#[utoipa::path(
    get,
    path = "/api/memory/search",
    tag = "memory",
    operation_id = "search_memory",
    params(
        ("q" = String, Query, description = "The query: not only white space, at most 64 KiB.", pattern = "[^\\s\\x85]|\\ufeff"),
        ("namespace" = Option<String>, Query, description = "`org`, `agent:NAME`, `user:ID`, or `all` (the default).", pattern = "^(all|org|(agent|user):[A-Za-z0-9][A-Za-z0-9._@-]{0,127})$"),
        ("limit" = Option<usize>, Query, description = "Hits at most (default 10).", minimum = 1, maximum = 100),
    ),
    responses((status = 200, description = "The hits, best first.", body = Hits), SearchErrors)
)]
pub(super) async fn search(
    State(state): State<AppState>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<Hits>, ApiError> {
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
    Ok(Json(Hits { hits }))
}

errors!(GetErrors {
    400 => ["invalid_memory_request", "bad_request"],
    404 => ["memory_not_found"],
    503 => ["memory_unavailable"],
});

/// One memory.
#[utoipa::path(
    get,
    path = "/api/memory/{id}",
    tag = "memory",
    operation_id = "get_memory",
    params(("id" = String, Path, description = "The memory's id.", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 200, description = "The memory.", body = MemoryRecord), GetErrors)
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<MemoryRecord>, ApiError> {
    Ok(Json(memory(&state)?.get(&id).await?))
}

errors!(ForgetErrors {
    400 => ["invalid_memory_request", "bad_request"],
    403 => ["namespace_denied"],
    404 => ["memory_not_found"],
    503 => ["memory_unavailable"],
});

/// Forgets a memory: `204`, or `404` when there is no such memory.
#[utoipa::path(
    delete,
    path = "/api/memory/{id}",
    tag = "memory",
    operation_id = "forget_memory",
    params(("id" = String, Path, description = "The memory's id.", pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")),
    responses((status = 204, description = "Forgotten."), ForgetErrors)
)]
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

/// The schema of metadata as it may be sent: up to 32 scalar values by
/// key, kept as text.
fn metadata_schema() -> utoipa::openapi::schema::Schema {
    serde_json::from_value(serde_json::json!({
        "type": ["object", "null"],
        "maxProperties": 32,
        "propertyNames": { "type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$" },
        "additionalProperties": { "type": ["string", "number", "boolean"] }
    }))
    .expect("a valid schema")
}

/// Memory's counts and the ingest's progress.
#[derive(Serialize, ToSchema)]
pub(super) struct MemoryStats {
    /// The counts.
    #[serde(flatten)]
    counts: MemoryCounts,
    /// The ingest, when the host has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    ingest: Option<IngestProgress>,
}

/// How far the ingest has read.
#[derive(Serialize, ToSchema)]
pub(super) struct IngestProgress {
    /// When it last ran (RFC 3339).
    last_run_at: Option<String>,
    /// The newest message it has read (RFC 3339).
    newest_message_at: Option<String>,
    /// Now minus that message, in seconds.
    lag_seconds: Option<i64>,
    /// Transcript files it keeps a watermark for.
    files_tracked: u64,
}

errors!(StatsErrors { 503 => ["memory_unavailable"] });

/// Counts per namespace, and the ingest's last run and lag (now minus the
/// newest message it has read).
#[utoipa::path(
    get,
    path = "/api/memory/stats",
    tag = "memory",
    operation_id = "memory_stats",
    responses((status = 200, description = "The counts.", body = MemoryStats), StatsErrors)
)]
pub(super) async fn stats(State(state): State<AppState>) -> Result<Json<MemoryStats>, ApiError> {
    let counts = memory(&state)?.counts().await?;
    let mut body = MemoryStats {
        counts,
        ingest: None,
    };
    if let Some(ingest) = &state.ingest {
        let status = ingest.status().await?;
        let now = crate::capabilities::now_ms() as i64;
        let time = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        };
        body.ingest = Some(IngestProgress {
            last_run_at: status.and_then(|s| time(s.last_run_at_ms)),
            newest_message_at: status.and_then(|s| s.newest_message_ms).and_then(time),
            lag_seconds: status
                .and_then(|s| s.newest_message_ms)
                .map(|newest| (now - newest).max(0) / 1000),
            files_tracked: ingest.files_tracked().await,
        });
    }
    Ok(Json(body))
}

/// Largest `POST /api/memory/ingest` body.
pub const MAX_INGEST_BYTES: usize = 16 << 20;

/// The query of an ingest.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct IngestParams {
    /// Where the exchanges are stored: `org`, `agent:NAME` or `user:ID`.
    #[param(pattern = "^(org|(agent|user):[A-Za-z0-9][A-Za-z0-9._@-]{0,127})$")]
    namespace: String,
    /// Exchanges with a density under this are dropped (0 to 1; 0 keeps all).
    #[serde(default = "default_density")]
    #[param(minimum = 0.0, maximum = 1.0)]
    min_density: f64,
    /// The transcript file's path, as a key: the body continues it from its
    /// watermark.
    source: Option<String>,
    /// Where the body starts in that file (its watermark, or 0).
    #[serde(default)]
    offset: u64,
    /// Whether the body ends the file for now (an exchange cut at its end is
    /// kept for the next chunk otherwise).
    #[serde(default = "yes")]
    last: bool,
    /// The agent whose transcript this is: the usage its assistant messages
    /// record goes to `agent.cost_usd` and `agent.tokens` under it. Read
    /// from an `agents/AGENT/` part of `source` when absent; without
    /// either, usage is counted as unattributed and not recorded.
    #[param(min_length = 1, max_length = 256)]
    agent: Option<String>,
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
        agent: None,
    })
}

errors!(IngestErrors {
    400 => ["invalid_memory_request", "bad_request"],
    409 => ["watermark_moved"],
    413 => ["payload_too_large"],
    500 => ["ingest_failed"],
    503 => ["memory_unavailable"],
});

/// Ingests a JSONL body of transcript lines. With `source` (the file's
/// path, as a key) and `offset`, the body continues that file from its
/// watermark.
#[utoipa::path(
    post,
    path = "/api/memory/ingest",
    tag = "memory",
    operation_id = "ingest_memory",
    params(IngestParams),
    request_body(content = Option<String>, content_type = "application/x-ndjson", description = "Transcript lines, one JSON object each."),
    responses((status = 200, description = "What the chunk did.", body = ChunkResult), IngestErrors)
)]
pub(super) async fn ingest(
    State(state): State<AppState>,
    params: Result<Query<IngestParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ChunkResult>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let body = super::skills::body_or_error(body, MAX_INGEST_BYTES)?;
    let mut options = ingest_options(&params.namespace, params.min_density)?;
    if let Some(agent) = params.agent {
        check_labels(&Labels::from([("agent".to_string(), agent.clone())])).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_memory_request",
                format!("agent: {e}"),
            )
        })?;
        options.agent = Some(agent);
    }
    let source = params.source.map(|file| ChunkSource {
        file,
        offset: params.offset,
    });
    let result = ingestor(&state)?
        .ingest_chunk(&body, source.as_ref(), params.last, &options)
        .await?;
    Ok(Json(result))
}

/// The query of a watermark.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct WatermarkParams {
    /// The transcript file's path, as a key.
    source: String,
    /// The namespace it is ingested into.
    #[param(pattern = "^(org|(agent|user):[A-Za-z0-9][A-Za-z0-9._@-]{0,127})$")]
    namespace: String,
}

/// Where the next chunk of a file starts.
#[derive(Serialize, ToSchema)]
pub(super) struct Watermark {
    /// The file.
    source: String,
    /// The namespace.
    namespace: String,
    /// Bytes of it done with.
    offset: u64,
    /// Lines of it done with.
    lines: u64,
}

errors!(WatermarkErrors {
    400 => ["invalid_memory_request"],
    500 => ["ingest_failed"],
    503 => ["memory_unavailable"],
});

/// Where the next chunk of a transcript file starts.
#[utoipa::path(
    get,
    path = "/api/memory/ingest/watermark",
    tag = "memory",
    operation_id = "ingest_watermark",
    params(WatermarkParams),
    responses((status = 200, description = "The watermark.", body = Watermark), WatermarkErrors)
)]
pub(super) async fn watermark(
    State(state): State<AppState>,
    params: Result<Query<WatermarkParams>, QueryRejection>,
) -> Result<Json<Watermark>, ApiError> {
    let Query(params) = params.map_err(bad_query)?;
    let options = ingest_options(&params.namespace, 0.0)?;
    let mark = ingestor(&state)?
        .watermark(&params.source, &options.namespace)
        .await?;
    Ok(Json(Watermark {
        source: params.source,
        namespace: params.namespace,
        offset: mark.offset,
        lines: mark.lines,
    }))
}
