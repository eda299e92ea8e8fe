//! Diagnostics: every problem of a workflow file, with where it is, what was
//! expected there, and a hint that says how to fix it.
//!
//! The checker never stops at the first error; the compiler refuses a file
//! with any error and reports all of them. Rendering follows rustc's shape,
//! which engineers and LLMs both read without help.

use serde::Serialize;
use std::fmt::Write as _;

/// A position in the workflow file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// A stretch of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Span {
    pub start: Pos,
    /// Columns covered (at least 1).
    pub len: u32,
}

impl Span {
    /// A span of `len` characters at `line:col`.
    pub fn new(line: u32, col: u32, len: u32) -> Self {
        Span {
            start: Pos { line, col },
            len: len.max(1),
        }
    }

    /// From the start of `self` to the end of `other` when both are on one
    /// line; otherwise `self`.
    pub fn to(self, other: Span) -> Span {
        if other.start.line == self.start.line && other.start.col >= self.start.col {
            Span {
                start: self.start,
                len: other.start.col + other.len - self.start.col,
            }
        } else {
            self
        }
    }
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The file does not compile.
    Error,
    /// It compiles, but something is likely wrong (a capability declared and
    /// never used).
    Warning,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Diagnostic {
    pub severity: Severity,
    pub line: u32,
    pub column: u32,
    #[serde(skip)]
    pub len: u32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            line: span.start.line,
            column: span.start.col,
            len: span.len,
            message: message.into(),
            expected: None,
            hint: None,
        }
    }

    /// A warning at `span`.
    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    /// Says what was expected there.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Says how to fix it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Whether it stops the file from compiling.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// All the problems of one file, in source order.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    /// How many errors.
    pub fn errors(&self) -> usize {
        self.0.iter().filter(|d| d.is_error()).count()
    }

    /// Sorts by position; the same position keeps the order of discovery.
    pub fn sort(&mut self) {
        self.0.sort_by_key(|d| (d.line, d.column));
    }

    /// Renders them the way rustc does, quoting the source line.
    pub fn render(&self, file: &str, source: &str) -> String {
        let lines: Vec<&str> = source.lines().collect();
        // One gutter width for the whole report, as rustc does.
        let width = self
            .0
            .iter()
            .map(|d| d.line.to_string().len())
            .max()
            .unwrap_or(1);
        let mut out = String::new();
        for d in &self.0 {
            let label = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(out, "{label}: {}", d.message);
            let _ = writeln!(
                out,
                "{}--> {file}:{}:{}",
                " ".repeat(width),
                d.line,
                d.column
            );
            if let Some(text) = lines.get(d.line.saturating_sub(1) as usize) {
                let number = format!("{:>width$}", d.line);
                let pad = " ".repeat(width);
                let text: String = text
                    .chars()
                    .map(|c| if c == '\t' { ' ' } else { c })
                    .collect();
                let caret_at = " ".repeat(d.column.saturating_sub(1) as usize);
                let carets = "^".repeat(d.len.clamp(1, 200) as usize);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{number} | {text}");
                match &d.expected {
                    Some(expected) => {
                        let _ = writeln!(out, "{pad} | {caret_at}{carets} expected {expected}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad} | {caret_at}{carets}");
                    }
                }
                if let Some(hint) = &d.hint {
                    let _ = writeln!(out, "{pad} = hint: {hint}");
                }
            } else {
                if let Some(expected) = &d.expected {
                    let _ = writeln!(out, "   = expected {expected}");
                }
                if let Some(hint) = &d.hint {
                    let _ = writeln!(out, "   = hint: {hint}");
                }
            }
            out.push('\n');
        }
        let errors = self.errors();
        let warnings = self.0.len() - errors;
        let _ = match (errors, warnings) {
            (0, 0) => writeln!(out, "{file}: ok"),
            (0, w) => writeln!(out, "{file}: ok, {w} warning{}", plural(w)),
            (e, 0) => writeln!(out, "{file}: {e} error{}", plural(e)),
            (e, w) => writeln!(
                out,
                "{file}: {e} error{}, {w} warning{}",
                plural(e),
                plural(w)
            ),
        };
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The closest of `candidates` to `word`, when one is close enough to be a
/// likely typo (edit distance at most a third of the word, and at least 1).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbours counts as one edit (the
/// commonest typo).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_words_only() {
        assert_eq!(did_you_mean("crads", ["cards", "lists"]), Some("cards"));
        assert_eq!(
            did_you_mean("titel", ["title", "labels", "list"]),
            Some("title")
        );
        assert_eq!(did_you_mean("zzz", ["cards"]), None);
    }

    #[test]
    fn renders_like_rustc() {
        let mut d = Diagnostics::default();
        d.push(
            Diagnostic::error(Span::new(2, 10, 5), "undefined variable `crads`")
                .expected("a variable declared with `let`")
                .hint("did you mean `cards`?"),
        );
        let text = d.render("x.workflow.md", "let cards = []\nfor c in crads {\n}\n");
        assert_eq!(
            text,
            "error: undefined variable `crads`\n --> x.workflow.md:2:10\n  |\n2 | for c in crads {\n  |          ^^^^^ expected a variable declared with `let`\n  = hint: did you mean `cards`?\n\nx.workflow.md: 1 error\n"
        );
    }
}
