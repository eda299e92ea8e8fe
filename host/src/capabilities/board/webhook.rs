//! Planka's outgoing webhooks: pushes instead of polls.
//!
//! Planka posts `{"event", "data": {"item", "included"}, "prevData", "user"}`
//! for each change it is told to report (`cardCreate`, `cardUpdate`,
//! `commentCreate`, ...), with the webhook's access token as
//! `Authorization: Bearer`. The host checks that secret, keeps the most
//! recent events in memory (`GET /api/board/events`) and hands each one to
//! subscribers (the gap loop reacts to a card moved to Blocked at once).
//! Planka does not retry a failed delivery, so the receiver answers fast
//! and never fails on an event kind it does not know.
//!
//! Planka has no webhook per board: a webhook reports the changes of every
//! board on the server. The receiver keeps only the events of the host's
//! own board (the board id a card, list or comment event carries, or the
//! board in its `included`); the rest are counted and dropped, as are
//! events that name no board or arrive before the board is known.

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// How many events are kept for `GET /api/board/events`.
pub const KEPT_EVENTS: usize = 200;

/// One event, as the host understood it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BoardEvent {
    /// Planka's event name, e.g. `cardUpdate`.
    pub event: String,
    /// When the host received it, in milliseconds since the Unix epoch.
    pub received_at_ms: u64,
    /// The card it is about, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_id: Option<String>,
    /// The card's title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_title: Option<String>,
    /// The name of the card's list now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    /// On a move, the id of the list it came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_list_id: Option<String>,
    /// Who made the change (Planka username).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The board it happened on.
    #[serde(skip)]
    pub board_id: Option<String>,
}

impl BoardEvent {
    /// Reads a webhook body; `None` when it is not a Planka event.
    pub fn parse(body: &Value, received_at_ms: u64) -> Option<Self> {
        let event = body.get("event")?.as_str()?.to_string();
        let text = |pointer: &str| {
            body.pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let item = body.pointer("/data/item");
        let is_card = event.starts_with("card") && !event.starts_with("cardLabel");
        let card_id = if is_card {
            text("/data/item/id")
        } else {
            text("/data/item/cardId")
        };
        let list_id = item.and_then(|i| i.get("listId")).and_then(Value::as_str);
        let list = list_id.and_then(|id| {
            body.pointer("/data/included/lists")?
                .as_array()?
                .iter()
                .find(|l| l.get("id").and_then(Value::as_str) == Some(id))?
                .get("name")?
                .as_str()
                .map(str::to_string)
        });
        let from_list_id =
            text("/prevData/item/listId").filter(|from| Some(from.as_str()) != list_id);
        let board_id = text("/data/item/boardId").or_else(|| {
            let boards = body.pointer("/data/included/boards")?.as_array()?;
            match boards.as_slice() {
                [board] => board.get("id")?.as_str().map(str::to_string),
                _ => None,
            }
        });
        Some(BoardEvent {
            event,
            received_at_ms,
            card_title: if is_card {
                text("/data/item/name")
            } else {
                None
            },
            card_id,
            list,
            from_list_id,
            user: text("/user/username").or_else(|| text("/user/name")),
            board_id,
        })
    }
}

/// Where the receiver learns the host's board id (known once the Planka
/// backend has found the board).
pub type BoardIdSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The receiver: the secret, the board it listens for and the recent events.
pub struct PlankaWebhook {
    secret: String,
    board: BoardIdSource,
    recent: Mutex<VecDeque<BoardEvent>>,
    ignored: AtomicU64,
    events: tokio::sync::broadcast::Sender<BoardEvent>,
}

impl PlankaWebhook {
    /// A receiver that accepts deliveries carrying `secret`, and keeps the
    /// events of the board `board` names.
    pub fn new(secret: String, board: BoardIdSource) -> Self {
        PlankaWebhook {
            secret,
            board,
            recent: Mutex::new(VecDeque::with_capacity(KEPT_EVENTS)),
            ignored: AtomicU64::new(0),
            events: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// Whether `event` is about the host's board: `false` for other boards'
    /// events, events that name no board, and everything before the board
    /// is known.
    pub fn is_ours(&self, event: &BoardEvent) -> bool {
        match ((self.board)(), &event.board_id) {
            (Some(ours), Some(theirs)) => ours == *theirs,
            _ => false,
        }
    }

    /// Deliveries dropped so far because they were not about the board.
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// The secret deliveries must carry.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Records an event of the host's board and passes it to subscribers;
    /// drops it (counting it) when it is another board's: `false`.
    pub fn record(&self, event: BoardEvent) -> bool {
        if !self.is_ours(&event) {
            let ignored = self.ignored.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                event = %event.event,
                board = event.board_id.as_deref().unwrap_or("-"),
                ignored,
                "Planka webhook about another board (or none): dropped"
            );
            return false;
        }
        tracing::info!(
            event = %event.event,
            card = event.card_id.as_deref().unwrap_or("-"),
            list = event.list.as_deref().unwrap_or("-"),
            "Planka webhook"
        );
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == KEPT_EVENTS {
            recent.pop_front();
        }
        recent.push_back(event.clone());
        drop(recent);
        // No subscriber is not an error.
        let _ = self.events.send(event);
        true
    }

    /// The most recent events, newest first.
    pub fn recent(&self, limit: usize) -> Vec<BoardEvent> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().rev().take(limit).cloned().collect()
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<BoardEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_a_card_move() {
        let body = json!({
            "event": "cardUpdate",
            "data": {"item": {"id": "7", "name": "Gap", "listId": "3"},
                     "included": {"lists": [{"id": "3", "name": "Blocked"}]}},
            "prevData": {"item": {"id": "7", "listId": "2"}},
            "user": {"username": "ops"}
        });
        let e = BoardEvent::parse(&body, 5).unwrap();
        assert_eq!(e.card_id.as_deref(), Some("7"));
        assert_eq!(e.card_title.as_deref(), Some("Gap"));
        assert_eq!(e.list.as_deref(), Some("Blocked"));
        assert_eq!(e.from_list_id.as_deref(), Some("2"));
        assert_eq!(e.user.as_deref(), Some("ops"));
        let comment = json!({"event": "commentCreate", "data": {"item": {"id": "9", "cardId": "7", "text": "x"}}});
        let e = BoardEvent::parse(&comment, 5).unwrap();
        assert_eq!(e.card_id.as_deref(), Some("7"));
        assert_eq!(e.card_title, None);
        assert!(BoardEvent::parse(&json!({"nope": 1}), 5).is_none());
    }

    fn on_board(event: &str, board: &str) -> BoardEvent {
        BoardEvent::parse(
            &json!({"event": event, "data": {"item": {"id": "1", "boardId": board}}}),
            0,
        )
        .unwrap()
    }

    #[test]
    fn keeps_the_most_recent() {
        let hook = PlankaWebhook::new("s".into(), Arc::new(|| Some("10".into())));
        let mut rx = hook.subscribe();
        for i in 0..KEPT_EVENTS + 5 {
            assert!(hook.record(on_board(&format!("e{i}"), "10")));
        }
        let recent = hook.recent(3);
        assert_eq!(recent[0].event, format!("e{}", KEPT_EVENTS + 4));
        assert_eq!(hook.recent(usize::MAX).len(), KEPT_EVENTS);
        assert_eq!(rx.try_recv().unwrap().event, "e0");
    }

    #[test]
    fn other_boards_and_unknown_boards_are_dropped() {
        let hook = PlankaWebhook::new("s".into(), Arc::new(|| Some("10".into())));
        assert!(!hook.record(on_board("cardCreate", "11")));
        let no_board = BoardEvent::parse(&json!({"event": "userCreate"}), 0).unwrap();
        assert!(!hook.record(no_board));
        let via_included = json!({"event": "commentCreate",
            "data": {"item": {"id": "9", "cardId": "7"}, "included": {"boards": [{"id": "10"}]}}});
        assert!(hook.record(BoardEvent::parse(&via_included, 0).unwrap()));
        assert_eq!((hook.recent(10).len(), hook.ignored()), (1, 2));
        let unknown = PlankaWebhook::new("s".into(), Arc::new(|| None));
        assert!(!unknown.record(on_board("cardCreate", "10")));
    }
}
