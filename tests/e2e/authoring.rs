//! A skill author outside this repository: the steps of docs/skills.md,
//! run verbatim from an empty directory for each language, against a host.
//!
//! Each `<!-- steps: LANG -->` block of the page is run by bash as it is
//! written, with `darkfactory` on `PATH`, the host at `DARKFACTORY_URL` and
//! `DARKFACTORY_SDK` pointing at this checkout's `guest-sdk` (there is no
//! network to fetch the SDK by git). The environment cargo gives a test
//! (`RUSTUP_TOOLCHAIN`, `CARGO_*`) is removed, so the project's own
//! toolchain file is what picks the compiler, as on the author's machine.

use crate::harness::{Dirs, Host};
use std::path::Path;
use std::process::Command;

/// The shell block after `<!-- steps: LANG -->` in docs/skills.md.
fn steps(lang: &str) -> String {
    let page =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/skills.md"))
            .unwrap();
    let marker = format!("<!-- steps: {lang} -->");
    let after = &page[page.find(&marker).unwrap_or_else(|| panic!("no {marker}"))..];
    let start = after.find("```sh\n").expect("a sh block after the marker") + 6;
    let end = after[start..].find("```").unwrap();
    after[start..start + end].to_string()
}

/// Runs `lang`'s steps in a new empty directory; the last command's output.
fn run_steps(lang: &str, host: &Host) -> String {
    let work = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_darkfactory"))
        .parent()
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let script = steps(lang);
    let mut command = Command::new("bash");
    command
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(work.path())
        .env("PATH", path)
        .env("DARKFACTORY_URL", &host.url)
        .env("DARKFACTORY_SDK", sdk);
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO") || key.starts_with("RUSTUP_TOOLCHAIN") || key == "RUSTC" {
            command.env_remove(&key);
        }
    }
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the {lang} steps of docs/skills.md failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_documented_steps_make_a_working_skill_in_every_language() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    for (lang, name) in [
        ("rust", "word-count"),
        ("python", "word-count-py"),
        ("js", "word-count-js"),
    ] {
        let out = run_steps(lang, &host);
        // The invoke prints the answer last, as (pretty) JSON.
        let answer = out.rfind("\n{").map_or(out.as_str(), |at| &out[at + 1..]);
        let answer: serde_json::Value = serde_json::from_str(answer)
            .unwrap_or_else(|e| panic!("{lang}: the invoke printed {answer:?} ({e}):\n{out}"));
        assert_eq!(answer["words"], 3, "{lang}: {out}");
        // Loaded from the upload, with the manifest it was built with.
        let skill = host.skill(name).await;
        assert_eq!(skill["status"], "ready", "{lang}: {skill:#}");
        assert_eq!(
            skill["manifest"]["description"], "Counts the words of a text",
            "{lang}: {skill:#}"
        );
    }
    host.stop();
}
