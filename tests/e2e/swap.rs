//! Swapping a skill under concurrent load: no caller sees an error.

use crate::harness::{sha256, wasm, Dirs, Host};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_under_concurrent_load_fails_no_request() {
    let dirs = Dirs::new();
    let versions = [wasm("echo"), wasm("text-stats")];
    dirs.install("swap", &versions[0]);
    let host = Arc::new(Host::start(&dirs, &[]));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (host, stop, ok, failures) = (host.clone(), stop.clone(), ok.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = host.invoke("swap", r#"{"text":"hello swap"}"#).await;
                // Either version answers: echo returns the input, text-stats counts it.
                let valid = status == 200 && (body["text"] == "hello swap" || body["words"] == 2);
                if valid {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.lock().unwrap().push(format!("{status} {body}"));
                }
            }
        }));
    }

    for i in 1..=10 {
        let next = &versions[i % 2];
        if i % 3 == 0 {
            // In place, as `cp new.wasm swap.wasm` does: the watcher may see a
            // half-written file, which must not replace the serving version.
            std::fs::write(dirs.skills.join("swap.wasm"), next).unwrap();
        } else {
            dirs.install("swap", next);
        }
        let sha = sha256(next);
        host.wait_for("swap", "the new version", |s| s["sha256"] == sha.as_str())
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 50,
        "too few requests: {}",
        ok.load(Ordering::Relaxed)
    );
    let skill = host.skill("swap").await;
    assert_eq!(skill["history"].as_array().unwrap().len(), 5);
}
