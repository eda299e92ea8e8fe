//! KPI series end to end: samples pushed over HTTP and the CLI, listed and
//! read back, refused whole when one is bad, and read by a workflow that
//! the host serves `kpi` to.

use crate::harness::{assert_error, run_cli, Dirs, Host};
use serde_json::{json, Value};

/// 2027-01-15T08:00:00Z: the manual clock's start.
const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

async fn push(host: &Host, samples: Value) -> (u16, Value) {
    host.send(
        host.http
            .post(format!("{}/api/kpis/samples", host.url))
            .json(&json!({ "samples": samples })),
    )
    .await
}

#[tokio::test]
async fn samples_are_pushed_listed_read_and_a_bad_batch_stores_nothing() {
    let dirs = Dirs::new();
    let t0 = T0.to_string();
    let host = Host::start(&dirs, &["--test-clock", &t0]);
    let (status, out) = push(
        &host,
        json!([
            {"name": "agent.cost_usd", "value": 0.5, "at": T0 - 2 * HOUR, "labels": {"agent": "alfred", "session": "s1"}},
            {"name": "agent.cost_usd", "value": 0.25, "at": T0 - HOUR, "labels": {"agent": "alfred", "session": "s1"}},
            {"name": "agent.cost_usd", "value": 4.0, "labels": {"agent": "bruce", "session": "s2"}},
            {"name": "ci.last_success_age_seconds", "value": 60, "labels": {"repo": "acme/api", "branch": "main"}},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out, json!({"accepted": 4, "replaced": 0, "new_series": 3}));
    // The same sample again replaces itself: a retried push is harmless.
    let (status, out) = push(
        &host,
        json!([{"name": "agent.cost_usd", "value": 0.75, "at": T0 - HOUR, "labels": {"agent": "alfred", "session": "s1"}}]),
    )
    .await;
    assert_eq!((status, &out["replaced"]), (200, &json!(1)), "{out}");

    let (status, list) = host.get("/api/kpis").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["total"], 3);
    let keys: Vec<&str> = list["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            r#"agent.cost_usd{agent="alfred",session="s1"}"#,
            r#"agent.cost_usd{agent="bruce",session="s2"}"#,
            r#"ci.last_success_age_seconds{branch="main",repo="acme/api"}"#,
        ]
    );
    assert_eq!(list["series"][0]["samples"], 2);
    assert_eq!(list["series"][0]["newest_value"], 0.75);
    assert_eq!(list["series"][1]["newest_at"], T0);
    let (_, page) = host.get("/api/kpis?limit=2").await;
    assert_eq!(page["series"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = host
        .send(
            host.http
                .get(format!("{}/api/kpis", host.url))
                .query(&[("cursor", cursor)]),
        )
        .await;
    assert_eq!(rest["series"][0]["name"], "ci.last_success_age_seconds");
    assert_eq!(rest["next_cursor"], Value::Null);

    let (status, read) = host
        .get("/api/kpis/agent.cost_usd?window=90m&label.agent=alfred")
        .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["window_seconds"], 5400);
    assert_eq!(read["to"], T0);
    let points = read["series"][0]["points"].as_array().unwrap();
    assert_eq!(read["series"].as_array().unwrap().len(), 1);
    assert_eq!(points.len(), 1, "the window is 90 minutes: {read}");
    assert_eq!(points[0]["value"], 0.75);
    assert_eq!(points[0]["count"], 1);

    // Bad input: a clear error, and nothing of the batch is stored.
    let long = "x".repeat(201);
    let many: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("l{i}"), json!("v"))).collect();
    for (bad, says) in [
        (
            json!({"name": "m", "value": 1, "at": T0 + 24 * HOUR}),
            "ahead of the host's clock",
        ),
        (
            json!({"name": "m", "value": 1, "at": 1_800_000_000}),
            "seconds rather than milliseconds",
        ),
        (json!({"name": long, "value": 1}), "at most 200 bytes"),
        (
            json!({"name": "m", "value": 1, "labels": many}),
            "at most 16 labels",
        ),
        (json!({"name": "m m", "value": 1}), "holds ' '"),
        (
            json!({"name": "m", "value": 1, "labels": {"a": ""}}),
            "empty",
        ),
    ] {
        let (status, out) = push(&host, json!([{"name": "ok.series", "value": 1}, bad])).await;
        assert_error(status, &out, 400, "invalid_sample");
        let message = out["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("samples[1]: ") && message.contains(says),
            "{message}"
        );
    }
    for body in [
        r#"{"samples": [{"name": "m", "value": 1e999}]}"#,
        r#"{"samples": [{"name": "m", "value": "NaN"}]}"#,
        r#"{"samples": [{"name": "m"}]}"#,
        r#"[1, 2]"#,
    ] {
        let (status, out) = host
            .send(
                host.http
                    .post(format!("{}/api/kpis/samples", host.url))
                    .body(body),
            )
            .await;
        assert_error(status, &out, 400, "invalid_json");
    }
    let big = format!(
        r#"{{"samples": [{}]}}"#,
        vec![r#"{"name":"m","value":1}"#; 400_000].join(",")
    );
    let (status, out) = host
        .send(
            host.http
                .post(format!("{}/api/kpis/samples", host.url))
                .body(big),
        )
        .await;
    assert_error(status, &out, 413, "payload_too_large");
    let (_, list) = host.get("/api/kpis").await;
    assert_eq!(
        list["total"], 3,
        "nothing of a bad batch was stored: {list}"
    );

    let (status, out) = host.get("/api/kpis/no.such.series").await;
    assert_error(status, &out, 404, "series_not_found");
    let (status, out) = host.get("/api/kpis/agent.cost_usd?window=90d").await;
    assert_error(status, &out, 400, "invalid_kpi_request");
    let (status, out) = host.get("/api/kpis/agent.cost_usd?windw=1h").await;
    assert_error(status, &out, 400, "invalid_kpi_request");
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`windw`"));

    // The CLI pushes, lists and shows.
    let (ok, stdout, stderr) = run_cli(
        &host.url,
        &[
            "kpi",
            "push",
            "memory.ingest.lag_seconds",
            "90",
            "--label",
            "host=h1",
        ],
    );
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "recorded memory.ingest.lag_seconds = 90\n");
    let (ok, stdout, stderr) = run_cli(&host.url, &["kpi", "list", "--prefix", "memory."]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with(r#"memory.ingest.lag_seconds{host="h1"}"#) && stdout.contains(" 90 "),
        "{stdout}"
    );
    let (ok, stdout, stderr) = run_cli(
        &host.url,
        &["kpi", "show", "memory.ingest.lag_seconds", "--window", "1h"],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        "memory.ingest.lag_seconds host=h1\n  2027-01-15T08:00:00Z              90\n"
    );
    let (ok, _, stderr) = run_cli(&host.url, &["kpi", "push", "x", "inf"]);
    assert!(!ok && stderr.contains("finite"), "{stderr}");

    // The clock moves only on a host started with --test-clock.
    let (status, out) = host
        .send(
            host.http
                .post(format!("{}/api/clock", host.url))
                .json(&json!({"advance_ms": HOUR})),
        )
        .await;
    assert_eq!((status, &out["now_ms"]), (200, &json!(T0 + HOUR)), "{out}");
    let system = Host::start(&Dirs::new(), &[]);
    let (status, out) = system
        .send(
            system
                .http
                .post(format!("{}/api/clock", system.url))
                .json(&json!({"advance_ms": 1})),
        )
        .await;
    assert_error(status, &out, 409, "clock_not_manual");
}

#[tokio::test]
async fn workflows_read_the_series_their_grant_names() {
    let dirs = Dirs::new();
    let t0 = T0.to_string();
    std::fs::write(
        dirs.skills.join("agent-cost.workflow.md"),
        crate::workflow::example("agent-cost"),
    )
    .unwrap();
    std::fs::write(
        dirs.skills.join("ingest-lag.workflow.md"),
        crate::workflow::example("ingest-lag"),
    )
    .unwrap();
    let host = Host::start(&dirs, &["--test-clock", &t0]);
    let skill = host
        .wait_for("agent-cost", "to load", |s| s["status"] == "ready")
        .await;
    assert_eq!(skill["ungranted_imports"], json!([]), "{skill:#}");

    // No series yet: the workflow's own error, from the host's answer.
    let (status, out) = host.invoke("ingest-lag", "{}").await;
    assert_eq!(status, 422, "{out}");

    let mut samples = Vec::new();
    for (agent, cost) in [
        ("alfred", 1.0),
        ("bruce", 1.5),
        ("clark", 1.0),
        ("diana", 9.0),
    ] {
        samples.push(json!({"name": "agent.cost_usd", "value": cost, "at": T0 - HOUR, "labels": {"agent": agent}}));
    }
    // Outside the 24 h window: not counted.
    samples.push(json!({"name": "agent.cost_usd", "value": 100.0, "at": T0 - 30 * HOUR, "labels": {"agent": "alfred"}}));
    let (status, out) = push(&host, json!(samples)).await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = host.invoke("agent-cost", "{}").await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["agents"], 4);
    assert_eq!(out["average"], 3.13);
    assert_eq!(out["flagged"], json!(["diana"]));
    let (_, board) = host.get("/api/board?list=Review").await;
    let cards = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Review")
        .unwrap()["cards"]
        .clone();
    assert_eq!(
        cards[0]["title"], "Agent diana cost $9 in 24 h",
        "{board:#}"
    );

    // The ingest lag, on the host's clock.
    let (status, out) = push(
        &host,
        json!([{"name": "memory.ingest.lag_seconds", "value": 3600, "labels": {}}]),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = host.invoke("ingest-lag", "{}").await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["lagging"], true);
    assert_eq!(out["lag_minutes"], 60);

    // The calls, in /metrics: one ok and one failure of ingest-lag, one
    // call of agent-cost, each in the latency histogram.
    let text = host
        .http
        .get(format!("{}/metrics", host.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "darkfactory_invocations_total{skill=\"agent-cost\",outcome=\"ok\"} 1\n",
        "darkfactory_invocations_total{skill=\"ingest-lag\",outcome=\"ok\"} 1\n",
        "darkfactory_invocation_duration_seconds_bucket{skill=\"agent-cost\",le=\"+Inf\"} 1\n",
        "darkfactory_invocation_duration_seconds_count{skill=\"ingest-lag\"} 2\n",
        "darkfactory_swaps_total 2\n",
        "darkfactory_kpi_series ",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l
                .starts_with("darkfactory_invocations_total{skill=\"ingest-lag\",outcome=\"kpi-")),
        "the failure counts under its code:\n{text}"
    );
}
