//! Synthesis by a model: a fix written by an OpenAI-compatible LLM and
//! corrected from the gate's own diagnostics until it passes, as Voyager's
//! iterative prompting does.
//!
//! The first prompt carries what a person writing the fix would read: the
//! gap (rule, labels, value, threshold, evidence), the `workflow.md` format
//! (`docs/workflow.md`, as the host was built with it), the signatures of
//! only the interfaces the policy allows for the gap's kind (read from the
//! WIT, as the checker reads them), the example workflows of `skills/` as
//! worked examples, and the fixes of similar past gaps that memory keeps in
//! namespace `org`. Each later prompt carries the gate's diagnostics of the
//! answer before (`file:line:column`, the source line, the hint; a failing
//! example with what it expected).
//!
//! The answer is untrusted text: it must be a JSON object with the whole
//! workflow and a one-sentence summary. An answer that is not one, is
//! empty, or was cut at the token limit ends the attempt with that reason;
//! so does a fix that asks for a grant the policy denies (no rewording
//! makes a denied grant allowed). This module writes prompts and reads
//! answers; the rounds are run by [`super::Synthesis`].

use super::GapBrief;
use crate::capabilities::llm::{ChatAnswer, FinishReason, Llm, Message, Role, Schema};
use crate::capabilities::memory::{Access, Hit, Memory};
use crate::factory::approval::policy::{Approval, Policy};
use crate::workflow::check::grant_needed;
use crate::workflow::wit::Interfaces;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The rounds a fix gets unless configured: the first answer and three
/// corrections.
pub const DEFAULT_ROUNDS: u32 = 4;

/// The most rounds that may be configured.
pub const MAX_ROUNDS: u32 = 16;

/// The most tokens one answer may have: a workflow of a few hundred lines.
pub const MAX_ANSWER_TOKENS: u32 = 8192;

/// The metadata pair that marks a memory as a fix the factory deployed
/// (with its measured outcome): what [`Model::past_fixes`] searches for.
pub const FIX_MEMORY: (&str, &str) = ("factory", "fix");

/// How many past fixes a prompt carries.
const PAST_FIXES: usize = 3;

/// The most of one past fix a prompt carries, bytes.
const PAST_FIX_BYTES: usize = 6 * 1024;

/// The format, as the host was built with it.
const WORKFLOW_FORMAT: &str = include_str!("../../../../docs/workflow.md");

/// The example workflows, as the host was built with them.
const EXAMPLES: [(&str, &str); 5] = [
    (
        "agent-down.workflow.md",
        include_str!("../../../../skills/agent-down.workflow.md"),
    ),
    (
        "blocked-escalator.workflow.md",
        include_str!("../../../../skills/blocked-escalator.workflow.md"),
    ),
    (
        "ingest-lag.workflow.md",
        include_str!("../../../../skills/ingest-lag.workflow.md"),
    ),
    (
        "ci-not-green.workflow.md",
        include_str!("../../../../skills/ci-not-green.workflow.md"),
    ),
    (
        "agent-cost.workflow.md",
        include_str!("../../../../skills/agent-cost.workflow.md"),
    ),
];

/// A model that writes fixes.
pub struct Model {
    /// The chat-completions client.
    pub llm: Arc<Llm>,
    /// Where past fixes are searched (namespace `org`).
    pub memory: Option<Arc<Memory>>,
    /// Rounds per fix, the first included.
    pub rounds: u32,
}

/// What a model answered, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The whole `workflow.md`.
    pub source: String,
    /// What it does, one sentence (empty when the model gave none).
    pub summary: String,
}

/// The shape an answer must have.
pub fn answer_schema() -> Schema {
    Schema {
        name: "darkfactory_fix".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "summary": {
                    "type": "string",
                    "description": "What the fix does, one sentence."
                },
                "workflow": {
                    "type": "string",
                    "description": "The whole workflow.md: front matter, Steps, Tests."
                }
            },
            "required": ["summary", "workflow"],
            "additionalProperties": false
        }),
        strict: true,
    }
}

impl Model {
    /// The synthesiser's name on a proposal: `llm:MODEL`.
    pub fn author(&self) -> String {
        format!("llm:{}", self.llm.model())
    }

    /// The fixes of similar past gaps kept in namespace `org`, best first,
    /// each as a prompt's paragraph; an error when memory could not be
    /// searched (synthesis goes on without them).
    pub async fn past_fixes(&self, brief: &GapBrief) -> Result<Vec<String>, String> {
        let Some(memory) = &self.memory else {
            return Ok(Vec::new());
        };
        let mut query = format!("fix for gap {} {}", brief.kind, brief.summary);
        for (k, v) in &brief.labels {
            query.push_str(&format!(" {k} {v}"));
        }
        let filter = BTreeMap::from([(FIX_MEMORY.0.to_string(), FIX_MEMORY.1.to_string())]);
        let hits = memory
            .search(&Access::Operator, &query, "org", PAST_FIXES, filter)
            .await
            .map_err(|e| e.to_string())?;
        Ok(hits.iter().map(past_fix).collect())
    }
}

fn past_fix(hit: &Hit) -> String {
    let r = &hit.record;
    let about: Vec<String> = r
        .metadata
        .iter()
        .filter(|(k, _)| k.as_str() != FIX_MEMORY.0)
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let mut text = r.text.clone();
    if text.len() > PAST_FIX_BYTES {
        let mut cut = PAST_FIX_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[… cut]");
    }
    format!("Memory {} ({}):\n{}", r.id, about.join(", "), text)
}

/// The policy's grants a fix that calls a function asks for, as
/// [`grants_of`](crate::factory::approval::policy::grants_of) reads them
/// off its manifest (`fleet = "write"` is `fleet_read` and `fleet_write`).
fn policy_grants(interface: &str, wit_function: &str) -> BTreeSet<String> {
    match grant_needed(interface, wit_function) {
        None => BTreeSet::new(),
        Some(("fleet", "write")) => ["fleet_read", "fleet_write"].map(String::from).into(),
        Some(("fleet", level)) => BTreeSet::from([format!("fleet_{level}")]),
        Some((key, _)) => BTreeSet::from([key.to_string()]),
    }
}

/// The grants of `grants` the policy denies for gap kind `kind` on their
/// own: a fix that asks for one of them is denied whatever else it asks.
pub fn denied_alone(policy: &Policy, kind: &str, grants: &[String]) -> Vec<String> {
    grants
        .iter()
        .filter(|g| {
            policy
                .decide(kind, &BTreeSet::from([g.to_string()]))
                .approval
                == Approval::Deny
        })
        .cloned()
        .collect()
}

/// The front matter that grants a function, as the docs write it.
fn grant_key(interface: &str, wit_function: &str) -> Option<String> {
    let (key, level) = grant_needed(interface, wit_function)?;
    Some(match key {
        "fleet" => format!("fleet = \"{level}\""),
        "board_read" | "board_write" => format!("{key} = [LISTS]"),
        "memory_read" | "memory_write" => format!("{key} = [NAMESPACES]"),
        "kpi_read" => "kpi_read = [SERIES]".to_string(),
        "skills" => "skills = [SKILLS]".to_string(),
        other => other.to_string(),
    })
}

/// The signatures of the functions a fix for a gap of `kind` may call
/// under `policy` (a function whose grant the policy denies for the kind
/// is left out), one line each, with the grant it needs; then the
/// grants left out.
pub fn allowed_interfaces(policy: &Policy, kind: &str) -> String {
    let mut lines = Vec::new();
    let mut denied = BTreeSet::new();
    for (interface, functions) in &Interfaces::get().0 {
        for signature in functions.values() {
            let grants = policy_grants(interface, &signature.wit_name);
            if !grants.is_empty() && policy.decide(kind, &grants).approval == Approval::Deny {
                let list: Vec<String> = grants.iter().cloned().collect();
                denied.extend(denied_alone(policy, kind, &list));
                if denied_alone(policy, kind, &list).is_empty() {
                    denied.insert(list.join(" with "));
                }
                continue;
            }
            let needs = match grant_key(interface, &signature.wit_name) {
                Some(key) => format!("needs `{key}`"),
                None => "needs no grant".to_string(),
            };
            let doc = signature.doc.trim();
            lines.push(format!(
                "- `{}` ({needs}){}{}",
                signature.render(interface),
                if doc.is_empty() { "" } else { ": " },
                doc
            ));
        }
    }
    let mut text = lines.join("\n");
    if !denied.is_empty() {
        text.push_str(&format!(
            "\n\nThe policy denies fixes for `{kind}` gaps these grants, so the functions that need \
             them are not listed and may not be called: {}.",
            denied.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    text
}

/// The first prompt for `brief`: instructions, the format, the allowed
/// interfaces and the worked examples as the system message; the gap, the
/// past fixes and the shadow run's input as the user's.
pub fn opening(
    brief: &GapBrief,
    interfaces: &str,
    past: &Result<Vec<String>, String>,
    input: &Value,
) -> Vec<Message> {
    let mut system = String::new();
    system.push_str(
        "You write fixes for Dark Factory, the runtime of an agent fleet. A KPI crossed its \
         threshold: that is a gap. You answer it with one workflow, a Markdown file in the \
         `workflow.md` format below that the host compiles to a sandboxed WebAssembly skill. The \
         fix acts through the interfaces listed below where it can, and says on the gap's card \
         what it found and did.\n\n\
         Answer with one JSON object and nothing else: {\"summary\": \"what the fix does, one \
         sentence\", \"workflow\": \"the whole workflow.md\"}.\n\n\
         The host checks, compiles and tests your workflow, then runs it once against the live \
         host with writes recorded and not applied, then checks its grants against the policy. \
         When a step fails you get its diagnostics and answer again with the whole corrected \
         workflow.\n\nRules:\n\
         - the front matter's `name` is the skill name you are given and `trigger` is \
         `gap: KIND` of the gap's kind;\n\
         - call only the functions listed under Interfaces, and grant in `[capabilities]` only \
         what your steps call (a fix asks for the least it needs);\n\
         - declare in `[input]` the inputs you are given, each with the value given as its \
         default;\n\
         - end with a `## Tests` section of at least one `### example`, with fixtures for every \
         capability call and the writes expected.\n\n",
    );
    system.push_str("# The workflow.md format\n\n");
    system.push_str(WORKFLOW_FORMAT.trim());
    system.push_str("\n\n# Interfaces\n\n");
    system.push_str(interfaces);
    system.push_str(
        "\n\n# Worked examples\n\nThe fleet's own workflows, each of which passes the gate.\n",
    );
    for (file, text) in EXAMPLES {
        system.push_str(&format!(
            "\n## {file}\n\n````markdown\n{}\n````\n",
            text.trim()
        ));
    }

    let mut user = String::new();
    user.push_str(&format!(
        "Write the fix for this gap.\n\n# The gap\n\n- kind: `{}`\n- rule: `{}`, which fires at \
         `{}` (threshold {})\n- value measured: {}\n- summary: {}\n",
        brief.kind, brief.rule, brief.condition, brief.threshold, brief.value, brief.summary
    ));
    if brief.labels.is_empty() {
        user.push_str("- labels: none\n");
    } else {
        let labels: Vec<String> = brief
            .labels
            .iter()
            .map(|(k, v)| format!("{k} = {v:?}"))
            .collect();
        user.push_str(&format!("- labels: {}\n", labels.join(", ")));
    }
    user.push_str(&format!(
        "- its card: `{}`, in list `{}`\n",
        brief.card_id, brief.card_list
    ));
    if !brief.evidence.is_empty() {
        user.push_str("\nEvidence:\n");
        for line in &brief.evidence {
            user.push_str(&format!("- {}\n", crate::capabilities::llm::brief(line)));
        }
    }
    user.push_str(&format!(
        "\n# The fix\n\n- skill name: `{}`\n- trigger: `gap: {}`\n- inputs it is run with (declare \
         each in `[input]` with this default): `{}`\n",
        brief.skill, brief.kind, input
    ));
    user.push_str("\n# Fixes of similar past gaps\n\n");
    match past {
        Ok(fixes) if fixes.is_empty() => {
            user.push_str("Memory keeps none yet.\n");
        }
        Ok(fixes) => {
            user.push_str(
                "What the factory deployed for gaps like this one, with what it measured \
                 afterwards (namespace `org`). Build on what worked; avoid what did not.\n\n",
            );
            for fix in fixes {
                user.push_str(fix);
                user.push_str("\n\n");
            }
        }
        Err(e) => {
            user.push_str(&format!("Memory could not be searched ({e}).\n"));
        }
    }
    vec![
        Message::new(Role::System, system),
        Message::new(Role::User, user),
    ]
}

/// The prompt after a round that did not pass: its diagnostics.
pub fn correction(round: u32, failure: &str) -> String {
    format!(
        "Your workflow of round {round} did not pass the gate.\n\n{failure}\n\nAnswer again with \
         the same JSON object, the whole corrected workflow in `workflow`."
    )
}

/// Reads an answer: the workflow and its summary, or why there is none.
pub fn read_answer(answer: &ChatAnswer) -> Result<Written, String> {
    if answer.finish_reason == FinishReason::Length {
        return Err(format!(
            "the model's answer was cut at its token limit (finish_reason `length`, {} completion \
             tokens): no partial workflow is verified",
            answer.usage.completion_tokens
        ));
    }
    let text = answer.content.trim();
    if text.is_empty() {
        return Err("the model answered nothing (an empty message)".into());
    }
    let json = unfenced(text);
    let value: Value = serde_json::from_str(json).map_err(|e| {
        format!(
            "the model's answer is not JSON ({e}); it begins `{}`",
            crate::capabilities::llm::brief(text)
        )
    })?;
    let Some(object) = value.as_object() else {
        return Err(format!(
            "the model's answer is JSON but not an object; it begins `{}`",
            crate::capabilities::llm::brief(text)
        ));
    };
    let source = match object.get("workflow") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("the model's answer has an empty `workflow`".into()),
        Some(_) => return Err("the model's answer has a `workflow` that is not a string".into()),
        None => return Err("the model's answer has no `workflow`".into()),
    };
    let summary = object
        .get("summary")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string();
    Ok(Written { source, summary })
}

/// The answer without what a reasoning model thinks aloud first
/// (`<think>…</think>`, as Qwen3 and DeepSeek-R1 write it into `content`
/// on some servers), and inside one Markdown code fence around all of it,
/// if there is one (a model without structured output often fences its
/// JSON).
fn unfenced(text: &str) -> &str {
    let text = match text.strip_prefix("<think>") {
        Some(rest) => match rest.find("</think>") {
            Some(end) => rest[end + "</think>".len()..].trim(),
            None => text,
        },
        None => text,
    };
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let Some(body) = rest.strip_suffix("```") else {
        return text;
    };
    match body.split_once('\n') {
        Some((info, inner)) if !info.contains('{') => inner.trim(),
        _ => body.trim(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::llm::{Structured, Usage};
    use std::time::Duration;

    fn answer(content: &str, finish: FinishReason) -> ChatAnswer {
        ChatAnswer {
            content: content.into(),
            finish_reason: finish,
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 5,
                total_tokens: 15,
            },
            model: "m".into(),
            structured: Structured::JsonSchema,
            requests: 1,
            elapsed: Duration::from_millis(1),
        }
    }

    #[test]
    fn an_answer_is_a_json_object_with_a_workflow() {
        let ok = read_answer(&answer(
            r#"{"summary":"Says so.","workflow":"+++\nname = \"x\"\n+++\n"}"#,
            FinishReason::Stop,
        ))
        .unwrap();
        assert_eq!(ok.summary, "Says so.");
        assert!(ok.source.starts_with("+++"));
        let fenced = read_answer(&answer(
            "```json\n{\"summary\":\"s\",\"workflow\":\"w\"}\n```",
            FinishReason::Stop,
        ))
        .unwrap();
        assert_eq!(fenced.source, "w");
        let thought = read_answer(&answer(
            "<think>\nThe card first. {not json}\n</think>\n\n{\"summary\":\"s\",\"workflow\":\"t\"}",
            FinishReason::Stop,
        ))
        .unwrap();
        assert_eq!(thought.source, "t");
        for (content, finish, says) in [
            ("", FinishReason::Stop, "answered nothing"),
            ("   \n", FinishReason::Stop, "answered nothing"),
            ("here is your workflow", FinishReason::Stop, "not JSON"),
            ("[1, 2]", FinishReason::Stop, "not an object"),
            (r#"{"summary":"s"}"#, FinishReason::Stop, "no `workflow`"),
            (
                r#"{"workflow":"  "}"#,
                FinishReason::Stop,
                "empty `workflow`",
            ),
            (r#"{"workflow":3}"#, FinishReason::Stop, "not a string"),
            (
                r#"{"summary":"s","workflow":"+++"#,
                FinishReason::Length,
                "token limit",
            ),
        ] {
            let e = read_answer(&answer(content, finish)).unwrap_err();
            assert!(e.contains(says), "{content:?}: {e}");
        }
    }

    #[test]
    fn a_denied_grant_takes_its_functions_out_of_the_prompt() {
        let all = allowed_interfaces(&Policy::default(), "agent-down");
        assert!(
            all.contains("`board.add_comment(card_id: string, text: string)"),
            "{all}"
        );
        assert!(all.contains("needs `board_write = [LISTS]`"), "{all}");
        assert!(all.contains("`log.log("), "{all}");
        assert!(!all.contains("policy denies"), "{all}");
        let policy = Policy::parse(
            "[[rule]]\ngap = \"agent-down\"\nany_of = [\"memory_write\", \"fleet_write\"]\napproval = \"deny\"\n",
        )
        .unwrap();
        let some = allowed_interfaces(&policy, "agent-down");
        assert!(!some.contains("`memory.store("), "{some}");
        assert!(!some.contains("`fleet.send_heartbeat("), "{some}");
        assert!(some.contains("`memory.search("), "{some}");
        assert!(some.contains("`fleet.route("), "{some}");
        assert!(
            some.contains("denies fixes for `agent-down` gaps these grants")
                && some.contains("fleet_write, memory_write"),
            "{some}"
        );
        // Another kind is not bound by that rule.
        assert!(allowed_interfaces(&policy, "cards-blocked").contains("`memory.store("));
        // A heartbeat asks for fleet_read as well as fleet_write: denying
        // reads takes it out too.
        let reads = Policy::parse(
            "[[rule]]\ngap = \"*\"\nany_of = [\"fleet_read\"]\napproval = \"deny\"\n",
        )
        .unwrap();
        let some = allowed_interfaces(&reads, "agent-down");
        assert!(!some.contains("`fleet.send_heartbeat("), "{some}");
        assert!(!some.contains("`fleet.route("), "{some}");
        assert!(some.contains("`board.cards("), "{some}");
        let asked = ["board_write".to_string(), "fleet_read".to_string()];
        assert_eq!(denied_alone(&reads, "agent-down", &asked), ["fleet_read"]);
        // Denied only together: no grant is denied alone.
        let pair = Policy::parse(
            "[[rule]]\ngap = \"*\"\ngrants = [\"board_write\"]\napproval = \"human\"\n\n\
             [[rule]]\ngap = \"*\"\ngrants = [\"fleet_read\"]\napproval = \"human\"\n\n\
             [[rule]]\ngap = \"*\"\napproval = \"deny\"\n",
        )
        .unwrap();
        assert!(denied_alone(&pair, "agent-down", &asked).is_empty());
    }
}
