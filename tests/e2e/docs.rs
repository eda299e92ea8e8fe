//! Docs that cannot rot: the command-line examples of README.md and
//! docs/*.md run, and their printed output is compared with the page.
//!
//! - A ```` ```console ```` block is a snapshot test of commands that need no
//!   host (trycmd): `$ darkfactory …` lines, an optional `? STATUS` line,
//!   then the output (stdout and stderr), where `...` on a line of its own
//!   stands for any lines and `[..]` for any text within one. Each page's
//!   blocks run in order in a fresh directory holding a copy of the
//!   repository's `skills/*.workflow.md`, and every file a page declares
//!   with `<!-- file: NAME -->` just before a fenced block (the block is
//!   the file). To fix a page, run its commands and paste what they print.
//! - The README's tour runs against a real host, see
//!   `the_readme_tour_runs_against_a_real_host`.

use crate::harness::{wasm, Dirs, Host};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The pages with examples: README.md and docs/*.md.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    for entry in std::fs::read_dir(repo().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.sort();
    pages
}

/// The fence that opens a block (three or more backticks) and its info string.
fn fence(line: &str) -> Option<(&str, &str)> {
    let ticks = line.len() - line.trim_start_matches('`').len();
    (ticks >= 3).then(|| (&line[..ticks], line[ticks..].trim()))
}

/// A page reduced to its console blocks, every other line blank (so that
/// trycmd's line numbers are the page's), and the files it declares.
fn console_blocks(page: &str) -> (String, Vec<(String, String)>) {
    let mut kept = String::new();
    let mut files = Vec::new();
    let mut lines = page.lines().peekable();
    let mut pending_file: Option<String> = None;
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .trim()
            .strip_prefix("<!-- file: ")
            .and_then(|l| l.strip_suffix("-->"))
        {
            pending_file = Some(name.trim().to_string());
            kept.push('\n');
            continue;
        }
        let Some((ticks, info)) = fence(line) else {
            kept.push('\n');
            continue;
        };
        let console = info == "console";
        kept.push_str(if console { line } else { "" });
        kept.push('\n');
        let mut body = String::new();
        while let Some(inner) = lines.next() {
            let closes =
                inner.starts_with(ticks) && inner.trim_start_matches('`').trim().is_empty();
            if console && closes {
                // trycmd drops the line break of a block's last line, which
                // a command's output ends with: the fence moves down a line,
                // onto the blank line that follows a block on every page.
                kept.push('\n');
                kept.push_str(inner);
                kept.push('\n');
                if lines.peek().is_some_and(|next| next.trim().is_empty()) {
                    lines.next();
                }
                break;
            }
            if console {
                kept.push_str(inner);
            }
            kept.push('\n');
            if closes {
                break;
            }
            body.push_str(inner);
            body.push('\n');
        }
        if let Some(name) = pending_file.take() {
            files.push((name, body));
        }
    }
    (kept, files)
}

fn copy_workflows(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(repo().join("skills")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".workflow.md") {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[test]
fn the_console_examples_of_the_docs_print_what_the_docs_say() {
    let work = tempfile::tempdir().unwrap();
    let mut cases = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let (blocks, files) = console_blocks(&text);
        if !blocks.contains("```console") {
            continue;
        }
        // README.md stays README.md, docs/x.md becomes docs-x.md, so that a
        // failure names its page.
        let rel = page
            .strip_prefix(repo())
            .unwrap()
            .to_string_lossy()
            .replace('/', "-");
        let case = work.path().join(&rel);
        let fixtures = case.with_extension("in");
        copy_workflows(&fixtures.join("skills"));
        for (name, body) in files {
            let path = fixtures.join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        std::fs::write(&case, blocks).unwrap();
        cases += 1;
    }
    assert!(cases >= 3, "the docs have console examples");
    eprintln!(
        "running the ```console blocks of the docs; a failure names the page as \
         README.md or docs-PAGE.md, at the page's own line numbers"
    );
    // The examples run as on a machine with nothing configured: the
    // `darkfactory` they call drops every DARKFACTORY_* variable of the
    // developer's environment (a DARKFACTORY_TOKEN for the client commands
    // would change what `config` prints).
    let wrapper = work.path().join("darkfactory");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor v in $(env | sed -n 's/^\\(DARKFACTORY_[A-Z_]*\\)=.*/\\1/p'); do unset \"$v\"; done\n\
             DARKFACTORY_LOG=warn exec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_darkfactory")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    trycmd::TestCases::new()
        .register_bin("darkfactory", wrapper.as_path())
        .case(work.path().join("*.md"))
        .run();
}

/// The commands of the README's tour, with the output the page promises.
struct Step {
    /// The command, continuation lines joined, its trailing comment dropped.
    command: String,
    /// What its output must be (`# OUTPUT` on the next line), or contain
    /// (`# prints OUTPUT` after it); `...` stands for any text.
    expect: Option<String>,
}

/// The `sh` blocks of the README's section "A five-minute tour".
fn tour() -> Vec<Step> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme.find("## A five-minute tour").expect("the tour");
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |e| e + start + 3);
    let mut steps: Vec<Step> = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme[start..end].lines() {
        if let Some((_, info)) = fence(line) {
            in_sh = !in_sh && info == "sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        if let Some(output) = line.trim().strip_prefix("# ") {
            let last = steps.last_mut().expect("an output after a command");
            last.expect = Some(output.to_string());
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        let (command, comment) = match full.find("  #") {
            Some(at) => (full[..at].trim().to_string(), Some(full[at + 3..].trim())),
            None => (full.trim().to_string(), None),
        };
        if command.is_empty() {
            continue;
        }
        let expect = comment
            .and_then(|c| c.strip_prefix("prints "))
            .map(|c| format!("...{c}..."));
        steps.push(Step { command, expect });
    }
    steps
}

/// Whether `text` matches `pattern`, where `...` stands for any text;
/// white space is ignored on both sides (JSON printed pretty or not).
fn matches_pattern(text: &str, pattern: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    let (text, pattern) = (squeeze(text), squeeze(pattern));
    let parts: Vec<&str> = pattern.split("...").collect();
    let mut rest = text.as_str();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

/// The README's tour, command by command, in a copy of the checkout's
/// layout (`skills/`, `guest-sdk/`, `target/release/darkfactory`, and
/// `.darkfactory/skills` served by a real host, as `make run` does). One
/// substitution: the host listens on a free port, so `localhost:8080`
/// becomes its address and the CLI gets it as `DARKFACTORY_URL`.
#[tokio::test]
async fn the_readme_tour_runs_against_a_real_host() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    for link in ["skills", "guest-sdk", "wit"] {
        std::os::unix::fs::symlink(repo().join(link), root.join(link)).unwrap();
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_darkfactory"));
    std::fs::create_dir_all(root.join("target")).unwrap();
    std::os::unix::fs::symlink(bin.parent().unwrap(), root.join("target/release")).unwrap();

    // What `make run` serves: the example skills and workflows.
    let dirs = Dirs::new();
    for skill in ["echo", "text-stats", "recall", "blocked", "dispatch"] {
        dirs.install(skill, &wasm(skill));
    }
    for workflow in ["blocked-escalator", "agent-down"] {
        let name = format!("{workflow}.workflow.md");
        std::fs::copy(repo().join("skills").join(&name), dirs.skills.join(&name)).unwrap();
    }
    std::fs::create_dir_all(root.join(".darkfactory")).unwrap();
    std::os::unix::fs::symlink(&dirs.skills, root.join(".darkfactory/skills")).unwrap();
    let host = Host::start(&dirs, &[]);
    let address = host.url.trim_start_matches("http://").to_string();

    let steps = tour();
    assert!(steps.len() >= 10, "the tour has its commands");
    // One shell runs every command (so `cd` and `export` carry over), each
    // one's output in a file of its own.
    let outputs = root.join(".tour");
    std::fs::create_dir_all(&outputs).unwrap();
    let mut script = String::from("set -uo pipefail\n");
    for (i, step) in steps.iter().enumerate() {
        let command = step.command.replace("localhost:8080", &address);
        let out = outputs.join(i.to_string());
        script.push_str(&format!(
            "{{ {command}\n}} >{out} 2>{out}.err || {{ echo \"step {i} failed: $?\" >&2; cat {out} {out}.err >&2; exit 1; }}\n",
            out = out.display(),
        ));
    }
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(&script)
        .current_dir(root)
        .env("DARKFACTORY_URL", &host.url)
        .env_remove("DARKFACTORY_TOKEN");
    // The project's own toolchain file picks the compiler, as on a
    // newcomer's machine (see authoring.rs).
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO") || key.starts_with("RUSTUP_TOOLCHAIN") || key == "RUSTC" {
            command.env_remove(&key);
        }
    }
    let run = command.output().unwrap();
    let listing: Vec<String> = steps.iter().map(|s| s.command.clone()).collect();
    assert!(
        run.status.success(),
        "the README's tour failed:\n{}\n{}",
        listing.join("\n"),
        String::from_utf8_lossy(&run.stderr)
    );
    for (i, step) in steps.iter().enumerate() {
        let printed = std::fs::read_to_string(outputs.join(i.to_string())).unwrap();
        // curl exits 0 on any answer: an error body is a failed step too.
        assert!(
            !(step.command.starts_with("curl") && printed.contains("\"error\":{")),
            "README tour: `{}` answered {printed}",
            step.command
        );
        let Some(expect) = &step.expect else {
            continue;
        };
        assert!(
            matches_pattern(&printed, expect),
            "README tour: `{}` printed {printed:?}, the README says {expect:?}",
            step.command
        );
    }
    // The workflow copied in by the tour is served from the copy.
    assert_eq!(host.skill("blocked-escalator").await["status"], "ready");
    host.stop();
}

#[test]
fn the_tour_reader_and_matcher() {
    assert!(matches_pattern("{\"a\": 1, \"b\": 2}", "{\"a\":1,...}"));
    assert!(matches_pattern("x {\"words\": 3}\n", "...{\"words\":3}..."));
    assert!(!matches_pattern("{\"a\": 2}", "{\"a\":1,...}"));
    assert!(!matches_pattern("{\"a\":1}tail", "{\"a\":1}"));
    let steps = tour();
    assert!(steps
        .iter()
        .any(|s| s.command.starts_with("curl -d") && s.expect.is_some()));
    assert!(
        steps.iter().all(|s| !s.command.contains('#')),
        "comments are dropped"
    );
}
