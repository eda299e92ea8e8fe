//! The corpus pipeline end to end: JSONL over HTTP, `memory ingest` of
//! OpenClaw session directories (incremental, resumable, idempotent) and
//! `memory import` of a markdown file.

use crate::harness::{assert_error, run_cli, Dirs, Host};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A substantive reply of well over 100 tokens, different for each `seed`.
fn answer(seed: usize) -> String {
    const WORDS: [&str; 40] = [
        "migration",
        "postgres",
        "column",
        "backfill",
        "constraint",
        "rollout",
        "kubernetes",
        "readiness",
        "probe",
        "timeout",
        "invoice",
        "billing",
        "queue",
        "consumer",
        "partition",
        "replica",
        "latency",
        "budget",
        "alert",
        "runbook",
        "staging",
        "canary",
        "traffic",
        "schema",
        "index",
        "vacuum",
        "lock",
        "deadline",
        "retry",
        "jitter",
        "cache",
        "eviction",
        "snapshot",
        "restore",
        "checksum",
        "artifact",
        "registry",
        "signature",
        "policy",
        "audit",
    ];
    let mut out = format!("Answer {seed}:");
    for i in 0..130 {
        out.push(' ');
        out.push_str(WORDS[(i * 7 + seed * 13 + i / 40) % WORDS.len()]);
        if i % 9 == 8 {
            out.push_str(&format!(" step{}.", seed * 1000 + i));
        }
    }
    out
}

fn plain(role: &str, content: &str, ts: u64, session: &str) -> String {
    json!({"role": role, "content": content, "timestamp": ts, "session_id": session}).to_string()
}

fn openclaw_session(id: &str, exchanges: std::ops::Range<usize>) -> String {
    let mut lines = vec![
        json!({"type":"session","version":3,"id":id,"timestamp":"2026-11-20T10:00:00Z","cwd":"/w"})
            .to_string(),
    ];
    for i in exchanges {
        lines.push(json!({"type":"message","id":format!("u{i}"),"timestamp":format!("2026-11-20T10:{:02}:00Z", i % 60),
            "message":{"role":"user","content":[{"type":"text","text":format!("Question {i} about the billing rollout?")}]}}).to_string());
        lines.push(json!({"type":"custom","customType":"note"}).to_string());
        lines.push(json!({"type":"message","id":format!("a{i}"),"timestamp":format!("2026-11-20T10:{:02}:30Z", i % 60),
            "message":{"role":"assistant","content":[{"type":"text","text":answer(i)}]}}).to_string());
    }
    lines.join("\n") + "\n"
}

/// Marks a file as finished (last written long ago).
fn make_idle(path: &Path) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

fn cli(host: &Host, args: &[&str]) -> (bool, String, String) {
    run_cli(&host.url, args)
}

fn report(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn ingest_body(host: &Host, query: &[(&str, &str)], body: String) -> (u16, Value) {
    host.send(
        host.http
            .post(format!("{}/api/memory/ingest", host.url))
            .query(query)
            .body(body),
    )
    .await
}

#[tokio::test]
async fn jsonl_over_http_filters_reports_and_is_idempotent() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let filler = "you are very welcome, I am glad that it was helpful for you, just let me know \
                  if there is anything else that I can do for you and I will be happy to help "
        .repeat(3);
    let body = [
        plain(
            "user",
            "How do we roll out billing safely?",
            1_772_230_000,
            "s1",
        ),
        plain("assistant", &answer(1), 1_772_230_010, "s1"),
        plain("user", "thanks", 1_772_230_020, "s1"),
        plain("assistant", "ok", 1_772_230_021, "s1"),
        "{not json".to_string(),
        plain("user", "thank you so much", 1_772_230_030, "s1"),
        plain("assistant", &filler, 1_772_230_040, "s1"),
    ]
    .join("\n");
    let (status, r) = ingest_body(&host, &[("namespace", "org")], body.clone()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (
            r["exchanges"].as_u64(),
            r["stored"].as_u64(),
            r["too_short"].as_u64(),
            r["low_density"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(r["malformed_lines"], 1);
    assert_eq!(r["malformed"][0]["line"], 5, "{r}");
    assert_eq!(r["malformed"][0]["file"], "-");

    // Again: nothing new.
    let (_, again) = ingest_body(&host, &[("namespace", "org")], body).await;
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(1)),
        "{again}"
    );

    let (_, found) = host
        .get("/api/memory/search?q=roll%20out%20billing%20safely")
        .await;
    let hit = &found["hits"][0];
    assert!(
        hit["text"]
            .as_str()
            .unwrap()
            .starts_with("User: How do we roll out billing safely?\nAssistant: Answer 1:"),
        "{found}"
    );
    assert_eq!(hit["metadata"]["session"], "s1");
    assert_eq!(hit["created_at_ms"], 1_772_230_000_000u64);

    let (_, stats) = host.get("/api/memory/stats").await;
    assert_eq!(
        stats["ingest"]["newest_message_at"], "2026-02-27T22:07:20.000Z",
        "{stats}"
    );
    assert!(stats["ingest"]["lag_seconds"].as_i64().unwrap() > 0);
    assert!(stats["ingest"]["last_run_at"].is_string());

    for (query, code) in [
        (vec![("namespace", "nowhere")], "invalid_memory_request"),
        (
            vec![("namespace", "org"), ("min_density", "2")],
            "invalid_memory_request",
        ),
        (vec![], "invalid_memory_request"),
    ] {
        let (status, err) = ingest_body(&host, &query, String::new()).await;
        assert_error(status, &err, 400, code);
    }
    // A chunk that claims to continue a file from the wrong place.
    let (status, err) = ingest_body(
        &host,
        &[
            ("namespace", "org"),
            ("source", "/x/s.jsonl"),
            ("offset", "77"),
        ],
        String::new(),
    )
    .await;
    assert_error(status, &err, 409, "watermark_moved");
}

#[tokio::test]
async fn ingest_directories_incrementally_and_resume_without_duplicates() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let sessions = dirs
        .data
        .parent()
        .unwrap()
        .join("openclaw/agents/alfred/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let a = sessions.join("a.jsonl");
    let b = sessions.join("b.jsonl");
    std::fs::write(&a, openclaw_session("sa", 0..6)).unwrap();
    std::fs::write(&b, openclaw_session("sb", 10..14)).unwrap();
    std::fs::write(sessions.join("sessions.json"), "{}").unwrap(); // not a transcript
    make_idle(&a);
    // b is still being written: its last exchange may grow, so it waits.
    let dir = sessions.to_str().unwrap();

    // An earlier run was interrupted after the first part of a.jsonl.
    let text = std::fs::read_to_string(&a).unwrap();
    let cut = text.match_indices('\n').nth(5).unwrap().0 + 1;
    let key = std::fs::canonicalize(&a).unwrap();
    let (status, first) = ingest_body(
        &host,
        &[
            ("namespace", "agent:alfred"),
            ("source", key.to_str().unwrap()),
            ("offset", "0"),
            ("last", "false"),
        ],
        text[..cut].to_string(),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["stored"], 1, "{first}");

    let (ok, out, err) = cli(
        &host,
        &[
            "memory",
            "ingest",
            dir,
            "--namespace",
            "agent:alfred",
            "--dedupe",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let r = report(&out);
    // a: the 5 exchanges after the interruption; b: 3 of 4 (the last waits).
    assert_eq!(
        (
            r["files"].as_u64(),
            r["stored"].as_u64(),
            r["duplicates"].as_u64()
        ),
        (Some(2), Some(8), Some(0)),
        "{r}"
    );
    assert_eq!(r["skipped_entries"], 9, "{r}");
    assert_eq!(
        host.get("/api/memory/stats").await.1["namespaces"]["agent:alfred"],
        9
    );

    // Nothing new: nothing stored, nothing even read again.
    let (ok, out, _) = cli(
        &host,
        &[
            "memory",
            "ingest",
            dir,
            "--namespace",
            "agent:alfred",
            "--json",
        ],
    );
    assert!(ok);
    let r = report(&out);
    assert_eq!(
        (r["stored"].as_u64(), r["exchanges"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );

    // b grows and finishes; a grows too.
    let mut more = std::fs::OpenOptions::new().append(true).open(&b).unwrap();
    use std::io::Write;
    let extra = openclaw_session("sb", 14..16);
    more.write_all(extra.split_once('\n').unwrap().1.as_bytes())
        .unwrap();
    drop(more);
    make_idle(&b);
    let mut more = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    more.write_all(
        openclaw_session("sa", 6..7)
            .split_once('\n')
            .unwrap()
            .1
            .as_bytes(),
    )
    .unwrap();
    more.write_all(b"{\"type\":\"message\",\"message\":{\"role\":\"user\"}}\n")
        .unwrap();
    drop(more);
    make_idle(&a);
    let (ok, out, err) = cli(
        &host,
        &[
            "memory",
            "ingest",
            dir,
            "--namespace",
            "agent:alfred",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let r = report(&out);
    // b: the one held back and two new; a: one new. Nothing twice.
    assert_eq!(
        (r["stored"].as_u64(), r["duplicates"].as_u64()),
        (Some(4), Some(0)),
        "{r}"
    );
    assert_eq!(r["malformed_lines"], 1);
    let line = text.lines().count() + 4;
    assert_eq!(r["malformed"][0]["line"], line, "{r}");
    assert!(r["malformed"][0]["file"]
        .as_str()
        .unwrap()
        .ends_with("a.jsonl"));
    assert_eq!(
        host.get("/api/memory/stats").await.1["namespaces"]["agent:alfred"],
        13
    );

    // The human report.
    let (ok, out, _) = cli(
        &host,
        &[
            "memory",
            "ingest",
            b.to_str().unwrap(),
            "--namespace",
            "agent:alfred",
        ],
    );
    assert!(
        ok && out.contains("1 files, 0 exchanges: 0 stored"),
        "{out}"
    );
    let (ok, _, err) = cli(
        &host,
        &["memory", "ingest", "/no/such/dir", "--namespace", "org"],
    );
    assert!(!ok && err.contains("/no/such/dir"), "{err}");
    let (ok, _, err) = cli(
        &host,
        &[
            "memory",
            "ingest",
            dir,
            "--namespace",
            "org",
            "--quality-filter",
            "3",
        ],
    );
    assert!(!ok && err.contains("between 0 and 1"), "{err}");
}

#[tokio::test]
async fn import_a_markdown_file_one_memory_per_section() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let md = dirs.data.parent().unwrap().join("MEMORY.md");
    std::fs::write(
        &md,
        "# Team memory\n\n## Deploys\nDeploys need a green CI run.\n\n## On call\nPage the \
         on-call engineer through the rota bot.\n\n## Huge\n"
            .to_string()
            + &"x ".repeat(40_000),
    )
    .unwrap();
    let path = md.to_str().unwrap();
    let (ok, out, err) = cli(&host, &["memory", "import", path, "--namespace", "org"]);
    assert!(!ok, "the 80 KB section is refused: {out}");
    assert!(
        out.contains("3 sections: 2 stored, 0 already stored, 1 not imported"),
        "{out}"
    );
    assert!(
        err.contains("MEMORY.md:9: not imported") && err.contains("64 KiB"),
        "{err}"
    );
    let (_, found) = host
        .get("/api/memory/search?q=what%20do%20deploys%20need&namespace=org")
        .await;
    assert_eq!(
        found["hits"][0]["text"], "## Deploys\nDeploys need a green CI run.",
        "{found}"
    );
    assert_eq!(
        found["hits"][0]["metadata"]["section"],
        "Team memory > Deploys"
    );
    std::fs::write(&md, "## Deploys\nDeploys need a green CI run.\n").unwrap();
    let (ok, out, err) = cli(&host, &["memory", "import", path, "--namespace", "org"]);
    assert!(
        ok && out.contains("1 sections: 0 stored, 1 already stored"),
        "{out}{err}"
    );
}
