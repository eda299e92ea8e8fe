//! The HTTP API against its own contract: the OpenAPI document the host
//! serves is the one committed as `docs/openapi.json`, and Schemathesis,
//! fuzzing every operation of it against a real host with a token, finds
//! no answer outside it (no undocumented status or 5xx, no body off its
//! schema, no error off `{"error":{"code","message"}}`, no code the
//! document does not name) and no schema-valid request refused. What the
//! host stored before the run is all still there after it.
//!
//! Schemathesis comes from PyPI (`make api-tools`, which `make test` runs);
//! `SCHEMATHESIS` names another binary, `CONTRACT_SEED` another seed.

use crate::harness::{target_dir, wasm, Dirs, Host};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const TOKEN: &str = "contract-token";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schemathesis() -> PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("api-tools/venv/bin/schemathesis"))
}

async fn send(host: &Host, request: reqwest::RequestBuilder) -> (u16, Value) {
    host.send(request.bearer_auth(TOKEN)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_holds_its_contract_under_a_fuzzer() {
    let dirs = Dirs::new();
    for skill in ["echo", "text-stats"] {
        dirs.install(skill, &wasm(skill));
    }
    let host = Host::start(&dirs, &["--token", TOKEN]);

    let (status, served) = host.get("/api/openapi.json").await;
    assert_eq!(status, 200);
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap())
            .unwrap();
    assert!(
        served == committed,
        "docs/openapi.json is not what the host serves: \
         run `./target/release/darkfactory openapi > docs/openapi.json`"
    );

    // What is stored before the run; the fuzzer is pointed at the first
    // card, the agent and the `echo` skill (tests/contract/schemathesis.toml).
    let http = &host.http;
    let (status, memory) = send(
        &host,
        http.post(format!("{}/api/memory", host.url))
            .json(&json!({"text": "the release key lives in the vault", "namespace": "org"})),
    )
    .await;
    assert_eq!(status, 201, "{memory}");
    let (status, card) = send(
        &host,
        http.post(format!("{}/api/board/cards", host.url))
            .json(&json!({"title": "Contract card", "labels": ["contract"]})),
    )
    .await;
    assert_eq!((status, card["id"].as_str()), (201, Some("1")), "{card}");
    let (status, agent) = send(
        &host,
        http.post(format!("{}/api/fleet/heartbeat", host.url))
            .json(&json!({"agent": "contract-agent", "skills": ["research"], "load": 0.2})),
    )
    .await;
    assert_eq!(status, 200, "{agent}");
    let sha_before = host.skill("echo").await["sha256"].clone();
    let stats_before = host.skill("text-stats").await["sha256"].clone();

    let seed = std::env::var("CONTRACT_SEED").unwrap_or_else(|_| "20261201".into());
    let contract = repo().join("tests/contract");
    let run = Command::new(schemathesis())
        .current_dir(&contract)
        .env("PYTHONPATH", &contract)
        .env("NO_COLOR", "1")
        // Nothing written into the checkout.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env(
            "HYPOTHESIS_STORAGE_DIRECTORY",
            target_dir().join("api-tools/hypothesis"),
        )
        .args([
            "run",
            &format!("{}/api/openapi.json", host.url),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "40",
            "--seed",
            &seed,
            "--no-color",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); install it with `make api-tools`",
                schemathesis().display()
            )
        });
    let report = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "Schemathesis found answers outside the contract (seed {seed}):\n{report}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(report.contains("passed"), "{report}");

    // Nothing stored before the run is lost, and the skills still serve the
    // versions they served (a fuzzed upload never replaces a good one).
    let id = memory["id"].as_str().unwrap();
    let (status, kept) = host.get(&format!("/api/memory/{id}")).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["text"], "the release key lives in the vault");
    let (status, board) = host.get("/api/board").await;
    assert_eq!(status, 200);
    let cards: Vec<&Value> = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["cards"].as_array().unwrap())
        .collect();
    assert!(cards.iter().any(|c| c["id"] == "1"), "{board}");
    let (status, agent) = host.get("/api/capabilities/contract-agent").await;
    assert_eq!(status, 200, "{agent}");
    assert_eq!(host.skill("echo").await["sha256"], sha_before);
    assert_eq!(host.skill("text-stats").await["sha256"], stats_before);
    let (status, echoed) = send(
        &host,
        http.post(format!("{}/api/skills/echo/invoke", host.url))
            .json(&json!({"still": "here"})),
    )
    .await;
    assert_eq!(
        (status, &echoed["still"]),
        (200, &json!("here")),
        "{echoed}"
    );
    host.stop();
}
