//! `darkfactory:skill/memory`: one memory for the fleet, in namespaces.
//!
//! [`Memory`] is the service every caller goes through (skills through the
//! WIT interface, the HTTP API, the CLI): it checks the text, the namespace
//! and the caller's grants, derives the id, computes the BM25 vectors and
//! asks a [`MemoryBackend`] to store or search. The namespace filter of a
//! query comes from the caller's [`Access`], never from the query itself.
//!
//! Backends: [`EdgeBackend`] (Qdrant Edge, embedded, the default) and
//! [`QdrantBackend`] (a Qdrant server or cluster, shared by several hosts).

mod backend;
pub mod corpus;
mod edge;
pub mod embed;
mod host;
pub mod ingest;
pub mod markdown;
mod namespace;
mod qdrant;
mod record;
pub mod schedule;
pub mod transcript;

pub use backend::{BackendError, Filter, MemoryBackend, Point, Sparse};
pub use edge::EdgeBackend;
pub use embed::{Embedder, EmbeddingsConfig};
pub use namespace::{Access, Grant, Namespace, NamespaceError, Scope, SkillGrants};
pub use qdrant::{QdrantBackend, QdrantConfig, DEFAULT_COLLECTION};
pub use record::{
    check_id, metadata_from_json, normalise, Hit, MemoryRecord, Metadata, NewMemory, MAX_TEXT_BYTES,
};

use crate::capabilities::now_ms;
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Stored {
    /// The memory's id.
    pub id: String,
    /// Where it was stored.
    pub namespace: String,
    /// `false` when the same text was already in that namespace.
    pub created: bool,
}

/// Counts for `/api/memory/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemoryCounts {
    /// Which backend serves.
    pub backend: &'static str,
    /// The embeddings model, when dense vectors are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embeddings_model: Option<String>,
    /// Memories in all.
    pub total: u64,
    /// Memories per namespace.
    pub namespaces: BTreeMap<String, u64>,
}

/// The memory service.
pub struct Memory {
    backend: Arc<dyn MemoryBackend>,
    bm25: EdgeBm25,
    embedder: Option<Embedder>,
    /// Memories written since the backend was last optimized.
    unoptimized: Arc<AtomicU64>,
    optimizing: Arc<AtomicBool>,
}

/// After this many new memories the backend is optimized in the background.
const OPTIMIZE_EVERY: u64 = 20_000;

/// Candidates each list gives the fusion, per hit asked for.
const FUSION_DEPTH: usize = 4;

impl Memory {
    /// A service over `backend`, with BM25 at Qdrant's defaults (English
    /// stemming and stop words, k 1.2, b 0.75), and dense vectors from
    /// `embedder` when there is one.
    pub fn new(backend: Arc<dyn MemoryBackend>, embedder: Option<Embedder>) -> Self {
        let bm25 = EdgeBm25::new(EdgeBm25Config::default())
            .expect("the default BM25 configuration is valid");
        Memory {
            backend,
            bm25,
            embedder,
            unoptimized: Arc::new(AtomicU64::new(0)),
            optimizing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The embedded default: Qdrant Edge in `dir`.
    pub fn open_embedded(dir: &Path, embedder: Option<Embedder>) -> Result<Self, MemoryError> {
        let backend = EdgeBackend::open(dir, embedder.as_ref().map(Embedder::dims))?;
        Ok(Memory::new(Arc::new(backend), embedder))
    }

    /// A Qdrant server or cluster.
    pub async fn open_server(
        config: QdrantConfig,
        embedder: Option<Embedder>,
    ) -> Result<Self, MemoryError> {
        let backend = QdrantBackend::connect(config, embedder.as_ref().map(Embedder::dims)).await?;
        Ok(Memory::new(Arc::new(backend), embedder))
    }

    /// The embeddings model, when dense vectors are on.
    pub fn embeddings_model(&self) -> Option<&str> {
        self.embedder.as_ref().map(Embedder::model)
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
        let mut seen = HashSet::new();
        for memory in memories {
            // Twice in one batch is stored once, like twice in two batches.
            let created = !existing.contains(&memory.id) && seen.insert(memory.id.clone());
            results.push(Stored {
                id: memory.id.clone(),
                namespace: memory.namespace.to_string(),
                created,
            });
            if created {
                let e = self.bm25.embed_document(&memory.text);
                let bm25 = Sparse {
                    indices: e.indices,
                    values: e.values,
                };
                points.push(Point {
                    memory,
                    bm25,
                    dense: None,
                });
            }
        }
        if let Some(embedder) = &self.embedder {
            let texts: Vec<String> = points.iter().map(|p| p.memory.text.clone()).collect();
            let vectors = embedder
                .embed(&texts)
                .await
                .map_err(MemoryError::Unavailable)?;
            for (point, vector) in points.iter_mut().zip(vectors) {
                point.dense = Some(vector);
            }
        }
        let written = points.len() as u64;
        self.backend.upsert(points).await?;
        self.maybe_optimize(written);
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
        let filter = Filter {
            scope,
            metadata: filter,
        };
        let e = self.bm25.embed_query(query);
        let sparse = Sparse {
            indices: e.indices,
            values: e.values,
        };
        let Some(embedder) = &self.embedder else {
            if sparse.indices.is_empty() {
                // Only stop words: BM25 has nothing to match.
                return Ok(Vec::new());
            }
            let found = self.backend.search_bm25(&sparse, &filter, limit).await?;
            return Ok(found
                .into_iter()
                .map(|(record, score)| Hit {
                    record,
                    score,
                    bm25: Some(score),
                    dense: None,
                })
                .collect());
        };
        let depth = limit * FUSION_DEPTH;
        let query_vector = embedder
            .embed(&[query.to_string()])
            .await
            .map_err(MemoryError::Unavailable)?
            .remove(0);
        let (by_words, by_meaning) = tokio::join!(
            async {
                if sparse.indices.is_empty() {
                    Ok(Vec::new())
                } else {
                    self.backend.search_bm25(&sparse, &filter, depth).await
                }
            },
            self.backend.search_dense(&query_vector, &filter, depth),
        );
        Ok(fuse(by_words?, by_meaning?, limit))
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

    /// Merges segments and builds indexes after many writes.
    pub async fn optimize(&self) -> Result<(), MemoryError> {
        self.unoptimized.store(0, Ordering::Relaxed);
        Ok(self.backend.optimize().await?)
    }

    /// Starts a background optimization once enough was written since the
    /// last one (at most one runs at a time; searches go on meanwhile).
    fn maybe_optimize(&self, written: u64) {
        let total = self.unoptimized.fetch_add(written, Ordering::Relaxed) + written;
        if total < OPTIMIZE_EVERY || self.optimizing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.unoptimized.store(0, Ordering::Relaxed);
        let (backend, flag) = (self.backend.clone(), self.optimizing.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            match backend.optimize().await {
                Ok(()) => tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "memory optimized"
                ),
                Err(e) => tracing::warn!(error = %e, "memory optimization failed; will retry"),
            }
            flag.store(false, Ordering::Release);
        });
    }

    /// How many memories each namespace holds.
    pub async fn counts(&self) -> Result<MemoryCounts, MemoryError> {
        let namespaces = self.backend.counts().await?;
        Ok(MemoryCounts {
            backend: self.backend.name(),
            embeddings_model: self.embeddings_model().map(str::to_string),
            total: namespaces.values().sum(),
            namespaces,
        })
    }
}

/// Fuses the BM25 and dense lists by reciprocal rank ([`embed::rrf`]),
/// keeping each list's own score on the hit.
fn fuse(
    by_words: Vec<(MemoryRecord, f32)>,
    by_meaning: Vec<(MemoryRecord, f32)>,
    limit: usize,
) -> Vec<Hit> {
    let words: Vec<String> = by_words.iter().map(|(r, _)| r.id.clone()).collect();
    let meaning: Vec<String> = by_meaning.iter().map(|(r, _)| r.id.clone()).collect();
    let fused = embed::rrf(&[&words, &meaning]);
    let mut records: BTreeMap<String, MemoryRecord> = BTreeMap::new();
    let mut bm25 = BTreeMap::new();
    let mut dense = BTreeMap::new();
    for (record, score) in by_words {
        bm25.insert(record.id.clone(), score);
        records.insert(record.id.clone(), record);
    }
    for (record, score) in by_meaning {
        dense.insert(record.id.clone(), score);
        records.entry(record.id.clone()).or_insert(record);
    }
    fused
        .into_iter()
        .take(limit)
        .filter_map(|(id, score)| {
            Some(Hit {
                record: records.remove(id)?,
                score,
                bm25: bm25.get(id).copied(),
                dense: dense.get(id).copied(),
            })
        })
        .collect()
}

#[cfg(test)]
mod conformance;
