//! Starts the real `darkfactory` binary on an ephemeral loopback port with
//! temporary directories, and talks to it over HTTP.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The build's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn read_built(path: PathBuf, make: &str) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); build it first with `make {make}`",
            path.display()
        )
    })
}

/// The compiled test and example skills, built by `make skills`.
pub fn wasm(skill: &str) -> Vec<u8> {
    let file = format!("skill_{}.wasm", skill.replace('-', "_"));
    read_built(
        target_dir().join("wasm32-wasip2/skill").join(file),
        "skills",
    )
}

/// The Python and JavaScript skills, built by `make lang-skills`.
pub fn lang_skill(name: &str) -> Vec<u8> {
    read_built(
        target_dir()
            .join("lang-skills")
            .join(format!("{name}.wasm")),
        "lang-skills",
    )
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
    /// The `--token` it was started with: [`Host::get`] sends it.
    pub token: Option<String>,
}

impl Host {
    /// Starts a host on `dirs` with extra `serve` arguments, and waits until
    /// it is ready: every skill in the directory loaded or failed.
    pub fn start(dirs: &Dirs, extra: &[&str]) -> Host {
        let host = Host::start_listening(dirs, extra);
        host.wait_ready(Duration::from_secs(60));
        host
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        loop {
            if raw_status(&self.url, "/readyz") == Some(200) {
                return;
            }
            if started.elapsed() > within {
                panic!("the host at {} was not ready within {within:?}", self.url);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a host whose open-file limit is `open_files` (soft and hard),
    /// and waits until it is ready.
    pub fn start_with_open_files(dirs: &Dirs, extra: &[&str], open_files: u64) -> Host {
        let host = Host::spawn(dirs, extra, Some(open_files), &[]);
        host.wait_ready(Duration::from_secs(60));
        host
    }

    /// Starts a host on `dirs` with extra `serve` arguments, and returns as
    /// soon as it listens (its skills may still be loading).
    pub fn start_listening(dirs: &Dirs, extra: &[&str]) -> Host {
        Host::spawn(dirs, extra, None, &[])
    }

    /// [`Host::start`] with variables added to its environment.
    pub fn start_with_env(dirs: &Dirs, extra: &[&str], env: &[(&str, &str)]) -> Host {
        let host = Host::spawn(dirs, extra, None, env);
        host.wait_ready(Duration::from_secs(60));
        host
    }

    fn spawn(dirs: &Dirs, extra: &[&str], open_files: Option<u64>, env: &[(&str, &str)]) -> Host {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dirs.log_path())
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_darkfactory"));
        if let Some(n) = open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
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
            .envs(env.iter().copied())
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
        let token = extra
            .iter()
            .position(|a| *a == "--token")
            .and_then(|i| extra.get(i + 1))
            .map(|t| t.to_string());
        Host {
            child,
            url: addr.to_string(),
            // A pooled client, as real callers use: early answers (401, 413)
            // must not leave it a connection the host is closing.
            http: reqwest::Client::new(),
            token,
        }
    }

    /// `GET path`, with the host's token when it has one.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// POSTs every body to `path` at once; their statuses, in order.
    pub async fn post_all_at_once(&self, path: &str, bodies: Vec<Value>) -> Vec<u16> {
        let posts: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let request = self.http.post(format!("{}{path}", self.url)).json(&body);
                tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for post in posts {
            statuses.push(post.await.unwrap());
        }
        statuses
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of `/proc/PID/status` (the number before any unit).
    fn proc_status(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/PID/status"))
    }

    /// The host's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.proc_status("VmRSS:")
    }

    /// The host's threads.
    pub fn threads(&self) -> u64 {
        self.proc_status("Threads:")
    }

    /// Waits until the skill's `last_error` mentions `needle` (10 s at
    /// most) and returns it.
    pub async fn error_of(&self, name: &str, needle: &str) -> String {
        let skill = self.wait_for_error(name, needle).await;
        skill["last_error"].as_str().unwrap_or_default().to_string()
    }

    /// Sends SIGTERM and asserts that the host exits within `within`.
    pub fn stop_and_wait(mut self, within: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the host did not exit within {within:?} of SIGTERM");
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

/// The status of a `GET` of `path`, over a plain socket (usable outside a
/// runtime); `None` when the host does not answer.
pub fn raw_status(url: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://")?;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// Starts `serve` on `skills` and `data` with `args`, which must make it
/// refuse to start: its standard error. A host that starts anyway (and
/// would run for ever) fails the test after 20 s.
pub fn refused_start(skills: &Path, data: &Path, args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--skills"])
        .arg(skills)
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("DARKFACTORY_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start darkfactory");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the host started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends `request` as it is over a new connection and reads one answer:
/// its status, its head, and its body (by `content-length`, or to the end).
pub fn raw_request(url: &str, request: &[u8]) -> (u16, String, String) {
    use std::io::{Read, Write};
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The host may answer (and stop reading) before the request is all sent.
    let _ = stream.write_all(request);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => panic!(
                "no complete answer; got {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let mut body = buf[head_end + 4..].to_vec();
    while length.is_none_or(|n| body.len() < n) {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, String::from_utf8_lossy(&body).into_owned())
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
    run_cli_as(url, None, args)
}

/// Runs the CLI against the host at `url` with `token` (in
/// `DARKFACTORY_TOKEN`, as a service would set it).
pub fn run_cli_as(url: &str, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_darkfactory"));
    command.args(args).env("DARKFACTORY_URL", url);
    match token {
        Some(token) => command.env("DARKFACTORY_TOKEN", token),
        None => command.env_remove("DARKFACTORY_TOKEN"),
    };
    let out = command.output().expect("run darkfactory");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
