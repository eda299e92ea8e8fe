//! `blocked`: the cards stuck in the board's Blocked list.
//!
//! Input `{"longer_than": "48h"}` (a number of seconds, or a number with
//! `s`, `m`, `h` or `d`; default `48h`) and optionally `"list"` (default
//! `Blocked`). Output: the cards that have been in that list longer than
//! that, the longest first, with how long each has been there:
//!
//! ```json
//! {"longer_than_seconds": 172800, "count": 1,
//!  "cards": [{"id": "3", "title": "Gap: ingest lag", "labels": ["kpi-gap"],
//!             "hours_in_list": 51.5, "comments": 2}]}
//! ```
//!
//! Its manifest grants it `Blocked` to read and nothing to write: asking it
//! for another list shows the host refusing (`board-denied`).

use darkfactory_sdk::{board, export_skill, SkillError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default)]
    longer_than: Option<Duration>,
    #[serde(default)]
    list: Option<String>,
}

/// A duration: seconds as a number, or text such as `90m` or `2d`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Duration {
    Seconds(u64),
    Text(String),
}

impl Duration {
    fn seconds(&self) -> Result<u64, SkillError> {
        let text = match self {
            Duration::Seconds(s) => return Ok(*s),
            Duration::Text(t) => t.trim(),
        };
        let bad = || {
            SkillError::invalid_input(format!(
                "`longer_than` is `{text}`; give seconds or a number with s, m, h or d, e.g. `48h`"
            ))
        };
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let number: u64 = number.parse().map_err(|_| bad())?;
        let scale = match unit.trim() {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        number.checked_mul(scale).ok_or_else(bad)
    }
}

#[derive(Serialize)]
struct Stuck {
    id: String,
    title: String,
    labels: Vec<String>,
    hours_in_list: f64,
    comments: u64,
}

#[derive(Serialize)]
struct Output {
    longer_than_seconds: u64,
    count: usize,
    cards: Vec<Stuck>,
}

fn blocked(input: Input) -> Result<Output, SkillError> {
    let longer_than = match &input.longer_than {
        Some(d) => d.seconds()?,
        None => 48 * 3600,
    };
    let list = input.list.as_deref().unwrap_or("Blocked");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let cards: Vec<Stuck> = board::cards()
        .list(list)
        .in_list_longer_than(longer_than)
        .run()?
        .into_iter()
        .map(|card| Stuck {
            hours_in_list: (card.seconds_in_list(now_ms) as f64 / 360.0).round() / 10.0,
            id: card.id,
            title: card.title,
            labels: card.labels,
            comments: card.comments,
        })
        .collect();
    Ok(Output {
        longer_than_seconds: longer_than,
        count: cards.len(),
        cards,
    })
}

export_skill!(
    blocked,
    deadline_ms = 5000,
    memory_mib = 16,
    board_read = "Blocked",
);
