//! A real Prometheus server (Debian's `prometheus`, 2.42; `make test`
//! installs it with apt when it is missing) on a loopback port, scraping
//! one target every second. Without the binary these tests fail with that
//! hint instead of passing silently. It is killed when the value drops.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A free loopback port to start one on.
    pub fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Starts a server on `port` that scrapes `target` (`127.0.0.1:PORT`)
    /// with the bearer `token`, and waits until it is ready.
    pub fn start(port: u16, target: &str, token: Option<&str>) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let auth = token
            .map(|t| format!("    authorization: {{ credentials: \"{t}\" }}\n"))
            .unwrap_or_default();
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             scrape_configs:\n  - job_name: darkfactory\n    metrics_path: /metrics\n{auth}    \
             static_configs: [{{ targets: [\"{target}\"] }}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("`prometheus` is not installed: `make test` installs it (apt-get install prometheus)");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if crate::harness::raw_status(&url, "/-/ready") == Some(200) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "Prometheus at {url} was not ready within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Prometheus {
            child,
            url,
            _dir: dir,
        }
    }

    /// Stops the server (a source that is down).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
    }
}
