//! Synthesis: a firing gap becomes a proposed fix. For each gap that fires
//! with its card open, and that no serving skill already answers (a skill
//! whose trigger is `gap: KIND` of the gap's kind), a `workflow.md` is
//! written for it (by a [`model`], corrected from the gate's diagnostics
//! for a few rounds, or [`offline`] when no model is configured), put through
//! the verification gate, kept as a proposal with its rounds, summarised on
//! the gap's card, and handed to approval: applied by the policy, or asked
//! of a person.
//!
//! Synthesis runs on a task of its own, fed by the evaluation: a slow or
//! absent model never holds up an evaluation, the API or a skill call. One
//! gap is synthesised at a time, and one proposal is opened per firing of a
//! gap (a restart finds it in the store, and a gap already in flight is not
//! queued twice).

pub mod model;
pub mod offline;

use crate::capabilities::board::BoardBackend;
use crate::capabilities::kpi::Labels;
use crate::capabilities::llm::{ChatRequest, Message, Role};
use crate::capabilities::Clock;
use crate::factory::approval::policy::Approval;
use crate::factory::approval::{Approvals, PolicySource};
use crate::factory::proposals::{Proposal, ProposalError, ProposalState, ProposalStore, Round};
use crate::factory::verify::Gate;
use crate::registry::Registry;
use crate::workflow::shadow::ShadowRunner;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc;

pub use model::Model;

/// The synthesiser's name on what it wrote without a model.
pub const OFFLINE: &str = "offline";

/// What synthesis knows of a gap.
#[derive(Debug, Clone, PartialEq)]
pub struct GapBrief {
    /// The gap's id.
    pub id: i64,
    /// When it fired, ms.
    pub fired_at_ms: u64,
    /// Its kind: one of the five watches (its rule, or the watch whose
    /// series its rule reads).
    pub kind: String,
    /// Its rule's name.
    pub rule: String,
    /// Its labels (`agent`, `repo`, `branch`).
    pub labels: Labels,
    /// The value that fired it.
    pub value: f64,
    /// The rule's fire threshold.
    pub threshold: f64,
    /// The rule's fire condition as text (`> 2`).
    pub condition: String,
    /// The card's title without `Gap: `.
    pub summary: String,
    /// Its card.
    pub card_id: String,
    /// The list its card is in.
    pub card_list: String,
    /// The board monitor's "blocked too long", in hours.
    pub blocked_hours: u64,
    /// The fix's skill name.
    pub skill: String,
    /// What the monitors saw (at most 20 lines).
    pub evidence: Vec<String>,
}

/// A written fix, before the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Its skill name.
    pub skill: String,
    /// Its `workflow.md`.
    pub source: String,
    /// What it does, one sentence.
    pub summary: String,
}

/// The series each watch reads: a rule of another name on one of these is
/// a gap of that kind.
const KIND_SERIES: [(&str, &str); 5] = [
    ("cards-blocked", "board.cards_blocked_long"),
    ("agent-down", "fleet.missed_heartbeats"),
    ("memory-ingest-lag", "memory.ingest.lag_seconds"),
    ("ci-not-green", "ci.last_success_age_seconds"),
    ("agent-cost", "agent.cost_ratio"),
];

/// The kind of a gap of rule `rule` reading `series`: the rule's name when
/// it is one of the five, else the watch whose series it reads.
pub fn kind_of(rule: &str, series: Option<&str>) -> Option<String> {
    if offline::KINDS.contains(&rule) {
        return Some(rule.to_string());
    }
    let series = series?;
    KIND_SERIES
        .iter()
        .find(|(_, s)| *s == series)
        .map(|(k, _)| k.to_string())
}

/// The skill name of the fix for a gap: `fix-KIND[-LABELS]`, in the skill
/// name alphabet, at most 64 characters (the gap's id ends a name that had
/// to be cut, so two gaps never share one).
pub fn skill_name(kind: &str, labels: &Labels, gap_id: i64) -> String {
    let mut name = format!("fix-{kind}");
    for value in labels.values() {
        let slug: String = value
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let slug = slug
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        if !slug.is_empty() {
            name.push('-');
            name.push_str(&slug);
        }
    }
    if name.len() > 64 {
        let tail = format!("-{gap_id}");
        name.truncate(64 - tail.len());
        let name = name.trim_end_matches('-').to_string();
        return format!("{name}{tail}");
    }
    name
}

/// The input of a fix's shadow run: the gap's labels and its card (the
/// gate passes a fix what it declares of these; its `[input]` defaults
/// give the rest).
pub fn shadow_input(brief: &GapBrief) -> Value {
    let mut input = serde_json::Map::new();
    for (k, v) in &brief.labels {
        input.insert(k.clone(), Value::String(v.clone()));
    }
    input.insert("card".into(), Value::String(brief.card_id.clone()));
    Value::Object(input)
}

/// What synthesis works with.
pub struct Synthesis {
    /// Proposals, rounds, requests.
    pub store: ProposalStore,
    /// The gate's shadow runs.
    pub shadow: ShadowRunner,
    /// The approval policy.
    pub policy: Arc<PolicySource>,
    /// Approval requests and their channels.
    pub approvals: Arc<Approvals>,
    /// Where cards are commented.
    pub board: Arc<dyn BoardBackend>,
    /// What serves (a skill may already answer a gap kind).
    pub registry: Arc<Registry>,
    /// The host's clock.
    pub clock: Clock,
    /// The model that writes fixes; `None`: the offline synthesiser does.
    pub model: Option<Model>,
}

/// The queue into the synthesis task.
pub struct SynthHandle {
    tx: mpsc::UnboundedSender<GapBrief>,
    queued: Arc<Mutex<HashSet<(i64, u64)>>>,
}

impl SynthHandle {
    /// Queues a gap unless it is queued or in flight; `true` when queued.
    pub fn queue(&self, brief: GapBrief) -> bool {
        let key = (brief.id, brief.fired_at_ms);
        if !lock(&self.queued).insert(key) {
            return false;
        }
        if self.tx.send(brief).is_err() {
            lock(&self.queued).remove(&key);
            return false;
        }
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Synthesis {
    /// Starts the synthesis task; the handle feeds it.
    pub fn spawn(self: Arc<Self>) -> (SynthHandle, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<GapBrief>();
        let queued = Arc::new(Mutex::new(HashSet::new()));
        let done = queued.clone();
        let task = tokio::spawn(async move {
            while let Some(brief) = rx.recv().await {
                let key = (brief.id, brief.fired_at_ms);
                match self.answer(&brief).await {
                    Ok(Some(p)) => tracing::info!(
                        gap = brief.id,
                        proposal = p.id,
                        state = p.state.name(),
                        "gap answered with a proposal"
                    ),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(gap = brief.id, error = %e, "synthesis failed"),
                }
                // Done: the store answers for it from now on.
                lock(&done).remove(&key);
            }
        });
        (SynthHandle { tx, queued }, task)
    }

    /// The serving skill that already answers gaps of `kind`, if any.
    pub fn answered_by(&self, kind: &str) -> Option<String> {
        let wanted = format!("gap: {kind}");
        self.registry.list().into_iter().find_map(|s| {
            let slot = self.registry.get(&s.name)?;
            let version = slot.active()?;
            let origin = version.resolved.manifest.workflow.as_ref()?;
            (origin.trigger == wanted).then_some(s.name)
        })
    }

    /// Answers one firing of a gap: the proposal it has (opened now, or
    /// before), or `None` when a serving skill already answers its kind.
    pub async fn answer(&self, brief: &GapBrief) -> Result<Option<Proposal>, ProposalError> {
        if let Some(existing) = self.store.of_firing(brief.id, brief.fired_at_ms).await? {
            if existing.state != ProposalState::Synthesising {
                return Ok(Some(existing));
            }
        } else if let Some(skill) = self.answered_by(&brief.kind) {
            tracing::debug!(gap = brief.id, skill = %skill, "a serving skill answers this gap");
            return Ok(None);
        }
        let started = Instant::now();
        let now = self.clock.now_ms();
        let (mut p, _) = self
            .store
            .open_for(Proposal {
                id: 0,
                gap_id: brief.id,
                gap_fired_at_ms: brief.fired_at_ms,
                kind: brief.kind.clone(),
                labels: brief.labels.clone(),
                card_id: Some(brief.card_id.clone()),
                skill: brief.skill.clone(),
                state: ProposalState::Synthesising,
                synthesiser: String::new(),
                summary: String::new(),
                source: String::new(),
                sha256: String::new(),
                verification: None,
                approval: None,
                reason: None,
                created_at_ms: now,
                updated_at_ms: now,
                host_ms: 0.0,
                model_ms: 0.0,
                tokens: 0,
            })
            .await?;
        // A synthesis a restart cut short starts again from its first
        // round, by the synthesiser configured now.
        self.store.clear_rounds(p.id).await?;
        p.synthesiser = match &self.model {
            Some(model) => model.author(),
            None => OFFLINE.into(),
        };
        p.summary.clear();
        p.source.clear();
        p.sha256.clear();
        p.verification = None;
        p.approval = None;
        p.reason = None;
        p.model_ms = 0.0;
        p.tokens = 0;
        match &self.model {
            Some(model) => self.write_with(model, &mut p, brief).await?,
            None => self.write_offline(&mut p, brief, 1, None).await?,
        }
        self.finish(p, brief, started).await.map(Some)
    }

    /// Writes the fix with the offline synthesiser as round `round`;
    /// `instead` says why the model did not write it.
    async fn write_offline(
        &self,
        p: &mut Proposal,
        brief: &GapBrief,
        round: u32,
        instead: Option<String>,
    ) -> Result<(), ProposalError> {
        p.synthesiser = OFFLINE.into();
        let Some(draft) = offline::synthesise(brief) else {
            let none = format!(
                "the offline synthesiser has no fix for gaps of kind `{}` (it writes fixes for {})",
                brief.kind,
                offline::KINDS.join(", ")
            );
            p.state = ProposalState::Failed;
            p.reason = Some(match instead {
                Some(why) => format!("{why}; and {none}"),
                None => format!("{none}; configure an LLM (--llm-url) for others"),
            });
            return Ok(());
        };
        let input = shadow_input(brief);
        let policy = self.policy.current();
        let verification = self
            .verify(&draft.skill, brief, &draft.source, &input, &policy)
            .await;
        let failure = verification.failure();
        self.store
            .add_round(
                p.id,
                &Round {
                    round,
                    author: OFFLINE.into(),
                    prompt: String::new(),
                    answer: draft.source.clone(),
                    diagnostics: failure.clone().unwrap_or_default(),
                    model_ms: 0.0,
                    tokens: 0,
                },
            )
            .await?;
        p.summary = draft.summary;
        p.set_source(draft.source, &verification);
        if verification.passed {
            p.state = ProposalState::AwaitingApproval;
            p.reason = instead.map(|why| format!("{why}; the offline synthesiser wrote this fix"));
        } else {
            p.state = ProposalState::Failed;
            p.reason = match instead {
                Some(why) => Some(format!(
                    "{why}; and the offline fix did not pass: {}",
                    failure.unwrap_or_default()
                )),
                None => failure,
            };
        }
        Ok(())
    }

    /// Writes the fix with the model: up to its rounds, each answer put
    /// through the gate and its diagnostics sent back.
    async fn write_with(
        &self,
        model: &Model,
        p: &mut Proposal,
        brief: &GapBrief,
    ) -> Result<(), ProposalError> {
        let policy = self.policy.current();
        let input = shadow_input(brief);
        let past = model.past_fixes(brief).await;
        if let Err(e) = &past {
            tracing::warn!(gap = brief.id, error = %e, "past fixes could not be searched; the prompt goes without them");
        }
        let interfaces = model::allowed_interfaces(&policy, &brief.kind);
        let mut messages = model::opening(brief, &interfaces, &past, &input);
        let author = model.author();
        for round in 1..=model.rounds {
            let prompt = if round == 1 {
                messages
                    .iter()
                    .map(|m| m.content.as_str())
                    .collect::<Vec<_>>()
                    .join("\n\n")
            } else {
                messages
                    .last()
                    .map(|m| m.content.clone())
                    .unwrap_or_default()
            };
            let request = ChatRequest {
                messages: messages.clone(),
                schema: Some(model::answer_schema()),
                max_tokens: Some(model::MAX_ANSWER_TOKENS),
                temperature: Some(0.2),
                seed: None,
            };
            let asked = Instant::now();
            let answer = model.llm.chat(&request).await;
            let model_ms = match &answer {
                Ok(a) => a.elapsed.as_secs_f64() * 1000.0,
                Err(_) => asked.elapsed().as_secs_f64() * 1000.0,
            };
            p.model_ms += model_ms;
            let mut kept = Round {
                round,
                author: author.clone(),
                prompt,
                answer: String::new(),
                diagnostics: String::new(),
                model_ms,
                tokens: 0,
            };
            let answer = match answer {
                Ok(answer) => answer,
                Err(e) => {
                    // Down, slow, or refusing: the offline synthesiser
                    // writes the fix instead (for the kinds it knows).
                    let why = format!("round {round}: the model could not be asked: {e}");
                    kept.diagnostics = why.clone();
                    self.store.add_round(p.id, &kept).await?;
                    tracing::warn!(gap = brief.id, round, error = %e, "the model could not be asked; the offline synthesiser writes the fix");
                    return self.write_offline(p, brief, round + 1, Some(why)).await;
                }
            };
            kept.tokens = answer.usage.total_tokens;
            p.tokens += answer.usage.total_tokens;
            let written = match model::read_answer(&answer) {
                Ok(written) => written,
                Err(why) => {
                    kept.answer = answer.content;
                    kept.diagnostics = why.clone();
                    self.store.add_round(p.id, &kept).await?;
                    p.state = ProposalState::Failed;
                    p.reason = Some(format!("round {round}: {why}"));
                    return Ok(());
                }
            };
            let verification = self
                .verify(&brief.skill, brief, &written.source, &input, &policy)
                .await;
            let failure = verification.failure();
            kept.answer = written.source.clone();
            kept.diagnostics = failure.clone().unwrap_or_default();
            self.store.add_round(p.id, &kept).await?;
            p.summary = if written.summary.is_empty() {
                crate::workflow::check(&written.source, None)
                    .header
                    .description
                    .unwrap_or_default()
            } else {
                written.summary
            };
            p.set_source(written.source, &verification);
            let Some(failure) = failure else {
                p.state = ProposalState::AwaitingApproval;
                p.reason = None;
                return Ok(());
            };
            // A grant the policy denies on its own stays denied however
            // the fix is worded; a denied combination may be reworded.
            let denied = verification
                .decision
                .as_ref()
                .is_some_and(|d| d.approval == Approval::Deny)
                && !model::denied_alone(&policy, &brief.kind, &verification.grants).is_empty();
            if denied || round == model.rounds {
                p.state = ProposalState::Failed;
                p.reason = Some(if denied {
                    format!("round {round}: {failure}")
                } else {
                    format!(
                        "no round of {} passed the gate; the last: {failure}",
                        model.rounds
                    )
                });
                return Ok(());
            }
            // Where it is, for the API, while the model writes the next.
            p.updated_at_ms = self.clock.now_ms();
            self.store.update(p).await?;
            messages.push(Message::new(Role::Assistant, answer.content));
            messages.push(Message::new(Role::User, model::correction(round, &failure)));
        }
        p.state = ProposalState::Failed;
        p.reason = Some("no round was run (the rounds are 0)".into());
        Ok(())
    }

    /// The gate, on one source for `brief`.
    async fn verify(
        &self,
        skill: &str,
        brief: &GapBrief,
        source: &str,
        input: &Value,
        policy: &crate::factory::approval::policy::Policy,
    ) -> crate::factory::verify::Verification {
        let gate = Gate {
            shadow: &self.shadow,
            policy,
        };
        gate.verify(skill, &brief.kind, source, input).await.0
    }

    /// Writes the proposal, says on the card what came of it, and asks for
    /// approval when it passed.
    async fn finish(
        &self,
        mut p: Proposal,
        brief: &GapBrief,
        started: Instant,
    ) -> Result<Proposal, ProposalError> {
        p.host_ms = started.elapsed().as_secs_f64() * 1000.0 - p.model_ms;
        p.updated_at_ms = self.clock.now_ms();
        self.store.update(&p).await?;
        let text = match p.state {
            ProposalState::Failed => format!(
                "The factory's fix for this gap (proposal #{}, `{}`) did not pass: {}",
                p.id,
                p.skill,
                p.reason.as_deref().unwrap_or("no reason was recorded")
            ),
            _ => proposal_comment(&p),
        };
        if let Err(e) = self.board.comment(&brief.card_id, &text).await {
            tracing::warn!(gap = brief.id, proposal = p.id, error = %e, "the proposal could not be put on the gap's card");
        }
        if p.state == ProposalState::AwaitingApproval {
            match p.approval {
                Some(Approval::Auto) => {
                    p = self.approvals.approve_by_policy(p).await?;
                }
                _ => {
                    if let Err(e) = self.approvals.ask(&p).await {
                        tracing::warn!(proposal = p.id, error = %e, "approval could not be asked");
                    }
                }
            }
        }
        Ok(p)
    }
}

/// What the card says of a verified proposal.
pub fn proposal_comment(p: &Proposal) -> String {
    let steps = p
        .verification
        .as_ref()
        .and_then(|v| v["steps"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["step"].as_str().unwrap_or("?"),
                if s["passed"].as_bool() == Some(true) {
                    "passed"
                } else {
                    "failed"
                }
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let grants = p
        .verification
        .as_ref()
        .and_then(|v| v["grants"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect::<Vec<_>>()
        .join(", ");
    let note = match &p.reason {
        Some(why) => format!("\nNote: {why}."),
        None => String::new(),
    };
    format!(
        "Proposed fix #{} `{}` ({}): {}\n\nIt may use: {}. sha256 {}.\nVerification: {}.{note}\n\
         Approve with `darkfactory approvals list` / `approve`, or the Telegram button.",
        p.id,
        p.skill,
        p.synthesiser,
        p.summary,
        if grants.is_empty() {
            "nothing"
        } else {
            &grants
        },
        p.sha256,
        steps
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_is_named_for_its_gap_within_the_alphabet() {
        let mut labels = Labels::new();
        labels.insert("agent".into(), "Scout_01".into());
        assert_eq!(
            skill_name("agent-down", &labels, 3),
            "fix-agent-down-scout-01"
        );
        labels.insert("agent".into(), "x".repeat(100));
        let long = skill_name("agent-down", &labels, 42);
        assert!(long.len() <= 64 && long.ends_with("-42"), "{long}");
        crate::skill::SkillName::check(&long).unwrap();
        assert_eq!(
            skill_name("cards-blocked", &Labels::new(), 1),
            "fix-cards-blocked"
        );
    }

    #[test]
    fn a_rule_of_another_name_on_a_watched_series_is_of_that_kind() {
        assert_eq!(kind_of("agent-down", None).as_deref(), Some("agent-down"));
        assert_eq!(
            kind_of("agents-eu", Some("fleet.missed_heartbeats")).as_deref(),
            Some("agent-down")
        );
        assert_eq!(kind_of("latency", Some("http.p99")), None);
    }
}
