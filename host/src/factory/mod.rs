//! The factory: the loop the product exists for. This part watches: at
//! every evaluation the monitors write their samples, each rule is
//! evaluated over the KPI series, and each gap it finds is carried from
//! pending to firing to resolved, with exactly one card on the board for
//! it (see `gaps`).
//!
//! Evaluations run every `--eval-interval` on the host's clock (a manual
//! clock in tests, so 48 hours pass in a request) and on demand
//! (`POST /api/factory/evaluate`). One runs at a time. The rule file is
//! read again when it changes; a file with an error is refused and the
//! rules already loaded keep running.

pub mod approval;
pub mod escalate;
pub mod gaps;
pub mod monitor;
pub mod proposals;
pub mod rules;
pub mod runs;
pub mod synth;
pub mod triggers;
pub mod verify;

use crate::capabilities::board::{BoardBackend, BoardError, CardEdit, CardFilter, NewCard};
use crate::capabilities::kpi::{KpiStore, Labels};
use crate::capabilities::Clock;
use gaps::{CardState, Evaluation, Gap, GapState, GapStore};
use monitor::{Evidence, Monitor};
use rules::{number, Aggregate, Rule, Source};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The label every gap card carries.
pub const GAP_LABEL: &str = "gap";

/// How the factory runs.
#[derive(Debug, Clone)]
pub struct FactoryConfig {
    /// Time between evaluations.
    pub eval_interval: Duration,
    /// The rule file: `--rules`, or `DATA/rules.toml`; while it does not
    /// exist, the five watches run.
    pub rules_file: Option<PathBuf>,
    /// Whether the rule file must exist (it was named with `--rules`).
    pub rules_required: bool,
    /// Where gap cards are opened.
    pub card_list: String,
    /// Where a resolved gap's card goes.
    pub done_list: String,
    /// A Prometheus server whose PromQL rules may query.
    pub prometheus_url: Option<String>,
    /// How long a card sits in Blocked before it counts (the fixes for
    /// `cards-blocked` use it).
    pub blocked_after: Duration,
}

impl Default for FactoryConfig {
    fn default() -> Self {
        FactoryConfig {
            eval_interval: Duration::from_secs(60),
            rules_file: None,
            rules_required: false,
            card_list: "Backlog".into(),
            done_list: "Done".into(),
            prometheus_url: None,
            blocked_after: Duration::from_secs(48 * 3600),
        }
    }
}

/// Why the factory could not start.
#[derive(Debug, thiserror::Error)]
pub enum FactoryError {
    /// The rule file was refused.
    #[error("the rule file was refused:\n{0}")]
    Rules(#[from] rules::RulesError),
    /// The gap store could not be opened.
    #[error(transparent)]
    Gaps(#[from] gaps::GapError),
}

/// What a monitor did at its last evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct MonitorStatus {
    /// Its name.
    pub name: String,
    /// Whether it measured.
    pub ok: bool,
    /// When it last ran, ms.
    pub last_run_ms: u64,
    /// When it last measured, ms.
    pub last_success_ms: Option<u64>,
    /// Samples it wrote last time.
    pub samples: usize,
    /// Why it could not measure, when it could not.
    pub error: Option<String>,
    /// Evaluations in a row it could not measure.
    pub failures: u64,
    /// Evaluations it could not measure since the host started.
    pub failures_total: u64,
}

/// The rule set in force, and the file behind it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RulesStatus {
    /// The rule file, when there is one.
    pub file: Option<String>,
    /// Rules in force.
    pub rules: usize,
    /// When they were loaded, ms.
    pub loaded_at_ms: u64,
    /// Why the file's newest text was refused (the rules in force are
    /// older), when it was.
    pub error: Option<String>,
    /// What the rules in force cannot do yet (a series nothing has written).
    pub warnings: Vec<String>,
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct EvaluationReport {
    /// When, on the host's clock, ms.
    pub at_ms: u64,
    /// How long it took, ms.
    pub took_ms: f64,
    /// Samples the monitors wrote.
    pub samples: usize,
    /// Monitors that could not measure.
    pub monitor_failures: Vec<String>,
    /// Rules evaluated.
    pub rules: usize,
    /// Gaps that changed state: `ID RULE pending|firing|resolved`.
    pub transitions: Vec<String>,
    /// Cards created, moved or commented: `ID created|reopened|commented|done`.
    pub cards: Vec<String>,
    /// Critical gaps told to a channel: `GAP telegram|openclaw`.
    pub escalations: Vec<String>,
    /// Firing gaps handed to synthesis: `GAP queued`.
    pub proposals: Vec<String>,
    /// What went wrong (a rule's source, the board), if anything.
    pub errors: Vec<String>,
}

/// The value of one group of a rule at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupValue {
    /// The group's labels (the rule's `by`).
    pub labels: Labels,
    /// The aggregate; `None` with fewer samples than `min_samples`.
    pub value: Option<f64>,
    /// Samples it came from.
    pub samples: u64,
    /// The group is not in the answer at all: for a PromQL rule, its
    /// condition no longer holds (Prometheus's own reading); for a series,
    /// there is no data.
    pub absent: bool,
}

/// The rules in the order they are evaluated: each after the rules that
/// inhibit it, so an inhibition sees this evaluation's gaps (the rule file
/// refuses a cycle; one would keep file order).
fn in_inhibition_order(rules: &[Rule]) -> Vec<&Rule> {
    let mut placed: Vec<&Rule> = Vec::with_capacity(rules.len());
    let mut left: Vec<&Rule> = rules.iter().collect();
    while !left.is_empty() {
        let before = left.len();
        left.retain(|rule| {
            let ready = rule.inhibited_by.iter().all(|i| {
                placed.iter().any(|p| p.name == i.rule) || !rules.iter().any(|r| r.name == i.rule)
            });
            if ready {
                placed.push(rule);
            }
            !ready
        });
        if left.len() == before {
            placed.append(&mut left);
        }
    }
    placed
}

/// The factory's watch.
pub struct Factory {
    kpi: Arc<KpiStore>,
    board: Arc<dyn BoardBackend>,
    gaps: GapStore,
    monitors: Vec<Box<dyn Monitor>>,
    clock: Clock,
    config: FactoryConfig,
    rules: RwLock<Arc<Vec<Rule>>>,
    rules_status: RwLock<RulesStatus>,
    /// The rule file's text (a hash) and modification time as they were
    /// last read (`None`: no file): a rewrite is seen within one tick of
    /// the file system's clock, and a `touch` reads a refused text again.
    rules_seen: std::sync::Mutex<Option<(u64, Option<std::time::SystemTime>)>>,
    monitor_status: RwLock<BTreeMap<String, MonitorStatus>>,
    evidence: RwLock<BTreeMap<String, Vec<Evidence>>>,
    running: tokio::sync::Mutex<()>,
    last: RwLock<Option<EvaluationReport>>,
    evaluations: std::sync::atomic::AtomicU64,
    escalation: escalate::Escalation,
    http: reqwest::Client,
    /// Where firing gaps go to be answered, once attached.
    synthesis: std::sync::OnceLock<(synth::SynthHandle, Arc<synth::Synthesis>)>,
    triggers: std::sync::OnceLock<Arc<triggers::Triggers>>,
}

impl Factory {
    /// A factory over these services; its gaps are kept in `gaps`. The rule
    /// file, when given, must be readable and valid.
    pub fn new(
        kpi: Arc<KpiStore>,
        board: Arc<dyn BoardBackend>,
        gaps: GapStore,
        monitors: Vec<Box<dyn Monitor>>,
        escalation: escalate::Escalation,
        config: FactoryConfig,
    ) -> Result<Self, FactoryError> {
        let clock = kpi.clock().clone();
        // At start a series no sample of which is stored (yet, or any
        // more) is a warning, not a refusal: the host starts, and the rule
        // has no data until one is pushed.
        let (rules, seen) = match &config.rules_file {
            Some(path) if config.rules_required || path.exists() => {
                let rules = load(path, config.prometheus_url.is_some(), &|_| true)?;
                (rules, text_hash(path))
            }
            _ => (rules::default_rules(), None),
        };
        let status = RulesStatus {
            file: config.rules_file.as_ref().map(|p| p.display().to_string()),
            rules: rules.len(),
            loaded_at_ms: clock.now_ms(),
            error: None,
            warnings: unwritten(&kpi, &rules),
        };
        Ok(Factory {
            kpi,
            board,
            gaps,
            monitors,
            clock,
            config,
            rules: RwLock::new(Arc::new(rules)),
            rules_status: RwLock::new(status),
            rules_seen: std::sync::Mutex::new(seen),
            monitor_status: RwLock::new(BTreeMap::new()),
            evidence: RwLock::new(BTreeMap::new()),
            running: tokio::sync::Mutex::new(()),
            last: RwLock::new(None),
            evaluations: Default::default(),
            escalation,
            http: reqwest::Client::builder()
                .user_agent(concat!("darkfactory/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            synthesis: std::sync::OnceLock::new(),
            triggers: std::sync::OnceLock::new(),
        })
    }

    /// Hands firing gaps to `synthesis` from the next evaluation on (once;
    /// a second call is ignored).
    pub fn attach_synthesis(&self, handle: synth::SynthHandle, synthesis: Arc<synth::Synthesis>) {
        let _ = self.synthesis.set((handle, synthesis));
    }

    /// Runs the skills whose trigger is a gap's kind when it fires, from
    /// the next evaluation on (once; a second call is ignored).
    pub fn attach_triggers(&self, triggers: Arc<triggers::Triggers>) {
        let _ = self.triggers.set(triggers);
    }

    /// The triggers attached, if any.
    pub fn triggers(&self) -> Option<&Arc<triggers::Triggers>> {
        self.triggers.get()
    }

    /// The synthesis attached, if any.
    pub fn synthesis(&self) -> Option<&Arc<synth::Synthesis>> {
        self.synthesis.get().map(|(_, s)| s)
    }

    /// Queues each firing gap with an open card for synthesis (the task
    /// answers a firing it answered before from its store), and expires the
    /// approval requests whose time is up.
    async fn answer_gaps(&self, rules: &[Rule], now: u64, report: &mut EvaluationReport) {
        let Some((handle, synthesis)) = self.synthesis.get() else {
            return;
        };
        if let Err(e) = synthesis.approvals.expire_due().await {
            report.errors.push(format!("approvals: {e}"));
        }
        for gap in self.gaps.all_latest() {
            let (Some(card_id), Some(fired_at_ms)) = (gap.card_id.clone(), gap.fired_at_ms) else {
                continue;
            };
            if gap.state != GapState::Firing
                || gap.card_state != Some(CardState::Open)
                || gap.silenced_until_ms.is_some_and(|until| until > now)
            {
                continue;
            }
            let Some(rule) = rules.iter().find(|r| r.name == gap.rule) else {
                continue;
            };
            let series = match &rule.source {
                Source::Series { name, .. } => Some(name.as_str()),
                Source::Promql(_) => None,
            };
            let Some(kind) = synth::kind_of(&rule.name, series) else {
                continue;
            };
            let brief = synth::GapBrief {
                id: gap.id,
                fired_at_ms,
                skill: synth::skill_name(&kind, &gap.labels, gap.id),
                kind,
                rule: rule.name.clone(),
                value: gap.value,
                threshold: rule.fire.threshold,
                condition: rule.fire.to_string(),
                summary: rule.fill(&rule.summary, gap.value, &gap.labels),
                card_id,
                card_list: self.config.card_list.clone(),
                blocked_hours: (self.config.blocked_after.as_secs() / 3600).max(1),
                evidence: {
                    let mut lines = self.evidence_for(rule, &gap.labels);
                    lines.sort();
                    lines.truncate(20);
                    lines
                },
                labels: gap.labels,
            };
            // A serving skill that answers the gap's kind runs; then the
            // gap needs no fix written.
            if let Some(triggers) = self.triggers.get() {
                if triggers.on_gap(&brief).await {
                    continue;
                }
            }
            if handle.queue(brief) {
                report.proposals.push(format!("{} queued", gap.id));
            }
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<Vec<Rule>> {
        read(&self.rules).clone()
    }

    /// The rule set's status.
    pub fn rules_status(&self) -> RulesStatus {
        read(&self.rules_status).clone()
    }

    /// Every monitor's last run.
    pub fn monitors(&self) -> Vec<MonitorStatus> {
        read(&self.monitor_status).values().cloned().collect()
    }

    /// Evaluations since start, and how long the last one took (ms).
    pub fn evaluation_counts(&self) -> (u64, f64) {
        let n = self.evaluations.load(std::sync::atomic::Ordering::Relaxed);
        (n, read(&self.last).as_ref().map_or(0.0, |r| r.took_ms))
    }

    /// The last evaluation's report.
    pub fn last_evaluation(&self) -> Option<EvaluationReport> {
        read(&self.last).clone()
    }

    /// The gap store.
    pub fn gaps(&self) -> &GapStore {
        &self.gaps
    }

    /// The time between evaluations.
    pub fn eval_interval(&self) -> Duration {
        self.config.eval_interval
    }

    /// The clock evaluations run on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Reads the rule file again when it changed since it was last read:
    /// `Some(Ok(n))` with the rules now in force, `Some(Err(..))` when the
    /// new text was refused (the old rules keep running), `None` when
    /// nothing changed.
    pub fn reload_if_changed(&self) -> Option<Result<usize, String>> {
        let path = self.config.rules_file.as_ref()?;
        let now = text_hash(path);
        {
            let mut seen = self.rules_seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return None;
            }
            *seen = now;
        }
        // A series is known when samples of it are stored, or when the
        // rules in force already read it (its samples may have aged out).
        let current = self.rules();
        let known = |name: &str| {
            self.kpi.knows(name)
                || current
                    .iter()
                    .any(|r| matches!(&r.source, Source::Series { name: n, .. } if n == name))
        };
        let result = if now.is_none() && !self.config.rules_required {
            Ok(rules::default_rules())
        } else {
            load(path, self.config.prometheus_url.is_some(), &known)
        };
        let mut status = write(&self.rules_status);
        match result {
            Ok(rules) => {
                let n = rules.len();
                status.warnings = unwritten(&self.kpi, &rules);
                *write(&self.rules) = Arc::new(rules);
                status.rules = n;
                status.loaded_at_ms = self.clock.now_ms();
                status.error = None;
                tracing::info!(file = %path.display(), rules = n, "rule file loaded");
                Some(Ok(n))
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(file = %path.display(), error = %message, "rule file refused; the rules already loaded keep running");
                status.error = Some(message.clone());
                Some(Err(message))
            }
        }
    }

    /// Runs every `eval_interval`, the first one interval after start (and
    /// reads the rule file again when it changes), until the task is
    /// aborted.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let interval = self.config.eval_interval.as_millis() as u64;
            let tick = if self.clock.is_manual() {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(1)
            };
            let mut next = self.clock.now_ms() + interval;
            loop {
                self.reload_if_changed();
                let now = self.clock.now_ms();
                if now >= next {
                    let report = self.evaluate().await;
                    next = report.at_ms + interval;
                }
                let until = next.saturating_sub(self.clock.now_ms());
                let wait = if self.clock.is_manual() {
                    tick
                } else {
                    tick.min(Duration::from_millis(until.max(1)))
                };
                tokio::time::sleep(wait).await;
            }
        })
    }

    /// One evaluation: the monitors measure, the rules are evaluated, the
    /// gaps move and their cards follow.
    pub async fn evaluate(&self) -> EvaluationReport {
        let _one = self.running.lock().await;
        let started = std::time::Instant::now();
        let now = self.clock.now_ms();
        let mut report = EvaluationReport {
            at_ms: now,
            ..EvaluationReport::default()
        };
        self.run_monitors(now, &mut report).await;
        let rules = self.rules();
        report.rules = rules.len();
        let ordered = in_inhibition_order(&rules);
        // Every series rule's window, read in one call of the store.
        let reads: Vec<(String, Labels, u64, u64)> = ordered
            .iter()
            .filter_map(|rule| match &rule.source {
                Source::Series { name, labels } => Some((
                    name.clone(),
                    labels.clone(),
                    now.saturating_sub(rule.window.as_millis() as u64),
                    now,
                )),
                Source::Promql(_) => None,
            })
            .collect();
        let mut read = self.kpi.read_many(reads).await.into_iter();
        let mut records = Vec::new();
        for rule in ordered {
            let values = match &rule.source {
                Source::Series { .. } => match read.next() {
                    Some(points) => series_groups(rule, points),
                    None => Err("the store answered fewer reads than were asked".into()),
                },
                Source::Promql(query) => self.promql(rule, query, now).await,
            };
            match values {
                Ok(mut groups) => {
                    // A gap whose group is not in the answer: no data for a
                    // series, the condition gone for a PromQL query.
                    let seen: std::collections::BTreeSet<Labels> =
                        groups.iter().map(|g| g.labels.clone()).collect();
                    for gap in self.gaps.latest_of_rule(&rule.name) {
                        if gap.state != GapState::Resolved && !seen.contains(&gap.labels) {
                            groups.push(GroupValue {
                                labels: gap.labels,
                                value: None,
                                samples: 0,
                                absent: true,
                            });
                        }
                    }
                    for group in groups {
                        if let Err(e) = self.step(rule, group, now, &mut report, &mut records).await
                        {
                            report.errors.push(format!("rule {}: {e}", rule.name));
                        }
                    }
                }
                Err(e) => report.errors.push(format!("rule {}: {e}", rule.name)),
            }
        }
        if let Err(e) = self.gaps.record_many(records).await {
            report.errors.push(e.to_string());
        }
        self.reconcile_cards(&rules, now, &mut report).await;
        self.answer_gaps(&rules, now, &mut report).await;
        report.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        for e in &report.errors {
            tracing::warn!(error = %e, "evaluation");
        }
        self.evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *write(&self.last) = Some(report.clone());
        report
    }

    async fn run_monitors(&self, now: u64, report: &mut EvaluationReport) {
        for monitor in &self.monitors {
            let name = monitor.name();
            let measured = match monitor.measure(now).await {
                Ok(m) => {
                    let n = m.samples.len();
                    match self.kpi.push(m.samples).await {
                        Ok(_) => Ok((n, m.evidence, m.problems)),
                        Err(e) => Err(format!("its samples could not be recorded: {e}")),
                    }
                }
                Err(e) => Err(e),
            };
            let mut statuses = write(&self.monitor_status);
            let status = statuses
                .entry(name.to_string())
                .or_insert_with(|| MonitorStatus {
                    name: name.to_string(),
                    ok: true,
                    last_run_ms: now,
                    last_success_ms: None,
                    samples: 0,
                    error: None,
                    failures: 0,
                    failures_total: 0,
                });
            status.last_run_ms = now;
            match measured {
                Ok((n, evidence, problems)) => {
                    status.last_success_ms = Some(now);
                    status.samples = n;
                    if problems.is_empty() {
                        status.ok = true;
                        status.error = None;
                        status.failures = 0;
                    } else {
                        let e = problems.join("; ");
                        if status.failures == 0 {
                            tracing::warn!(monitor = name, error = %e, "a monitor measured only part of what it watches");
                        }
                        status.ok = false;
                        status.error = Some(e.clone());
                        status.failures += 1;
                        status.failures_total += 1;
                        report.monitor_failures.push(format!("{name}: {e}"));
                    }
                    report.samples += n;
                    write(&self.evidence).insert(name.to_string(), evidence);
                }
                Err(e) => {
                    if status.failures == 0 {
                        tracing::warn!(monitor = name, error = %e, "a monitor could not measure; its rules see no new value");
                    }
                    status.ok = false;
                    status.samples = 0;
                    status.error = Some(e.clone());
                    status.failures += 1;
                    status.failures_total += 1;
                    report.monitor_failures.push(format!("{name}: {e}"));
                    write(&self.evidence).remove(name);
                }
            }
        }
    }

    /// A PromQL rule's groups: each element of the instant query's vector
    /// at `now` (its `by` labels, or all of them but `__name__`). A value
    /// that is not a finite number is no value; a server that is down or an
    /// answer that is not what the HTTP API documents is an error, and no
    /// group changes.
    async fn promql(&self, rule: &Rule, query: &str, now: u64) -> Result<Vec<GroupValue>, String> {
        #[derive(serde::Deserialize)]
        struct Answer {
            status: String,
            data: Option<Data>,
            error: Option<String>,
        }
        #[derive(serde::Deserialize)]
        struct Data {
            #[serde(rename = "resultType")]
            result_type: String,
            result: serde_json::Value,
        }
        #[derive(serde::Deserialize)]
        struct Element {
            metric: Labels,
            value: (f64, String),
        }
        let Some(base) = &self.config.prometheus_url else {
            return Err("PromQL rules need --prometheus-url".into());
        };
        let url = format!("{}/api/v1/query", base.trim_end_matches('/'));
        let shown = escalate::shown_url(&url);
        let time = format!("{:.3}", now as f64 / 1000.0);
        let response = self
            .http
            .get(&url)
            .query(&[("query", query), ("time", &time)])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("cannot reach Prometheus at {shown}: {}", e.without_url()))?;
        let status = response.status();
        let answer: Answer = response.json().await.map_err(|e| {
            format!(
                "Prometheus answered {status} with something its HTTP API does not document: {e}"
            )
        })?;
        if answer.status != "success" {
            return Err(format!(
                "Prometheus refused the query ({status}): {}",
                answer.error.unwrap_or_default()
            ));
        }
        let data = answer
            .data
            .ok_or("Prometheus answered success without `data`")?;
        let elements: Vec<Element> = match data.result_type.as_str() {
            "vector" => serde_json::from_value(data.result)
                .map_err(|e| format!("Prometheus's vector is not what its HTTP API documents: {e}"))?,
            "scalar" => {
                let (t, v): (f64, String) = serde_json::from_value(data.result)
                    .map_err(|e| format!("Prometheus's scalar is not what its HTTP API documents: {e}"))?;
                vec![Element {
                    metric: Labels::new(),
                    value: (t, v),
                }]
            }
            other => {
                return Err(format!(
                    "the query answers a {other}; a rule's query must answer an instant vector or a scalar"
                ))
            }
        };
        let groups = elements
            .into_iter()
            .map(|e| {
                let labels: Labels = if rule.by.is_empty() {
                    e.metric
                        .into_iter()
                        .filter(|(k, _)| k != "__name__")
                        .collect()
                } else {
                    rule.by
                        .iter()
                        .filter_map(|k| e.metric.get(k).map(|v| (k.clone(), v.clone())))
                        .collect()
                };
                let value = e.value.1.parse::<f64>().ok().filter(|v| v.is_finite());
                GroupValue {
                    labels,
                    samples: u64::from(value.is_some()),
                    value,
                    absent: false,
                }
            })
            .collect::<Vec<_>>();
        // Two elements of one group would be two values for one gap.
        let mut seen = std::collections::BTreeSet::new();
        for g in &groups {
            if !seen.insert(&g.labels) {
                return Err(format!(
                    "the query answers several elements with the labels {:?}; give `by` the \
                     labels that tell them apart, or aggregate them in the query",
                    g.labels
                ));
            }
        }
        Ok(groups)
    }

    fn inhibitor(&self, rule: &Rule, labels: &Labels) -> Option<String> {
        for inhibition in &rule.inhibited_by {
            let latest = self.gaps.latest_of_rule(&inhibition.rule);
            let hit = latest.iter().find(|g| {
                g.state == GapState::Firing
                    && inhibition
                        .on
                        .iter()
                        .all(|k| g.labels.get(k) == labels.get(k))
            });
            if let Some(gap) = hit {
                return Some(format!("inhibited by gap {} ({})", gap.id, gap.rule));
            }
        }
        None
    }

    async fn step(
        &self,
        rule: &Rule,
        group: GroupValue,
        now: u64,
        report: &mut EvaluationReport,
        records: &mut Vec<(i64, Evaluation)>,
    ) -> Result<(), gaps::GapError> {
        let latest = self.gaps.latest(&rule.name, &group.labels);
        let promql = matches!(rule.source, Source::Promql(_));
        let (value, fire, clear) = match (group.value, &latest) {
            (Some(value), _) => (Some(value), rule.fire.holds(value), rule.clear.holds(value)),
            // A PromQL element that left the vector: its condition is gone.
            (None, Some(gap)) if group.absent && promql => (Some(gap.value), false, true),
            _ => (None, false, false),
        };
        let Some(value) = value else {
            // No value: nothing changes, and a gap says so.
            if let Some(gap) = latest.filter(|g| g.state != GapState::Resolved) {
                records.push((
                    gap.id,
                    Evaluation {
                        at_ms: now,
                        value: None,
                        samples: group.samples,
                        state: gap.state,
                        note: if group.absent {
                            "no data: the group has no samples in the window".to_string()
                        } else {
                            format!(
                                "no data: {} samples in the window, {} needed",
                                group.samples, rule.min_samples
                            )
                        },
                    },
                ));
            }
            return Ok(());
        };
        let inhibited = if fire {
            self.inhibitor(rule, &group.labels)
        } else {
            None
        };
        let keep = rule.keep_firing_for.as_millis() as u64;
        let for_ms = rule.for_.as_millis() as u64;
        let mut note = String::new();
        let mut before = latest.clone();
        let gap = match latest {
            Some(gap) if gap.state != GapState::Resolved => Some(gap),
            // A gap that fires again within `keep_firing_for` of resolving
            // is the same gap: it keeps its card.
            Some(gap)
                if fire
                    && inhibited.is_none()
                    && gap.resolved_at_ms.is_some_and(|at| now <= at + keep) =>
            {
                let mut gap = gap;
                gap.state = GapState::Pending;
                gap.pending_since_ms = now;
                gap.clearing_since_ms = None;
                note = "fires again within keep_firing_for of resolving: the same gap".into();
                Some(gap)
            }
            _ if fire && inhibited.is_none() => {
                let gap = self
                    .gaps
                    .insert(Gap {
                        id: 0,
                        rule: rule.name.clone(),
                        labels: group.labels.clone(),
                        state: GapState::Pending,
                        severity: rule.severity.name().to_string(),
                        pending_since_ms: now,
                        fired_at_ms: None,
                        resolved_at_ms: None,
                        value,
                        condition: rule.fire.to_string(),
                        card_id: None,
                        card_state: None,
                        reported_value: None,
                        clearing_since_ms: None,
                        silenced_until_ms: None,
                        escalated: 0,
                        updated_at_ms: now,
                    })
                    .await?;
                report
                    .transitions
                    .push(format!("{} {} pending", gap.id, rule.name));
                before = Some(gap.clone());
                Some(gap)
            }
            _ => None,
        };
        let (Some(mut gap), Some(before)) = (gap, before) else {
            return Ok(());
        };
        gap.value = value;
        gap.severity = rule.severity.name().to_string();
        gap.condition = rule.fire.to_string();
        match gap.state {
            GapState::Pending if clear => {
                if gap.fired_at_ms.is_none() {
                    // It never fired: it leaves no trace.
                    self.gaps.remove(&gap).await?;
                    report.transitions.push(format!(
                        "{} {} dropped (cleared while pending)",
                        gap.id, rule.name
                    ));
                    return Ok(());
                }
                gap.state = GapState::Resolved;
                gap.resolved_at_ms = Some(now);
                note = "cleared while pending again".to_string();
            }
            GapState::Pending => {
                if let Some(why) = &inhibited {
                    note = why.clone();
                } else if fire && now.saturating_sub(gap.pending_since_ms) >= for_ms {
                    gap.state = GapState::Firing;
                    gap.fired_at_ms = Some(now);
                    gap.escalated = 0;
                    note = "fired".to_string();
                } else if note.is_empty() {
                    note = format!(
                        "pending for {} of {}",
                        humantime::format_duration(Duration::from_secs(
                            now.saturating_sub(gap.pending_since_ms) / 1000
                        )),
                        humantime::format_duration(rule.for_)
                    );
                }
            }
            GapState::Firing if clear => {
                let since = *gap.clearing_since_ms.get_or_insert(now);
                if now.saturating_sub(since) >= keep {
                    gap.state = GapState::Resolved;
                    gap.resolved_at_ms = Some(now);
                    gap.clearing_since_ms = None;
                    note = "resolved".to_string();
                } else {
                    note = format!(
                        "clear since {} s; resolves after {}",
                        now.saturating_sub(since) / 1000,
                        humantime::format_duration(rule.keep_firing_for)
                    );
                }
            }
            GapState::Firing => {
                gap.clearing_since_ms = None;
                note = "firing".to_string();
            }
            GapState::Resolved => note = "resolved".to_string(),
        }
        if gap.state != before.state {
            report
                .transitions
                .push(format!("{} {} {}", gap.id, rule.name, gap.state.name()));
        }
        if gap != before {
            gap.updated_at_ms = now;
            self.gaps.update(gap.clone()).await?;
        }
        if note.is_empty() {
            note = gap.state.name().to_string();
        }
        records.push((
            gap.id,
            Evaluation {
                at_ms: now,
                value: Some(value),
                samples: group.samples,
                state: gap.state,
                note,
            },
        ));
        Ok(())
    }

    /// Brings each gap's card in line with the gap: open for a firing gap
    /// (created once, reopened when it fires again), commented when its
    /// value changes materially, moved to Done when it resolves. A board
    /// that fails leaves `card_state` as it was, so the next evaluation
    /// tries again.
    async fn reconcile_cards(&self, rules: &[Rule], now: u64, report: &mut EvaluationReport) {
        // Cards left open by an older gap of a fingerprint (its close
        // failed, and a newer gap came): closed first.
        match self.gaps.resolved_with_open_cards().await {
            Ok(stale) => {
                for gap in stale {
                    let rule = rules.iter().find(|r| r.name == gap.rule);
                    if let Err(e) = self.close_card(rule, gap, now, report).await {
                        report.errors.push(e);
                    }
                }
            }
            Err(e) => report.errors.push(e.to_string()),
        }
        for gap in self.gaps.all_latest() {
            let Some(rule) = rules.iter().find(|r| r.name == gap.rule) else {
                // Its rule is gone (removed, renamed, or `by` changed): the
                // gap ends, and so does its card.
                let result = if gap.state != GapState::Resolved {
                    self.retire(gap, now, report).await
                } else if gap.card_state == Some(CardState::Open) {
                    // Retired, but its card's close failed: tried again.
                    self.close_card(None, gap, now, report).await
                } else {
                    Ok(())
                };
                if let Err(e) = result {
                    report.errors.push(e);
                }
                continue;
            };
            let silenced = gap.silenced_until_ms.is_some_and(|until| now < until);
            let (rule_name, labels) = (gap.rule.clone(), gap.labels.clone());
            let result = match (gap.state, gap.card_state) {
                // A gap on its way to resolving is not commented: the
                // resolution says what the value came to.
                (GapState::Firing, Some(CardState::Open))
                    if !silenced && gap.clearing_since_ms.is_none() =>
                {
                    self.comment_if_changed(rule, gap, report).await
                }
                (GapState::Firing, Some(CardState::Open)) => Ok(()),
                (GapState::Firing, _) if !silenced => self.open_card(rule, gap, now, report).await,
                (GapState::Resolved, Some(CardState::Open)) => {
                    self.close_card(Some(rule), gap, now, report).await
                }
                _ => Ok(()),
            };
            if let Err(e) = result {
                report.errors.push(e);
            }
            if !silenced && rule.severity == rules::Severity::Critical {
                if let Some(gap) = self.gaps.latest(&rule_name, &labels) {
                    if gap.state == GapState::Firing {
                        self.escalate(rule, gap, report).await;
                    }
                }
            }
        }
    }

    /// Tells each configured channel not yet told of a firing critical gap;
    /// a channel that fails is tried again at the next evaluation.
    async fn escalate(&self, rule: &Rule, mut gap: Gap, report: &mut EvaluationReport) {
        let pending: Vec<escalate::Channel> = self
            .escalation
            .channels()
            .into_iter()
            .filter(|c| gap.escalated & c.bit() == 0)
            .collect();
        if pending.is_empty() {
            return;
        }
        let labels: Vec<String> = gap.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // What the card reported when the gap fired (a channel retried
        // later says the same), and the value now if it moved since.
        let fired = gap.reported_value.unwrap_or(gap.value);
        let now_text = if fired == gap.value {
            String::new()
        } else {
            format!(" (now {})", number(gap.value))
        };
        let text = format!(
            "Critical gap {}: {}\n{} fired at {}: the value was {}{now_text} and it fires when {}{}.{}",
            gap.id,
            rule.title(fired, &gap.labels),
            rule.name,
            monitor::when(gap.fired_at_ms.unwrap_or(gap.pending_since_ms)),
            number(fired),
            rule.fire,
            if labels.is_empty() {
                String::new()
            } else {
                format!(" ({})", labels.join(", "))
            },
            gap.card_id
                .as_ref()
                .map(|c| format!("\nCard {c} in {}.", self.config.card_list))
                .unwrap_or_default()
        );
        let before = gap.escalated;
        for channel in pending {
            match self.escalation.send(&self.http, channel, &text).await {
                Ok(()) => {
                    gap.escalated |= channel.bit();
                    report
                        .escalations
                        .push(format!("{} {}", gap.id, channel.name()));
                }
                Err(e) => report.errors.push(format!(
                    "gap {}: could not escalate to {}: {e}",
                    gap.id,
                    channel.name()
                )),
            }
        }
        if gap.escalated != before {
            if let Err(e) = self.gaps.update(gap).await {
                report.errors.push(e.to_string());
            }
        }
    }

    fn evidence_for(&self, rule: &Rule, labels: &Labels) -> Vec<String> {
        let Source::Series { name, .. } = &rule.source else {
            return Vec::new();
        };
        read(&self.evidence)
            .values()
            .flatten()
            .filter(|e| &e.series == name && labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .map(|e| e.line.clone())
            .collect()
    }

    fn describe(&self, rule: &Rule, gap: &Gap) -> String {
        let mut text = format!(
            "**{}** fired: the value is {} and the rule fires when it is {} (it clears when {}).\n",
            rule.name,
            number(gap.value),
            rule.fire,
            rule.clear,
        );
        if !rule.description.is_empty() {
            text.push_str(&format!(
                "\n{}\n",
                rule.fill(&rule.description, gap.value, &gap.labels)
            ));
        }
        text.push('\n');
        if !gap.labels.is_empty() {
            let labels: Vec<String> = gap.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            text.push_str(&format!("- labels: {}\n", labels.join(", ")));
        }
        text.push_str(&format!(
            "- since: {} (held {} before firing)\n- severity: {}\n- rule: {} over {} of `{}`\n",
            monitor::when(gap.pending_since_ms),
            humantime::format_duration(rule.for_),
            rule.severity.name(),
            rule.aggregate.name(),
            humantime::format_duration(rule.window),
            match &rule.source {
                Source::Series { name, .. } => name.clone(),
                Source::Promql(q) => q.clone(),
            }
        ));
        let evidence = self.evidence_for(rule, &gap.labels);
        if !evidence.is_empty() {
            text.push_str("\nEvidence:\n");
            for line in evidence.iter().take(50) {
                text.push_str(&format!("- {line}\n"));
            }
            if evidence.len() > 50 {
                text.push_str(&format!("- and {} more\n", evidence.len() - 50));
            }
        }
        text.push_str(&format!("\n{}\n", marker(gap.id)));
        text
    }

    /// The card of a gap that a crash kept from being recorded: found by
    /// the marker in its description.
    async fn find_card(&self, gap: &Gap) -> Result<Option<String>, String> {
        let mark = marker(gap.id);
        let mut filter = CardFilter {
            label: Some(GAP_LABEL.into()),
            limit: Some(500),
            ..CardFilter::default()
        };
        loop {
            let page = self.board.cards(&filter).await.map_err(|e| e.to_string())?;
            if let Some(card) = page.iter().find(|c| c.description.contains(&mark)) {
                return Ok(Some(card.id.clone()));
            }
            if page.len() < 500 {
                return Ok(None);
            }
            filter.after = page
                .last()
                .map(crate::capabilities::board::CardCursor::after);
        }
    }

    async fn open_card(
        &self,
        rule: &Rule,
        mut gap: Gap,
        now: u64,
        report: &mut EvaluationReport,
    ) -> Result<(), String> {
        let board_error =
            |e: BoardError| format!("gap {}: the board could not take its card: {e}", gap.id);
        let existing = match &gap.card_id {
            Some(id) => Some(id.clone()),
            None => self
                .find_card(&gap)
                .await
                .map_err(|e| format!("gap {}: {e}", gap.id))?,
        };
        // A card deleted on the board meanwhile is opened anew.
        let existing = match existing {
            Some(id) if gap.card_state == Some(CardState::Done) => {
                match self
                    .board
                    .edit_card(
                        &id,
                        CardEdit {
                            list: Some(self.config.card_list.clone()),
                            ..CardEdit::default()
                        },
                    )
                    .await
                {
                    Ok(_) => Some(id),
                    Err(BoardError::NotFound(_)) => None,
                    Err(e) => return Err(board_error(e)),
                }
            }
            other => other,
        };
        match existing {
            Some(id) if gap.card_state == Some(CardState::Done) => {
                self.board
                    .comment(
                        &id,
                        &format!(
                            "Fired again at {}: the value is {} ({}).",
                            monitor::when(now),
                            number(gap.value),
                            rule.fire
                        ),
                    )
                    .await
                    .map_err(board_error)?;
                report.cards.push(format!("{id} reopened"));
                gap.card_id = Some(id);
            }
            Some(id) => gap.card_id = Some(id),
            None => {
                let card = self
                    .board
                    .create_card(NewCard {
                        list: self.config.card_list.clone(),
                        title: rule.title(gap.value, &gap.labels),
                        description: self.describe(rule, &gap),
                        labels: vec![GAP_LABEL.to_string(), rule.severity.name().to_string()],
                    })
                    .await
                    .map_err(board_error)?;
                report.cards.push(format!("{} created", card.id));
                gap.card_id = Some(card.id);
            }
        }
        gap.card_state = Some(CardState::Open);
        gap.reported_value = Some(gap.value);
        gap.updated_at_ms = now;
        self.gaps.update(gap).await.map_err(|e| e.to_string())
    }

    async fn comment_if_changed(
        &self,
        rule: &Rule,
        mut gap: Gap,
        report: &mut EvaluationReport,
    ) -> Result<(), String> {
        let (Some(id), Some(reported)) = (gap.card_id.clone(), gap.reported_value) else {
            return Ok(());
        };
        if !material(reported, gap.value, rule.fire.threshold) {
            return Ok(());
        }
        let commented = self
            .board
            .comment(
                &id,
                &format!(
                    "The value is now {} (it was {} when last reported; the rule fires when {}).",
                    number(gap.value),
                    number(reported),
                    rule.fire
                ),
            )
            .await;
        match commented {
            Ok(_) => report.cards.push(format!("{id} commented")),
            // Deleted on the board: the next evaluation opens a new one.
            Err(BoardError::NotFound(_)) => {
                gap.card_id = None;
                gap.card_state = None;
                report.cards.push(format!("{id} gone from the board"));
                return self.gaps.update(gap).await.map_err(|e| e.to_string());
            }
            Err(e) => {
                return Err(format!(
                    "gap {}: the board could not take a comment: {e}",
                    gap.id
                ))
            }
        }
        gap.reported_value = Some(gap.value);
        self.gaps.update(gap).await.map_err(|e| e.to_string())
    }

    /// Comments a resolved gap's card and moves it to Done. A card deleted
    /// on the board meanwhile has nothing left to close. `rule` is `None`
    /// for a gap whose rule is gone.
    async fn close_card(
        &self,
        rule: Option<&Rule>,
        mut gap: Gap,
        now: u64,
        report: &mut EvaluationReport,
    ) -> Result<(), String> {
        let Some(id) = gap.card_id.clone() else {
            return Ok(());
        };
        let board_error =
            |e: BoardError| format!("gap {}: the board could not close its card: {e}", gap.id);
        let text = match rule {
            Some(rule) => format!(
                "Resolved at {}: the value is {}, and the rule clears when {}.",
                monitor::when(now),
                number(gap.value),
                rule.clear
            ),
            None => format!(
                "Closed at {}: rule `{}` is no longer in the rule file.",
                monitor::when(now),
                gap.rule
            ),
        };
        // Moved first: a move that failed is harmless to repeat, a comment
        // would be posted twice.
        let closed = match self
            .board
            .edit_card(
                &id,
                CardEdit {
                    list: Some(self.config.done_list.clone()),
                    ..CardEdit::default()
                },
            )
            .await
        {
            Ok(_) => self.board.comment(&id, &text).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match closed {
            Ok(()) => report.cards.push(format!("{id} done")),
            Err(BoardError::NotFound(_)) => report.cards.push(format!("{id} gone from the board")),
            Err(e) => return Err(board_error(e)),
        }
        gap.card_state = Some(CardState::Done);
        gap.reported_value = Some(gap.value);
        self.gaps.update(gap).await.map_err(|e| e.to_string())
    }

    /// Ends a gap whose rule is gone from the rule file, and closes its card.
    async fn retire(
        &self,
        mut gap: Gap,
        now: u64,
        report: &mut EvaluationReport,
    ) -> Result<(), String> {
        if gap.state == GapState::Pending && gap.fired_at_ms.is_none() {
            report.transitions.push(format!(
                "{} {} dropped (its rule is gone)",
                gap.id, gap.rule
            ));
            return self.gaps.remove(&gap).await.map_err(|e| e.to_string());
        }
        gap.state = GapState::Resolved;
        gap.resolved_at_ms = Some(now);
        gap.clearing_since_ms = None;
        gap.updated_at_ms = now;
        report.transitions.push(format!(
            "{} {} resolved (its rule is gone)",
            gap.id, gap.rule
        ));
        self.gaps
            .update(gap.clone())
            .await
            .map_err(|e| e.to_string())?;
        if gap.card_state == Some(CardState::Open) {
            self.close_card(None, gap, now, report).await?;
        }
        Ok(())
    }

    /// Records a successful CI run a CI or a forge's webhook reported: the
    /// CI monitor reads it as the branch's last green build.
    pub async fn record_ci_success(
        &self,
        run: &monitor::ci::ReportedRun,
    ) -> Result<(), crate::capabilities::kpi::KpiError> {
        let labels: Labels = [
            ("repo".to_string(), run.repo.clone()),
            ("branch".to_string(), run.branch.clone()),
        ]
        .into();
        self.kpi
            .push(vec![crate::capabilities::kpi::NewSample {
                name: monitor::ci::SUCCESS_AT.to_string(),
                value: run.ended_ms as f64,
                at: None,
                labels,
            }])
            .await
            .map(|_| ())
    }

    /// Silences a gap until `until_ms`: it opens, comments and escalates
    /// nothing until then (its state still moves, and a resolved gap's
    /// card still goes to Done).
    pub async fn silence(&self, id: i64, until_ms: u64) -> Result<Option<Gap>, gaps::GapError> {
        // Not in the middle of an evaluation, whose writes it would undo.
        let _one = self.running.lock().await;
        self.gaps.silence(id, until_ms).await
    }
}

/// What a gap card's description ends with, so the card of a gap is found
/// again even if a crash kept its id from being recorded.
fn marker(id: i64) -> String {
    format!("gap-id: {id} (`darkfactory gaps show {id}`)")
}

/// Whether a value moved enough since it was reported to say so on the
/// card: by a quarter of the larger of the reported value and the
/// threshold (a value wobbling around the threshold is not news).
fn material(reported: f64, value: f64, threshold: f64) -> bool {
    let scale = reported.abs().max(threshold.abs());
    if scale == 0.0 {
        return value != reported;
    }
    (value - reported).abs() >= 0.25 * scale
}

/// The groups of a series rule from its read: one per value set of its
/// `by` labels, aggregated over the window; no series of the name is no
/// group.
fn series_groups(
    rule: &Rule,
    read: Result<Vec<crate::capabilities::kpi::SeriesPoints>, crate::capabilities::kpi::KpiError>,
) -> Result<Vec<GroupValue>, String> {
    let series = match read {
        Ok(series) => series,
        Err(crate::capabilities::kpi::KpiError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut groups: BTreeMap<Labels, Vec<crate::capabilities::kpi::Point>> = BTreeMap::new();
    for s in series {
        let key: Labels = rule
            .by
            .iter()
            .filter_map(|k| s.series.labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect();
        groups.entry(key).or_default().extend(s.points);
    }
    Ok(groups
        .into_iter()
        .map(|(labels, mut points)| {
            points.sort_by_key(|p| p.at);
            let samples: u64 = points.iter().map(|p| p.count).sum();
            let value = (samples >= rule.min_samples && !points.is_empty())
                .then(|| aggregate(rule.aggregate, &points));
            GroupValue {
                labels,
                value,
                samples,
                absent: false,
            }
        })
        .collect())
}

fn aggregate(how: Aggregate, points: &[crate::capabilities::kpi::Point]) -> f64 {
    let samples: u64 = points.iter().map(|p| p.count).sum();
    let sum: f64 = points.iter().map(|p| p.value * p.count as f64).sum();
    match how {
        Aggregate::Last => points.last().map_or(0.0, |p| p.value),
        Aggregate::Avg => sum / samples.max(1) as f64,
        Aggregate::Sum => sum,
        Aggregate::Count => samples as f64,
        Aggregate::Min => points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min),
        Aggregate::Max => points
            .iter()
            .map(|p| p.max)
            .fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Reads a rule file, its series checked with `known`.
fn load(
    path: &std::path::Path,
    prometheus: bool,
    known: &dyn Fn(&str) -> bool,
) -> Result<Vec<Rule>, rules::RulesError> {
    rules::load(
        path,
        &rules::Known {
            series: known,
            prometheus,
        },
    )
}

/// The rules that read a series no monitor writes and of which no sample
/// is stored: they have no data until one is pushed.
fn unwritten(kpi: &KpiStore, rules: &[Rule]) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| match &r.source {
            Source::Series { name, .. }
                if !rules::MONITOR_SERIES.contains(&name.as_str()) && !kpi.knows(name) =>
            {
                Some(format!(
                    "rule `{}` reads `{name}`, of which no sample is stored: it has no data \
                     until one is pushed",
                    r.name
                ))
            }
            _ => None,
        })
        .collect()
}

/// A hash of a file's text and its modification time, `None` when it
/// cannot be read.
fn text_hash(path: &std::path::Path) -> Option<(u64, Option<std::time::SystemTime>)> {
    use std::hash::{Hash, Hasher};
    let text = std::fs::read(path).ok()?;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Some((hasher.finish(), modified))
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::board::EmbeddedBoard;
    use crate::capabilities::kpi::{KpiConfig, NewSample};

    const T0: u64 = 1_800_000_000_000;

    fn factory(
        dir: &std::path::Path,
        rules: &str,
    ) -> (Factory, Arc<KpiStore>, Arc<dyn BoardBackend>) {
        let clock = Clock::manual(T0);
        let kpi = Arc::new(
            KpiStore::open(&dir.join("kpi.db"), KpiConfig::default(), clock.clone()).unwrap(),
        );
        let board: Arc<dyn BoardBackend> = Arc::new(
            EmbeddedBoard::open_with_clock(&dir.join("board.db"), Arc::new(move || clock.now_ms()))
                .unwrap(),
        );
        let path = dir.join("rules.toml");
        std::fs::write(&path, rules).unwrap();
        let factory = Factory::new(
            kpi.clone(),
            board.clone(),
            GapStore::open(&dir.join("gaps.db")).unwrap(),
            Vec::new(),
            escalate::Escalation::default(),
            FactoryConfig {
                rules_file: Some(path),
                ..FactoryConfig::default()
            },
        )
        .unwrap();
        (factory, kpi, board)
    }

    const RULE: &str = "[[rule]]\nname = \"deep\"\nseries = \"queue.depth\"\nfire = \"> 2\"\n";

    #[tokio::test]
    async fn a_gap_whose_rule_is_removed_ends_and_its_card_goes_to_done() {
        let dir = tempfile::tempdir().unwrap();
        let (factory, kpi, board) = factory(dir.path(), RULE);
        assert_eq!(
            factory.rules_status().warnings,
            ["rule `deep` reads `queue.depth`, of which no sample is stored: it has no data until one is pushed"]
        );
        kpi.push(vec![NewSample {
            name: "queue.depth".into(),
            value: 5.0,
            at: None,
            labels: Labels::new(),
        }])
        .await
        .unwrap();
        let report = factory.evaluate().await;
        assert_eq!(report.transitions, ["1 deep pending", "1 deep firing"]);
        let card = factory
            .gaps()
            .latest("deep", &Labels::new())
            .unwrap()
            .card_id
            .unwrap();
        // The rule renamed: the old gap ends, the new rule opens its own.
        std::fs::write(
            dir.path().join("rules.toml"),
            RULE.replace("\"deep\"", "\"deeper\""),
        )
        .unwrap();
        assert_eq!(factory.reload_if_changed(), Some(Ok(1)));
        assert_eq!(
            factory.reload_if_changed(),
            None,
            "unchanged text is not read again"
        );
        let report = factory.evaluate().await;
        assert!(
            report
                .transitions
                .contains(&"1 deep resolved (its rule is gone)".to_string()),
            "{report:?}"
        );
        assert!(
            report.transitions.contains(&"2 deeper firing".to_string()),
            "{report:?}"
        );
        assert_eq!(board.card(&card).await.unwrap().list, "Done");
        let again = factory.evaluate().await;
        assert!(
            again.transitions.is_empty() && again.cards.is_empty(),
            "{again:?}"
        );
    }

    #[test]
    fn a_material_change_is_a_quarter_of_the_scale() {
        assert!(!material(2.2, 1.8, 2.0));
        assert!(material(3.0, 4.0, 2.0));
        assert!(material(0.0, 1.0, 0.0));
        assert!(!material(200_000.0, 240_000.0, 172_800.0));
    }
}
