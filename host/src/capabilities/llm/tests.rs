//! The client against a loopback server that answers as OpenAI-compatible
//! servers do (status, `Retry-After`, error bodies, completions).

use super::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// One scripted answer: status, extra headers, body, and a delay.
#[derive(Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: Vec::new(),
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

fn completion(content: &str, finish: &str) -> Reply {
    reply(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1735142223,
               "model": "qwen3:8b", "system_fingerprint": "fp", "timings": {"predicted_ms": 3.0},
               "choices": [{"index": 0, "message": {"role": "assistant", "content": content,
                                                    "reasoning_content": "…"},
                            "finish_reason": finish}],
               "usage": {"prompt_tokens": 44, "completion_tokens": 48, "total_tokens": 92}}),
    )
}

/// A request as the server saw it: its body and `Authorization`.
type Seen = (Value, Option<String>);

#[derive(Clone, Default)]
struct Server {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    /// Each request's body and `Authorization`.
    seen: Arc<Mutex<Vec<Seen>>>,
    /// `http://ADDR`.
    base: Arc<Mutex<String>>,
}

async fn answer(State(server): State<Server>, headers: HeaderMap, body: String) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    server
        .seen
        .lock()
        .unwrap()
        .push((serde_json::from_str(&body).unwrap_or(Value::Null), auth));
    let next = server.replies.lock().unwrap().pop_front();
    let Some(r) = next else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no reply scripted").into_response();
    };
    tokio::time::sleep(r.delay).await;
    let mut response = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    for (k, v) in r.headers {
        response.headers_mut().insert(k, v.parse().unwrap());
    }
    response
}

/// A server at `/v1/chat/completions` that gives `replies` in turn, and a
/// client of it that does not wait long between attempts.
async fn start(replies: Vec<Reply>) -> (Server, Llm) {
    let server = Server::default();
    server.replies.lock().unwrap().extend(replies);
    let app = Router::new()
        .route("/v1/chat/completions", post(answer))
        .with_state(server.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    *server.base.lock().unwrap() = format!("http://{addr}");
    let mut config = LlmConfig::new(&format!("http://{addr}"), "qwen3:8b");
    config.api_key = Some("sk-test".into());
    config.max_retry_wait = Duration::from_millis(20);
    (server, Llm::new(config).unwrap())
}

fn ask(schema: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "Answer in JSON."),
            Message::new(Role::User, "Which agent is down?"),
        ],
        schema: schema.then(|| Schema {
            name: "answer".into(),
            schema: json!({"type": "object", "properties": {"agent": {"type": "string"}}}),
            strict: false,
        }),
        max_tokens: Some(256),
        temperature: Some(0.2),
        seed: Some(42),
    }
}

#[tokio::test]
async fn an_answer_comes_with_its_usage_and_the_request_with_the_key() {
    let (server, llm) = start(vec![completion(r#"{"agent":"diana"}"#, "stop")]).await;
    let answer = llm.chat(&ask(true)).await.unwrap();
    assert_eq!(answer.content, r#"{"agent":"diana"}"#);
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(
        answer.usage,
        Usage {
            prompt_tokens: 44,
            completion_tokens: 48,
            total_tokens: 92
        }
    );
    assert_eq!(
        (answer.structured, answer.requests),
        (Structured::JsonSchema, 1)
    );
    let seen = server.seen.lock().unwrap();
    let (body, auth) = &seen[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "qwen3:8b");
    assert_eq!(body["stream"], false);
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "Which agent is down?"})
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["name"], "answer");
    assert_eq!(
        (body["max_tokens"].clone(), body["seed"].clone()),
        (json!(256), json!(42))
    );
    let totals = llm.totals();
    assert_eq!(
        (totals.calls, totals.prompt_tokens, totals.completion_tokens),
        (1, 44, 48)
    );
}

#[tokio::test]
async fn a_refused_response_format_falls_back_and_is_remembered() {
    let refusal = || {
        reply(
            400,
            json!({"error": {"message": "response_format json_schema is not supported"}}),
        )
    };
    let (server, llm) = start(vec![
        refusal(),
        reply(422, json!({"detail": "unknown response_format"})),
        completion("{}", "stop"),
        completion("{}", "stop"),
    ])
    .await;
    let first = llm.chat(&ask(true)).await.unwrap();
    assert_eq!((first.structured, first.requests), (Structured::None, 3));
    // The next call starts where the server took it.
    let second = llm.chat(&ask(true)).await.unwrap();
    assert_eq!((second.structured, second.requests), (Structured::None, 1));
    let seen = server.seen.lock().unwrap();
    let formats: Vec<Value> = seen
        .iter()
        .map(|(b, _)| b["response_format"]["type"].clone())
        .collect();
    assert_eq!(
        formats,
        [
            json!("json_schema"),
            json!("json_object"),
            Value::Null,
            Value::Null
        ]
    );
    // Without json_schema, the prompt carries the schema.
    assert_eq!(seen[0].0["messages"].as_array().unwrap().len(), 2);
    let weaker = seen[2].0["messages"][0]["content"].as_str().unwrap();
    assert!(
        weaker.contains("JSON schema") && weaker.contains("\"agent\""),
        "{weaker}"
    );
}

#[tokio::test]
async fn what_one_schema_needed_is_remembered_for_that_schema_only() {
    let refusal = || {
        reply(
            400,
            json!({"error": {"message": "cannot compile this schema"}}),
        )
    };
    let (server, llm) = start(vec![
        refusal(),
        completion("{}", "stop"),
        completion("{}", "stop"),
    ])
    .await;
    let mut other = ask(true);
    other.schema.as_mut().unwrap().name = "other".into();
    assert_eq!(
        llm.chat(&ask(true)).await.unwrap().structured,
        Structured::JsonObject
    );
    assert_eq!(
        llm.chat(&other).await.unwrap().structured,
        Structured::JsonSchema
    );
    assert_eq!(server.seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_request_refused_at_every_format_is_refused_with_the_last_words() {
    let (server, llm) = start(vec![
        reply(400, json!({"error": {"message": "bad format"}})),
        reply(400, json!({"error": {"message": "bad format"}})),
        reply(
            400,
            json!({"error": {"message": "prompt is too long: 40000 tokens"}}),
        ),
    ])
    .await;
    let err = llm.chat(&ask(true)).await.unwrap_err();
    assert!(err.to_string().contains("prompt is too long"), "{err}");
    assert_eq!(server.seen.lock().unwrap().len(), 3);
    // A request without a schema is refused at once.
    let (server, llm) = start(vec![reply(400, json!({"error": {"message": "too long"}}))]).await;
    assert!(matches!(
        llm.chat(&ask(false)).await,
        Err(LlmError::Refused { status: 400, .. })
    ));
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_after_the_servers_wait() {
    let mut limited = reply(429, json!({"error": {"message": "slow down"}}));
    limited.headers.push(("retry-after", "0".into()));
    let (server, llm) = start(vec![
        limited,
        reply(503, json!({})),
        completion("ok", "length"),
    ])
    .await;
    let answer = llm.chat(&ask(false)).await.unwrap();
    assert_eq!(answer.requests, 3);
    assert_eq!(
        answer.finish_reason,
        FinishReason::Length,
        "a cut answer says so"
    );
    assert!(server.seen.lock().unwrap()[0]
        .0
        .get("response_format")
        .is_none());
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_unavailable_after_the_attempts() {
    let (server, llm) = start(
        (0..4)
            .map(|_| reply(500, json!({"error": "boom"})))
            .collect(),
    )
    .await;
    let err = llm.chat(&ask(false)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LlmError::Unavailable { .. }), "{err:?}");
    assert!(
        text.contains("500") && text.contains("after 4 attempts"),
        "{text}"
    );
    assert_eq!(server.seen.lock().unwrap().len(), 4);
    assert_eq!(llm.totals().failures, 1);
}

#[tokio::test]
async fn a_refusal_is_not_retried_and_says_what_the_server_said() {
    let (server, llm) = start(vec![reply(
        401,
        json!({"error": {"message": "invalid api key"}}),
    )])
    .await;
    let err = llm.chat(&ask(true)).await.unwrap_err();
    // A 401 is not a refused response_format: no fallback, no retry.
    assert_eq!(
        err,
        LlmError::Refused {
            endpoint: llm.endpoint().to_string(),
            status: 401,
            message: "invalid api key".into()
        }
    );
    assert_eq!(server.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_answer_that_is_no_completion_is_invalid() {
    let (_, llm) = start(vec![
        reply(200, json!({"choices": []})),
        Reply {
            status: 200,
            headers: Vec::new(),
            body: "<html>gateway</html>".into(),
            delay: Duration::ZERO,
        },
    ])
    .await;
    let err = llm.chat(&ask(false)).await.unwrap_err();
    assert!(err.to_string().contains("no `choices`"), "{err}");
    let err = llm.chat(&ask(false)).await.unwrap_err();
    assert!(matches!(err, LlmError::Invalid { .. }), "{err:?}");
    assert!(err.to_string().contains("<html>gateway</html>"), "{err}");
}

#[tokio::test]
async fn a_slow_server_times_out_and_is_retried() {
    let mut slow = completion("late", "stop");
    slow.delay = Duration::from_millis(500);
    let mut slower = completion("late again", "stop");
    slower.delay = Duration::from_millis(500);
    let (server, _) = start(vec![
        slow,
        completion("on time", "stop"),
        slower.clone(),
        slower,
    ])
    .await;
    let addr = server_addr(&server);
    let mut config = LlmConfig::new(&format!("{addr}/v1/"), "qwen3:8b");
    config.timeout = Duration::from_millis(100);
    config.max_retry_wait = Duration::from_millis(1);
    let llm = Llm::new(config).unwrap();
    let answer = llm.chat(&ask(false)).await.unwrap();
    assert_eq!((answer.content.as_str(), answer.requests), ("on time", 2));
    // Two time-outs in one call: no third try.
    let err = llm.chat(&ask(false)).await.unwrap_err();
    assert!(err.to_string().contains("after 2 attempts"), "{err}");
}

/// The server's base URL.
fn server_addr(server: &Server) -> String {
    server.base.lock().unwrap().clone()
}

#[test]
fn retry_after_is_seconds_or_a_date() {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("retry-after", "7".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    let later = chrono::Utc::now() + chrono::Duration::seconds(30);
    // As servers write it: IMF-fixdate, in GMT.
    let date = later.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    h.insert("retry-after", date.parse().unwrap());
    let wait = retry_after(&h).unwrap();
    assert!(
        wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    h.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(retry_after(&h), None);
}

#[test]
fn a_bad_configuration_is_refused_before_anything_is_sent() {
    assert!(Llm::new(LlmConfig::new("http://127.0.0.1:1", " ")).is_err());
    let err = Llm::new(LlmConfig::new("ftp://models", "m")).err().unwrap();
    assert!(err.to_string().contains("not http or https"), "{err}");
    for (base, endpoint) in [
        ("http://h:11434", "http://h:11434/v1/chat/completions"),
        ("http://h:11434/v1/", "http://h:11434/v1/chat/completions"),
    ] {
        assert_eq!(
            Llm::new(LlmConfig::new(base, "m")).unwrap().endpoint(),
            endpoint
        );
    }
}

#[tokio::test]
async fn the_servers_retry_after_is_waited_for_up_to_the_cap() {
    let mut limited = reply(429, json!({"error": {"message": "slow down"}}));
    limited.headers.push(("retry-after", "1".into()));
    let mut capped = reply(429, json!({}));
    capped.headers.push(("retry-after", "3600".into()));
    let (server, _) = start(vec![limited, capped, completion("ok", "stop")]).await;
    let mut config = LlmConfig::new(&server_addr(&server), "qwen3:8b");
    config.max_retry_wait = Duration::from_millis(1500);
    let llm = Llm::new(config).unwrap();
    let started = Instant::now();
    let answer = llm.chat(&ask(false)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(answer.requests, 3);
    // One second as asked, then the cap instead of an hour.
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// The `llm` interface as a skill calls it: a store's state with the
/// skill's grant, the client and the KPI store.
mod skill_calls {
    use super::*;
    use crate::capabilities::kpi::{KpiConfig, KpiStore, Labels};
    use crate::capabilities::{Capabilities, Clock, SkillContext};
    use crate::runtime::bindings::darkfactory::skill::llm as wit;
    use crate::runtime::bindings::darkfactory::skill::llm::Host as _;
    use crate::runtime::{ComponentBounds, RuntimeConfig, SkillState};

    fn state(llm: Option<Arc<Llm>>, grant: Option<u64>, kpi: Arc<KpiStore>) -> SkillState {
        let context = SkillContext {
            skill: "summarise".into(),
            capabilities: Capabilities {
                llm,
                kpi: Some(kpi),
                ..Capabilities::default()
            },
            memory: None,
            board: None,
            fleet: None,
            skills: None,
            kpi: None,
            http: None,
            llm: LlmGrant::parse(grant).unwrap(),
            shadow: None,
        };
        SkillState::new(
            Arc::from("summarise"),
            &RuntimeConfig::default().default_limits(),
            ComponentBounds::default(),
            Some(Arc::new(context)),
        )
    }

    fn request(text: &str, max_tokens: Option<u32>) -> wit::Request {
        wit::Request {
            messages: vec![wit::Message {
                role: wit::Role::User,
                content: text.to_string(),
            }],
            json_schema: None,
            max_tokens,
            temperature: None,
        }
    }

    #[tokio::test]
    async fn a_skill_spends_within_its_budget_and_its_spending_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(1_800_000_000_000);
        let kpi = Arc::new(
            KpiStore::open(
                &dir.path().join("kpi.db"),
                KpiConfig::default(),
                clock.clone(),
            )
            .unwrap(),
        );
        let (server, llm) = start(vec![
            completion("first", "stop"),
            completion("second", "length"),
        ])
        .await;
        let mut state = state(Some(Arc::new(llm)), Some(150), kpi.clone());
        let answer = state
            .chat(request("Which agent is down?", Some(1000)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer.content, "first");
        assert_eq!((answer.prompt_tokens, answer.completion_tokens), (44, 48));
        assert_eq!(answer.budget_left, 150 - 92);
        // The answer's room was lowered to what the budget left.
        let asked = server.seen.lock().unwrap()[0].0["max_tokens"]
            .as_u64()
            .unwrap();
        assert!(asked < 150, "max_tokens {asked}");
        // One sample per chat and millisecond: a second chat in the same
        // millisecond of the same skill replaces the first's sample.
        clock.advance(1000);
        let second = state.chat(request("Again", None)).await.unwrap().unwrap();
        assert_eq!(second.finish_reason, wit::FinishReason::Length);
        assert_eq!(second.budget_left, 0);
        let over = state.chat(request("Once more", None)).await.unwrap();
        assert!(
            matches!(&over, Err(wit::LlmError::BudgetExceeded(m)) if m.contains("150")),
            "{over:?}"
        );
        assert_eq!(
            server.seen.lock().unwrap().len(),
            2,
            "nothing sent over budget"
        );
        let mut labels = Labels::new();
        labels.insert("skill".into(), "summarise".into());
        let spent = kpi
            .read("skill.llm_tokens", &labels, 0, u64::MAX)
            .await
            .unwrap();
        let values: Vec<f64> = spent
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.value))
            .collect();
        assert_eq!(values, vec![92.0, 92.0]);
        assert_eq!(
            spent[0].series.labels.get("model").map(String::as_str),
            Some("qwen3:8b")
        );
    }

    #[tokio::test]
    async fn without_a_grant_a_model_or_a_message_the_call_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let kpi = Arc::new(
            KpiStore::open(
                &dir.path().join("kpi.db"),
                KpiConfig::default(),
                Clock::manual(1_800_000_000_000),
            )
            .unwrap(),
        );
        let (server, llm) = start(vec![]).await;
        let llm = Arc::new(llm);
        let denied = state(Some(llm.clone()), None, kpi.clone())
            .chat(request("hi", None))
            .await
            .unwrap();
        assert!(
            matches!(&denied, Err(wit::LlmError::Denied(m)) if m.contains("llm_tokens")),
            "{denied:?}"
        );
        let none = state(None, Some(100), kpi.clone())
            .chat(request("hi", None))
            .await
            .unwrap();
        assert!(
            matches!(&none, Err(wit::LlmError::Unavailable(m)) if m.contains("--llm-url")),
            "{none:?}"
        );
        let mut empty = request("hi", None);
        empty.messages.clear();
        let invalid = state(Some(llm.clone()), Some(100), kpi.clone())
            .chat(empty)
            .await
            .unwrap();
        assert!(
            matches!(invalid, Err(wit::LlmError::Invalid(_))),
            "{invalid:?}"
        );
        let mut bad_schema = request("hi", None);
        bad_schema.json_schema = Some("{not json".into());
        let invalid = state(Some(llm.clone()), Some(100), kpi.clone())
            .chat(bad_schema)
            .await
            .unwrap();
        assert!(
            matches!(&invalid, Err(wit::LlmError::Invalid(m)) if m.contains("json-schema")),
            "{invalid:?}"
        );
        let long = "word ".repeat(200);
        let over = state(Some(llm), Some(100), kpi)
            .chat(request(&long, None))
            .await
            .unwrap();
        assert!(
            matches!(over, Err(wit::LlmError::BudgetExceeded(_))),
            "{over:?}"
        );
        assert!(server.seen.lock().unwrap().is_empty(), "nothing was sent");
    }
}
