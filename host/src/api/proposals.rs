//! Handlers of the factory's proposals and approvals: the fixes it
//! synthesised with their rounds and verification, the approval requests,
//! a decision through the API (the token decides who may: a read token
//! may not), and Telegram's webhook for the approval buttons.

use super::gaps::factory;
use super::openapi::errors;
use super::{ApiError, AppState};
use crate::factory::approval::{Actor, PolicyStatus, Refused};
use crate::factory::proposals::{ApprovalRequest, Proposal, ProposalError, ProposalState, Round};
use crate::factory::synth::Synthesis;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// Where Telegram delivers updates when a webhook is configured.
pub const TELEGRAM_WEBHOOK_PATH: &str = "/api/telegram/webhook";

impl From<ProposalError> for ApiError {
    fn from(err: ProposalError) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            err.to_string(),
        )
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        let (status, code) = match r.code {
            "not_found" => (StatusCode::NOT_FOUND, "approval_not_found"),
            "decided" => (StatusCode::CONFLICT, "approval_decided"),
            "changed" => (StatusCode::CONFLICT, "proposal_changed"),
            "expired" => (StatusCode::GONE, "approval_expired"),
            "forged" | "not_an_approver" => (StatusCode::FORBIDDEN, "approval_forbidden"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "factory_unavailable"),
        };
        ApiError::new(status, code, r.message)
    }
}

fn synthesis(state: &AppState) -> Result<&Arc<Synthesis>, ApiError> {
    factory(state)?.synthesis().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "factory_unavailable",
            "this host runs without synthesis",
        )
    })
}

fn bad(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_proposal_request", message)
}

fn id_of(text: &str, what: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| bad(format!("{what} id {text:?} is not a positive whole number")))
}

/// The query of the proposal listing.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only the proposals of this gap.
    #[param(minimum = 1)]
    gap: Option<i64>,
    /// Only proposals in this state.
    #[param(pattern = "^(synthesising|failed|awaiting_approval|approved|rejected|expired)$")]
    state: Option<String>,
    /// Items on this page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[1-9][0-9]{0,17}$")]
    cursor: Option<String>,
}

/// A page of proposals, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct ProposalPage {
    proposals: Vec<Proposal>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
    /// The approval policy in force.
    policy: PolicyStatus,
}

errors!(ListErrors {
    400 => ["invalid_proposal_request"],
    503 => ["factory_unavailable"],
});

/// The proposals: the fixes the factory wrote for gaps, newest first.
#[utoipa::path(
    get,
    path = "/api/proposals",
    tag = "factory",
    operation_id = "list_proposals",
    params(ListQuery),
    responses((status = 200, description = "A page of proposals.", body = ProposalPage), ListErrors)
)]
pub(super) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ProposalPage>, ApiError> {
    let Query(query) = query.map_err(|r| bad(r.body_text()))?;
    let limit = super::page_limit(query.limit, "invalid_proposal_request")?;
    if let Some(gap) = query.gap.filter(|g| *g < 1) {
        return Err(bad(format!(
            "gap {gap} is not a gap id (a positive whole number)"
        )));
    }
    let wanted = match query.state.as_deref() {
        None => None,
        Some(s) => Some(ProposalState::parse(s).ok_or_else(|| {
            bad(format!(
                "state {s:?} is not synthesising, failed, awaiting_approval, approved, rejected \
                 or expired"
            ))
        })?),
    };
    let before = query
        .cursor
        .as_deref()
        .map(|c| id_of(c, "cursor"))
        .transpose()?;
    let synthesis = synthesis(&state)?;
    let mut proposals = synthesis
        .store
        .list(query.gap, wanted, before, limit + 1)
        .await?;
    let next_cursor = (proposals.len() > limit).then(|| proposals[limit - 1].id.to_string());
    proposals.truncate(limit);
    Ok(Json(ProposalPage {
        proposals,
        next_cursor,
        policy: synthesis.policy.status(),
    }))
}

/// One proposal in full: its source, its rounds with their diagnostics,
/// and its approval requests.
#[derive(Serialize, ToSchema)]
pub(super) struct ProposalDetail {
    #[serde(flatten)]
    proposal: Proposal,
    rounds: Vec<Round>,
    approvals: Vec<ApprovalRequest>,
}

errors!(ShowErrors {
    400 => ["invalid_proposal_request"],
    404 => ["proposal_not_found"],
    503 => ["factory_unavailable"],
});

/// One proposal, with its source, rounds and approval requests.
#[utoipa::path(
    get,
    path = "/api/proposals/{id}",
    tag = "factory",
    operation_id = "show_proposal",
    params(("id" = String, Path, description = "The proposal's id.", pattern = "^[1-9][0-9]{0,17}$")),
    responses((status = 200, description = "The proposal.", body = ProposalDetail), ShowErrors)
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProposalDetail>, ApiError> {
    let id = id_of(&id, "proposal")?;
    let store = &synthesis(&state)?.store;
    let proposal = store.get(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "proposal_not_found",
            format!("no proposal {id}"),
        )
    })?;
    let rounds = store.rounds(id).await?;
    let mut approvals = Vec::new();
    for request in store.requests(false, 1000).await? {
        if request.proposal_id == id {
            if let Some(full) = store.get_request(request.id).await? {
                approvals.push(full);
            }
        }
    }
    Ok(Json(ProposalDetail {
        proposal,
        rounds,
        approvals,
    }))
}

/// The query of the approval listing.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ApprovalQuery {
    /// Every request, decided ones too (default: only pending ones).
    all: Option<bool>,
    /// Items (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Approval requests, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct ApprovalPage {
    approvals: Vec<ApprovalRequest>,
}

errors!(ApprovalListErrors {
    400 => ["invalid_proposal_request"],
    503 => ["factory_unavailable"],
});

/// The approval requests: pending ones, or all with `all=true`.
#[utoipa::path(
    get,
    path = "/api/approvals",
    tag = "factory",
    operation_id = "list_approvals",
    params(ApprovalQuery),
    responses((status = 200, description = "Approval requests.", body = ApprovalPage), ApprovalListErrors)
)]
pub(super) async fn approvals(
    State(state): State<AppState>,
    query: Result<Query<ApprovalQuery>, QueryRejection>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let Query(query) = query.map_err(|r| bad(r.body_text()))?;
    let limit = super::page_limit(query.limit, "invalid_proposal_request")?;
    let store = &synthesis(&state)?.store;
    let approvals = store.requests(!query.all.unwrap_or(false), limit).await?;
    Ok(Json(ApprovalPage { approvals }))
}

errors!(ApprovalShowErrors {
    400 => ["invalid_proposal_request"],
    404 => ["approval_not_found"],
    503 => ["factory_unavailable"],
});

/// One approval request, with the refused attempts to decide it.
#[utoipa::path(
    get,
    path = "/api/approvals/{id}",
    tag = "factory",
    operation_id = "show_approval",
    params(("id" = String, Path, description = "The request's id.", pattern = "^[1-9][0-9]{0,17}$")),
    responses((status = 200, description = "The request.", body = ApprovalRequest), ApprovalShowErrors)
)]
pub(super) async fn approval(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApprovalRequest>, ApiError> {
    let id = id_of(&id, "approval")?;
    let store = &synthesis(&state)?.store;
    let request = store.get_request(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "approval_not_found",
            format!("there is no approval request #{id}"),
        )
    })?;
    Ok(Json(request))
}

/// Who decides, as a client says (for the record).
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DecisionBody {
    /// `cli` when `darkfactory approvals` decides; `api` otherwise.
    #[schema(pattern = "^(api|cli)$")]
    via: Option<String>,
}

/// A decision made.
#[derive(Serialize, ToSchema)]
pub(super) struct Decided {
    approval: ApprovalRequest,
    proposal: Proposal,
}

errors!(DecideErrors {
    400 => ["invalid_proposal_request", "invalid_json"],
    403 => ["approval_forbidden"],
    404 => ["approval_not_found"],
    409 => ["approval_decided", "proposal_changed"],
    410 => ["approval_expired"],
    413 => ["payload_too_large"],
    503 => ["factory_unavailable"],
});

async fn decide(
    state: AppState,
    id: String,
    body: Result<Bytes, BytesRejection>,
    approve: bool,
) -> Result<Json<Decided>, ApiError> {
    let id = id_of(&id, "approval")?;
    let body = super::skills::body_or_error(body, 4096)?;
    let body: DecisionBody = if body.is_empty() {
        DecisionBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not {{\"via\": \"api\"}}: {e}"),
            )
        })?
    };
    let actor = match body.via.as_deref() {
        None | Some("api") => Actor::Api,
        Some("cli") => Actor::Cli,
        Some(other) => return Err(bad(format!("via {other:?} is not api or cli"))),
    };
    let (approval, proposal) = synthesis(&state)?
        .approvals
        .decide(id, approve, actor, None)
        .await?;
    Ok(Json(Decided { approval, proposal }))
}

/// Approves a pending request: its proposal may be deployed. Refused (and
/// the refusal kept) when it was decided, has expired, or its proposal
/// changed since it was asked.
#[utoipa::path(
    post,
    path = "/api/approvals/{id}/approve",
    tag = "factory",
    operation_id = "approve",
    params(("id" = String, Path, description = "The request's id.", pattern = "^[1-9][0-9]{0,17}$")),
    request_body(content = DecisionBody, description = "Optional."),
    responses((status = 200, description = "Approved.", body = Decided), DecideErrors)
)]
pub(super) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, id, body, true).await
}

/// Rejects a pending request: nothing is deployed.
#[utoipa::path(
    post,
    path = "/api/approvals/{id}/reject",
    tag = "factory",
    operation_id = "reject",
    params(("id" = String, Path, description = "The request's id.", pattern = "^[1-9][0-9]{0,17}$")),
    request_body(content = DecisionBody, description = "Optional."),
    responses((status = 200, description = "Rejected.", body = Decided), DecideErrors)
)]
pub(super) async fn reject(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, id, body, false).await
}

errors!(WebhookErrors {
    400 => ["invalid_json"],
    401 => ["unauthorized"],
    404 => ["webhook_not_configured"],
    413 => ["payload_too_large"],
    503 => ["factory_unavailable"],
});

/// Telegram's webhook: one update (a press of an approval button). Its
/// `X-Telegram-Bot-Api-Secret-Token` must be the configured secret.
#[utoipa::path(
    post,
    path = "/api/telegram/webhook",
    tag = "factory",
    operation_id = "telegram_webhook",
    request_body(content = Object, description = "A Telegram Update."),
    security(("telegram_webhook" = [])),
    responses((status = 200, description = "Handled."), WebhookErrors)
)]
pub(super) async fn telegram_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let presented = headers
        .get("x-telegram-bot-api-secret-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if presented.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the X-Telegram-Bot-Api-Secret-Token header is missing",
        ));
    }
    let approvals = &synthesis(&state)?.approvals;
    let Some(secret) = approvals
        .telegram()
        .and_then(|t| t.webhook_secret.as_deref())
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "webhook_not_configured",
            "this host takes no Telegram webhook (--telegram-webhook-secret is not set)",
        ));
    };
    if !crate::factory::approval::same_secret(presented, secret) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the X-Telegram-Bot-Api-Secret-Token header is missing or wrong",
        ));
    }
    let body = super::skills::body_or_error(body, 1 << 20)?;
    let update: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not a Telegram Update: {e}"),
        )
    })?;
    approvals.handle_update(&update).await?;
    Ok(StatusCode::OK)
}
