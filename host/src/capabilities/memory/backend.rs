//! The one trait every memory store implements.
//!
//! A backend stores points (a memory with its vectors) in one collection,
//! with the namespace as a tenant-indexed payload field, and answers
//! filtered vector queries. Everything above it (namespaces and grants,
//! validation, ids, embedding, fusion) is the same for every backend, so the
//! conformance tests in `conformance.rs` hold each backend to the same
//! behaviour.

use super::namespace::Scope;
use super::record::{MemoryRecord, Metadata, NewMemory};
use std::collections::{BTreeMap, HashSet};

/// A sparse vector: sorted, distinct indices with their weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sparse {
    /// Term ids.
    pub indices: Vec<u32>,
    /// Their weights.
    pub values: Vec<f32>,
}

/// A memory with the vectors it is found by.
#[derive(Debug, Clone)]
pub struct Point {
    /// The memory.
    pub memory: NewMemory,
    /// Its BM25 document vector.
    pub bm25: Sparse,
    /// Its unit-length embedding, when an embeddings model is configured.
    pub dense: Option<Vec<f32>>,
}

/// What a query may match: the namespaces (added by the host, never by the
/// guest) and metadata pairs that must all be equal.
#[derive(Debug, Clone)]
pub struct Filter {
    /// The namespaces in scope.
    pub scope: Scope,
    /// Metadata pairs that must all match.
    pub metadata: Metadata,
}

/// Most namespaces `counts` reports (the largest first).
pub const MAX_NAMESPACES_COUNTED: usize = 100_000;

/// A backend failure: the backend is down, or it refused the request.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Payload field names shared by every backend.
pub mod fields {
    /// The memory's text.
    pub const TEXT: &str = "text";
    /// The namespace (`org`, `agent:<name>`, `user:<id>`): the tenant key.
    pub const NAMESPACE: &str = "namespace";
    /// The namespace's kind (`agent`, `org`, `user`), for `user:*` grants.
    pub const KIND: &str = "kind";
    /// The metadata object.
    pub const METADATA: &str = "metadata";
    /// Milliseconds since the Unix epoch.
    pub const CREATED_AT: &str = "created_at";
    /// Who stored it.
    pub const SOURCE: &str = "source";
    /// Name of the sparse BM25 vector.
    pub const BM25_VECTOR: &str = "bm25";
    /// Name of the dense vector (cosine), when embeddings are on.
    pub const DENSE_VECTOR: &str = "dense";
}

/// A memory store.
#[async_trait::async_trait]
pub trait MemoryBackend: Send + Sync + 'static {
    /// A short name for logs and `/api/memory/stats`: `qdrant-edge`, `qdrant`.
    fn name(&self) -> &'static str;

    /// Inserts or replaces points by id. All or nothing is not promised
    /// across a batch, but each point is written whole or not at all.
    async fn upsert(&self, points: Vec<Point>) -> Result<(), BackendError>;

    /// The ids among `ids` that are stored.
    async fn existing(&self, ids: &[String]) -> Result<HashSet<String>, BackendError>;

    /// One memory by id.
    async fn get(&self, id: &str) -> Result<Option<MemoryRecord>, BackendError>;

    /// Deletes one memory; `false` when there was none.
    async fn delete(&self, id: &str) -> Result<bool, BackendError>;

    /// The best `limit` memories for a BM25 query vector within `filter`,
    /// with their scores, best first.
    async fn search_bm25(
        &self,
        query: &Sparse,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError>;

    /// The best `limit` memories by cosine similarity to a unit `query`
    /// vector within `filter`, best first. Memories stored before
    /// embeddings were configured have no dense vector and are not found.
    async fn search_dense(
        &self,
        query: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError>;

    /// Reorganises storage after many writes (merges segments, builds
    /// indexes) so searches stay fast; a no-op where the server does it.
    async fn optimize(&self) -> Result<(), BackendError> {
        Ok(())
    }

    /// How many memories each namespace holds.
    async fn counts(&self) -> Result<BTreeMap<String, u64>, BackendError>;
}

/// Builds the payload of a point: the same JSON object on every backend.
pub fn payload(memory: &NewMemory) -> serde_json::Value {
    serde_json::json!({
        fields::TEXT: memory.text,
        fields::NAMESPACE: memory.namespace.to_string(),
        fields::KIND: memory.namespace.kind(),
        fields::METADATA: memory.metadata,
        fields::CREATED_AT: memory.created_at_ms,
        fields::SOURCE: memory.source,
    })
}

/// Reads a memory back from its id and payload; `None` when the payload is
/// not one of ours.
pub fn record_from_payload(
    id: String,
    payload: &serde_json::Map<String, serde_json::Value>,
) -> Option<MemoryRecord> {
    let text = payload.get(fields::TEXT)?.as_str()?.to_string();
    let namespace = payload.get(fields::NAMESPACE)?.as_str()?.to_string();
    let metadata = payload
        .get(fields::METADATA)
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Some(MemoryRecord {
        id,
        text,
        namespace,
        metadata,
        created_at_ms: payload
            .get(fields::CREATED_AT)
            .and_then(|v| v.as_u64())
            .unwrap_or(0),
        source: payload
            .get(fields::SOURCE)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
    })
}

/// The filter in Qdrant's JSON filter language (the same on the server's
/// REST API and in Qdrant Edge).
pub fn qdrant_filter_json(filter: &Filter) -> serde_json::Value {
    use serde_json::json;
    let mut must = Vec::new();
    if let Scope::Only {
        namespaces,
        any_user,
    } = &filter.scope
    {
        let names: Vec<String> = namespaces.iter().map(|n| n.to_string()).collect();
        let by_name = json!({"key": fields::NAMESPACE, "match": {"any": names}});
        if *any_user {
            let users = json!({"key": fields::KIND, "match": {"value": "user"}});
            must.push(json!({"should": [by_name, users]}));
        } else {
            must.push(by_name);
        }
    }
    for (key, value) in &filter.metadata {
        must.push(json!({
            "key": format!("{}.{key}", fields::METADATA),
            "match": {"value": value},
        }));
    }
    json!({ "must": must })
}
