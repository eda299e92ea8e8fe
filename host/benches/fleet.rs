//! Benchmarks of the fleet registry, printed as a table (see
//! docs/benchmarks.md): `make bench` runs them, or
//! `cargo bench -p darkfactory --bench fleet` alone.
//!
//! 1. routing latency with `BENCH_FLEET_AGENTS` registered agents (default
//!    1 000; goal p99 ≤ 1 ms embedded): tasks as a skill tag, in words, and
//!    with a required skill, through `Fleet::route` (score every agent, draw
//!    two, count the route);
//! 2. heartbeats accepted per second through `Fleet::heartbeat` (checked
//!    and written through to SQLite), one caller and 32 at once, and over
//!    HTTP (`POST /api/fleet/heartbeat`, 32 keep-alive clients);
//! 3. the same route and heartbeat figures on Redis, when `redis-server` is
//!    installed (a server on a loopback port, started and stopped here).
//!
//! Agents are generated deterministically: each has 3 to 8 skill tags and
//! two specialties drawn from fixed vocabularies, and a load in [0, 0.9].

#[path = "support/percentile.rs"]
mod percentile;
use percentile::percentile;
#[path = "../../tests/support/redis_server.rs"]
mod redis_server;
#[path = "support/rng.rs"]
mod rng;

use darkfactory::capabilities::fleet::{
    EmbeddedFleet, Fleet, FleetBackend, Heartbeat, RedisConfig, RedisFleet, RouteRequest,
};
use darkfactory::registry::RegistryConfig;
use darkfactory::server::{Server, ServerConfig};
use rng::Rng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SKILLS: [&str; 24] = [
    "research",
    "planka",
    "m2-memory",
    "browser",
    "ci",
    "deploy",
    "triage",
    "billing",
    "support",
    "translation",
    "summarise",
    "code-review",
    "testing",
    "security",
    "data",
    "sql",
    "python",
    "rust",
    "design",
    "writing",
    "scheduling",
    "email",
    "search",
    "monitoring",
];
const SPECIALTIES: [&str; 12] = [
    "literature review",
    "data analysis",
    "release engineering",
    "incident response",
    "customer onboarding",
    "market research",
    "technical writing",
    "cost optimisation",
    "query tuning",
    "threat modelling",
    "load testing",
    "accessibility audits",
];
const TASKS: [(&str, &[&str]); 6] = [
    ("research", &[]),
    (
        "literature review of retrieval augmented generation papers",
        &[],
    ),
    ("tune the slow billing queries", &["sql"]),
    ("incident response for the failing deploy", &[]),
    ("code-review", &[]),
    ("write the onboarding email for new customers", &["email"]),
];

fn agent(i: usize, rng: &mut Rng) -> Heartbeat {
    let n = 3 + (rng.next() % 6) as usize;
    Heartbeat {
        agent: format!("agent-{i:04}"),
        skills: (0..n).map(|_| rng.pick(&SKILLS).to_string()).collect(),
        current_task: Some(format!("task {i}")),
        load: (rng.next() % 91) as f64 / 100.0,
        specialties: (0..2).map(|_| rng.pick(&SPECIALTIES).to_string()).collect(),
        last_heartbeat: None,
        interval_seconds: None,
    }
}

fn fmt_us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

async fn fill(fleet: &Fleet, agents: usize) {
    let mut rng = Rng(0x5eed);
    for i in 0..agents {
        fleet.heartbeat(agent(i, &mut rng)).await.unwrap();
    }
}

async fn routes(label: &str, fleet: &Fleet, agents: usize) {
    let mut samples = Vec::new();
    for round in 0..3_000 {
        let (task, required) = TASKS[round % TASKS.len()];
        let request = RouteRequest {
            task: task.to_string(),
            required_skills: required.iter().map(|s| s.to_string()).collect(),
        };
        let t = Instant::now();
        let _ = fleet.route(request).await;
        samples.push(t.elapsed());
    }
    samples.sort();
    println!(
        "| {label} | {agents} | {} | {} | {} | {} |",
        samples.len(),
        fmt_us(percentile(&samples, 0.5)),
        fmt_us(percentile(&samples, 0.99)),
        fmt_us(*samples.last().unwrap())
    );
}

async fn heartbeats(label: &str, fleet: Arc<Fleet>, agents: usize) {
    let mut rng = Rng(0xbeef);
    let beats: Vec<Heartbeat> = (0..agents).map(|i| agent(i, &mut rng)).collect();
    let n = 20_000;
    let t = Instant::now();
    for i in 0..n {
        fleet.heartbeat(beats[i % agents].clone()).await.unwrap();
    }
    let one = n as f64 / t.elapsed().as_secs_f64();
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|w| {
            let (fleet, beats, done) = (fleet.clone(), beats.clone(), done.clone());
            tokio::spawn(async move {
                for i in (w..n).step_by(32) {
                    fleet
                        .heartbeat(beats[i % beats.len()].clone())
                        .await
                        .unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let many = done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
    println!("| {label} | 1 | {one:.0} |");
    println!("| {label} | 32 | {many:.0} |");
}

async fn http_heartbeats(agents: usize) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("skills")).unwrap();
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        RegistryConfig::new(dir.path().join("skills"), dir.path().join("data")),
    );
    let server = Server::start(config).await.unwrap();
    server.registry.wait_ready().await;
    let url = format!("http://{}/api/fleet/heartbeat", server.local_addr);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    let mut rng = Rng(0xfeed);
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..agents)
            .map(|i| serde_json::to_string(&agent(i, &mut rng)).unwrap())
            .collect(),
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()
        .unwrap();
    let n = 20_000;
    let failed = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|w| {
            let (client, url, bodies, failed) =
                (client.clone(), url.clone(), bodies.clone(), failed.clone());
            tokio::spawn(async move {
                for i in (w..n).step_by(32) {
                    let ok = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(bodies[i % bodies.len()].clone())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "| embedded, HTTP `POST /api/fleet/heartbeat` | 32 | {rate:.0} ({} failed) |",
        failed.load(Ordering::Relaxed)
    );
    let _ = stop.send(());
}

fn redis_available() -> bool {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn main() {
    let agents: usize = std::env::var("BENCH_FLEET_AGENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("# darkfactory fleet benchmarks");
        let dir = tempfile::tempdir().unwrap();
        let embedded: Arc<dyn FleetBackend> =
            Arc::new(EmbeddedFleet::open(&dir.path().join("fleet.db")).unwrap());
        let fleet = Arc::new(Fleet::new(embedded, Duration::from_secs(60), Some(1)));
        fill(&fleet, agents).await;
        let redis = if redis_available() {
            let server = redis_server::RedisServer::start();
            let backend: Arc<dyn FleetBackend> =
                Arc::new(RedisFleet::new(RedisConfig::new(server.url())).unwrap());
            let fleet = Arc::new(Fleet::new(backend, Duration::from_secs(60), Some(1)));
            fill(&fleet, agents).await;
            Some((server, fleet))
        } else {
            None
        };

        println!("\n## 1. route a task (score every agent, draw two, count the route)");
        println!("| backend | agents | routes | p50 | p99 | max |");
        println!("|---|---|---|---|---|---|");
        routes("embedded", &fleet, agents).await;
        if let Some((_, fleet)) = &redis {
            routes("redis (loopback)", fleet, agents).await;
        }

        println!("\n## 2. heartbeats accepted per second");
        println!("| path | concurrent callers | heartbeats/s |");
        println!("|---|---|---|");
        heartbeats("embedded, `Fleet::heartbeat`", fleet.clone(), agents).await;
        if let Some((_, fleet)) = &redis {
            heartbeats(
                "redis (loopback), `Fleet::heartbeat`",
                fleet.clone(),
                agents,
            )
            .await;
        }
        http_heartbeats(agents).await;
        if redis.is_none() {
            println!("\n(redis-server is not installed: the Redis rows were skipped)");
        }
    });
}
