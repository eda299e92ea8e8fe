//! The document around the code: front matter, the `## Steps` section and
//! its fenced `workflow` blocks, and the `## Tests` section.
//!
//! Only the structure matters here; everything else in the file is prose for
//! the reviewer. Line numbers are kept so that every later error points into
//! the `.md` file itself.

use super::diag::{Diagnostic, Diagnostics, Span};

/// A piece of the file and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The text, lines joined with `\n`.
    pub text: String,
    /// 1-based line of the first line of `text`.
    pub first_line: u32,
}

impl Block {
    /// The span of a byte range of `text` (clipped to its first line).
    pub fn span_of(&self, range: std::ops::Range<usize>) -> Span {
        let start = range.start.min(self.text.len());
        let start = (0..=start)
            .rev()
            .find(|i| self.text.is_char_boundary(*i))
            .unwrap_or(0);
        let before = &self.text[..start];
        let line = before.matches('\n').count() as u32;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = before[line_start..].chars().count() as u32 + 1;
        let end = range.end.clamp(start, self.text.len());
        let end = (start..=end)
            .rev()
            .find(|i| self.text.is_char_boundary(*i))
            .unwrap_or(start);
        let rest = &self.text[start..end];
        let len = rest.split('\n').next().unwrap_or("").chars().count() as u32;
        Span::new(self.first_line + line, col, len)
    }
}

/// One example of the `## Tests` section: a `### name` heading and the
/// ```` ```toml ```` block under it.
#[derive(Debug, Clone, PartialEq)]
pub struct TestBlock {
    pub name: String,
    /// Where the heading is.
    pub heading: Span,
    pub body: Option<Block>,
}

/// The parts of a workflow file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Document {
    /// The TOML between the `+++` lines.
    pub front: Option<Block>,
    /// The `workflow` blocks of `## Steps`, in order.
    pub steps: Vec<Block>,
    /// The examples of `## Tests`.
    pub tests: Vec<TestBlock>,
}

#[derive(PartialEq)]
enum Section {
    Other,
    Steps,
    Tests,
}

/// Splits `source` into its parts; structural problems go to `diags`.
pub fn split(source: &str, diags: &mut Diagnostics) -> Document {
    let lines: Vec<&str> = source.lines().collect();
    let mut doc = Document::default();
    let mut i = 0usize;
    let line_no = |i: usize| (i + 1) as u32;

    match lines.first().map(|l| l.trim_end()) {
        Some("+++") => match lines[1..].iter().position(|l| l.trim_end() == "+++") {
            Some(end) => {
                doc.front = Some(Block {
                    text: lines[1..=end].join("\n"),
                    first_line: 2,
                });
                i = end + 2;
            }
            None => {
                diags.push(
                    Diagnostic::error(Span::new(1, 1, 3), "the front matter is not closed")
                        .expected("a line `+++` after the front matter"),
                );
                return doc;
            }
        },
        Some("---") => {
            diags.push(
                Diagnostic::error(Span::new(1, 1, 3), "the front matter must be TOML between `+++` lines")
                    .expected("`+++`")
                    .hint("write `+++`, then `name = \"...\"` style TOML, then `+++` (YAML front matter is not read)"),
            );
            // Skip it so that the rest of the file is still checked.
            if let Some(end) = lines[1..].iter().position(|l| l.trim_end() == "---") {
                i = end + 2;
            }
        }
        _ => diags.push(
            Diagnostic::error(
                Span::new(1, 1, 1),
                "the file does not start with front matter",
            )
            .expected("`+++` on the first line")
            .hint("start the file with `+++`, `name = \"...\"`, `description = \"...\"`, `+++`"),
        ),
    }

    let mut section = Section::Other;
    let mut steps_heading = None;
    let mut saw_tests = false;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if let Some((fence, info)) = fence_open(trimmed) {
            let open = line_no(i);
            let indent = line.len() - trimmed.len();
            let close = lines[i + 1..].iter().position(|l| {
                let t = l.trim();
                t.len() >= fence.len()
                    && t.chars().all(|c| c == fence.chars().next().unwrap_or('`'))
            });
            let Some(close) = close else {
                diags.push(
                    Diagnostic::error(
                        Span::new(open, indent as u32 + 1, fence.len() as u32),
                        "this code block is not closed",
                    )
                    .expected(format!("a closing `{fence}` line")),
                );
                return finish(doc, steps_heading, diags);
            };
            let block = Block {
                text: lines[i + 1..i + 1 + close].join("\n"),
                first_line: open + 1,
            };
            match section {
                Section::Steps => match info {
                    "workflow" => doc.steps.push(block),
                    "" => diags.push(
                        Diagnostic::error(Span::new(open, indent as u32 + 1, fence.len() as u32), "a code block in `## Steps` without a language")
                            .expected(format!("`{fence}workflow`"))
                            .hint(format!("mark the steps with `{fence}workflow`; blocks in other languages are examples and are not run")),
                    ),
                    _ => {}
                },
                Section::Tests if info == "toml" => match doc.tests.last_mut() {
                    Some(test) if test.body.is_none() => test.body = Some(block),
                    Some(test) => diags.push(
                        Diagnostic::error(Span::new(open, 1, fence.len() as u32), format!("test `{}` has a second `toml` block", test.name))
                            .hint("give each example its own `### name` heading"),
                    ),
                    None => diags.push(
                        Diagnostic::error(Span::new(open, 1, fence.len() as u32), "a test without a name")
                            .expected("a `### name` heading before the block"),
                    ),
                },
                _ => {}
            }
            i += close + 2;
            continue;
        }
        if let Some(title) = trimmed
            .strip_prefix("## ")
            .filter(|_| !trimmed.starts_with("###"))
        {
            let title = title.trim().trim_end_matches('#').trim();
            section = if title.eq_ignore_ascii_case("steps") {
                if steps_heading.is_some() {
                    diags.push(
                        Diagnostic::error(
                            Span::new(line_no(i), 1, line.len() as u32),
                            "a second `## Steps` section",
                        )
                        .hint("put every step under one `## Steps` heading"),
                    );
                }
                steps_heading = Some(line_no(i));
                Section::Steps
            } else if title.eq_ignore_ascii_case("tests") {
                saw_tests = true;
                Section::Tests
            } else {
                Section::Other
            };
        } else if let Some(name) = trimmed.strip_prefix("### ") {
            if section == Section::Tests {
                doc.tests.push(TestBlock {
                    name: name.trim().trim_end_matches('#').trim().to_string(),
                    heading: Span::new(line_no(i), 1, line.chars().count() as u32),
                    body: None,
                });
            }
        }
        i += 1;
    }
    if saw_tests {
        for test in &doc.tests {
            if test.body.is_none() {
                diags.push(
                    Diagnostic::error(
                        test.heading,
                        format!("test `{}` has no ```toml block", test.name),
                    )
                    .hint("under the heading, write a ```toml block with `input` and `expect`"),
                );
            }
        }
    }
    finish(doc, steps_heading, diags)
}

fn finish(doc: Document, steps_heading: Option<u32>, diags: &mut Diagnostics) -> Document {
    match steps_heading {
        None => diags.push(
            Diagnostic::error(Span::new(1, 1, 1), "the file has no `## Steps` section")
                .hint("add a `## Steps` heading followed by a ```workflow code block"),
        ),
        Some(line) if doc.steps.is_empty() => diags.push(
            Diagnostic::error(
                Span::new(line, 1, 8),
                "`## Steps` has no ```workflow code block",
            )
            .expected("a ```workflow block under the heading"),
        ),
        _ => {}
    }
    doc
}

/// A line that opens a fenced code block: the fence and the info string.
fn fence_open(line: &str) -> Option<(&str, &str)> {
    let c = line.chars().next()?;
    if c != '`' && c != '~' {
        return None;
    }
    let n = line.chars().take_while(|x| *x == c).count();
    if n < 3 {
        return None;
    }
    let (fence, info) = line.split_at(n);
    let info = info.trim();
    if c == '`' && info.contains('`') {
        return None;
    }
    Some((fence, info.split_whitespace().next().unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_parts_and_their_lines() {
        let src = "+++\nname = \"x\"\n+++\n# X\n\nProse.\n\n## Steps\n\nFirst:\n\n```workflow\nlet a = 1\n```\n\n```json\n{}\n```\n\n```workflow\nreturn a\n```\n\n## Tests\n\n### one\n\n```toml\ninput = {}\n```\n";
        let mut diags = Diagnostics::default();
        let doc = split(src, &mut diags);
        assert!(diags.0.is_empty(), "{diags:?}");
        assert_eq!(
            doc.front.unwrap(),
            Block {
                text: "name = \"x\"".into(),
                first_line: 2
            }
        );
        assert_eq!(doc.steps.len(), 2);
        assert_eq!(
            doc.steps[0],
            Block {
                text: "let a = 1".into(),
                first_line: 13
            }
        );
        assert_eq!(doc.steps[1].first_line, 21);
        assert_eq!(doc.tests.len(), 1);
        assert_eq!(doc.tests[0].name, "one");
        assert_eq!(doc.tests[0].body.as_ref().unwrap().first_line, 29);
    }

    #[test]
    fn structural_errors_are_all_reported() {
        let mut diags = Diagnostics::default();
        split(
            "---\nname: x\n---\n## Steps\n```\nlet a = 1\n```\n",
            &mut diags,
        );
        let messages: Vec<_> = diags
            .0
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(
            messages,
            vec![
                (1, "the front matter must be TOML between `+++` lines"),
                (5, "a code block in `## Steps` without a language"),
                (4, "`## Steps` has no ```workflow code block"),
            ]
        );
        let mut diags = Diagnostics::default();
        split("+++\n+++\n## Steps\n```workflow\nlet a = 1\n", &mut diags);
        assert_eq!(diags.0[0].message, "this code block is not closed");
    }
}
