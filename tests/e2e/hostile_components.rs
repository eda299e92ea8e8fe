//! Hostile components: many memories under one limit, hundreds of core
//! instances, a flood of calls that never finish, errors and names of
//! megabytes, outputs of many megabytes. Each must cost the host a bounded
//! amount, and the other skills must keep answering.

use crate::components;
use crate::harness::{assert_error, log_line, wasm, Dirs, Host};
use std::time::{Duration, Instant};

#[tokio::test]
async fn the_memory_limit_counts_every_memory_of_a_call() {
    let dirs = Dirs::new();
    // Fifteen instances of 62.5 MiB each, under a 64 MiB limit: each memory
    // fits, all of them do not.
    dirs.install("hoard", &components::with_instances(15, 1000));
    // Two of 20 MiB: 40 MiB in all, within the limit.
    dirs.install("pair", &components::with_instances(2, 320));
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(&dirs, &[]);
    let hoard = host.skill("hoard").await;
    assert_eq!(hoard["status"], "failed", "{hoard}");
    let error = hoard["last_error"].as_str().unwrap();
    assert!(
        error.contains("memory limit") && error.contains("67108864"),
        "{error}"
    );
    let pair = host.skill("pair").await;
    assert_eq!(pair["status"], "ready", "{pair}");
    assert_eq!(host.invoke("pair", "[2]").await.0, 200);
    // The host never held the gigabyte.
    let rss = host.rss_kib();
    assert!(rss < 300 * 1024, "rss {rss} KiB");
}

#[tokio::test]
async fn a_component_over_the_per_component_bounds_is_refused_with_the_bound() {
    let dirs = Dirs::new();
    dirs.install("legion", &components::with_instances(512, 0));
    dirs.install("memories", &components::with_instances(20, 1));
    let host = Host::start(&dirs, &[]);
    let legion = host.skill("legion").await;
    assert_eq!(legion["status"], "failed", "{legion}");
    let error = legion["last_error"].as_str().unwrap();
    assert!(
        error.contains("513 core module instances") && error.contains("64"),
        "{error}"
    );
    let error = host.error_of("memories", "memories").await;
    assert!(error.contains("21") && error.contains("16"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_skill_cannot_take_the_instance_pool_from_the_others() {
    let dirs = Dirs::new();
    // Sixty core instances a call, and a call runs until its deadline.
    dirs.install("hog", &components::spinning(59));
    std::fs::write(dirs.skills.join("hog.toml"), "deadline_ms = 3000\n").unwrap();
    dirs.install("echo", &wasm("echo"));
    // A pool of 16 calls (128 core instances): two calls of hog would hold
    // 120 of them, and echo needs 18.
    let host = Host::start(&dirs, &["--max-instances", "16"]);
    let hog = host.skill("hog").await;
    assert_eq!(hog["concurrency"], 1, "{hog}");
    let flood = {
        let host = &host;
        async move {
            host.post_all_at_once("/api/skills/hog/invoke", vec![serde_json::json!({}); 12])
                .await
        }
    };
    let (statuses, answered) = tokio::join!(flood, async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let mut answered = 0;
        while started.elapsed() < Duration::from_secs(2) {
            let (status, out) = host.invoke("echo", r#"{"ok":true}"#).await;
            assert_eq!(status, 200, "{out}");
            answered += 1;
        }
        answered
    });
    assert!(answered > 10, "{answered}");
    let mut statuses = statuses;
    statuses.sort();
    // One call ran into its deadline at a time; the others were told the
    // skill is busy rather than queued without bound.
    assert!(statuses.contains(&504), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 503 || *s == 504),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_skills_words_are_bounded_in_the_answer_and_the_log() {
    let dirs = Dirs::new();
    dirs.install("loud", &components::loud_error(8 << 20, 8 << 20));
    dirs.install("named", &components::trap_in_long_name(1 << 20));
    dirs.install("huge", &components::big_output(20 << 20));
    let host = Host::start(&dirs, &[]);
    let log_before = std::fs::metadata(dirs.log_path()).unwrap().len();

    let r = host
        .http
        .post(format!("{}/api/skills/loud/invoke", host.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.bytes().await.unwrap();
    assert!(body.len() < 8 * 1024, "{} bytes", body.len());
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let code = body["error"]["code"].as_str().unwrap();
    assert_eq!(code.chars().count(), 64, "{code}");
    assert!(code.ends_with('…'), "{code}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("[cut: 8388608 bytes in all]"),
        "{message}"
    );

    let r = host
        .http
        .post(format!("{}/api/skills/named/invoke", host.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let body = r.bytes().await.unwrap();
    assert!(body.len() < 8 * 1024, "{} bytes", body.len());
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "trap", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );

    let (status, body) = host.invoke("huge", "{}").await;
    assert_error(status, &body, 500, "output_too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20971520"),
        "{body}"
    );

    // The log grew by lines, not by megabytes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = std::fs::read_to_string(dirs.log_path()).unwrap();
    let grown = log.len() as u64 - log_before;
    assert!(grown < 64 * 1024, "the log grew by {grown} bytes");
    log_line(&log, "invocation failed");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 16 * 1024, "a log line of {longest} bytes");
}
