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

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How many events are kept for `GET /api/board/events`.
pub const KEPT_EVENTS: usize = 200;

/// One event, as the host understood it.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
        })
    }
}

/// The receiver: the secret and the recent events.
pub struct PlankaWebhook {
    secret: String,
    recent: Mutex<VecDeque<BoardEvent>>,
    events: tokio::sync::broadcast::Sender<BoardEvent>,
}

impl PlankaWebhook {
    /// A receiver that accepts deliveries carrying `secret`.
    pub fn new(secret: String) -> Self {
        PlankaWebhook {
            secret,
            recent: Mutex::new(VecDeque::with_capacity(KEPT_EVENTS)),
            events: tokio::sync::broadcast::channel(256).0,
        }
    }

    /// The secret deliveries must carry.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Records an event and passes it to subscribers.
    pub fn record(&self, event: BoardEvent) {
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

    #[test]
    fn keeps_the_most_recent() {
        let hook = PlankaWebhook::new("s".into());
        let mut rx = hook.subscribe();
        for i in 0..KEPT_EVENTS + 5 {
            hook.record(BoardEvent::parse(&json!({"event": format!("e{i}")}), 0).unwrap());
        }
        let recent = hook.recent(3);
        assert_eq!(recent[0].event, format!("e{}", KEPT_EVENTS + 4));
        assert_eq!(hook.recent(usize::MAX).len(), KEPT_EVENTS);
        assert_eq!(rx.try_recv().unwrap().event, "e0");
    }
}
