//! Triggers: the factory runs a serving skill whose trigger says when.
//!
//! - `gap: KIND`: when a gap of that kind fires, once per firing, with the
//!   gap's particulars as its input, as far as its input schema declares
//!   them (each label, `card`, `gap`, `kind`, `rule`, `value`,
//!   `threshold`; a skill without a schema gets them all). A gap a skill
//!   answers is not synthesised for.
//! - `cron: M H DOM MON DOW` (UTC): at each minute the expression matches,
//!   on the host's clock. Never two runs of one skill at once (a slot that
//!   comes while the last run still runs is recorded as skipped), and
//!   after downtime the slots missed are not piled up: the latest runs
//!   once. A skill first seen runs from its next slot on.
//!
//! Every run goes through the registry like any call (metrics, limits,
//! swaps), on a task of its own, and is kept in [`RunStore`].

use crate::capabilities::Clock;
use crate::factory::runs::{Run, RunState, RunStore};
use crate::factory::synth::GapBrief;
use crate::registry::Registry;
use crate::workflow::cron::Cron;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How far back the scheduler looks for a skill's latest slot.
const HORIZON_DAYS: u64 = 400;

/// The most of a run's output kept.
const OUTPUT_BYTES: usize = 4096;

/// A serving skill with a trigger.
#[derive(Debug, Clone)]
struct Triggered {
    name: String,
    sha256: String,
    trigger: String,
    /// The input's property names, when its schema names them.
    inputs: Option<Vec<String>>,
}

/// One run in flight of `skill`, counted out when dropped.
struct InFlight {
    triggers: Arc<Triggers>,
    skill: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut running = lock(&self.triggers.running);
        if let Some(n) = running.get_mut(&self.skill) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                running.remove(&self.skill);
            }
        }
    }
}

/// Runs skills by their triggers.
pub struct Triggers {
    registry: Arc<Registry>,
    runs: RunStore,
    clock: Clock,
    /// Runs in flight, by skill.
    running: Mutex<HashMap<String, usize>>,
    /// For each cron skill, the slot it is past (first seen, or last run)
    /// and the expression that slot is of.
    cron_past: Mutex<HashMap<String, (String, u64)>>,
    /// Runs ended since the host started, by skill, trigger kind (`gap`,
    /// `cron`) and state.
    ended: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Triggers {
    /// Triggers over what `registry` serves, recorded in `runs`.
    pub fn new(registry: Arc<Registry>, runs: RunStore, clock: Clock) -> Self {
        Triggers {
            registry,
            runs,
            clock,
            running: Mutex::new(HashMap::new()),
            cron_past: Mutex::new(HashMap::new()),
            ended: Mutex::new(BTreeMap::new()),
        }
    }

    /// The runs kept.
    pub fn runs(&self) -> &RunStore {
        &self.runs
    }

    /// Runs ended since the host started: (skill, `gap` or `cron`, state)
    /// and how many.
    pub fn ended(&self) -> Vec<((String, &'static str, &'static str), u64)> {
        lock(&self.ended)
            .iter()
            .map(|(k, n)| (k.clone(), *n))
            .collect()
    }

    fn count(&self, run: &Run) {
        let kind = if run.trigger.starts_with("cron:") {
            "cron"
        } else {
            "gap"
        };
        *lock(&self.ended)
            .entry((run.skill.clone(), kind, run.state.name()))
            .or_default() += 1;
    }

    fn triggered(&self) -> Vec<Triggered> {
        self.registry
            .list()
            .into_iter()
            .filter_map(|s| {
                let slot = self.registry.get(&s.name)?;
                let version = slot.active()?;
                let manifest = &version.resolved.manifest;
                let trigger = manifest.workflow.as_ref()?.trigger.clone();
                let inputs = manifest
                    .input_schema
                    .as_ref()
                    .and_then(|schema| schema.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect());
                Some(Triggered {
                    name: s.name,
                    sha256: version.sha256.clone(),
                    trigger,
                    inputs,
                })
            })
            .collect()
    }

    /// Runs every serving skill whose trigger is `gap: KIND` of `gap`'s
    /// kind, once for this firing; `true` when one answers it, its run kept
    /// (then it is not synthesised for).
    pub async fn on_gap(self: &Arc<Self>, gap: &GapBrief) -> bool {
        let wanted = format!("gap: {}", gap.kind);
        let skills: Vec<Triggered> = self
            .triggered()
            .into_iter()
            .filter(|t| t.trigger == wanted)
            .collect();
        let mut answered = false;
        for skill in &skills {
            let mut given = Map::new();
            for (k, v) in &gap.labels {
                given.insert(k.clone(), Value::String(v.clone()));
            }
            given.insert("card".into(), Value::String(gap.card_id.clone()));
            given.insert("gap".into(), Value::from(gap.id));
            given.insert("kind".into(), Value::String(gap.kind.clone()));
            given.insert("rule".into(), Value::String(gap.rule.clone()));
            given.insert("value".into(), Value::from(gap.value));
            given.insert("threshold".into(), Value::from(gap.threshold));
            if let Some(declared) = &skill.inputs {
                given.retain(|k, _| declared.contains(k));
            }
            let run = Run {
                id: 0,
                skill: skill.name.clone(),
                sha256: skill.sha256.clone(),
                trigger: skill.trigger.clone(),
                key: format!("gap:{}:{}", gap.id, gap.fired_at_ms),
                gap_id: Some(gap.id),
                due_at_ms: gap.fired_at_ms,
                state: RunState::Running,
                input: Value::Object(given),
                output: None,
                error: None,
                started_at_ms: self.clock.now_ms(),
                took_ms: None,
            };
            answered |= self.start(run).await;
        }
        answered
    }

    /// Runs each cron skill whose slot has come since it last ran.
    pub async fn tick(self: &Arc<Self>) {
        let now = self.clock.now_ms();
        for skill in self.triggered() {
            let Some(expr) = skill.trigger.strip_prefix("cron:").map(str::trim) else {
                continue;
            };
            let cron = match Cron::parse(expr) {
                Ok(cron) => cron,
                Err(e) => {
                    tracing::warn!(skill = %skill.name, error = %e, "a cron trigger that cannot be read");
                    continue;
                }
            };
            let slot = cron.latest_at_or_before(now, HORIZON_DAYS);
            let past = lock(&self.cron_past).get(&skill.name).cloned();
            let past = match past {
                Some((seen, past)) if seen == expr => past,
                Some(_) => {
                    // Its schedule changed: from its next minute on.
                    let past = slot.unwrap_or(now);
                    lock(&self.cron_past).insert(skill.name.clone(), (expr.to_string(), past));
                    past
                }
                None => {
                    // First seen since the host started: from the last run
                    // of this schedule kept, or from its next minute on.
                    let last = match self.runs.last_due(&skill.name, &skill.trigger).await {
                        Ok(last) => last,
                        Err(e) => {
                            tracing::warn!(skill = %skill.name, error = %e, "the runs could not be read");
                            continue;
                        }
                    };
                    let past = last.or(slot).unwrap_or(now);
                    lock(&self.cron_past).insert(skill.name.clone(), (expr.to_string(), past));
                    past
                }
            };
            let Some(slot) = slot else {
                continue;
            };
            if slot <= past {
                continue;
            }
            lock(&self.cron_past).insert(skill.name.clone(), (expr.to_string(), slot));
            let busy = lock(&self.running).get(&skill.name).is_some_and(|n| *n > 0);
            let mut run = Run {
                id: 0,
                skill: skill.name.clone(),
                sha256: skill.sha256.clone(),
                trigger: skill.trigger.clone(),
                key: format!("cron:{slot}"),
                gap_id: None,
                due_at_ms: slot,
                state: RunState::Running,
                input: Value::Object(Map::new()),
                output: None,
                error: None,
                started_at_ms: now,
                took_ms: None,
            };
            if busy {
                run.state = RunState::Skipped;
                run.error = Some("the previous run was still running".into());
                match self.runs.start(run).await {
                    Ok(Some(run)) => self.count(&run),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(skill = %skill.name, error = %e, "a skipped run could not be kept")
                    }
                }
                continue;
            }
            self.start(run).await;
        }
    }

    /// Keeps `run` and calls its skill on a task of its own, unless its
    /// key ran before; `false` when the run could not be kept (then the
    /// skill is not run).
    async fn start(self: &Arc<Self>, run: Run) -> bool {
        let run = match self.runs.start(run).await {
            Ok(Some(run)) => run,
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "a run could not be kept; the skill is not run");
                return false;
            }
        };
        *lock(&self.running).entry(run.skill.clone()).or_default() += 1;
        let me = self.clone();
        tokio::spawn(async move {
            // Counted out however the task ends, a panic included.
            let _in_flight = InFlight {
                triggers: me.clone(),
                skill: run.skill.clone(),
            };
            let mut run = run;
            let started = Instant::now();
            let result = me.registry.invoke(&run.skill, &run.input.to_string()).await;
            run.took_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            match result {
                Ok(output) => {
                    run.state = RunState::Ok;
                    run.output = Some(if output.len() <= OUTPUT_BYTES {
                        serde_json::from_str(&output).unwrap_or(Value::String(output))
                    } else {
                        Value::String(crate::runtime::bounded::cut_owned(output, OUTPUT_BYTES))
                    });
                }
                Err(e) => {
                    run.state = RunState::Failed;
                    run.error = Some(e.to_string());
                }
            }
            tracing::info!(skill = %run.skill, trigger = %run.trigger, state = run.state.name(), took_ms = run.took_ms, "a triggered run ended");
            me.count(&run);
            if let Err(e) = me.runs.finish(&run).await {
                tracing::warn!(skill = %run.skill, error = %e, "how a run ended could not be kept");
            }
        });
        true
    }

    /// Checks the cron triggers every second of real time until aborted
    /// (the host's clock may be a test's, moved at will).
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.tick().await;
            }
        })
    }
}
