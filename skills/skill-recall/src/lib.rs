//! `recall`: the fleet's memory from a skill.
//!
//! One of three actions per call:
//!
//! - `{"remember": "text", "namespace": "agent", "meta": {"k": "v"}}` stores
//!   a note (namespace defaults to `agent`) and answers `{"id": ...}`;
//! - `{"recall": "question", "scope": "all", "limit": 5, "meta": {...}}`
//!   answers `{"hits": [{"id", "text", "namespace", "score"}, ...]}`;
//! - `{"forget": "id"}` answers `{"forgotten": true|false}`.
//!
//! Its manifest grants it its own agent's namespace to read and write, and
//! `org` to read: asking it to write `org` shows the host refusing
//! (`memory-denied`).

use darkfactory_sdk::{export_skill, memory, SkillError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    remember: Option<String>,
    recall: Option<String>,
    forget: Option<String>,
    namespace: Option<String>,
    scope: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Found {
    id: String,
    text: String,
    namespace: String,
    score: f32,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Output {
    Stored { id: String },
    Hits { hits: Vec<Found> },
    Forgotten { forgotten: bool },
}

fn recall(input: Input) -> Result<Output, SkillError> {
    match (input.remember, input.recall, input.forget) {
        (Some(text), None, None) => {
            let mut store =
                memory::store(text).namespace(input.namespace.as_deref().unwrap_or("agent"));
            for (k, v) in input.meta {
                store = store.meta(k, v);
            }
            Ok(Output::Stored { id: store.run()? })
        }
        (None, Some(question), None) => {
            let mut search = memory::search(question)
                .scope(input.scope.as_deref().unwrap_or("all"))
                .limit(input.limit.unwrap_or(5));
            for (k, v) in input.meta {
                search = search.meta(k, v);
            }
            let hits = search
                .run()?
                .into_iter()
                .map(|h| Found {
                    id: h.id,
                    text: h.text,
                    namespace: h.namespace,
                    score: h.score,
                })
                .collect();
            Ok(Output::Hits { hits })
        }
        (None, None, Some(id)) => Ok(Output::Forgotten {
            forgotten: memory::forget(&id)?,
        }),
        _ => Err(SkillError::invalid_input(
            "give exactly one of `remember`, `recall` or `forget`",
        )),
    }
}

export_skill!(
    recall,
    deadline_ms = 5000,
    memory_mib = 16,
    memory_read = "agent, org",
    memory_write = "agent",
);
