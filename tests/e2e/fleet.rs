//! The fleet registry end to end: heartbeats, capabilities and routes over
//! HTTP and through the CLI, the `dispatch` skill and its grant, a restart,
//! and two hosts sharing one Redis.

use crate::harness::{assert_error, run_cli, wasm, Dirs, Host};
use serde_json::{json, Value};

#[path = "../support/redis_server.rs"]
mod redis_server;

/// The heartbeat of docs/fleet.md, as an agent's cron sends it.
const ALFRED: &str = r#"{"agent":"alfred","skills":["research","planka","m2-memory","browser"],
 "current_task":"BenchmarkSuite v2 run","load":0.3,
 "specialties":["literature review","data analysis"],"last_heartbeat":1772230000}"#;

/// As `curl -d` sends it: no JSON content type (the host does not insist).
async fn heartbeat(host: &Host, body: &str) -> (u16, Value) {
    host.send(
        host.http
            .post(format!("{}/api/fleet/heartbeat", host.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string()),
    )
    .await
}

async fn route(host: &Host, query: &str) -> (u16, Value) {
    host.send(host.http.post(format!("{}/api/route?{query}", host.url)))
        .await
}

#[tokio::test]
async fn heartbeats_capabilities_and_routes_over_http() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &["--fleet-seed", "7"]);
    let (status, seen) = heartbeat(&host, ALFRED).await;
    assert_eq!(
        (status, seen["status"].as_str()),
        (200, Some("up")),
        "{seen}"
    );
    let bruce = json!({"agent": "bruce", "skills": ["ci", "deploy"], "load": 0.1,
                       "specialties": ["release engineering"]});
    assert_eq!(heartbeat(&host, &bruce.to_string()).await.0, 200);

    let (status, all) = host.get("/api/capabilities").await;
    assert_eq!(status, 200);
    assert_eq!(
        (all["backend"].as_str(), all["up"].as_u64()),
        (Some("embedded"), Some(2)),
        "{all}"
    );
    assert_eq!(all["agents"][0]["agent"], "alfred");
    let (status, alfred) = host.get("/api/capabilities/alfred").await;
    assert_eq!(status, 200);
    assert_eq!(alfred["current_task"], "BenchmarkSuite v2 run");
    assert_eq!(
        alfred["specialties"],
        json!(["literature review", "data analysis"])
    );
    assert_eq!(alfred["interval_seconds"], 60);

    let (status, d) = route(&host, "task=research").await;
    assert_eq!((status, d["agent"].as_str()), (200, Some("alfred")), "{d}");
    assert_eq!(d["score"], 0.7);
    assert!(
        d["reasons"][0]
            .as_str()
            .unwrap()
            .contains("skill match 1.00"),
        "{d}"
    );
    let bruce_c = d["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["agent"] == "bruce")
        .unwrap();
    assert_eq!(bruce_c["eligible"], false);
    // A task in words, as a JSON body, and a required skill.
    let (status, d) = host
        .send(
            host.http
                .post(format!("{}/api/route", host.url))
                .json(&json!({"task": "ship the new release", "required_skills": ["deploy"]})),
        )
        .await;
    assert_eq!((status, d["agent"].as_str()), (200, Some("bruce")), "{d}");
    assert_eq!(
        host.get("/api/capabilities/alfred").await.1["routed_since_heartbeat"],
        1
    );

    // No agent fits: 404 with the reason for each.
    let (status, err) = route(&host, "task=knitting").await;
    assert_error(status, &err, 404, "no_agent_fits");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("alfred: does not match") && message.contains("bruce:"),
        "{message}"
    );
    let (status, err) = route(&host, "task=research&require=gpu").await;
    assert_error(status, &err, 404, "no_agent_fits");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lacks required skills gpu"),
        "{err}"
    );

    // Malformed heartbeats and requests: clear errors, nothing stored.
    for (body, code) in [
        (r#"{"agent":"alfred","load":1.5}"#, "invalid_fleet_request"),
        (r#"{"agent":"Alfred!","load":0.1}"#, "invalid_fleet_request"),
        (
            r#"{"agent":"alfred","skils":["x"],"load":0.1}"#,
            "invalid_json",
        ),
        (r#"{"agent":"alfred"}"#, "invalid_json"),
        (r#"{"agent":"alfred","load":"high"}"#, "invalid_json"),
        ("not json", "invalid_json"),
    ] {
        let (status, err) = heartbeat(&host, body).await;
        assert_error(status, &err, 400, code);
    }
    assert_eq!(host.get("/api/capabilities/alfred").await.1["load"], 0.3);
    let (status, err) = route(&host, "").await;
    assert_error(status, &err, 400, "invalid_route_request");
    let (status, err) = route(&host, "task=%20").await;
    assert_error(status, &err, 400, "invalid_fleet_request");
    let (status, err) = host.get("/api/capabilities/nobody").await;
    assert_error(status, &err, 404, "agent_not_found");

    // Agents survive a restart.
    host.stop();
    let host = Host::start(&dirs, &[]);
    assert_eq!(
        host.get("/api/capabilities").await.1["agents"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let forget = host
        .http
        .delete(format!("{}/api/capabilities/bruce", host.url));
    assert_eq!(host.send(forget).await.0, 204);
    let forget = host
        .http
        .delete(format!("{}/api/capabilities/bruce", host.url));
    let (status, err) = host.send(forget).await;
    assert_error(status, &err, 404, "agent_not_found");
}

#[tokio::test]
async fn fleet_commands_against_a_running_host() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let run = |args: &[&str]| run_cli(&host.url, args);
    let (ok, out, err) = run(&[
        "fleet",
        "heartbeat",
        "--agent",
        "alfred",
        "--skills",
        "research,browser",
        "--load",
        "0.3",
        "--task",
        "BenchmarkSuite v2 run",
        "--specialties",
        "literature review,data analysis",
        "--interval",
        "2m",
    ]);
    assert!(ok && out.contains("alfred is up"), "{out}{err}");
    let (ok, out, _) = run(&["fleet", "list"]);
    assert!(
        ok && out.contains("1 up, 0 stale, 0 down") && out.contains("research, browser"),
        "{out}"
    );
    let (ok, out, _) = run(&["fleet", "route", "literature review of RAG papers"]);
    assert!(ok && out.starts_with("alfred (score"), "{out}");
    let (ok, out, _) = run(&["fleet", "show", "alfred"]);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert!(ok && shown["interval_seconds"] == 120, "{out}");
    let (ok, _, err) = run(&["fleet", "route", "knitting", "--require", "yarn"]);
    assert!(!ok && err.contains("no_agent_fits (404)"), "{err}");
    let (ok, _, err) = run(&["fleet", "heartbeat", "--agent", "x", "--load", "2"]);
    assert!(
        !ok && err.contains("invalid_fleet_request (400)") && err.contains("load"),
        "{err}"
    );
    let (ok, out, _) = run(&["fleet", "forget", "alfred"]);
    assert!(ok && out.contains("forgot alfred"), "{out}");
}

#[tokio::test]
async fn the_dispatch_skill_routes_and_reports_only_when_granted() {
    let dirs = Dirs::new();
    dirs.install("dispatch", &wasm("dispatch"));
    let host = Host::start(&dirs, &[]);
    host.wait_for("dispatch", "loaded", |s| s["status"] == "ready")
        .await;
    heartbeat(&host, ALFRED).await;
    let (status, out) = host
        .invoke("dispatch", r#"{"task": "data analysis of the KPIs"}"#)
        .await;
    assert_eq!(
        (status, out["agent"].as_str()),
        (200, Some("alfred")),
        "{out}"
    );
    let (status, err) = host.invoke("dispatch", r#"{"task": "knitting"}"#).await;
    assert_error(status, &err, 422, "fleet-not-found");
    let (_, out) = host.invoke("dispatch", r#"{"agents": true}"#).await;
    assert_eq!(out["agents"][0]["status"], "up", "{out}");
    // Reading is open; reporting needs `fleet = "write"`.
    let report = r#"{"report": {"load": 0.2, "skills": ["dispatch"], "task": "routing"}}"#;
    let (status, err) = host.invoke("dispatch", report).await;
    assert_error(status, &err, 422, "fleet-denied");
    std::fs::write(
        dirs.skills.join("dispatch.toml"),
        "fleet = \"write\"\nagent = \"dispatcher\"\n",
    )
    .unwrap();
    host.wait_for("dispatch", "granted", |s| s["manifest"]["fleet"] == "write")
        .await;
    let (status, out) = host.invoke("dispatch", report).await;
    assert_eq!(
        (status, out["reported"].as_bool()),
        (200, Some(true)),
        "{out}"
    );
    let (_, me) = host.get("/api/capabilities/dispatcher").await;
    assert_eq!(
        (me["status"].as_str(), me["current_task"].as_str()),
        (Some("up"), Some("routing")),
        "{me}"
    );
    // A bad grant keeps the serving version.
    std::fs::write(dirs.skills.join("dispatch.toml"), "fleet = \"admin\"\n").unwrap();
    host.wait_for_error("dispatch", "`fleet` is `admin`").await;
    assert_eq!(host.invoke("dispatch", report).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_redis_registry() {
    let redis = redis_server::RedisServer::start();
    let url = redis.url();
    let args = ["--redis-url", url.as_str(), "--fleet-seed", "1"];
    let (dirs_a, dirs_b) = (Dirs::new(), Dirs::new());
    let a = Host::start(&dirs_a, &args);
    let b = Host::start(&dirs_b, &args);
    assert_eq!(heartbeat(&a, ALFRED).await.0, 200);
    let (_, all) = b.get("/api/capabilities").await;
    assert_eq!(
        (all["backend"].as_str(), all["up"].as_u64()),
        (Some("redis"), Some(1)),
        "{all}"
    );
    let (status, d) = route(&b, "task=research").await;
    assert_eq!((status, d["agent"].as_str()), (200, Some("alfred")), "{d}");
    assert_eq!(
        a.get("/api/capabilities/alfred").await.1["routed_since_heartbeat"],
        1
    );

    // Redis goes away: 503 with the reason; skills and health go on.
    redis.stop();
    let (status, err) = heartbeat(&a, ALFRED).await;
    assert_error(status, &err, 503, "fleet_unavailable");
    let (status, err) = route(&b, "task=research").await;
    assert_error(status, &err, 503, "fleet_unavailable");
    assert_eq!(a.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn a_host_starts_while_redis_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dirs = Dirs::new();
    let url = format!("redis://127.0.0.1:{port}");
    let host = Host::start(&dirs, &["--redis-url", &url]);
    let (status, err) = host.get("/api/capabilities").await;
    assert_error(status, &err, 503, "fleet_unavailable");
    // When Redis comes up, the registry works without a restart.
    let _redis = redis_server::RedisServer::start_on(port);
    let mut status = 0;
    for _ in 0..50 {
        status = heartbeat(&host, ALFRED).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}
