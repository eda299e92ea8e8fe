//! Bounded text: what the host repeats of a guest's or a file's words.
//!
//! A skill chooses its error code, its message and the names in its
//! backtrace; a file in the skills directory chooses what a parser quotes of
//! it. The host passes such text on (in an answer, in its log, in a skill's
//! `last_error`) only up to a bound, and says how much it cut, so that one
//! call or one file cannot make a line of the log, or an answer, as large as
//! it likes.

use std::borrow::Cow;

/// Longest error code a skill may return; longer codes are cut.
pub const MAX_CODE_CHARS: usize = 64;
/// Longest error message, trap text or load error the host repeats.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Longest line of a backtrace (a frame, with its function's name).
pub const MAX_FRAME_BYTES: usize = 256;

/// Cuts `text` to at most `max` bytes on a character boundary; a cut text
/// ends with a marker that says how long it was. Text within the bound is
/// borrowed, not copied.
pub fn cut(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    Cow::Owned(format!(
        "{}… [cut: {} bytes in all]",
        prefix(text, max),
        text.len()
    ))
}

/// [`cut`] of an owned text: the same text, not a copy, when it is within
/// the bound.
pub fn cut_owned(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    cut(&text, max).into_owned()
}

/// Cuts an error code to [`MAX_CODE_CHARS`] characters, the last of which
/// is then `…`.
pub fn cut_code(code: &str) -> String {
    match code.char_indices().nth(MAX_CODE_CHARS) {
        None => code.to_string(),
        Some(_) => {
            let end = code
                .char_indices()
                .nth(MAX_CODE_CHARS - 1)
                .map_or(code.len(), |(i, _)| i);
            format!("{}…", &code[..end])
        }
    }
}

/// Cuts every line of `text` to `max_line` bytes, then the whole to
/// `max` bytes: a backtrace keeps its shape when one frame's name is huge.
pub fn cut_lines(text: &str, max_line: usize, max: usize) -> String {
    if text.len() <= max && text.lines().all(|l| l.len() <= max_line) {
        return text.to_string();
    }
    let lines: Vec<Cow<'_, str>> = text.lines().map(|l| cut(l, max_line)).collect();
    cut(&lines.join("\n"), max).into_owned()
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept_and_long_text_is_cut_with_a_marker() {
        assert_eq!(cut("hello", 10), "hello");
        let long = "é".repeat(5000);
        let cut_text = cut(&long, 101);
        assert!(cut_text.starts_with(&"é".repeat(50)), "{cut_text}");
        assert!(
            cut_text.ends_with("[cut: 10000 bytes in all]"),
            "{cut_text}"
        );
        assert!(cut_text.len() < 200);
    }

    #[test]
    fn codes_are_cut_to_64_characters() {
        assert_eq!(cut_code("not-found"), "not-found");
        let code = "x".repeat(64);
        assert_eq!(cut_code(&code), code);
        let cut = cut_code(&"ü".repeat(30_000));
        assert_eq!(cut.chars().count(), MAX_CODE_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn each_line_is_cut_before_the_whole() {
        let text = format!("trap\n  0: {}\n  1: main", "f".repeat(1 << 20));
        let out = cut_lines(&text, 64, 4096);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[2], "  1: main");
        assert!(lines[1].len() < 120);
    }
}
