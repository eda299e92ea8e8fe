//! Dense vectors from an OpenAI-compatible embeddings endpoint (Ollama,
//! vLLM, llama.cpp's server, TEI, OpenAI), when one is configured.
//!
//! `POST {base}/embeddings` with `{"model", "input": [texts],
//! "encoding_format": "float"}`; the answer's `data[].embedding` are sorted
//! by `index`. The base may end in `/v1` or not (`http://localhost:11434`
//! and `http://localhost:11434/v1` are the same). Server errors (5xx) and
//! timeouts are retried twice with backoff; anything else is an error that
//! names the endpoint. Vectors are normalised to unit length, so cosine
//! similarity is a dot product whatever the model returns.

use serde::Deserialize;
use std::time::Duration;

/// Texts per request.
const BATCH: usize = 64;
/// Attempts per request (the first and two retries).
const ATTEMPTS: u32 = 3;

/// Where the embeddings come from.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsConfig {
    /// Base URL, e.g. `http://localhost:11434/v1`.
    pub url: String,
    /// Model name, e.g. `all-minilm`.
    pub model: String,
    /// Bearer key, if the server wants one.
    pub api_key: Option<String>,
    /// Timeout of one request.
    pub timeout: Duration,
}

/// A client of one embeddings endpoint.
pub struct Embedder {
    http: reqwest::Client,
    endpoint: String,
    config: EmbeddingsConfig,
    dims: usize,
}

#[derive(Deserialize)]
struct Answer {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: usize,
    embedding: Vec<f32>,
}

impl Embedder {
    /// Connects and learns the model's dimension by embedding one text.
    pub async fn connect(config: EmbeddingsConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the embeddings client: {e}"))?;
        let base = config.url.trim_end_matches('/');
        let endpoint = if base.ends_with("/v1") {
            format!("{base}/embeddings")
        } else {
            format!("{base}/v1/embeddings")
        };
        let mut embedder = Embedder {
            http,
            endpoint,
            config,
            dims: 0,
        };
        let probe = embedder.request(&["dimension probe".to_string()]).await?;
        embedder.dims = probe[0].len();
        if embedder.dims == 0 {
            return Err(format!(
                "the embeddings endpoint {} answered an empty vector",
                embedder.endpoint
            ));
        }
        Ok(embedder)
    }

    /// The model's dimension.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// One unit vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            for v in self.request(batch).await? {
                if v.len() != self.dims {
                    return Err(format!(
                        "the embeddings endpoint answered {} dimensions, not {}",
                        v.len(),
                        self.dims
                    ));
                }
                out.push(v);
            }
        }
        Ok(out)
    }

    async fn request(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let body = serde_json::json!({
            "model": self.config.model,
            "input": texts,
            "encoding_format": "float",
        });
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            let mut rb = self.http.post(&self.endpoint).json(&body);
            if let Some(key) = &self.config.api_key {
                rb = rb.bearer_auth(key);
            }
            let response = match rb.send().await {
                Ok(r) => r,
                Err(e) if e.is_timeout() || e.is_connect() => {
                    last_error = format!("cannot reach {}: {e}", self.endpoint);
                    continue;
                }
                Err(e) => return Err(format!("{}: {e}", self.endpoint)),
            };
            let status = response.status();
            if status.is_server_error() {
                last_error = format!("{} answered {status}", self.endpoint);
                continue;
            }
            if !status.is_success() {
                let text = response.text().await.unwrap_or_default();
                return Err(format!(
                    "{} answered {status}: {}",
                    self.endpoint,
                    text.chars().take(300).collect::<String>()
                ));
            }
            let answer: Answer = response.json().await.map_err(|e| {
                format!(
                    "{} answered something that is not embeddings: {e}",
                    self.endpoint
                )
            })?;
            return order(answer, texts.len(), &self.endpoint);
        }
        Err(last_error)
    }
}

/// Sorts by `index`, checks there is one vector per text, normalises.
fn order(answer: Answer, expected: usize, endpoint: &str) -> Result<Vec<Vec<f32>>, String> {
    let mut items = answer.data;
    items.sort_by_key(|i| i.index);
    let indices_ok = items.iter().enumerate().all(|(n, i)| n == i.index);
    if items.len() != expected || !indices_ok {
        return Err(format!(
            "{endpoint} answered {} embeddings for {expected} texts",
            items.len()
        ));
    }
    Ok(items
        .into_iter()
        .map(|i| {
            let mut v = i.embedding;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
            v
        })
        .collect())
}

/// Reciprocal rank fusion (Cormack et al., 2009) with k = 60: a document's
/// score is the sum over the lists it appears in of 1 / (60 + its rank),
/// ranks from 1. Robust to the two scores' different scales, which is why
/// Qdrant uses it too. Ties keep the first list's order.
pub fn rrf<'a>(lists: &[&'a [String]]) -> Vec<(&'a str, f32)> {
    const K: f32 = 60.0;
    let mut scores: Vec<(&'a str, f32, usize)> = Vec::new();
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            let add = 1.0 / (K + rank as f32 + 1.0);
            match scores.iter_mut().find(|(i, _, _)| *i == id.as_str()) {
                Some(entry) => entry.1 += add,
                None => {
                    let order = scores.len();
                    scores.push((id.as_str(), add, order));
                }
            }
        }
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    scores.into_iter().map(|(id, s, _)| (id, s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_rewards_agreement() {
        let bm25: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let dense: Vec<String> = ["c", "d", "a"].map(String::from).to_vec();
        let fused = rrf(&[&bm25, &dense]);
        let ids: Vec<&str> = fused.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, ["a", "c", "b", "d"]);
        assert!((fused[0].1 - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
        assert!(rrf(&[]).is_empty());
    }

    #[test]
    fn answers_are_ordered_checked_and_normalised() {
        let answer = Answer {
            data: vec![
                Item {
                    index: 1,
                    embedding: vec![0.0, 2.0],
                },
                Item {
                    index: 0,
                    embedding: vec![3.0, 4.0],
                },
            ],
        };
        let v = order(answer, 2, "e").unwrap();
        assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        let short = Answer {
            data: vec![Item {
                index: 0,
                embedding: vec![1.0],
            }],
        };
        assert!(order(short, 2, "e")
            .unwrap_err()
            .contains("1 embeddings for 2"));
    }
}
