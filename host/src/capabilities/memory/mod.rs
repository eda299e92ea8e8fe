//! `darkfactory:skill/memory`: one memory for the fleet, in namespaces.
//!
//! [`Memory`] is the service every caller goes through (skills through the
//! WIT interface, the HTTP API, the CLI): it checks the text, the namespace
//! and the caller's grants, derives the id, computes the BM25 vectors and
//! asks a [`MemoryBackend`] to store or search. The namespace filter of a
//! query comes from the caller's [`Access`], never from the query itself.
//!
//! Backends: [`EdgeBackend`] (Qdrant Edge, embedded, the default).

mod backend;
pub mod corpus;
mod edge;
mod host;
pub mod ingest;
pub mod markdown;
mod namespace;
mod record;
pub mod schedule;

pub use backend::{BackendError, Filter, MemoryBackend, Point, Sparse};
pub use edge::EdgeBackend;
pub use namespace::{Access, Grant, Namespace, NamespaceError, Scope, SkillGrants};
pub use record::{
    check_id, metadata_from_json, normalise, Hit, MemoryRecord, Metadata, NewMemory, MAX_TEXT_BYTES,
};

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most hits one search returns.
pub const MAX_LIMIT: usize = 100;
/// The ingest's default density threshold (see [`corpus::quality`]).
pub const DEFAULT_MIN_DENSITY: f64 = 0.5;

/// Why a memory operation failed. Nothing is changed when one fails.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MemoryError {
    /// Bad input: empty or long text, unknown namespace, bad filter or id.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not use that namespace.
    #[error("{0}")]
    Denied(String),
    /// No memory with that id.
    #[error("no memory with id `{0}`")]
    NotFound(String),
    /// The backend is down or failed.
    #[error("the memory backend failed: {0}")]
    Unavailable(String),
}

impl From<NamespaceError> for MemoryError {
    fn from(e: NamespaceError) -> Self {
        match e {
            NamespaceError::Invalid(m) => MemoryError::Invalid(m),
            NamespaceError::Denied(m) => MemoryError::Denied(m),
        }
    }
}

impl From<BackendError> for MemoryError {
    fn from(e: BackendError) -> Self {
        MemoryError::Unavailable(e.0)
    }
}

/// The result of a store.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stored {
    /// The memory's id.
    pub id: String,
    /// Where it was stored.
    pub namespace: String,
    /// `false` when the same text was already in that namespace.
    pub created: bool,
}

/// Counts for `/api/memory/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryCounts {
    /// Which backend serves.
    pub backend: &'static str,
    /// Memories in all.
    pub total: u64,
    /// Memories per namespace.
    pub namespaces: BTreeMap<String, u64>,
}

/// The memory service.
pub struct Memory {
    backend: Arc<dyn MemoryBackend>,
    bm25: EdgeBm25,
}

impl Memory {
    /// A service over `backend`, with BM25 at Qdrant's defaults (English
    /// stemming and stop words, k 1.2, b 0.75).
    pub fn new(backend: Arc<dyn MemoryBackend>) -> Self {
        let bm25 = EdgeBm25::new(EdgeBm25Config::default())
            .expect("the default BM25 configuration is valid");
        Memory { backend, bm25 }
    }

    /// The embedded default: Qdrant Edge in `dir`.
    pub fn open_embedded(dir: &Path) -> Result<Self, MemoryError> {
        Ok(Memory::new(Arc::new(EdgeBackend::open(dir)?)))
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Stores one text for `access` in the `namespace` it names.
    pub async fn store(
        &self,
        access: &Access,
        text: &str,
        namespace: &str,
        metadata: Metadata,
        source: &str,
    ) -> Result<Stored, MemoryError> {
        let namespace = access.writable(namespace)?;
        let memory = NewMemory::new(text, namespace, metadata, now_ms(), source)
            .map_err(MemoryError::Invalid)?;
        let stored = self.store_new(vec![memory]).await?;
        Ok(stored.into_iter().next().expect("one memory in, one out"))
    }

    /// Stores memories that are already checked (the ingest and import
    /// paths). Ids already stored are skipped, so their first `created_at`
    /// stays; the result says which were new.
    pub async fn store_new(&self, memories: Vec<NewMemory>) -> Result<Vec<Stored>, MemoryError> {
        let ids: Vec<String> = memories.iter().map(|m| m.id.clone()).collect();
        let existing = self.backend.existing(&ids).await?;
        let mut results = Vec::with_capacity(memories.len());
        let mut points = Vec::new();
        for memory in memories {
            let created = !existing.contains(&memory.id);
            results.push(Stored {
                id: memory.id.clone(),
                namespace: memory.namespace.to_string(),
                created,
            });
            if created && !points.iter().any(|p: &Point| p.memory.id == memory.id) {
                let e = self.bm25.embed_document(&memory.text);
                let bm25 = Sparse {
                    indices: e.indices,
                    values: e.values,
                };
                points.push(Point { memory, bm25 });
            }
        }
        self.backend.upsert(points).await?;
        Ok(results)
    }

    /// The best `limit` memories for `query` that `access` may read in
    /// `scope` (a namespace, `agent` for a skill, or `all`), whose metadata
    /// has every pair of `filter`.
    pub async fn search(
        &self,
        access: &Access,
        query: &str,
        scope: &str,
        limit: usize,
        filter: Metadata,
    ) -> Result<Vec<Hit>, MemoryError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(MemoryError::Invalid("the query is empty".to_string()));
        }
        if query.len() > MAX_TEXT_BYTES {
            return Err(MemoryError::Invalid(format!(
                "the query is {} bytes; at most {MAX_TEXT_BYTES} (64 KiB)",
                query.len()
            )));
        }
        if limit == 0 || limit > MAX_LIMIT {
            return Err(MemoryError::Invalid(format!(
                "limit is {limit}; it must be between 1 and {MAX_LIMIT}"
            )));
        }
        record::check_metadata(&filter).map_err(MemoryError::Invalid)?;
        let scope = access.readable(scope)?;
        let e = self.bm25.embed_query(query);
        if e.indices.is_empty() {
            // Only stop words: BM25 has nothing to match.
            return Ok(Vec::new());
        }
        let sparse = Sparse {
            indices: e.indices,
            values: e.values,
        };
        let filter = Filter {
            scope,
            metadata: filter,
        };
        let found = self.backend.search_bm25(&sparse, &filter, limit).await?;
        Ok(found
            .into_iter()
            .map(|(record, score)| Hit {
                record,
                score,
                bm25: Some(score),
                dense: None,
            })
            .collect())
    }

    /// Deletes one memory, if `access` may write its namespace.
    pub async fn forget(&self, access: &Access, id: &str) -> Result<bool, MemoryError> {
        check_id(id).map_err(MemoryError::Invalid)?;
        let Some(record) = self.backend.get(id).await? else {
            return Ok(false);
        };
        let namespace = Namespace::parse(&record.namespace).map_err(MemoryError::Unavailable)?;
        access.check_write(&namespace)?;
        Ok(self.backend.delete(id).await?)
    }

    /// One memory by id, for the operator.
    pub async fn get(&self, id: &str) -> Result<MemoryRecord, MemoryError> {
        check_id(id).map_err(MemoryError::Invalid)?;
        self.backend
            .get(id)
            .await?
            .ok_or_else(|| MemoryError::NotFound(id.to_string()))
    }

    /// How many memories each namespace holds.
    pub async fn counts(&self) -> Result<MemoryCounts, MemoryError> {
        let namespaces = self.backend.counts().await?;
        Ok(MemoryCounts {
            backend: self.backend.name(),
            total: namespaces.values().sum(),
            namespaces,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod conformance;
