//! The drain benchmark: a thousand distinct skills dropped into the skills
//! directory at once, while a client calls `echo` (see docs/benchmarks.md).
//!
//! `cargo bench -p darkfactory --bench drain` (after `make skills`). It
//! starts the real binary with `echo` loaded, writes `BENCH_DRAIN` (default
//! 1 000) distinct copies of the `echo` component (95 KB each, a nonce in a
//! custom section: each a new sha256, so each a compile) into a staging
//! directory on the same file system, renames them all in, and until every
//! one serves it:
//!
//! - calls `echo` over HTTP from one client, back to back, recording each
//!   latency;
//! - samples the host's threads and its peak resident memory (`VmHWM`).
//!
//! Goals (the hardening issue): peak RSS ≤ 1.5 GB, `echo` p99 ≤ 20 ms
//! during the drain.

#[path = "support/host.rs"]
mod host;
#[path = "support/percentile.rs"]
mod percentile;
#[path = "support/skills.rs"]
mod skills;
use percentile::percentile;
use skills::{wasm, with_nonce};
use std::time::{Duration, Instant};

/// A field of `/proc/PID/status`, the number before its unit.
fn proc_status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::var("BENCH_DRAIN")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let skills = dir.path().join("skills");
    let staging = dir.path().join("staging");
    std::fs::create_dir_all(&skills).unwrap();
    std::fs::create_dir_all(&staging).unwrap();
    let echo = wasm("echo");
    std::fs::write(skills.join("echo.wasm"), &echo).unwrap();
    let (mut child, addr) = host::spawn(&skills, &dir.path().join("data"));
    let pid = child.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::new();
    rt.block_on(async {
        while http
            .get(format!("{addr}/readyz"))
            .send()
            .await
            .map_or(true, |r| r.status() != 200)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    for i in 0..n {
        std::fs::write(
            staging.join(format!("s{i}.wasm")),
            with_nonce(&echo, 10_000 + i),
        )
        .unwrap();
    }
    let rss_before = proc_status(pid, "VmRSS:");
    let started = Instant::now();
    for i in 0..n {
        std::fs::rename(
            staging.join(format!("s{i}.wasm")),
            skills.join(format!("s{i}.wasm")),
        )
        .unwrap();
    }
    let (latencies, most_threads, failed) = rt.block_on(async {
        let mut latencies = Vec::new();
        let mut most_threads = 0;
        let mut failed = 0u64;
        let mut last_check = Instant::now();
        loop {
            let t = Instant::now();
            let ok = http
                .post(format!("{addr}/api/skills/echo/invoke"))
                .body(r#"{"text":"hi"}"#)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            latencies.push(t.elapsed());
            failed += u64::from(!ok);
            if last_check.elapsed() > Duration::from_millis(100) {
                last_check = Instant::now();
                most_threads = most_threads.max(proc_status(pid, "Threads:"));
                let health: serde_json::Value = http
                    .get(format!("{addr}/healthz"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if health["skills_serving"].as_u64() == Some(n + 1) {
                    break;
                }
                if started.elapsed() > Duration::from_secs(1800) {
                    panic!("not drained after 30 min: {health}");
                }
            }
        }
        (latencies, most_threads, failed)
    });
    let drained = started.elapsed();
    let peak = proc_status(pid, "VmHWM:");
    let rss_after = proc_status(pid, "VmRSS:");
    let _ = child.kill();
    let _ = child.wait();
    let mut sorted = latencies.clone();
    sorted.sort();
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    println!("# darkfactory drain benchmark");
    println!(
        "machine: {} cores; {n} distinct skills of {} bytes renamed in at once",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        echo.len()
    );
    println!("| measure | value | goal |");
    println!("|---|---|---|");
    println!(
        "| time until all {n} serve | {:.1} s ({:.1} ms per skill) | |",
        drained.as_secs_f64(),
        drained.as_secs_f64() * 1e3 / n as f64
    );
    println!(
        "| peak RSS (VmHWM) | {:.0} MiB (before {:.0} MiB, after {:.0} MiB) | ≤ 1.5 GB |",
        peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    println!("| most threads | {most_threads} | |");
    println!(
        "| echo during the drain: calls / failed | {} / {failed} | 0 failed |",
        latencies.len()
    );
    println!(
        "| echo p50 / p99 / max | {} / {} / {} | p99 ≤ 20 ms |",
        ms(percentile(&sorted, 0.5)),
        ms(percentile(&sorted, 0.99)),
        ms(*sorted.last().unwrap())
    );
}
