//! A loopback server speaking Qdrant's gRPC protocol (the `Points` and
//! `Collections` services of `qdrant-client`'s own definitions), for tests
//! on a machine where no Qdrant server can run. It keeps one process's
//! points in memory and answers the calls the host's Qdrant backend makes:
//! collection exists / create / info, field indexes, adding a named vector,
//! upsert, get, delete by id, facet counts, and nearest-neighbour queries on
//! a sparse vector (dot product weighted by Qdrant's IDF,
//! `ln(1 + (N - n + 0.5) / (n + 0.5))`) or a dense one (cosine), filtered by
//! `must` / `should` of keyword matches and nested filters. Everything else
//! answers `UNIMPLEMENTED`. With an API key set, a request without the same
//! `api-key` header is `UNAUTHENTICATED`, as on a real server.
//!
//! It proves the backend speaks the protocol; it is not Qdrant. Set
//! `DARKFACTORY_TEST_QDRANT_URL` to run the same suite against a real one.

#![allow(dead_code)]

use qdrant_client::qdrant as q;
use qdrant_client::Payload;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Stored {
    payload: serde_json::Map<String, serde_json::Value>,
    sparse: HashMap<String, HashMap<u32, f32>>,
    dense: HashMap<String, Vec<f32>>,
}

#[derive(Default)]
struct Collection {
    dense: BTreeMap<String, u64>,
    sparse_idf: Vec<String>,
    points: BTreeMap<String, Stored>,
    indexes: Vec<String>,
}

/// The stub's state; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct QdrantStub {
    collections: Arc<Mutex<BTreeMap<String, Collection>>>,
    api_key: Option<String>,
}

/// A running stub: its URL (`http://127.0.0.1:PORT`).
pub struct RunningStub {
    pub url: String,
    pub stub: QdrantStub,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RunningStub {
    /// Stops serving: the server is down from here on.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the stub on 127.0.0.1 in the current tokio runtime.
pub async fn start(api_key: Option<&str>) -> RunningStub {
    let stub = QdrantStub {
        api_key: api_key.map(str::to_string),
        ..QdrantStub::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    let router = tonic::transport::Server::builder()
        .add_service(q::points_server::PointsServer::new(stub.clone()))
        .add_service(q::collections_server::CollectionsServer::new(stub.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stopped.await;
    }));
    RunningStub {
        url: format!("http://{addr}"),
        stub,
        stop: Some(stop),
    }
}

fn id_text(id: &Option<q::PointId>) -> Result<String, Status> {
    match id.as_ref().and_then(|i| i.point_id_options.as_ref()) {
        Some(q::point_id::PointIdOptions::Uuid(u)) => Ok(u.to_lowercase()),
        Some(q::point_id::PointIdOptions::Num(n)) => Ok(n.to_string()),
        None => Err(Status::invalid_argument("a point without an id")),
    }
}

fn op_ok() -> q::PointsOperationResponse {
    q::PointsOperationResponse {
        result: Some(q::UpdateResult {
            operation_id: Some(0),
            status: q::UpdateStatus::Completed as i32,
        }),
        time: 0.0,
        usage: None,
    }
}

fn to_json(payload: HashMap<String, q::Value>) -> serde_json::Map<String, serde_json::Value> {
    Payload::from(payload).into()
}

fn to_payload(json: &serde_json::Map<String, serde_json::Value>) -> HashMap<String, q::Value> {
    Payload::try_from(serde_json::Value::Object(json.clone()))
        .expect("a JSON object")
        .into()
}

fn lookup<'a>(
    payload: &'a serde_json::Map<String, serde_json::Value>,
    key: &str,
) -> Option<&'a serde_json::Value> {
    let mut parts = key.split('.');
    let mut value = payload.get(parts.next()?)?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn matches(
    filter: &q::Filter,
    payload: &serde_json::Map<String, serde_json::Value>,
) -> Result<bool, Status> {
    for c in &filter.must {
        if !condition(c, payload)? {
            return Ok(false);
        }
    }
    if !filter.should.is_empty() {
        let mut any = false;
        for c in &filter.should {
            any |= condition(c, payload)?;
        }
        if !any {
            return Ok(false);
        }
    }
    for c in &filter.must_not {
        if condition(c, payload)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn condition(
    c: &q::Condition,
    payload: &serde_json::Map<String, serde_json::Value>,
) -> Result<bool, Status> {
    use q::condition::ConditionOneOf;
    use q::r#match::MatchValue;
    match &c.condition_one_of {
        Some(ConditionOneOf::Filter(f)) => matches(f, payload),
        Some(ConditionOneOf::Field(field)) => {
            let value = lookup(payload, &field.key).and_then(|v| v.as_str());
            match field.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                Some(MatchValue::Keyword(k)) => Ok(value == Some(k.as_str())),
                Some(MatchValue::Keywords(list)) => {
                    Ok(value.is_some_and(|v| list.strings.iter().any(|s| s == v)))
                }
                _ => Err(Status::unimplemented("the stub matches keywords only")),
            }
        }
        _ => Err(Status::unimplemented(
            "the stub knows field and filter conditions only",
        )),
    }
}

impl QdrantStub {
    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        match &self.api_key {
            None => Ok(()),
            Some(key) => {
                let given = request
                    .metadata()
                    .get("api-key")
                    .and_then(|v| v.to_str().ok());
                if given == Some(key.as_str()) {
                    Ok(())
                } else {
                    Err(Status::unauthenticated("Invalid api-key"))
                }
            }
        }
    }

    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Collection) -> Result<T, Status>,
    ) -> Result<T, Status> {
        let mut all = self.collections.lock().unwrap();
        let c = all
            .get_mut(name)
            .ok_or_else(|| Status::not_found(format!("Collection `{name}` doesn't exist!")))?;
        f(c)
    }

    /// Points stored in a collection, for tests.
    pub fn count(&self, name: &str) -> usize {
        self.collections
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.points.len())
    }

    fn collections_collection_exists(
        &self,
        r: q::CollectionExistsRequest,
    ) -> Result<q::CollectionExistsResponse, Status> {
        let exists = self
            .collections
            .lock()
            .unwrap()
            .contains_key(&r.collection_name);
        Ok(q::CollectionExistsResponse {
            result: Some(q::CollectionExists { exists }),
            time: 0.0,
        })
    }

    fn collections_create(
        &self,
        r: q::CreateCollection,
    ) -> Result<q::CollectionOperationResponse, Status> {
        let mut all = self.collections.lock().unwrap();
        if all.contains_key(&r.collection_name) {
            return Err(Status::already_exists(format!(
                "Collection `{}` already exists!",
                r.collection_name
            )));
        }
        let mut c = Collection::default();
        if let Some(q::vectors_config::Config::ParamsMap(map)) =
            r.vectors_config.and_then(|v| v.config)
        {
            for (name, p) in map.map {
                c.dense.insert(name, p.size);
            }
        }
        if let Some(sparse) = r.sparse_vectors_config {
            for (name, p) in sparse.map {
                if p.modifier == Some(q::Modifier::Idf as i32) {
                    c.sparse_idf.push(name);
                }
            }
        }
        all.insert(r.collection_name, c);
        Ok(q::CollectionOperationResponse {
            result: true,
            time: 0.0,
        })
    }

    fn collections_get(
        &self,
        r: q::GetCollectionInfoRequest,
    ) -> Result<q::GetCollectionInfoResponse, Status> {
        self.with(&r.collection_name, |c| {
            let map = c
                .dense
                .iter()
                .map(|(name, size)| {
                    (
                        name.clone(),
                        q::VectorParams {
                            size: *size,
                            distance: q::Distance::Cosine as i32,
                            ..Default::default()
                        },
                    )
                })
                .collect();
            Ok(q::GetCollectionInfoResponse {
                result: Some(q::CollectionInfo {
                    points_count: Some(c.points.len() as u64),
                    config: Some(q::CollectionConfig {
                        params: Some(q::CollectionParams {
                            vectors_config: Some(q::VectorsConfig {
                                config: Some(q::vectors_config::Config::ParamsMap(
                                    q::VectorParamsMap { map },
                                )),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                time: 0.0,
            })
        })
    }

    fn points_create_field_index(
        &self,
        r: q::CreateFieldIndexCollection,
    ) -> Result<q::PointsOperationResponse, Status> {
        self.with(&r.collection_name, |c| {
            c.indexes.push(r.field_name);
            Ok(op_ok())
        })
    }

    fn points_create_vector_name(
        &self,
        r: q::CreateVectorNameRequest,
    ) -> Result<q::PointsOperationResponse, Status> {
        self.with(&r.collection_name, |c| {
            match r.vector_config {
                Some(q::create_vector_name_request::VectorConfig::DenseConfig(d)) => {
                    if c.dense.contains_key(&r.vector_name) {
                        return Err(Status::invalid_argument("vector name exists"));
                    }
                    c.dense.insert(r.vector_name, d.size);
                }
                _ => return Err(Status::unimplemented("the stub adds dense vectors only")),
            }
            Ok(op_ok())
        })
    }

    fn points_upsert(&self, r: q::UpsertPoints) -> Result<q::PointsOperationResponse, Status> {
        self.with(&r.collection_name, |c| {
            let mut batch = Vec::new();
            for p in r.points {
                let id = id_text(&p.id)?;
                let mut stored = Stored {
                    payload: to_json(p.payload),
                    ..Stored::default()
                };
                let named = match p.vectors.and_then(|v| v.vectors_options) {
                    Some(q::vectors::VectorsOptions::Vectors(named)) => named.vectors,
                    _ => return Err(Status::invalid_argument("the stub takes named vectors")),
                };
                for (name, v) in named {
                    match v.vector {
                        Some(q::vector::Vector::Sparse(s)) => {
                            if !c.sparse_idf.contains(&name) {
                                return Err(Status::invalid_argument(format!(
                                    "Wrong input: Not existing vector name error: {name}"
                                )));
                            }
                            stored
                                .sparse
                                .insert(name, s.indices.into_iter().zip(s.values).collect());
                        }
                        Some(q::vector::Vector::Dense(d)) => {
                            match c.dense.get(&name) {
                                Some(size) if *size as usize == d.data.len() => {}
                                _ => {
                                    return Err(Status::invalid_argument(format!(
                                        "Wrong input: Vector dimension error for {name}"
                                    )))
                                }
                            }
                            stored.dense.insert(name, d.data);
                        }
                        _ => {
                            return Err(Status::unimplemented(
                                "the stub takes dense and sparse vectors",
                            ))
                        }
                    }
                }
                batch.push((id, stored));
            }
            // All or nothing, like one Qdrant operation.
            c.points.extend(batch);
            Ok(op_ok())
        })
    }

    fn points_get(&self, r: q::GetPoints) -> Result<q::GetResponse, Status> {
        self.with(&r.collection_name, |c| {
            let mut result = Vec::new();
            for id in &r.ids {
                let key = id_text(&Some(id.clone()))?;
                if let Some(p) = c.points.get(&key) {
                    result.push(q::RetrievedPoint {
                        id: Some(id.clone()),
                        payload: to_payload(&p.payload),
                        ..Default::default()
                    });
                }
            }
            Ok(q::GetResponse {
                result,
                time: 0.0,
                usage: None,
            })
        })
    }

    fn points_delete(&self, r: q::DeletePoints) -> Result<q::PointsOperationResponse, Status> {
        self.with(&r.collection_name, |c| {
            match r.points.and_then(|p| p.points_selector_one_of) {
                Some(q::points_selector::PointsSelectorOneOf::Points(list)) => {
                    for id in list.ids {
                        c.points.remove(&id_text(&Some(id))?);
                    }
                    Ok(op_ok())
                }
                _ => Err(Status::unimplemented("the stub deletes by id only")),
            }
        })
    }

    fn points_facet(&self, r: q::FacetCounts) -> Result<q::FacetResponse, Status> {
        self.with(&r.collection_name, |c| {
            if !c.indexes.contains(&r.key) {
                return Err(Status::invalid_argument(format!(
                    "Index required but not found for \"{}\"",
                    r.key
                )));
            }
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for p in c.points.values() {
                if let Some(f) = &r.filter {
                    if !matches(f, &p.payload)? {
                        continue;
                    }
                }
                if let Some(v) = lookup(&p.payload, &r.key).and_then(|v| v.as_str()) {
                    *counts.entry(v.to_string()).or_default() += 1;
                }
            }
            let hits = counts
                .into_iter()
                .map(|(v, count)| q::FacetHit {
                    value: Some(q::FacetValue {
                        variant: Some(q::facet_value::Variant::StringValue(v)),
                    }),
                    count,
                })
                .collect();
            Ok(q::FacetResponse {
                hits,
                time: 0.0,
                usage: None,
            })
        })
    }

    fn points_query(&self, r: q::QueryPoints) -> Result<q::QueryResponse, Status> {
        self.with(&r.collection_name, |c| {
            let using = r.using.clone().unwrap_or_default();
            let input = match r.query.and_then(|q| q.variant) {
                Some(q::query::Variant::Nearest(input)) => input.variant,
                _ => {
                    return Err(Status::unimplemented(
                        "the stub answers nearest queries only",
                    ))
                }
            };
            let limit = r.limit.unwrap_or(10) as usize;
            let mut scored: Vec<(f32, &String, &Stored)> = Vec::new();
            match input {
                Some(q::vector_input::Variant::Sparse(s)) => {
                    if !c.sparse_idf.contains(&using) {
                        return Err(Status::invalid_argument(format!(
                            "Not existing vector name: {using}"
                        )));
                    }
                    let n = c
                        .points
                        .values()
                        .filter(|p| p.sparse.contains_key(&using))
                        .count() as f32;
                    for (id, p) in &c.points {
                        if let Some(f) = &r.filter {
                            if !matches(f, &p.payload)? {
                                continue;
                            }
                        }
                        let Some(doc) = p.sparse.get(&using) else {
                            continue;
                        };
                        let mut score = 0.0;
                        let mut hit = false;
                        for (i, qv) in s.indices.iter().zip(&s.values) {
                            if let Some(dv) = doc.get(i) {
                                let df = c
                                    .points
                                    .values()
                                    .filter(|o| {
                                        o.sparse.get(&using).is_some_and(|d| d.contains_key(i))
                                    })
                                    .count() as f32;
                                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                                score += qv * dv * idf;
                                hit = true;
                            }
                        }
                        if hit {
                            scored.push((score, id, p));
                        }
                    }
                }
                Some(q::vector_input::Variant::Dense(d)) => {
                    if !c.dense.contains_key(&using) {
                        return Err(Status::invalid_argument(format!(
                            "Not existing vector name: {using}"
                        )));
                    }
                    let qn = d.data.iter().map(|x| x * x).sum::<f32>().sqrt();
                    for (id, p) in &c.points {
                        if let Some(f) = &r.filter {
                            if !matches(f, &p.payload)? {
                                continue;
                            }
                        }
                        let Some(v) = p.dense.get(&using) else {
                            continue;
                        };
                        let vn = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                        let dot: f32 = v.iter().zip(&d.data).map(|(a, b)| a * b).sum();
                        scored.push((dot / (qn * vn).max(f32::MIN_POSITIVE), id, p));
                    }
                }
                _ => {
                    return Err(Status::unimplemented(
                        "the stub takes dense and sparse queries",
                    ))
                }
            }
            scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            let result = scored
                .into_iter()
                .take(limit)
                .map(|(score, id, p)| q::ScoredPoint {
                    id: Some(q::PointId::from(id.clone())),
                    payload: to_payload(&p.payload),
                    score,
                    ..Default::default()
                })
                .collect();
            Ok(q::QueryResponse {
                result,
                time: 0.0,
                usage: None,
            })
        })
    }
}

#[tonic::async_trait]
impl q::points_server::Points for QdrantStub {
    async fn upsert(
        &self,
        request: Request<q::UpsertPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        self.check(&request)?;
        self.points_upsert(request.into_inner()).map(Response::new)
    }
    async fn delete(
        &self,
        request: Request<q::DeletePoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        self.check(&request)?;
        self.points_delete(request.into_inner()).map(Response::new)
    }
    async fn get(
        &self,
        request: Request<q::GetPoints>,
    ) -> Result<Response<q::GetResponse>, Status> {
        self.check(&request)?;
        self.points_get(request.into_inner()).map(Response::new)
    }
    async fn update_vectors(
        &self,
        _request: Request<q::UpdatePointVectors>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/update_vectors is not part of the stub",
        ))
    }
    async fn delete_vectors(
        &self,
        _request: Request<q::DeletePointVectors>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/delete_vectors is not part of the stub",
        ))
    }
    async fn set_payload(
        &self,
        _request: Request<q::SetPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/set_payload is not part of the stub",
        ))
    }
    async fn overwrite_payload(
        &self,
        _request: Request<q::SetPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/overwrite_payload is not part of the stub",
        ))
    }
    async fn delete_payload(
        &self,
        _request: Request<q::DeletePayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/delete_payload is not part of the stub",
        ))
    }
    async fn clear_payload(
        &self,
        _request: Request<q::ClearPayloadPoints>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/clear_payload is not part of the stub",
        ))
    }
    async fn create_field_index(
        &self,
        request: Request<q::CreateFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        self.check(&request)?;
        self.points_create_field_index(request.into_inner())
            .map(Response::new)
    }
    async fn delete_field_index(
        &self,
        _request: Request<q::DeleteFieldIndexCollection>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/delete_field_index is not part of the stub",
        ))
    }
    async fn create_vector_name(
        &self,
        request: Request<q::CreateVectorNameRequest>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        self.check(&request)?;
        self.points_create_vector_name(request.into_inner())
            .map(Response::new)
    }
    async fn delete_vector_name(
        &self,
        _request: Request<q::DeleteVectorNameRequest>,
    ) -> Result<Response<q::PointsOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Points/delete_vector_name is not part of the stub",
        ))
    }
    async fn search(
        &self,
        _request: Request<q::SearchPoints>,
    ) -> Result<Response<q::SearchResponse>, Status> {
        Err(Status::unimplemented(
            "Points/search is not part of the stub",
        ))
    }
    async fn search_batch(
        &self,
        _request: Request<q::SearchBatchPoints>,
    ) -> Result<Response<q::SearchBatchResponse>, Status> {
        Err(Status::unimplemented(
            "Points/search_batch is not part of the stub",
        ))
    }
    async fn search_groups(
        &self,
        _request: Request<q::SearchPointGroups>,
    ) -> Result<Response<q::SearchGroupsResponse>, Status> {
        Err(Status::unimplemented(
            "Points/search_groups is not part of the stub",
        ))
    }
    async fn scroll(
        &self,
        _request: Request<q::ScrollPoints>,
    ) -> Result<Response<q::ScrollResponse>, Status> {
        Err(Status::unimplemented(
            "Points/scroll is not part of the stub",
        ))
    }
    async fn recommend(
        &self,
        _request: Request<q::RecommendPoints>,
    ) -> Result<Response<q::RecommendResponse>, Status> {
        Err(Status::unimplemented(
            "Points/recommend is not part of the stub",
        ))
    }
    async fn recommend_batch(
        &self,
        _request: Request<q::RecommendBatchPoints>,
    ) -> Result<Response<q::RecommendBatchResponse>, Status> {
        Err(Status::unimplemented(
            "Points/recommend_batch is not part of the stub",
        ))
    }
    async fn recommend_groups(
        &self,
        _request: Request<q::RecommendPointGroups>,
    ) -> Result<Response<q::RecommendGroupsResponse>, Status> {
        Err(Status::unimplemented(
            "Points/recommend_groups is not part of the stub",
        ))
    }
    async fn discover(
        &self,
        _request: Request<q::DiscoverPoints>,
    ) -> Result<Response<q::DiscoverResponse>, Status> {
        Err(Status::unimplemented(
            "Points/discover is not part of the stub",
        ))
    }
    async fn discover_batch(
        &self,
        _request: Request<q::DiscoverBatchPoints>,
    ) -> Result<Response<q::DiscoverBatchResponse>, Status> {
        Err(Status::unimplemented(
            "Points/discover_batch is not part of the stub",
        ))
    }
    async fn count(
        &self,
        _request: Request<q::CountPoints>,
    ) -> Result<Response<q::CountResponse>, Status> {
        Err(Status::unimplemented(
            "Points/count is not part of the stub",
        ))
    }
    async fn update_batch(
        &self,
        _request: Request<q::UpdateBatchPoints>,
    ) -> Result<Response<q::UpdateBatchResponse>, Status> {
        Err(Status::unimplemented(
            "Points/update_batch is not part of the stub",
        ))
    }
    async fn query(
        &self,
        request: Request<q::QueryPoints>,
    ) -> Result<Response<q::QueryResponse>, Status> {
        self.check(&request)?;
        self.points_query(request.into_inner()).map(Response::new)
    }
    async fn query_batch(
        &self,
        _request: Request<q::QueryBatchPoints>,
    ) -> Result<Response<q::QueryBatchResponse>, Status> {
        Err(Status::unimplemented(
            "Points/query_batch is not part of the stub",
        ))
    }
    async fn query_groups(
        &self,
        _request: Request<q::QueryPointGroups>,
    ) -> Result<Response<q::QueryGroupsResponse>, Status> {
        Err(Status::unimplemented(
            "Points/query_groups is not part of the stub",
        ))
    }
    async fn facet(
        &self,
        request: Request<q::FacetCounts>,
    ) -> Result<Response<q::FacetResponse>, Status> {
        self.check(&request)?;
        self.points_facet(request.into_inner()).map(Response::new)
    }
    async fn search_matrix_pairs(
        &self,
        _request: Request<q::SearchMatrixPoints>,
    ) -> Result<Response<q::SearchMatrixPairsResponse>, Status> {
        Err(Status::unimplemented(
            "Points/search_matrix_pairs is not part of the stub",
        ))
    }
    async fn search_matrix_offsets(
        &self,
        _request: Request<q::SearchMatrixPoints>,
    ) -> Result<Response<q::SearchMatrixOffsetsResponse>, Status> {
        Err(Status::unimplemented(
            "Points/search_matrix_offsets is not part of the stub",
        ))
    }
}

#[tonic::async_trait]
impl q::collections_server::Collections for QdrantStub {
    async fn get(
        &self,
        request: Request<q::GetCollectionInfoRequest>,
    ) -> Result<Response<q::GetCollectionInfoResponse>, Status> {
        self.check(&request)?;
        self.collections_get(request.into_inner())
            .map(Response::new)
    }
    async fn list(
        &self,
        _request: Request<q::ListCollectionsRequest>,
    ) -> Result<Response<q::ListCollectionsResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/list is not part of the stub",
        ))
    }
    async fn create(
        &self,
        request: Request<q::CreateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        self.check(&request)?;
        self.collections_create(request.into_inner())
            .map(Response::new)
    }
    async fn update(
        &self,
        _request: Request<q::UpdateCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/update is not part of the stub",
        ))
    }
    async fn delete(
        &self,
        _request: Request<q::DeleteCollection>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/delete is not part of the stub",
        ))
    }
    async fn update_aliases(
        &self,
        _request: Request<q::ChangeAliases>,
    ) -> Result<Response<q::CollectionOperationResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/update_aliases is not part of the stub",
        ))
    }
    async fn list_collection_aliases(
        &self,
        _request: Request<q::ListCollectionAliasesRequest>,
    ) -> Result<Response<q::ListAliasesResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/list_collection_aliases is not part of the stub",
        ))
    }
    async fn list_aliases(
        &self,
        _request: Request<q::ListAliasesRequest>,
    ) -> Result<Response<q::ListAliasesResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/list_aliases is not part of the stub",
        ))
    }
    async fn collection_cluster_info(
        &self,
        _request: Request<q::CollectionClusterInfoRequest>,
    ) -> Result<Response<q::CollectionClusterInfoResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/collection_cluster_info is not part of the stub",
        ))
    }
    async fn collection_exists(
        &self,
        request: Request<q::CollectionExistsRequest>,
    ) -> Result<Response<q::CollectionExistsResponse>, Status> {
        self.check(&request)?;
        self.collections_collection_exists(request.into_inner())
            .map(Response::new)
    }
    async fn update_collection_cluster_setup(
        &self,
        _request: Request<q::UpdateCollectionClusterSetupRequest>,
    ) -> Result<Response<q::UpdateCollectionClusterSetupResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/update_collection_cluster_setup is not part of the stub",
        ))
    }
    async fn create_shard_key(
        &self,
        _request: Request<q::CreateShardKeyRequest>,
    ) -> Result<Response<q::CreateShardKeyResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/create_shard_key is not part of the stub",
        ))
    }
    async fn delete_shard_key(
        &self,
        _request: Request<q::DeleteShardKeyRequest>,
    ) -> Result<Response<q::DeleteShardKeyResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/delete_shard_key is not part of the stub",
        ))
    }
    async fn list_shard_keys(
        &self,
        _request: Request<q::ListShardKeysRequest>,
    ) -> Result<Response<q::ListShardKeysResponse>, Status> {
        Err(Status::unimplemented(
            "Collections/list_shard_keys is not part of the stub",
        ))
    }
}
