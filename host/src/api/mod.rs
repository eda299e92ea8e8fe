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
mod ci;
mod envelope;
mod error;
mod fleet;
mod gaps;
mod kpi;
mod memory;
mod metrics;
mod openapi;
mod proposals;
mod runs;
mod skills;
mod workflows;

pub use error::ApiError;
pub use openapi::document_json as openapi_json_text;

use crate::capabilities::board::{BoardBackend, PlankaWebhook};
use crate::capabilities::fleet::Fleet;
use crate::capabilities::kpi::KpiStore;
use crate::capabilities::memory::ingest::Ingestor;
use crate::capabilities::memory::Memory;
use crate::capabilities::Clock;
use crate::factory::Factory;
use crate::registry::Registry;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use std::sync::Arc;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

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
    /// The KPI series, when the host records them.
    pub kpi: Option<Arc<KpiStore>>,
    /// The host's clock (manual in tests: `POST /api/clock` moves it).
    pub clock: Clock,
    /// The factory, when the host runs it.
    pub factory: Option<Arc<Factory>>,
    /// The secret of the forges' CI webhooks, when they are taken.
    pub ci_webhook_secret: Option<Arc<str>>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    let (mut router, _) =
        api_routes(state.max_body_bytes, state.max_upload_bytes()).split_for_parts();
    router = router
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
    let (probes, _) = probe_routes().split_for_parts();
    router
        .merge(probes)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(envelope::EnvelopeLayer)
        .with_state(state)
}

/// Every `/api` route, each with its OpenAPI operation (see `openapi`):
/// `invoke_limit` and `upload_limit` bound the bodies of an invoke and a
/// deploy.
fn api_routes(invoke_limit: usize, upload_limit: usize) -> OpenApiRouter<AppState> {
    let source_limit = DefaultBodyLimit::max(crate::workflow::MAX_SOURCE_BYTES);
    OpenApiRouter::default()
        .routes(routes!(skills::list))
        .routes(
            routes!(skills::describe, skills::deploy, skills::remove)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .routes(routes!(skills::invoke).layer(DefaultBodyLimit::max(invoke_limit)))
        .routes(routes!(skills::rollback))
        .routes(routes!(memory::store))
        .routes(routes!(memory::search))
        .routes(routes!(memory::stats))
        .routes(routes!(memory::ingest).layer(DefaultBodyLimit::max(memory::MAX_INGEST_BYTES)))
        .routes(routes!(memory::watermark))
        .routes(routes!(memory::get, memory::forget))
        .routes(routes!(board::show))
        .routes(routes!(board::create))
        .routes(routes!(board::edit))
        .routes(routes!(board::comment))
        .routes(routes!(board::events))
        .routes(routes!(board::webhook_delivery))
        .routes(routes!(fleet::heartbeat))
        .routes(routes!(fleet::list))
        .routes(routes!(fleet::show, fleet::forget))
        .routes(routes!(fleet::route))
        .routes(routes!(kpi::push).layer(DefaultBodyLimit::max(kpi::MAX_PUSH_BYTES)))
        .routes(routes!(kpi::list))
        .routes(routes!(kpi::show))
        .routes(routes!(kpi::advance_clock))
        .routes(routes!(gaps::list))
        .routes(routes!(gaps::show))
        .routes(routes!(gaps::silence))
        .routes(routes!(gaps::evaluate))
        .routes(routes!(gaps::rules))
        .routes(routes!(proposals::list))
        .routes(routes!(proposals::show))
        .routes(routes!(proposals::approvals))
        .routes(routes!(proposals::approval))
        .routes(routes!(proposals::approve))
        .routes(routes!(proposals::reject))
        .routes(routes!(proposals::telegram_webhook))
        .routes(routes!(runs::list))
        .routes(routes!(ci::report))
        .routes(routes!(ci::webhook))
        .routes(routes!(metrics::metrics))
        .routes(routes!(workflows::check).layer(source_limit))
        .routes(routes!(workflows::compile).layer(source_limit))
        .routes(routes!(openapi_json))
}

/// The probes, outside the token.
fn probe_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(skills::healthz))
        .routes(routes!(skills::readyz))
}

/// `GET /api/openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", body = serde_json::Value))
)]
async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::document_json(),
    )
        .into_response()
}

impl Services {
    /// The largest body `PUT /api/skills/{name}` reads: the largest skill
    /// file the registry accepts.
    pub fn max_upload_bytes(&self) -> usize {
        usize::try_from(self.registry.config().max_file_bytes).unwrap_or(usize::MAX)
    }
}

/// The query of a listing paged by name.
#[derive(serde::Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Items on this page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
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
