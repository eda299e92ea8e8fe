//! The verification gate: what a proposed fix must pass before anyone is
//! asked about it, in order, each step only after the one before it
//! passed: **check** (the workflow is well-formed and typed; a fix for a
//! gap says so with its trigger and carries examples) → **compile** (to a
//! component) → **tests** (its own examples, on their fixtures) →
//! **shadow** (one run against the live host: reads answered by the real
//! capabilities, writes recorded, never applied) → **policy** (every grant
//! it asks for is within what the policy allows for the gap's kind).
//!
//! Each step's result is kept with the proposal; a failed step's reason is
//! what goes on the gap's card, and, for a synthesised draft, back to the
//! model (rendered as the compiler renders it: `file:line:column`, the
//! source line, the hint).

use crate::factory::approval::policy::{grants_of, Approval, Decision, Policy};
use crate::skill::Manifest;
use crate::workflow::front::Trigger;
use crate::workflow::shadow::{ShadowOutcome, ShadowRunner};
use crate::workflow::{self, Compiled};
use serde::Serialize;
use serde_json::Value;
use std::time::Instant;

/// The steps, in order.
pub const STEPS: [&str; 5] = ["check", "compile", "tests", "shadow", "policy"];

/// One step's result.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StepResult {
    /// `check`, `compile`, `tests`, `shadow` or `policy`.
    pub step: String,
    /// Whether it passed.
    pub passed: bool,
    /// What it found, one paragraph (the diagnostics, the failing example).
    pub detail: String,
    /// How long it took, ms.
    pub took_ms: f64,
    /// What it produced: the examples' outcomes, the shadow run's writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// What the gate said of one source.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verification {
    /// Whether every step passed.
    pub passed: bool,
    /// The steps run, in order (the first that failed is the last).
    pub steps: Vec<StepResult>,
    /// sha256 of the compiled component, once it compiled.
    pub component_sha256: Option<String>,
    /// The grants the fix asks for, by the policy's names.
    pub grants: Vec<String>,
    /// What the policy says of it, once it got that far.
    pub decision: Option<Decision>,
    /// The shadow run's writes, once it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub shadow: Option<ShadowOutcome>,
}

impl Verification {
    /// The reason it failed, for a card and a model: the failed step and
    /// what it found.
    pub fn failure(&self) -> Option<String> {
        self.steps
            .iter()
            .find(|s| !s.passed)
            .map(|s| format!("{} failed: {}", s.step, s.detail))
    }
}

/// What a gate needs from the host.
pub struct Gate<'a> {
    /// Runs the shadow step against the live host.
    pub shadow: &'a ShadowRunner,
    /// The policy in force.
    pub policy: &'a Policy,
}

fn step(
    name: &str,
    passed: bool,
    detail: String,
    started: Instant,
    data: Option<Value>,
) -> StepResult {
    StepResult {
        step: name.to_string(),
        passed,
        detail,
        took_ms: started.elapsed().as_secs_f64() * 1000.0,
        data,
    }
}

impl Gate<'_> {
    /// Runs the gate on `source`, a fix named `skill` for a gap of `kind`,
    /// with the fields of `input` it declares for its shadow run. The compiled component comes back
    /// with a verification that passed.
    pub async fn verify(
        &self,
        skill: &str,
        kind: &str,
        source: &str,
        input: &Value,
    ) -> (Verification, Option<Compiled>) {
        let file = format!("{skill}{}", workflow::SUFFIX);
        let mut v = Verification {
            passed: false,
            steps: Vec::new(),
            component_sha256: None,
            grants: Vec::new(),
            decision: None,
            shadow: None,
        };
        // check
        let started = Instant::now();
        let checked = workflow::check(source, Some(skill));
        let mut problems = Vec::new();
        if checked.diagnostics.has_errors() {
            problems.push(checked.diagnostics.render(&file, source));
        } else {
            let wanted = Trigger::Gap(kind.to_string());
            if checked.header.trigger != wanted {
                problems.push(format!(
                    "{file}: the trigger is `{}`; a fix for this gap has `trigger = \"{wanted}\"`",
                    checked.header.trigger
                ));
            }
            if checked.tests.is_empty() {
                problems.push(format!(
                    "{file}: the workflow has no examples; a fix carries a `## Tests` section \
                     with at least one `### example`"
                ));
            }
        }
        let ok = problems.is_empty();
        // The run gets what the fix declares of the gap's particulars; the
        // rest of its input comes from its defaults.
        let declared: Vec<&str> = checked
            .header
            .input
            .iter()
            .flatten()
            .map(|f| f.name.as_str())
            .collect();
        let input = match input {
            Value::Object(given) => Value::Object(
                given
                    .iter()
                    .filter(|(k, _)| declared.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        };
        let input = &input;
        let detail = if ok {
            let warnings = checked.diagnostics.0.len();
            format!("well-formed and typed ({warnings} warning(s))")
        } else {
            problems.join("\n")
        };
        v.steps.push(step("check", ok, detail, started, None));
        if !ok {
            return (v, None);
        }
        // compile
        let started = Instant::now();
        let compiled = match workflow::compile(source, Some(skill)) {
            Ok(compiled) => compiled,
            Err(e) => {
                let detail = match &e {
                    workflow::CompileError::Invalid(d) => d.render(&file, source),
                    other => other.to_string(),
                };
                v.steps.push(step("compile", false, detail, started, None));
                return (v, None);
            }
        };
        // Compiled for the sandbox once, for the examples and the shadow run.
        let component = match self.shadow.compile(&compiled).await {
            Ok(component) => component,
            Err(e) => {
                let detail = format!("the component does not compile for the sandbox: {e}");
                v.steps.push(step("compile", false, detail, started, None));
                return (v, None);
            }
        };
        v.component_sha256 = Some(compiled.sha256.clone());
        v.steps.push(step(
            "compile",
            true,
            format!(
                "{} bytes, sha256 {}",
                compiled.component.len(),
                compiled.sha256
            ),
            started,
            None,
        ));
        // tests
        let started = Instant::now();
        match self.shadow.examples(&compiled, &component).await {
            Ok(outcomes) => {
                let failed: Vec<String> = outcomes
                    .iter()
                    .filter(|o| !o.passed)
                    .map(|o| {
                        format!(
                            "{file}:{}: example `{}` failed: {}",
                            o.line,
                            o.name,
                            o.problems.join("; ")
                        )
                    })
                    .collect();
                let ok = failed.is_empty();
                let detail = if ok {
                    format!("{} example(s) passed", outcomes.len())
                } else {
                    failed.join("\n")
                };
                let data = serde_json::to_value(&outcomes).ok();
                v.steps.push(step("tests", ok, detail, started, data));
                if !ok {
                    return (v, None);
                }
            }
            Err(e) => {
                v.steps
                    .push(step("tests", false, e.to_string(), started, None));
                return (v, None);
            }
        }
        // shadow
        let started = Instant::now();
        match self.shadow.run(&compiled, &component, input).await {
            Ok(outcome) => {
                let ok = outcome.error.is_none();
                let detail = match &outcome.error {
                    None => format!(
                        "ran against the live host with input {input}: {} write(s) recorded, none \
                         applied",
                        outcome.writes.len()
                    ),
                    Some(e) => {
                        format!("the run against the live host with input {input} failed: {e}")
                    }
                };
                let data = serde_json::to_value(&outcome).ok();
                v.shadow = Some(outcome);
                v.steps.push(step("shadow", ok, detail, started, data));
                if !ok {
                    return (v, None);
                }
            }
            Err(e) => {
                v.steps.push(step("shadow", false, e, started, None));
                return (v, None);
            }
        }
        // policy
        let started = Instant::now();
        let grants = match Manifest::merge(Some(&compiled.manifest), None) {
            Ok(manifest) => grants_of(&manifest),
            Err(e) => {
                v.steps.push(step("policy", false, e, started, None));
                return (v, None);
            }
        };
        v.grants = grants.iter().cloned().collect();
        let decision = self.policy.decide(kind, &grants);
        let ok = decision.approval != Approval::Deny;
        let detail = if ok {
            format!(
                "asks for [{}]; approval {}: {}",
                v.grants.join(", "),
                match decision.approval {
                    Approval::Auto => "auto",
                    _ => "human",
                },
                decision.because
            )
        } else {
            format!(
                "asks for [{}], which the policy denies for gap kind `{kind}`: {}",
                v.grants.join(", "),
                decision.because
            )
        };
        v.decision = Some(decision);
        v.steps.push(step("policy", ok, detail, started, None));
        v.passed = ok;
        (v, ok.then_some(compiled))
    }
}
