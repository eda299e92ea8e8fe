//! Workflows end to end: a `NAME.workflow.md` dropped into the skills
//! directory is compiled by the host and served; a compile error keeps the
//! serving version and is shown with its line and column; the HTTP API
//! checks, compiles and deploys workflows; the CLI checks, compiles and runs
//! the examples.

use crate::harness::{assert_error, run_cli, sha256, wasm, Dirs, Host};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub(crate) fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../skills/{name}.workflow.md"));
    std::fs::read_to_string(path).unwrap()
}

/// Writes a workflow the way an editor or a synthesiser would: a temporary
/// file and a rename.
fn install(dirs: &Dirs, name: &str, source: &str) -> PathBuf {
    let tmp = dirs.skills.join(format!(".{name}.partial"));
    std::fs::write(&tmp, source).unwrap();
    let path = dirs.skills.join(format!("{name}.workflow.md"));
    std::fs::rename(&tmp, &path).unwrap();
    path
}

async fn add_card(host: &Host, title: &str, list: &str) -> String {
    let (status, card) = host
        .send(
            host.http
                .post(format!("{}/api/board/cards", host.url))
                .json(&json!({"title": title, "list": list})),
        )
        .await;
    assert_eq!(status, 201, "{card}");
    card["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_workflow_file_is_compiled_and_served_hot_and_a_compile_error_keeps_it() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let source = example("blocked-escalator");
    install(&dirs, "escalate", &source);
    let skill = host
        .wait_for("escalate", "to compile and load", |s| {
            s["status"] == "ready"
        })
        .await;
    assert_eq!(
        skill["manifest"]["workflow"]["source_sha256"],
        sha256(source.as_bytes())
    );
    assert_eq!(
        skill["manifest"]["workflow"]["trigger"],
        "gap: cards-blocked"
    );
    assert_eq!(
        skill["manifest"]["board_write"],
        json!(["Blocked", "Review"])
    );

    let a = add_card(&host, "Renew the certificate", "Blocked").await;
    let b = add_card(&host, "Fix the flaky job", "Blocked").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, out) = host.invoke("escalate", r#"{"hours": 0}"#).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(
        out,
        json!({"escalated": 2, "ids": [a.clone(), b], "moved": a.clone()})
    );
    let (_, board) = host.get("/api/board").await;
    let review = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Review")
        .unwrap();
    assert_eq!(review["cards"][0]["id"], json!(a));
    // The input schema comes from the front matter: a wrong type is refused.
    let (status, body) = host.invoke("escalate", r#"{"hours": "soon"}"#).await;
    assert_error(status, &body, 400, "invalid_input");

    // A broken edit: the serving version stays, the error says where.
    let serving = skill["sha256"].clone();
    let broken = source.replace("len(late) > 0", "len(lat) > 0");
    install(&dirs, "escalate", &broken);
    let skill = host
        .wait_for_error("escalate", "undefined variable `lat`")
        .await;
    assert_eq!(skill["status"], "degraded");
    assert_eq!(skill["sha256"], serving);
    let error = skill["last_error"].as_str().unwrap();
    assert!(error.contains("--> escalate.workflow.md:48:30"), "{error}");
    assert!(error.contains("did you mean `late`?"), "{error}");
    assert_eq!(host.invoke("escalate", r#"{"hours": 0}"#).await.0, 200);

    // The fix is picked up; deleting the file unloads the skill.
    install(
        &dirs,
        "escalate",
        &source.replace("escalated by the factory", "escalated"),
    );
    host.wait_for("escalate", "the fixed version", |s| {
        s["status"] == "ready" && s["sha256"] != serving
    })
    .await;
    std::fs::remove_file(dirs.skills.join("escalate.workflow.md")).unwrap();
    host.wait_for("escalate", "to unload", Value::is_null).await;
}

#[tokio::test]
async fn check_compile_and_deploy_over_http() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let source = example("blocked-escalator");
    let broken = source.replace("board.move_card(", "board.move_cards(");

    let post = |path: &str, body: String| host.http.post(format!("{}{path}", host.url)).body(body);
    let (status, report) = host
        .send(post("/api/workflows/check?name=esc", broken.clone()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], false);
    assert_eq!(report["errors"], 1);
    let d = &report["diagnostics"][0];
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(49), Some(17)),
        "{report:#}"
    );
    assert_eq!(d["hint"], "did you mean `board.move_card`?");
    let (_, report) = host
        .send(post("/api/workflows/check", source.clone()))
        .await;
    assert_eq!(
        report["ok"], false,
        "without a name from the query or the front matter"
    );
    assert_eq!(
        report["diagnostics"][0]["message"],
        "the workflow has no name"
    );
    let (_, report) = host
        .send(post("/api/workflows/check?name=esc", source.clone()))
        .await;
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(
        report["calls"],
        json!(["board.add_comment", "board.cards", "board.move_card", "log"])
    );

    let response = post("/api/workflows/compile?name=esc", source.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/wasm");
    let sha = response.headers()["x-darkfactory-sha256"]
        .to_str()
        .unwrap()
        .to_string();
    let component = response.bytes().await.unwrap();
    assert_eq!(sha256(&component), sha);
    let (status, body) = host
        .send(post("/api/workflows/compile?name=esc", broken.clone()))
        .await;
    assert_error(status, &body, 422, "invalid_workflow");
    assert_eq!(body["error"]["diagnostics"][0]["line"], 49);
    let (status, body) = host
        .send(post("/api/workflows/compile?name=Esc", source.clone()))
        .await;
    assert_error(status, &body, 422, "invalid_workflow");
    let (status, body) = host
        .send(post("/api/workflows/check?nom=x", source.clone()))
        .await;
    assert_error(status, &body, 400, "invalid_query");
    let (status, body) = host
        .send(post("/api/workflows/check", "x".repeat(300 * 1024)))
        .await;
    assert_error(status, &body, 413, "payload_too_large");
    let bad_utf8 = host
        .http
        .post(format!("{}/api/workflows/check", host.url))
        .body(vec![0xff, 0xfe]);
    let (status, body) = host.send(bad_utf8).await;
    assert_error(status, &body, 400, "invalid_workflow_source");

    // A workflow deployed through the API is the same component, written as
    // its source; a broken one changes nothing.
    let put_markdown = |body: String| {
        host.http
            .put(format!("{}/api/skills/esc", host.url))
            .header("content-type", "text/markdown")
            .body(body)
    };
    let (status, body) = host.send(put_markdown(broken.clone())).await;
    assert_error(status, &body, 422, "invalid_workflow");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("esc.workflow.md:49:17"),
        "{body}"
    );
    assert!(!dirs.skills.join("esc.workflow.md").exists());
    assert!(host.skill("esc").await.is_null());
    let (status, published) = host.send(put_markdown(source.clone())).await;
    assert_eq!(status, 201, "{published}");
    assert_eq!(published["sha256"], json!(sha));
    assert_eq!(
        std::fs::read_to_string(dirs.skills.join("esc.workflow.md")).unwrap(),
        source
    );

    // A component over a workflow replaces it; a rollback brings it back.
    let (status, _) = host.put("esc", wasm("echo")).await;
    assert_eq!(status, 201);
    assert!(dirs.skills.join("esc.wasm").exists());
    assert!(!dirs.skills.join("esc.workflow.md").exists());
    assert_eq!(
        host.invoke("esc", r#"{"echo": 1}"#).await,
        (200, json!({"echo": 1}))
    );
    let (status, back) = host.rollback("esc").await;
    assert_eq!((status, &back["sha256"]), (200, &json!(sha)), "{back}");
    assert!(!dirs.skills.join("esc.wasm").exists());
    assert_eq!(
        std::fs::read_to_string(dirs.skills.join("esc.workflow.md")).unwrap(),
        source
    );
    let skill = host
        .wait_for("esc", "the workflow again", |s| s["status"] == "ready")
        .await;
    assert_eq!(skill["sha256"], json!(sha));
    assert_eq!(skill["history"][0]["workflow"], true);
}

#[tokio::test]
async fn a_name_with_both_files_is_refused_and_the_old_version_serves() {
    let dirs = Dirs::new();
    dirs.install("twice", &wasm("echo"));
    let host = Host::start(&dirs, &[]);
    host.wait_for("twice", "to load", |s| s["status"] == "ready")
        .await;
    install(&dirs, "twice", &example("blocked-escalator"));
    let skill = host
        .wait_for_error("twice", "both `twice.wasm` and `twice.workflow.md`")
        .await;
    assert_eq!(skill["status"], "degraded");
    assert_eq!(host.invoke("twice", "[1]").await, (200, json!([1])));
}

#[tokio::test]
async fn the_cli_checks_compiles_and_tests_without_a_host() {
    let dirs = Dirs::new();
    let good = dirs.skills.join("esc.workflow.md");
    std::fs::write(&good, example("blocked-escalator")).unwrap();
    let bad = dirs.skills.join("bad.workflow.md");
    std::fs::write(
        &bad,
        example("blocked-escalator").replace("input.hours * 3600", "input.hour * 3600"),
    )
    .unwrap();
    let unused = "http://127.0.0.1:9";

    let (ok, _, stderr) = run_cli(unused, &["workflow", "check", good.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("esc.workflow.md: ok"), "{stderr}");
    let (ok, stdout, stderr) = run_cli(unused, &["workflow", "check", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("error: `input` has no field `hour`"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.workflow.md:31:"), "{stderr}");
    assert!(stderr.contains("did you mean `hours`?"), "{stderr}");
    assert!(stdout.is_empty());
    let (ok, stdout, _) = run_cli(
        unused,
        &["workflow", "check", "--json", bad.to_str().unwrap()],
    );
    assert!(!ok);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["diagnostics"][0]["line"], 31);

    let out = dirs.skills.join("esc.wasm");
    let (ok, stdout, stderr) = run_cli(
        unused,
        &[
            "workflow",
            "compile",
            good.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("compiled `esc`"), "{stdout}");
    let bytes = std::fs::read(&out).unwrap();
    assert!(stdout.contains(&sha256(&bytes)), "{stdout}");
    let (ok, stdout, _) = run_cli(unused, &["inspect", out.to_str().unwrap()]);
    assert!(ok);
    assert!(stdout.contains("source_sha256"), "{stdout}");

    let (ok, stdout, stderr) = run_cli(unused, &["workflow", "test", good.to_str().unwrap()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("3 passed, 0 failed"), "{stdout}");
    let failing = dirs.skills.join("failing.workflow.md");
    std::fs::write(
        &failing,
        example("blocked-escalator").replace("ids = [\"17\", \"23\"]", "ids = [\"23\", \"17\"]"),
    )
    .unwrap();
    let (ok, stdout, _) = run_cli(unused, &["workflow", "test", failing.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stdout.contains("FAIL  two cards blocked for days"),
        "{stdout}"
    );
    assert!(stdout.contains("2 passed, 1 failed"), "{stdout}");
}

#[tokio::test]
async fn a_workflow_calls_other_skills_it_is_granted_and_no_deeper_than_four() {
    let dirs = Dirs::new();
    dirs.install("text-stats", &wasm("text-stats"));
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(&dirs, &[]);
    host.wait_for("text-stats", "to load", |s| s["status"] == "ready")
        .await;

    let counter = "+++\ndescription = \"Counts words through text-stats.\"\n[capabilities]\nskills = [\"text-stats\"]\n[input]\ntext = \"string\"\n+++\n## Steps\n```workflow\nlet stats = skills.invoke(name: \"text-stats\", input: { text: input.text })\nreturn { words: stats.words, sentences: stats.sentences }\n```\n";
    install(&dirs, "counter", counter);
    host.wait_for("counter", "to load", |s| s["status"] == "ready")
        .await;
    let (status, out) = host
        .invoke("counter", r#"{"text": "Ship it. Then watch the board."}"#)
        .await;
    assert_eq!((status, out), (200, json!({"words": 6, "sentences": 2})));
    // The callee's input schema and errors reach the caller as errors.
    let skill = host.skill("counter").await;
    assert_eq!(skill["manifest"]["skills"], json!(["text-stats"]));

    // A literal name outside the grant is a compile error, with a hint.
    let (_, report) = host
        .send(
            host.http
                .post(format!("{}/api/workflows/check?name=x", host.url))
                .body(counter.replace("name: \"text-stats\"", "name: \"echo\"")),
        )
        .await;
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["diagnostics"][0]["message"],
        "skill `echo` is not in the front matter's `skills`"
    );

    // A name computed at run time is checked by the host against the grant.
    let sneaky = counter.replace("name: \"text-stats\"", "name: \"ec\" + \"ho\"");
    install(&dirs, "sneaky", &sneaky);
    host.wait_for("sneaky", "to load", |s| s["status"] == "ready")
        .await;
    let (status, body) = host.invoke("sneaky", r#"{"text": "x"}"#).await;
    assert_error(status, &body, 422, "skills-denied");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may not call `echo`"),
        "{body}"
    );

    // A workflow that calls itself stops at the fourth level.
    let recursive = "+++\ndescription = \"Calls itself.\"\n[capabilities]\nskills = [\"again\"]\n+++\n## Steps\n```workflow\nreturn skills.invoke(name: \"again\", input: {})\n```\n";
    install(&dirs, "again", recursive);
    host.wait_for("again", "to load", |s| s["status"] == "ready")
        .await;
    let (status, body) = host.invoke("again", "{}").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nest 4 deep at most"),
        "{body}"
    );
    // The host is unharmed.
    assert_eq!(host.invoke("echo", "[1]").await, (200, json!([1])));
}
