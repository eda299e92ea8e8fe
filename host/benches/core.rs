//! Benchmarks of the host core, printed as a table (see docs/benchmarks.md).
//!
//! `make bench` (or `cargo bench -p darkfactory --bench core`), after the
//! skills are built. Measured side by side in one run:
//!
//! 1. instantiate + call of `echo` in-process (fresh store per call);
//! 2. HTTP invoke of `echo` at concurrency 1 and 32, beside a native axum
//!    handler doing the same JSON echo in the same process;
//! 3. swap: from the rename into the skills directory to the first response
//!    of the new version, uncached and cached, under load, counting failures;
//! 4. start-up of the real binary with 20 cached skills: to listening, and to
//!    ready (`/readyz`, every skill loaded).
//!
//! Sections 1 and 2 also measure the floor: `floor.wat`, the cheapest
//! component the host can call (one core module, no function imports, one
//! page of memory, hands its input back unread). What it costs is the host's
//! own path and wasmtime's least instantiation; what `echo` costs beyond it
//! is the shape `wasm32-wasip2` gives a Rust skill and the skill's own work.
//!
//! `BENCH_SECONDS` (default 3) sets each handler's time in the HTTP section,
//! cut into six rounds that take turns with the other handlers';
//! `BENCH_ONLY=1,3` runs only the numbered sections. `TOKIO_WORKER_THREADS=1`
//! runs everything on one tokio worker: the HTTP figures then show the CPU a
//! request costs, without the wake-ups between threads.
//!
//! `BENCH_COMPARE=a.wasm,b.wasm,...` runs only a comparison of those builds
//! of a skill (say, one linked with another stack size): batches of 1 000
//! instantiate + call of each, interleaved so that every build sees the same
//! moments of a noisy machine, 30 batches, the median of the batch medians.

#[path = "support/host.rs"]
mod host;
#[path = "support/percentile.rs"]
mod percentile;
#[path = "support/skills.rs"]
mod skills;
use axum::routing::post;
use darkfactory::registry::RegistryConfig;
use darkfactory::runtime::{Runtime, RuntimeConfig};
use darkfactory::server::{Server, ServerConfig};
use percentile::percentile;
use serde_json::Value;
use skills::{wasm, with_nonce};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The floor component, assembled from its text.
fn floor() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/floor.wat");
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fmt_us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.bench.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

/// The binary's allocator (host/src/main.rs), so the figures are the host's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("# darkfactory core benchmarks");
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(
                |c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string())
            )
            .unwrap_or_default()
    );
    if let Ok(files) = std::env::var("BENCH_COMPARE") {
        let files: Vec<&str> = files.split(',').filter(|f| !f.is_empty()).collect();
        rt.block_on(compare(&files));
        return;
    }
    // BENCH_ONLY=1,3 runs a subset of the sections.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let run = |n: &str| only.is_empty() || only.split(',').any(|s| s.trim() == n);
    if run("1") {
        rt.block_on(in_process());
    }
    if run("2") {
        rt.block_on(http(Duration::from_secs(seconds)));
    }
    if run("3") {
        rt.block_on(swaps());
    }
    if run("4") {
        startup();
    }
}

/// Rounds per in-process measurement; the round with the median p50 is
/// reported, which keeps one noisy round on a shared 2-core VM from deciding.
const ROUNDS: usize = 3;
/// Calls per round.
const CALLS: usize = 10_000;

/// p50, p99 and mean of one round.
type Round = (Duration, Duration, Duration);

fn summarise(mut samples: Vec<Duration>) -> Round {
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), mean)
}

fn report(label: &str, mut rounds: Vec<Round>) {
    rounds.sort();
    let (p50, p99, mean) = rounds[rounds.len() / 2];
    println!(
        "| {label} | {ROUNDS} × {CALLS} | {} | {} | {} |",
        fmt_us(p50),
        fmt_us(p99),
        fmt_us(mean)
    );
}

/// `BENCH_COMPARE`: the same in-process measurement as section 1 for several
/// builds of a skill, interleaved batch by batch.
async fn compare(files: &[&str]) {
    const BATCHES: usize = 30;
    const PER_BATCH: usize = 1_000;
    let runtime = Runtime::new(
        RuntimeConfig::default(),
        &darkfactory::capabilities::add_to_linker,
    )
    .unwrap();
    let limits = runtime.config().default_limits();
    let pres: Vec<_> = files
        .iter()
        .map(|file| {
            let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            let component = runtime.compile(&bytes).unwrap();
            runtime.prepare(&component).unwrap()
        })
        .collect();
    let name: Arc<str> = Arc::from("compare");
    let input = r#"{"text":"hi"}"#;
    let mut medians = vec![Vec::with_capacity(BATCHES); pres.len()];
    for _ in 0..BATCHES {
        for (pre, medians) in pres.iter().zip(&mut medians) {
            let mut samples = Vec::with_capacity(PER_BATCH);
            for _ in 0..PER_BATCH {
                let t = Instant::now();
                runtime
                    .invoke(pre, &name, &limits, None, input)
                    .await
                    .unwrap();
                samples.push(t.elapsed());
            }
            medians.push(summarise(samples).0);
        }
    }
    println!(
        "\n## instantiate + call, builds compared ({BATCHES} interleaved batches of {PER_BATCH})"
    );
    println!("| component | median of batch p50s | fastest batch p50 |");
    println!("|---|---|---|");
    for (file, mut medians) in files.iter().zip(medians) {
        medians.sort();
        println!(
            "| {file} | {} | {} |",
            fmt_us(medians[medians.len() / 2]),
            fmt_us(medians[0])
        );
    }
}

async fn in_process() {
    let runtime = Runtime::new(
        RuntimeConfig::default(),
        &darkfactory::capabilities::add_to_linker,
    )
    .unwrap();
    let component = runtime.compile(&wasm("echo")).unwrap();
    let pre = runtime.prepare(&component).unwrap();
    let limits = runtime.config().default_limits();
    let name: Arc<str> = Arc::from("echo");
    let input = r#"{"text":"hi"}"#;
    let floor_pre = runtime
        .prepare(&runtime.compile(&floor()).unwrap())
        .unwrap();
    for pre in [&pre, &floor_pre] {
        for _ in 0..2_000 {
            runtime
                .invoke(pre, &name, &limits, None, input)
                .await
                .unwrap();
        }
    }
    println!(
        "\n## 1. instantiate + call `echo`, in-process (pooling: {})",
        runtime.is_pooling()
    );
    println!("| path | calls | p50 | p99 | mean |");
    println!("|---|---|---|---|---|");

    // Rounds of `echo` and of the floor alternate, so both see the same
    // moments of a noisy machine.
    let (mut rounds, mut floor_rounds) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for (pre, rounds) in [(&pre, &mut rounds), (&floor_pre, &mut floor_rounds)] {
            let mut samples = Vec::with_capacity(CALLS);
            for _ in 0..CALLS {
                let t = Instant::now();
                let out = runtime
                    .invoke(pre, &name, &limits, None, input)
                    .await
                    .unwrap();
                samples.push(t.elapsed());
                debug_assert_eq!(out, input);
            }
            rounds.push(summarise(samples));
        }
    }
    report("Runtime::invoke (fresh store, instantiate, call)", rounds);
    report(
        "the same, floor component (one core module, no function imports)",
        floor_rounds,
    );

    // The same through the registry: lookup, stats, output check.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("skills")).unwrap();
    install(&dir.path().join("skills"), "echo", &wasm("echo"));
    let registry = darkfactory::registry::Registry::open(
        Arc::new(runtime),
        darkfactory::capabilities::Capabilities::default(),
        RegistryConfig::new(dir.path().join("skills"), dir.path().join("data")),
    )
    .await
    .unwrap();
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            registry.invoke("echo", input).await.unwrap();
            samples.push(t.elapsed());
        }
        rounds.push(summarise(samples));
    }
    report("Registry::invoke (+ lookup, stats, output check)", rounds);

    // The same through the axum router, without a socket.
    use tower::ServiceExt;
    let app = darkfactory::api::router(darkfactory::api::AppState::new(
        darkfactory::api::Services {
            registry: registry.clone(),
            token: None,
            read_token: None,
            max_body_bytes: 1 << 20,
            memory: None,
            ingest: None,
            board: None,
            fleet: None,
            planka_webhook: None,
            kpi: None,
            clock: darkfactory::capabilities::Clock::system(),
            factory: None,
            ci_webhook_secret: None,
        },
    ));
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let mut samples = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            let t = Instant::now();
            let request = axum::http::Request::post("/api/skills/echo/invoke")
                .body(axum::body::Body::from(input))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            let _ = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            samples.push(t.elapsed());
        }
        rounds.push(summarise(samples));
    }
    report(
        "axum router, no socket (+ routing, body, JSON checks)",
        rounds,
    );
}

/// One handler's requests over all its rounds.
#[derive(Default)]
struct Load {
    samples: Vec<Duration>,
    errors: u64,
    elapsed: Duration,
    /// Requests per second of each round, in order.
    round_rps: Vec<f64>,
}

impl Load {
    fn rps(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// A keep-alive client with `concurrency` warm connections to `url`.
async fn warm_client(url: &str, body: &'static str, concurrency: usize) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    // Warm the connections (all of them, concurrently) and the code paths.
    let warm: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_string());
            tokio::spawn(async move {
                for _ in 0..200 {
                    let response = client.post(&url).body(body).send().await.unwrap();
                    response.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    client
}

/// `concurrency` callers send requests for `duration`; adds them to `into`.
async fn round(
    client: &reqwest::Client,
    url: &str,
    body: &'static str,
    concurrency: usize,
    duration: Duration,
    into: &mut Load,
) {
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, errors) = (client.clone(), url.to_string(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.post(&url).body(body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    let mut requests = 0;
    for t in tasks {
        let samples = t.await.unwrap();
        requests += samples.len();
        into.samples.extend(samples);
    }
    let elapsed = started.elapsed();
    into.elapsed += elapsed;
    into.errors += errors.load(Ordering::Relaxed);
    into.round_rps.push(requests as f64 / elapsed.as_secs_f64());
}

async fn start_server(
    dir: &Path,
) -> (
    Arc<darkfactory::registry::Registry>,
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
) {
    let config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        RegistryConfig::new(dir.join("skills"), dir.join("data")),
    );
    let server = Server::start(config).await.unwrap();
    server.registry.wait_ready().await;
    let (addr, registry) = (server.local_addr, server.registry.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    (registry, addr, tx)
}

/// Rounds each handler's HTTP run is cut into.
const HTTP_ROUNDS: usize = 6;

async fn http(duration: Duration) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("skills")).unwrap();
    install(&dir.path().join("skills"), "echo", &wasm("echo"));
    install(&dir.path().join("skills"), "floor", &floor());
    let (_registry, addr, stop) = start_server(dir.path()).await;

    let native = axum::Router::new().route(
        "/echo",
        post(|body: axum::body::Bytes| async move {
            let value: Value = serde_json::from_slice(&body).unwrap();
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                serde_json::to_string(&value).unwrap(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let native_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, native).await });

    println!(
        "\n## 2. HTTP invoke of `echo` vs a native axum JSON echo \
         ({}s each, in {HTTP_ROUNDS} rounds, taking turns)",
        duration.as_secs()
    );
    println!(
        "| concurrency | handler | requests/s | p50 | p99 | errors | ratio | ratio by round |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let body = r#"{"text":"hi"}"#;
    let handlers = [
        ("native axum", format!("http://{native_addr}/echo")),
        (
            "darkfactory echo",
            format!("http://{addr}/api/skills/echo/invoke"),
        ),
        (
            "darkfactory floor",
            format!("http://{addr}/api/skills/floor/invoke"),
        ),
    ];
    let slice = duration / HTTP_ROUNDS as u32;
    for concurrency in [1, 32] {
        let mut clients = Vec::new();
        for (_, url) in &handlers {
            clients.push(warm_client(url, body, concurrency).await);
        }
        let mut loads: Vec<Load> = handlers.iter().map(|_| Load::default()).collect();
        // The VM's speed drifts over seconds; short rounds in turn, each
        // round starting with the next handler, give all the same machine.
        for r in 0..HTTP_ROUNDS {
            for k in 0..handlers.len() {
                let h = (r + k) % handlers.len();
                round(
                    &clients[h],
                    &handlers[h].1,
                    body,
                    concurrency,
                    slice,
                    &mut loads[h],
                )
                .await;
            }
        }
        let native_rps = loads[0].rps();
        let native_rounds = loads[0].round_rps.clone();
        for (i, ((label, _), load)) in handlers.iter().zip(&mut loads).enumerate() {
            // The native handler (first) is the yardstick: no range of its own.
            let range = if i == 0 {
                String::new()
            } else {
                let (lo, hi) = load
                    .round_rps
                    .iter()
                    .zip(&native_rounds)
                    .map(|(s, n)| s / n)
                    .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(r), hi.max(r)));
                format!("{lo:.2}–{hi:.2}")
            };
            load.samples.sort();
            println!(
                "| {concurrency} | {label} | {:.0} | {} | {} | {} of {} | {:.2} | {range} |",
                load.rps(),
                fmt_us(percentile(&load.samples, 0.5)),
                fmt_us(percentile(&load.samples, 0.99)),
                load.errors,
                load.samples.len(),
                load.rps() / native_rps,
            );
        }
    }
    let _ = stop.send(());
}

async fn swaps() {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    let (echo, stats) = (wasm("echo"), wasm("text-stats"));
    install(&skills, "swap", &echo);
    let (_registry, addr, stop) = start_server(dir.path()).await;
    let url = format!("http://{addr}/api/skills/swap/invoke");
    let body = r#"{"text":"hello swap"}"#;

    // Background load: 4 clients calling the skill being swapped.
    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, running, ok, failed) = (url.clone(), running.clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while running.load(Ordering::Relaxed) {
                match client.post(&url).body(body).send().await {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let probe = reqwest::Client::new();
    let is_stats = |v: &Value| v.get("words").is_some();
    let measure = |bytes: Vec<u8>, want_stats: bool| {
        let (skills, probe, url) = (skills.clone(), probe.clone(), url.clone());
        async move {
            let t0 = Instant::now();
            install(&skills, "swap", &bytes);
            loop {
                let r = probe.post(&url).body(body).send().await.unwrap();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if is_stats(&v) == want_stats {
                    return t0.elapsed();
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    };
    let mut uncached = Vec::new();
    for i in 0..50u64 {
        let want_stats = i % 2 == 0;
        let base = if want_stats { &stats } else { &echo };
        uncached.push(measure(with_nonce(base, i), want_stats).await);
    }
    // Cached: alternate between the last two versions, whose artifacts are
    // in the cache (older ones were pruned with the history).
    let mut cached = Vec::new();
    for i in 0..50u64 {
        let want_stats = i % 2 == 0;
        let (base, nonce) = if want_stats {
            (&stats, 48)
        } else {
            (&echo, 49)
        };
        cached.push(measure(with_nonce(base, nonce), want_stats).await);
    }
    running.store(false, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let _ = stop.send(());
    uncached.sort();
    cached.sort();
    println!("\n## 3. swap: rename into the skills directory → first response of the new version");
    println!("| artifacts | swaps | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (label, s) in [("uncached (compile)", &uncached), ("cached", &cached)] {
        println!(
            "| {label} | {} | {} | {} | {} |",
            s.len(),
            fmt_ms(percentile(s, 0.5)),
            fmt_ms(percentile(s, 0.99)),
            fmt_ms(*s.last().unwrap())
        );
    }
    println!(
        "requests under load during the 100 swaps: {} ok, {} failed",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
}

fn startup() {
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    std::fs::create_dir_all(&skills).unwrap();
    let (echo, stats) = (wasm("echo"), wasm("text-stats"));
    for i in 0..20u64 {
        let base = if i % 2 == 0 { &echo } else { &stats };
        install(&skills, &format!("skill-{i}"), &with_nonce(base, 1000 + i));
    }
    // To listening (the line on stdout), and to ready (`/readyz` answers
    // 200: every skill loaded): the host listens before its skills load.
    let start = |label: &str| -> (Duration, Duration) {
        let t0 = Instant::now();
        let (mut child, url) = host::spawn(&skills, &dir.path().join("data"));
        let listening = t0.elapsed();
        let addr = url
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("{label}: {url}"))
            .to_string();
        while ready_status(&addr) != Some(200) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let ready = t0.elapsed();
        let _ = child.kill();
        let _ = child.wait();
        (listening, ready)
    };
    let cold = start("cold");
    let mut warm: Vec<(Duration, Duration)> = (0..5).map(|_| start("cached")).collect();
    let mut listening: Vec<Duration> = warm.iter().map(|w| w.0).collect();
    warm.sort_by_key(|w| w.1);
    listening.sort();
    let ready: Vec<Duration> = warm.iter().map(|w| w.1).collect();
    println!("\n## 4. start-up of the binary, 20 skills: to listening, and to ready");
    println!("| artifacts | runs | listening, median | ready, median | ready, max |");
    println!("|---|---|---|---|---|");
    println!(
        "| uncached (first start) | 1 | {} | {} | {} |",
        fmt_ms(cold.0),
        fmt_ms(cold.1),
        fmt_ms(cold.1)
    );
    println!(
        "| cached | 5 | {} | {} | {} |",
        fmt_ms(percentile(&listening, 0.5)),
        fmt_ms(percentile(&ready, 0.5)),
        fmt_ms(*ready.last().unwrap())
    );
}

/// The status of `GET /readyz` over a plain socket.
fn ready_status(addr: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    write!(
        stream,
        "GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}
