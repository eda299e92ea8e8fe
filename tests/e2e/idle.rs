//! An idle host stays idle: once a skill is loaded, nothing the host does
//! and nothing another program does to the file without changing it makes
//! the host read it again. Large components (the 12–18 MB of a Python or
//! JavaScript skill) make a re-read cost a core; these tests count bytes.

use crate::components;
use crate::harness::{Dirs, Host};
use std::time::{Duration, Instant};

/// Bytes the process has read through `read`-like calls (`rchar`).
fn read_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar in /proc/PID/io")
}

/// CPU time the process used, in clock ticks (user + system).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

const SIZE: usize = 16 << 20;

#[tokio::test]
async fn a_loaded_skill_file_is_never_read_again_until_it_changes() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let pid = host.pid();
    let path = dirs.skills.join("big.wasm");

    // Dropped in place (written and closed, no rename), then its sidecar.
    std::fs::write(&path, components::large(SIZE)).unwrap();
    host.wait_for("big", "loaded", |s| s["status"] == "ready")
        .await;
    std::fs::write(dirs.skills.join("big.toml"), "deadline_ms = 4000\n").unwrap();
    host.wait_for("big", "sidecar applied", |s| {
        s["manifest"]["deadline_ms"] == 4000
    })
    .await;
    let (status, body) = host.invoke("big", r#"{"a":1}"#).await;
    assert_eq!((status, &body), (200, &serde_json::json!({"a": 1})));

    // Another program reads the file (a backup, a checksum, `cat`) and looks
    // at it: opens and reads that change nothing.
    let read_before = read_bytes(pid);
    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.len() > SIZE);
        let _ = std::fs::metadata(&path).unwrap();
        reads += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read = read_bytes(pid) - read_before;
    let cpu = cpu_ticks(pid) - cpu_before;
    assert!(reads > 20, "the test read the file {reads} times");
    assert!(
        read < SIZE as u64 / 4,
        "the host read {read} bytes in 3 s while its {SIZE}-byte skill did not change"
    );
    // An idle host uses almost none of the 3 s of a core: under a tenth.
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(
        cpu * 10 < 3 * per_second,
        "the idle host used {cpu} ticks of CPU in 3 s ({per_second} a second)"
    );

    // A real change is still seen: the sidecar, then the file itself.
    std::fs::write(dirs.skills.join("big.toml"), "deadline_ms = 5000\n").unwrap();
    host.wait_for("big", "sidecar changed", |s| {
        s["manifest"]["deadline_ms"] == 5000
    })
    .await;
    let sha = host.skill("big").await["sha256"].clone();
    std::fs::write(&path, components::with_nonce(&components::large(SIZE), 7)).unwrap();
    host.wait_for("big", "new file loaded", |s| {
        s["sha256"] != sha && s["status"] == "ready"
    })
    .await;
    host.stop();
}
