//! The embedded board: the host's own board in a SQLite file in the data
//! directory, created with the lists Backlog, In Progress, Blocked, Review
//! and Done. Each card records when it entered its list. Every write is one
//! transaction, so a failed call leaves nothing half-written, and every
//! call runs on the blocking pool ([`Db`]), never on an async worker.

use super::{
    check_comment, BoardBackend, BoardError, Card, CardEdit, CardFilter, Comment, List, NewCard,
    DEFAULT_LISTS,
};
use crate::state::Db;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;
use std::sync::Arc;

/// Gap between list and card positions, as Planka spaces them.
const POSITION_GAP: i64 = 65_536;

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A board in SQLite.
pub struct EmbeddedBoard {
    db: Db,
    clock: Clock,
}

fn db(e: rusqlite::Error) -> BoardError {
    BoardError::Unavailable(format!("board database: {e}"))
}

impl EmbeddedBoard {
    /// Opens (or creates, with the default lists) the board at `path`.
    pub fn open(path: &Path) -> Result<Self, BoardError> {
        Self::open_with_clock(path, Arc::new(crate::capabilities::now_ms))
    }

    /// The same, with a clock in milliseconds since the Unix epoch (tests).
    pub fn open_with_clock(path: &Path, clock: Clock) -> Result<Self, BoardError> {
        let db = Db::open(path, |conn| {
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS board_lists (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                     position INTEGER NOT NULL
                 );
                 CREATE TABLE IF NOT EXISTS board_cards (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     list_id INTEGER NOT NULL REFERENCES board_lists(id),
                     position INTEGER NOT NULL,
                     title TEXT NOT NULL,
                     description TEXT NOT NULL,
                     created_at_ms INTEGER NOT NULL,
                     list_entered_at_ms INTEGER NOT NULL
                 );
                 CREATE INDEX IF NOT EXISTS board_cards_by_entry
                     ON board_cards(list_entered_at_ms, id);
                 CREATE TABLE IF NOT EXISTS board_card_labels (
                     card_id INTEGER NOT NULL REFERENCES board_cards(id),
                     label TEXT NOT NULL,
                     PRIMARY KEY (card_id, label)
                 );
                 CREATE TABLE IF NOT EXISTS board_comments (
                     id INTEGER PRIMARY KEY AUTOINCREMENT,
                     card_id INTEGER NOT NULL REFERENCES board_cards(id),
                     text TEXT NOT NULL,
                     created_at_ms INTEGER NOT NULL
                 );",
            )?;
            let tx = conn.transaction()?;
            let lists: i64 = tx.query_row("SELECT count(*) FROM board_lists", [], |r| r.get(0))?;
            if lists == 0 {
                for (i, name) in DEFAULT_LISTS.iter().enumerate() {
                    tx.execute(
                        "INSERT INTO board_lists (name, position) VALUES (?1, ?2)",
                        params![name, (i as i64 + 1) * POSITION_GAP],
                    )?;
                }
            }
            tx.commit()
        })
        .map_err(db)?;
        Ok(EmbeddedBoard { db, clock })
    }
}

/// The list named `name` (case-insensitive), or an error naming the lists.
fn list_id(tx: &Transaction<'_>, name: &str) -> Result<i64, BoardError> {
    let found: Option<i64> = tx
        .query_row(
            "SELECT id FROM board_lists WHERE name = ?1",
            params![name.trim()],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    match found {
        Some(id) => Ok(id),
        None => {
            let mut stmt = tx
                .prepare("SELECT name FROM board_lists ORDER BY position")
                .map_err(db)?;
            let names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            Err(BoardError::NotFound(format!(
                "no list `{}`; the lists are {}",
                name.trim(),
                names.join(", ")
            )))
        }
    }
}

/// One card; its description cut to `description_chars` characters when set.
fn card_row(
    conn: &Connection,
    id: i64,
    description_chars: Option<usize>,
) -> Result<Card, BoardError> {
    let cut = description_chars.map(|n| n as i64).unwrap_or(-1);
    let card = conn
        .query_row(
            "SELECT c.id, l.name, c.title,
                    CASE WHEN ?2 < 0 THEN c.description ELSE substr(c.description, 1, ?2) END,
                    ?2 >= 0 AND length(c.description) > ?2,
                    c.created_at_ms, c.list_entered_at_ms,
                    (SELECT count(*) FROM board_comments m WHERE m.card_id = c.id)
             FROM board_cards c JOIN board_lists l ON l.id = c.list_id WHERE c.id = ?1",
            params![id, cut],
            |r| {
                Ok(Card {
                    id: r.get::<_, i64>(0)?.to_string(),
                    list: r.get(1)?,
                    title: r.get(2)?,
                    description: r.get(3)?,
                    description_truncated: r.get(4)?,
                    labels: Vec::new(),
                    created_at_ms: r.get::<_, i64>(5)? as u64,
                    list_entered_at_ms: r.get::<_, i64>(6)? as u64,
                    comments: r.get::<_, i64>(7)? as u64,
                })
            },
        )
        .optional()
        .map_err(db)?;
    let mut card = card.ok_or_else(|| BoardError::NotFound(format!("no card `{id}`")))?;
    let mut stmt = conn
        .prepare("SELECT label FROM board_card_labels WHERE card_id = ?1 ORDER BY label")
        .map_err(db)?;
    card.labels = stmt
        .query_map(params![id], |r| r.get(0))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    Ok(card)
}

fn parse_id(id: &str) -> Result<i64, BoardError> {
    id.trim()
        .parse()
        .map_err(|_| BoardError::NotFound(format!("no card `{id}`")))
}

#[async_trait::async_trait]
impl BoardBackend for EmbeddedBoard {
    fn name(&self) -> &'static str {
        "embedded"
    }

    async fn lists(&self) -> Result<Vec<List>, BoardError> {
        self.db
            .call(|conn| {
                let mut stmt = conn
                    .prepare("SELECT id, name, position FROM board_lists ORDER BY position")
                    .map_err(db)?;
                let lists = stmt
                    .query_map([], |r| {
                        Ok(List {
                            id: r.get::<_, i64>(0)?.to_string(),
                            name: r.get(1)?,
                            position: r.get(2)?,
                        })
                    })
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?;
                Ok(lists)
            })
            .await
    }

    async fn cards(&self, filter: &CardFilter) -> Result<Vec<Card>, BoardError> {
        let now = (self.clock)();
        let filter = filter.clone();
        self.db
            .call(move |conn| {
                let tx = conn.transaction().map_err(db)?;
                let list = match &filter.list {
                    Some(name) => Some(list_id(&tx, name)?),
                    None => None,
                };
                let entered_before = filter
                    .in_list_longer_than
                    .map(|d| now.saturating_sub(d.as_millis() as u64) as i64);
                let (after_ms, after_id) = match &filter.after {
                    Some(cursor) => (
                        Some(cursor.entered_at_ms as i64),
                        Some(cursor.id.parse::<i64>().unwrap_or(i64::MAX)),
                    ),
                    None => (None, None),
                };
                let limit = filter.limit.map(|n| n as i64).unwrap_or(-1);
                let ids: Vec<i64> = {
                    let mut stmt = tx
                        .prepare(
                            "SELECT c.id FROM board_cards c JOIN board_lists l ON l.id = c.list_id
                             WHERE (?1 IS NULL OR c.list_id = ?1)
                               AND (?2 IS NULL OR c.list_entered_at_ms < ?2)
                               AND (?3 IS NULL OR EXISTS (SELECT 1 FROM board_card_labels b
                                                          WHERE b.card_id = c.id AND b.label = ?3))
                               AND (?4 IS NULL OR (c.list_entered_at_ms, c.id) > (?4, ?5))
                             ORDER BY c.list_entered_at_ms, c.id
                             LIMIT ?6",
                        )
                        .map_err(db)?;
                    let label = filter.label.as_deref().map(str::trim);
                    let ids = stmt
                        .query_map(
                            params![list, entered_before, label, after_ms, after_id, limit],
                            |r| r.get(0),
                        )
                        .map_err(db)?
                        .collect::<Result<_, _>>()
                        .map_err(db)?;
                    ids
                };
                ids.into_iter()
                    .map(|id| card_row(&tx, id, filter.description_chars))
                    .collect()
            })
            .await
    }

    async fn card(&self, id: &str) -> Result<Card, BoardError> {
        let id = parse_id(id)?;
        self.db.call(move |conn| card_row(conn, id, None)).await
    }

    async fn create_card(&self, card: NewCard) -> Result<Card, BoardError> {
        let now = (self.clock)() as i64;
        self.db
            .call(move |conn| {
                let tx = conn.transaction().map_err(db)?;
                let list = list_id(&tx, &card.list)?;
                let position: i64 = tx
                    .query_row(
                        "SELECT coalesce(max(position), 0) + ?2 FROM board_cards WHERE list_id = ?1",
                        params![list, POSITION_GAP],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                tx.execute(
                    "INSERT INTO board_cards (list_id, position, title, description, created_at_ms, list_entered_at_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    params![list, position, card.title, card.description, now],
                )
                .map_err(db)?;
                let id = tx.last_insert_rowid();
                for label in &card.labels {
                    tx.execute(
                        "INSERT INTO board_card_labels (card_id, label) VALUES (?1, ?2)",
                        params![id, label],
                    )
                    .map_err(db)?;
                }
                let created = card_row(&tx, id, None)?;
                tx.commit().map_err(db)?;
                Ok(created)
            })
            .await
    }

    async fn edit_card(&self, id: &str, edit: CardEdit) -> Result<Card, BoardError> {
        let id = parse_id(id)?;
        let now = (self.clock)() as i64;
        self.db
            .call(move |conn| {
                let tx = conn.transaction().map_err(db)?;
                let current = card_row(&tx, id, None)?;
                if let Some(list) = &edit.list {
                    let target = list_id(&tx, list)?;
                    let same: bool = tx
                        .query_row(
                            "SELECT list_id = ?2 FROM board_cards WHERE id = ?1",
                            params![id, target],
                            |r| r.get(0),
                        )
                        .map_err(db)?;
                    // Moving a card to the list it is in changes nothing (its
                    // time in the list goes on).
                    if !same {
                        tx.execute(
                            "UPDATE board_cards SET list_id = ?2, list_entered_at_ms = ?3,
                                 position = (SELECT coalesce(max(position), 0) + ?4
                                             FROM board_cards WHERE list_id = ?2)
                             WHERE id = ?1",
                            params![id, target, now, POSITION_GAP],
                        )
                        .map_err(db)?;
                    }
                }
                tx.execute(
                    "UPDATE board_cards SET title = ?2, description = ?3 WHERE id = ?1",
                    params![
                        id,
                        edit.title.as_deref().unwrap_or(&current.title),
                        edit.description.as_deref().unwrap_or(&current.description)
                    ],
                )
                .map_err(db)?;
                let edited = card_row(&tx, id, None)?;
                tx.commit().map_err(db)?;
                Ok(edited)
            })
            .await
    }

    async fn comment(&self, id: &str, text: &str) -> Result<Comment, BoardError> {
        let text = check_comment(text)?.to_string();
        let card_id = parse_id(id)?;
        let now = (self.clock)() as i64;
        self.db
            .call(move |conn| {
                let tx = conn.transaction().map_err(db)?;
                card_row(&tx, card_id, None)?;
                tx.execute(
                    "INSERT INTO board_comments (card_id, text, created_at_ms) VALUES (?1, ?2, ?3)",
                    params![card_id, text, now],
                )
                .map_err(db)?;
                let comment = Comment {
                    id: tx.last_insert_rowid().to_string(),
                    card_id: card_id.to_string(),
                    text,
                    created_at_ms: now as u64,
                };
                tx.commit().map_err(db)?;
                Ok(comment)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    fn board(dir: &Path) -> (EmbeddedBoard, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000_000));
        let clock = now.clone();
        let b = EmbeddedBoard::open_with_clock(
            &dir.join("board.db"),
            Arc::new(move || clock.load(Ordering::Relaxed)),
        )
        .unwrap();
        (b, now)
    }

    fn new(list: &str, title: &str, labels: &[&str]) -> NewCard {
        NewCard {
            list: list.into(),
            title: title.into(),
            description: String::new(),
            labels: labels.iter().map(|l| l.to_string()).collect(),
        }
        .checked()
        .unwrap()
    }

    #[tokio::test]
    async fn a_reopened_board_keeps_its_cards_and_adds_no_lists() {
        // The rest of the behaviour is the conformance suite's.
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = board(dir.path());
        let card = b
            .create_card(new("backlog", "Gap: ingest lag", &["gap"]))
            .await
            .unwrap();
        drop(b);
        let (b, _) = board(dir.path());
        assert_eq!(b.lists().await.unwrap().len(), DEFAULT_LISTS.len());
        assert_eq!(b.card(&card.id).await.unwrap(), card);
    }

    #[tokio::test]
    async fn time_in_list_counts_from_the_last_move() {
        let dir = tempfile::tempdir().unwrap();
        let (b, now) = board(dir.path());
        let a = b.create_card(new("Blocked", "a", &["ci"])).await.unwrap();
        now.fetch_add(3_600_000, Ordering::Relaxed);
        let c = b.create_card(new("Blocked", "c", &[])).await.unwrap();
        now.fetch_add(3_600_000, Ordering::Relaxed);
        let blocked_over = |h: u64| CardFilter {
            list: Some("blocked".into()),
            in_list_longer_than: Some(Duration::from_secs(h * 3600)),
            ..CardFilter::default()
        };
        let over_90_min = b.cards(&blocked_over(1)).await.unwrap();
        let ids: Vec<&str> = over_90_min.iter().map(|c| c.id.as_str()).collect();
        // c has been blocked for exactly an hour: not longer.
        assert_eq!(ids, [a.id.as_str()]);
        assert_eq!(b.cards(&blocked_over(0)).await.unwrap().len(), 2);
        // Moving resets the time; moving to the same list does not.
        let moved = b
            .edit_card(
                &a.id,
                CardEdit {
                    list: Some("Review".into()),
                    ..CardEdit::default()
                }
                .checked()
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            (moved.list.as_str(), moved.list_entered_at_ms),
            ("Review", now.load(Ordering::Relaxed))
        );
        let again = b
            .edit_card(
                &c.id,
                CardEdit {
                    list: Some("BLOCKED".into()),
                    ..CardEdit::default()
                }
                .checked()
                .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(again.list_entered_at_ms, c.list_entered_at_ms);
        let by_label = b
            .cards(&CardFilter {
                label: Some("ci".into()),
                ..CardFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(by_label.len(), 1);
        assert_eq!(by_label[0].id, a.id);
    }

    #[tokio::test]
    async fn bad_input_is_refused_and_nothing_is_half_written() {
        let dir = tempfile::tempdir().unwrap();
        let (b, _) = board(dir.path());
        let err = b.create_card(new("Nowhere", "x", &[])).await.unwrap_err();
        assert!(
            matches!(&err, BoardError::NotFound(m) if m.contains("Backlog, In Progress")),
            "{err}"
        );
        let invalid = |c: NewCard| c.checked().unwrap_err();
        let base = NewCard {
            list: "Backlog".into(),
            title: "t".into(),
            description: String::new(),
            labels: vec![],
        };
        assert!(matches!(
            invalid(NewCard {
                title: " ".into(),
                ..base.clone()
            }),
            BoardError::Invalid(_)
        ));
        assert!(matches!(
            invalid(NewCard {
                title: "x".repeat(1025),
                ..base.clone()
            }),
            BoardError::Invalid(_)
        ));
        assert!(matches!(
            invalid(NewCard {
                labels: vec!["".into()],
                ..base.clone()
            }),
            BoardError::Invalid(_)
        ));
        assert!(matches!(
            invalid(NewCard {
                description: "x".repeat((1 << 20) + 1),
                ..base.clone()
            }),
            BoardError::Invalid(_)
        ));
        assert!(CardEdit::default().checked().is_err());
        let card = b.create_card(base.checked().unwrap()).await.unwrap();
        // A move to an unknown list with a new title: neither happens.
        let edit = CardEdit {
            list: Some("Nope".into()),
            title: Some("renamed".into()),
            ..CardEdit::default()
        };
        assert!(b
            .edit_card(&card.id, edit.checked().unwrap())
            .await
            .is_err());
        assert_eq!(b.card(&card.id).await.unwrap().title, "t");
        assert!(matches!(b.card("999").await, Err(BoardError::NotFound(_))));
        assert!(matches!(b.card("abc").await, Err(BoardError::NotFound(_))));
        assert!(matches!(
            b.comment(&card.id, "  ").await,
            Err(BoardError::Invalid(_))
        ));
        assert!(matches!(
            b.comment("999", "hi").await,
            Err(BoardError::NotFound(_))
        ));
        let comment = b.comment(&card.id, "looking into it").await.unwrap();
        assert_eq!(comment.card_id, card.id);
        assert_eq!(b.card(&card.id).await.unwrap().comments, 1);
    }
}
