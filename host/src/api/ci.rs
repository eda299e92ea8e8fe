//! Handlers of CI runs reported to the host: `POST /api/ci/runs` from any
//! CI (behind the token, like every `/api` route), and
//! `POST /api/ci/webhooks`, where GitHub, Gitea and Forgejo deliver their
//! `workflow_run` / `action_run_*` webhooks, authenticated by their
//! `X-Hub-Signature-256` HMAC of the body (all three send it) instead of
//! the token. Each successful run feeds the CI monitor's
//! `ci.last_success_age_seconds`.

use super::openapi::errors;
use super::{ApiError, AppState};
use crate::factory::monitor::ci::{run_of_webhook, ReportedRun};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where the forges deliver their webhooks.
pub const CI_WEBHOOK_PATH: &str = "/api/ci/webhooks";

/// The largest webhook delivery read (GitHub caps its payloads at 25 MB;
/// a run's payload is a few kilobytes).
const MAX_DELIVERY: usize = 2 << 20;

/// A run a CI reports.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RunReport {
    /// `owner/name`.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")]
    repo: String,
    /// The branch it built.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^\\s\\x00-\\x1f]+$")]
    branch: String,
    /// Its outcome: `success`, `failure`, `cancelled`, ... (only `success`
    /// moves the last green build).
    #[schema(min_length = 1, max_length = 64)]
    conclusion: String,
    /// When it ended, ms since the Unix epoch; the host's time when absent.
    #[serde(default)]
    #[schema(minimum = 0)]
    finished_at: Option<u64>,
}

/// What was recorded.
#[derive(Serialize, ToSchema)]
pub(super) struct Recorded {
    /// Whether the run moved the last green build (it succeeded).
    recorded: bool,
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_ci_run", message)
}

async fn record(state: &AppState, run: ReportedRun) -> Result<(), ApiError> {
    let factory = state.factory.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            "this host runs without the factory",
        )
    })?;
    factory.record_ci_success(&run).await.map_err(|e| match e {
        crate::capabilities::kpi::KpiError::Unavailable(m) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "factory_unavailable", m)
        }
        other => bad(other.to_string()),
    })
}

/// Refuses a run's end the KPI store could not keep, or that is ahead of
/// the host's clock (a time in seconds or microseconds, a clock gone
/// wrong): it would stand for the last green build for the retention.
fn check_end(state: &AppState, ended_ms: u64) -> Result<(), ApiError> {
    let now = state.clock.now_ms();
    let oldest = state.kpi.as_ref().map_or(0, |k| k.oldest_kept(now));
    let latest = now + crate::capabilities::kpi::MAX_FUTURE.as_millis() as u64;
    if ended_ms < oldest || ended_ms > latest {
        return Err(bad(format!(
            "the run ended at {ended_ms} ms, which is not between the retention's start \
             ({oldest}) and the host's time ({now}): is it in seconds or microseconds \
             rather than milliseconds?"
        )));
    }
    Ok(())
}

errors!(RunErrors {
    400 => ["invalid_json", "invalid_ci_run", "bad_request"],
    413 => ["payload_too_large"],
    503 => ["factory_unavailable"],
});

/// Reports a CI run (any `Content-Type`: the body is read as JSON): a
/// successful one becomes the branch's last green build.
#[utoipa::path(
    post,
    path = "/api/ci/runs",
    tag = "factory",
    operation_id = "report_ci_run",
    request_body = RunReport,
    responses((status = 200, description = "Whether it was recorded.", body = Recorded), RunErrors)
)]
pub(super) async fn report(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Recorded>, ApiError> {
    let body = super::skills::body_or_error(body, 64 << 10)?;
    let run: RunReport = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body is not a run ({{\"repo\", \"branch\", \"conclusion\", \
                 \"finished_at\"}}): {e}"
            ),
        )
    })?;
    let repo_ok = run.repo.split_once('/').is_some_and(|(o, n)| {
        let part = |p: &str| {
            (1..=100).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        };
        part(o) && part(n)
    });
    if !repo_ok {
        return Err(bad(format!("repo {:?} is not OWNER/NAME", run.repo)));
    }
    if run.branch.is_empty()
        || run.branch.len() > 255
        || run
            .branch
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(format!("branch {:?} is not a branch name", run.branch)));
    }
    let now = state.clock.now_ms();
    let ended_ms = run.finished_at.unwrap_or(now);
    check_end(&state, ended_ms)?;
    if run.conclusion != "success" {
        return Ok(Json(Recorded { recorded: false }));
    }
    record(
        &state,
        ReportedRun {
            repo: run.repo,
            branch: run.branch,
            ended_ms,
        },
    )
    .await?;
    Ok(Json(Recorded { recorded: true }))
}

errors!(WebhookErrors {
    400 => ["invalid_ci_run", "bad_request"],
    401 => ["invalid_signature"],
    404 => ["webhooks_off"],
    413 => ["payload_too_large"],
    503 => ["factory_unavailable"],
});

/// Takes a forge's webhook delivery (GitHub and Gitea `workflow_run`,
/// Forgejo `action_run_success` / `action_run_recover`), authenticated by
/// `X-Hub-Signature-256: sha256=HEX`, the HMAC-SHA256 of the body with the
/// webhook's secret (`--ci-webhook-secret`). Other events are acknowledged
/// and ignored.
#[utoipa::path(
    post,
    path = "/api/ci/webhooks",
    tag = "factory",
    operation_id = "ci_webhook",
    security(("ci_webhook" = [])),
    params(
        ("X-GitHub-Event" = Option<String>, Header, description = "The event (`workflow_run`); Gitea and Forgejo send it too."),
        ("X-Forgejo-Event-Type" = Option<String>, Header, description = "Forgejo's fine event (`action_run_success`)."),
    ),
    request_body(content = Object, description = "The forge's payload."),
    responses((status = 200, description = "Whether it was recorded.", body = Recorded), WebhookErrors)
)]
pub(super) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Recorded>, ApiError> {
    let Some(secret) = state.ci_webhook_secret.as_deref() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "webhooks_off",
            "this host takes no CI webhooks: set --ci-webhook-secret",
        ));
    };
    let body = super::skills::body_or_error(body, MAX_DELIVERY)?;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-hub-signature-256")
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex| hex::decode(hex).ok());
    let unsigned = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the delivery's X-Hub-Signature-256 is not the HMAC-SHA256 of its body with this \
             host's --ci-webhook-secret",
        )
    };
    let signature = signature.ok_or_else(unsigned)?;
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| unsigned())?;
    mac.update(&body);
    mac.verify_slice(&signature).map_err(|_| unsigned())?;
    let event = header("x-forgejo-event-type")
        .or(header("x-github-event"))
        .unwrap_or("");
    match run_of_webhook(event, &body).map_err(bad)? {
        Some(run) => {
            check_end(&state, run.ended_ms)?;
            record(&state, run).await?;
            Ok(Json(Recorded { recorded: true }))
        }
        None => Ok(Json(Recorded { recorded: false })),
    }
}
