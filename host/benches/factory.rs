//! Benchmarks of the factory's watch, printed as a table (see
//! docs/benchmarks.md): `make bench` runs them, or
//! `cargo bench -p darkfactory --bench factory` alone.
//!
//! 1. one evaluation of `BENCH_RULES` rules (default 1 000) over
//!    `BENCH_SERIES` series (default 10 000: ten label sets per rule's
//!    series, six samples each in the window), through `Factory::evaluate`
//!    with no monitors (goal ≤ 50 ms);
//! 2. samples pushed per second over HTTP (`POST /api/kpis/samples`,
//!    batches of 1 000, 8 keep-alive clients, `BENCH_SECONDS` long; goal
//!    ≥ 50 000 a second);
//! 3. from the end of a rule's `for` to its card: the evaluation at which
//!    the gap fires, card included (goal ≤ one evaluation + 100 ms);
//! 4. from a gap firing to its proposal verified and its approval
//!    requested, `BENCH_PROPOSALS` times (default 100), on a host started
//!    in-process on a manual clock: with the offline synthesiser (goal p50
//!    and p99 ≤ 1 s), and with a model (a loopback chat-completions server
//!    that answers a fix after `BENCH_MODEL_MS`, default 0), the model's
//!    time reported apart from the host's.

use darkfactory::capabilities::board::{BoardBackend, EmbeddedBoard};
use darkfactory::capabilities::kpi::{KpiConfig, KpiStore, NewSample};
use darkfactory::capabilities::Clock;
use darkfactory::factory::gaps::GapStore;
use darkfactory::factory::{Factory, FactoryConfig};
use darkfactory::registry::RegistryConfig;
use darkfactory::server::{Server, ServerConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T0: u64 = 1_800_000_000_000;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn evaluation(rules: usize, series: usize) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(T0);
    let kpi = Arc::new(
        KpiStore::open(
            &dir.path().join("kpi.db"),
            KpiConfig::default(),
            clock.clone(),
        )
        .unwrap(),
    );
    let per_rule = (series / rules).max(1);
    let mut batch = Vec::new();
    for r in 0..rules {
        for l in 0..per_rule {
            for s in 0..6u64 {
                batch.push(NewSample {
                    name: format!("bench.series_{r}"),
                    // Under the threshold, but for one label set of every
                    // hundredth rule.
                    value: if l == 0 && r % 100 == 0 { 5.0 } else { 1.0 },
                    at: Some(T0 - s * 60_000),
                    labels: [("agent".to_string(), format!("agent-{l}"))].into(),
                });
            }
        }
        if batch.len() >= 50_000 {
            kpi.push(std::mem::take(&mut batch)).await.unwrap();
        }
    }
    kpi.push(batch).await.unwrap();
    let mut file = String::new();
    for r in 0..rules {
        file.push_str(&format!(
            "[[rule]]\nname = \"rule-{r}\"\nseries = \"bench.series_{r}\"\nby = [\"agent\"]\n\
             aggregate = \"avg\"\nwindow = \"10m\"\nfire = \"> 2\"\nfor = \"5m\"\n\n"
        ));
    }
    let rules_path = dir.path().join("rules.toml");
    std::fs::write(&rules_path, file).unwrap();
    let board: Arc<dyn BoardBackend> =
        Arc::new(EmbeddedBoard::open(&dir.path().join("board.db")).unwrap());
    let gaps = GapStore::open(&dir.path().join("gaps.db")).unwrap();
    let factory = Factory::new(
        kpi.clone(),
        board,
        gaps,
        Vec::new(),
        Default::default(),
        FactoryConfig {
            rules_file: Some(rules_path),
            rules_required: true,
            ..FactoryConfig::default()
        },
    )
    .unwrap();
    // Where the time goes: the store's reads alone.
    let mut reads_took = Vec::new();
    for _ in 0..5 {
        let reads: Vec<_> = (0..rules)
            .map(|r| {
                (
                    format!("bench.series_{r}"),
                    Default::default(),
                    T0 - 600_000,
                    T0,
                )
            })
            .collect();
        let started = Instant::now();
        let answers = kpi.read_many(reads).await;
        reads_took.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(answers.iter().all(Result::is_ok));
    }
    let reads_ms = median(reads_took);
    // The first evaluation opens the pending gaps; the rest only read.
    let first = factory.evaluate().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let pending = first.transitions.len();
    let mut took = Vec::new();
    for _ in 0..7 {
        let report = factory.evaluate().await;
        took.push(report.took_ms);
    }
    println!(
        "| one evaluation: {rules} rules, {} series ({pending} gaps pending) | {:.1} ms (median of 7; first, which opens the gaps: {:.1} ms; of it, reading the windows: {reads_ms:.1} ms) | ≤ 50 ms |",
        kpi.series_count(),
        median(took),
        first.took_ms
    );

    // The end of `for`: five minutes on, the pending gaps fire and their
    // cards are created within that one evaluation.
    clock.advance(5 * 60_000);
    let mut samples = Vec::new();
    for r in (0..rules).step_by(100) {
        samples.push(NewSample {
            name: format!("bench.series_{r}"),
            value: 5.0,
            at: None,
            labels: [("agent".to_string(), "agent-0".to_string())].into(),
        });
    }
    kpi.push(samples).await.unwrap();
    let started = Instant::now();
    let report = factory.evaluate().await;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    let created = report.cards.len();
    println!(
        "| end of `for` to card: the evaluation (of all {rules} rules) that fires {created} gaps and creates their cards | {took:.1} ms ({:.2} ms a card): a card is on the board at most one evaluation interval plus this after its `for` ends | ≤ one evaluation interval + 100 ms |",
        took / created.max(1) as f64
    );
}

async fn http_push(seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        RegistryConfig::new(skills, dir.path().join("data")),
    );
    config.max_body_bytes = 1 << 20;
    let server = Server::start(config).await.unwrap();
    let url = format!("http://{}/api/kpis/samples", server.local_addr);
    tokio::spawn(server.run(std::future::pending()));
    const CLIENTS: usize = 8;
    const BATCH: usize = 1_000;
    let done = Arc::new(AtomicU64::new(0));
    // A day ago, one millisecond a sample from there: within the retention
    // and never ahead of the clock.
    let base = darkfactory::capabilities::now_ms() - 24 * 3_600_000;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, done) = (url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut round = 0u64;
            while Instant::now() < deadline {
                let samples: Vec<serde_json::Value> = (0..BATCH)
                    .map(|i| {
                        serde_json::json!({
                            "name": "bench.push",
                            "value": i as f64,
                            "at": base + round * BATCH as u64 + i as u64,
                            "labels": {"client": format!("c{c}"), "series": format!("s{}", i % 50)},
                        })
                    })
                    .collect();
                let body = serde_json::to_vec(&serde_json::json!({ "samples": samples })).unwrap();
                let r = http.post(&url).body(body).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
                done.fetch_add(BATCH as u64, Ordering::Relaxed);
                round += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!(
        "| samples pushed over HTTP ({CLIENTS} clients, batches of {BATCH}) | {rate:.0} a second | ≥ 50 000 a second |"
    );
}

#[path = "support/percentile.rs"]
mod percentile;

/// The e2e tests' loopback chat-completions server.
#[allow(dead_code)]
#[path = "../../tests/support/llm_stub.rs"]
mod llm_stub;

/// A loopback chat-completions server that answers every request, after
/// `delay`, with a passing fix for the agent its prompt names.
async fn model_server(delay: Duration) -> String {
    let stub = llm_stub::start(move |body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or("");
        let skill = user
            .split("skill name: `")
            .nth(1)
            .and_then(|r| r.split('`').next())
            .unwrap_or("fix")
            .to_string();
        let agent = skill.trim_start_matches("fix-agent-down-");
        let workflow = format!(
            "+++\nname = \"{skill}\"\nversion = \"1.0.0\"\ndescription = \"Tells the card.\"\n\
             trigger = \"gap: agent-down\"\n\n[capabilities]\nboard_write = [\"Backlog\"]\n\n[input]\n\
             agent = {{ type = \"string\", default = \"{agent}\" }}\ncard = {{ type = \"string\", default = \"c\" }}\n\
             +++\n\n# Fix\n\n## Steps\n\n```workflow\nboard.add_comment(card_id: input.card, text: \"Agent {{input.agent}} is down.\")\n\
             return {{ agent: input.agent }}\n```\n\n## Tests\n\n### told\n\n```toml\n[expect]\n\
             output = {{ agent = \"{agent}\" }}\nwrites = [\"board.add_comment\"]\n```\n"
        );
        llm_stub::Reply {
            delay,
            ..llm_stub::Reply::fix(&workflow, "Tells the card.")
        }
    })
    .await;
    stub.url
}

/// From a gap firing to its proposal verified and its approval requested,
/// `n` times: each time a new agent goes down and the evaluation that
/// fires its gap is asked for; the time runs until its approval request
/// exists.
async fn proposals(n: usize, model: Option<Duration>) {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        RegistryConfig::new(skills, dir.path().join("data")),
    );
    config.clock = Clock::manual(T0);
    // Evaluations run when asked.
    config.factory.eval_interval = Duration::from_secs(1_000 * 3600);
    if let Some(delay) = model {
        let url = model_server(delay).await;
        config.llm = Some(darkfactory::capabilities::llm::LlmConfig::new(
            &url,
            "bench-model",
        ));
    }
    let server = Server::start(config).await.unwrap();
    let base = format!("http://{}", server.local_addr);
    tokio::spawn(server.run(std::future::pending()));
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{base}{path}")).json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
            r.json::<Value>().await.unwrap()
        }
    };
    let get = |path: &str| {
        let req = http.get(format!("{base}{path}"));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let mut took = Vec::with_capacity(n);
    let (mut host_ms, mut model_ms, mut gate_ms) = (Vec::new(), Vec::new(), Vec::new());
    let mut by_step = std::collections::BTreeMap::<String, Vec<f64>>::new();
    for i in 0..n {
        let agent = format!("agent-{i}");
        post(
            "/api/fleet/heartbeat",
            json!({"agent": agent, "skills": ["search"], "load": 0.1, "interval_seconds": 60}),
        )
        .await;
        post("/api/clock", json!({"advance_ms": 4 * 60_000})).await;
        let started = Instant::now();
        let report = post("/api/factory/evaluate", json!({})).await;
        assert!(
            report["transitions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t.as_str().unwrap().ends_with("agent-down firing")),
            "{report:#}"
        );
        // Its proposal, and the request for its approval.
        let proposal = loop {
            let page = get("/api/proposals?limit=1").await;
            let p = &page["proposals"][0];
            if p["labels"]["agent"] == agent.as_str() && p["state"] != "synthesising" {
                assert_eq!(p["state"], "awaiting_approval", "{p:#}");
                break p.clone();
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        };
        let full = loop {
            let full = get(&format!("/api/proposals/{}", proposal["id"])).await;
            if !full["approvals"][0].is_null() {
                break full;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        };
        took.push(started.elapsed());
        assert_eq!(full["approvals"][0]["state"], "pending", "{full:#}");
        host_ms.push(full["host_ms"].as_f64().unwrap());
        model_ms.push(full["model_ms"].as_f64().unwrap());
        let steps = full["verification"]["steps"].as_array().unwrap();
        gate_ms.push(
            steps
                .iter()
                .map(|s| s["took_ms"].as_f64().unwrap())
                .sum::<f64>(),
        );
        for s in steps {
            by_step
                .entry(s["step"].as_str().unwrap().to_string())
                .or_default()
                .push(s["took_ms"].as_f64().unwrap());
        }
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = ms(percentile::percentile(&took, 0.50));
    let p99 = ms(percentile::percentile(&took, 0.99));
    let what = match model {
        None => "offline synthesiser".to_string(),
        Some(d) => format!("a model answering in {} ms", d.as_millis()),
    };
    let steps: Vec<String> = darkfactory::factory::verify::STEPS
        .iter()
        .filter_map(|step| {
            let times = by_step.remove(*step)?;
            Some(format!("{step} {:.0}", median(times)))
        })
        .collect();
    println!(
        "| gap firing → proposal verified → approval requested, {what} ({n} gaps; the evaluation that fires each included) | p50 {p50:.0} ms, p99 {p99:.0} ms; per proposal (medians) the host's own time {:.0} ms, of it the gate {:.0} ms ({} ms); the model's {:.0} ms | ≤ 1 s (offline) |",
        median(host_ms),
        median(gate_ms),
        steps.join(", "),
        median(model_ms),
    );
}

#[tokio::main]
async fn main() {
    // cargo bench passes `--bench`; nothing else is read from the line.
    let rules = env("BENCH_RULES", 1_000);
    let series = env("BENCH_SERIES", 10_000);
    let seconds = env("BENCH_SECONDS", 5) as u64;
    println!("| figure | measured | goal |");
    println!("|---|---|---|");
    evaluation(rules, series).await;
    http_push(seconds).await;
    let n = env("BENCH_PROPOSALS", 100);
    proposals(n, None).await;
    let delay = Duration::from_millis(env("BENCH_MODEL_MS", 0) as u64);
    proposals(n, Some(delay)).await;
}
