//! Builds the workflow interpreter (`host/workflow-vm`) into the core Wasm
//! module that every compiled workflow is made from, so that compiling a
//! workflow later needs no Rust toolchain: the host carries the interpreter.
//!
//! It runs a nested `cargo rustc` for `wasm32-unknown-unknown` (no WASI
//! imports at all: a workflow gets only the capabilities it calls) with its
//! own target directory under `OUT_DIR`, and remaps source paths so the
//! module's bytes do not depend on where the checkout is.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let host_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = host_dir.parent().expect("host/ is inside the workspace");
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for input in [
        host_dir.join("workflow-vm/src"),
        host_dir.join("workflow-vm/Cargo.toml"),
        workspace.join("wit"),
        workspace.join("Cargo.lock"),
    ] {
        println!("cargo:rerun-if-changed={}", input.display());
    }

    let target_dir = out_dir.join("workflow-vm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["rustc", "--release", "--locked", "--lib"])
        .args(["-p", "darkfactory-workflow-vm", "--features", "guest"])
        .args(["--target", TARGET, "--crate-type", "cdylib"])
        .arg("--target-dir")
        .arg(&target_dir);
    // Small, deterministic code: the host compiles every workflow component
    // with Cranelift, and that time is most of a workflow's hot load.
    for setting in [
        "profile.release.opt-level=\"s\"",
        "profile.release.lto=true",
        "profile.release.codegen-units=1",
        "profile.release.panic=\"abort\"",
        "profile.release.strip=true",
        "profile.release.debug=false",
        "profile.release.incremental=false",
    ] {
        cmd.args(["--config", setting]);
    }
    // What the outer build set for itself must not leak into this one.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_INCREMENTAL",
    ] {
        cmd.env_remove(var);
    }
    for (var, _) in env::vars() {
        if var.starts_with("CARGO_PROFILE_") || var.starts_with("CARGO_BUILD_") {
            cmd.env_remove(var);
        }
    }
    let mut remaps = vec![format!(
        "--remap-path-prefix={}=/darkfactory",
        workspace.display()
    )];
    if let Some(home) = cargo_home() {
        remaps.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", remaps.join("\x1f"));

    let status = cmd
        .status()
        .expect("cannot run cargo to build the workflow interpreter");
    if !status.success() {
        panic!(
            "building the workflow interpreter for {TARGET} failed (see above). When the \
             target is missing: `rustup target add {TARGET}` (`make test` and `make run` \
             install it)"
        );
    }
    let built = target_dir
        .join(TARGET)
        .join("release/darkfactory_workflow_vm.wasm");
    std::fs::copy(&built, out_dir.join("workflow-vm.wasm"))
        .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
}

fn cargo_home() -> Option<PathBuf> {
    if let Ok(home) = env::var("CARGO_HOME") {
        return Some(PathBuf::from(home));
    }
    env::var("HOME").ok().map(|h| Path::new(&h).join(".cargo"))
}
