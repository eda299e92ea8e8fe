//! Skills in Python (componentize-py) and JavaScript (componentize-js),
//! built the way their authors build them (`make lang-skills`): they load
//! with only the grants they use, what they were not granted answers
//! `denied`, their outgoing HTTP reaches only the hosts their manifest
//! lists, and their errors come back readable.

use crate::harness::{lang_skill, Dirs, Host};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A loopback web server the skills call: what a skill's external API is.
struct Origin {
    port: u16,
    requests: Arc<AtomicUsize>,
}

async fn origin() -> Origin {
    use axum::routing::get;
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A port nobody is allowed to reach: where the redirect points.
    let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere_port = elsewhere.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/greeting", get(|| async { "hello from the origin" }))
        .route(
            "/redirect",
            get(move || async move {
                (
                    axum::http::StatusCode::FOUND,
                    [(
                        axum::http::header::LOCATION,
                        format!("http://127.0.0.1:{elsewhere_port}/greeting"),
                    )],
                    "moved",
                )
            }),
        )
        .route("/big", get(|| async { "x".repeat(2 << 20) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let count = count.clone();
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let other = axum::Router::new().route("/greeting", get(|| async { "should not be reached" }));
    tokio::spawn(async move { axum::serve(elsewhere, other).await });
    Origin { port, requests }
}

const LANGS: [(&str, &str); 2] = [("notes-py", "python"), ("notes-js", "javascript")];

fn install(dirs: &Dirs, name: &str, sidecar: &str) {
    std::fs::write(dirs.skills.join(format!("{name}.toml")), sidecar).unwrap();
    dirs.install(name, &lang_skill(name));
}

/// Waits (as long as a Python compile takes on a busy machine) until the
/// skill serves a version whose manifest satisfies `check`.
async fn wait_serving(host: &Host, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let skill = host.skill(name).await;
        if skill["status"] == "ready" && check(&skill) {
            return skill;
        }
        if started.elapsed() > Duration::from_secs(90) {
            panic!("{name} did not load: {skill:#}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invoke(host: &Host, name: &str, input: Value) -> (u16, Value) {
    host.invoke(name, &input.to_string()).await
}

#[tokio::test]
async fn python_and_javascript_skills_load_with_only_the_grants_they_use() {
    let origin = origin().await;
    let port = origin.port;
    let dirs = Dirs::new();
    let sidecar = format!(
        "memory_read = [\"agent\"]\nmemory_write = [\"agent\"]\n\
         allowed_outbound_hosts = [\"http://127.0.0.1:{port}\"]\n"
    );
    // Dropped into a running host: `loading` while they compile (seconds,
    // for components of 12-18 MB), never `failed`.
    let host = Host::start(&dirs, &[]);
    for (name, _) in LANGS {
        install(&dirs, name, &sidecar);
    }
    let mut seen = std::collections::BTreeSet::new();
    let started = Instant::now();
    while LANGS
        .iter()
        .any(|(name, _)| !seen.contains(&(*name, "ready".to_string())))
    {
        for (name, _) in LANGS {
            let status = host.skill(name).await["status"]
                .as_str()
                .unwrap_or("absent")
                .to_string();
            seen.insert((name, status));
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (name, _) in LANGS {
        assert!(seen.contains(&(name, "loading".to_string())), "{seen:?}");
        assert!(!seen.contains(&(name, "failed".to_string())), "{seen:?}");
    }
    for (name, language) in LANGS {
        let skill = wait_serving(&host, name, |_| true).await;
        // Loaded although the component imports board, fleet and skills;
        // those are listed, and their calls answer `denied`.
        let ungranted: Vec<&str> = skill["ungranted_imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for interface in ["board", "fleet", "skills"] {
            let import = format!("darkfactory:skill/{interface}@0.1.0");
            assert!(
                ungranted.contains(&import.as_str()),
                "{name}: {ungranted:?}"
            );
        }
        assert!(
            !ungranted
                .iter()
                .any(|i| i.contains("memory") || i.contains("http")),
            "{name}: {ungranted:?}"
        );
        assert!(skill["compile_ms"].as_f64().unwrap() > 0.0, "{skill:#}");
        assert_eq!(skill["compiled_from_cache"], false);

        let before = origin.requests.load(Ordering::SeqCst);
        let (status, out) = invoke(
            &host,
            name,
            json!({
                "text": format!("the {language} skill keeps this note"),
                "urls": [
                    format!("http://127.0.0.1:{port}/greeting"),
                    // Loopback under another name, and another port: not listed.
                    format!("http://localhost:{port}/greeting"),
                    format!("http://127.0.0.1:{}/greeting", port + 1),
                ],
            }),
        )
        .await;
        assert_eq!(status, 200, "{name}: {out:#}");
        assert_eq!(out["language"], language);
        assert!(
            out["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{out:#}"
        );
        assert_eq!(out["hits"], 1, "{out:#}");
        assert_eq!(out["board"], "denied", "{out:#}");
        let http = out["http"].as_array().unwrap();
        assert_eq!(http[0]["status"], 200, "{out:#}");
        assert_eq!(http[0]["body"], "hello from the origin");
        assert!(http[1]["error"].is_string(), "{name}: {out:#}");
        assert!(http[2]["error"].is_string(), "{name}: {out:#}");
        if language == "python" {
            // The guest sees the WASI error code itself.
            assert_eq!(http[1]["error"], "HttpRequestDenied", "{out:#}");
        }
        assert_eq!(
            origin.requests.load(Ordering::SeqCst) - before,
            1,
            "only the listed host was reached"
        );
    }
    let log = std::fs::read_to_string(dirs.log_path()).unwrap();
    assert!(
        log.contains("not in the skill's `allowed_outbound_hosts`"),
        "the host log says why a request was refused"
    );
    assert!(
        log.contains(
            "imports `darkfactory:skill/board@0.1.0` but its manifest grants no board list"
        ),
        "the load log warns of the ungranted imports"
    );

    // Errors: the skill's own, and an uncaught exception with its output.
    for (name, _) in LANGS {
        let (status, out) = invoke(&host, name, json!({"fail": "error"})).await;
        assert_eq!(status, 422, "{name}: {out:#}");
        assert_eq!(out["error"]["code"], "bad-input");
        assert_eq!(out["error"]["message"], "asked to fail");
    }
    let (status, out) = invoke(&host, "notes-py", json!({"fail": "crash"})).await;
    assert_eq!(status, 500, "{out:#}");
    assert_eq!(out["error"]["code"], "trap");
    let stderr = out["error"]["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("Traceback") && stderr.contains("ValueError: notes-py was asked to crash"),
        "{stderr}"
    );
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("ValueError"));
    // A JavaScript `Error` turned into a skill error by the skill itself...
    let (status, out) = invoke(&host, "notes-js", json!({"fail": "crash"})).await;
    assert_eq!(
        (status, &out["error"]["code"]),
        (422, &json!("exception")),
        "{out:#}"
    );
    assert!(out["error"]["message"]
        .as_str()
        .unwrap()
        .contains("notes-js was asked to crash"));
    // ...and a thrown value the component cannot answer: a trap, with what
    // the JavaScript runtime printed.
    let (status, out) = invoke(&host, "notes-js", json!({"fail": "abort"})).await;
    assert_eq!(status, 500, "{out:#}");
    assert!(
        out["error"]["stderr"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{out:#}"
    );

    // A restart loads both from the artifact cache, and says so.
    host.stop();
    let host = Host::start(&dirs, &[]);
    for (name, _) in LANGS {
        let skill = wait_serving(&host, name, |_| true).await;
        assert_eq!(skill["compiled_from_cache"], true, "{skill:#}");
    }
    host.stop();
}

#[tokio::test]
async fn outgoing_http_is_held_to_its_list_its_budget_and_its_deadline() {
    let origin = origin().await;
    let port = origin.port;
    let dirs = Dirs::new();
    let base = format!("http://127.0.0.1:{port}");
    let grant = |extra: &str| {
        format!(
            "allowed_outbound_hosts = [\"http://127.0.0.1:{port}\"]\ndeadline_ms = 2000\n{extra}"
        )
    };
    install(&dirs, "notes-py", &grant("outbound_requests = 2\n"));
    install(&dirs, "notes-js", &grant("outbound_mib = 1\n"));
    let host = Host::start(&dirs, &[]);
    wait_serving(&host, "notes-py", |_| true).await;
    wait_serving(&host, "notes-js", |_| true).await;

    // Redirects are not followed by the host: the guest sees the 302 (the
    // `fetch` of componentize-js does not follow it either); a request to
    // where it points would be checked against the list like any other.
    for name in ["notes-py", "notes-js"] {
        let before = origin.requests.load(Ordering::SeqCst);
        let (_, out) = invoke(&host, name, json!({"urls": [format!("{base}/redirect")]})).await;
        assert_eq!(out["http"][0]["status"], 302, "{name}: {out:#}");
        assert_eq!(origin.requests.load(Ordering::SeqCst) - before, 1);
    }

    // At most `outbound_requests` requests per call.
    let greeting = format!("{base}/greeting");
    let (_, out) = invoke(
        &host,
        "notes-py",
        json!({"urls": [greeting.clone(), greeting.clone(), greeting.clone()]}),
    )
    .await;
    assert_eq!(out["http"][1]["status"], 200, "{out:#}");
    assert_eq!(out["http"][2]["error"], "ConnectionLimitReached", "{out:#}");
    // The next call has its own budget.
    let (_, out) = invoke(&host, "notes-py", json!({"urls": [greeting.clone()]})).await;
    assert_eq!(out["http"][0]["status"], 200, "{out:#}");

    // At most `outbound_mib` of bodies: 2 MiB with a budget of 1.
    let (status, out) = invoke(&host, "notes-js", json!({"urls": [format!("{base}/big")]})).await;
    assert_eq!(status, 200, "{out:#}");
    assert!(out["http"][0]["error"].is_string(), "{out:#}");

    // A request never outlives the call's deadline (2 s here).
    for name in ["notes-py", "notes-js"] {
        let started = Instant::now();
        let (status, out) = invoke(&host, name, json!({"urls": [format!("{base}/slow")]})).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(4),
            "{name} took {took:?}: {status} {out:#}"
        );
        assert!(
            status == 504 || out["http"][0]["error"].is_string(),
            "{name}: {status} {out:#}"
        );
    }

    // `*` reaches public addresses only: loopback by address or by a name
    // that resolves to it (what a DNS rebinding looks like) is refused.
    std::fs::write(
        dirs.skills.join("notes-py.toml"),
        format!("allowed_outbound_hosts = [\"http://*:{port}\"]\n"),
    )
    .unwrap();
    wait_serving(&host, "notes-py", |s| {
        s["manifest"]["allowed_outbound_hosts"][0] == format!("http://*:{port}")
    })
    .await;
    let before = origin.requests.load(Ordering::SeqCst);
    let (_, out) = invoke(
        &host,
        "notes-py",
        json!({"urls": [greeting.clone(), format!("http://localhost:{port}/greeting")]}),
    )
    .await;
    assert_eq!(
        out["http"][0]["error"], "DestinationIpProhibited",
        "{out:#}"
    );
    assert_eq!(
        out["http"][1]["error"], "DestinationIpProhibited",
        "{out:#}"
    );
    assert_eq!(origin.requests.load(Ordering::SeqCst), before);

    // A bad entry is refused at load with the entry, and the last good
    // version keeps serving.
    std::fs::write(
        dirs.skills.join("notes-py.toml"),
        "allowed_outbound_hosts = [\"127.0.0.1\"]\n",
    )
    .unwrap();
    let error = host.error_of("notes-py", "allowed_outbound_hosts").await;
    assert!(error.contains("has no scheme"), "{error}");
    assert_eq!(host.skill("notes-py").await["status"], "degraded");
    host.stop();
}

#[tokio::test]
async fn strict_imports_refuse_what_is_not_granted_and_unknown_imports_say_what_is_served() {
    let dirs = Dirs::new();
    std::fs::write(
        dirs.skills.join("notes-py.toml"),
        "memory_read = [\"agent\"]\n",
    )
    .unwrap();
    dirs.install("notes-py", &lang_skill("notes-py"));
    // A component that imports an interface no host of this version serves.
    let keyvalue = wat::parse_str(
        r#"(component
  (import "darkfactory:skill/types@0.1.0" (instance $types
    (type $shape (record (field "code" string) (field "message" string)))
    (export "skill-error" (type (eq $shape)))))
  (import "wasi:keyvalue/store@0.2.0" (instance))
)"#,
    )
    .unwrap();
    dirs.install("keyvalue", &keyvalue);
    let host = Host::start(&dirs, &["--strict-imports"]);
    let error = host.error_of("notes-py", "--strict-imports").await;
    assert!(
        error.contains("imports `darkfactory:skill/board@0.1.0`")
            || error.contains("imports `darkfactory:skill/fleet@0.1.0`")
            || error.contains("imports `wasi:http/outgoing-handler@0.2.12`"),
        "{error}"
    );
    let error = host.error_of("keyvalue", "does not serve").await;
    assert!(
        error.contains("`wasi:keyvalue/store@0.2.0`")
            && error.contains("it serves darkfactory:skill@0.1"),
        "{error}"
    );
    host.stop();
}
