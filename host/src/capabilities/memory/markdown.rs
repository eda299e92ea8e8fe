//! `memory import MEMORY.md`: a markdown file as one memory per section.
//!
//! Every ATX heading (`#` to `######`, outside fenced code) starts a section;
//! a section's memory is its heading line and its body, and its metadata
//! names the path of headings above it (`Deploys > Staging`). Text before
//! the first heading is a section of its own; a heading with no body of its
//! own (only sub-sections) is not.

/// One section of a markdown file.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The headings from the top down to this one, joined with ` > `.
    pub path: String,
    /// The heading line and the body, trimmed.
    pub text: String,
    /// The line the section starts on, 1-based.
    pub line: usize,
}

/// Splits `markdown` into sections.
pub fn sections(markdown: &str) -> Vec<Section> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(String, String, usize)> = None; // path, text, line
    let mut fence: Option<&str> = None;
    let mut preamble = String::new();
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(f) = fence {
            if trimmed.starts_with(f) {
                fence = None;
            }
        } else if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fence = Some(&trimmed[..3]);
        } else if let Some((level, title)) = heading(line) {
            flush(&mut current, &mut out);
            stack.retain(|(l, _)| *l < level);
            stack.push((level, title.to_string()));
            let path = stack
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(" > ");
            current = Some((path, line.trim().to_string(), i + 1));
            continue;
        }
        match current.as_mut() {
            Some((_, text, _)) => {
                text.push('\n');
                text.push_str(line);
            }
            None => {
                preamble.push_str(line);
                preamble.push('\n');
            }
        }
    }
    flush(&mut current, &mut out);
    if !preamble.trim().is_empty() {
        out.insert(
            0,
            Section {
                path: String::new(),
                text: preamble.trim().to_string(),
                line: 1,
            },
        );
    }
    out
}

fn flush(current: &mut Option<(String, String, usize)>, out: &mut Vec<Section>) {
    if let Some((path, text, line)) = current.take() {
        let has_body = text.lines().skip(1).any(|l| !l.trim().is_empty());
        if has_body {
            out.push(Section {
                path,
                text: text.trim().to_string(),
                line,
            });
        }
    }
}

/// `# Title` → `(1, "Title")`.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|c| *c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then_some((level, title))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_memory_per_section_with_its_heading_path() {
        let md = "Team memory.\n\n# Deploys\n\n## Staging\nStaging deploys on Mondays.\n\n\
                  ## Production\nNeeds a green CI run.\n```\n# not a heading\n```\n\
                  # Tools\n#hashtag is text\n";
        let s = sections(md);
        let paths: Vec<&str> = s.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["", "Deploys > Staging", "Deploys > Production", "Tools"]
        );
        assert_eq!(s[0].text, "Team memory.");
        assert_eq!(s[1].text, "## Staging\nStaging deploys on Mondays.");
        assert_eq!(s[1].line, 5);
        assert!(s[2].text.contains("# not a heading"));
        assert_eq!(s[3].text, "# Tools\n#hashtag is text");
    }

    #[test]
    fn empty_input_has_no_sections() {
        assert!(sections("").is_empty());
        assert!(sections("# Only a heading\n").is_empty());
    }
}
