//! Invoke and its error cases; the host keeps serving through all of them.

use crate::harness::{assert_error, log_line, wasm, Dirs, Host};
use serde_json::json;

fn host_with(skills: &[&str], extra: &[&str]) -> (Dirs, Host) {
    let dirs = Dirs::new();
    for s in skills {
        dirs.install(s, &wasm(s));
    }
    let host = Host::start(&dirs, extra);
    (dirs, host)
}

#[tokio::test]
async fn loads_skills_at_start_and_invokes_them() {
    let (_dirs, host) = host_with(&["echo", "text-stats"], &[]);
    let (status, health) = host.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["skills"], 2);

    let (status, list) = host.get("/api/skills").await;
    assert_eq!(status, 200);
    let names: Vec<_> = list["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("echo", "ready"), ("text-stats", "ready")]);

    let (status, out) = host.invoke("echo", r#"{"text":"hi"}"#).await;
    assert_eq!((status, out), (200, json!({"text": "hi"})));

    let (status, out) = host
        .invoke(
            "text-stats",
            r#"{"text":"Deploys need a green CI run. Deploys wait."}"#,
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["words"], 8);
    assert_eq!(out["sentences"], 2);
    assert_eq!(out["keywords"][0]["word"], "deploys");

    let echo = host.skill("echo").await;
    assert_eq!(echo["invocations"], 1);
    assert!(echo["p50_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(echo["manifest"]["package"], "skill-echo");
    assert_eq!(echo["deadline_ms"], 1000);
    assert_eq!(echo["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_small_example_stack_holds_the_deepest_json_serde_accepts() {
    // `echo` links a 48 KiB stack (the other examples 64 KiB); serde_json
    // refuses nesting deeper than 128, so 127 levels is the deepest input a
    // skill can get.
    let (_dirs, host) = host_with(&["echo"], &[]);
    for depth in [127, 64] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
        for input in [arrays, objects] {
            let (status, out) = host.invoke("echo", &input).await;
            assert_eq!(status, 200, "depth {depth}: {out}");
            assert_eq!(
                out,
                serde_json::from_str::<serde_json::Value>(&input).unwrap()
            );
        }
    }
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let (status, out) = host.invoke("echo", &too_deep).await;
    assert_error(status, &out, 422, "invalid-input");
}

#[tokio::test]
async fn every_error_case_has_its_status_and_the_host_keeps_serving() {
    let (_dirs, host) = host_with(
        &["echo", "text-stats", "spin", "hog", "trap"],
        &["--max-body", "4096"],
    );
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("nope", "{}".into(), 404, "skill_not_found"),
        ("Bad_Name", "{}".into(), 400, "invalid_name"),
        ("echo", "{not json".into(), 400, "invalid_json"),
        (
            "echo",
            format!(r#"{{"text":"{}"}}"#, "x".repeat(5000)),
            413,
            "payload_too_large",
        ),
        ("text-stats", r#"{"top":3}"#.into(), 400, "invalid_input"),
        ("text-stats", r#"{"text":"   "}"#.into(), 422, "empty-text"),
        ("trap", r#"{"fail":"error"}"#.into(), 422, "asked-to-fail"),
        ("trap", r#"{"fail":"panic"}"#.into(), 500, "trap"),
        ("spin", r#"{"spin":true}"#.into(), 504, "deadline_exceeded"),
        ("hog", r#"{"mib":200}"#.into(), 500, "memory_limit_exceeded"),
    ];
    for (skill, body, status, code) in cases {
        let (got, err) = host.invoke(skill, &body).await;
        assert_eq!(got, status, "{skill} {body:.60}: {err}");
        assert_eq!(err["error"]["code"], code, "{skill}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{err}"
        );
        let (ok, out) = host.invoke("echo", r#"{"still":"here"}"#).await;
        assert_eq!((ok, out), (200, json!({"still": "here"})), "after {skill}");
    }

    let (_, trap) = host.invoke("trap", r#"{"fail":"panic"}"#).await;
    let message = trap["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the skill trapped: wasm trap: wasm `unreachable`"),
        "{message}"
    );
    // What the guest printed before it died (Rust's panic message) comes
    // back with the trap.
    let stderr = trap["error"]["stderr"].as_str().unwrap_or_default();
    assert!(
        stderr.contains("the trap skill was asked to panic"),
        "{trap:#}"
    );
    assert!(
        message.contains("the call's stderr ended with:"),
        "{message}"
    );

    // A skill that stays within its limits still works after the hog.
    let (status, out) = host.invoke("hog", r#"{"mib":4}"#).await;
    assert_eq!((status, out["allocated"].as_u64()), (200, Some(4 << 20)));
    // The deadline of a finishing call is not hit.
    let (status, _) = host.invoke("spin", r#"{"spin":false}"#).await;
    assert_eq!(status, 200);

    let trap_stats = host.skill("trap").await;
    assert_eq!(trap_stats["errors"], 3);
    assert_eq!(trap_stats["invocations"], 3);
}

#[tokio::test]
async fn long_calls_yield_so_every_other_request_is_answered_meanwhile() {
    let dirs = Dirs::new();
    dirs.install("spin", &wasm("spin"));
    dirs.install("echo", &wasm("echo"));
    std::fs::write(dirs.skills.join("spin.toml"), "deadline_ms = 3000\n").unwrap();
    let host = std::sync::Arc::new(Host::start(&dirs, &[]));
    // More endless loops than the host has worker threads (one per core).
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let spinners: Vec<_> = (0..cores + 1)
        .map(|_| {
            let host = host.clone();
            tokio::spawn(async move { host.invoke("spin", r#"{"spin":true}"#).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t0 = std::time::Instant::now();
    for i in 0..20 {
        let (status, out) = host.invoke("echo", &format!("[{i}]")).await;
        assert_eq!((status, out), (200, json!([i])));
    }
    let (status, _) = host.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(
        spinners.iter().all(|s| !s.is_finished()),
        "the other requests waited for the endless loops to be stopped ({:?})",
        t0.elapsed()
    );
    for spinner in spinners {
        let (status, err) = spinner.await.unwrap();
        assert_error(status, &err, 504, "deadline_exceeded");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let (_dirs, host) = host_with(&["echo"], &[]);
    let (status, body) = host.get("/api/nothing").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = host
        .send(
            host.http
                .get(format!("{}/api/skills/echo/invoke", host.url)),
        )
        .await;
    assert_error(status, &body, 405, "method_not_allowed");
}

#[tokio::test]
async fn skill_output_and_log_records_reach_the_host_log_with_the_skill_name() {
    let dirs = Dirs::new();
    dirs.install("trap", &wasm("trap"));
    let host = Host::start(&dirs, &[]);
    let (status, _) = host.invoke("trap", "{}").await;
    assert_eq!(status, 200);
    host.stop();
    let log = std::fs::read_to_string(dirs.log_path()).unwrap();
    let line = log_line(&log, "trap skill says hello on stderr");
    assert!(
        line.contains("skill=trap") && line.contains("stderr"),
        "{line}"
    );
    assert!(log.contains("trap skill says hello on stdout"));
    let line = log_line(&log, "through the log interface");
    assert!(
        line.contains("WARN") && line.contains("skill=trap"),
        "{line}"
    );
}

#[tokio::test]
async fn a_call_that_floods_the_log_is_cut_at_its_budget_and_says_so() {
    let dirs = Dirs::new();
    dirs.install("trap", &wasm("trap"));
    let host = Host::start(&dirs, &["--log-records-per-call", "50"]);
    // 3 × 400 records asked for, 50 written, the rest counted.
    let (status, out) = host.invoke("trap", r#"{"flood":400}"#).await;
    assert_eq!((status, out["flooded"].as_u64()), (200, Some(400)));
    // The budget is per call: the next call logs again.
    let (status, _) = host.invoke("trap", "{}").await;
    assert_eq!(status, 200);
    host.stop();
    let log = std::fs::read_to_string(dirs.log_path()).unwrap();
    let flood_lines = log.lines().filter(|l| l.contains("flood ")).count();
    assert_eq!(flood_lines, 50, "{log}");
    let line = log_line(&log, "log records dropped");
    assert!(
        line.contains("skill=trap") && line.contains("dropped=1150") && line.contains("limit=50"),
        "{line}"
    );
    assert_eq!(log.matches("log records dropped").count(), 1, "{log}");
    assert!(log.contains("trap skill says hello through the log interface"));
}

#[tokio::test]
async fn refusals_before_the_body_is_read_leave_pooled_connections_usable() {
    let (_dirs, host) = host_with(&["echo"], &["--token", "s3cret", "--max-body", "4096"]);
    let too_large = format!(r#"{{"text":"{}"}}"#, "x".repeat(5000));
    let big_refused = format!(r#"{{"text":"{}"}}"#, "x".repeat(100 << 10));
    // One pooled client, as a real caller keeps: every answer must arrive,
    // and each request after a refusal must find a working connection.
    for round in 0..40 {
        let (status, err) = host.invoke("echo", r#"{"text":"no token"}"#).await;
        assert_error(status, &err, 401, "missing_token");
        let (status, out) = host.invoke_as("s3cret", "echo", r#"{"n":1}"#).await;
        assert_eq!((status, out), (200, json!({"n": 1})), "round {round}");
        let (status, err) = host.invoke_as("s3cret", "echo", &too_large).await;
        assert_error(status, &err, 413, "payload_too_large");
        let (status, err) = host.invoke_as("wrong", "echo", &big_refused).await;
        assert_error(status, &err, 401, "invalid_token");
    }
    // What the client is told: a small refused body was read, the
    // connection stays; a body left unread ends it, and the answer says so.
    let answer = |body: String, token: &'static str| {
        let request = host
            .http
            .post(format!("{}/api/skills/echo/invoke", host.url))
            .bearer_auth(token)
            .body(body);
        async move { request.send().await.unwrap() }
    };
    let small = answer("{}".into(), "wrong").await;
    assert_eq!(small.status(), 401);
    assert!(small.headers().get("connection").is_none());
    for response in [
        answer(big_refused.clone(), "wrong").await,
        answer(too_large.clone(), "s3cret").await,
    ] {
        assert_eq!(
            response.headers()["connection"],
            "close",
            "{}",
            response.status()
        );
    }
}

#[tokio::test]
async fn a_token_protects_every_request_that_changes_or_runs_skills() {
    let (_dirs, host) = host_with(&["echo"], &["--token", "s3cret"]);
    let (status, err) = host.invoke("echo", "{}").await;
    assert_error(status, &err, 401, "missing_token");
    let (status, _) = host.put("other", wasm("echo")).await;
    assert_eq!(status, 401);
    let (status, err) = host.invoke_as("wrong", "echo", "{}").await;
    assert_error(status, &err, 401, "invalid_token");
    let (status, _) = host.invoke_as("s3cret", "echo", "{}").await;
    assert_eq!(status, 200);
    assert_eq!(host.get("/api/skills").await.0, 200);
}

#[test]
fn refuses_a_public_address_without_a_token() {
    let dirs = Dirs::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(["serve", "--listen", "0.0.0.0:0", "--skills"])
        .arg(&dirs.skills)
        .arg("--data")
        .arg(&dirs.data)
        .env_remove("DARKFACTORY_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without a bearer token"), "{stderr}");
}

#[tokio::test]
async fn wasi_denies_environment_filesystem_and_network() {
    let (_dirs, host) = host_with(&["probe"], &[]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (status, out) = host
        .invoke("probe", &json!({ "connect": addr.to_string() }).to_string())
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["env"], 0, "{out}");
    assert_eq!(out["args"], 0, "{out}");
    assert_eq!(out["stdin"]["ok"], "read 0 bytes", "{out}");
    for key in ["read_dir", "read_file", "write_file", "connect"] {
        assert!(
            out[key]["error"].is_string(),
            "{key} was not refused: {out}"
        );
    }
    // Nothing reached the listener.
    assert!(listener.accept().is_err(), "the skill opened a connection");
}
