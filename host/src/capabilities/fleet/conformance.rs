//! The fleet conformance suite: the same behaviour from the embedded
//! registry and from Redis (a real `redis-server` on a loopback port, see
//! `tests/support/redis_server.rs`), then what only Redis has: several
//! hosts on one registry, and Redis going away and coming back.

use super::*;
use std::sync::atomic::{AtomicU64, Ordering};

#[path = "../../../../tests/support/redis_server.rs"]
mod redis_server;

fn beat(agent: &str, skills: &[&str], load: f64) -> Heartbeat {
    Heartbeat {
        agent: agent.into(),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        current_task: Some("BenchmarkSuite v2 run".into()),
        load,
        specialties: vec!["literature review".into()],
        last_heartbeat: Some(1_772_230_000),
        interval_seconds: None,
    }
}

/// A fleet on `backend` with a clock the test moves.
fn fleet(backend: Arc<dyn FleetBackend>) -> (Fleet, Arc<AtomicU64>) {
    let now = Arc::new(AtomicU64::new(1_772_230_000_000));
    let clock = now.clone();
    let fleet = Fleet::with_clock(
        backend,
        Duration::from_secs(60),
        Some(7),
        Arc::new(move || clock.load(Ordering::Relaxed)),
    );
    (fleet, now)
}

/// What every backend does the same way.
async fn suite(backend: Arc<dyn FleetBackend>) {
    let (fleet, now) = fleet(backend.clone());
    let start = now.load(Ordering::Relaxed);
    let seen = fleet
        .heartbeat(beat("alfred", &["research", "browser"], 0.3))
        .await
        .unwrap();
    assert_eq!(
        (seen.status, seen.heartbeats, seen.first_seen_ms),
        (Status::Up, 1, start)
    );
    assert_eq!(seen.clock_skew_seconds, Some(0));
    fleet
        .heartbeat(beat("bruce", &["deploy"], 0.1))
        .await
        .unwrap();

    // Routing counts toward the agent's load until its next heartbeat.
    let d = fleet
        .route(RouteRequest {
            task: "research".into(),
            required_skills: vec![],
        })
        .await
        .unwrap();
    assert_eq!(d.agent, "alfred");
    assert_eq!(
        fleet.agent("alfred").await.unwrap().routed_since_heartbeat,
        1
    );
    now.fetch_add(30_000, Ordering::Relaxed);
    let again = fleet
        .heartbeat(beat("alfred", &["research"], 0.5))
        .await
        .unwrap();
    assert_eq!(
        (
            again.heartbeats,
            again.first_seen_ms,
            again.routed_since_heartbeat,
            again.skills.len()
        ),
        (2, start, 0, 1)
    );

    // Time passes: bruce misses one interval, then two.
    now.fetch_add(70_000, Ordering::Relaxed);
    let status =
        |agents: &[AgentView], name: &str| agents.iter().find(|a| a.agent == name).unwrap().status;
    let agents = fleet.agents().await.unwrap();
    assert_eq!(
        agents.iter().map(|a| a.agent.as_str()).collect::<Vec<_>>(),
        ["alfred", "bruce"]
    );
    assert_eq!(
        (status(&agents, "alfred"), status(&agents, "bruce")),
        (Status::Up, Status::Stale)
    );
    now.fetch_add(60_000, Ordering::Relaxed);
    let agents = fleet.agents().await.unwrap();
    assert_eq!(
        (status(&agents, "alfred"), status(&agents, "bruce")),
        (Status::Stale, Status::Down)
    );
    let e = fleet
        .route(RouteRequest {
            task: "deploy".into(),
            required_skills: vec![],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FleetError::NoAgentFits(m) if m.contains("bruce: down")),
        "{e}"
    );
    // Its next heartbeat brings it back up.
    fleet
        .heartbeat(beat("bruce", &["deploy"], 0.1))
        .await
        .unwrap();
    assert_eq!(fleet.agent("bruce").await.unwrap().status, Status::Up);

    // An agent's own interval wins over the default.
    let slow = Heartbeat {
        interval_seconds: Some(600),
        ..beat("cron-weekly", &["report"], 0.0)
    };
    fleet.heartbeat(slow).await.unwrap();
    now.fetch_add(300_000, Ordering::Relaxed);
    assert_eq!(fleet.agent("cron-weekly").await.unwrap().status, Status::Up);

    // Bad input and unknown agents: clear errors, nothing stored.
    assert!(matches!(
        fleet.heartbeat(beat("alfred", &[], 2.0)).await,
        Err(FleetError::Invalid(_))
    ));
    assert_eq!(fleet.agent("alfred").await.unwrap().load, 0.5);
    assert!(matches!(
        fleet.agent("nobody").await,
        Err(FleetError::NotFound(_))
    ));
    assert!(matches!(
        fleet.agent("No Body").await,
        Err(FleetError::Invalid(_))
    ));
    let e = fleet
        .route(RouteRequest {
            task: " ".into(),
            required_skills: vec![],
        })
        .await;
    assert!(matches!(e, Err(FleetError::Invalid(_))));

    // Many heartbeats at once (as from several hosts): every one counts.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let backend = backend.clone();
            tokio::spawn(async move {
                backend
                    .heartbeat(
                        beat("swarm", &["triage"], (i % 10) as f64 / 10.0)
                            .checked()
                            .unwrap(),
                        5,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(backend.get("swarm").await.unwrap().unwrap().heartbeats, 40);

    assert!(fleet.forget("swarm").await.unwrap());
    assert!(!fleet.forget("swarm").await.unwrap());
    assert!(backend.get("swarm").await.unwrap().is_none());
    assert_eq!(fleet.agents().await.unwrap().len(), 3);
}

#[tokio::test]
async fn embedded_registry_passes_the_suite_and_keeps_agents_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fleet.db");
    suite(Arc::new(EmbeddedFleet::open(&path).unwrap())).await;
    let reopened = EmbeddedFleet::open(&path).unwrap();
    let agents = reopened.all().await.unwrap();
    let names: Vec<&str> = agents.iter().map(|r| r.heartbeat.agent.as_str()).collect();
    assert_eq!(names, ["alfred", "bruce", "cron-weekly"]);
    assert_eq!(agents[0].heartbeats, 2);
}

fn redis_config(server: &redis_server::RedisServer, prefix: &str) -> RedisConfig {
    RedisConfig {
        prefix: prefix.into(),
        timeout: Duration::from_millis(500),
        ..RedisConfig::new(server.url())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_registry_passes_the_suite() {
    let server = redis_server::RedisServer::start();
    let redis = RedisFleet::new(redis_config(&server, "test:suite")).unwrap();
    redis.ping().await.unwrap();
    suite(Arc::new(redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_one_redis_registry_and_survive_a_redis_restart() {
    let server = redis_server::RedisServer::start();
    let port = server.port;
    let (a, _) = fleet(Arc::new(
        RedisFleet::new(redis_config(&server, "shared")).unwrap(),
    ));
    let (b, _) = fleet(Arc::new(
        RedisFleet::new(redis_config(&server, "shared")).unwrap(),
    ));
    let other = RedisFleet::new(redis_config(&server, "elsewhere")).unwrap();
    a.heartbeat(beat("alfred", &["research"], 0.2))
        .await
        .unwrap();
    b.heartbeat(beat("alfred", &["research"], 0.4))
        .await
        .unwrap();
    let seen = a.agent("alfred").await.unwrap();
    assert_eq!((seen.heartbeats, seen.load), (2, 0.4));
    // Routes on one host count on the other.
    b.route(RouteRequest {
        task: "research".into(),
        required_skills: vec![],
    })
    .await
    .unwrap();
    assert_eq!(a.agent("alfred").await.unwrap().routed_since_heartbeat, 1);
    // Another prefix is another registry.
    assert!(other.all().await.unwrap().is_empty());

    // Redis goes away: clear errors, fast.
    server.stop();
    let started = std::time::Instant::now();
    let e = a
        .heartbeat(beat("alfred", &["research"], 0.1))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FleetError::Unavailable(m) if m.contains(&format!("127.0.0.1:{port}"))),
        "{e}"
    );
    assert!(matches!(a.agents().await, Err(FleetError::Unavailable(_))));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // It comes back empty (nothing persisted): the agent's next heartbeat
    // is accepted on the same connection manager, and it is listed again.
    let _server = redis_server::RedisServer::start_on(port);
    let mut accepted = false;
    for _ in 0..50 {
        if a.heartbeat(beat("alfred", &["research"], 0.1))
            .await
            .is_ok()
        {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "no heartbeat accepted after Redis came back");
    assert_eq!(b.agents().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_redis_url_is_refused() {
    let e = RedisFleet::new(RedisConfig::new("http://nope"))
        .err()
        .unwrap();
    assert!(
        matches!(&e, FleetError::Invalid(m) if m.contains("Redis URL")),
        "{e}"
    );
}
