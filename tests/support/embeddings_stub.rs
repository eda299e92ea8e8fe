//! A loopback server speaking the OpenAI embeddings protocol, for tests and
//! benchmarks on a machine with no model: `POST /v1/embeddings` answers
//! character-trigram hashing vectors (every word padded with spaces, its
//! trigrams hashed into `dims` buckets). Texts that share spelling get
//! similar vectors, so a misspelt query still finds its memory, which BM25
//! cannot: enough to prove the dense path and the fusion, not a stand-in
//! for a semantic model's quality.
//!
//! Shared by the host's unit tests, the end-to-end tests and the memory
//! benchmark through `#[path]`.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A running stub.
pub struct StubEmbeddings {
    /// Base URL, ending in `/v1`.
    pub url: String,
    /// While set, every request is answered `500`.
    pub fail: Arc<AtomicBool>,
    /// Requests answered so far.
    pub requests: Arc<AtomicUsize>,
}

/// The stub's vector of `text`.
pub fn trigram_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    for word in text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let padded: Vec<char> = format!(" {word} ").chars().collect();
        for tri in padded.windows(3) {
            let mut h: u32 = 0x811c_9dc5;
            for c in tri {
                h ^= *c as u32;
                h = h.wrapping_mul(0x0100_0193);
            }
            v[h as usize % dims] += 1.0;
        }
    }
    v
}

/// Starts the stub on 127.0.0.1 in the current tokio runtime.
pub async fn start(dims: usize) -> StubEmbeddings {
    use axum::routing::post;
    let fail = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (f, r) = (fail.clone(), requests.clone());
    let app = axum::Router::new().route(
        "/v1/embeddings",
        post(move |body: axum::Json<serde_json::Value>| {
            let (f, r) = (f.clone(), r.clone());
            async move {
                r.fetch_add(1, Ordering::Relaxed);
                if f.load(Ordering::Relaxed) {
                    return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, axum::Json(serde_json::json!({"error": "down"})));
                }
                let inputs: Vec<String> = match &body["input"] {
                    serde_json::Value::String(s) => vec![s.clone()],
                    serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
                    _ => Vec::new(),
                };
                // Answered in reverse order: clients must sort by `index`.
                let data: Vec<serde_json::Value> = inputs
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, t)| serde_json::json!({"object": "embedding", "index": i, "embedding": trigram_vector(t, dims)}))
                    .collect();
                (axum::http::StatusCode::OK, axum::Json(serde_json::json!({"object": "list", "data": data, "model": body["model"]})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    StubEmbeddings {
        url: format!("http://{addr}/v1"),
        fail,
        requests,
    }
}
