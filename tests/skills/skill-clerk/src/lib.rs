//! Test skill `clerk`: runs the one board call its input names, and answers
//! what the host returned. Its manifest grants every list to read and only
//! Backlog and Blocked to write, so the tests can see each call allowed or
//! refused:
//!
//! - `{"lists": true}`
//! - `{"cards": {"list"?, "label"?, "longer_than"?}}`
//! - `{"get": ID}`
//! - `{"create": {"list", "title", "labels"?}}`
//! - `{"move": ID, "to": LIST}`
//! - `{"comment": ID, "text": TEXT}`

use darkfactory_sdk::{board, export_skill, SkillError};
use serde_json::{json, Value};

fn card(c: board::Card) -> Value {
    json!({"id": c.id, "list": c.list, "title": c.title, "labels": c.labels,
           "comments": c.comments, "list_entered_at": c.list_entered_at})
}

fn text(v: &Value, key: &str) -> Result<String, SkillError> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| SkillError::invalid_input(format!("`{key}` must be a string")))
}

fn clerk(input: Value) -> Result<Value, SkillError> {
    if input.get("lists").is_some() {
        let names: Vec<String> = board::lists()?.into_iter().map(|l| l.name).collect();
        return Ok(json!({ "lists": names }));
    }
    if let Some(f) = input.get("cards") {
        let mut q = board::cards();
        if let Some(l) = f.get("list").and_then(Value::as_str) {
            q = q.list(l);
        }
        if let Some(l) = f.get("label").and_then(Value::as_str) {
            q = q.label(l);
        }
        if let Some(s) = f.get("longer_than").and_then(Value::as_u64) {
            q = q.in_list_longer_than(s);
        }
        let cards: Vec<Value> = q.run()?.into_iter().map(card).collect();
        return Ok(json!({ "cards": cards }));
    }
    if input.get("get").is_some() {
        return Ok(card(board::card(&text(&input, "get")?)?));
    }
    if let Some(c) = input.get("create") {
        let mut create = board::create(text(c, "title")?).list(text(c, "list")?);
        for label in c
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            create = create.label(label.as_str().unwrap_or_default());
        }
        return Ok(card(create.run()?));
    }
    if input.get("move").is_some() {
        return Ok(card(board::move_card(
            &text(&input, "move")?,
            &text(&input, "to")?,
        )?));
    }
    if input.get("comment").is_some() {
        let c = board::comment(&text(&input, "comment")?, &text(&input, "text")?)?;
        return Ok(json!({"id": c.id, "card_id": c.card_id, "text": c.text}));
    }
    Err(SkillError::invalid_input("name one board call"))
}

export_skill!(clerk, board_read = "*", board_write = "Backlog, Blocked");
