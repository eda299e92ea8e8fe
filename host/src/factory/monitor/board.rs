//! The board monitor: how many cards have sat in Blocked for longer than
//! the limit (48 h by default), as `board.cards_blocked_long{list}`, with
//! each of those cards as evidence.

use super::{hours, labels, when, Measurement, Monitor};
use crate::capabilities::board::{BoardBackend, CardCursor, CardFilter};
use std::sync::Arc;
use std::time::Duration;

/// The series it writes.
pub const SERIES: &str = "board.cards_blocked_long";

/// Cards read per page.
const PAGE: usize = 500;

/// Counts long-blocked cards.
pub struct BoardMonitor {
    board: Arc<dyn BoardBackend>,
    list: String,
    longer_than: Duration,
}

impl BoardMonitor {
    /// Watches `list` for cards older in it than `longer_than`.
    pub fn new(board: Arc<dyn BoardBackend>, list: &str, longer_than: Duration) -> Self {
        BoardMonitor {
            board,
            list: list.to_string(),
            longer_than,
        }
    }
}

#[async_trait::async_trait]
impl Monitor for BoardMonitor {
    fn name(&self) -> &'static str {
        "board"
    }

    async fn measure(&self, now_ms: u64) -> Result<Measurement, String> {
        let mut cards = Vec::new();
        let mut after = None;
        loop {
            let filter = CardFilter {
                list: Some(self.list.clone()),
                in_list_longer_than: Some(self.longer_than),
                limit: Some(PAGE),
                after: after.take(),
                description_chars: Some(0),
                ..CardFilter::default()
            };
            let page = self
                .board
                .cards(&filter)
                .await
                .map_err(|e| format!("cannot read the board ({}): {e}", self.board.name()))?;
            let full = page.len() == PAGE;
            after = page.last().map(CardCursor::after);
            cards.extend(page);
            if !full {
                break;
            }
        }
        let mut m = Measurement::default();
        let list = labels([("list", self.list.as_str())]);
        m.sample(SERIES, list.clone(), cards.len() as f64, now_ms);
        for card in &cards {
            m.evidence(
                SERIES,
                list.clone(),
                format!(
                    "card {} \"{}\": in {} since {} ({})",
                    card.id,
                    card.title,
                    card.list,
                    when(card.list_entered_at_ms),
                    hours(now_ms.saturating_sub(card.list_entered_at_ms))
                ),
            );
        }
        Ok(m)
    }
}
