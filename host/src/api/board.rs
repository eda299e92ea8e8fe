//! Handlers of `/api/board/...`: the board for operators and their tools.

use super::auth::same_secret;
use super::openapi::errors;
use super::{json_body, ApiError, AppState};
use crate::capabilities::board::{
    BoardBackend, BoardEvent, Card, CardCursor, CardEdit, CardFilter, Comment, NewCard,
    PlankaWebhook, KEPT_EVENTS,
};
use crate::capabilities::now_ms;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

fn board(state: &AppState) -> Result<&Arc<dyn BoardBackend>, ApiError> {
    state.board.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "board_unavailable",
            "this host runs without a board",
        )
    })
}

/// The query string, or `400 invalid_board_request` saying what is wrong.
fn query_params<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query.map(|Query(q)| q).map_err(|r| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_board_request",
            r.body_text(),
        )
    })
}

/// Characters of a description that a listing shows unless asked for all.
const LISTED_DESCRIPTION_CHARS: usize = 500;

/// Which cards a page of the board shows.
#[derive(Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct CardsQuery {
    /// Only cards in this list (by name, case-insensitive).
    list: Option<String>,
    /// Only cards with this label.
    label: Option<String>,
    /// Only cards in their list longer than this: a duration such as `48h`,
    /// `90m` or `1h 30m`.
    #[param(
        pattern = "^0$|^([0-9]{1,9} ?(ns|us|ms|sec|s|min|m|hours|hour|hr|h|days|day|d|weeks|week|w) ?)*[0-9]{1,9} ?(ns|us|ms|sec|s|min|m|hours|hour|hr|h|days|day|d|weeks|week|w)$"
    )]
    in_list_longer_than: Option<String>,
    /// Cards on this page (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,19}-[0-9]{1,20}$")]
    cursor: Option<String>,
    /// `full`: whole descriptions; by default (`short`) they are cut to 500
    /// characters.
    #[param(pattern = "^(short|full)$")]
    descriptions: Option<String>,
}

/// A page of the board.
#[derive(Serialize, ToSchema)]
pub(super) struct BoardPage {
    /// `embedded` or `planka`.
    backend: &'static str,
    /// Every list, with the cards of this page in it.
    lists: Vec<ListCards>,
    /// The `cursor` of the next page, when there is one.
    next_cursor: Option<String>,
}

/// A list and the cards of a page in it.
#[derive(Serialize, ToSchema)]
pub(super) struct ListCards {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
    /// Its position, lists ascending.
    position: i64,
    /// Its cards on this page, in the order they entered it.
    cards: Vec<Card>,
}

errors!(ShowErrors {
    400 => ["invalid_board_request"],
    404 => ["board_not_found"],
    503 => ["board_unavailable"],
});

/// The lists, each with the cards of this page that pass the filter (in
/// the order they entered their lists), and `next_cursor` when there are
/// more.
#[utoipa::path(
    get,
    path = "/api/board",
    tag = "board",
    operation_id = "show_board",
    params(CardsQuery),
    responses((status = 200, description = "A page of the board.", body = BoardPage), ShowErrors)
)]
pub(super) async fn show(
    State(state): State<AppState>,
    query: Result<Query<CardsQuery>, QueryRejection>,
) -> Result<Json<BoardPage>, ApiError> {
    let query = query_params(query)?;
    let invalid = |m: String| ApiError::new(StatusCode::BAD_REQUEST, "invalid_board_request", m);
    let limit = super::page_limit(query.limit, "invalid_board_request")?;
    let after = query.cursor.as_deref().map(CardCursor::parse).transpose()?;
    let description_chars = match query.descriptions.as_deref() {
        None | Some("short") => Some(LISTED_DESCRIPTION_CHARS),
        Some("full") => None,
        Some(other) => {
            return Err(invalid(format!(
                "descriptions is `{}`; it is `short` (the default) or `full`",
                crate::runtime::bounded::cut(other, 64)
            )))
        }
    };
    let in_list_longer_than = match &query.in_list_longer_than {
        Some(text) => Some(humantime::parse_duration(text).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_board_request",
                format!("in_list_longer_than `{text}` is not a duration like 48h: {e}"),
            )
        })?),
        None => None,
    };
    let board = board(&state)?;
    let filter = CardFilter {
        list: query.list,
        label: query.label,
        in_list_longer_than,
        // One more than the page: whether there is a next page.
        limit: Some(limit + 1),
        after,
        description_chars,
    };
    let mut cards = board.cards(&filter).await?;
    let next_cursor = (cards.len() > limit).then(|| {
        cards.truncate(limit);
        cards.last().map(|c| CardCursor::after(c).encode())
    });
    let lists = board
        .lists()
        .await?
        .into_iter()
        .map(|list| {
            let in_list = cards
                .iter()
                .filter(|c| c.list == list.name)
                .cloned()
                .collect();
            ListCards {
                id: list.id,
                name: list.name,
                position: list.position,
                cards: in_list,
            }
        })
        .collect();
    Ok(Json(BoardPage {
        backend: board.name(),
        lists,
        next_cursor: next_cursor.flatten(),
    }))
}

/// A label's name: 1 to 64 characters, no control characters.
#[derive(Deserialize, ToSchema)]
#[schema(
    pattern = "^\\s*[^\\s\\x00-\\x1f\\x7f-\\x9f](?:[^\\x00-\\x1f\\x7f-\\x9f]{0,62}[^\\s\\x00-\\x1f\\x7f-\\x9f])?\\s*$"
)]
pub(super) struct Label(String);

/// A card to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    /// Its title: not only white space, at most 1024 UTF-16 code units.
    #[schema(pattern = "[^\\s\\x85]|\\ufeff", max_length = 1024)]
    title: String,
    /// Its description (markdown, at most 1 MiB).
    #[serde(default)]
    description: String,
    /// The list it goes in (by name; `Backlog` when not given).
    list: Option<String>,
    /// Its label names: up to 16, each 1 to 64 characters without control
    /// characters.
    #[serde(default)]
    #[schema(max_items = 16, inline)]
    labels: Vec<Label>,
}

errors!(CreateErrors {
    400 => ["invalid_json", "invalid_board_request"],
    403 => ["board_denied"],
    404 => ["board_not_found"],
    503 => ["board_unavailable"],
});

/// Creates a card: `201` with the card.
#[utoipa::path(
    post,
    path = "/api/board/cards",
    tag = "board",
    operation_id = "create_card",
    request_body = CreateBody,
    responses((status = 201, description = "The card.", body = Card), CreateErrors)
)]
pub(super) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Card>), ApiError> {
    let body = json_body(body)?;
    let card = NewCard {
        list: body.list.unwrap_or_else(|| "Backlog".to_string()),
        title: body.title,
        description: body.description,
        labels: body.labels.into_iter().map(|Label(l)| l).collect(),
    }
    .checked()?;
    let card = board(&state)?.create_card(card).await?;
    Ok((StatusCode::CREATED, Json(card)))
}

/// What to change of a card (at least one of them); what is not given
/// stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub(super) struct EditBody {
    /// The list to move it to (by name).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    list: Option<String>,
    /// Its new title: not only white space, at most 1024 UTF-16 code units.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, pattern = "[^\\s\\x85]|\\ufeff", max_length = 1024)]
    title: Option<String>,
    /// Its new description (at most 1 MiB).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    description: Option<String>,
}

/// A field that may be left out but is not `null`: a `null` in a change
/// could mean "clear it" as well as "leave it", so it is refused.
fn not_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

errors!(
    /// The errors of a change of one card.
    CardErrors {
        400 => ["invalid_json", "invalid_board_request", "bad_request"],
        403 => ["board_denied"],
        404 => ["board_not_found"],
        503 => ["board_unavailable"],
    }
);

/// Moves and/or edits a card.
#[utoipa::path(
    patch,
    path = "/api/board/cards/{id}",
    tag = "board",
    operation_id = "edit_card",
    params(("id" = String, Path, description = "The card's id.")),
    request_body = EditBody,
    responses((status = 200, description = "The card as it is now.", body = Card), CardErrors)
)]
pub(super) async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<EditBody>, JsonRejection>,
) -> Result<Json<Card>, ApiError> {
    let body = json_body(body)?;
    let edit = CardEdit {
        list: body.list,
        title: body.title,
        description: body.description,
    }
    .checked()?;
    Ok(Json(board(&state)?.edit_card(&id, edit).await?))
}

/// A comment to write.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentBody {
    /// Its text (markdown): not only white space, at most 1 MiB.
    #[schema(pattern = "[^\\s\\x85]|\\ufeff")]
    text: String,
}

/// Comments on a card: `201` with the comment.
#[utoipa::path(
    post,
    path = "/api/board/cards/{id}/comments",
    tag = "board",
    operation_id = "comment_card",
    params(("id" = String, Path, description = "The card's id.")),
    request_body = CommentBody,
    responses((status = 201, description = "The comment.", body = Comment), CardErrors)
)]
pub(super) async fn comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CommentBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Comment>), ApiError> {
    let body = json_body(body)?;
    let comment = board(&state)?.comment(&id, &body.text).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// How many events.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// Events at most (default 50; more than 200 reads as 200).
    #[param(minimum = 0, maximum = 4294967295_u64)]
    limit: Option<usize>,
}

/// The recent events.
#[derive(Serialize, ToSchema)]
pub(super) struct Events {
    /// Newest first.
    events: Vec<BoardEvent>,
}

errors!(EventsErrors {
    400 => ["invalid_board_request"],
    404 => ["webhooks_off"],
});

/// The most recent Planka webhook events, newest first.
#[utoipa::path(
    get,
    path = "/api/board/events",
    tag = "board",
    operation_id = "board_events",
    params(EventsQuery),
    responses((status = 200, description = "The events.", body = Events), EventsErrors)
)]
pub(super) async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Events>, ApiError> {
    let query = query_params(query)?;
    let hook = webhook(&state)?;
    let limit = query.limit.unwrap_or(50).clamp(1, KEPT_EVENTS);
    Ok(Json(Events {
        events: hook.recent(limit),
    }))
}

errors!(WebhookErrors {
    400 => ["invalid_json", "invalid_webhook"],
    401 => ["invalid_webhook_secret"],
    404 => ["webhooks_off"],
});

/// One delivery of Planka's outgoing webhook, authenticated by the
/// webhook's access token (not the host's token): `204` when recorded.
#[utoipa::path(
    post,
    path = "/api/board/webhooks/planka",
    tag = "board",
    operation_id = "planka_webhook",
    security(("planka_webhook" = [])),
    request_body(content = serde_json::Value, content_type = "application/json", description = "Planka's delivery: `{\"event\": \"...\", \"data\": {...}}`."),
    responses((status = 204, description = "Recorded."), WebhookErrors)
)]
pub(super) async fn webhook_delivery(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let hook = webhook(&state)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(secret) if same_secret(secret, hook.secret()) => {}
        _ => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_webhook_secret",
                "a Planka webhook delivery must carry `Authorization: Bearer <secret>`, the \
                 webhook's access token, equal to --planka-webhook-secret",
            ))
        }
    }
    let body = json_body(body)?;
    let event = BoardEvent::parse(&body, now_ms()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_webhook",
            "not a Planka webhook delivery: expected {\"event\": \"...\", \"data\": {...}}",
        )
    })?;
    // Another board's event is answered the same (Planka does not care) but
    // not kept.
    hook.record(event);
    Ok(StatusCode::NO_CONTENT)
}

fn webhook(state: &AppState) -> Result<&Arc<PlankaWebhook>, ApiError> {
    state.planka_webhook.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "webhooks_off",
            "this host receives no Planka webhooks: start it with --planka-webhook-secret",
        )
    })
}
