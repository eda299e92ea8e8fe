//! A hostile skills directory: links that leave it, FIFOs, devices, files
//! of any size, skills that never start, a thousand files at once. Whoever
//! can write the directory must not read the host's secrets through it, nor
//! stop it from answering.

use crate::components;
use crate::harness::{raw_status, wasm, Dirs, Host};
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "t0ken-that-must-not-leak-7c1d";

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[tokio::test]
async fn links_out_of_the_directory_leak_nothing() {
    let dirs = Dirs::new();
    let outside = dirs.data.parent().unwrap().join("outside.toml");
    std::fs::write(&outside, "deadline_ms = \"hunter2-outside-secret\"\n").unwrap();
    symlink(
        "/proc/self/cmdline",
        dirs.skills.join("cmdline.workflow.md"),
    )
    .unwrap();
    symlink(
        "/proc/self/environ",
        dirs.skills.join("environ.workflow.md"),
    )
    .unwrap();
    // An operator's secrets next to the skills are not a skill's either.
    std::fs::write(dirs.skills.join(".env"), format!("TOKEN={TOKEN}\n")).unwrap();
    symlink(".env", dirs.skills.join("dotenv.workflow.md")).unwrap();
    dirs.install("echo", &wasm("echo"));
    symlink(&outside, dirs.skills.join("echo.toml")).unwrap();
    // A link that stays inside the directory is fine.
    std::fs::create_dir(dirs.skills.join("builds")).unwrap();
    std::fs::write(dirs.skills.join("builds/stats-1.wasm"), wasm("text-stats")).unwrap();
    symlink("builds/stats-1.wasm", dirs.skills.join("stats.wasm")).unwrap();

    let host = Host::start(&dirs, &["--token", TOKEN]);
    for (skill, link, why) in [
        (
            "cmdline",
            "cmdline.workflow.md",
            "leaves the skills directory",
        ),
        (
            "environ",
            "environ.workflow.md",
            "leaves the skills directory",
        ),
        ("echo", "echo.toml", "leaves the skills directory"),
        ("dotenv", "dotenv.workflow.md", "of its own kind"),
    ] {
        let error = host.error_of(skill, link).await;
        assert!(error.contains(link), "{skill}: {error}");
        assert!(error.contains(why), "{error}");
        for secret in [TOKEN, "hunter2", "/proc", "outside", "PATH="] {
            assert!(!error.contains(secret), "{skill} leaks {secret}: {error}");
        }
    }
    // Nothing about a skill is readable without the token.
    let (status, body) = host
        .send(host.http.get(format!("{}/api/skills/cmdline", host.url)))
        .await;
    assert_eq!(status, 401, "{body}");
    let stats = host.skill("stats").await;
    assert_eq!(stats["status"], "ready", "{stats}");
    // echo with a sidecar it may not read does not load.
    let echo = host.skill("echo").await;
    assert_eq!(echo["status"], "failed", "{echo}");
}

#[tokio::test]
async fn a_fifo_neither_blocks_the_host_nor_its_shutdown() {
    let dirs = Dirs::new();
    mkfifo(&dirs.skills.join("fifo.wasm"));
    dirs.install("echo", &wasm("echo"));
    // With the FIFO there at start, the host listens and gets ready.
    let host = Host::start(&dirs, &[]);
    let error = host.error_of("fifo", "FIFO").await;
    assert!(error.contains("fifo.wasm"), "{error}");
    // One dropped while it runs is refused the same way, and every probe
    // is answered meanwhile.
    mkfifo(&dirs.skills.join("late.wasm"));
    mkfifo(&dirs.skills.join("late.toml"));
    host.error_of("late", "FIFO").await;
    for _ in 0..20 {
        assert_eq!(host.get("/healthz").await.0, 200);
        assert_eq!(host.invoke("echo", "[1]").await.0, 200);
    }
    // SIGTERM still stops it.
    let started = Instant::now();
    host.stop_and_wait(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn dev_zero_and_huge_files_are_refused_without_being_read() {
    let dirs = Dirs::new();
    symlink("/dev/zero", dirs.skills.join("zero.wasm")).unwrap();
    // A 200 MB file, sparse: refused by its size, never read.
    let big = std::fs::File::create(dirs.skills.join("big.wasm")).unwrap();
    big.set_len(200 << 20).unwrap();
    let host = Host::start(&dirs, &["--max-skill-bytes", "8388608"]);
    let error = host.error_of("zero", "zero.wasm").await;
    assert!(error.contains("leaves the skills directory"), "{error}");
    let error = host.error_of("big", "big.wasm").await;
    assert!(
        error.contains("209715200 bytes") && error.contains("8388608"),
        "{error}"
    );
    // The same limit holds for an upload.
    let (status, body) = host.put("up", vec![0u8; (8 << 20) + 1]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    // And the host is not holding 200 MB.
    let rss = host.rss_kib();
    assert!(rss < 150 * 1024, "rss {rss} KiB");
}

#[tokio::test]
async fn the_host_listens_at_once_and_a_failed_skill_stays_failed_across_a_restart() {
    let dirs = Dirs::new();
    for (name, deadline) in [("slow-a", 1500), ("slow-b", 2500)] {
        dirs.install(name, &components::slow_start());
        std::fs::write(
            dirs.skills.join(format!("{name}.toml")),
            format!("deadline_ms = {deadline}\n"),
        )
        .unwrap();
    }
    dirs.install("echo", &wasm("echo"));
    let started = Instant::now();
    let host = Host::start_listening(&dirs, &[]);
    let listening = started.elapsed();
    // Before both slow skills have failed, the host answers.
    assert_eq!(raw_status(&host.url, "/healthz"), Some(200));
    assert!(
        listening < Duration::from_millis(1500),
        "listening after {listening:?}"
    );
    host.wait_ready(Duration::from_secs(30));
    let a = host.skill("slow-a").await;
    assert_eq!(a["status"], "failed", "{a}");
    assert!(
        a["last_error"].as_str().unwrap().contains("deadline"),
        "{a}"
    );
    assert_eq!(host.invoke("echo", "[]").await.0, 200);
    let failed_at = a["last_error_at"].clone();
    host.stop();

    // Same files: not tried again, so the restart is ready at once and
    // shows the first failure.
    let started = Instant::now();
    let host = Host::start(&dirs, &[]);
    let ready = started.elapsed();
    assert!(ready < Duration::from_millis(1400), "ready after {ready:?}");
    let a = host.skill("slow-a").await;
    assert_eq!(a["status"], "failed", "{a}");
    assert_eq!(a["last_error_at"], failed_at, "{a}");
    // A changed file is tried again.
    std::fs::write(dirs.skills.join("slow-a.toml"), "deadline_ms = 1000\n").unwrap();
    let retried = host
        .wait_for("slow-a", "a new failure", |s| {
            s["last_error_at"] != failed_at && s["last_error"].is_string()
        })
        .await;
    host.stop();
    // So is an unchanged file on a host whose limits changed: whether it
    // loads depends on them too.
    let host = Host::start(&dirs, &["--max-tables", "31"]);
    let again = host.skill("slow-a").await;
    assert_eq!(again["status"], "failed", "{again}");
    assert_ne!(again["last_error_at"], retried["last_error_at"], "{again}");
}

#[tokio::test]
async fn many_drops_at_once_compile_a_few_at_a_time() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(&dirs, &["--compile-concurrency", "2"]);
    let stats = wasm("text-stats");
    // Written aside, then renamed in all at once.
    let staging = dirs.data.parent().unwrap().join("staging");
    std::fs::create_dir(&staging).unwrap();
    const N: u64 = 120;
    for i in 0..N {
        std::fs::write(
            staging.join(format!("s{i}.wasm")),
            components::with_nonce(&stats, i),
        )
        .unwrap();
    }
    for i in 0..N {
        std::fs::rename(
            staging.join(format!("s{i}.wasm")),
            dirs.skills.join(format!("s{i}.wasm")),
        )
        .unwrap();
    }
    let mut most_threads = 0;
    let started = Instant::now();
    loop {
        most_threads = most_threads.max(host.threads());
        assert_eq!(host.invoke("echo", "[1]").await.0, 200);
        let (_, health) = host.get("/healthz").await;
        if health["skills_serving"] == N + 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still loading: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Tokio's workers, its blocking pool's cap, the epoch ticker, the
    // watcher and Cranelift's pool: far from a thread per file.
    assert!(most_threads < 100, "{most_threads} threads");
}
