//! The scale-out backend: a Qdrant server or cluster through `qdrant-client`
//! (gRPC, port 6334), so several hosts share one memory.
//!
//! One collection (`darkfactory_memory` unless configured) with the same
//! vectors and payload as the embedded backend: a sparse `bm25` vector with
//! the IDF modifier, an optional cosine `dense` vector, and the namespace as
//! a tenant-indexed keyword field. Created on first use; an existing
//! collection is checked (a dense vector of another size is an error, a
//! missing one is added). Writes wait for the server to apply them.

use super::backend::{
    fields, payload, record_from_payload, BackendError, Filter, MemoryBackend, Point, Sparse,
};
use super::namespace::Scope;
use super::record::MemoryRecord;
use qdrant_client::qdrant::{
    point_id::PointIdOptions, vectors_config, Condition, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, CreateVectorNameRequestBuilder, DeletePointsBuilder,
    DenseVectorCreationConfigBuilder, Distance, FacetCountsBuilder, FieldType, Filter as QFilter,
    GetPointsBuilder, KeywordIndexParamsBuilder, Modifier, NamedVectors, PointId, PointStruct,
    PointsIdsList, Query, QueryPointsBuilder, SparseVectorParamsBuilder,
    SparseVectorsConfigBuilder, Value, Vector, VectorInput,
};
use qdrant_client::{Payload, Qdrant};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Where the server is.
#[derive(Debug, Clone, PartialEq)]
pub struct QdrantConfig {
    /// gRPC URL, e.g. `http://qdrant:6334`.
    pub url: String,
    /// API key, if the server wants one.
    pub api_key: Option<String>,
    /// The collection.
    pub collection: String,
    /// Timeout of one request.
    pub timeout: Duration,
}

/// Default collection name.
pub const DEFAULT_COLLECTION: &str = "darkfactory_memory";

/// A Qdrant server.
pub struct QdrantBackend {
    client: Qdrant,
    collection: String,
    url: String,
}

impl QdrantBackend {
    /// Connects, and creates or checks the collection.
    pub async fn connect(
        config: QdrantConfig,
        dense_dims: Option<usize>,
    ) -> Result<Self, BackendError> {
        let client = Qdrant::from_url(&config.url)
            .api_key(config.api_key.clone())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| BackendError(format!("Qdrant at {}: {e}", config.url)))?;
        let backend = QdrantBackend {
            client,
            collection: config.collection,
            url: config.url,
        };
        backend.prepare(dense_dims).await?;
        Ok(backend)
    }

    fn err(&self, what: &str) -> impl Fn(qdrant_client::QdrantError) -> BackendError + '_ {
        let what = what.to_string();
        move |e| BackendError(format!("Qdrant at {} ({what}): {e}", self.url))
    }

    async fn prepare(&self, dense_dims: Option<usize>) -> Result<(), BackendError> {
        let c = &self.collection;
        if !self
            .client
            .collection_exists(c)
            .await
            .map_err(self.err("collection exists"))?
        {
            let mut sparse = SparseVectorsConfigBuilder::default();
            sparse.add_named_vector_params(
                fields::BM25_VECTOR,
                SparseVectorParamsBuilder::default().modifier(Modifier::Idf),
            );
            let mut create = CreateCollectionBuilder::new(c).sparse_vectors_config(sparse);
            if let Some(dims) = dense_dims {
                let mut dense = qdrant_client::qdrant::VectorsConfigBuilder::default();
                dense.add_named_vector_params(
                    fields::DENSE_VECTOR,
                    qdrant_client::qdrant::VectorParamsBuilder::new(dims as u64, Distance::Cosine),
                );
                create = create.vectors_config(dense);
            }
            self.client
                .create_collection(create)
                .await
                .map_err(self.err("create collection"))?;
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(
                        c,
                        fields::NAMESPACE,
                        FieldType::Keyword,
                    )
                    .field_index_params(KeywordIndexParamsBuilder::default().is_tenant(true))
                    .wait(true),
                )
                .await
                .map_err(self.err("namespace index"))?;
            self.client
                .create_field_index(
                    CreateFieldIndexCollectionBuilder::new(c, fields::KIND, FieldType::Keyword)
                        .wait(true),
                )
                .await
                .map_err(self.err("kind index"))?;
            return Ok(());
        }
        let Some(dims) = dense_dims else {
            return Ok(());
        };
        let info = self
            .client
            .collection_info(c)
            .await
            .map_err(self.err("collection info"))?;
        let existing = info
            .result
            .and_then(|i| i.config)
            .and_then(|c| c.params)
            .and_then(|p| p.vectors_config)
            .and_then(|v| v.config)
            .and_then(|config| match config {
                vectors_config::Config::ParamsMap(map) => {
                    map.map.get(fields::DENSE_VECTOR).map(|p| p.size)
                }
                vectors_config::Config::Params(_) => None,
            });
        match existing {
            Some(size) if size as usize == dims => Ok(()),
            Some(size) => Err(BackendError(format!(
                "the Qdrant collection `{c}` holds {size}-dimension embeddings, but the \
                 embeddings model gives {dims}: use the same model, or another collection"
            ))),
            None => {
                self.client
                    .create_vector_name(CreateVectorNameRequestBuilder::new(
                        c,
                        fields::DENSE_VECTOR,
                        DenseVectorCreationConfigBuilder::new(dims as u64, Distance::Cosine),
                    ))
                    .await
                    .map_err(self.err("add the dense vector"))?;
                Ok(())
            }
        }
    }

    async fn query(
        &self,
        input: VectorInput,
        using: &str,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError> {
        let response = self
            .client
            .query(
                QueryPointsBuilder::new(&self.collection)
                    .query(Query::new_nearest(input))
                    .using(using)
                    .filter(qdrant_filter(filter))
                    .limit(limit as u64)
                    .with_payload(true),
            )
            .await
            .map_err(self.err("query"))?;
        Ok(response
            .result
            .into_iter()
            .filter_map(|p| Some((record(p.id, p.payload)?, p.score)))
            .collect())
    }
}

fn point_id(id: &str) -> PointId {
    PointId::from(id.to_string())
}

fn id_text(id: &PointId) -> Option<String> {
    match id.point_id_options.as_ref()? {
        PointIdOptions::Uuid(u) => Some(u.clone()),
        PointIdOptions::Num(n) => Some(n.to_string()),
    }
}

fn record(id: Option<PointId>, payload: HashMap<String, Value>) -> Option<MemoryRecord> {
    let id = id_text(id.as_ref()?)?;
    let json: serde_json::Map<String, serde_json::Value> = Payload::from(payload).into();
    record_from_payload(id, &json)
}

/// The same filter as [`super::backend::qdrant_filter_json`], in gRPC types.
fn qdrant_filter(filter: &Filter) -> QFilter {
    let mut must = Vec::new();
    if let Scope::Only {
        namespaces,
        any_user,
    } = &filter.scope
    {
        let names: Vec<String> = namespaces.iter().map(|n| n.to_string()).collect();
        let by_name = Condition::matches(fields::NAMESPACE, names);
        if *any_user {
            let users = Condition::matches(fields::KIND, "user".to_string());
            must.push(Condition::from(QFilter::should([by_name, users])));
        } else {
            must.push(by_name);
        }
    }
    for (key, value) in &filter.metadata {
        must.push(Condition::matches(
            format!("{}.{key}", fields::METADATA),
            value.clone(),
        ));
    }
    QFilter::must(must)
}

#[async_trait::async_trait]
impl MemoryBackend for QdrantBackend {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    async fn upsert(&self, points: Vec<Point>) -> Result<(), BackendError> {
        if points.is_empty() {
            return Ok(());
        }
        let mut list = Vec::with_capacity(points.len());
        for p in points {
            let payload = Payload::try_from(payload(&p.memory))
                .map_err(|e| BackendError(format!("cannot build the payload: {e}")))?;
            let mut vectors = NamedVectors::default().add_vector(
                fields::BM25_VECTOR,
                Vector::new_sparse(p.bm25.indices, p.bm25.values),
            );
            if let Some(dense) = p.dense {
                vectors = vectors.add_vector(fields::DENSE_VECTOR, Vector::new_dense(dense));
            }
            list.push(PointStruct::new(point_id(&p.memory.id), vectors, payload));
        }
        self.client
            .upsert_points(
                qdrant_client::qdrant::UpsertPointsBuilder::new(&self.collection, list).wait(true),
            )
            .await
            .map_err(self.err("upsert"))?;
        Ok(())
    }

    async fn existing(&self, ids: &[String]) -> Result<HashSet<String>, BackendError> {
        let ids: Vec<PointId> = ids.iter().map(|i| point_id(i)).collect();
        let response = self
            .client
            .get_points(GetPointsBuilder::new(&self.collection, ids).with_payload(false))
            .await
            .map_err(self.err("get points"))?;
        Ok(response
            .result
            .iter()
            .filter_map(|p| id_text(p.id.as_ref()?))
            .collect())
    }

    async fn get(&self, id: &str) -> Result<Option<MemoryRecord>, BackendError> {
        let response = self
            .client
            .get_points(
                GetPointsBuilder::new(&self.collection, vec![point_id(id)]).with_payload(true),
            )
            .await
            .map_err(self.err("get point"))?;
        Ok(response
            .result
            .into_iter()
            .find_map(|p| record(p.id, p.payload)))
    }

    async fn delete(&self, id: &str) -> Result<bool, BackendError> {
        if self.get(id).await?.is_none() {
            return Ok(false);
        }
        self.client
            .delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(PointsIdsList {
                        ids: vec![point_id(id)],
                    })
                    .wait(true),
            )
            .await
            .map_err(self.err("delete"))?;
        Ok(true)
    }

    async fn search_bm25(
        &self,
        query: &Sparse,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError> {
        let input = VectorInput::new_sparse(query.indices.clone(), query.values.clone());
        self.query(input, fields::BM25_VECTOR, filter, limit).await
    }

    async fn search_dense(
        &self,
        query: &[f32],
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<(MemoryRecord, f32)>, BackendError> {
        let input = VectorInput::new_dense(query.to_vec());
        self.query(input, fields::DENSE_VECTOR, filter, limit).await
    }

    async fn counts(&self) -> Result<BTreeMap<String, u64>, BackendError> {
        let response = self
            .client
            .facet(
                FacetCountsBuilder::new(&self.collection, fields::NAMESPACE)
                    .limit(super::backend::MAX_NAMESPACES_COUNTED as u64)
                    .exact(true),
            )
            .await
            .map_err(self.err("facet"))?;
        let mut counts = BTreeMap::new();
        for hit in response.hits {
            let value = hit.value.and_then(|v| v.variant);
            if let (Some(qdrant_client::qdrant::facet_value::Variant::StringValue(ns)), 1..) =
                (value, hit.count)
            {
                counts.insert(ns, hit.count);
            }
        }
        Ok(counts)
    }
}
