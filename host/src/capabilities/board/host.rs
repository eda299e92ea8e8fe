//! The host side of the `board` interface: a skill's calls go to the
//! board backend, within the lists its manifest grants. Grants are checked
//! against the card's list as the backend reports it, before anything is
//! changed.

use super::{check_comment, BoardBackend, BoardError, BoardGrants, CardEdit, CardFilter, NewCard};
use crate::capabilities::SkillContext;
use crate::runtime::bindings::darkfactory::skill::board as wit;
use crate::runtime::SkillState;
use std::sync::Arc;
use std::time::Duration;

type Result<T> = wasmtime::Result<std::result::Result<T, wit::BoardError>>;

impl wit::Host for SkillState {
    async fn lists(&mut self) -> Result<Vec<wit::BoardList>> {
        let (board, grants) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        Ok(board
            .lists()
            .await
            .map(|lists| {
                lists
                    .into_iter()
                    .filter(|l| grants.read().contains(&l.name))
                    .map(|l| wit::BoardList {
                        id: l.id,
                        name: l.name,
                        position: l.position,
                    })
                    .collect()
            })
            .map_err(to_wit))
    }

    async fn cards(&mut self, filter: wit::CardFilter) -> Result<Vec<wit::Card>> {
        let (board, grants) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let run = async {
            if let Some(list) = &filter.list {
                grants.check_read(list)?;
            }
            let filter = CardFilter {
                list: filter.list,
                label: filter.label,
                in_list_longer_than: filter.in_list_longer_than.map(Duration::from_secs),
                ..CardFilter::default()
            };
            let cards = board.cards(&filter).await?;
            Ok(cards
                .into_iter()
                .filter(|c| grants.read().contains(&c.list))
                .map(to_wit_card)
                .collect())
        };
        Ok(run.await.map_err(to_wit))
    }

    async fn get_card(&mut self, id: String) -> Result<wit::Card> {
        let (board, grants) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let run = async {
            let card = board.card(&id).await?;
            grants.check_read(&card.list)?;
            Ok(to_wit_card(card))
        };
        Ok(run.await.map_err(to_wit))
    }

    async fn create_card(&mut self, card: wit::NewCard) -> Result<wit::Card> {
        let (board, grants) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let run = async {
            grants.check_write(&card.list)?;
            let card = NewCard {
                list: card.list,
                title: card.title,
                description: card.description,
                labels: card.labels,
            }
            .checked()?;
            Ok(to_wit_card(board.create_card(card).await?))
        };
        Ok(run.await.map_err(to_wit))
    }

    async fn move_card(&mut self, id: String, to_list: String) -> Result<wit::Card> {
        let (board, grants) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let run = async {
            grants.check_write(&to_list)?;
            let card = board.card(&id).await?;
            grants.check_write(&card.list)?;
            let edit = CardEdit {
                list: Some(to_list),
                ..CardEdit::default()
            };
            Ok(to_wit_card(board.edit_card(&id, edit).await?))
        };
        Ok(run.await.map_err(to_wit))
    }

    async fn add_comment(&mut self, card_id: String, text: String) -> Result<wit::Comment> {
        let (board, grants) = match service(self) {
            Ok(service) => service,
            Err(e) => return Ok(Err(e)),
        };
        let run = async {
            let text = check_comment(&text)?;
            let card = board.card(&card_id).await?;
            grants.check_write(&card.list)?;
            let comment = board.comment(&card_id, text).await?;
            Ok(wit::Comment {
                id: comment.id,
                card_id: comment.card_id,
                text: comment.text,
                created_at: comment.created_at_ms,
            })
        };
        Ok(run.await.map_err(to_wit))
    }
}

/// The board and this skill's grants: `denied` when its manifest grants no
/// list (a component may import `board` without a grant; every call then
/// answers this), `unavailable` when the host has no board.
fn service(
    state: &SkillState,
) -> std::result::Result<(Arc<dyn BoardBackend>, BoardGrants), wit::BoardError> {
    let Some(ctx) = state.context::<SkillContext>() else {
        return Err(wit::BoardError::Denied("this skill has no grants".into()));
    };
    let Some(grants) = ctx.board.clone() else {
        return Err(wit::BoardError::Denied(format!(
            "skill `{}` may use no board list: its manifest has no `board_read` \
             or `board_write`",
            ctx.skill
        )));
    };
    let Some(board) = ctx.capabilities.board.clone() else {
        return Err(wit::BoardError::Unavailable(
            "this host has no board".to_string(),
        ));
    };
    Ok((board, grants))
}

fn to_wit(e: BoardError) -> wit::BoardError {
    match e {
        BoardError::Invalid(m) => wit::BoardError::Invalid(m),
        BoardError::Denied(m) => wit::BoardError::Denied(m),
        BoardError::NotFound(m) => wit::BoardError::NotFound(m),
        BoardError::Unavailable(_) => wit::BoardError::Unavailable(e.to_string()),
    }
}

fn to_wit_card(card: super::Card) -> wit::Card {
    wit::Card {
        id: card.id,
        list: card.list,
        title: card.title,
        description: card.description,
        labels: card.labels,
        created_at: card.created_at_ms,
        list_entered_at: card.list_entered_at_ms,
        comments: card.comments,
    }
}
