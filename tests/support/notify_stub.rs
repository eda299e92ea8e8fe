//! A loopback server that answers as the Telegram Bot API answers
//! `sendMessage` (`{"ok": true, "result": Message}`, or `{"ok": false,
//! "error_code", "description"}`), `getUpdates` (long polling: updates
//! from `offset` on, those below it confirmed and forgotten, an empty
//! answer after `timeout` seconds), `answerCallbackQuery`,
//! `editMessageReplyMarkup` and `editMessageText`, and as an OpenClaw
//! gateway answers `POST /hooks/agent` (bearer token checked), recording
//! what it was sent. A test presses buttons with [`Notify::press`] and
//! replays an update the host confirmed with [`Notify::replay`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

pub const BOT_TOKEN: &str = "123456:test-bot-token";
pub const HOOKS_TOKEN: &str = "hooks-token";

#[derive(Default)]
struct Shared {
    messages: Vec<Value>,
    hooks: Vec<Value>,
    /// Telegram refuses this many messages first (a flood limit).
    refuse: usize,
    /// Updates not yet confirmed, oldest first.
    pending: Vec<Value>,
    /// Every update ever made, by id.
    made: Vec<Value>,
    /// Updates to hand out once more whatever the offset (a replay).
    replays: Vec<Value>,
    /// The offsets `getUpdates` was called with.
    offsets: Vec<i64>,
    /// `answerCallbackQuery` and the message edits, in order.
    calls: Vec<(String, Value)>,
}

pub struct Notify {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    arrived: Arc<tokio::sync::Notify>,
}

impl Notify {
    pub fn messages(&self) -> Vec<Value> {
        self.shared.lock().unwrap().messages.clone()
    }

    pub fn hooks(&self) -> Vec<Value> {
        self.shared.lock().unwrap().hooks.clone()
    }

    pub fn refuse_next(&self, n: usize) {
        self.shared.lock().unwrap().refuse = n;
    }

    /// User `user` presses the button with `data` under message
    /// `message_id` of `chat`: the update's id.
    pub fn press(&self, user: i64, chat: &str, message_id: i64, data: &str) -> i64 {
        let mut shared = self.shared.lock().unwrap();
        let id = 1000 + shared.made.len() as i64;
        let update = json!({
            "update_id": id,
            "callback_query": {
                "id": format!("cq-{id}"),
                "from": {"id": user, "is_bot": false, "first_name": "Ops", "username": format!("user{user}")},
                "message": {"message_id": message_id, "date": 1_800_000_000,
                            "chat": {"id": chat.parse::<i64>().map(Value::from).unwrap_or(Value::from(chat)), "type": "group"}},
                "chat_instance": "ci-1",
                "data": data,
            }
        });
        shared.made.push(update.clone());
        shared.pending.push(update);
        drop(shared);
        self.arrived.notify_waiters();
        id
    }

    /// Hands update `id` out once more, whatever the offset.
    pub fn replay(&self, id: i64) {
        let mut shared = self.shared.lock().unwrap();
        let update = shared
            .made
            .iter()
            .find(|u| u["update_id"] == id)
            .cloned()
            .expect("an update this stub made");
        shared.replays.push(update);
        drop(shared);
        self.arrived.notify_waiters();
    }

    /// The offsets `getUpdates` was called with.
    pub fn offsets(&self) -> Vec<i64> {
        self.shared.lock().unwrap().offsets.clone()
    }

    /// The bodies of the calls of `method` (`answerCallbackQuery`,
    /// `editMessageReplyMarkup`, `editMessageText`).
    pub fn calls(&self, method: &str) -> Vec<Value> {
        self.shared
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Whether every update made has been confirmed by a later offset.
    pub fn all_confirmed(&self) -> bool {
        let shared = self.shared.lock().unwrap();
        shared.pending.is_empty() && shared.replays.is_empty()
    }
}

pub async fn start() -> Notify {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let arrived = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/{bot}/sendMessage", axum::routing::post(send_message))
        .route("/{bot}/getUpdates", axum::routing::post(get_updates))
        .route("/{bot}/{method}", axum::routing::post(other_method))
        .route("/hooks/agent", axum::routing::post(hook))
        .with_state((shared.clone(), arrived.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Notify {
        url,
        shared,
        arrived,
    }
}

type Bot = (Arc<Mutex<Shared>>, Arc<tokio::sync::Notify>);

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
    )
        .into_response()
}

fn bad_request(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"ok": false, "error_code": 400, "description": format!("Bad Request: {description}")})),
    )
        .into_response()
}

async fn get_updates(
    State((shared, arrived)): State<Bot>,
    Path(bot): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if bot != format!("bot{BOT_TOKEN}") {
        return unauthorized();
    }
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = body["timeout"].as_u64().unwrap_or(0).min(50);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(timeout);
    loop {
        let waiting = arrived.notified();
        {
            let mut shared = shared.lock().unwrap();
            shared.offsets.push(offset);
            // An offset confirms every update below it.
            shared
                .pending
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            let mut out: Vec<Value> = std::mem::take(&mut shared.replays);
            out.extend(shared.pending.iter().cloned());
            if !out.is_empty() {
                return Json(json!({"ok": true, "result": out})).into_response();
            }
        }
        if tokio::time::timeout_at(deadline, waiting).await.is_err() {
            return Json(json!({"ok": true, "result": []})).into_response();
        }
    }
}

async fn other_method(
    State((shared, _)): State<Bot>,
    Path((bot, method)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if bot != format!("bot{BOT_TOKEN}") {
        return unauthorized();
    }
    let result = match method.as_str() {
        "answerCallbackQuery" => {
            if !body["callback_query_id"].is_string() {
                return bad_request(
                    "query is too old and response timeout expired or query ID is invalid",
                );
            }
            if body["text"]
                .as_str()
                .is_some_and(|t| t.chars().count() > 200)
            {
                return bad_request("MESSAGE_TOO_LONG");
            }
            json!(true)
        }
        "editMessageReplyMarkup" | "editMessageText" => {
            if body["chat_id"].is_null() || !body["message_id"].is_i64() {
                return bad_request("message to edit not found");
            }
            if method == "editMessageText" && !body["text"].is_string() {
                return bad_request("message text is empty");
            }
            json!({"message_id": body["message_id"], "date": 1_800_000_000,
                   "chat": {"id": body["chat_id"], "type": "group"}})
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"ok": false, "error_code": 404, "description": "Not Found"})),
            )
                .into_response()
        }
    };
    shared.lock().unwrap().calls.push((method, body));
    Json(json!({"ok": true, "result": result})).into_response()
}

async fn send_message(
    State((shared, _)): State<Bot>,
    Path(bot): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if bot != format!("bot{BOT_TOKEN}") {
        return unauthorized();
    }
    let mut shared = shared.lock().unwrap();
    if shared.refuse > 0 {
        shared.refuse -= 1;
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"ok": false, "error_code": 429,
                        "description": "Too Many Requests: retry after 5",
                        "parameters": {"retry_after": 5}})),
        )
            .into_response();
    }
    if body["chat_id"].is_null() || !body["text"].is_string() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"})),
        )
            .into_response();
    }
    shared.messages.push(body.clone());
    let id = shared.messages.len();
    Json(json!({"ok": true, "result": {
        "message_id": id, "date": 1_800_000_000,
        "chat": {"id": body["chat_id"], "type": "private"}, "text": body["text"]}}))
    .into_response()
}

async fn hook(
    State((shared, _)): State<Bot>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {HOOKS_TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
    }
    if !body["message"].is_string() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"ok": false, "error": "message required"})),
        )
            .into_response();
    }
    shared.lock().unwrap().hooks.push(body);
    (
        StatusCode::ACCEPTED,
        Json(json!({"ok": true, "runId": "run-1"})),
    )
        .into_response()
}
