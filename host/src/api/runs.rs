//! Handler of the runs the factory made of skills by their triggers
//! (`gap: KIND`, `cron: …`), newest first.

use super::gaps::factory;
use super::openapi::errors;
use super::{ApiError, AppState};
use crate::factory::runs::{Run, RunError};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

impl From<RunError> for ApiError {
    fn from(err: RunError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            err.to_string(),
        )
    }
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_run_request", message)
}

/// The query of the run listing.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct RunsQuery {
    /// Only the runs of this skill.
    #[param(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    skill: Option<String>,
    /// Items on this page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    cursor: Option<String>,
}

/// A page of runs, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct RunPage {
    runs: Vec<Run>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
}

errors!(RunsErrors {
    400 => ["invalid_run_request"],
    503 => ["factory_unavailable"],
});

/// The runs of skills by their triggers: a gap of their kind firing, or
/// their schedule's minute; newest first.
#[utoipa::path(
    get,
    path = "/api/factory/runs",
    tag = "factory",
    operation_id = "list_runs",
    params(RunsQuery),
    responses((status = 200, description = "A page of runs.", body = RunPage), RunsErrors)
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(query) = query.map_err(|r| bad(r.body_text()))?;
    let limit = super::page_limit(query.limit, "invalid_run_request")?;
    if let Some(skill) = &query.skill {
        crate::skill::SkillName::check(skill)
            .map_err(|e| bad(format!("skill {skill:?} is not a skill name: {e}")))?;
    }
    let before = match query.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| bad(format!("cursor {c:?} is not a positive whole number")))?,
        ),
    };
    let triggers = factory(&state)?.triggers().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            "this host runs without triggers",
        )
    })?;
    let mut runs = triggers.runs().list(query.skill, before, limit + 1).await?;
    let next_cursor = (runs.len() > limit).then(|| runs[limit - 1].id.to_string());
    runs.truncate(limit);
    Ok(Json(RunPage { runs, next_cursor }))
}
