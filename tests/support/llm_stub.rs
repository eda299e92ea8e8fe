//! A loopback server that answers as an OpenAI-compatible server answers
//! `POST /v1/chat/completions` (the subset Ollama, vLLM and llama.cpp's
//! server share: `choices[0].message.content`, `finish_reason`, `usage`),
//! with what the test's script says for each request, recording every
//! request it was sent.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the server answers one request with.
pub struct Reply {
    /// The message's content.
    pub content: String,
    /// `stop`, `length`, ...
    pub finish_reason: &'static str,
    /// How long it takes to answer.
    pub delay: Duration,
}

impl Reply {
    pub fn says(content: impl Into<String>) -> Reply {
        Reply {
            content: content.into(),
            finish_reason: "stop",
            delay: Duration::ZERO,
        }
    }

    /// A JSON answer with `workflow` and `summary`.
    pub fn fix(workflow: &str, summary: &str) -> Reply {
        Reply::says(json!({"summary": summary, "workflow": workflow}).to_string())
    }
}

type Script = dyn Fn(&Value) -> Reply + Send + Sync;
type Shared = (Arc<Mutex<Vec<Value>>>, Arc<Script>);

pub struct LlmStub {
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl LlmStub {
    /// Every request body, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// Starts a server that answers each request with `script(request)`.
pub async fn start(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> LlmStub {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(chat))
        .with_state((requests.clone(), script));
    tokio::spawn(async move { axum::serve(listener, app).await });
    LlmStub { url, requests }
}

async fn chat(State((requests, script)): State<Shared>, Json(body): Json<Value>) -> Response {
    if !body["messages"].is_array() || !body["model"].is_string() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "messages and model are required", "type": "invalid_request_error"}})),
        )
            .into_response();
    }
    requests.lock().unwrap().push(body.clone());
    let reply = script(&body);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let prompt: usize = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").len() / 4)
        .sum();
    let completion = reply.content.len() / 4;
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply.content},
            "finish_reason": reply.finish_reason,
        }],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion},
    }))
    .into_response()
}
