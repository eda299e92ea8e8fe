//! Handlers of the factory's watch: the gaps (with the monitors that could
//! not measure), one gap with its evaluations and card, silences, an
//! evaluation on demand, and the rules in force.

use super::openapi::errors;
use super::{ApiError, AppState};
use crate::capabilities::board::Card;
use crate::factory::gaps::{Evaluation, Gap, GapState};
use crate::factory::{EvaluationReport, Factory, MonitorStatus, RulesStatus};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub(super) fn factory(state: &AppState) -> Result<&Arc<Factory>, ApiError> {
    state.factory.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            "this host runs without the factory",
        )
    })
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_gap_request", message)
}

/// The query of the gap listing.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only gaps in this state: `pending`, `firing` or `resolved`.
    #[param(pattern = "^(pending|firing|resolved)$")]
    state: Option<String>,
    /// Items on this page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page: the last gap's id.
    #[param(pattern = "^[0-9]{1,18}$")]
    cursor: Option<String>,
}

/// A page of gaps, newest first, and how the watch is doing.
#[derive(Serialize, ToSchema)]
pub(super) struct GapPage {
    /// The gaps of this page.
    gaps: Vec<Gap>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
    /// Each monitor's last run: a monitor that could not measure says why.
    monitors: Vec<MonitorStatus>,
    /// The rules in force.
    rules: RulesStatus,
    /// The last evaluation.
    last_evaluation: Option<EvaluationReport>,
}

errors!(ListErrors {
    400 => ["invalid_gap_request"],
    503 => ["factory_unavailable"],
});

/// The gaps, newest first, with the monitors' and the rules' state.
#[utoipa::path(
    get,
    path = "/api/gaps",
    tag = "factory",
    operation_id = "list_gaps",
    params(ListQuery),
    responses((status = 200, description = "A page of gaps.", body = GapPage), ListErrors)
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<GapPage>, ApiError> {
    let Query(query) = query.map_err(|r| bad(r.body_text()))?;
    let limit = super::page_limit(query.limit, "invalid_gap_request")?;
    let wanted = match query.state.as_deref() {
        None => None,
        Some(s) => Some(
            GapState::parse(s)
                .ok_or_else(|| bad(format!("state {s:?} is not pending, firing or resolved")))?,
        ),
    };
    let before = match &query.cursor {
        None => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            bad(format!(
                "cursor {c:?} is not one this host gave out (use `next_cursor`)"
            ))
        })?),
    };
    let factory = factory(&state)?;
    let mut gaps = factory.gaps().list(wanted, before, limit + 1).await?;
    let next_cursor = (gaps.len() > limit).then(|| gaps[limit - 1].id.to_string());
    gaps.truncate(limit);
    Ok(Json(GapPage {
        gaps,
        next_cursor,
        monitors: factory.monitors(),
        rules: factory.rules_status(),
        last_evaluation: factory.last_evaluation(),
    }))
}

/// One gap in full.
#[derive(Serialize, ToSchema)]
pub(super) struct GapDetail {
    #[serde(flatten)]
    gap: Gap,
    /// Its evaluations, newest first (the last 200).
    evaluations: Vec<Evaluation>,
    /// Its card as the board has it now, once it has one.
    card: Option<Card>,
    /// Why the card could not be read, when it could not.
    card_error: Option<String>,
}

errors!(ShowErrors {
    400 => ["invalid_gap_request"],
    404 => ["gap_not_found"],
    503 => ["factory_unavailable"],
});

fn gap_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad(format!("gap id {text:?} is not a positive whole number")))
}

fn not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "gap_not_found",
        format!("no gap {id}"),
    )
}

/// One gap, with its evaluations and card.
#[utoipa::path(
    get,
    path = "/api/gaps/{id}",
    tag = "factory",
    operation_id = "show_gap",
    params(("id" = String, Path, description = "The gap's id.", pattern = "^[1-9][0-9]{0,17}$")),
    responses((status = 200, description = "The gap.", body = GapDetail), ShowErrors)
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<GapDetail>, ApiError> {
    let id = gap_id(&id)?;
    let factory = factory(&state)?;
    let (gap, evaluations) = factory.gaps().get(id).await?.ok_or_else(|| not_found(id))?;
    let (card, card_error) = match (&gap.card_id, &state.board) {
        (Some(card_id), Some(board)) => match board.card(card_id).await {
            Ok(card) => (Some(card), None),
            Err(e) => (None, Some(e.to_string())),
        },
        _ => (None, None),
    };
    Ok(Json(GapDetail {
        gap,
        evaluations,
        card,
        card_error,
    }))
}

/// How long to silence a gap.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SilenceBody {
    /// How long: `2h`, `1d` (at most a year); `0s` lifts a silence.
    #[serde(rename = "for")]
    #[schema(pattern = "^([0-9]{1,9} ?(ms|s|m|min|h|d|w) ?)+$")]
    for_: String,
}

errors!(SilenceErrors {
    400 => ["invalid_gap_request", "invalid_json", "bad_request"],
    413 => ["payload_too_large"],
    404 => ["gap_not_found"],
    503 => ["factory_unavailable"],
});

/// Silences a gap for a while: it opens, comments and escalates nothing
/// until then (its state still moves, and its card still goes to Done when
/// it resolves).
#[utoipa::path(
    post,
    path = "/api/gaps/{id}/silence",
    tag = "factory",
    operation_id = "silence_gap",
    params(("id" = String, Path, description = "The gap's id.", pattern = "^[1-9][0-9]{0,17}$")),
    request_body = SilenceBody,
    responses((status = 200, description = "The gap, silenced.", body = Gap), SilenceErrors)
)]
pub(super) async fn silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Gap>, ApiError> {
    let id = gap_id(&id)?;
    let body = super::skills::body_or_error(body, 4096)?;
    let body: SilenceBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not {{\"for\": \"2h\"}}: {e}"),
        )
    })?;
    let duration = humantime::parse_duration(&body.for_).map_err(|e| {
        bad(format!(
            "{:?} is not a duration such as 2h or 1d ({e})",
            body.for_
        ))
    })?;
    if duration > std::time::Duration::from_secs(365 * 24 * 3600) {
        return Err(bad("a silence lasts at most a year".into()));
    }
    let factory = factory(&state)?;
    let until = factory.clock().now_ms() + duration.as_millis() as u64;
    let gap = factory
        .silence(id, until)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(gap))
}

errors!(EvaluateErrors {
    503 => ["factory_unavailable"],
});

/// Runs an evaluation now (after the one running, if one is): the monitors
/// measure, the rules are evaluated, the gaps and their cards move.
#[utoipa::path(
    post,
    path = "/api/factory/evaluate",
    tag = "factory",
    operation_id = "evaluate",
    responses((status = 200, description = "What the evaluation did.", body = EvaluationReport), EvaluateErrors)
)]
pub(super) async fn evaluate(
    State(state): State<AppState>,
) -> Result<Json<EvaluationReport>, ApiError> {
    Ok(Json(factory(&state)?.evaluate().await))
}

/// The rules in force.
#[derive(Serialize, ToSchema)]
pub(super) struct RuleSet {
    /// The file behind them, and whether its newest text was refused.
    status: RulesStatus,
    /// The seconds between evaluations.
    eval_interval_seconds: u64,
    /// The rules, in file order.
    #[schema(value_type = Vec<Object>)]
    rules: serde_json::Value,
}

/// The rules in force, and the file behind them (with its refusal, when
/// its newest text was refused and older rules keep running).
#[utoipa::path(
    get,
    path = "/api/rules",
    tag = "factory",
    operation_id = "list_rules",
    responses((status = 200, description = "The rules.", body = RuleSet), EvaluateErrors)
)]
pub(super) async fn rules(State(state): State<AppState>) -> Result<Json<RuleSet>, ApiError> {
    let factory = factory(&state)?;
    let rules = serde_json::to_value(&*factory.rules()).unwrap_or_default();
    Ok(Json(RuleSet {
        status: factory.rules_status(),
        eval_interval_seconds: factory.eval_interval().as_secs(),
        rules,
    }))
}
