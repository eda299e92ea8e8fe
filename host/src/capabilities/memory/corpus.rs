//! Conversation transcripts, turned into exchanges worth remembering.
//!
//! Two line formats, mixed freely:
//!
//! - OpenClaw session transcripts (`<session>.jsonl`): a `{"type":"session",
//!   "id":…}` header, then `{"type":"message","timestamp":…,"message":{"role":
//!   "user"|"assistant"|…,"content": text or [{"type":"text","text":…},…]}}`
//!   entries. Other entry types (`model_change`, `custom`, …) are skipped.
//! - Plain lines: `{"role","content","timestamp","session_id"}`.
//!
//! The unit of memory is an *exchange*: a user turn (consecutive user
//! messages) with the reply that follows (consecutive assistant messages).
//! Tool calls and tool results are not part of it. A line that is not JSON
//! or not one of these shapes is reported with its line number and skipped;
//! it never stops the rest.
//!
//! [`quality`] scores an exchange; the ingest drops those under
//! [`MIN_TOKENS`] tokens or under the density threshold.
//!
//! Every assistant message that records its model call's `usage` (tokens,
//! and `cost.total` in USD, as OpenClaw writes them; see
//! `../shared/notes/openclaw-usage.md`) is also read, as a [`Usage`],
//! whether or not its text is part of an exchange.

use serde::Deserialize;
use std::collections::HashSet;

/// The `type` of a line that stands for an event a transcript store could
/// not give (its `error` says why): reported as a bad line.
pub const UNREADABLE_EVENT: &str = "darkfactory.unreadable";

/// Exchanges shorter than this many tokens are dropped.
pub const MIN_TOKENS: usize = 100;
/// Window of the moving-average type-token ratio.
const MATTR_WINDOW: usize = 50;

/// One user turn with its reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    /// What the user said.
    pub user: String,
    /// What the assistant answered.
    pub reply: String,
    /// The session it belongs to, when known.
    pub session_id: Option<String>,
    /// When the user turn was sent, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<u64>,
    /// When the last message of the exchange was sent.
    pub last_timestamp_ms: Option<u64>,
    /// The line the user turn starts on (1-based, within the file).
    pub line: usize,
}

impl Exchange {
    /// The text stored as the memory.
    pub fn text(&self) -> String {
        format!(
            "User: {}\nAssistant: {}",
            self.user.trim(),
            self.reply.trim()
        )
    }
}

/// A line that could not be read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Malformed {
    /// Its line number (1-based, within the file).
    pub line: usize,
    /// Why.
    pub error: String,
}

/// What one model call cost, as its assistant message records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// The transcript entry's `id`, when it has one.
    pub entry_id: Option<String>,
    /// The session it belongs to, when known.
    pub session_id: Option<String>,
    /// When the message was sent, in milliseconds since the Unix epoch.
    pub timestamp_ms: Option<u64>,
    /// The model that answered (`message.model`).
    pub model: Option<String>,
    /// Tokens in all: `usage.totalTokens`, or the sum of input, output and
    /// cache reads and writes when it is absent.
    pub tokens: f64,
    /// `usage.cost.total`, in USD (0 when absent).
    pub cost_usd: f64,
    /// Where its line starts in the chunk.
    pub offset: usize,
    /// Its line (1-based, within the file).
    pub line: usize,
}

/// What a chunk of transcript held.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Complete exchanges, in order.
    pub exchanges: Vec<Exchange>,
    /// The usage of each assistant message within `consumed`, in order.
    pub usage: Vec<Usage>,
    /// Lines that could not be read.
    pub malformed: Vec<Malformed>,
    /// Entries of other types (model changes, tool results, …).
    pub skipped: usize,
    /// Bytes of the input that are done with: all of it when `last`, else
    /// everything before the exchange still open at its end (a reply may
    /// still be coming; the next read starts there).
    pub consumed: usize,
    /// Lines within `consumed`.
    pub consumed_lines: usize,
    /// The session named by the last `session` header or plain line.
    pub session_id: Option<String>,
}

/// Where a chunk starts: its first line number and the session known so far.
#[derive(Debug, Clone, Default)]
pub struct Position {
    /// Lines before the chunk.
    pub lines_before: usize,
    /// The session id from earlier in the file.
    pub session_id: Option<String>,
}

#[derive(Debug, PartialEq)]
enum Role {
    User,
    Assistant,
    Other,
}

struct Message {
    role: Role,
    text: String,
    session_id: Option<String>,
    timestamp_ms: Option<u64>,
    /// An assistant message's `usage`, or why it could not be read.
    usage: Option<Result<UsageFields, String>>,
    entry_id: Option<String>,
    model: Option<String>,
}

/// OpenClaw's `Usage` (`@openclaw/ai`): the fields read, all optional.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct UsageFields {
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
    total_tokens: Option<f64>,
    cost: Option<CostFields>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct CostFields {
    total: f64,
}

impl UsageFields {
    /// Tokens and cost, checked: counts that are negative are refused.
    fn read(&self) -> Result<(f64, f64), String> {
        let parts = [self.input, self.output, self.cache_read, self.cache_write];
        let tokens = self.total_tokens.unwrap_or(parts.iter().sum());
        let cost = self.cost.as_ref().map_or(0.0, |c| c.total);
        if parts.iter().chain([&tokens, &cost]).any(|v| *v < 0.0) {
            return Err("usage holds a negative count or cost".into());
        }
        Ok((tokens, cost))
    }
}

enum Entry {
    Session(String),
    Message(Message),
    Skipped,
}

/// Parses complete lines of `input` (a trailing line without a newline is
/// left for later unless `last`).
pub fn parse(input: &[u8], position: &Position, last: bool) -> Parsed {
    let mut parsed = Parsed {
        session_id: position.session_id.clone(),
        ..Parsed::default()
    };
    let mut open: Option<(Exchange, usize, usize)> = None; // exchange, byte start, lines before
    let mut offset = 0usize;
    let mut line_no = position.lines_before;
    while offset < input.len() {
        let (line, next) = match input[offset..].iter().position(|&b| b == b'\n') {
            Some(i) => (&input[offset..offset + i], offset + i + 1),
            None if last => (&input[offset..], input.len()),
            None => break,
        };
        line_no += 1;
        let start = offset;
        offset = next;
        let text = match std::str::from_utf8(line) {
            Ok(t) => t.trim(),
            Err(_) => {
                parsed.malformed.push(Malformed {
                    line: line_no,
                    error: "the line is not UTF-8".into(),
                });
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        let entry = match read_entry(text) {
            Ok(e) => e,
            Err(error) => {
                parsed.malformed.push(Malformed {
                    line: line_no,
                    error,
                });
                continue;
            }
        };
        let message = match entry {
            Entry::Session(id) => {
                close(&mut open, &mut parsed);
                parsed.session_id = Some(id);
                continue;
            }
            Entry::Skipped => {
                parsed.skipped += 1;
                continue;
            }
            Entry::Message(m) => m,
        };
        if let Some(id) = &message.session_id {
            if parsed.session_id.as_ref() != Some(id) {
                close(&mut open, &mut parsed);
                parsed.session_id = Some(id.clone());
            }
        }
        let usage = match &message.usage {
            Some(Ok(fields)) => Some(fields.read()),
            Some(Err(e)) => Some(Err(e.clone())),
            None => None,
        };
        match usage {
            Some(Ok((tokens, cost_usd))) => parsed.usage.push(Usage {
                entry_id: message.entry_id.clone(),
                session_id: parsed.session_id.clone(),
                timestamp_ms: message.timestamp_ms,
                model: message.model.clone(),
                tokens,
                cost_usd,
                offset: start,
                line: line_no,
            }),
            Some(Err(error)) => parsed.malformed.push(Malformed {
                line: line_no,
                error: format!("usage not read: {error}"),
            }),
            None => {}
        }
        match message.role {
            Role::Other => parsed.skipped += 1,
            Role::User => {
                let continues_turn = open.as_ref().is_some_and(|(e, _, _)| e.reply.is_empty());
                if continues_turn {
                    let (exchange, _, _) = open.as_mut().expect("checked");
                    exchange.user.push('\n');
                    exchange.user.push_str(&message.text);
                } else {
                    close(&mut open, &mut parsed);
                    let exchange = Exchange {
                        user: message.text,
                        reply: String::new(),
                        session_id: parsed.session_id.clone(),
                        timestamp_ms: message.timestamp_ms,
                        last_timestamp_ms: message.timestamp_ms,
                        line: line_no,
                    };
                    // Everything before this turn is done with.
                    parsed.consumed = start;
                    parsed.consumed_lines = line_no - 1 - position.lines_before;
                    open = Some((exchange, start, line_no - 1));
                }
            }
            Role::Assistant => {
                if let Some((exchange, _, _)) = open.as_mut() {
                    if !exchange.reply.is_empty() {
                        exchange.reply.push('\n');
                    }
                    exchange.reply.push_str(&message.text);
                    if message.timestamp_ms.is_some() {
                        exchange.last_timestamp_ms = message.timestamp_ms;
                    }
                } else {
                    // A reply with no question in this chunk: nothing to pair.
                    parsed.skipped += 1;
                }
            }
        }
        if open.is_none() {
            parsed.consumed = offset;
            parsed.consumed_lines = line_no - position.lines_before;
        }
    }
    if last {
        close(&mut open, &mut parsed);
        parsed.consumed = input.len();
        parsed.consumed_lines = line_no - position.lines_before;
    } else if open.is_none() {
        parsed.consumed = offset;
        parsed.consumed_lines = line_no - position.lines_before;
    }
    // Usage past `consumed` is read again with the rest of its exchange.
    let consumed = parsed.consumed;
    parsed.usage.retain(|u| u.offset < consumed);
    parsed
}

/// Emits the open exchange when it has a reply.
fn close(open: &mut Option<(Exchange, usize, usize)>, parsed: &mut Parsed) {
    if let Some((exchange, _, _)) = open.take() {
        if !exchange.reply.trim().is_empty() && !exchange.user.trim().is_empty() {
            parsed.exchanges.push(exchange);
        }
    }
}

fn read_entry(line: &str) -> Result<Entry, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    match obj.get("type").and_then(|t| t.as_str()) {
        Some("session") => {
            let id = obj
                .get("id")
                .and_then(|v| v.as_str())
                .ok_or_else(|| "a `session` entry without an `id`".to_string())?;
            Ok(Entry::Session(id.to_string()))
        }
        Some("message") => {
            let message = obj
                .get("message")
                .and_then(|m| m.as_object())
                .ok_or_else(|| "a `message` entry without a `message` object".to_string())?;
            let timestamp = message
                .get("timestamp")
                .or_else(|| obj.get("timestamp"))
                .map(timestamp_ms)
                .transpose()?;
            let mut message = read_message(message, None, timestamp)?;
            message.entry_id = obj.get("id").and_then(|v| v.as_str()).map(str::to_string);
            Ok(Entry::Message(message))
        }
        Some(UNREADABLE_EVENT) => Err(obj
            .get("error")
            .and_then(|e| e.as_str())
            .unwrap_or("an event the transcript store could not give")
            .to_string()),
        Some(_) => Ok(Entry::Skipped),
        None if obj.contains_key("role") => {
            let session = obj
                .get("session_id")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let timestamp = obj.get("timestamp").map(timestamp_ms).transpose()?;
            Ok(Entry::Message(read_message(obj, session, timestamp)?))
        }
        None => Err("neither a transcript entry (`type`) nor a message (`role`)".to_string()),
    }
}

fn read_message(
    obj: &serde_json::Map<String, serde_json::Value>,
    session_id: Option<String>,
    timestamp_ms: Option<u64>,
) -> Result<Message, String> {
    let role = match obj.get("role").and_then(|r| r.as_str()) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(_) => Role::Other,
        None => return Err("a message without a `role`".to_string()),
    };
    let text = match obj.get("content") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(parts)) => parts
            .iter()
            .filter(|p| p.get("type").and_then(|t| t.as_str()) == Some("text"))
            .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(serde_json::Value::Null) | None if role == Role::Other => String::new(),
        _ => return Err("a message whose `content` is neither text nor a list of parts".into()),
    };
    let usage = match (&role, obj.get("usage")) {
        (Role::Assistant, Some(u)) if !u.is_null() => {
            Some(UsageFields::deserialize(u).map_err(|e| format!("`usage` is not OpenClaw's: {e}")))
        }
        _ => None,
    };
    Ok(Message {
        role,
        text,
        session_id,
        timestamp_ms,
        usage,
        entry_id: None,
        model: obj
            .get("model")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}

/// An RFC 3339 time, or a number of seconds (below 10^11) or milliseconds.
fn timestamp_ms(value: &serde_json::Value) -> Result<u64, String> {
    match value {
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis().max(0) as u64)
            .map_err(|e| format!("timestamp `{s}` is not RFC 3339: {e}")),
        serde_json::Value::Number(n) => {
            let v = n
                .as_f64()
                .filter(|v| *v >= 0.0)
                .ok_or_else(|| format!("timestamp {n} is negative"))?;
            Ok(if v < 1e11 { v * 1000.0 } else { v } as u64)
        }
        other => Err(format!("timestamp {other} is neither a time nor a number")),
    }
}

/// The quality of an exchange's text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// Runs of letters or digits.
    pub tokens: usize,
    /// Information density in `[0, 1]`; see [`quality`].
    pub density: f64,
}

/// Scores `text`.
///
/// A token is a run of letters or digits. Density is the geometric mean of
/// two shares, each in `[0, 1]`:
///
/// - *content share*: tokens that are not stop words and have at least two
///   characters, over all tokens. Small talk ("thanks, that is great, I will
///   do it") is mostly stop words.
/// - *lexical variety*: the moving-average type-token ratio of the content
///   tokens over windows of 50 (MATTR; the plain ratio over the whole text
///   falls as a text grows, the moving average does not). Repetition (a log
///   pasted twice, "retry failed" forty times) drives it down.
///
/// Substantive technical prose scores about 0.6–0.8; filler and repeated
/// output under 0.5.
pub fn quality(text: &str) -> Quality {
    let tokens: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    if tokens.is_empty() {
        return Quality {
            tokens: 0,
            density: 0.0,
        };
    }
    let content: Vec<&str> = tokens
        .iter()
        .map(String::as_str)
        .filter(|t| t.chars().count() >= 2 && !STOP_WORDS.contains(t))
        .collect();
    let share = content.len() as f64 / tokens.len() as f64;
    let variety = mattr(&content, MATTR_WINDOW);
    Quality {
        tokens: tokens.len(),
        density: (share * variety).sqrt(),
    }
}

/// Moving-average type-token ratio.
fn mattr(words: &[&str], window: usize) -> f64 {
    if words.is_empty() {
        return 0.0;
    }
    if words.len() <= window {
        let distinct: HashSet<&&str> = words.iter().collect();
        return distinct.len() as f64 / words.len() as f64;
    }
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for w in &words[..window] {
        *counts.entry(w).or_default() += 1;
    }
    let mut total = counts.len() as f64;
    let mut windows = 1.0;
    for i in window..words.len() {
        let out = words[i - window];
        let n = counts.get_mut(out).expect("counted");
        *n -= 1;
        if *n == 0 {
            counts.remove(out);
        }
        *counts.entry(words[i]).or_default() += 1;
        total += counts.len() as f64;
        windows += 1.0;
    }
    total / (windows * window as f64)
}

/// Common English function words and conversational filler.
const STOP_WORDS: &[&str] = &[
    "a", "about", "above", "after", "again", "all", "also", "am", "an", "and", "any", "are", "as",
    "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by",
    "can", "could", "did", "do", "does", "doing", "done", "down", "during", "each", "few", "for",
    "from", "further", "get", "got", "great", "had", "has", "have", "having", "he", "her", "here",
    "hers", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "let", "like", "ll", "me", "more", "most", "much", "my", "no", "nor", "not", "now", "of",
    "off", "ok", "okay", "on", "once", "one", "only", "or", "other", "our", "ours", "out", "over",
    "own", "please", "re", "same", "she", "should", "so", "some", "sounds", "such", "sure",
    "thank", "thanks", "than", "that", "the", "their", "them", "then", "there", "these", "they",
    "thing", "things", "this", "those", "through", "to", "too", "under", "until", "up", "us", "ve",
    "very", "was", "we", "well", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "yeah", "yes", "you", "your", "yours",
];

#[cfg(test)]
mod tests {
    use super::*;

    const OPENCLAW: &str = r#"{"type":"session","version":3,"id":"s-1","timestamp":"2026-11-01T10:00:00Z","cwd":"/w"}
{"type":"model_change","id":"m","provider":"x","modelId":"y"}
{"type":"message","id":"1","timestamp":"2026-11-01T10:00:01Z","message":{"role":"user","content":[{"type":"text","text":"How do I deploy?"}]}}
{"type":"message","id":"2","timestamp":"2026-11-01T10:00:05Z","message":{"role":"assistant","content":[{"type":"text","text":"Run the pipeline."},{"type":"toolCall","name":"ci","arguments":{}}]}}
{"type":"message","id":"3","timestamp":"2026-11-01T10:00:06Z","message":{"role":"toolResult","content":[{"type":"text","text":"ok"}]}}
{"type":"message","id":"4","timestamp":"2026-11-01T10:00:07Z","message":{"role":"assistant","content":"It is green."}}
this is not json
{"type":"message","id":"5","timestamp":"2026-11-01T10:01:00Z","message":{"role":"user","content":"And roll back?"}}
{"type":"message","id":"6","timestamp":"2026-11-01T10:01:09Z","message":{"role":"assistant","content":"Use rollback."}}
"#;

    #[test]
    fn openclaw_sessions_become_exchanges() {
        let parsed = parse(OPENCLAW.as_bytes(), &Position::default(), true);
        assert_eq!(parsed.exchanges.len(), 2, "{parsed:?}");
        let first = &parsed.exchanges[0];
        assert_eq!(first.user, "How do I deploy?");
        assert_eq!(first.reply, "Run the pipeline.\nIt is green.");
        assert_eq!(first.session_id.as_deref(), Some("s-1"));
        assert_eq!(first.timestamp_ms, Some(1_793_527_201_000));
        assert_eq!(first.last_timestamp_ms, Some(1_793_527_207_000));
        assert_eq!(first.line, 3);
        assert_eq!(
            parsed.exchanges[1].text(),
            "User: And roll back?\nAssistant: Use rollback."
        );
        assert_eq!(parsed.malformed.len(), 1);
        assert_eq!(parsed.malformed[0].line, 7);
        assert_eq!(parsed.skipped, 2); // model_change, toolResult
        assert_eq!(parsed.consumed, OPENCLAW.len());
    }

    #[test]
    fn an_open_exchange_waits_for_the_next_read() {
        let parsed = parse(OPENCLAW.as_bytes(), &Position::default(), false);
        // The last exchange may still grow: it is not emitted, and the
        // consumed bytes stop where it starts.
        assert_eq!(parsed.exchanges.len(), 1);
        let rest_starts = OPENCLAW.find(r#"{"type":"message","id":"5""#).unwrap();
        assert_eq!(parsed.consumed, rest_starts);
        assert_eq!(parsed.consumed_lines, 7);
        let again = parse(
            &OPENCLAW.as_bytes()[parsed.consumed..],
            &Position {
                lines_before: parsed.consumed_lines,
                session_id: parsed.session_id.clone(),
            },
            true,
        );
        assert_eq!(again.exchanges.len(), 1);
        assert_eq!(again.exchanges[0].line, 8);
        assert_eq!(again.exchanges[0].session_id.as_deref(), Some("s-1"));
    }

    #[test]
    fn plain_lines_and_partial_lines() {
        let text = "{\"role\":\"user\",\"content\":\"q1\",\"timestamp\":1772230000,\"session_id\":\"a\"}\n\
                    {\"role\":\"assistant\",\"content\":\"a1\",\"timestamp\":1772230001000,\"session_id\":\"a\"}\n\
                    {\"role\":\"user\",\"content\":\"q2\",\"session_id\":\"b\"}\n\
                    {\"role\":\"user\",\"content\":\"q2 more\",\"session_id\":\"b\"}\n\
                    {\"role\":\"assistant\",\"content\":\"a2\",\"session_id\":\"b\"}\n\
                    {\"role\":\"assist";
        let parsed = parse(text.as_bytes(), &Position::default(), false);
        assert_eq!(parsed.exchanges.len(), 1);
        assert_eq!(parsed.exchanges[0].timestamp_ms, Some(1_772_230_000_000));
        assert_eq!(
            parsed.exchanges[0].last_timestamp_ms,
            Some(1_772_230_001_000)
        );
        let all = parse(text.as_bytes(), &Position::default(), true);
        assert_eq!(all.exchanges.len(), 2);
        assert_eq!(all.exchanges[1].user, "q2\nq2 more");
        assert_eq!(all.exchanges[1].session_id.as_deref(), Some("b"));
        assert_eq!(all.malformed.len(), 1, "the cut-off last line");
        assert_eq!(all.malformed[0].line, 6);
    }

    #[test]
    fn bad_lines_are_reported_not_fatal() {
        let text = "[1]\n{\"type\":\"message\"}\n{\"role\":\"user\",\"content\":5}\n\
                    {\"role\":\"user\",\"content\":\"x\",\"timestamp\":\"yesterday\"}\n{}\n";
        let parsed = parse(text.as_bytes(), &Position::default(), true);
        let lines: Vec<usize> = parsed.malformed.iter().map(|m| m.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5], "{:?}", parsed.malformed);
        assert!(parsed.malformed[3].error.contains("RFC 3339"));
    }

    #[test]
    fn density_separates_substance_from_filler() {
        let substance = "User: Why did the billing deploy fail on Tuesday?\nAssistant: The \
            migration added a NOT NULL column without a default, so Postgres rewrote the \
            invoices table and held an exclusive lock for eleven minutes. The health check \
            timed out after thirty seconds, Kubernetes restarted the pods, and the rollout \
            stalled. Next time add the column as nullable, backfill in batches of ten \
            thousand rows, then add the constraint with NOT VALID and validate it separately.";
        let filler = "User: thanks so much, that is great\nAssistant: you are very welcome, I \
            am glad that it was helpful for you, just let me know if there is anything else \
            that I can do for you, and I will be happy to help you with it";
        let repeated = "User: logs\nAssistant: ".to_string() + &"retry failed timeout ".repeat(40);
        let q = quality(substance);
        assert!(q.density > 0.6, "{q:?}");
        assert!(quality(filler).density < 0.5, "{:?}", quality(filler));
        assert!(quality(&repeated).density < 0.5, "{:?}", quality(&repeated));
        assert!(quality(&repeated).tokens > 100);
        assert_eq!(quality("").density, 0.0);
    }

    #[test]
    fn mattr_does_not_fall_with_length() {
        let text: Vec<String> = (0..500).map(|i| format!("w{}", i % 60)).collect();
        let words: Vec<&str> = text.iter().map(String::as_str).collect();
        // Every window of 50 holds 50 distinct words.
        assert!((mattr(&words, 50) - 1.0).abs() < 1e-9);
        assert!((mattr(&words[..40], 50) - 1.0).abs() < 1e-9);
    }
}
