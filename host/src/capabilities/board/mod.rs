//! `board`: the fleet's work as cards in lists, for skills and the host.
//!
//! One [`BoardBackend`] trait with two backends: [`EmbeddedBoard`], the
//! host's own board in SQLite (lists Backlog, In Progress, Blocked, Review,
//! Done), and [`PlankaBoard`], a board of a Planka v2 server. Cards know
//! when they entered their list, so "blocked for longer than 48 h" is a
//! filter, not a guess. Skills reach it through the WIT interface `board`
//! (`host.rs`), within the lists their manifest grants ([`BoardGrants`]).
//!
//! Everything a caller sends is checked here, before a backend sees it:
//! titles of 1 to 1 024 UTF-16 code units (Planka counts them so: an emoji
//! is two), descriptions and comments up to 1 MiB, label names of 1 to 64
//! characters. A failed call changes nothing. Listings are paged
//! ([`CardFilter::limit`], [`CardCursor`]) and may cut descriptions, so that
//! no answer carries the whole board by default.

#[cfg(test)]
mod conformance;
mod embedded;
mod grant;
mod host;
mod planka;
mod webhook;

pub use embedded::EmbeddedBoard;
pub use grant::{BoardGrants, Lists};
pub use planka::{PlankaAuth, PlankaBoard, PlankaBoardRef, PlankaConfig};
pub use webhook::{BoardEvent, PlankaWebhook, KEPT_EVENTS};

use serde::Serialize;
use std::time::Duration;

/// The lists of a new embedded board, in order.
pub const DEFAULT_LISTS: [&str; 5] = ["Backlog", "In Progress", "Blocked", "Review", "Done"];
/// Longest card title, in UTF-16 code units (Planka's limit, counted as
/// Planka counts it).
pub const MAX_TITLE_UNITS: usize = 1024;
/// Longest description or comment, in bytes (Planka's limit).
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Longest label name, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Most labels on one card.
pub const MAX_LABELS: usize = 16;

/// Why a board call failed. Nothing is changed when one fails.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoardError {
    /// Bad input: an empty or over-long title, a bad label.
    #[error("{0}")]
    Invalid(String),
    /// Not allowed: a list the skill was not granted, or a board the
    /// Planka user may not change.
    #[error("{0}")]
    Denied(String),
    /// No such list or card.
    #[error("{0}")]
    NotFound(String),
    /// The backend is down or failed.
    #[error("the board backend failed: {0}")]
    Unavailable(String),
}

/// A list of the board.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct List {
    /// Its id (a string: Planka's ids do not fit every JSON number).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its position, lists ascending.
    pub position: i64,
}

/// A card.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Card {
    /// Its id.
    pub id: String,
    /// The name of the list it is in.
    pub list: String,
    /// Its title.
    pub title: String,
    /// Its description (markdown), possibly empty; cut in listings that
    /// asked for short descriptions.
    pub description: String,
    /// Whether `description` was cut (a listing's short form).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub description_truncated: bool,
    /// Its label names.
    pub labels: Vec<String>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When it entered the list it is in.
    pub list_entered_at_ms: u64,
    /// How many comments it has.
    pub comments: u64,
}

/// A comment on a card.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comment {
    /// Its id.
    pub id: String,
    /// The card it is on.
    pub card_id: String,
    /// Its text (markdown).
    pub text: String,
    /// When it was written, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// Which cards a listing returns; every field set must match. Cards come
/// in the order they entered their lists (then by id), the order a
/// [`CardCursor`] continues.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardFilter {
    /// Only cards in this list (by name, case-insensitive).
    pub list: Option<String>,
    /// Only cards with this label.
    pub label: Option<String>,
    /// Only cards that have been in their list longer than this.
    pub in_list_longer_than: Option<Duration>,
    /// At most this many cards.
    pub limit: Option<usize>,
    /// Only the cards after this one.
    pub after: Option<CardCursor>,
    /// Cut each description to this many characters.
    pub description_chars: Option<usize>,
}

/// Where a page of cards ended: the next page starts after this card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardCursor {
    /// When the card entered its list.
    pub entered_at_ms: u64,
    /// Its id (digits, on both backends).
    pub id: String,
}

impl CardCursor {
    /// The cursor after `card`.
    pub fn after(card: &Card) -> Self {
        CardCursor {
            entered_at_ms: card.list_entered_at_ms,
            id: card.id.clone(),
        }
    }

    /// Reads a cursor that [`CardCursor::encode`] wrote.
    pub fn parse(text: &str) -> Result<Self, BoardError> {
        let bad = || {
            BoardError::Invalid(format!(
                "cursor `{}` is not one this host gave out (use `next_cursor` of the previous page)",
                crate::runtime::bounded::cut(text, 64)
            ))
        };
        let (ms, id) = text.split_once('-').ok_or_else(bad)?;
        let entered_at_ms = ms.parse().map_err(|_| bad())?;
        if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(CardCursor {
            entered_at_ms,
            id: id.to_string(),
        })
    }

    /// The cursor as text for an answer.
    pub fn encode(&self) -> String {
        format!("{}-{}", self.entered_at_ms, self.id)
    }

    /// Whether `card` comes after this cursor in a listing's order.
    pub fn precedes(&self, card: &Card) -> bool {
        let key = |ms: u64, id: &str| (ms, id.len(), id.to_string());
        key(card.list_entered_at_ms, &card.id) > key(self.entered_at_ms, &self.id)
    }
}

/// Cuts `text` to `chars` characters: the text and whether it was cut.
pub fn cut_description(text: &str, chars: usize) -> (String, bool) {
    match text.char_indices().nth(chars) {
        Some((end, _)) => (text[..end].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// A card to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCard {
    /// The list's name (case-insensitive).
    pub list: String,
    /// The title.
    pub title: String,
    /// The description, possibly empty.
    pub description: String,
    /// Label names.
    pub labels: Vec<String>,
}

impl NewCard {
    /// Checks the title, description and labels; trims the title.
    pub fn checked(mut self) -> Result<Self, BoardError> {
        self.title = check_title(&self.title)?;
        check_text(&self.description, "the description")?;
        let mut labels = Vec::new();
        for label in &self.labels {
            let label = check_label(label)?;
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        if labels.len() > MAX_LABELS {
            return Err(BoardError::Invalid(format!(
                "{} labels; a card holds at most {MAX_LABELS}",
                labels.len()
            )));
        }
        self.labels = labels;
        Ok(self)
    }
}

/// A change to a card: each field set is applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardEdit {
    /// Move it to this list (by name).
    pub list: Option<String>,
    /// A new title.
    pub title: Option<String>,
    /// A new description.
    pub description: Option<String>,
}

impl CardEdit {
    /// Checks what is set; trims the title.
    pub fn checked(mut self) -> Result<Self, BoardError> {
        if let Some(title) = &self.title {
            self.title = Some(check_title(title)?);
        }
        if let Some(description) = &self.description {
            check_text(description, "the description")?;
        }
        if self.list.is_none() && self.title.is_none() && self.description.is_none() {
            return Err(BoardError::Invalid(
                "nothing to change: give a list, a title or a description".to_string(),
            ));
        }
        Ok(self)
    }
}

fn check_title(title: &str) -> Result<String, BoardError> {
    let title = title.trim();
    if title.is_empty() {
        return Err(BoardError::Invalid("the title is empty".to_string()));
    }
    let units = title.encode_utf16().count();
    if units > MAX_TITLE_UNITS {
        return Err(BoardError::Invalid(format!(
            "the title is {units} UTF-16 code units ({} characters); at most \
             {MAX_TITLE_UNITS} (Planka counts characters outside the Basic Multilingual \
             Plane, such as emoji, as two)",
            title.chars().count()
        )));
    }
    Ok(title.to_string())
}

/// Checks a description or a comment's size.
pub fn check_text(text: &str, what: &str) -> Result<(), BoardError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(BoardError::Invalid(format!(
            "{what} is {} bytes; at most {MAX_TEXT_BYTES} (1 MiB)",
            text.len()
        )));
    }
    Ok(())
}

/// Checks a comment: not empty, at most 1 MiB; returns it trimmed.
pub fn check_comment(text: &str) -> Result<&str, BoardError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(BoardError::Invalid("the comment is empty".to_string()));
    }
    check_text(text, "the comment")?;
    Ok(text)
}

fn check_label(label: &str) -> Result<String, BoardError> {
    let label = label.trim();
    let chars = label.chars().count();
    if chars == 0 || chars > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(BoardError::Invalid(format!(
            "invalid label `{label}`: 1 to {MAX_LABEL_CHARS} characters, no control characters"
        )));
    }
    Ok(label.to_string())
}

/// A board.
#[async_trait::async_trait]
pub trait BoardBackend: Send + Sync + 'static {
    /// A short name for logs and the API: `embedded`, `planka`.
    fn name(&self) -> &'static str;

    /// The lists, in order.
    async fn lists(&self) -> Result<Vec<List>, BoardError>;

    /// The cards that pass `filter`, in the order they entered their lists
    /// (then by id), paged and cut as the filter says.
    async fn cards(&self, filter: &CardFilter) -> Result<Vec<Card>, BoardError>;

    /// One card.
    async fn card(&self, id: &str) -> Result<Card, BoardError>;

    /// Creates a card (checked by the caller) at the end of its list.
    async fn create_card(&self, card: NewCard) -> Result<Card, BoardError>;

    /// Moves and edits a card (checked by the caller).
    async fn edit_card(&self, id: &str, edit: CardEdit) -> Result<Card, BoardError>;

    /// Adds a comment to a card.
    async fn comment(&self, id: &str, text: &str) -> Result<Comment, BoardError>;
}
