//! `darkfactory.toml` with the real binary: the file sets what no flag and
//! no variable set, secrets come from where it says, a bad file stops the
//! host with the file's line and column, and `config show` hides secrets.

use crate::harness::{refused_start, wasm, Dirs, Host};
use std::path::Path;
use std::process::Command;

/// A body of `n` bytes that echo accepts as JSON.
fn body_of(n: usize) -> String {
    let pad = "x".repeat(n - r#"{"p":""}"#.len());
    format!(r#"{{"p":"{pad}"}}"#)
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("darkfactory.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn serve_takes_the_file_under_flags_and_the_environment() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("token"), "file-token-0123456789\n").unwrap();
    // `listen` is overridden by the harness's --listen 127.0.0.1:0: were
    // the file to win, the host would listen on a port nobody can bind.
    let file = write_config(
        conf.path(),
        "listen = \"127.0.0.1:1\"\ntoken_file = \"token\"\n\n[http]\nmax_body = 2048\n",
    );
    let file = file.to_str().unwrap();

    let host = Host::start(&dirs, &["--config", file]);
    let (status, _) = host.invoke("echo", "{}").await;
    assert_eq!(status, 401, "the token of token_file protects the host");
    let (status, out) = host
        .invoke_as("file-token-0123456789", "echo", &body_of(1000))
        .await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = host
        .invoke_as("file-token-0123456789", "echo", &body_of(3000))
        .await;
    assert_eq!(status, 413, "max_body of the file applies: {out}");
    host.stop();

    // The environment wins over the file, and a flag over both.
    let host = Host::start_with_env(
        &dirs,
        &["--config", file, "--token", "flag-token-0123456789"],
        &[("DARKFACTORY_MAX_BODY", "4096")],
    );
    let (status, _) = host.invoke_as("file-token-0123456789", "echo", "{}").await;
    assert_eq!(status, 401, "--token wins over token_file");
    let (status, out) = host
        .invoke_as("flag-token-0123456789", "echo", &body_of(3000))
        .await;
    assert_eq!(
        status, 200,
        "DARKFACTORY_MAX_BODY wins over max_body: {out}"
    );
    host.stop();
}

#[tokio::test]
async fn secrets_named_by_the_file_are_read_from_the_environment() {
    let dirs = Dirs::new();
    dirs.install("echo", &wasm("echo"));
    let conf = tempfile::tempdir().unwrap();
    let file = write_config(conf.path(), "token_env = \"E2E_FLEET_TOKEN\"\n");
    let host = Host::start_with_env(
        &dirs,
        &["--config", file.to_str().unwrap()],
        &[("E2E_FLEET_TOKEN", "env-token-0123456789")],
    );
    assert_eq!(host.invoke("echo", "{}").await.0, 401);
    assert_eq!(
        host.invoke_as("env-token-0123456789", "echo", "{}").await.0,
        200
    );
    host.stop();
}

#[test]
fn a_bad_file_stops_the_host_with_its_place() {
    let dirs = Dirs::new();
    let conf = tempfile::tempdir().unwrap();
    let file = write_config(
        conf.path(),
        "listen = \"127.0.0.1:0\"\n[http]\nmax_bdy = 5\nidle_timeout = \"0s\"\n",
    );
    let file = file.to_str().unwrap();
    let err = refused_start(&dirs.skills, &dirs.data, &["--config", file]);
    assert!(
        err.contains(&format!(
            "{file}:3:1: unknown key `max_bdy` in [http]; did you mean `max_body`?"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:4:16: `http.idle_timeout` is refused: \"0s\": must be above zero"
        )),
        "{err}"
    );
    assert!(!dirs.data.exists(), "nothing was opened");

    let missing = conf.path().join("missing.toml");
    let err = refused_start(
        &dirs.skills,
        &dirs.data,
        &["--config", missing.to_str().unwrap()],
    );
    assert!(err.contains("cannot read the configuration"), "{err}");

    let secret = write_config(conf.path(), "token = \"hunter2-hunter2\"\n");
    let err = refused_start(
        &dirs.skills,
        &dirs.data,
        &["--config", secret.to_str().unwrap()],
    );
    assert!(err.contains(":1:1: `token` is a secret"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn config_check_and_show() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("key"), "planka-key-0123456789").unwrap();
    write_config(
        conf.path(),
        "listen = \"0.0.0.0:8080\"\ntoken_env = \"E2E_TOKEN\"\n[planka]\nurl = \"http://planka:1337\"\napi_key_file = \"key\"\nboard_id = \"42\"\n[fleet]\nredis_url_env = \"E2E_REDIS\"\n",
    );
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_darkfactory"))
            .args(args)
            .current_dir(conf.path())
            .env_remove("DARKFACTORY_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let env = [
        ("E2E_TOKEN", "token-0123456789"),
        ("E2E_REDIS", "redis://:redis-pw-0123@redis:6379/0"),
    ];
    // ./darkfactory.toml is read without --config.
    let (code, out, err) = run(&["config", "check"], &env);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out, "ok: darkfactory.toml and the environment\n");

    let (code, out, err) = run(&["config", "show", "--planka-timeout", "3s"], &env);
    assert_eq!(code, Some(0), "{err}");
    for line in [
        "listen = \"0.0.0.0:8080\"",
        "token = \"********\"",
        "$E2E_TOKEN (named at darkfactory.toml:2:1)",
        "api_key = \"********\"",
        "timeout = \"3s\"",
        "# flag --planka-timeout",
        "redis_url = \"redis://:********@redis:6379/0\"",
        "max_body = 1048576",
    ] {
        assert!(out.contains(line), "{line:?} missing from:\n{out}");
    }
    for secret in ["token-0123456789", "planka-key-0123456789", "redis-pw-0123"] {
        assert!(!out.contains(secret), "{secret} shown:\n{out}");
    }

    // Without the token, the public address is refused, as serve would.
    let (code, _, err) = run(&["config", "check"], &env[1..]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("darkfactory.toml:2:1: `token` is read from $E2E_TOKEN, which is not set"),
        "{err}"
    );
    let (code, _, err) = run(&["config", "check", "--token", ""], &env[1..]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("refusing to listen on 0.0.0.0:8080 without a bearer token"),
        "{err}"
    );
}

#[test]
fn an_empty_variable_leaves_the_file_in_force_and_the_file_completes_the_environment() {
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(conf.path().join("token"), "file-token-0123456789\n").unwrap();
    let file = write_config(
        conf.path(),
        "token_file = \"token\"\n[embeddings]\nmodel = \"all-minilm\"\n",
    );
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_darkfactory"))
            .args(args)
            .args(["--config", file.to_str().unwrap()])
            .env_remove("DARKFACTORY_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    // A compose file's `DARKFACTORY_TOKEN: ${UNSET}` is an empty variable:
    // the file's token stays, the host is not left open.
    let (code, out) = run(&["config", "show"], &[("DARKFACTORY_TOKEN", "")]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("token = \"********\"") && out.contains("# file "),
        "{out}"
    );
    // The URL from the environment, the model from the file.
    let (code, out) = run(
        &["config", "check"],
        &[("DARKFACTORY_EMBEDDINGS_URL", "http://127.0.0.1:1/v1")],
    );
    assert_eq!(code, Some(0), "{out}");
    std::fs::write(&file, "[embeddings]\nurl = \"http://127.0.0.1:1/v1\"\n").unwrap();
    let (code, out) = run(&["config", "check"], &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("--embeddings-url needs --embeddings-model (`embeddings.model`)"),
        "{out}"
    );
}
