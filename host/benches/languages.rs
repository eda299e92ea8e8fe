//! Skills in three languages, side by side (see docs/benchmarks.md):
//! `cargo bench -p darkfactory --bench languages`, after `make skills` and
//! `make lang-skills`.
//!
//! Starts the real binary and, for Rust (`echo`), Python (`notes-py`,
//! componentize-py) and JavaScript (`notes-js`, componentize-js):
//!
//! 1. the component's size, and its first load: from the drop into the
//!    skills directory to `ready`, and the compile time the host reports;
//! 2. the load from the artifact cache, after a restart;
//! 3. HTTP invoke of echo-sized work (`{"echo": {...}}`, answered as it is),
//!    one client back to back for `BENCH_SECONDS` (default 3) per language:
//!    p50 and p99;
//! 4. an idle host with four large skills (two of each of Python and
//!    JavaScript, 12–18 MB each): the CPU it uses and the bytes it reads
//!    in `BENCH_IDLE_SECONDS` (default 10) of doing nothing.

#[path = "support/host.rs"]
mod host;
#[path = "support/percentile.rs"]
mod percentile;
#[path = "support/skills.rs"]
mod skills;
use percentile::percentile;
use skills::{wasm, with_nonce};
use std::path::Path;
use std::time::{Duration, Instant};

/// A component `make lang-skills` built.
fn lang_skill(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/lang-skills")
        .join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make lang-skills` first", path.display()))
}

fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.bench.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

/// CPU time of a process in clock ticks (user + system), and `rchar`.
fn cpu_and_reads(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    let rchar = io
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (ticks, rchar)
}

struct Skill {
    language: &'static str,
    name: &'static str,
    bytes: Vec<u8>,
}

async fn skill_json(http: &reqwest::Client, url: &str, name: &str) -> serde_json::Value {
    let r = http
        .get(format!("{url}/api/skills/{name}"))
        .send()
        .await
        .unwrap();
    if r.status() == 404 {
        return serde_json::Value::Null;
    }
    r.json().await.unwrap()
}

async fn wait_ready(http: &reqwest::Client, url: &str, name: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let skill = skill_json(http, url, name).await;
        if skill["status"] == "ready" {
            return skill;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "{name} did not load: {skill}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let idle_seconds: u64 = std::env::var("BENCH_IDLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let skills = [
        Skill {
            language: "Rust",
            name: "echo",
            bytes: wasm("echo"),
        },
        Skill {
            language: "Python",
            name: "notes-py",
            bytes: lang_skill("notes-py"),
        },
        Skill {
            language: "JavaScript",
            name: "notes-js",
            bytes: lang_skill("notes-js"),
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let skills_dir = dir.path().join("skills");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&skills_dir).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    println!("# darkfactory skills in three languages");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. First loads, one at a time on a quiet host.
    let (mut child, url) = host::spawn(&skills_dir, &data);
    let mut first = Vec::new();
    rt.block_on(async {
        for skill in &skills {
            let started = Instant::now();
            install(&skills_dir, skill.name, &skill.bytes);
            let details = wait_ready(&http, &url, skill.name).await;
            first.push((
                started.elapsed(),
                details["compile_ms"].as_f64().unwrap_or(0.0),
            ));
        }
    });
    let _ = child.kill();
    let _ = child.wait();

    // 2. The same skills from the artifact cache, after a restart.
    let started = Instant::now();
    let (mut child, url) = host::spawn(&skills_dir, &data);
    let mut cached = Vec::new();
    rt.block_on(async {
        for skill in &skills {
            let details = wait_ready(&http, &url, skill.name).await;
            assert_eq!(details["compiled_from_cache"], true, "{details}");
            cached.push(details["compile_ms"].as_f64().unwrap_or(0.0));
        }
    });
    let all_ready = started.elapsed();

    // 3. Echo-sized calls.
    let mut calls = Vec::new();
    rt.block_on(async {
        for skill in &skills {
            let body = if skill.name == "echo" {
                r#"{"a":1,"b":"two"}"#
            } else {
                r#"{"echo":{"a":1,"b":"two"}}"#
            };
            let invoke = format!("{url}/api/skills/{}/invoke", skill.name);
            for _ in 0..20 {
                let r = http.post(&invoke).body(body).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
            }
            let mut samples = Vec::new();
            let until = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < until {
                let t = Instant::now();
                let r = http.post(&invoke).body(body).send().await.unwrap();
                let _ = r.bytes().await.unwrap();
                samples.push(t.elapsed());
            }
            samples.sort();
            calls.push((
                percentile(&samples, 0.50),
                percentile(&samples, 0.99),
                samples.len(),
            ));
        }
    });

    println!();
    println!("| Language | Component | First load: drop to ready | compile | From the cache | Call p50 | Call p99 | Calls |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, skill) in skills.iter().enumerate() {
        println!(
            "| {} (`{}`) | {:.1} MB | {:.2} s | {:.2} s | {:.1} ms | {:.2} ms | {:.2} ms | {} |",
            skill.language,
            skill.name,
            skill.bytes.len() as f64 / 1e6,
            first[i].0.as_secs_f64(),
            first[i].1 / 1e3,
            cached[i],
            calls[i].0.as_secs_f64() * 1e3,
            calls[i].1.as_secs_f64() * 1e3,
            calls[i].2,
        );
    }
    println!(
        "restart with all three cached: every skill ready {:.0} ms after the start",
        all_ready.as_secs_f64() * 1e3
    );

    // 4. An idle host with four large skills.
    for (name, bytes) in [
        ("notes-py-2", with_nonce(&skills[1].bytes, 2)),
        ("notes-js-2", with_nonce(&skills[2].bytes, 2)),
    ] {
        install(&skills_dir, name, &bytes);
        rt.block_on(wait_ready(&http, &url, name));
    }
    // Let the last load's work (artifact write, health check) settle.
    std::thread::sleep(Duration::from_secs(1));
    let pid = child.id();
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (ticks_before, read_before) = cpu_and_reads(pid);
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let (ticks_after, read_after) = cpu_and_reads(pid);
    let cpu = (ticks_after - ticks_before) as f64 / ticks_per_second;
    println!(
        "idle host, 4 large skills ({:.1} MB in all), {idle_seconds} s: {:.2} s of CPU ({:.2} % of a core), {} bytes read",
        (2 * (skills[1].bytes.len() + skills[2].bytes.len())) as f64 / 1e6,
        cpu,
        cpu / idle_seconds as f64 * 100.0,
        read_after - read_before
    );
    let _ = child.kill();
    let _ = child.wait();
}
