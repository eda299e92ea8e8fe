//! Starts the real `darkfactory` binary on an ephemeral loopback port with
//! temporary directories, and talks to it over HTTP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The compiled test and example skills, built by `make skills`.
pub fn wasm(skill: &str) -> Vec<u8> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target
        .join("wasm32-wasip2/skill")
        .join(format!("skill_{}.wasm", skill.replace('-', "_")));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build the skills first with `make skills`",
            path.display()
        )
    })
}

/// Directories a host runs on; kept across restarts of the host.
pub struct Dirs {
    _tmp: tempfile::TempDir,
    pub skills: PathBuf,
    pub data: PathBuf,
}

impl Dirs {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let skills = tmp.path().join("skills");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&skills).unwrap();
        Dirs {
            _tmp: tmp,
            skills,
            data,
        }
    }

    /// Puts a skill into the skills directory the way a user would: a
    /// temporary file and a rename.
    pub fn install(&self, name: &str, bytes: &[u8]) {
        let tmp = self.skills.join(format!(".{name}.partial"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.skills.join(format!("{name}.wasm"))).unwrap();
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.parent().unwrap().join("host.log")
    }
}

/// A running host.
pub struct Host {
    child: Child,
    pub url: String,
    pub http: reqwest::Client,
}

impl Host {
    /// Starts a host on `dirs` with extra `serve` arguments.
    pub fn start(dirs: &Dirs, extra: &[&str]) -> Host {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dirs.log_path())
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_darkfactory"))
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--skills")
            .arg(&dirs.skills)
            .arg("--data")
            .arg(&dirs.data)
            .args(extra)
            .env("DARKFACTORY_LOG", "info,darkfactory=debug")
            .env_remove("DARKFACTORY_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start darkfactory");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("darkfactory listening on ") else {
            let _ = child.kill();
            let log = std::fs::read_to_string(dirs.log_path()).unwrap_or_default();
            panic!("the host did not start; stdout: {line:?}\nlog:\n{log}");
        };
        Host {
            child,
            url: addr.to_string(),
            // A pooled client, as real callers use: early answers (401, 413)
            // must not leave it a connection the host is closing.
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn invoke(&self, skill: &str, body: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/skills/{skill}/invoke", self.url))
                .body(body.to_string()),
        )
        .await
    }

    /// `POST /api/skills/{skill}/invoke` with a bearer token.
    pub async fn invoke_as(&self, token: &str, skill: &str, body: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/skills/{skill}/invoke", self.url))
                .bearer_auth(token)
                .body(body.to_string()),
        )
        .await
    }

    /// `POST /api/skills/{skill}/rollback`.
    pub async fn rollback(&self, skill: &str) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}/api/skills/{skill}/rollback", self.url)),
        )
        .await
    }

    pub async fn send(&self, rb: reqwest::RequestBuilder) -> (u16, Value) {
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn put(&self, name: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.send(
            self.http
                .put(format!("{}/api/skills/{name}", self.url))
                .body(bytes),
        )
        .await
    }

    /// The skill's `GET /api/skills/{name}` body, or `Null` when 404.
    pub async fn skill(&self, name: &str) -> Value {
        let (status, body) = self.get(&format!("/api/skills/{name}")).await;
        if status == 404 {
            Value::Null
        } else {
            body
        }
    }

    /// Waits until `check` holds of the skill's description (10 s at most).
    pub async fn wait_for(&self, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let skill = self.skill(name).await;
            if check(&skill) {
                return skill;
            }
            if started.elapsed() > Duration::from_secs(10) {
                panic!("timed out waiting for {name}: {what}; last state: {skill:#}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the skill's `last_error` mentions `needle` (10 s at most).
    pub async fn wait_for_error(&self, name: &str, needle: &str) -> Value {
        self.wait_for(name, needle, |s| {
            s["last_error"].as_str().is_some_and(|e| e.contains(needle))
        })
        .await
    }

    /// Kills the host with SIGKILL (`kill -9`): no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the host with SIGTERM and waits for it.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        // SIGTERM, so the host shuts down the way a service manager stops it.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Asserts an API error answer: its status and `error.code`, and that it
/// carries a message.
#[track_caller]
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (want_status, Some(want_code)),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The first line of `log` that contains `needle`.
#[track_caller]
pub fn log_line<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in the log:\n{log}"))
}

/// Runs the CLI against the host at `url`: (success, stdout, stderr).
pub fn run_cli(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(args)
        .env("DARKFACTORY_URL", url)
        .env_remove("DARKFACTORY_TOKEN")
        .output()
        .expect("run darkfactory");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
