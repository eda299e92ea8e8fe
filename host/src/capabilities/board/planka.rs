//! The Planka backend: a board of a Planka v2 server, through its REST API.
//!
//! What it relies on (see Planka's `server/config/routes.js`):
//! `GET /api/boards/{id}` returns the board with its lists, the cards of its
//! open lists, its labels and card labels in one answer; cards carry
//! `listChangedAt`, the time they entered their list; positions are spaced
//! 65 536 apart and `position` is required when a card is created in or
//! moved into a list.
//!
//! Planka's limits are the host's: a title of at most 1 024 UTF-16 code
//! units (checked by the caller), a request body of at most 1 MiB (checked
//! here before sending: Planka answers a larger one with an empty `400`).
//! Planka's `400`s list their reasons in `problems`, which errors repeat.
//! Cards created or moved at once are placed one after the other, so each
//! gets its own position. An address that answers with a web page is not
//! Planka's API: that is a configuration error that stops the host from
//! starting, not "Planka is down".
//!
//! Authentication is an API key (`X-Api-Key`), or a username and password
//! exchanged for a token (`POST /api/access-tokens`). A user's first login
//! answers `403` with `step: accept-terms`; the host accepts the terms for
//! that user only when told to (`accept_terms`), since that is a decision
//! for a person. An expired token is renewed once per call.
//!
//! Reliability: every request has a timeout. Requests that can safely be
//! repeated (reads, `PATCH`, adding a label to a card, where `409` means it
//! is already there) are retried with exponential backoff on timeouts and
//! 5xx answers. Creating a card or a comment is retried only when the
//! request could not be sent at all or Planka answered `503`: after a
//! timeout or another 5xx it may have been applied, and a retry would post
//! it twice. A card whose labels cannot be attached is deleted again, so a
//! failed create leaves nothing behind.

use super::NewCard;
use super::{check_comment, BoardBackend, BoardError, Card, CardEdit, CardFilter, Comment, List};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// How the errors of a Planka that is down (unreachable, or answering 5xx)
/// begin; other errors are the host's configuration or the caller's input.
const DOWN: &str = "Planka is down";

/// Gap between card positions (Planka's `POSITION_GAP`).
const POSITION_GAP: f64 = 65_536.0;

/// The largest request body Planka reads (its body parser's `1mb`); a
/// larger one is refused with an empty `400`.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// How the host logs in to Planka.
#[derive(Clone)]
pub enum PlankaAuth {
    /// An API key, sent as `X-Api-Key` (Planka 2.0 and later).
    ApiKey(String),
    /// A user's name (or e-mail) and password, exchanged for a token.
    Password {
        /// Username or e-mail address.
        username: String,
        /// The password.
        password: String,
    },
}

impl std::fmt::Debug for PlankaAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlankaAuth::ApiKey(_) => f.write_str("ApiKey(..)"),
            PlankaAuth::Password { username, .. } => write!(f, "Password({username}, ..)"),
        }
    }
}

/// Which board of the Planka server is the fleet's board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlankaBoardRef {
    /// By id.
    Id(String),
    /// By the names of its project and of itself.
    Named {
        /// The project's name.
        project: String,
        /// The board's name.
        board: String,
    },
}

/// How to reach the Planka board.
#[derive(Debug, Clone)]
pub struct PlankaConfig {
    /// The server's base URL, e.g. `http://planka:1337`.
    pub url: String,
    /// How to log in.
    pub auth: PlankaAuth,
    /// The board.
    pub board: PlankaBoardRef,
    /// Accept Planka's terms on the user's first login.
    pub accept_terms: bool,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Retries after the first attempt of a request that may be repeated.
    pub retries: u32,
    /// The first backoff; it doubles on each retry.
    pub backoff: Duration,
}

impl PlankaConfig {
    /// A configuration with the default timeout (10 s), 3 retries and a
    /// 200 ms first backoff.
    pub fn new(url: impl Into<String>, auth: PlankaAuth, board: PlankaBoardRef) -> Self {
        PlankaConfig {
            url: url.into(),
            auth,
            board,
            accept_terms: false,
            timeout: Duration::from_secs(10),
            retries: 3,
            backoff: Duration::from_millis(200),
        }
    }
}

/// Whether a request may be sent again when its answer is lost.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Repeating it changes nothing: retry on timeouts and 5xx.
    Safe,
    /// Repeating it could apply it twice: retry only when it was surely not
    /// applied (not sent, or 503).
    Once,
}

/// A Planka v2 board.
pub struct PlankaBoard {
    http: reqwest::Client,
    api: String,
    config: PlankaConfig,
    token: tokio::sync::Mutex<Option<String>>,
    board_id: tokio::sync::OnceCell<String>,
    /// Held from the snapshot a position is computed from to the write that
    /// uses it, so that cards created or moved at once get positions of
    /// their own.
    placing: tokio::sync::Mutex<()>,
}

/// A failed request, before it is turned into a [`BoardError`].
enum Failure {
    /// Planka answered with an error status.
    Status {
        status: StatusCode,
        code: String,
        message: String,
        body: Value,
    },
    /// No usable answer.
    Transport(String),
    /// Logging in failed.
    Board(BoardError),
}

impl PlankaBoard {
    /// A client for `config`; nothing is sent until [`connect`](Self::connect)
    /// or the first call.
    pub fn new(config: PlankaConfig) -> Result<Self, BoardError> {
        let url = config.url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| BoardError::Invalid(format!("the Planka URL `{url}` is invalid: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BoardError::Invalid(format!(
                "the Planka URL `{url}` must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("darkfactory/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BoardError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        Ok(PlankaBoard {
            http,
            api: format!("{url}/api"),
            config,
            token: tokio::sync::Mutex::new(None),
            board_id: tokio::sync::OnceCell::new(),
            placing: tokio::sync::Mutex::new(()),
        })
    }

    /// Logs in and finds the board, so that wrong credentials or a wrong
    /// board are reported when the host starts. Planka being down is not a
    /// reason to refuse to start: that is logged, and board calls answer
    /// "unavailable" until it is back.
    pub async fn connect(&self) -> Result<(), BoardError> {
        let snapshot = match self.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(BoardError::Unavailable(m)) if m.starts_with(DOWN) => {
                tracing::warn!(url = %self.config.url, error = %m, "Planka is down; the board will answer unavailable until it is back");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        tracing::info!(
            url = %self.config.url,
            board = %self.board_id().await?,
            lists = snapshot.lists.len(),
            cards = snapshot.cards.len(),
            "Planka board ready"
        );
        Ok(())
    }

    /// Sends one request, retrying as `repeat` allows; the JSON answer of a
    /// 2xx, or the failure.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        auth: Option<&(&'static str, String)>,
        repeat: Repeat,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.api);
        let encoded = match body {
            Some(body) => Some(serde_json::to_vec(body).map_err(|e| {
                Failure::Board(BoardError::Invalid(format!(
                    "cannot encode the request: {e}"
                )))
            })?),
            None => None,
        };
        if let Some(encoded) = &encoded {
            if encoded.len() > MAX_REQUEST_BYTES {
                return Err(Failure::Board(BoardError::Invalid(format!(
                    "{method} /api{path} would send Planka {} bytes; Planka reads at most \
                     {MAX_REQUEST_BYTES} bytes (1 MiB) per request, JSON escapes included: \
                     shorten the text",
                    encoded.len()
                ))));
            }
        }
        let mut attempt = 0;
        loop {
            let mut request = self.http.request(method.clone(), &url);
            if let Some((header, value)) = auth {
                request = request.header(*header, value);
            }
            if let Some(encoded) = &encoded {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(encoded.clone());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let html = response
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|v| v.starts_with("text/html"));
                    let text = response.text().await.unwrap_or_default();
                    // A web page where the API should answer: the wrong
                    // address. (A proxy's page for a 5xx is Planka being
                    // down, and is retried as such.)
                    let page = html || text.trim_start().starts_with('<');
                    if page && (status.is_success() || status == StatusCode::NOT_FOUND) {
                        return Err(Failure::Board(self.not_the_api(&method, path, status)));
                    }
                    if status.is_success() {
                        return serde_json::from_str(if text.is_empty() { "null" } else { &text })
                            .map_err(|e| {
                                Failure::Transport(format!(
                                    "{method} {path} answered {status} with invalid JSON: {e}"
                                ))
                            });
                    }
                    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let field = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
                    let failure = Failure::Status {
                        status,
                        code: field("code").to_string(),
                        message: field("message").to_string(),
                        body: body.clone(),
                    };
                    let again = status.is_server_error()
                        && (repeat == Repeat::Safe || status == StatusCode::SERVICE_UNAVAILABLE);
                    if !again {
                        return Err(failure);
                    }
                    failure
                }
                Err(e) => {
                    let again = e.is_connect() || (repeat == Repeat::Safe && e.is_timeout());
                    let what = if e.is_timeout() && repeat == Repeat::Once {
                        format!(
                            "no answer within {:?}; Planka may have applied it, so it was not \
                             sent again: look before retrying",
                            self.config.timeout
                        )
                    } else if e.is_timeout() {
                        format!("no answer within {:?}", self.config.timeout)
                    } else if e.is_connect() {
                        "cannot connect".to_string()
                    } else {
                        e.to_string()
                    };
                    let failure = Failure::Transport(format!(
                        "{method} {path}: {what} ({})",
                        self.config.url
                    ));
                    if !again {
                        return Err(failure);
                    }
                    failure
                }
            };
            if attempt >= self.config.retries {
                return Err(failure);
            }
            let delay = self.config.backoff * 2u32.saturating_pow(attempt);
            attempt += 1;
            tracing::debug!(%method, path, attempt, ?delay, "retrying a Planka request");
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends an authenticated request; renews an expired token once.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Value, BoardError> {
        self.request(method.clone(), path, body, repeat)
            .await
            .map_err(|f| self.error(&method, path, f))
    }

    /// [`call`](Self::call), keeping Planka's status for the caller to judge.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<Value, Failure> {
        let mut renewed = false;
        loop {
            let auth = self.auth_header(renewed).await.map_err(Failure::Board)?;
            match self
                .send(method.clone(), path, body, Some(&auth), repeat)
                .await
            {
                Err(Failure::Status { status, .. })
                    if status == StatusCode::UNAUTHORIZED
                        && !renewed
                        && matches!(self.config.auth, PlankaAuth::Password { .. }) =>
                {
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    /// The header that authenticates a request; with a password, the token
    /// (logging in first when there is none, or when `renew`).
    async fn auth_header(&self, renew: bool) -> Result<(&'static str, String), BoardError> {
        match &self.config.auth {
            PlankaAuth::ApiKey(key) => Ok(("x-api-key", key.clone())),
            PlankaAuth::Password { username, password } => {
                let mut token = self.token.lock().await;
                if renew || token.is_none() {
                    *token = Some(self.login(username, password).await?);
                }
                let token = token.as_ref().map(String::as_str).unwrap_or_default();
                Ok(("authorization", format!("Bearer {token}")))
            }
        }
    }

    /// Exchanges the password for a token, through the terms step when
    /// Planka asks for it and the host may accept them.
    async fn login(&self, username: &str, password: &str) -> Result<String, BoardError> {
        let body =
            json!({"emailOrUsername": username, "password": password, "withHttpOnlyToken": false});
        let path = "/access-tokens";
        match self
            .send(Method::POST, path, Some(&body), None, Repeat::Safe)
            .await
        {
            Ok(answer) => token_of(&answer, path),
            Err(Failure::Status {
                status,
                body,
                message,
                ..
            }) if status == StatusCode::FORBIDDEN
                && body.get("step").and_then(Value::as_str) == Some("accept-terms") =>
            {
                if !self.config.accept_terms {
                    return Err(BoardError::Denied(format!(
                        "Planka asks user `{username}` to accept its terms before the first \
                         login ({message}): log in once in Planka's web UI, or start the host \
                         with --planka-accept-terms to accept them for this user"
                    )));
                }
                let pending = body
                    .get("pendingToken")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let terms = self
                    .send(Method::GET, "/terms", None, None, Repeat::Safe)
                    .await
                    .map_err(|f| self.error(&Method::GET, "/terms", f))?;
                let signature = terms
                    .pointer("/item/signature")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        BoardError::Unavailable("Planka's /api/terms has no signature".into())
                    })?;
                let path = "/access-tokens/accept-terms";
                let body = json!({"pendingToken": pending, "signature": signature});
                let answer = self
                    .send(Method::POST, path, Some(&body), None, Repeat::Safe)
                    .await
                    .map_err(|f| self.error(&Method::POST, path, f))?;
                tracing::warn!(
                    user = username,
                    signature,
                    "accepted Planka's terms for this user (--planka-accept-terms)"
                );
                token_of(&answer, path)
            }
            Err(Failure::Status {
                status, message, ..
            }) if status == StatusCode::UNAUTHORIZED => Err(BoardError::Unavailable(format!(
                "Planka refused the password of user `{username}` ({message})"
            ))),
            Err(failure) => Err(self.error(&Method::POST, path, failure)),
        }
    }

    /// Turns a failure into a clear error.
    fn error(&self, method: &Method, path: &str, failure: Failure) -> BoardError {
        let (status, code, message) = match failure {
            Failure::Transport(m) => {
                return BoardError::Unavailable(format!("{DOWN} or unreachable: {m}"))
            }
            Failure::Board(e) => return e,
            Failure::Status {
                status,
                code,
                message,
                body,
            } => (status, code, explained(&message, &body)),
        };
        let said = match (code.is_empty(), message.is_empty()) {
            (_, true) if status == StatusCode::BAD_REQUEST => format!(
                "{status} with an empty body: Planka answers so when a request's body is over \
                 its 1 MiB limit or is not JSON it can read"
            ),
            (_, true) => format!("{status} with an empty body"),
            (true, false) => format!("{status}: {message}"),
            (false, false) => format!("{status} {code}: {message}"),
        };
        match status {
            StatusCode::UNAUTHORIZED => BoardError::Unavailable(format!(
                "Planka refused the host's credentials on {method} /api{path} ({said}); check \
                 the API key, or the user and password"
            )),
            StatusCode::FORBIDDEN => BoardError::Denied(format!(
                "Planka refused {method} /api{path} ({said}): the host's Planka user must be \
                 an editor of the board"
            )),
            StatusCode::NOT_FOUND => BoardError::NotFound(format!(
                "Planka answered {method} /api{path} with {said} (it does not exist, or the \
                 host's Planka user is not a member of its board)"
            )),
            StatusCode::BAD_REQUEST | StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => {
                BoardError::Invalid(format!("Planka rejected {method} /api{path} ({said})"))
            }
            _ => BoardError::Unavailable(format!(
                "{DOWN} or failing: {method} /api{path} answered {said}"
            )),
        }
    }

    /// What an HTML answer means: `--planka-url` names Planka's web pages
    /// (or another site), not the server whose `/api` the host needs.
    fn not_the_api(&self, method: &Method, path: &str, status: StatusCode) -> BoardError {
        BoardError::Invalid(format!(
            "{} answered {method} /api{path} with a web page ({status}), not Planka's API: \
             --planka-url must be Planka's base URL, the address its web UI is served at \
             without any path (e.g. `http://planka:1337`, not `.../boards/...`)",
            self.config.url
        ))
    }

    /// The board's id, once it is known (configured, or found by name).
    pub fn known_board_id(&self) -> Option<String> {
        match &self.config.board {
            PlankaBoardRef::Id(id) => checked_id(id, "board").ok().map(str::to_string),
            PlankaBoardRef::Named { .. } => self.board_id.get().cloned(),
        }
    }

    /// The board's id, found by name the first time when configured so.
    async fn board_id(&self) -> Result<String, BoardError> {
        self.board_id
            .get_or_try_init(|| async {
                match &self.config.board {
                    PlankaBoardRef::Id(id) => Ok(checked_id(id, "board")?.to_string()),
                    PlankaBoardRef::Named { project, board } => {
                        let answer = self
                            .call(Method::GET, "/projects", None, Repeat::Safe)
                            .await?;
                        find_board(&answer, project, board)
                    }
                }
            })
            .await
            .cloned()
    }

    /// The board as it is now: lists, open cards, labels.
    async fn snapshot(&self) -> Result<Snapshot, BoardError> {
        let id = self.board_id().await?;
        let path = format!("/boards/{id}");
        let answer = self
            .call(Method::GET, &path, None, Repeat::Safe)
            .await
            .map_err(|e| match e {
                BoardError::NotFound(_) => BoardError::NotFound(format!(
                    "Planka has no board {id} that the host's user can see (Planka answers \
                     404 for boards the user is not a member of): add the user to the board"
                )),
                e => e,
            })?;
        let included: Included = parse(answer.get("included").cloned(), &path)?;
        Ok(Snapshot::new(included))
    }

    /// Attaches labels to a new card; deletes the card if that fails.
    async fn attach_labels(&self, card: &str, labels: &[&PLabel]) -> Result<(), BoardError> {
        for label in labels {
            let path = format!("/cards/{card}/card-labels");
            let body = json!({"labelId": label.id});
            let attached = match self
                .request(Method::POST, &path, Some(&body), Repeat::Safe)
                .await
            {
                // Already there: a retried request that Planka had applied.
                Err(Failure::Status { status, .. }) if status == StatusCode::CONFLICT => Ok(()),
                Err(failure) => Err(self.error(&Method::POST, &path, failure)),
                Ok(_) => Ok(()),
            };
            if let Err(e) = attached {
                let path = format!("/cards/{card}");
                if let Err(undo) = self.call(Method::DELETE, &path, None, Repeat::Safe).await {
                    tracing::error!(card, error = %undo, "could not delete a half-created card");
                }
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Planka's message with the `problems` it lists (the reasons of a `400`).
fn explained(message: &str, body: &Value) -> String {
    let problems: Vec<&str> = body
        .get("problems")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let message = crate::runtime::bounded::cut(message, 512).into_owned();
    if problems.is_empty() {
        return message;
    }
    let problems = crate::runtime::bounded::cut_owned(problems.join("; "), 1024);
    if message.is_empty() {
        problems
    } else {
        format!("{message} ({problems})")
    }
}

fn token_of(answer: &Value, path: &str) -> Result<String, BoardError> {
    answer
        .get("item")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| BoardError::Unavailable(format!("Planka's {path} answered no token")))
}

/// A Planka id: digits only, so it is safe in a URL path.
fn checked_id<'a>(id: &'a str, what: &str) -> Result<&'a str, BoardError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BoardError::NotFound(format!(
            "no {what} `{id}`: Planka ids are strings of digits"
        )));
    }
    Ok(id)
}

fn parse<T: serde::de::DeserializeOwned>(
    value: Option<Value>,
    path: &str,
) -> Result<T, BoardError> {
    serde_json::from_value(value.unwrap_or(Value::Null)).map_err(|e| {
        BoardError::Unavailable(format!(
            "Planka's answer to {path} is not what v2 sends: {e}"
        ))
    })
}

fn find_board(projects: &Value, project: &str, board: &str) -> Result<String, BoardError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Named {
        id: String,
        name: String,
        #[serde(default)]
        project_id: Option<String>,
    }
    let items: Vec<Named> = parse(projects.get("items").cloned(), "/projects")?;
    let boards: Vec<Named> = parse(
        projects
            .pointer("/included/boards")
            .cloned()
            .or(Some(json!([]))),
        "/projects",
    )?;
    let names = |v: &[&Named]| {
        v.iter()
            .map(|n| format!("`{}`", n.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(found) = items.iter().find(|p| same_name(&p.name, project)) else {
        return Err(BoardError::NotFound(format!(
            "Planka has no project `{project}` that the host's user can see; its projects are {}",
            names(&items.iter().collect::<Vec<_>>())
        )));
    };
    let in_project: Vec<&Named> = boards
        .iter()
        .filter(|b| b.project_id.as_deref() == Some(found.id.as_str()))
        .collect();
    in_project
        .iter()
        .find(|b| same_name(&b.name, board))
        .map(|b| b.id.clone())
        .ok_or_else(|| {
            BoardError::NotFound(format!(
                "project `{project}` has no board `{board}` that the host's user can see; its \
                 boards are {}",
                names(&in_project)
            ))
        })
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn ms(iso: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(iso)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .unwrap_or(0)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PList {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    position: Option<f64>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

impl PList {
    /// Lists that hold cards in order; Planka's `archive` and `trash` lists
    /// are not part of the board a skill sees.
    fn is_open(&self) -> bool {
        matches!(self.kind.as_deref(), None | Some("active") | Some("closed"))
    }
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct PCard {
    id: String,
    list_id: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    position: Option<f64>,
    created_at: String,
    #[serde(default)]
    list_changed_at: Option<String>,
    #[serde(default)]
    comments_total: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PLabel {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PCardLabel {
    card_id: String,
    label_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Included {
    lists: Vec<PList>,
    #[serde(default)]
    cards: Vec<PCard>,
    #[serde(default)]
    labels: Vec<PLabel>,
    #[serde(default)]
    card_labels: Vec<PCardLabel>,
}

/// One `GET /api/boards/{id}`, indexed.
struct Snapshot {
    lists: Vec<PList>,
    cards: Vec<PCard>,
    labels: Vec<PLabel>,
    /// Label names of each card.
    card_labels: HashMap<String, Vec<String>>,
}

impl Snapshot {
    fn new(included: Included) -> Self {
        let names: HashMap<&str, &str> = included
            .labels
            .iter()
            .filter_map(|l| Some((l.id.as_str(), l.name.as_deref()?)))
            .collect();
        let mut card_labels: HashMap<String, Vec<String>> = HashMap::new();
        for cl in &included.card_labels {
            if let Some(name) = names.get(cl.label_id.as_str()) {
                card_labels
                    .entry(cl.card_id.clone())
                    .or_default()
                    .push(name.to_string());
            }
        }
        for labels in card_labels.values_mut() {
            labels.sort();
        }
        let mut lists: Vec<PList> = included.lists.into_iter().filter(PList::is_open).collect();
        lists.sort_by(|a, b| {
            a.position
                .unwrap_or(0.0)
                .total_cmp(&b.position.unwrap_or(0.0))
        });
        Snapshot {
            lists,
            cards: included.cards,
            labels: included.labels,
            card_labels,
        }
    }

    /// The open list named `name` (case-insensitive), or an error naming
    /// the lists.
    fn list(&self, name: &str) -> Result<&PList, BoardError> {
        self.lists
            .iter()
            .find(|l| l.name.as_deref().is_some_and(|n| same_name(n, name)))
            .ok_or_else(|| {
                let names: Vec<&str> = self
                    .lists
                    .iter()
                    .filter_map(|l| l.name.as_deref())
                    .collect();
                BoardError::NotFound(format!(
                    "no list `{}`; the lists are {}",
                    name.trim(),
                    names.join(", ")
                ))
            })
    }

    fn list_name(&self, id: &str) -> Option<&str> {
        self.lists
            .iter()
            .find(|l| l.id == id)
            .and_then(|l| l.name.as_deref())
    }

    fn card(&self, id: &str) -> Result<&PCard, BoardError> {
        let id = checked_id(id, "card")?;
        self.cards
            .iter()
            .find(|c| c.id == id)
            .ok_or_else(|| BoardError::NotFound(format!("no card `{id}` in the board's lists")))
    }

    /// The position after the last card of `list`.
    fn end_of(&self, list: &str) -> f64 {
        self.cards
            .iter()
            .filter(|c| c.list_id == list)
            .filter_map(|c| c.position)
            .fold(0.0, f64::max)
            + POSITION_GAP
    }

    fn to_card(&self, card: &PCard, list: Option<&str>) -> Card {
        let created = ms(&card.created_at);
        Card {
            id: card.id.clone(),
            list: list
                .or_else(|| self.list_name(&card.list_id))
                .unwrap_or_default()
                .to_string(),
            title: card.name.clone(),
            description: card.description.clone().unwrap_or_default(),
            description_truncated: false,
            labels: self.card_labels.get(&card.id).cloned().unwrap_or_default(),
            created_at_ms: created,
            list_entered_at_ms: card.list_changed_at.as_deref().map(ms).unwrap_or(created),
            comments: card.comments_total.unwrap_or(0),
        }
    }
}

#[async_trait::async_trait]
impl BoardBackend for PlankaBoard {
    fn name(&self) -> &'static str {
        "planka"
    }

    async fn lists(&self) -> Result<Vec<List>, BoardError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot
            .lists
            .iter()
            .map(|l| List {
                id: l.id.clone(),
                name: l.name.clone().unwrap_or_default(),
                position: l.position.unwrap_or(0.0) as i64,
            })
            .collect())
    }

    async fn cards(&self, filter: &CardFilter) -> Result<Vec<Card>, BoardError> {
        let snapshot = self.snapshot().await?;
        let list = match &filter.list {
            Some(name) => Some(snapshot.list(name)?.id.clone()),
            None => None,
        };
        let now = crate::capabilities::now_ms();
        let entered_before = filter
            .in_list_longer_than
            .map(|d| now.saturating_sub(d.as_millis() as u64));
        let label = filter.label.as_deref().map(str::trim);
        let mut cards: Vec<Card> = snapshot
            .cards
            .iter()
            .filter(|c| list.as_ref().is_none_or(|l| *l == c.list_id))
            .filter(|c| snapshot.list_name(&c.list_id).is_some())
            .map(|c| snapshot.to_card(c, None))
            .filter(|c| entered_before.is_none_or(|t| c.list_entered_at_ms < t))
            .filter(|c| label.is_none_or(|l| c.labels.iter().any(|x| x == l)))
            .collect();
        cards.sort_by(|a, b| {
            (a.list_entered_at_ms, a.id.len(), &a.id).cmp(&(
                b.list_entered_at_ms,
                b.id.len(),
                &b.id,
            ))
        });
        if let Some(after) = &filter.after {
            cards.retain(|c| after.precedes(c));
        }
        if let Some(limit) = filter.limit {
            cards.truncate(limit);
        }
        if let Some(chars) = filter.description_chars {
            for card in &mut cards {
                let (cut, truncated) = super::cut_description(&card.description, chars);
                card.description = cut;
                card.description_truncated = truncated;
            }
        }
        Ok(cards)
    }

    async fn card(&self, id: &str) -> Result<Card, BoardError> {
        let snapshot = self.snapshot().await?;
        let card = snapshot.card(id)?;
        Ok(snapshot.to_card(card, None))
    }

    async fn create_card(&self, card: NewCard) -> Result<Card, BoardError> {
        let _placing = self.placing.lock().await;
        let snapshot = self.snapshot().await?;
        let list = snapshot.list(&card.list)?;
        let mut labels = Vec::new();
        for name in &card.labels {
            let label =
                snapshot
                    .labels
                    .iter()
                    .find(|l| l.name.as_deref() == Some(name.as_str()))
                    .ok_or_else(|| {
                        let names: Vec<&str> = snapshot
                            .labels
                            .iter()
                            .filter_map(|l| l.name.as_deref())
                            .collect();
                        BoardError::Invalid(format!(
                        "the Planka board has no label `{name}` (its labels: {}); create it in \
                         Planka first: the host does not change a board's labels",
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    ))
                    })?;
            labels.push(label);
        }
        let path = format!("/lists/{}/cards", list.id);
        let body = json!({
            "type": "project",
            "position": snapshot.end_of(&list.id),
            "name": card.title,
            "description": if card.description.is_empty() { Value::Null } else { json!(card.description) },
        });
        let answer = self
            .call(Method::POST, &path, Some(&body), Repeat::Once)
            .await?;
        let created: PCard = parse(answer.get("item").cloned(), &path)?;
        self.attach_labels(&created.id, &labels).await?;
        let mut out = snapshot.to_card(&created, list.name.as_deref());
        out.labels = card.labels;
        out.labels.sort();
        Ok(out)
    }

    async fn edit_card(&self, id: &str, edit: CardEdit) -> Result<Card, BoardError> {
        let _placing = match edit.list {
            Some(_) => Some(self.placing.lock().await),
            None => None,
        };
        let snapshot = self.snapshot().await?;
        let current = snapshot.card(id)?;
        let mut body = serde_json::Map::new();
        let mut list_name = None;
        if let Some(name) = &edit.list {
            let target = snapshot.list(name)?;
            list_name = target.name.as_deref();
            // Moving a card to the list it is in changes nothing (its time in
            // the list goes on), as on the embedded board.
            if target.id != current.list_id {
                body.insert("listId".into(), json!(target.id));
                body.insert("position".into(), json!(snapshot.end_of(&target.id)));
            }
        }
        if let Some(title) = &edit.title {
            body.insert("name".into(), json!(title));
        }
        if let Some(description) = &edit.description {
            let d = if description.is_empty() {
                Value::Null
            } else {
                json!(description)
            };
            body.insert("description".into(), d);
        }
        if body.is_empty() {
            return Ok(snapshot.to_card(current, None));
        }
        let path = format!("/cards/{}", current.id);
        let answer = self
            .call(
                Method::PATCH,
                &path,
                Some(&Value::Object(body)),
                Repeat::Safe,
            )
            .await?;
        let edited: PCard = parse(answer.get("item").cloned(), &path)?;
        Ok(snapshot.to_card(&edited, list_name))
    }

    async fn comment(&self, id: &str, text: &str) -> Result<Comment, BoardError> {
        let text = check_comment(text)?;
        let snapshot = self.snapshot().await?;
        let card = snapshot.card(id)?;
        let path = format!("/cards/{}/comments", card.id);
        let answer = self
            .call(
                Method::POST,
                &path,
                Some(&json!({"text": text})),
                Repeat::Once,
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct PComment {
            id: String,
            text: String,
            created_at: String,
        }
        let comment: PComment = parse(answer.get("item").cloned(), &path)?;
        Ok(Comment {
            id: comment.id,
            card_id: card.id.clone(),
            text: comment.text,
            created_at_ms: ms(&comment.created_at),
        })
    }
}
