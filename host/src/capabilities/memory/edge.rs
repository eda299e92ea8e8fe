//! The embedded backend: Qdrant Edge, Qdrant's engine running in the host's
//! process, on disk in the data directory.
//!
//! One shard holds the one collection. Every update goes through Qdrant
//! Edge's write-ahead log before it is applied, and `load` replays the log,
//! so what was acknowledged survives a restart and a `kill -9`. Qdrant Edge
//! is synchronous; every call runs on tokio's blocking pool.

use super::backend::{
    fields, payload, qdrant_filter_json, record_from_payload, BackendError, Filter, MemoryBackend,
    Point, Sparse,
};
use super::record::MemoryRecord;
use qdrant_edge::external::uuid::Uuid;
use qdrant_edge::{
    EdgeConfig, EdgeShard, EdgeSparseVectorParams, FacetRequest, FacetValue, FieldIndexOperations,
    JsonPath, Modifier, NamedQuery, PayloadFieldSchema, PointId, PointInsertOperations,
    PointOperations, PointStruct, QueryEnum, QueryRequestBuilder, RetrieveRequest, ScoringQuery,
    UpdateOperation, Vector, Vectors, WithPayloadInterface,
};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Qdrant Edge in a directory.
pub struct EdgeBackend {
    shard: Arc<EdgeShard>,
    path: PathBuf,
}

impl EdgeBackend {
    /// Opens the shard in `dir`, creating it (with its indexes) the first
    /// time. `dense_dims` adds a dense vector of that size (cosine) when
    /// the shard has none; a shard whose dense vector has another size is
    /// an error (the embeddings model changed: its vectors do not compare).
    pub fn open(dir: &Path, dense_dims: Option<usize>) -> Result<Self, BackendError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            BackendError(format!(
                "cannot {what} the memory store in `{}`: {e}",
                dir.display()
            ))
        };
        let exists = dir.join("edge_config.json").exists();
        let shard = if exists {
            EdgeShard::load(dir, None).map_err(|e| fail("open", &e))?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| fail("create", &e))?;
            let shard = EdgeShard::new(dir, config()).map_err(|e| fail("create", &e))?;
            for (field, schema) in [
                (
                    fields::NAMESPACE,
                    serde_json::json!({"type": "keyword", "is_tenant": true}),
                ),
                (fields::KIND, serde_json::json!("keyword")),
            ] {
                let schema: PayloadFieldSchema =
                    serde_json::from_value(schema).map_err(|e| fail("index", &e))?;
                let field_name = json_path(field).map_err(|e| fail("index", &e))?;
                let index = qdrant_edge::CreateIndex {
                    field_name,
                    field_schema: Some(schema),
                };
                shard
                    .update(UpdateOperation::FieldIndexOperation(
                        FieldIndexOperations::CreateIndex(index),
                    ))
                    .map_err(|e| fail("index", &e))?;
            }
            shard
        };
        if let Some(dims) = dense_dims {
            let existing = shard
                .config()
                .vectors
                .get(fields::DENSE_VECTOR)
                .map(|p| p.size);
            match existing {
                Some(size) if size == dims => {}
                Some(size) => {
                    return Err(BackendError(format!(
                        "the memory store in `{}` holds {size}-dimension embeddings, but the \
                         embeddings model gives {dims}: use the same model, or a new data \
                         directory",
                        dir.display()
                    )))
                }
                None => {
                    let create: qdrant_edge::CreateVectorName =
                        serde_json::from_value(serde_json::json!({
                            "vector_name": fields::DENSE_VECTOR,
                            "config": {"dense": {"size": dims, "distance": "Cosine"}},
                        }))
                        .map_err(|e| fail("configure", &e))?;
                    shard
                        .update(UpdateOperation::VectorNameOperation(
                            qdrant_edge::VectorNameOperations::CreateVectorName(create),
                        ))
                        .map_err(|e| fail("configure", &e))?;
                }
            }
        }
        Ok(EdgeBackend {
            shard: Arc::new(shard),
            path: dir.to_path_buf(),
        })
    }

    /// Runs `f` on the blocking pool with the shard.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&EdgeShard) -> Result<T, BackendError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let shard = self.shard.clone();
        tokio::task::spawn_blocking(move || f(&shard))
            .await
            .map_err(|e| BackendError(format!("the memory store's worker failed: {e}")))?
    }

    /// The shard's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn config() -> EdgeConfig {
    EdgeConfig::builder()
        .sparse_vector(
            fields::BM25_VECTOR,
            EdgeSparseVectorParams::builder()
                .modifier(Modifier::Idf)
                .build(),
        )
        .wal_enabled(true)
        .build()
}

fn err(e: impl std::fmt::Display) -> BackendError {
    BackendError(format!("Qdrant Edge: {e}"))
}

fn json_path(field: &str) -> Result<JsonPath, BackendError> {
    field
        .parse()
        .map_err(|_| BackendError(format!("`{field}` is not a payload path")))
}

fn point_id(id: &str) -> Result<PointId, BackendError> {
    Uuid::parse_str(id)
        .map(PointId::Uuid)
        .map_err(|e| BackendError(format!("`{id}` is not a memory id: {e}")))
}

fn edge_filter(filter: &Filter) -> Result<qdrant_edge::Filter, BackendError> {
    serde_json::from_value(qdrant_filter_json(filter))
        .map_err(|e| BackendError(format!("cannot build the query filter: {e}")))
}

fn record(id: PointId, payload: Option<qdrant_edge::Payload>) -> Option<MemoryRecord> {
    record_from_payload(id.to_string(), &payload?.0)
}

#[async_trait::async_trait]
impl MemoryBackend for EdgeBackend {
    fn name(&self) -> &'static str {
        "qdrant-edge"
    }

    async fn upsert(&self, points: Vec<Point>) -> Result<(), BackendError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut list = Vec::with_capacity(points.len());
        for p in points {
            let id = point_id(&p.memory.id)?;
            let bm25 = Vector::new_sparse(p.bm25.indices, p.bm25.values).map_err(err)?;
            let mut named = vec![(fields::BM25_VECTOR, bm25)];
            if let Some(dense) = p.dense {
                named.push((fields::DENSE_VECTOR, Vector::new_dense(dense)));
            }
            let vectors = Vectors::new_named(named);
            list.push(PointStruct::new(id, vectors, payload(&p.memory)).into());
        }
        self.blocking(move |shard| {
            shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::UpsertPoints(PointInsertOperations::PointsList(list)),
                ))
                .map_err(err)
        })
        .await
    }

    async fn existing(&self, ids: &[String]) -> Result<HashSet<String>, BackendError> {
        let ids = ids
            .iter()
            .map(|id| point_id(id))
            .collect::<Result<Vec<_>, _>>()?;
        self.blocking(move |shard| {
            let mut request = RetrieveRequest::new(ids);
            request.with_payload = Some(WithPayloadInterface::Bool(false));
            let found = shard.retrieve(request).map_err(err)?;
            Ok(found.into_iter().map(|r| r.id.to_string()).collect())
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<MemoryRecord>, BackendError> {
        let pid = point_id(id)?;
        self.blocking(move |shard| {
            let mut request = RetrieveRequest::new(vec![pid]);
            request.with_payload = Some(WithPayloadInterface::Bool(true));
            let found = shard.retrieve(request).map_err(err)?;
            Ok(found.into_iter().find_map(|r| record(r.id, r.payload)))
        })
        .await
    }

    async fn delete(&self, id: &str) -> Result<bool, BackendError> {
        let pid = point_id(id)?;
        self.blocking(move |shard| {
            let found = shard
                .retrieve(RetrieveRequest::new(vec![pid]))
                .map_err(err)?;
            if found.is_empty() {
                return Ok(false);
            }
            shard
                .update(UpdateOperation::PointOperation(
                    PointOperations::DeletePoints { ids: vec![pid] },
                ))
                .map_err(err)?;
            Ok(true)
        })
        .await
    }

    async fn search_bm25(
        &self,
        query: &Sparse,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError> {
        let filter = edge_filter(filter)?;
        let vector = Vector::new_sparse(query.indices.clone(), query.values.clone())
            .map_err(err)?
            .0;
        self.query(vector, fields::BM25_VECTOR, filter, limit).await
    }

    async fn search_dense(
        &self,
        query: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError> {
        let filter = edge_filter(filter)?;
        let vector = Vector::new_dense(query.to_vec()).0;
        self.query(vector, fields::DENSE_VECTOR, filter, limit)
            .await
    }

    async fn optimize(&self) -> Result<(), BackendError> {
        self.blocking(|shard| {
            shard.optimize().map_err(err)?;
            shard.flush().map_err(err)
        })
        .await
    }

    async fn counts(&self) -> Result<BTreeMap<String, u64>, BackendError> {
        self.blocking(|shard| {
            let mut request = FacetRequest::new(json_path(fields::NAMESPACE)?);
            request.limit = super::backend::MAX_NAMESPACES_COUNTED;
            request.exact = true;
            let facets = shard.facet(request).map_err(err)?;
            let mut counts = BTreeMap::new();
            for hit in facets.hits {
                // Deleted points can leave a value with a count of 0.
                if let (FacetValue::Keyword(ns), 1..) = (hit.value, hit.count) {
                    counts.insert(ns, hit.count as u64);
                }
            }
            Ok(counts)
        })
        .await
    }
}

impl EdgeBackend {
    async fn query(
        &self,
        vector: qdrant_edge::VectorInternal,
        using: &'static str,
        filter: qdrant_edge::Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError> {
        self.blocking(move |shard| {
            let request = QueryRequestBuilder::new(limit)
                .query(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                    query: vector,
                    using: Some(using.into()),
                })))
                .filter(filter)
                .with_payload(WithPayloadInterface::Bool(true))
                .build();
            let points = shard.query(request).map_err(err)?;
            Ok(points
                .into_iter()
                .filter_map(|p| Some((record(p.id, p.payload)?, p.score)))
                .collect())
        })
        .await
    }
}
