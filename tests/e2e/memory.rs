//! The memory capability end to end: the HTTP API, a skill with grants, the
//! refusals, and durability across a `kill -9`.

use crate::harness::{assert_error, wasm, Dirs, Host};
use serde_json::{json, Value};

async fn store(host: &Host, body: Value) -> (u16, Value) {
    host.send(
        host.http
            .post(format!("{}/api/memory", host.url))
            .json(&body),
    )
    .await
}

async fn search(host: &Host, query: &[(&str, &str)]) -> (u16, Value) {
    host.send(
        host.http
            .get(format!("{}/api/memory/search", host.url))
            .query(query),
    )
    .await
}

#[tokio::test]
async fn store_search_forget_over_http() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);

    let (status, stored) = store(
        &host,
        json!({"text": "Deploys need a green CI run", "namespace": "org",
               "metadata": {"source": "handbook", "page": 3}}),
    )
    .await;
    assert_eq!(status, 201, "{stored}");
    let id = stored["id"].as_str().unwrap().to_string();
    assert_eq!(stored["namespace"], "org");
    assert_eq!(stored["created"], true);
    store(
        &host,
        json!({"text": "Lunch is at noon", "namespace": "org"}),
    )
    .await;
    store(
        &host,
        json!({"text": "Ana prefers short deploy notes", "namespace": "user:ana"}),
    )
    .await;

    // The same text again: the same memory, not a second one.
    let (status, again) = store(
        &host,
        json!({"text": "deploys need a green CI run ", "namespace": "org"}),
    )
    .await;
    assert_eq!(
        (status, again["id"].as_str(), again["created"].as_bool()),
        (200, Some(id.as_str()), Some(false))
    );

    let (status, found) = search(
        &host,
        &[("q", "what do deploys need"), ("namespace", "all")],
    )
    .await;
    assert_eq!(status, 200, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits[0]["id"], id.as_str(), "{found}");
    assert_eq!(hits[0]["text"], "Deploys need a green CI run");
    assert_eq!(hits[0]["namespace"], "org");
    assert_eq!(
        hits[0]["metadata"],
        json!({"source": "handbook", "page": "3"})
    );
    assert!(hits[0]["score"].as_f64().unwrap() > 0.0);
    assert!(hits[0]["bm25"].as_f64().is_some());
    assert!(
        hits.iter().all(|h| h["text"] != "Lunch is at noon"),
        "{found}"
    );

    // One namespace, and a metadata filter.
    let (_, only_ana) = search(&host, &[("q", "deploy notes"), ("namespace", "user:ana")]).await;
    let hits = only_ana["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{only_ana}");
    assert_eq!(hits[0]["namespace"], "user:ana");
    let (_, filtered) = search(
        &host,
        &[
            ("q", "deploys"),
            ("meta.source", "handbook"),
            ("limit", "3"),
        ],
    )
    .await;
    assert_eq!(filtered["hits"].as_array().unwrap().len(), 1, "{filtered}");

    let (status, one) = host.get(&format!("/api/memory/{id}")).await;
    assert_eq!(
        (status, one["text"].as_str()),
        (200, Some("Deploys need a green CI run"))
    );
    let (status, stats) = host.get("/api/memory/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["backend"], "qdrant-edge");
    assert_eq!(stats["namespaces"], json!({"org": 2, "user:ana": 1}));
    assert_eq!(stats["total"], 3);

    let delete = |id: String| host.send(host.http.delete(format!("{}/api/memory/{id}", host.url)));
    assert_eq!(delete(id.clone()).await.0, 204);
    let (status, body) = delete(id.clone()).await;
    assert_error(status, &body, 404, "memory_not_found");
    let (status, body) = host.get(&format!("/api/memory/{id}")).await;
    assert_error(status, &body, 404, "memory_not_found");
    let (_, found) = search(&host, &[("q", "green CI run")]).await;
    assert_eq!(found["hits"], json!([]));
}

#[tokio::test]
async fn bad_memory_requests_get_clear_errors() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let bad = "invalid_memory_request";
    for (body, code) in [
        (json!({"text": "  ", "namespace": "org"}), bad),
        (
            json!({"text": "x".repeat(64 * 1024 + 1), "namespace": "org"}),
            bad,
        ),
        (json!({"text": "x", "namespace": "team"}), bad),
        (json!({"text": "x", "namespace": "agent"}), bad),
        (json!({"text": "x", "namespace": "all"}), bad),
        (
            json!({"text": "x", "namespace": "org", "metadata": {"a": [1]}}),
            bad,
        ),
        (
            json!({"text": "x", "namespace": "org", "metadata": {"a.b": "v"}}),
            bad,
        ),
        (json!({"text": "x"}), "invalid_json"),
        (
            json!({"text": "x", "namespace": "org", "extra": 1}),
            "invalid_json",
        ),
    ] {
        let (status, err) = store(&host, body.clone()).await;
        assert_error(status, &err, 400, code);
    }
    let (status, err) = host
        .send(
            host.http
                .post(format!("{}/api/memory", host.url))
                .body("{not json"),
        )
        .await;
    assert_error(status, &err, 400, "invalid_json");
    for query in [
        vec![("namespace", "all")],
        vec![("q", "x"), ("limit", "0")],
        vec![("q", "x"), ("limit", "101")],
        vec![("q", "x"), ("limit", "ten")],
        vec![("q", "x"), ("namespace", "nowhere")],
        vec![("q", "x"), ("colour", "red")],
    ] {
        let (status, err) = search(&host, &query).await;
        assert_error(status, &err, 400, bad);
    }
    let (status, err) = host.get("/api/memory/not-an-id").await;
    assert_error(status, &err, 400, bad);
    // Nothing was stored by any of it.
    assert_eq!(host.get("/api/memory/stats").await.1["total"], 0);
}

#[tokio::test]
async fn a_skill_uses_only_the_namespaces_it_was_granted() {
    let dirs = Dirs::new();
    dirs.install("recall", &wasm("recall"));
    let host = Host::start(&dirs, &[]);
    host.wait_for("recall", "ready", |s| s["status"] == "ready")
        .await;
    store(
        &host,
        json!({"text": "Staging deploys happen on Mondays", "namespace": "org"}),
    )
    .await;
    store(
        &host,
        json!({"text": "Bob deploys the billing service", "namespace": "agent:bob"}),
    )
    .await;

    let (status, out) = host
        .invoke("recall", r#"{"remember": "I deployed billing v2 today"}"#)
        .await;
    assert_eq!(status, 200, "{out}");
    let id = out["id"].as_str().unwrap().to_string();

    let (status, out) = host
        .invoke("recall", r#"{"recall": "deploys billing staging"}"#)
        .await;
    assert_eq!(status, 200, "{out}");
    let mut seen: Vec<&str> = out["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["namespace"].as_str().unwrap())
        .collect();
    seen.sort();
    // Its own agent (the skill's name, no `agent` key) and org; never bob.
    assert_eq!(seen, ["agent:recall", "org"], "{out}");

    let (status, err) = host
        .invoke(
            "recall",
            r#"{"remember": "everyone must know", "namespace": "org"}"#,
        )
        .await;
    assert_error(status, &err, 422, "memory-denied");
    let (status, err) = host
        .invoke("recall", r#"{"recall": "billing", "scope": "agent:bob"}"#)
        .await;
    assert_error(status, &err, 422, "memory-denied");
    let (status, err) = host.invoke("recall", r#"{"remember": " "}"#).await;
    assert_error(status, &err, 422, "memory-invalid");
    let (_, org) = search(&host, &[("q", "staging mondays"), ("namespace", "org")]).await;
    let org_id = org["hits"][0]["id"].as_str().unwrap().to_string();
    let (status, err) = host
        .invoke("recall", &json!({"forget": org_id}).to_string())
        .await;
    assert_error(status, &err, 422, "memory-denied");

    let (status, out) = host
        .invoke("recall", &json!({"forget": id}).to_string())
        .await;
    assert_eq!((status, out), (200, json!({"forgotten": true})));
    let stats = host.get("/api/memory/stats").await.1;
    assert_eq!(
        stats["namespaces"],
        json!({"agent:bob": 1, "org": 1}),
        "{stats}"
    );

    // A sidecar names the agent: the skill now writes to `agent:alfred`.
    std::fs::write(dirs.skills.join("recall.toml"), "agent = \"alfred\"\n").unwrap();
    dirs.install("recall", &wasm("recall"));
    host.wait_for("recall", "agent alfred", |s| {
        s["manifest"]["agent"] == "alfred"
    })
    .await;
    let (status, out) = host
        .invoke("recall", r#"{"remember": "alfred was here"}"#)
        .await;
    assert_eq!(status, 200, "{out}");
    let (_, found) = search(&host, &[("q", "alfred"), ("namespace", "agent:alfred")]).await;
    assert_eq!(found["hits"][0]["text"], "alfred was here", "{found}");
}

#[tokio::test]
async fn importing_memory_without_a_grant_loads_and_every_call_is_denied() {
    let dirs = Dirs::new();
    std::fs::write(
        dirs.skills.join("recall.toml"),
        "memory_read = []\nmemory_write = []\n",
    )
    .unwrap();
    dirs.install("recall", &wasm("recall"));
    let host = Host::start(&dirs, &[]);
    let skill = host.skill("recall").await;
    assert_eq!(skill["status"], "ready", "{skill}");
    assert_eq!(
        skill["ungranted_imports"],
        json!(["darkfactory:skill/memory@0.1.0"]),
        "{skill}"
    );
    let (status, err) = host.invoke("recall", r#"{"recall": "x"}"#).await;
    assert_error(status, &err, 422, "memory-denied");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("grants no namespace"),
        "{err}"
    );
    let log = std::fs::read_to_string(dirs.log_path()).unwrap();
    assert!(
        log.contains(
            "imports `darkfactory:skill/memory@0.1.0` but its manifest grants no memory namespace"
        ),
        "the load log warns"
    );
    host.stop();

    // A host that wants the refusal back.
    let host = Host::start(&dirs, &["--strict-imports"]);
    let skill = host
        .wait_for_error("recall", "grants no memory namespace")
        .await;
    assert!(
        skill["last_error"]
            .as_str()
            .unwrap()
            .contains("darkfactory:skill/memory"),
        "{skill}"
    );
    let (status, _) = host.invoke("recall", r#"{"recall": "x"}"#).await;
    assert_eq!(status, 503);
}

/// A failure is remembered across restarts only while everything that
/// decided it is the same: a host restarted without `--strict-imports`
/// loads the skill the strict host refused.
#[tokio::test]
async fn a_skill_refused_by_strict_imports_loads_once_the_host_is_not_strict() {
    let dirs = Dirs::new();
    std::fs::write(
        dirs.skills.join("recall.toml"),
        "memory_read = []\nmemory_write = []\n",
    )
    .unwrap();
    dirs.install("recall", &wasm("recall"));
    let host = Host::start(&dirs, &["--strict-imports"]);
    let skill = host.skill("recall").await;
    assert_eq!(skill["status"], "failed", "{skill}");
    host.stop();

    let host = Host::start(&dirs, &[]);
    let skill = host.skill("recall").await;
    assert_eq!(skill["status"], "ready", "{skill}");
    let (status, err) = host.invoke("recall", r#"{"recall": "x"}"#).await;
    assert_error(status, &err, 422, "memory-denied");
    host.stop();

    // And back: the strict host refuses it again rather than trusting the
    // load of the other one.
    let host = Host::start(&dirs, &["--strict-imports"]);
    let skill = host
        .wait_for_error("recall", "grants no memory namespace")
        .await;
    assert_ne!(skill["status"], "ready", "{skill}");
    host.stop();
}

#[tokio::test]
async fn memories_survive_kill_9() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let mut ids = Vec::new();
    for i in 0..50 {
        let (status, out) = store(
            &host,
            json!({"text": format!("incident {i}: the queue backed up"), "namespace": "org"}),
        )
        .await;
        assert_eq!(status, 201, "{out}");
        ids.push(out["id"].as_str().unwrap().to_string());
    }
    host.kill();

    let host = Host::start(&dirs, &[]);
    assert_eq!(host.get("/api/memory/stats").await.1["total"], 50);
    for id in &ids {
        assert_eq!(host.get(&format!("/api/memory/{id}")).await.0, 200, "{id}");
    }
    let (_, found) = search(&host, &[("q", "incident 49 queue"), ("limit", "1")]).await;
    assert_eq!(
        found["hits"][0]["text"], "incident 49: the queue backed up",
        "{found}"
    );
}

#[path = "../support/embeddings_stub.rs"]
mod embeddings_stub;

// Multi-threaded: the stub answers the host's start-up probe while this
// test waits for the host to print its address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_with_an_embeddings_endpoint() {
    let stub = embeddings_stub::start(256).await;
    let dirs = Dirs::new();
    let host = Host::start(
        &dirs,
        &[
            "--embeddings-url",
            &stub.url,
            "--embeddings-model",
            "trigram-stub",
        ],
    );
    store(
        &host,
        json!({"text": "Canary releases get five percent of traffic", "namespace": "org"}),
    )
    .await;
    store(
        &host,
        json!({"text": "Deploys need a green CI run", "namespace": "org"}),
    )
    .await;
    // Misspelt beyond BM25's reach: the dense vectors find it.
    let (status, found) = search(&host, &[("q", "canery relases trafic")]).await;
    assert_eq!(status, 200, "{found}");
    let hit = &found["hits"][0];
    assert_eq!(
        hit["text"], "Canary releases get five percent of traffic",
        "{found}"
    );
    assert!(
        hit.get("bm25").is_none() && hit["dense"].as_f64().unwrap() > 0.3,
        "{found}"
    );
    let (_, found) = search(&host, &[("q", "green CI deploys")]).await;
    let hit = &found["hits"][0];
    assert!(
        hit["bm25"].is_number() && hit["dense"].is_number(),
        "{found}"
    );
    assert_eq!(
        host.get("/api/memory/stats").await.1["embeddings_model"],
        "trigram-stub"
    );

    // The endpoint goes down: stores and searches fail clearly, nothing is lost.
    stub.fail.store(true, std::sync::atomic::Ordering::Relaxed);
    let (status, err) = store(&host, json!({"text": "lost?", "namespace": "org"})).await;
    assert_error(status, &err, 503, "memory_unavailable");
    let (status, err) = search(&host, &[("q", "deploys")]).await;
    assert_error(status, &err, 503, "memory_unavailable");
    stub.fail.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(host.get("/api/memory/stats").await.1["total"], 2);
    host.stop();

    // A host whose embeddings endpoint cannot be reached does not start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--skills"])
        .arg(&dirs.skills)
        .arg("--data")
        .arg(&dirs.data)
        .args([
            "--embeddings-url",
            "http://127.0.0.1:9/v1",
            "--embeddings-model",
            "m",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("embeddings endpoint") && stderr.contains("127.0.0.1:9"),
        "{stderr}"
    );
}

#[path = "../support/qdrant_stub.rs"]
mod qdrant_stub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_qdrant_server() {
    let mut server = qdrant_stub::start(Some("k")).await;
    let args = [
        "--qdrant-url",
        &server.url,
        "--qdrant-api-key",
        "k",
        "--qdrant-collection",
        "fleet",
    ];
    let (dirs_a, dirs_b) = (Dirs::new(), Dirs::new());
    let a = Host::start(&dirs_a, &args);
    let b = Host::start(&dirs_b, &args);
    let (status, out) = store(
        &a,
        json!({"text": "Deploys need a green CI run", "namespace": "org"}),
    )
    .await;
    assert_eq!(status, 201, "{out}");
    // The other host finds it, and knows it is already stored.
    let (_, found) = search(&b, &[("q", "what do deploys need")]).await;
    assert_eq!(
        found["hits"][0]["text"], "Deploys need a green CI run",
        "{found}"
    );
    let (status, again) = store(
        &b,
        json!({"text": "deploys need a green ci run", "namespace": "org"}),
    )
    .await;
    assert_eq!((status, again["created"].as_bool()), (200, Some(false)));
    let stats = b.get("/api/memory/stats").await.1;
    assert_eq!(
        (stats["backend"].as_str(), stats["total"].as_u64()),
        (Some("qdrant"), Some(1)),
        "{stats}"
    );
    assert_eq!(server.stub.count("fleet"), 1);

    // The server goes away: clear 503s, and skills and health go on.
    server.stop();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, err) = search(&a, &[("q", "deploys")]).await;
    assert_error(status, &err, 503, "memory_unavailable");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&server.url),
        "{err}"
    );
    assert_eq!(a.get("/healthz").await.0, 200);

    // A host that cannot reach its Qdrant does not start, and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--skills"])
        .arg(&dirs_a.skills)
        .arg("--data")
        .arg(&dirs_a.data)
        .args(["--qdrant-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("127.0.0.1:9"),
        "{stderr}"
    );
}
