//! Handlers of the KPI series: samples in (a batch from an agent, a CI or a
//! cron's `curl`), the series and their points out; and the manual clock of
//! a host started with `--test-clock`.

use super::openapi::errors;
use super::{ApiError, AppState};
use crate::capabilities::kpi::{
    KpiStore, Labels, NewSample, PushOutcome, SeriesInfo, SeriesPoints,
};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The largest batch of samples, in bytes (about 50,000 samples).
pub(super) const MAX_PUSH_BYTES: usize = 8 << 20;

/// The window of a read when the query gives none.
const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

fn store(state: &AppState) -> Result<&Arc<KpiStore>, ApiError> {
    state.kpi.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "kpi_unavailable",
            "this host records no KPI series",
        )
    })
}

/// A batch of samples.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SampleBatch {
    /// The samples, all recorded or (one being bad) none.
    samples: Vec<NewSample>,
}

errors!(PushErrors {
    400 => ["invalid_json", "invalid_sample", "bad_request"],
    413 => ["payload_too_large"],
    503 => ["kpi_unavailable"],
});

/// Records a batch of samples (any `Content-Type`: the body is read as
/// JSON). One bad sample refuses the batch with its index, and nothing of
/// it is stored; a sample whose series and time are stored already
/// replaces the stored value, so a retried push is harmless.
#[utoipa::path(
    post,
    path = "/api/kpis/samples",
    tag = "kpi",
    operation_id = "push_samples",
    request_body = SampleBatch,
    responses((status = 200, description = "What was recorded.", body = PushOutcome), PushErrors)
)]
pub(super) async fn push(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PushOutcome>, ApiError> {
    let body = super::skills::body_or_error(body, MAX_PUSH_BYTES)?;
    let batch: SampleBatch = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body is not a batch of samples ({{\"samples\": [{{\"name\", \"value\", \
                 \"at\", \"labels\"}}]}}): {e}"
            ),
        )
    })?;
    Ok(Json(store(&state)?.push(batch.samples).await?))
}

/// The query of the series listing.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only the series whose name starts with this.
    prefix: Option<String>,
    /// Items on this page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page: the last series' key.
    cursor: Option<String>,
}

/// A series in a listing.
#[derive(Serialize, ToSchema)]
pub(super) struct SeriesItem {
    /// `name{label="value",...}`.
    key: String,
    #[serde(flatten)]
    series: SeriesInfo,
}

/// A page of series.
#[derive(Serialize, ToSchema)]
pub(super) struct SeriesPage {
    /// Series of the listing (of all pages).
    total: usize,
    /// This page, by key.
    series: Vec<SeriesItem>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
}

errors!(ListErrors {
    400 => ["invalid_kpi_request"],
    503 => ["kpi_unavailable"],
});

/// The series, with their sample counts and newest values, by key.
#[utoipa::path(
    get,
    path = "/api/kpis",
    tag = "kpi",
    operation_id = "list_series",
    params(ListQuery),
    responses((status = 200, description = "A page of series.", body = SeriesPage), ListErrors)
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<SeriesPage>, ApiError> {
    let Query(query) = query.map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_kpi_request",
            r.body_text(),
        )
    })?;
    let limit = super::page_limit(query.limit, "invalid_kpi_request")?;
    let mut series: Vec<SeriesItem> = store(&state)?
        .series()
        .into_iter()
        .filter(|s| {
            query
                .prefix
                .as_deref()
                .is_none_or(|p| s.name.starts_with(p))
        })
        .map(|series| SeriesItem {
            key: series.key(),
            series,
        })
        .collect();
    series.sort_by(|a, b| a.key.cmp(&b.key));
    let total = series.len();
    if let Some(cursor) = &query.cursor {
        series.retain(|s| s.key.as_str() > cursor.as_str());
    }
    let next_cursor = (series.len() > limit).then(|| series[limit - 1].key.clone());
    series.truncate(limit);
    Ok(Json(SeriesPage {
        total,
        series,
        next_cursor,
    }))
}

/// The points of a series in a window.
#[derive(Serialize, ToSchema)]
pub(super) struct SeriesRead {
    /// The series name.
    name: String,
    /// The window, in seconds.
    window_seconds: u64,
    /// The window's start (exclusive), ms.
    from: u64,
    /// The window's end (inclusive): the host's time, ms.
    to: u64,
    /// Each label set of the name that matches, with its points.
    series: Vec<SeriesPoints>,
}

/// The query of a series read (documented; `label.K=V` keys are read
/// beside these).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct ReadQuery {
    /// How far back: `1h`, `24h`, `7d` (default 24h, at most the
    /// retention). Add `label.K=V` to keep only the series labelled so.
    #[param(pattern = "^([0-9]{1,9} ?(ms|s|m|min|h|d|w) ?)+$")]
    window: Option<String>,
}

errors!(ReadErrors {
    400 => ["invalid_kpi_request", "invalid_sample"],
    404 => ["series_not_found"],
    503 => ["kpi_unavailable"],
});

/// The points of series `name` in the window that ends now, for every
/// label set of it (or those that `label.K=V` keep), oldest first; points
/// older than `kpi.downsample_after` are folded buckets (`count` > 1).
#[utoipa::path(
    get,
    path = "/api/kpis/{name}",
    tag = "kpi",
    operation_id = "read_series",
    params(
        ("name" = String, Path, description = "The series name.", pattern = "^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$"),
        ReadQuery,
    ),
    responses((status = 200, description = "The series' points.", body = SeriesRead), ReadErrors)
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<SeriesRead>, ApiError> {
    let bad = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_kpi_request", m);
    let Query(query) = query.map_err(|r| bad(r.body_text()))?;
    let store = store(&state)?;
    let mut window = DEFAULT_WINDOW;
    let mut matchers = Labels::new();
    for (key, value) in query {
        if key == "window" {
            window = humantime::parse_duration(&value).map_err(|e| {
                bad(format!(
                    "window {value:?} is not a duration such as 1h or 7d ({e})"
                ))
            })?;
        } else if let Some(label) = key.strip_prefix("label.") {
            matchers.insert(label.to_string(), value);
        } else {
            return Err(bad(format!(
                "unknown query parameter `{key}`; a read takes `window` and `label.NAME`"
            )));
        }
    }
    let retention = store.config().retention;
    if window.as_secs() == 0 || window > retention {
        return Err(bad(format!(
            "the window must be between 1 s and the retention ({})",
            humantime::format_duration(retention)
        )));
    }
    let to = store.clock().now_ms();
    let from = to.saturating_sub(window.as_millis() as u64);
    let series = store.read(&name, &matchers, from, to).await?;
    Ok(Json(SeriesRead {
        name,
        window_seconds: window.as_secs(),
        from,
        to,
        series,
    }))
}

/// How far to move a manual clock.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ClockMove {
    /// Milliseconds to move forward (a whole number; `5.0` is five).
    #[schema(value_type = u64)]
    advance_ms: serde_json::Number,
}

/// The clock's time.
#[derive(Serialize, ToSchema)]
pub(super) struct ClockTime {
    /// Milliseconds since the Unix epoch.
    now_ms: u64,
}

errors!(ClockErrors {
    400 => ["invalid_json", "bad_request"],
    409 => ["clock_not_manual"],
    413 => ["payload_too_large"],
});

/// Moves the clock of a host started with `--test-clock` forward; `409`
/// on a host that runs on the system clock.
#[utoipa::path(
    post,
    path = "/api/clock",
    tag = "meta",
    operation_id = "advance_clock",
    request_body = ClockMove,
    responses((status = 200, description = "The clock's new time.", body = ClockTime), ClockErrors)
)]
pub(super) async fn advance_clock(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClockTime>, ApiError> {
    let body = super::skills::body_or_error(body, 4096)?;
    let moved: ClockMove = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not {{\"advance_ms\": N}}: {e}"),
        )
    })?;
    let n = &moved.advance_ms;
    let advance = n
        .as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 2f64.powi(53))
                .map(|f| f as u64)
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!(
                    "`advance_ms` is {n}; it must be a whole number of milliseconds, 0 or more"
                ),
            )
        })?;
    let now_ms = state.clock.advance(advance).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "clock_not_manual",
            "this host runs on the system clock; only a host started with --test-clock has \
             one that moves",
        )
    })?;
    Ok(Json(ClockTime { now_ms }))
}
