//! The skills directory and the mutating endpoints: new files, broken files,
//! uploads, deletes, rollbacks, sidecar manifests and restarts.

use crate::harness::{assert_error, sha256, wasm, Dirs, Host};
use serde_json::{json, Value};

fn sha_of(skill: &Value) -> Option<&str> {
    skill["sha256"].as_str()
}

#[tokio::test]
async fn a_new_file_is_served_and_a_deleted_file_is_unloaded() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    assert_eq!(
        host.get("/api/skills").await.1,
        json!({"skills": [], "next_cursor": null})
    );

    dirs.install("fresh", &wasm("echo"));
    host.wait_for("fresh", "to load", |s| s["status"] == "ready")
        .await;
    let (status, out) = host.invoke("fresh", r#"[1,2]"#).await;
    assert_eq!((status, out), (200, json!([1, 2])));

    std::fs::remove_file(dirs.skills.join("fresh.wasm")).unwrap();
    host.wait_for("fresh", "to unload", Value::is_null).await;
    assert_eq!(host.invoke("fresh", "{}").await.0, 404);
}

#[tokio::test]
async fn broken_and_half_written_files_keep_the_serving_version() {
    let dirs = Dirs::new();
    let echo = wasm("echo");
    dirs.install("echo", &echo);
    let host = Host::start(&dirs, &[]);
    let good = sha256(&echo);

    let stats = wasm("text-stats");
    for (what, bytes) in [
        ("garbage", b"this is not wasm".to_vec()),
        ("half-written", stats[..stats.len() / 2].to_vec()),
        ("a core module", b"\0asm\x01\0\0\0".to_vec()),
        ("an unsatisfied import", wasm("alien")),
    ] {
        // Written in place, as `cp` over the old file would.
        std::fs::write(dirs.skills.join("echo.wasm"), &bytes).unwrap();
        let skill = host
            .wait_for("echo", what, |s| s["last_error"].is_string())
            .await;
        assert_eq!(skill["status"], "degraded", "{what}");
        assert_eq!(sha_of(&skill), Some(good.as_str()), "{what}");
        let (status, out) = host.invoke("echo", r#"{"a":1}"#).await;
        assert_eq!((status, out), (200, json!({"a": 1})), "{what}");
        // Reset the error so the next case is observed on its own.
        std::fs::write(dirs.skills.join("echo.wasm"), &echo).unwrap();
        host.wait_for("echo", "to recover", |s| s["status"] == "ready")
            .await;
    }
    let skill = host.skill("echo").await;
    assert_eq!(skill["history"].as_array().unwrap().len(), 1);

    // The core module's error says how to fix it; the alien's names the import.
    std::fs::write(dirs.skills.join("echo.wasm"), wasm("alien")).unwrap();
    host.wait_for_error("echo", "darkfactory:skill/teleport")
        .await;

    // The next good write is picked up.
    dirs.install("echo", &stats);
    let skill = host
        .wait_for("echo", "the good write", |s| {
            s["sha256"] == sha256(&stats) && s["status"] == "ready"
        })
        .await;
    assert_eq!(skill["history"].as_array().unwrap().len(), 2);
    let (status, out) = host.invoke("echo", r#"{"text":"one two"}"#).await;
    assert_eq!((status, out["words"].as_u64()), (200, Some(2)));
}

#[tokio::test]
async fn a_file_that_never_loaded_is_listed_as_failed() {
    let dirs = Dirs::new();
    dirs.install("alien", &wasm("alien"));
    let host = Host::start(&dirs, &[]);
    let skill = host.skill("alien").await;
    assert_eq!(skill["status"], "failed");
    assert!(skill["last_error"].as_str().unwrap().contains("teleport"));
    let (status, err) = host.invoke("alien", "{}").await;
    assert_error(status, &err, 503, "skill_unavailable");
}

#[tokio::test]
async fn put_validates_first_then_writes_atomically() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);

    let (status, err) = host.put("hello", b"not wasm".to_vec()).await;
    assert_error(status, &err, 422, "invalid_component");
    let (status, err) = host.put("hello", wasm("alien")).await;
    assert_eq!(status, 422);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("teleport"),
        "{err}"
    );
    assert!(!dirs.skills.join("hello.wasm").exists());
    assert_eq!(host.skill("hello").await, Value::Null);
    let (status, _) = host.put("Hello!", wasm("echo")).await;
    assert_eq!(status, 400);

    let echo = wasm("echo");
    let (status, body) = host.put("hello", echo.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sha256"], sha256(&echo));
    assert_eq!(std::fs::read(dirs.skills.join("hello.wasm")).unwrap(), echo);
    let (status, out) = host.invoke("hello", r#""hi""#).await;
    assert_eq!((status, out), (200, json!("hi")));
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dirs.skills)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers, ["hello.wasm"]);

    // A refused upload over a serving skill changes nothing.
    let (status, _) = host.put("hello", b"\0asm".to_vec()).await;
    assert_eq!(status, 422);
    assert_eq!(std::fs::read(dirs.skills.join("hello.wasm")).unwrap(), echo);
    assert_eq!(host.invoke("hello", "1").await.0, 200);
}

#[tokio::test]
async fn rollback_returns_to_the_previous_version_and_the_directory_follows() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let (status, err) = host.rollback("nope").await;
    assert_error(status, &err, 404, "skill_not_found");

    let (v1, v2) = (wasm("echo"), wasm("text-stats"));
    assert_eq!(host.put("r", v1.clone()).await.0, 201);
    let (status, err) = host.rollback("r").await;
    assert_error(status, &err, 409, "nothing_to_roll_back");

    assert_eq!(host.put("r", v2.clone()).await.0, 201);
    let (status, out) = host.invoke("r", r#"{"text":"a b c"}"#).await;
    assert_eq!((status, out["words"].as_u64()), (200, Some(3)));

    let (status, body) = host.rollback("r").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sha256"], sha256(&v1));
    let (status, out) = host.invoke("r", r#"{"text":"a b c"}"#).await;
    assert_eq!((status, out), (200, json!({"text": "a b c"})));
    assert_eq!(std::fs::read(dirs.skills.join("r.wasm")).unwrap(), v1);
    let skill = host.skill("r").await;
    assert_eq!(skill["history"].as_array().unwrap().len(), 1);
    assert_eq!(skill["history"][0]["sha256"], sha256(&v1));

    // The rewritten file is not mistaken for a new version.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let skill = host.skill("r").await;
    assert_eq!(
        (
            skill["status"].as_str(),
            skill["history"].as_array().unwrap().len()
        ),
        (Some("ready"), 1)
    );
    assert_eq!(host.rollback("r").await.0, 409);
}

#[tokio::test]
async fn history_keeps_the_last_five_versions() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let (a, b) = (wasm("echo"), wasm("text-stats"));
    for i in 0..7 {
        let bytes = if i % 2 == 0 { a.clone() } else { b.clone() };
        assert_eq!(host.put("h", bytes).await.0, 201);
    }
    let skill = host.skill("h").await;
    let history = skill["history"].as_array().unwrap();
    assert_eq!(history.len(), 5);
    assert_eq!(history[0]["sha256"], sha256(&a));
    assert_eq!(history[0]["source"], "api");
    for _ in 0..4 {
        assert_eq!(host.rollback("h").await.0, 200);
    }
    assert_eq!(host.rollback("h").await.0, 409);
}

#[tokio::test]
async fn delete_removes_the_files_and_unloads() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    std::fs::write(dirs.skills.join("echo.toml"), "deadline_ms = 500\n").unwrap();
    let host = Host::start(&dirs, &[]);
    let delete = || host.http.delete(format!("{}/api/skills/echo", host.url));
    let (status, _) = host.send(delete()).await;
    assert_eq!(status, 204);
    assert!(!dirs.skills.join("echo.wasm").exists());
    assert!(!dirs.skills.join("echo.toml").exists());
    assert_eq!(host.invoke("echo", "{}").await.0, 404);
    let (status, err) = host.send(delete()).await;
    assert_error(status, &err, 404, "skill_not_found");
}

#[tokio::test]
async fn a_sidecar_manifest_overrides_the_embedded_one() {
    let dirs = Dirs::new();
    dirs.install("spin", &wasm("spin"));
    std::fs::write(
        dirs.skills.join("spin.toml"),
        "deadline_ms = 120\ndescription = \"spins\"\n",
    )
    .unwrap();
    let host = Host::start(&dirs, &[]);
    let skill = host.skill("spin").await;
    assert_eq!(skill["deadline_ms"], 120);
    assert_eq!(skill["description"], "spins");
    let (status, err) = host.invoke("spin", r#"{"spin":true}"#).await;
    assert_eq!(status, 504);
    assert!(
        err["error"]["message"].as_str().unwrap().contains("120ms"),
        "{err}"
    );

    // A broken sidecar is an error that keeps the serving version.
    std::fs::write(dirs.skills.join("spin.toml"), "deadline = 5\n").unwrap();
    let skill = host
        .wait_for_error("spin", "unknown field `deadline`")
        .await;
    assert_eq!(skill["deadline_ms"], 120);

    // Fixing the sidecar alone applies the new limits.
    std::fs::write(dirs.skills.join("spin.toml"), "deadline_ms = 250\n").unwrap();
    host.wait_for("spin", "new deadline", |s| {
        s["deadline_ms"] == 250 && s["status"] == "ready"
    })
    .await;
}

#[tokio::test]
async fn a_restart_restores_the_same_versions_from_the_artifact_cache() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(&dirs, &[]);
    assert_eq!(host.put("stats", wasm("echo")).await.0, 201);
    assert_eq!(host.put("stats", wasm("text-stats")).await.0, 201);
    let before = host.get("/api/skills").await.1;
    assert_eq!(host.skill("echo").await["compiled_from_cache"], false);
    host.stop();

    let host = Host::start(&dirs, &[]);
    let after = host.get("/api/skills").await.1;
    let shas = |v: &Value| -> Vec<(String, String)> {
        v["skills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].to_string(), s["sha256"].to_string()))
            .collect()
    };
    assert_eq!(shas(&before), shas(&after));
    for name in ["echo", "stats"] {
        let skill = host.skill(name).await;
        assert_eq!(skill["compiled_from_cache"], true, "{name}: {skill}");
    }
    let stats = host.skill("stats").await;
    assert_eq!(stats["history"].as_array().unwrap().len(), 2);
    // Rollback works across the restart.
    assert_eq!(host.rollback("stats").await.0, 200);
    assert_eq!(host.invoke("stats", r#"{"x":1}"#).await.1, json!({"x": 1}));
}

#[tokio::test]
async fn a_full_instance_pool_answers_busy_and_a_load_it_blocked_is_retried() {
    let dirs = Dirs::new();
    dirs.install("spin", &wasm("spin"));
    dirs.install("echo", &wasm("echo"));
    std::fs::write(dirs.skills.join("spin.toml"), "deadline_ms = 5000\n").unwrap();
    let host = std::sync::Arc::new(Host::start(&dirs, &["--max-instances", "1"]));

    // Occupy the only instance slot. Once the spinner holds it, other calls
    // are turned away; should the spinner arrive while one of the probing
    // echo calls holds the slot, it is the one turned away: start it again.
    let mut attempts = 0;
    let (spinner, (status, err)) = loop {
        attempts += 1;
        assert!(attempts <= 10, "the spinner never got the instance slot");
        let spinner = {
            let host = host.clone();
            tokio::spawn(async move { host.invoke("spin", r#"{"spin":true}"#).await })
        };
        let started = std::time::Instant::now();
        let answer = loop {
            let answer = host.invoke("echo", "{}").await;
            if answer.0 != 200
                || spinner.is_finished()
                || started.elapsed() > std::time::Duration::from_secs(2)
            {
                break answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        if answer.0 == 200 && spinner.is_finished() {
            assert_eq!(spinner.await.unwrap().0, 503, "the spinner was turned away");
            continue;
        }
        break (spinner, answer);
    };
    assert_error(status, &err, 503, "busy");

    // A new skill arriving now cannot start its health check...
    dirs.install("fresh", &wasm("echo"));
    host.wait_for_error("fresh", "instance capacity").await;
    assert_eq!(spinner.await.unwrap().0, 504);
    // ...and is loaded by a rescan once the slot is free, without a new write.
    host.wait_for("fresh", "the retry", |s| s["status"] == "ready")
        .await;
    assert_eq!(host.invoke("fresh", "[1]").await, (200, json!([1])));
}
