//! Test skill `probe`: tries to reach the environment, the arguments, stdin,
//! the filesystem and the network, and reports what it got. Under the host's
//! deny-by-default WASI every attempt must come back empty or refused.
//!
//! Input: `{"connect": "127.0.0.1:PORT"}` names an address to try.

use darkfactory_sdk::{export_skill, SkillError};
use serde_json::{json, Value};
use std::io::Read;

fn outcome<T, E: std::fmt::Display>(result: Result<T, E>, ok: impl FnOnce(T) -> String) -> Value {
    match result {
        Ok(value) => json!({ "ok": ok(value) }),
        Err(err) => json!({ "error": err.to_string() }),
    }
}

fn probe(input: Value) -> Result<Value, SkillError> {
    let mut stdin = String::new();
    let stdin = outcome(std::io::stdin().read_to_string(&mut stdin), |n| {
        format!("read {n} bytes")
    });
    let listing = outcome(std::fs::read_dir("/"), |d| format!("{} entries", d.count()));
    let file = outcome(std::fs::read("/etc/passwd"), |b| {
        format!("{} bytes", b.len())
    });
    let write = outcome(std::fs::write("probe.txt", b"x"), |_| "written".to_string());
    let connect = match input.get("connect").and_then(Value::as_str) {
        Some(addr) => outcome(std::net::TcpStream::connect(addr), |_| {
            "connected".to_string()
        }),
        None => Value::Null,
    };
    Ok(json!({
        "env": std::env::vars().count(),
        "args": std::env::args().count(),
        "stdin": stdin,
        "read_dir": listing,
        "read_file": file,
        "write_file": write,
        "connect": connect,
    }))
}

export_skill!(probe);
