//! The fleet's board: cards in lists, read and moved by skills.
//!
//! Lists are named (case-insensitively): Backlog, In Progress, Blocked,
//! Review and Done on the host's own board, or the lists of the Planka board
//! the host is configured with. The manifest says which lists the skill may
//! read (`board_read`) and write (`board_write`, which implies reading);
//! `"*"` means every list. The host refuses the rest with
//! [`BoardError::Denied`]:
//!
//! ```no_run
//! use darkfactory_sdk::{board, export_skill, SkillError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     hours: u64,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     escalated: Vec<String>,
//! }
//!
//! fn escalate(input: Input) -> Result<Output, SkillError> {
//!     let stuck = board::cards()
//!         .list("Blocked")
//!         .in_list_longer_than(input.hours * 3600)
//!         .run()?;
//!     let mut escalated = Vec::new();
//!     for card in stuck {
//!         board::comment(&card.id, "Blocked too long: escalating.")?;
//!         board::move_card(&card.id, "Backlog")?;
//!         escalated.push(card.title);
//!     }
//!     Ok(Output { escalated })
//! }
//!
//! export_skill!(escalate, board_read = "*", board_write = "Blocked, Backlog");
//! # fn main() {}
//! ```

use crate::bindings::darkfactory::skill::board as wit;
use crate::SkillError;

pub use wit::{BoardError, BoardList, Card, Comment};

impl From<BoardError> for SkillError {
    /// A board error as the skill's own error: code `board-denied`,
    /// `board-invalid`, `board-not-found` or `board-unavailable`.
    fn from(e: BoardError) -> Self {
        let (code, message) = match e {
            BoardError::Denied(m) => ("board-denied", m),
            BoardError::Invalid(m) => ("board-invalid", m),
            BoardError::NotFound(m) => ("board-not-found", m),
            BoardError::Unavailable(m) => ("board-unavailable", m),
        };
        SkillError::new(code, message)
    }
}

impl Card {
    /// How long the card has been in its list, in seconds, at `now_ms`
    /// (milliseconds since the Unix epoch).
    pub fn seconds_in_list(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.list_entered_at) / 1000
    }
}

/// The lists the skill may read, in order.
pub fn lists() -> Result<Vec<BoardList>, BoardError> {
    wit::lists()
}

/// A card listing to run: [`cards`]`().list(..).label(..).in_list_longer_than(..).run()`.
#[must_use = "nothing is read until `run` is called"]
pub struct Cards {
    filter: wit::CardFilter,
}

/// Starts a card listing: every card of the lists the skill may read.
pub fn cards() -> Cards {
    Cards {
        filter: wit::CardFilter {
            list: None,
            label: None,
            in_list_longer_than: None,
        },
    }
}

impl Cards {
    /// Only cards in this list.
    pub fn list(mut self, list: impl Into<String>) -> Self {
        self.filter.list = Some(list.into());
        self
    }

    /// Only cards with this label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.filter.label = Some(label.into());
        self
    }

    /// Only cards that have been in their list longer than `seconds`.
    pub fn in_list_longer_than(mut self, seconds: u64) -> Self {
        self.filter.in_list_longer_than = Some(seconds);
        self
    }

    /// Runs the listing; the card longest in its list comes first.
    pub fn run(self) -> Result<Vec<Card>, BoardError> {
        wit::cards(&self.filter)
    }
}

/// One card by id.
pub fn card(id: &str) -> Result<Card, BoardError> {
    wit::get_card(id)
}

/// A card to create: [`create`]`(title).list(..).description(..).label(..).run()`.
#[must_use = "nothing is created until `run` is called"]
pub struct Create {
    card: wit::NewCard,
}

/// Starts a card titled `title`, by default in `Backlog`.
pub fn create(title: impl Into<String>) -> Create {
    Create {
        card: wit::NewCard {
            list: "Backlog".to_string(),
            title: title.into(),
            description: String::new(),
            labels: Vec::new(),
        },
    }
}

impl Create {
    /// The list to put it in (at the end).
    pub fn list(mut self, list: impl Into<String>) -> Self {
        self.card.list = list.into();
        self
    }

    /// Its description, in markdown.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.card.description = description.into();
        self
    }

    /// Adds a label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.card.labels.push(label.into());
        self
    }

    /// Creates the card.
    pub fn run(self) -> Result<Card, BoardError> {
        wit::create_card(&self.card)
    }
}

/// Moves a card to the end of `to_list`; its time in the list starts again.
/// The skill must be allowed to write both lists.
pub fn move_card(id: &str, to_list: &str) -> Result<Card, BoardError> {
    wit::move_card(id, to_list)
}

/// Comments on a card (markdown). The skill must be allowed to write the
/// card's list.
pub fn comment(card_id: &str, text: &str) -> Result<Comment, BoardError> {
    wit::add_comment(card_id, text)
}
