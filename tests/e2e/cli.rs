//! The CLI: `inspect`, and the client commands against a running host.

use crate::harness::{sha256, wasm, Dirs, Host};
use std::path::Path;
use std::process::{Command, Output};

fn darkfactory(args: &[&str], url: Option<&str>, stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_darkfactory"));
    cmd.args(args).env_remove("DARKFACTORY_TOKEN");
    if let Some(url) = url {
        cmd.env("DARKFACTORY_URL", url);
    }
    match stdin {
        Some(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
        None => cmd.output().unwrap(),
    }
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_shows_what_a_component_is_without_running_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.wasm");
    std::fs::write(&path, wasm("echo")).unwrap();
    std::fs::write(dir.path().join("echo.toml"), "deadline_ms = 42\n").unwrap();
    let out = darkfactory(&["inspect", path.to_str().unwrap()], None, None);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&sha256(&wasm("echo"))), "{stdout}");
    assert!(stdout.contains("exports:\n  run"), "{stdout}");
    assert!(stdout.contains("manifest (embedded + sidecar)"), "{stdout}");
    assert!(stdout.contains("deadline_ms = 42"), "{stdout}");
    assert!(stdout.contains("loadable: yes"), "{stdout}");

    let alien = dir.path().join("alien.wasm");
    std::fs::write(&alien, wasm("alien")).unwrap();
    let out = darkfactory(&["inspect", "--json", alien.to_str().unwrap()], None, None);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["loadable"], false);
    assert!(json["load_error"].as_str().unwrap().contains("teleport"));

    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "junk").unwrap();
    let out = darkfactory(&["inspect", junk.to_str().unwrap()], None, None);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("not WebAssembly"));
}

#[tokio::test]
async fn client_commands_drive_a_running_host() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(&dirs, &[]);
    let url = Some(host.url.as_str());
    let run = |args: &[&str], stdin: Option<&str>| {
        let out = darkfactory(args, url, stdin);
        let (stdout, stderr) = text(&out);
        (out.status.success(), stdout, stderr)
    };

    let (ok, stdout, _) = run(&["skills", "list"], None);
    assert!(ok);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("echo") && l.contains("ready")),
        "{stdout}"
    );

    let (ok, stdout, stderr) = run(&["invoke", "echo", r#"{"a":1}"#], None);
    assert!(ok, "{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
        serde_json::json!({"a": 1})
    );
    let (ok, stdout, _) = run(&["invoke", "echo", "-"], Some(r#"["from stdin"]"#));
    assert!(ok && stdout.contains("from stdin"), "{stdout}");
    let (ok, _, stderr) = run(&["invoke", "nope", "{}"], None);
    assert!(!ok && stderr.contains("skill_not_found (404)"), "{stderr}");

    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/skill");
    let stats = target.join("skill_text_stats.wasm");
    let (ok, stdout, stderr) = run(&["deploy", stats.to_str().unwrap()], None);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("deployed text-stats"), "{stdout}");
    let (ok, _, stderr) = run(&["deploy", stats.to_str().unwrap(), "--name", "echo"], None);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = run(&["rollback", "echo"], None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&sha256(&wasm("echo"))), "{stdout}");
    let (ok, _, stderr) = run(&["rollback", "echo"], None);
    assert!(
        !ok && stderr.contains("nothing_to_roll_back (409)"),
        "{stderr}"
    );
    let (ok, _, _) = run(&["remove", "text-stats"], None);
    assert!(ok);
    assert_eq!(host.invoke("text-stats", "{}").await.0, 404);

    let (ok, _, stderr) = run(&["skills", "list"], Some("")).clone();
    assert!(ok, "{stderr}");
    let out = darkfactory(&["skills", "list"], Some("http://127.0.0.1:1"), None);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("cannot reach the host"));
}

#[tokio::test]
async fn memory_commands_against_a_running_host() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let url = Some(host.url.as_str());
    let run = |args: &[&str]| {
        let out = darkfactory(args, url, None);
        let (stdout, stderr) = text(&out);
        (out.status.success(), stdout, stderr)
    };
    let (ok, id, err) = run(&[
        "memory",
        "store",
        "Deploys need a green CI run",
        "--namespace",
        "org",
        "--meta",
        "kind=rule",
    ]);
    assert!(ok, "{err}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "{id}");
    let (ok, again, _) = run(&[
        "memory",
        "store",
        "deploys need a green CI run",
        "--namespace",
        "org",
    ]);
    assert!(
        ok && again.contains("already stored") && again.contains(&id),
        "{again}"
    );

    let (ok, found, err) = run(&[
        "memory",
        "search",
        "what do deploys need",
        "--namespace",
        "all",
    ]);
    assert!(ok, "{err}");
    assert!(found.contains("Deploys need a green CI run"), "{found}");
    assert!(found.contains(&id) && found.contains("org"), "{found}");
    let (ok, found, _) = run(&[
        "memory",
        "search",
        "deploys",
        "--meta",
        "kind=other",
        "--json",
    ]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&found).unwrap()["hits"],
        serde_json::json!([])
    );

    let (ok, stats, _) = run(&["memory", "stats"]);
    assert!(ok && stats.contains("\"org\": 1"), "{stats}");
    let (ok, _, err) = run(&["memory", "store", "x", "--namespace", "nowhere"]);
    assert!(
        !ok && err.contains("invalid_memory_request (400)") && err.contains("unknown namespace"),
        "{err}"
    );
    let (ok, out, err) = run(&["memory", "forget", &id]);
    assert!(ok && out.contains("forgot"), "{err}");
    let (ok, _, err) = run(&["memory", "forget", &id]);
    assert!(!ok && err.contains("memory_not_found"), "{err}");
}

#[tokio::test]
async fn manifest_embed_puts_a_manifest_into_any_component_and_show_reads_it() {
    let dirs = Dirs::new();
    let work = dirs.data.parent().unwrap().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A component no SDK built (component WAT), and a Rust one whose SDK
    // section the top-level one overrides.
    let plain = work.join("plain.wasm");
    std::fs::write(&plain, crate::components::build(&Default::default())).unwrap();
    let rust = work.join("echo.wasm");
    std::fs::write(&rust, wasm("echo")).unwrap();
    let toml = work.join("manifest.toml");
    std::fs::write(
        &toml,
        "description = \"embedded by the CLI\"\ndeadline_ms = 1234\nskills = []\n",
    )
    .unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_string();

    let out = darkfactory(&["manifest", "show", &arg(&plain)], None, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no `darkfactory:manifest` section"));
    for file in [&plain, &rust] {
        let embedded = work.join(format!(
            "with-{}",
            file.file_name().unwrap().to_str().unwrap()
        ));
        // Once, then again over its own output: still one section, the new one.
        for from in [file, &embedded] {
            let out = darkfactory(
                &[
                    "manifest",
                    "embed",
                    &arg(from),
                    "--from",
                    &arg(&toml),
                    "-o",
                    &arg(&embedded),
                ],
                None,
                None,
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = darkfactory(&["manifest", "show", &arg(&embedded)], None, None);
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("[skill]") && shown.contains("deadline_ms = 1234"),
            "{shown}"
        );
        assert_eq!(shown.matches("[skill]").count(), 1, "{shown}");
        let name = if file == &plain { "plain" } else { "echo" };
        dirs.install(name, &std::fs::read(&embedded).unwrap());
    }
    // A bad manifest is refused before anything is written.
    std::fs::write(&toml, "deadline_ms = 0\n").unwrap();
    let refused = work.join("refused.wasm");
    let out = darkfactory(
        &[
            "manifest",
            "embed",
            &arg(&plain),
            "--from",
            &arg(&toml),
            "-o",
            &arg(&refused),
        ],
        None,
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`deadline_ms` is 0"));
    assert!(!refused.exists());

    // The host reads the embedded manifest, with no sidecar.
    let host = Host::start(&dirs, &[]);
    for name in ["plain", "echo"] {
        let skill = host.skill(name).await;
        assert_eq!(skill["status"], "ready", "{skill:#}");
        assert_eq!(skill["deadline_ms"], 1234, "{skill:#}");
        assert_eq!(skill["manifest"]["description"], "embedded by the CLI");
    }
    host.stop();
}
