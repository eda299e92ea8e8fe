//! The HTTP API: thin axum handlers over the registry.
//!
//! Every error is a status plus `{"error": {"code", "message"}}` (see
//! [`ApiError`]), including the ones axum would answer in plain text
//! (unknown route, wrong method, body too large): an outer layer gives any
//! error answer without a JSON body one, and the listener does the same for
//! the answers hyper writes itself (`crate::server`). A URI over
//! [`MAX_URI_BYTES`] is refused before routing.
//!
//! With a token, every `/api` route needs it, reads included; a read token
//! may read (`GET`, `HEAD`) but not change anything. `/healthz` and
//! `/readyz` stay open for probes. Every listing is paged (`limit`, and a
//! `cursor` from the previous page's `next_cursor`).

mod auth;
mod board;
mod envelope;
mod error;
mod fleet;
mod memory;
mod skills;
mod workflows;

pub use error::ApiError;

use crate::capabilities::board::{BoardBackend, PlankaWebhook};
use crate::capabilities::fleet::Fleet;
use crate::capabilities::memory::ingest::Ingestor;
use crate::capabilities::memory::Memory;
use crate::registry::Registry;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;

/// The longest URI (path and query) the API reads.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Items on a page of a listing unless `limit` says otherwise.
pub const DEFAULT_PAGE: usize = 100;
/// The most items one page of a listing may hold.
pub const MAX_PAGE: usize = 1000;

/// Where Planka delivers its outgoing webhooks.
pub const PLANKA_WEBHOOK_PATH: &str = "/api/board/webhooks/planka";

/// What the handlers share, behind one `Arc`: axum clones the state for
/// every request, and this makes that one reference count instead of eight.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    /// Shares `services` with every handler.
    pub fn new(services: Services) -> Self {
        AppState(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The services behind the API.
pub struct Services {
    /// The skills.
    pub registry: Arc<Registry>,
    /// The bearer token every `/api` route requires, when set.
    pub token: Option<Arc<str>>,
    /// A second token that may only read, when set (needs `token`).
    pub read_token: Option<Arc<str>>,
    /// Largest invoke body, in bytes.
    pub max_body_bytes: usize,
    /// Agent memory, when the host has it.
    pub memory: Option<Arc<Memory>>,
    /// The corpus pipeline into that memory.
    pub ingest: Option<Arc<Ingestor>>,
    /// The board, when the host has one.
    pub board: Option<Arc<dyn BoardBackend>>,
    /// The fleet registry, when the host has one.
    pub fleet: Option<Arc<Fleet>>,
    /// The receiver of Planka's webhooks, when a secret is configured.
    pub planka_webhook: Option<Arc<PlankaWebhook>>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let invoke_limit = DefaultBodyLimit::max(state.max_body_bytes);
    let upload_limit = DefaultBodyLimit::max(state.max_upload_bytes());
    let mut router = Router::new()
        .route("/api/skills", get(skills::list))
        .route(
            "/api/skills/{name}",
            get(skills::describe)
                .put(skills::deploy)
                .delete(skills::remove)
                .layer(upload_limit),
        )
        .route(
            "/api/skills/{name}/invoke",
            post(skills::invoke).layer(invoke_limit),
        )
        .route("/api/skills/{name}/rollback", post(skills::rollback))
        .route("/api/memory", post(memory::store))
        .route("/api/memory/search", get(memory::search))
        .route("/api/memory/stats", get(memory::stats))
        .route(
            "/api/memory/ingest",
            post(memory::ingest).layer(DefaultBodyLimit::max(memory::MAX_INGEST_BYTES)),
        )
        .route("/api/memory/ingest/watermark", get(memory::watermark))
        .route("/api/board", get(board::show))
        .route("/api/board/cards", post(board::create))
        .route("/api/board/cards/{id}", axum::routing::patch(board::edit))
        .route("/api/board/cards/{id}/comments", post(board::comment))
        .route("/api/board/events", get(board::events))
        .route(PLANKA_WEBHOOK_PATH, post(board::webhook_delivery))
        .route("/api/memory/{id}", get(memory::get).delete(memory::forget))
        .route("/api/fleet/heartbeat", post(fleet::heartbeat))
        .route("/api/capabilities", get(fleet::list))
        .route(
            "/api/capabilities/{agent}",
            get(fleet::show).delete(fleet::forget),
        )
        .route("/api/route", post(fleet::route))
        .route(
            "/api/workflows/check",
            post(workflows::check).layer(DefaultBodyLimit::max(crate::workflow::MAX_SOURCE_BYTES)),
        )
        .route(
            "/api/workflows/compile",
            post(workflows::compile)
                .layer(DefaultBodyLimit::max(crate::workflow::MAX_SOURCE_BYTES)),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    // Without a token there is nothing to check: no layer, no cost per call.
    if state.token.is_some() {
        router = router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    }
    // The probes stay open whatever the token.
    let probes = Router::new()
        .route("/healthz", get(skills::healthz))
        .route("/readyz", get(skills::readyz));
    router
        .merge(probes)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(envelope::EnvelopeLayer)
        .with_state(state)
}

impl Services {
    /// The largest body `PUT /api/skills/{name}` reads: the largest skill
    /// file the registry accepts.
    pub fn max_upload_bytes(&self) -> usize {
        usize::try_from(self.registry.config().max_file_bytes).unwrap_or(usize::MAX)
    }
}

/// The query of a listing paged by name.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// Items on this page (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page: the last item's name.
    pub cursor: Option<String>,
}

/// The page size a listing asked for, or `400 code` when it is out of range.
pub(crate) fn page_limit(limit: Option<usize>, code: &str) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            code,
            format!("limit is {limit}; a page holds 1 to {MAX_PAGE} items"),
        ));
    }
    Ok(limit)
}

/// A JSON body, or `400 invalid_json` saying what is wrong with it.
fn json_body<T>(
    body: Result<axum::Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|axum::Json(v)| v).map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            rejection.body_text(),
        )
    })
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/http-api.md for the API",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}
