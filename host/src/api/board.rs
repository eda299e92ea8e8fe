//! Handlers of `/api/board/...`: the board for operators and their tools.

use super::auth::same_secret;
use super::{json_body, ApiError, AppState};
use crate::capabilities::board::{
    BoardBackend, BoardEvent, CardCursor, CardEdit, CardFilter, NewCard, PlankaWebhook, KEPT_EVENTS,
};
use crate::capabilities::now_ms;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::{header, HeaderMap};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct CardsQuery {
    list: Option<String>,
    label: Option<String>,
    /// A duration such as `48h` or `90m`.
    in_list_longer_than: Option<String>,
    /// Cards on this page (default 100, at most 1000).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `full`: whole descriptions; by default they are cut to 500 characters.
    descriptions: Option<String>,
}

/// `GET /api/board?list=&label=&in_list_longer_than=48h&limit=&cursor=`:
/// the lists, each with the cards of this page that pass the filter (in the
/// order they entered their lists), and `next_cursor` when there are more.
pub(super) async fn show(
    State(state): State<AppState>,
    query: Result<Query<CardsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
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
    let lists: Vec<Value> = board
        .lists()
        .await?
        .into_iter()
        .map(|list| {
            let in_list: Vec<_> = cards.iter().filter(|c| c.list == list.name).collect();
            json!({"id": list.id, "name": list.name, "position": list.position, "cards": in_list})
        })
        .collect();
    Ok(Json(json!({
        "backend": board.name(),
        "lists": lists,
        "next_cursor": next_cursor.flatten(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    title: String,
    #[serde(default)]
    description: String,
    list: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
}

/// `POST /api/board/cards`: `201` with the card.
pub(super) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    let card = NewCard {
        list: body.list.unwrap_or_else(|| "Backlog".to_string()),
        title: body.title,
        description: body.description,
        labels: body.labels,
    }
    .checked()?;
    let card = board(&state)?.create_card(card).await?;
    Ok((StatusCode::CREATED, Json(json!(card))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EditBody {
    list: Option<String>,
    title: Option<String>,
    description: Option<String>,
}

/// `PATCH /api/board/cards/{id}`: move and/or edit.
pub(super) async fn edit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<EditBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = json_body(body)?;
    let edit = CardEdit {
        list: body.list,
        title: body.title,
        description: body.description,
    }
    .checked()?;
    Ok(Json(json!(board(&state)?.edit_card(&id, edit).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CommentBody {
    text: String,
}

/// `POST /api/board/cards/{id}/comments`: `201` with the comment.
pub(super) async fn comment(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<CommentBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = json_body(body)?;
    let comment = board(&state)?.comment(&id, &body.text).await?;
    Ok((StatusCode::CREATED, Json(json!(comment))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    limit: Option<usize>,
}

/// `GET /api/board/events?limit=50`: the most recent Planka webhook events,
/// newest first.
pub(super) async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let query = query_params(query)?;
    let hook = webhook(&state)?;
    let limit = query.limit.unwrap_or(50).clamp(1, KEPT_EVENTS);
    Ok(Json(json!({"events": hook.recent(limit)})))
}

/// `POST /api/board/webhooks/planka`: one delivery of Planka's outgoing
/// webhook, authenticated by its access token. `204` when recorded.
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
