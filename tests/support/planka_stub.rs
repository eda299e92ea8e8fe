//! A loopback server speaking the part of Planka's v2 REST API the host's
//! board backend uses, with the answers recorded in
//! `shared/notes/planka.md` (read from Planka 2.1's controllers and checked
//! against a real server):
//!
//! - `{"item"}` / `{"items", "included"}` bodies, string ids, ISO times,
//!   errors as `{"code": "E_...", "message"}`;
//! - `401 E_UNAUTHORIZED` without a valid `X-Api-Key` or bearer token;
//! - `POST /api/access-tokens`: `403 E_FORBIDDEN` with `step: accept-terms`
//!   and a `pendingToken` until the user has accepted the terms through
//!   `GET /api/terms` and `POST /api/access-tokens/accept-terms`;
//! - `GET /api/projects` with the boards in `included.boards`;
//! - `GET /api/boards/{id}` with lists (including the hidden `archive` and
//!   `trash` lists), the cards of open lists, labels and card labels; `404
//!   Board not found` when the user is not a member;
//! - `POST /api/lists/{id}/cards`: `type` and `position` required (`422
//!   Position must be present`); `PATCH /api/cards/{id}`: a move needs a
//!   position too, and sets `listChangedAt`;
//! - `POST /api/cards/{id}/card-labels`: `409 E_CONFLICT Label already in
//!   card` the second time; `POST /api/cards/{id}/comments` bumps
//!   `commentsTotal`; `DELETE /api/cards/{id}`;
//! - as Planka 2.1.1 was seen to do: a card name is at most 1 024 UTF-16
//!   code units (JavaScript's `length`), a `400` explains itself in
//!   `problems`, a request body over 1 MiB is refused with an empty `400`,
//!   positions are stored as sent (two cards sent with one position keep
//!   it), and every path outside `/api` is the web UI's HTML page;
//! - outgoing webhooks (`POST /api/webhooks`, admin): every card and
//!   comment change on *any* board of the server is delivered, as Planka
//!   has no webhook per board; `change_on_other_board` makes such a change.
//!
//! Tests can make the next requests fail (`fail_next`), hang (`delay_next`),
//! move a card's `listChangedAt` into the past (`age_card`), and read what
//! was requested (`requests`). It proves the backend speaks the protocol; it
//! is not Planka.

#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The board every stub starts with.
pub const BOARD_ID: &str = "1001";
/// A board that exists but whose members do not include the stub's user.
pub const HIDDEN_BOARD_ID: &str = "1002";
/// The project of [`BOARD_ID`].
pub const PROJECT: &str = "Fleet";
/// The name of [`BOARD_ID`].
pub const BOARD: &str = "Ops";
/// The API key the stub accepts.
pub const API_KEY: &str = "abcd1234_secretsecretsecretsecretsecret12";
/// The user and password it accepts.
pub const USER: &str = "bot";
pub const PASSWORD: &str = "hunter2";
/// The labels of the board.
pub const LABELS: [&str; 2] = ["kpi-gap", "urgent"];
const TERMS_SIGNATURE: &str = "9f2a6c0e1d7b4a5e8c3f2b1a0d9e8f7c6b5a4d3c2b1a0f9e8d7c6b5a4f3e2d1c";

enum Fault {
    /// Answer this status instead.
    Status(u16),
    /// Answer Planka's `400` with these `problems`.
    Invalid(Vec<String>),
    /// Wait, then handle the request.
    Delay(Duration),
    /// Handle the request, then wait before answering (an answer lost
    /// after the change was made, when the client gives up first).
    LateAnswer(Duration),
}

struct Webhook {
    url: String,
    token: Option<String>,
}

struct Data {
    next_id: u64,
    webhooks: Vec<Webhook>,
    terms_accepted: bool,
    tokens: Vec<String>,
    pending: Vec<String>,
    lists: Vec<Value>,
    cards: Vec<Value>,
    labels: Vec<Value>,
    card_labels: Vec<Value>,
    comments: Vec<Value>,
    faults: VecDeque<Fault>,
    requests: Vec<String>,
}

/// The stub's state; cheap to clone (shared).
#[derive(Clone)]
pub struct PlankaStub {
    data: Arc<Mutex<Data>>,
}

/// A running stub.
pub struct RunningPlanka {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub stub: PlankaStub,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningPlanka {
    /// Stops serving: the server is down from here on.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for RunningPlanka {
    fn drop(&mut self) {
        self.stop();
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Starts a stub whose user has not yet accepted the terms when
/// `terms_pending`, with the board `Fleet / Ops`: lists Backlog, In
/// Progress, Blocked, Review, Done (plus archive and trash) and labels
/// `kpi-gap` and `urgent`.
pub async fn start(terms_pending: bool) -> RunningPlanka {
    let mut data = Data {
        next_id: 5000,
        webhooks: Vec::new(),
        terms_accepted: !terms_pending,
        tokens: Vec::new(),
        pending: Vec::new(),
        lists: Vec::new(),
        cards: Vec::new(),
        labels: Vec::new(),
        card_labels: Vec::new(),
        comments: Vec::new(),
        faults: VecDeque::new(),
        requests: Vec::new(),
    };
    let created = iso(now_ms());
    // Created in an order that is not the board's, as positions decide.
    for (name, position) in [
        ("Done", 327_680),
        ("Backlog", 65_536),
        ("Blocked", 196_608),
        ("In Progress", 131_072),
        ("Review", 262_144),
    ] {
        let id = data.id();
        data.lists
            .push(json!({"id": id, "createdAt": created, "updatedAt": null,
            "type": "active", "position": position, "name": name, "color": null,
            "boardId": BOARD_ID}));
    }
    for kind in ["archive", "trash"] {
        let id = data.id();
        data.lists
            .push(json!({"id": id, "createdAt": created, "updatedAt": null,
            "type": kind, "position": null, "name": null, "color": null, "boardId": BOARD_ID}));
    }
    for (i, name) in LABELS.iter().enumerate() {
        let id = data.id();
        data.labels.push(json!({"id": id, "createdAt": created, "updatedAt": null,
            "position": 65_536 * (i + 1), "name": name, "color": "berry-red", "boardId": BOARD_ID}));
    }
    let stub = PlankaStub {
        data: Arc::new(Mutex::new(data)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Planka reads bodies up to its own limit (below); axum's must not
    // answer first.
    let app = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(stub.clone());
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    RunningPlanka {
        url,
        stub,
        stop: Some(stop),
    }
}

impl Data {
    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// Posts an event to every webhook, as Planka's `send-webhooks` helper
    /// does: `{"event", "data": {"item", "included"}, "prevData", "user"}`.
    fn deliver(&self, event: &str, item: Value, prev: Option<Value>, board: &str) {
        let lists: Vec<&Value> = self
            .lists
            .iter()
            .filter(|l| item.get("listId").is_some_and(|id| l["id"] == *id))
            .collect();
        let mut body = json!({
            "event": event,
            "data": {"item": item, "included": {
                "projects": [{"id": "900", "name": PROJECT}],
                "boards": [{"id": board, "name": BOARD}],
                "lists": lists}},
            "user": {"id": "1", "username": USER, "name": "Bot"}
        });
        if let Some(prev) = prev {
            body["prevData"] = json!({"item": prev});
        }
        for hook in &self.webhooks {
            let mut request = reqwest::Client::new().post(&hook.url).json(&body);
            if let Some(token) = &hook.token {
                request = request.bearer_auth(token);
            }
            // Fire and forget, as Planka: a failed delivery is not retried.
            tokio::spawn(async move {
                let _ = request.send().await;
            });
        }
    }

    fn list(&self, id: &str) -> Option<&Value> {
        self.lists.iter().find(|l| l["id"] == id)
    }

    fn card_mut(&mut self, id: &str) -> Option<&mut Value> {
        self.cards.iter_mut().find(|c| c["id"] == id)
    }
}

impl PlankaStub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap()
    }

    /// The next `n` requests answer `status` (with Planka's error body).
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut data = self.lock();
        for _ in 0..n {
            data.faults.push_back(Fault::Status(status));
        }
    }

    /// The next `POST` is refused with a `400` listing `problems`, as
    /// Planka refuses parameters that fail its validation.
    pub fn refuse_next(&self, problems: &[&str]) {
        self.lock().faults.push_back(Fault::Invalid(
            problems.iter().map(|p| p.to_string()).collect(),
        ));
    }

    /// The next `n` requests are answered after `delay`.
    pub fn delay_next(&self, n: usize, delay: Duration) {
        let mut data = self.lock();
        for _ in 0..n {
            data.faults.push_back(Fault::Delay(delay));
        }
    }

    /// The next `n` requests are applied, then answered after `delay`.
    pub fn late_answer_next(&self, n: usize, delay: Duration) {
        let mut data = self.lock();
        for _ in 0..n {
            data.faults.push_back(Fault::LateAnswer(delay));
        }
    }

    /// Forgets every token it issued (as a Planka whose secret changed).
    pub fn forget_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// How many requests so far were exactly `METHOD /path`.
    pub fn exactly(&self, request: &str) -> usize {
        self.requests().iter().filter(|r| *r == request).count()
    }

    /// Every request so far, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// How many requests so far were `METHOD /path-prefix...`.
    pub fn count(&self, method_and_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.starts_with(method_and_prefix))
            .count()
    }

    /// The cards, as Planka would return them.
    pub fn cards(&self) -> Vec<Value> {
        self.lock().cards.clone()
    }

    /// The id of the list named `name`.
    pub fn list_id(&self, name: &str) -> String {
        let data = self.lock();
        data.lists
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["id"].as_str().unwrap().to_string())
            .unwrap()
    }

    /// Moves card `id`'s `listChangedAt` (and `createdAt`) `hours` back.
    pub fn age_card(&self, id: &str, hours: i64) {
        let mut data = self.lock();
        let card = data.card_mut(id).expect("no such card");
        let back = |v: &Value| {
            let t = chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
            json!(iso(t.timestamp_millis() - hours * 3_600_000))
        };
        card["listChangedAt"] = back(&card["listChangedAt"]);
        card["createdAt"] = back(&card["createdAt"]);
    }

    /// Another user creates a card on board `board` (not the host's):
    /// Planka delivers it to every webhook all the same.
    pub fn change_on_other_board(&self, board: &str, name: &str) {
        let mut data = self.lock();
        let id = data.id();
        let card = json!({"id": id, "createdAt": iso(now_ms()), "updatedAt": null,
            "type": "project", "position": 65536, "name": name, "description": null,
            "listChangedAt": iso(now_ms()), "boardId": board, "listId": "7777",
            "commentsTotal": 0});
        data.deliver("cardCreate", card, None, board);
    }

    /// The labels of card `id`, by name.
    pub fn labels_of(&self, id: &str) -> Vec<String> {
        let data = self.lock();
        let mut names: Vec<String> = data
            .card_labels
            .iter()
            .filter(|cl| cl["cardId"] == id)
            .filter_map(|cl| data.labels.iter().find(|l| l["id"] == cl["labelId"]))
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

/// The largest request body Planka reads (its body parser's `1mb`).
pub const MAX_BODY: usize = 1 << 20;

fn error(status: u16, code: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

/// Planka's `400` for parameters that fail validation: the reasons are in
/// `problems`.
fn invalid_params(path: &str, problems: &[String]) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "code": "E_MISSING_OR_INVALID_PARAMS",
            "problems": problems,
            "message": format!(
                "The server could not fulfill this request (`{path}`) due to {} missing or \
                 invalid parameter{}.",
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            )
        })),
    )
        .into_response()
}

/// JavaScript's `length` of a string: UTF-16 code units.
fn js_length(s: &str) -> usize {
    s.encode_utf16().count()
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

async fn handle(
    State(stub): State<PlankaStub>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    // Planka's web UI answers every path outside its API.
    if !path.starts_with("/api/") {
        return (
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><head><title>Planka</title></head><body>\
             <div id=\"root\"></div></body></html>",
        )
            .into_response();
    }
    // Its body parser refuses a body over its limit with an empty 400.
    if body.len() > MAX_BODY {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let fault = {
        let mut data = stub.lock();
        data.requests.push(format!("{method} {path}"));
        let waits_for_a_post =
            matches!(data.faults.front(), Some(Fault::Invalid(_))) && method != Method::POST;
        if waits_for_a_post {
            None
        } else {
            data.faults.pop_front()
        }
    };
    match fault {
        Some(Fault::Status(status)) => {
            let code = if status == 503 {
                "E_UNAVAILABLE"
            } else {
                "E_INTERNAL"
            };
            error(status, code, "injected failure")
        }
        Some(Fault::Invalid(problems)) => invalid_params(&format!("{method} {path}"), &problems),
        Some(Fault::Delay(delay)) => {
            tokio::time::sleep(delay).await;
            respond(&stub, &method, &path, &headers, &body)
        }
        Some(Fault::LateAnswer(delay)) => {
            let response = respond(&stub, &method, &path, &headers, &body);
            tokio::time::sleep(delay).await;
            response
        }
        None => respond(&stub, &method, &path, &headers, &body),
    }
}

fn respond(
    stub: &PlankaStub,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return error(400, "E_MISSING_OR_INVALID_PARAMS", "Invalid JSON"),
        }
    };
    let segments: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    let mut data = stub.lock();

    // Public endpoints.
    match (method, segments.as_slice()) {
        (&Method::POST, ["access-tokens"]) => {
            let user = body["emailOrUsername"].as_str().unwrap_or("");
            if user != USER || body["password"] != PASSWORD {
                return error(401, "E_UNAUTHORIZED", "Invalid credentials");
            }
            if !data.terms_accepted {
                let pending = format!("pending-{}", data.id());
                data.pending.push(pending.clone());
                return (
                    StatusCode::FORBIDDEN,
                    axum::Json(json!({"code": "E_FORBIDDEN", "pendingToken": pending,
                        "message": "Terms acceptance required", "step": "accept-terms"})),
                )
                    .into_response();
            }
            let token = format!("jwt-{}", data.id());
            data.tokens.push(token.clone());
            return ok(json!({"item": token}));
        }
        (&Method::GET, ["terms"]) => {
            return ok(json!({"item": {"language": "en-US",
                "content": "# Terms of use", "signature": TERMS_SIGNATURE}}));
        }
        (&Method::POST, ["access-tokens", "accept-terms"]) => {
            let pending = body["pendingToken"].as_str().unwrap_or("");
            if !data.pending.iter().any(|p| p == pending) {
                return error(401, "E_UNAUTHORIZED", "Invalid pending token");
            }
            if body["signature"] != TERMS_SIGNATURE {
                return error(422, "E_UNPROCESSABLE_ENTITY", "Invalid signature");
            }
            data.terms_accepted = true;
            let token = format!("jwt-{}", data.id());
            data.tokens.push(token.clone());
            return ok(json!({"item": token}));
        }
        _ => {}
    }

    // Everything else needs a user: the bearer token wins over the API key.
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorised = match bearer {
        Some(token) => data.tokens.iter().any(|t| t == token),
        None => headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(API_KEY),
    };
    if !authorised {
        return error(
            401,
            "E_UNAUTHORIZED",
            "Access token is missing, invalid or expired",
        );
    }
    let now = iso(now_ms());

    match (method, segments.as_slice()) {
        (&Method::GET, ["projects"]) => ok(json!({
            "items": [{"id": "900", "name": PROJECT, "type": "shared", "isFavorite": false},
                      {"id": "901", "name": "Other", "type": "shared", "isFavorite": false}],
            "included": {"boards": [
                {"id": BOARD_ID, "projectId": "900", "name": BOARD, "position": 65536},
                {"id": "1003", "projectId": "901", "name": BOARD, "position": 65536}],
                "boardMemberships": [], "projectManagers": [], "users": []}
        })),
        (&Method::GET, ["boards", id]) => {
            if *id != BOARD_ID {
                return error(404, "E_NOT_FOUND", "Board not found");
            }
            let open: Vec<&Value> = data
                .lists
                .iter()
                .filter(|l| l["type"] == "active" || l["type"] == "closed")
                .collect();
            let cards: Vec<&Value> = data
                .cards
                .iter()
                .filter(|c| open.iter().any(|l| l["id"] == c["listId"]))
                .collect();
            ok(json!({
                "item": {"id": BOARD_ID, "name": BOARD, "projectId": "900", "position": 65536},
                "included": {"lists": data.lists, "cards": cards, "labels": data.labels,
                    "cardLabels": data.card_labels, "cardMemberships": [], "taskLists": [],
                    "tasks": [], "attachments": [], "customFieldGroups": [], "customFields": [],
                    "customFieldValues": [], "boardMemberships": [], "users": [], "projects": []}
            }))
        }
        (&Method::POST, ["lists", list, "cards"]) => {
            let Some(target) = data.list(list).cloned() else {
                return error(404, "E_NOT_FOUND", "List not found");
            };
            if body["type"] != "project" && body["type"] != "story" {
                return error(
                    400,
                    "E_MISSING_OR_INVALID_PARAMS",
                    "The following parameters are missing or invalid: type",
                );
            }
            let Some(name) = body["name"].as_str().filter(|n| !n.is_empty()) else {
                return invalid_params(
                    &format!("POST {path}"),
                    &["\"name\" is required, but it was not defined.".to_string()],
                );
            };
            if js_length(name) > 1024 {
                return invalid_params(
                    &format!("POST {path}"),
                    &[format!(
                        "Invalid \"name\":\n  · Value was {} character(s) long, but it must not \
                         exceed 1024.",
                        js_length(name)
                    )],
                );
            }
            if !body["position"].is_number() {
                return error(422, "E_UNPROCESSABLE_ENTITY", "Position must be present");
            }
            let id = data.id();
            let card = json!({"id": id, "createdAt": now, "updatedAt": null,
                "type": body["type"], "position": body["position"], "name": name,
                "description": body["description"], "dueDate": null, "isDueCompleted": null,
                "stopwatch": null, "commentsTotal": 0, "isClosed": target["type"] == "closed",
                "listChangedAt": now, "boardId": BOARD_ID, "listId": list,
                "creatorUserId": "1", "prevListId": null, "coverAttachmentId": null});
            data.cards.push(card.clone());
            data.deliver("cardCreate", card.clone(), None, BOARD_ID);
            ok(json!({"item": card}))
        }
        (&Method::GET, ["cards", id]) => match data.cards.iter().find(|c| c["id"] == *id) {
            Some(card) => ok(json!({"item": card, "included": {"cardLabels": []}})),
            None => error(404, "E_NOT_FOUND", "Card not found"),
        },
        (&Method::PATCH, ["cards", id]) => {
            let target = body.get("listId").cloned();
            if let Some(list) = &target {
                if data.list(list.as_str().unwrap_or("")).is_none() {
                    return error(404, "E_NOT_FOUND", "List not found");
                }
                if !body["position"].is_number() {
                    return error(422, "E_UNPROCESSABLE_ENTITY", "Position must be present");
                }
            }
            if let Some(name) = body.get("name").and_then(Value::as_str) {
                if js_length(name) > 1024 {
                    return invalid_params(
                        &format!("PATCH {path}"),
                        &[format!(
                            "Invalid \"name\":\n  · Value was {} character(s) long, but it must \
                             not exceed 1024.",
                            js_length(name)
                        )],
                    );
                }
            }
            let Some(card) = data.card_mut(id) else {
                return error(404, "E_NOT_FOUND", "Card not found");
            };
            let before = card.clone();
            if let Some(list) = target {
                if card["listId"] != list {
                    card["prevListId"] = card["listId"].clone();
                    card["listId"] = list;
                    card["listChangedAt"] = json!(now);
                }
                card["position"] = body["position"].clone();
            }
            for key in ["name", "description"] {
                if let Some(v) = body.get(key) {
                    card[key] = v.clone();
                }
            }
            card["updatedAt"] = json!(now);
            let card = card.clone();
            data.deliver("cardUpdate", card.clone(), Some(before), BOARD_ID);
            ok(json!({"item": card}))
        }
        (&Method::DELETE, ["cards", id]) => {
            let Some(at) = data.cards.iter().position(|c| c["id"] == *id) else {
                return error(404, "E_NOT_FOUND", "Card not found");
            };
            let card = data.cards.remove(at);
            data.card_labels.retain(|cl| cl["cardId"] != *id);
            ok(json!({"item": card}))
        }
        (&Method::POST, ["cards", id, "card-labels"]) => {
            if data.cards.iter().all(|c| c["id"] != *id) {
                return error(404, "E_NOT_FOUND", "Card not found");
            }
            let label = body["labelId"].clone();
            if data.labels.iter().all(|l| l["id"] != label) {
                return error(404, "E_NOT_FOUND", "Label not found");
            }
            if data
                .card_labels
                .iter()
                .any(|cl| cl["cardId"] == *id && cl["labelId"] == label)
            {
                return error(409, "E_CONFLICT", "Label already in card");
            }
            let cl_id = data.id();
            let cl = json!({"id": cl_id, "createdAt": now, "updatedAt": null,
                "cardId": id, "labelId": label});
            data.card_labels.push(cl.clone());
            ok(json!({"item": cl}))
        }
        (&Method::POST, ["cards", id, "comments"]) => {
            let Some(text) = body["text"].as_str().filter(|t| !t.trim().is_empty()) else {
                return error(
                    400,
                    "E_MISSING_OR_INVALID_PARAMS",
                    "The following parameters are missing or invalid: text",
                );
            };
            let text = text.to_string();
            let comment_id = data.id();
            let Some(card) = data.card_mut(id) else {
                return error(404, "E_NOT_FOUND", "Card not found");
            };
            card["commentsTotal"] = json!(card["commentsTotal"].as_u64().unwrap_or(0) + 1);
            card["updatedAt"] = json!(now);
            let comment = json!({"id": comment_id, "createdAt": now, "updatedAt": null,
                "text": text, "cardId": id, "userId": "1"});
            data.comments.push(comment.clone());
            data.deliver("commentCreate", comment.clone(), None, BOARD_ID);
            ok(json!({"item": comment}))
        }
        (&Method::POST, ["webhooks"]) => {
            let Some(url) = body["url"].as_str() else {
                return invalid_params(
                    &format!("POST {path}"),
                    &["\"url\" is required, but it was not defined.".to_string()],
                );
            };
            data.webhooks.push(Webhook {
                url: url.to_string(),
                token: body["accessToken"].as_str().map(str::to_string),
            });
            let id = data.id();
            ok(json!({"item": {"id": id, "name": body["name"], "url": url}}))
        }
        _ => error(404, "E_NOT_FOUND", "Not found"),
    }
}
