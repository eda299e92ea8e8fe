//! The conformance suite every memory backend passes: the same calls, the
//! same answers. It always runs against the embedded backend (Qdrant Edge in
//! a temporary directory).

use super::*;

fn skill(agent: &str, read: &[&str], write: &[&str]) -> Access {
    let parse = |v: &[&str]| v.iter().map(|g| Grant::parse(g).unwrap()).collect();
    Access::Skill(SkillGrants::new(agent.into(), parse(read), parse(write)).unwrap())
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs every check against a fresh, empty memory.
async fn conformance(memory: &Memory) {
    store_then_search(memory).await;
    same_text_is_one_memory(memory).await;
    namespaces_are_enforced_by_the_host(memory).await;
    metadata_filters(memory).await;
    forget_respects_grants(memory).await;
    bad_input_is_refused(memory).await;
    counts_per_namespace(memory).await;
}

async fn store_then_search(memory: &Memory) {
    let op = Access::Operator;
    let stored = memory
        .store(
            &op,
            "Deploys need a green CI run",
            "org",
            Metadata::new(),
            "test",
        )
        .await
        .unwrap();
    assert!(stored.created);
    assert_eq!(stored.namespace, "org");
    memory
        .store(
            &op,
            "The coffee machine is on the third floor",
            "org",
            Metadata::new(),
            "test",
        )
        .await
        .unwrap();
    let hits = memory
        .search(&op, "what do deploys need", "all", 5, Metadata::new())
        .await
        .unwrap();
    assert_eq!(hits[0].record.id, stored.id, "{hits:?}");
    assert_eq!(hits[0].record.text, "Deploys need a green CI run");
    assert_eq!(hits[0].record.namespace, "org");
    assert!(hits[0].score > 0.0 && hits[0].bm25.is_some());
    if memory.embeddings_model().is_none() {
        assert_eq!(hits[0].bm25, Some(hits[0].score));
        assert!(hits.iter().all(|h| !h.record.text.contains("coffee")));
        // Only stop words: nothing to match, and no error.
        let none = memory
            .search(&op, "the and of", "all", 5, Metadata::new())
            .await
            .unwrap();
        assert!(none.is_empty());
    } else {
        assert!(hits[0].dense.is_some());
    }
}

async fn same_text_is_one_memory(memory: &Memory) {
    let op = Access::Operator;
    let a = memory
        .store(
            &op,
            "Rollbacks take one click",
            "org",
            Metadata::new(),
            "test",
        )
        .await
        .unwrap();
    let b = memory
        .store(
            &op,
            "  rollbacks TAKE one\nclick ",
            "org",
            Metadata::new(),
            "test",
        )
        .await
        .unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.id, b.id);
    // Twice in one batch: one memory, and the second is not "created".
    let twice = [
        "Backups restore in forty minutes",
        "backups restore in FORTY minutes",
    ]
    .map(|t| NewMemory::new(t, Namespace::Org, Metadata::new(), 0, "t").unwrap());
    let stored = memory.store_new(twice.to_vec()).await.unwrap();
    assert_eq!(
        stored.iter().map(|s| s.created).collect::<Vec<_>>(),
        [true, false]
    );
    memory.forget(&op, &stored[0].id).await.unwrap();
    let hits = memory
        .search(&op, "rollbacks click", "org", 10, Metadata::new())
        .await
        .unwrap();
    assert_eq!(hits.iter().filter(|h| h.record.id == a.id).count(), 1);
    // The first text and time are kept.
    assert_eq!(hits[0].record.text, "Rollbacks take one click");
}

async fn namespaces_are_enforced_by_the_host(memory: &Memory) {
    let alfred = skill("alfred", &["agent", "org"], &["agent"]);
    let bob = skill("bob", &["agent"], &["agent"]);
    memory
        .store(
            &alfred,
            "alfred keeps the release notes",
            "agent",
            Metadata::new(),
            "t",
        )
        .await
        .unwrap();
    memory
        .store(
            &bob,
            "bob keeps the release keys",
            "agent",
            Metadata::new(),
            "t",
        )
        .await
        .unwrap();
    let seen = memory
        .search(&alfred, "release keys notes", "all", 10, Metadata::new())
        .await
        .unwrap();
    assert!(!seen.is_empty());
    for hit in &seen {
        assert!(
            hit.record.namespace == "agent:alfred" || hit.record.namespace == "org",
            "alfred saw {hit:?}"
        );
    }
    let err = memory
        .search(&alfred, "release", "agent:bob", 10, Metadata::new())
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Denied(_)), "{err}");
    let err = memory
        .store(&alfred, "x", "org", Metadata::new(), "t")
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Denied(_)), "{err}");
    // `user:*` reaches every user, and only users.
    let op = Access::Operator;
    for (ns, text) in [
        ("user:1", "likes short release notes"),
        ("user:2", "likes long release notes"),
    ] {
        memory
            .store(&op, text, ns, Metadata::new(), "t")
            .await
            .unwrap();
    }
    let support = skill("support", &["user:*"], &[]);
    let hits = memory
        .search(&support, "release notes", "all", 10, Metadata::new())
        .await
        .unwrap();
    let mut namespaces: Vec<_> = hits.iter().map(|h| h.record.namespace.as_str()).collect();
    namespaces.sort();
    assert_eq!(namespaces, ["user:1", "user:2"]);
}

async fn metadata_filters(memory: &Memory) {
    let op = Access::Operator;
    for (text, session) in [
        ("the build broke on tuesday", "s1"),
        ("the build broke on friday", "s2"),
    ] {
        memory
            .store(
                &op,
                text,
                "org",
                meta(&[("session", session), ("kind", "incident")]),
                "t",
            )
            .await
            .unwrap();
    }
    let hits = memory
        .search(&op, "build broke", "org", 10, meta(&[("session", "s2")]))
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(hits[0].record.text.contains("friday"));
    assert_eq!(hits[0].record.metadata["kind"], "incident");
    let none = memory
        .search(&op, "build broke", "org", 10, meta(&[("session", "s3")]))
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn forget_respects_grants(memory: &Memory) {
    let op = Access::Operator;
    let stored = memory
        .store(
            &op,
            "temporary note about staging",
            "org",
            Metadata::new(),
            "t",
        )
        .await
        .unwrap();
    let reader = skill("r", &["org"], &["agent"]);
    let err = memory.forget(&reader, &stored.id).await.unwrap_err();
    assert!(matches!(err, MemoryError::Denied(_)), "{err}");
    assert!(
        memory.get(&stored.id).await.is_ok(),
        "a refused forget deletes nothing"
    );
    assert!(memory.forget(&op, &stored.id).await.unwrap());
    assert!(!memory.forget(&op, &stored.id).await.unwrap());
    assert!(matches!(
        memory.get(&stored.id).await,
        Err(MemoryError::NotFound(_))
    ));
    let hits = memory
        .search(&op, "temporary staging", "org", 10, Metadata::new())
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.record.id != stored.id), "{hits:?}");
}

async fn bad_input_is_refused(memory: &Memory) {
    let op = Access::Operator;
    let invalid = |r: Result<Stored, MemoryError>| matches!(r, Err(MemoryError::Invalid(_)));
    assert!(invalid(
        memory.store(&op, " ", "org", Metadata::new(), "t").await
    ));
    let long = "word ".repeat(MAX_TEXT_BYTES / 5 + 1);
    assert!(invalid(
        memory.store(&op, &long, "org", Metadata::new(), "t").await
    ));
    assert!(invalid(
        memory.store(&op, "x", "team", Metadata::new(), "t").await
    ));
    assert!(invalid(
        memory.store(&op, "x", "all", Metadata::new(), "t").await
    ));
    let search = memory.search(&op, "x", "all", 0, Metadata::new()).await;
    assert!(matches!(search, Err(MemoryError::Invalid(_))));
    let search = memory.search(&op, "", "all", 5, Metadata::new()).await;
    assert!(matches!(search, Err(MemoryError::Invalid(_))));
    assert!(matches!(
        memory.forget(&op, "nope").await,
        Err(MemoryError::Invalid(_))
    ));
}

async fn counts_per_namespace(memory: &Memory) {
    let counts = memory.counts().await.unwrap();
    assert_eq!(counts.namespaces["agent:alfred"], 1);
    assert_eq!(counts.namespaces["agent:bob"], 1);
    assert_eq!(counts.namespaces["user:1"], 1);
    assert_eq!(counts.total, counts.namespaces.values().sum::<u64>());
    assert!(counts.namespaces["org"] >= 4);
    // Forgotten memories leave no empty namespace behind.
    let op = Access::Operator;
    let stored = memory
        .store(&op, "a lone note", "user:gone", Metadata::new(), "t")
        .await
        .unwrap();
    assert_eq!(memory.counts().await.unwrap().namespaces["user:gone"], 1);
    memory.forget(&op, &stored.id).await.unwrap();
    assert!(!memory
        .counts()
        .await
        .unwrap()
        .namespaces
        .contains_key("user:gone"));
}

#[tokio::test]
async fn qdrant_edge_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::open_embedded(&dir.path().join("memory"), None).unwrap();
    conformance(&memory).await;
}

#[path = "../../../../tests/support/embeddings_stub.rs"]
mod embeddings_stub;
#[path = "../../../../tests/support/qdrant_stub.rs"]
mod qdrant_stub;

fn server_config(url: &str, api_key: Option<&str>, collection: &str) -> QdrantConfig {
    QdrantConfig {
        url: url.to_string(),
        api_key: api_key.map(str::to_string),
        collection: collection.to_string(),
        timeout: std::time::Duration::from_secs(5),
    }
}

#[tokio::test]
async fn qdrant_server_protocol_conforms() {
    let server = qdrant_stub::start(Some("secret")).await;
    let config = server_config(&server.url, Some("secret"), "memory");
    let memory = Memory::open_server(config.clone(), None).await.unwrap();
    conformance(&memory).await;
    let total = memory.counts().await.unwrap().total;
    assert_eq!(server.stub.count("memory") as u64, total);
    assert!(total >= 9, "{total}");
    // A second host on the same collection sees the same memories.
    let other = Memory::open_server(config, None).await.unwrap();
    assert_eq!(
        other.counts().await.unwrap().total,
        memory.counts().await.unwrap().total
    );
    // With embeddings, in another collection.
    let stub = embeddings_stub::start(256).await;
    let hybrid = Memory::open_server(
        server_config(&server.url, Some("secret"), "hybrid"),
        Some(stub_embedder(&stub.url).await),
    )
    .await
    .unwrap();
    conformance(&hybrid).await;
}

#[tokio::test]
async fn qdrant_server_errors_are_clear() {
    let server = qdrant_stub::start(Some("secret")).await;
    let err = Memory::open_server(server_config(&server.url, Some("wrong"), "m"), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, MemoryError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("api-key"), "{err}");
    // Nothing listens there.
    let err = Memory::open_server(server_config("http://127.0.0.1:9", None, "m"), None)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("127.0.0.1:9"), "{err}");
    // Up, then down: every call is a clear error naming the server.
    let mut server = server;
    let memory = Memory::open_server(server_config(&server.url, Some("secret"), "m"), None)
        .await
        .unwrap();
    memory
        .store(&Access::Operator, "kept", "org", Metadata::new(), "t")
        .await
        .unwrap();
    server.stop();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let err = memory
        .store(&Access::Operator, "not kept", "org", Metadata::new(), "t")
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains(&server.url), "{err}");
    let err = memory
        .search(&Access::Operator, "kept", "org", 5, Metadata::new())
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Unavailable(_)), "{err}");
}

/// The same suite against a real Qdrant, when `DARKFACTORY_TEST_QDRANT_URL`
/// names one (gRPC, e.g. `http://127.0.0.1:6334`; `DARKFACTORY_TEST_QDRANT_API_KEY`
/// if it needs a key). Each run uses a fresh collection.
#[tokio::test]
async fn a_real_qdrant_server_conforms_when_configured() {
    let Ok(url) = std::env::var("DARKFACTORY_TEST_QDRANT_URL") else {
        eprintln!("DARKFACTORY_TEST_QDRANT_URL is not set: the real-server run is skipped");
        return;
    };
    let key = std::env::var("DARKFACTORY_TEST_QDRANT_API_KEY").ok();
    let collection = format!("darkfactory_test_{}", now_ms());
    let memory = Memory::open_server(server_config(&url, key.as_deref(), &collection), None)
        .await
        .unwrap();
    conformance(&memory).await;
}

async fn stub_embedder(url: &str) -> Embedder {
    Embedder::connect(EmbeddingsConfig {
        url: url.to_string(),
        model: "trigram-stub".into(),
        api_key: Some("k".into()),
        timeout: std::time::Duration::from_secs(5),
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn qdrant_edge_with_embeddings_conforms() {
    let stub = embeddings_stub::start(256).await;
    let dir = tempfile::tempdir().unwrap();
    let memory = Memory::open_embedded(
        &dir.path().join("memory"),
        Some(stub_embedder(&stub.url).await),
    )
    .unwrap();
    conformance(&memory).await;
}

#[tokio::test]
async fn hybrid_search_finds_what_words_alone_miss() {
    let stub = embeddings_stub::start(256).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    let op = Access::Operator;
    // Stored before embeddings were on: found by words only.
    let old = Memory::open_embedded(&path, None).unwrap();
    let early = old
        .store(
            &op,
            "Kubernetes readiness probes answer within two seconds",
            "org",
            Metadata::new(),
            "t",
        )
        .await
        .unwrap();
    drop(old);
    let memory = Memory::open_embedded(&path, Some(stub_embedder(&stub.url).await)).unwrap();
    let later = memory
        .store(
            &op,
            "Canary releases get five percent of traffic",
            "org",
            Metadata::new(),
            "t",
        )
        .await
        .unwrap();
    // Misspelt: BM25 matches nothing, the trigram vectors still do.
    let hits = memory
        .search(&op, "canery relases trafic", "org", 5, Metadata::new())
        .await
        .unwrap();
    assert_eq!(hits[0].record.id, later.id, "{hits:?}");
    assert_eq!(hits[0].bm25, None);
    assert!(hits[0].dense.unwrap() > 0.3);
    // Both lists agree: both scores, and the fused score ranks it first.
    let hits = memory
        .search(&op, "canary releases traffic", "org", 5, Metadata::new())
        .await
        .unwrap();
    assert_eq!(hits[0].record.id, later.id);
    assert!(hits[0].bm25.is_some() && hits[0].dense.is_some());
    let words = memory
        .search(&op, "readiness probes", "org", 5, Metadata::new())
        .await
        .unwrap();
    assert_eq!(words[0].record.id, early.id);
    assert_eq!(words[0].dense, None, "stored before embeddings: no vector");
    // The endpoint down: a clear error, nothing stored.
    stub.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = memory
        .store(&op, "never stored", "org", Metadata::new(), "t")
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("500"), "{err}");
    assert_eq!(memory.counts().await.unwrap().total, 2);
    let err = memory
        .search(&op, "x", "org", 5, Metadata::new())
        .await
        .unwrap_err();
    assert!(matches!(err, MemoryError::Unavailable(_)), "{err}");
    stub.fail.store(false, std::sync::atomic::Ordering::Relaxed);
    drop(memory);
    // Another model (another dimension) on the same store is refused.
    let other = embeddings_stub::start(128).await;
    let err = Memory::open_embedded(&path, Some(stub_embedder(&other.url).await))
        .err()
        .unwrap();
    assert!(err.to_string().contains("256-dimension"), "{err}");
}

#[tokio::test]
async fn qdrant_edge_keeps_memories_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("memory");
    let id = {
        let memory = Memory::open_embedded(&path, None).unwrap();
        let stored = memory
            .store(
                &Access::Operator,
                "kept across restarts",
                "org",
                Metadata::new(),
                "t",
            )
            .await
            .unwrap();
        stored.id
    };
    let memory = Memory::open_embedded(&path, None).unwrap();
    assert_eq!(memory.get(&id).await.unwrap().text, "kept across restarts");
    let hits = memory
        .search(&Access::Operator, "restarts", "org", 3, Metadata::new())
        .await
        .unwrap();
    assert_eq!(hits[0].record.id, id);
}
