//! A loopback server that answers as the Telegram Bot API answers
//! `sendMessage` (`{"ok": true, "result": Message}`, or `{"ok": false,
//! "error_code", "description"}`) and as an OpenClaw gateway answers
//! `POST /hooks/agent` (bearer token checked), recording what it was sent.

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
}

pub struct Notify {
    pub url: String,
    shared: Arc<Mutex<Shared>>,
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
}

pub async fn start() -> Notify {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/{bot}/sendMessage", axum::routing::post(send_message))
        .route("/hooks/agent", axum::routing::post(hook))
        .with_state(shared.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Notify { url, shared }
}

async fn send_message(
    State(shared): State<Arc<Mutex<Shared>>>,
    Path(bot): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if bot != format!("bot{BOT_TOKEN}") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
        )
            .into_response();
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
    State(shared): State<Arc<Mutex<Shared>>>,
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
