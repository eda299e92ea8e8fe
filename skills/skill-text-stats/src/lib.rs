//! `text-stats`: counts, keywords and readability of a text.
//!
//! Agents use it to triage what they read (is this a wall of text? what is it
//! about?) without spending LLM tokens. Pure computation: no capabilities.
//!
//! Readability is the Flesch reading-ease score,
//! `206.835 − 1.015 × (words / sentences) − 84.6 × (syllables / words)`,
//! with syllables estimated from vowel groups (English-centric; good enough to
//! rank texts, not to grade them). Reading time assumes 238 words a minute.

use darkfactory_sdk::{export_skill, SkillError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Largest `top` a caller may ask for.
const MAX_TOP: usize = 100;
/// Average silent reading speed of adults, words per minute.
const WORDS_PER_MINUTE: f64 = 238.0;

#[derive(Deserialize)]
struct Input {
    text: String,
    /// How many keywords to return (default 5).
    #[serde(default = "default_top")]
    top: usize,
}

fn default_top() -> usize {
    5
}

#[derive(Serialize, Debug, PartialEq)]
struct Keyword {
    word: String,
    count: usize,
}

#[derive(Serialize, Debug)]
struct Stats {
    characters: usize,
    words: usize,
    unique_words: usize,
    sentences: usize,
    paragraphs: usize,
    avg_words_per_sentence: f64,
    lexical_diversity: f64,
    flesch_reading_ease: f64,
    reading_time_seconds: u64,
    keywords: Vec<Keyword>,
}

const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "my",
    "no", "not", "of", "on", "one", "or", "our", "out", "she", "so", "some", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "to", "up", "us", "was", "we",
    "were", "what", "when", "which", "who", "will", "with", "would", "you", "your",
];

fn text_stats(input: Input) -> Result<Stats, SkillError> {
    if input.text.trim().is_empty() {
        return Err(SkillError::new(
            "empty-text",
            "`text` must contain at least one word",
        ));
    }
    if input.top > MAX_TOP {
        return Err(SkillError::invalid_input(format!(
            "`top` is {}, at most {MAX_TOP} keywords can be returned",
            input.top
        )));
    }
    Ok(analyse(&input.text, input.top))
}

fn analyse(text: &str, top: usize) -> Stats {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
        .map(|w| {
            w.trim_matches(|c: char| c == '\'' || c == '-')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    let word_count = words.len().max(1);
    let sentences = count_sentences(text).max(1);
    let paragraphs = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .count()
        .max(1);
    let syllables: usize = words.iter().map(|w| count_syllables(w)).sum();

    let mut counts: HashMap<&str, usize> = HashMap::new();
    for w in &words {
        *counts.entry(w.as_str()).or_default() += 1;
    }
    let unique_words = counts.len();
    let mut keywords: Vec<Keyword> = counts
        .iter()
        .filter(|(w, _)| w.chars().count() > 2 && !STOPWORDS.contains(w))
        .filter(|(w, _)| !w.chars().all(|c| c.is_ascii_digit()))
        .map(|(w, c)| Keyword {
            word: (*w).to_string(),
            count: *c,
        })
        .collect();
    keywords.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.word.cmp(&b.word)));
    keywords.truncate(top);

    let words_per_sentence = word_count as f64 / sentences as f64;
    let syllables_per_word = syllables as f64 / word_count as f64;
    let flesch = 206.835 - 1.015 * words_per_sentence - 84.6 * syllables_per_word;
    Stats {
        characters: text.chars().count(),
        words: words.len(),
        unique_words,
        sentences,
        paragraphs,
        avg_words_per_sentence: round2(words_per_sentence),
        lexical_diversity: round2(unique_words as f64 / word_count as f64),
        flesch_reading_ease: round2(flesch),
        reading_time_seconds: (words.len() as f64 / WORDS_PER_MINUTE * 60.0).ceil() as u64,
        keywords,
    }
}

fn count_sentences(text: &str) -> usize {
    let mut count = 0;
    let mut in_terminator = false;
    let mut seen_word = false;
    for c in text.chars() {
        if matches!(c, '.' | '!' | '?') {
            if seen_word && !in_terminator {
                count += 1;
            }
            in_terminator = true;
            seen_word = false;
        } else {
            in_terminator = false;
            if c.is_alphanumeric() {
                seen_word = true;
            }
        }
    }
    // A final sentence without a terminator still counts.
    count + usize::from(seen_word)
}

fn count_syllables(word: &str) -> usize {
    let mut groups = 0;
    let mut prev_vowel = false;
    for c in word.chars() {
        let vowel = matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
        if vowel && !prev_vowel {
            groups += 1;
        }
        prev_vowel = vowel;
    }
    // A silent final "e" ("make") is not a syllable, "le" ("table") is.
    if word.ends_with('e') && !word.ends_with("le") && groups > 1 {
        groups -= 1;
    }
    groups.max(1)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

export_skill!(
    text_stats,
    input_schema = r#"{"type":"object","required":["text"],"properties":{"text":{"type":"string"},"top":{"type":"integer","minimum":0,"maximum":100}}}"#
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_sentences_and_paragraphs() {
        let s = analyse(
            "Deploys need a green CI run. Really!\n\nAsk Alfred first?",
            3,
        );
        assert_eq!(s.words, 10);
        assert_eq!(s.sentences, 3);
        assert_eq!(s.paragraphs, 2);
    }

    #[test]
    fn keywords_skip_stopwords_and_rank_by_count() {
        let s = analyse(
            "The deploy failed. The deploy was retried. Deploy again.",
            2,
        );
        assert_eq!(
            s.keywords[0],
            Keyword {
                word: "deploy".into(),
                count: 3
            }
        );
        assert!(s.keywords.iter().all(|k| k.word != "the"));
    }

    #[test]
    fn syllables_follow_vowel_groups() {
        assert_eq!(count_syllables("make"), 1);
        assert_eq!(count_syllables("table"), 2);
        assert_eq!(count_syllables("readability"), 5);
    }

    #[test]
    fn simple_text_reads_easier_than_dense_text() {
        let easy = analyse("The cat sat. The dog ran. We all had fun.", 0);
        let hard = analyse(
            "Organisational interdependencies necessitate comprehensive institutional reconsideration.",
            0,
        );
        assert!(easy.flesch_reading_ease > hard.flesch_reading_ease);
    }

    #[test]
    fn empty_text_is_an_error() {
        let err = text_stats(Input {
            text: "  ".into(),
            top: 5,
        })
        .unwrap_err();
        assert_eq!(err.code, "empty-text");
    }
}
