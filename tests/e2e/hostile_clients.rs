//! Hostile clients: headers sent a byte at a time, connections that send
//! nothing, more connections than descriptors, bodies that never end, URIs
//! and headers of any size, and readers without a token. The host bounds
//! what each costs, answers in JSON, and still stops on SIGTERM.

use crate::harness::{assert_error, raw_request, refused_start, wasm, Dirs, Host};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn connect(host: &Host) -> TcpStream {
    let stream = TcpStream::connect(host.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the host closes the connection; how long that took.
fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!(
                "the connection stayed open ({e}) after {:?}",
                started.elapsed()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &["--header-timeout", "1s", "--idle-timeout", "2s"]);
    // Headers a byte at a time: closed a second after the first byte.
    let mut slow = connect(&host);
    let started = Instant::now();
    let trickle = std::thread::spawn(move || {
        for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        slow
    });
    let mut slow = trickle.join().unwrap();
    closed_after(&mut slow);
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(2500), "{waited:?}");

    // Nothing at all on a new connection: it gets a header timeout to
    // start a request, not the whole idle timeout.
    let mut silent = connect(&host);
    let waited = closed_after(&mut silent);
    assert!(waited < Duration::from_millis(2500), "{waited:?}");

    // A kept-alive connection serves requests, then is closed when idle.
    let mut kept = connect(&host);
    for _ in 0..3 {
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = kept.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let waited = closed_after(&mut kept);
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_connections_than_the_limit_are_answered_503_and_the_host_goes_on() {
    let dirs = Dirs::new();
    // 512 descriptors: the host fits its connection limit under them.
    let host = Host::start_with_open_files(&dirs, &["--idle-timeout", "30s"], 512);
    let mut idle: Vec<TcpStream> = (0..300).map(|_| connect(&host)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, body) = raw_request(&host.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 503, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    idle.clear();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = raw_request(&host.url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 200);
    let log = std::fs::read_to_string(dirs.log_path()).unwrap();
    let accept_errors = log.matches("cannot accept").count();
    assert!(accept_errors < 5, "{accept_errors} accept errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_is_answered_408() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(&dirs, &["--body-timeout", "1s"]);
    let mut stream = connect(&host);
    stream
        .write_all(
            b"POST /api/skills/echo/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[1,",
        )
        .unwrap();
    let started = Instant::now();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"body_timeout\""), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_host_within_its_grace_whatever_the_clients_do() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &["--shutdown-grace", "1s"]);
    let mut half = connect(&host);
    half.write_all(b"POST /api/memory HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"t")
        .unwrap();
    let mut nothing = connect(&host);
    nothing.write_all(b"GET /heal").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    host.stop_and_wait(Duration::from_secs(6));
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn with_a_token_every_api_read_needs_it_and_a_read_token_only_reads() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let host = Host::start(
        &dirs,
        &["--token", "full-secret", "--read-token", "read-secret"],
    );
    let get = |path: &str, token: Option<&str>| {
        let mut rb = host.http.get(format!("{}{path}", host.url));
        if let Some(token) = token {
            rb = rb.bearer_auth(token);
        }
        rb
    };
    for path in [
        "/api/skills",
        "/api/skills/echo",
        "/api/board",
        "/api/memory/search?q=x&namespace=org",
        "/api/capabilities",
        "/api/memory/stats",
    ] {
        let (status, body) = host.send(get(path, None)).await;
        assert_error(status, &body, 401, "missing_token");
        let (status, body) = host.send(get(path, Some("wrong"))).await;
        assert_error(status, &body, 401, "invalid_token");
        for token in ["full-secret", "read-secret"] {
            let (status, body) = host.send(get(path, Some(token))).await;
            assert_eq!(status, 200, "{path} with {token}: {body}");
        }
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(host.send(get(path, None)).await.0, 200, "{path}");
    }
    let (status, body) = host.invoke_as("read-secret", "echo", "[1]").await;
    assert_error(status, &body, 403, "read_only_token");
    let (status, _) = host.invoke_as("full-secret", "echo", "[1]").await;
    assert_eq!(status, 200);

    for (args, says) in [
        (vec!["--token", "   "], "white space"),
        (vec!["--read-token", "r"], "--token is not"),
        (
            vec!["--token", "same", "--read-token", "same"],
            "same as --token",
        ),
    ] {
        let other_data = dirs.data.parent().unwrap().join("other-data");
        let stderr = refused_start(&dirs.skills, &other_data, &args);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn every_error_is_json_whatever_layer_sends_it() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let long_uri = |len: usize| {
        format!(
            "GET /api/skills?cursor={} HTTP/1.1\r\nHost: x\r\n\r\n",
            "a".repeat(len)
        )
    };
    let huge_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(600 * 1024)
    );
    for (request, want_status, want_code) in [
        // Past hyper's own limit of 64 KiB: hyper answers, in JSON.
        (long_uri(100 * 1024), 414, "uri_too_long"),
        // Past the API's 8 KiB.
        (long_uri(10 * 1024), 414, "uri_too_long"),
        ("BLAH\r\n\r\n".to_string(), 400, "bad_request"),
        (huge_header, 431, "headers_too_large"),
        (
            "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            404,
            "not_found",
        ),
        // A path that is not UTF-8: axum's own plain-text rejection.
        (
            "GET /api/skills/%FF%FE HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            400,
            "bad_request",
        ),
        (
            "DELETE /api/skills HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            405,
            "method_not_allowed",
        ),
    ] {
        let (status, headers, body) = raw_request(&host.url, request.as_bytes());
        assert_eq!(status, want_status, "{headers}\n{body}");
        assert!(
            headers
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{headers}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body:?}"));
        assert_eq!(json["error"]["code"], want_code, "{json}");
        assert!(json["error"]["message"].is_string(), "{json}");
    }
    assert_eq!(host.get("/healthz").await.0, 200);
}
