//! The compiler as a whole: golden error messages, determinism, every
//! example's Tests section, the sandbox's limits, and a property test that
//! no input makes the parser or the checker panic.

use super::*;
use crate::runtime::{InvokeError, Runtime, RuntimeConfig};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(SUFFIX))
        .collect();
    files.sort();
    files
}

/// `tests/workflows/NAME.workflow.md` renders exactly `NAME.out`. Run with
/// `UPDATE_GOLDEN=1` to rewrite the `.out` files after a deliberate change.
#[test]
fn error_messages_match_their_golden_files() {
    let dir = repo().join("tests/workflows");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for path in files(&dir) {
        let source = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_str().unwrap();
        let checked = check(&source, name_from_file(file));
        assert!(
            checked.diagnostics.has_errors(),
            "{file} is meant to have errors"
        );
        let rendered = checked.diagnostics.render(file, &source);
        let golden = path.with_file_name(file.replace(SUFFIX, ".out"));
        if update {
            std::fs::write(&golden, &rendered).unwrap();
        } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
            mismatches.push(format!("{}:\n{rendered}", golden.display()));
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden files differ (UPDATE_GOLDEN=1 rewrites them):\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn the_same_source_gives_the_same_component() {
    let source =
        std::fs::read_to_string(repo().join("skills/blocked-escalator.workflow.md")).unwrap();
    let a = compile(&source, Some("blocked-escalator")).unwrap();
    let b = compile(&source, Some("blocked-escalator")).unwrap();
    assert_eq!(a.component, b.component);
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(a.sha256, sha256_hex(&a.component));
    // The manifest names the source, so another source is another component.
    let c = compile(
        &source.replace("escalated by the factory", "escalated"),
        Some("blocked-escalator"),
    )
    .unwrap();
    assert_ne!(a.sha256, c.sha256);
    assert!(a.manifest.contains(&a.source_sha256));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_checks_clean_and_passes_its_tests() {
    let examples = files(&repo().join("skills"));
    assert!(examples.len() >= 5, "one example per gap kind");
    let mut kinds = Vec::new();
    for path in examples {
        let source = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_str().unwrap();
        let compiled = compile(&source, name_from_file(file)).unwrap_or_else(|e| match e {
            CompileError::Invalid(d) => panic!("{}", d.render(file, &source)),
            other => panic!("{file}: {other}"),
        });
        assert!(
            compiled.diagnostics.0.is_empty(),
            "{}",
            compiled.diagnostics.render(file, &source)
        );
        assert!(
            compiled.checked.tests.len() >= 2,
            "{file} has at least two examples"
        );
        for outcome in fixtures::run(&compiled).await.unwrap() {
            assert!(
                outcome.passed,
                "{file}: `{}`: {:?}",
                outcome.name, outcome.problems
            );
        }
        if let front::Trigger::Gap(kind) = &compiled.checked.header.trigger {
            kinds.push(kind.clone());
        }
    }
    kinds.sort();
    let mut all: Vec<String> = front::GAP_KINDS.iter().map(|k| k.to_string()).collect();
    all.sort();
    assert_eq!(kinds, all, "an example for each gap kind");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_example_says_why() {
    let source = "+++\ndescription = \"d\"\n[capabilities]\nboard_read = [\"*\"]\n+++\n## Steps\n```workflow\nlet lists = board.lists()\nreturn { n: len(lists) }\n```\n## Tests\n### wrong count\n```toml\n[fixtures]\n\"board.lists\" = [{ name = \"A\" }]\n[expect]\noutput = { n = 2 }\n```\n### no fixture\n```toml\n[expect]\noutput = { n = 0 }\n```\n";
    let compiled = compile(source, Some("t")).unwrap();
    let outcomes = fixtures::run(&compiled).await.unwrap();
    assert!(!outcomes[0].passed);
    assert_eq!(
        outcomes[0].problems,
        vec!["the output is {\"n\":1}, expected {\"n\":2}".to_string()]
    );
    assert!(
        outcomes[1].problems[0]
            .contains("`board.lists` was called, but the test has no fixture for it"),
        "{:?}",
        outcomes[1].problems
    );
}

/// Another skill's answer is a value from the fixtures; its own error is
/// written "failed: CODE: message".
#[tokio::test(flavor = "multi_thread")]
async fn calls_to_other_skills_are_answered_from_fixtures() {
    let source = r#"+++
description = "d"
[capabilities]
skills = ["text-stats"]
+++
## Steps
```workflow
let stats = skills.invoke(name: "text-stats", input: { text: "a b" })
return { words: stats.words }
```
## Tests
### answered
```toml
[fixtures]
"skills.invoke" = { words = 2 }
[expect]
output = { words = 2 }
```
### the callee fails
```toml
[failures]
"skills.invoke" = "failed: empty-text: there is no text"
[expect]
error = "skills-failed"
```
"#;
    let compiled = compile(source, Some("t")).unwrap();
    let outcomes = fixtures::run(&compiled).await.unwrap();
    assert!(outcomes.iter().all(|o| o.passed), "{outcomes:?}");
    assert_eq!(
        outcomes[0].calls[0].args["input"],
        serde_json::json!({"text": "a b"})
    );
    assert!(outcomes[1]
        .error
        .as_deref()
        .unwrap()
        .contains("empty-text: there is no text"));
}

/// What may be null stays so through `.field` and `[index]`: the checker
/// types the result optional, and the run gives null instead of failing.
#[tokio::test(flavor = "multi_thread")]
async fn fields_and_items_of_what_may_be_null_are_optional() {
    let source = r#"+++
description = "d"
[input]
tags = "list<string>?"
+++
## Steps
```workflow
return { first: input.tags[0] ?? "none" }
```
## Tests
### no tags
```toml
[expect]
output = { first = "none" }
```
### tags
```toml
input = { tags = ["ci"] }
[expect]
output = { first = "ci" }
```
"#;
    let compiled = compile(source, Some("t")).unwrap();
    assert!(
        compiled.diagnostics.0.is_empty(),
        "{:?}",
        compiled.diagnostics
    );
    for outcome in fixtures::run(&compiled).await.unwrap() {
        assert!(outcome.passed, "{outcome:?}");
    }
    let bare = source.replace(r#"input.tags[0] ?? "none""#, "len(input.tags[0])");
    let d = check(&bare, Some("t")).diagnostics;
    assert!(
        d.0[0].hint.as_deref().unwrap_or("").contains("may be null"),
        "{d:?}"
    );
}

/// A workflow that runs forever is stopped by its deadline, like any skill.
#[tokio::test(flavor = "multi_thread")]
async fn an_endless_workflow_is_stopped_by_the_deadline() {
    let source = "+++\ndescription = \"spins\"\n[limits]\ndeadline_ms = 300\n+++\n## Steps\n```workflow\nlet n = 0\nfor i in range(10000) {\n  for j in range(10000) {\n    for k in range(10000) {\n      n = n + 1\n    }\n  }\n}\nreturn n\n```\n";
    let compiled = compile(source, Some("spin")).unwrap();
    let rt = Runtime::new(
        RuntimeConfig::default(),
        &crate::capabilities::add_to_linker,
    )
    .unwrap();
    let resolved = crate::skill::Manifest::merge(Some(&compiled.manifest), None)
        .unwrap()
        .resolve("spin", rt.config())
        .unwrap();
    let pre = rt
        .prepare(&rt.compile(&compiled.component).unwrap())
        .unwrap();
    let started = std::time::Instant::now();
    let err = rt
        .invoke(&pre, &"spin".into(), &resolved.limits, None, "{}")
        .await
        .unwrap_err();
    assert!(matches!(err, InvokeError::DeadlineExceeded(_)), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn sizes_counts_and_depths_are_bounded() {
    let big = format!(
        "+++\ndescription = \"d\"\n+++\n## Steps\n```workflow\n{}```\n",
        "let x = 1\n".repeat(30_000)
    );
    let d = check(&big, Some("big")).diagnostics;
    assert!(d.0[0].message.contains("at most 256 KiB"), "{:?}", d.0[0]);
    let many = format!(
        "+++\ndescription = \"d\"\n+++\n## Steps\n```workflow\n{}```\n",
        "log.info(\"x\")\n".repeat(2_500)
    );
    let d = check(&many, Some("many")).diagnostics;
    assert!(d
        .0
        .iter()
        .any(|d| d.message.contains("at most 2000 are allowed")));
    let deep = format!(
        "+++\ndescription = \"d\"\n+++\n## Steps\n```workflow\nreturn {}1{}\n```\n",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let d = check(&deep, Some("deep")).diagnostics;
    assert!(d.0.iter().any(|d| d.message.contains("nested more than")));
}

/// SplitMix64: a small, seeded generator, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces the mutations splice in: the language's own tokens, so that the
/// inputs get deep into the parser and the checker, not only the lexer.
const PIECES: [&str; 40] = [
    "let ",
    "if ",
    "else ",
    "for ",
    " in ",
    "return ",
    "fail(",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "\"",
    "\"{",
    "}\"",
    ",",
    ":",
    ".",
    "=",
    "==",
    "??",
    "+",
    "-",
    "/",
    "%",
    "\n",
    "#",
    "```",
    "+++",
    "## Steps\n",
    "## Tests\n### t\n```toml\n",
    "board.cards(",
    "input.",
    "len(",
    "range(",
    "null",
    "1e999",
    "\\",
    "é",
];

/// The parser and the checker never panic: thousands of mutations of the
/// examples and golden files (insertions of the language's tokens, cuts,
/// swaps), each checked. `WORKFLOW_FUZZ_CASES` raises the count.
#[test]
fn no_input_makes_the_checker_panic() {
    let mut seeds: Vec<String> = files(&repo().join("skills"))
        .into_iter()
        .chain(files(&repo().join("tests/workflows")))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    seeds.push(String::new());
    let cases: usize = std::env::var("WORKFLOW_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000);
    let mut rng = Rng(0x5eed_0fd1_ff00);
    for case in 0..cases {
        let mut text: Vec<char> = seeds[case % seeds.len()].chars().collect();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(text.len() + 1);
            match rng.below(4) {
                0 => {
                    let piece = PIECES[rng.below(PIECES.len())];
                    text.splice(at..at, piece.chars());
                }
                1 if !text.is_empty() => {
                    let end = (at + 1 + rng.below(40)).min(text.len());
                    text.drain(at.min(end)..end);
                }
                2 if text.len() > 2 => {
                    let other = rng.below(text.len());
                    let at = at.min(text.len() - 1);
                    text.swap(at, other);
                }
                _ => text.insert(at, char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')),
            }
        }
        let source: String = text.into_iter().collect();
        let result = std::panic::catch_unwind(|| {
            let checked = check(&source, Some("fuzz"));
            checked.diagnostics.render("fuzz.workflow.md", &source);
        });
        assert!(result.is_ok(), "case {case} panicked; input:\n{source}");
    }
}
