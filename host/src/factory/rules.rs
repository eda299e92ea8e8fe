//! The rules that turn KPI series into gaps, shaped like Prometheus
//! alerting rules: a series (or a PromQL query) aggregated over a window,
//! a condition to fire and a separate one to clear (hysteresis), `for`,
//! `keep_firing_for`, the labels that make a gap's fingerprint, a severity,
//! a minimum number of samples, and inhibition by another rule's gap.
//!
//! The five watches ship as [`default_rules`]; `DATA/rules.toml` (or
//! `--rules FILE`) replaces them. A file is read whole or not at all: every
//! error is reported with `FILE:LINE:COLUMN`, and the rules already loaded
//! keep running.

use crate::capabilities::kpi::{check_labels, check_name, Labels};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// The longest rule name (a skill's).
pub const MAX_RULE_NAME: usize = crate::skill::MAX_NAME_LEN;

/// How the samples of a window become one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The newest sample.
    Last,
    /// The mean.
    Avg,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The sum.
    Sum,
    /// How many samples.
    Count,
}

impl Aggregate {
    const ALL: [(&'static str, Aggregate); 6] = [
        ("last", Aggregate::Last),
        ("avg", Aggregate::Avg),
        ("min", Aggregate::Min),
        ("max", Aggregate::Max),
        ("sum", Aggregate::Sum),
        ("count", Aggregate::Count),
    ];

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == text).map(|(_, a)| *a)
    }

    /// Its name in a rule file.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, a)| *a == self)
            .map_or("?", |(n, _)| n)
    }
}

/// A comparison with a threshold: `> 2`, `<= 1.5`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Condition {
    /// `>`, `>=`, `<`, `<=`, `==` or `!=`.
    pub op: Op,
    /// The threshold.
    pub threshold: f64,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Op {
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `==`
    #[serde(rename = "==")]
    Eq,
    /// `!=`
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    fn negated(self) -> Op {
        match self {
            Op::Gt => Op::Le,
            Op::Ge => Op::Lt,
            Op::Lt => Op::Ge,
            Op::Le => Op::Gt,
            Op::Eq => Op::Ne,
            Op::Ne => Op::Eq,
        }
    }
}

impl Condition {
    /// Reads `OP NUMBER`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let ops = [
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        let Some((symbol, op)) = ops.iter().find(|(s, _)| text.starts_with(s)) else {
            return Err(format!(
                "{text:?} is not a condition such as \"> 2\" or \"<= 1.5\" (an operator >, >=, \
                 <, <=, ==, != and a number)"
            ));
        };
        let number = text[symbol.len()..].trim().replace('_', "");
        match number.parse::<f64>() {
            Ok(threshold) if threshold.is_finite() => Ok(Condition { op: *op, threshold }),
            _ => Err(format!(
                "{text:?}: {:?} is not a finite number",
                text[symbol.len()..].trim()
            )),
        }
    }

    /// Whether `value` meets it.
    pub fn holds(&self, value: f64) -> bool {
        let t = self.threshold;
        match self.op {
            Op::Gt => value > t,
            Op::Ge => value >= t,
            Op::Lt => value < t,
            Op::Le => value <= t,
            Op::Eq => value == t,
            Op::Ne => value != t,
        }
    }

    /// The condition that holds exactly when this one does not.
    pub fn negated(&self) -> Condition {
        Condition {
            op: self.op.negated(),
            threshold: self.threshold,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op.symbol(), self.threshold)
    }
}

/// How urgent a gap is: a `critical` one is also escalated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a card.
    Info,
    /// Worth a card soon.
    Warning,
    /// Worth a card and a message to a person.
    Critical,
}

impl Severity {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Where a rule's values come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A series of the host's store, with label matchers.
    Series {
        /// Its name.
        name: String,
        /// Only the label sets that have these labels.
        labels: Labels,
    },
    /// A PromQL instant query of the Prometheus server (`--prometheus-url`):
    /// each element of the answer's vector is one group.
    Promql(String),
}

/// Another rule's gap that silences this one while it fires: "an agent
/// that is down inhibits its own cost gap".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inhibition {
    /// The rule whose firing gap inhibits.
    pub rule: String,
    /// The labels that must be equal on both gaps (none: any gap of it).
    pub on: Vec<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rule {
    /// Unique in its file: `[a-z0-9][a-z0-9-]*`.
    pub name: String,
    /// What it reads.
    pub source: Source,
    /// How a window becomes a value.
    pub aggregate: Aggregate,
    /// The window read at each evaluation.
    #[serde(with = "secs")]
    pub window: Duration,
    /// The labels that make the fingerprint: one gap per distinct value set.
    pub by: Vec<String>,
    /// When it fires.
    pub fire: Condition,
    /// When a firing (or pending) gap clears; the negation of `fire` unless
    /// given.
    pub clear: Condition,
    /// How long `fire` must hold before the gap fires.
    #[serde(rename = "for", with = "secs")]
    pub for_: Duration,
    /// A gap that fires again within this of resolving reopens its card.
    #[serde(with = "secs")]
    pub keep_firing_for: Duration,
    /// Its severity.
    pub severity: Severity,
    /// Fewer samples in the window than this: no value, no change.
    pub min_samples: u64,
    /// The gaps that inhibit this rule's.
    pub inhibited_by: Vec<Inhibition>,
    /// The card's title after "Gap: "; `{value}`, `{threshold}` and
    /// `{labels.NAME}` are filled in.
    pub summary: String,
    /// What the card explains beside the evidence.
    pub description: String,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl Rule {
    /// The card title of a gap of this rule with `value` and `labels`.
    pub fn title(&self, value: f64, labels: &Labels) -> String {
        format!("Gap: {}", self.fill(&self.summary, value, labels))
    }

    /// Fills `{value}`, `{threshold}` and `{labels.NAME}` in `text`.
    pub fn fill(&self, text: &str, value: f64, labels: &Labels) -> String {
        let mut out = text
            .replace("{value}", &number(value))
            .replace("{threshold}", &number(self.fire.threshold));
        for (k, v) in labels {
            out = out.replace(&format!("{{labels.{k}}}"), v);
        }
        out
    }
}

/// A number as a person writes it: `3`, `1.25`, `172800`.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A refusal of a rule file: every problem, each with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct RulesError {
    /// `FILE:LINE:COLUMN: message`, in file order.
    pub problems: Vec<String>,
}

/// The series the host's monitors write, which a rule may name before any
/// sample of them exists.
pub const MONITOR_SERIES: &[&str] = &[
    "board.cards_blocked_long",
    "fleet.missed_heartbeats",
    "memory.ingest.lag_seconds",
    "ci.last_success_age_seconds",
    "agent.cost_usd",
    "agent.tokens",
    "agent.sessions",
    "agent.tokens_per_session",
    "agent.cost_per_session_usd",
    "agent.cost_ratio",
];

/// What a rule file is checked against.
pub struct Known<'a> {
    /// Whether a series of this name is stored (or otherwise known).
    pub series: &'a dyn Fn(&str) -> bool,
    /// Whether PromQL rules can run (`--prometheus-url` is set).
    pub prometheus: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    series: Option<Spanned<String>>,
    query: Option<Spanned<String>>,
    labels: Option<Spanned<BTreeMap<String, String>>>,
    aggregate: Option<Spanned<String>>,
    window: Option<Spanned<String>>,
    by: Option<Spanned<Vec<String>>>,
    fire: Spanned<String>,
    clear: Option<Spanned<String>>,
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    keep_firing_for: Option<Spanned<String>>,
    severity: Option<Spanned<String>>,
    min_samples: Option<Spanned<i64>>,
    #[serde(default)]
    inhibited_by: Vec<Spanned<RawInhibition>>,
    summary: Option<String>,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInhibition {
    rule: String,
    #[serde(default)]
    on: Vec<String>,
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
    problems: Vec<(usize, String)>,
}

impl Reader<'_> {
    fn refuse(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span.start, message.into()));
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                self.refuse(
                    value.span(),
                    format!(
                        "`{key}` {:?} is not a duration such as \"5m\" or \"48h\" ({e})",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn finish(mut self) -> RulesError {
        self.problems.sort_by_key(|(at, _)| *at);
        let problems = self
            .problems
            .iter()
            .map(|(at, m)| {
                let (line, column) = self.position(*at);
                format!("{}:{line}:{column}: {m}", self.file)
            })
            .collect();
        RulesError { problems }
    }
}

/// Reads a rule file's text; `file` names it in errors.
pub fn parse(file: &str, text: &str, known: &Known<'_>) -> Result<Vec<Rule>, RulesError> {
    let mut reader = Reader {
        file,
        text,
        problems: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            reader.refuse(span, e.message().trim_end().to_string());
            return Err(reader.finish());
        }
    };
    let mut rules = Vec::new();
    let mut names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for spanned in &raw.rule {
        let raw = spanned.get_ref();
        let name = raw.name.get_ref().clone();
        let (labels, labels_span) = match &raw.labels {
            Some(l) => (l.get_ref().clone(), l.span()),
            None => (Labels::new(), raw.name.span()),
        };
        let (by, by_span) = match &raw.by {
            Some(b) => (b.get_ref().clone(), b.span()),
            None => (Vec::new(), raw.name.span()),
        };
        // A rule is named as a skill is: it may become one.
        if crate::skill::SkillName::check(&name).is_err() {
            reader.refuse(
                raw.name.span(),
                format!("rule name {name:?} is not 1 to {MAX_RULE_NAME} of a-z, 0-9 and `-`, starting with a letter or digit"),
            );
        }
        if let Some(first) = names.get(&name) {
            let (line, _) = reader.position(first.start);
            reader.refuse(
                raw.name.span(),
                format!("rule `{name}` is defined twice (first on line {line})"),
            );
        } else {
            names.insert(name.clone(), raw.name.span());
        }
        let source = match (&raw.series, &raw.query) {
            (Some(series), None) => {
                let series_name = series.get_ref().clone();
                if let Err(e) = check_name(&series_name) {
                    reader.refuse(series.span(), format!("`series`: {e}"));
                } else if !MONITOR_SERIES.contains(&series_name.as_str())
                    && !(known.series)(&series_name)
                {
                    let hint = crate::workflow::diag::did_you_mean(
                        &series_name,
                        MONITOR_SERIES.iter().copied(),
                    )
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                    reader.refuse(
                        series.span(),
                        format!(
                            "no series is named `{series_name}`: {hint}the monitors write {}, and \
                             no sample of it has been pushed (push one first: `darkfactory kpi push \
                             {series_name} VALUE`)",
                            MONITOR_SERIES.join(", ")
                        ),
                    );
                }
                if let Err(e) = check_labels(&labels) {
                    reader.refuse(labels_span.clone(), format!("`labels`: {e}"));
                }
                Source::Series {
                    name: series_name,
                    labels: labels.clone(),
                }
            }
            (None, Some(query)) => {
                if !known.prometheus {
                    reader.refuse(
                        query.span(),
                        "`query` is PromQL for a Prometheus server, and this host has none: set \
                         --prometheus-url (`factory.prometheus_url`)",
                    );
                }
                if query.get_ref().trim().is_empty() {
                    reader.refuse(query.span(), "`query` is empty");
                }
                // The query aggregates; a window or an aggregate beside it
                // would be silently ignored.
                for (given, key) in [(&raw.aggregate, "aggregate"), (&raw.window, "window")] {
                    if let Some(v) = given {
                        reader.refuse(
                            v.span(),
                            format!("`{key}` applies to a `series`; a PromQL `query` aggregates itself (e.g. `avg_over_time(x[10m])`)"),
                        );
                    }
                }
                if !labels.is_empty() {
                    reader.refuse(
                        labels_span.clone(),
                        "`labels` filters a `series`; write the matchers into the PromQL `query`",
                    );
                }
                Source::Promql(query.get_ref().clone())
            }
            (Some(_), Some(query)) => {
                reader.refuse(
                    query.span(),
                    format!("rule `{name}` has both `series` and `query`; give one"),
                );
                Source::Promql(String::new())
            }
            (None, None) => {
                reader.refuse(
                    raw.name.span(),
                    format!("rule `{name}` has neither `series` nor `query`; give one"),
                );
                Source::Promql(String::new())
            }
        };
        let aggregate = match &raw.aggregate {
            None => Aggregate::Last,
            Some(a) => Aggregate::parse(a.get_ref()).unwrap_or_else(|| {
                reader.refuse(
                    a.span(),
                    format!(
                        "`aggregate` {:?} is not one of last, avg, min, max, sum, count",
                        a.get_ref()
                    ),
                );
                Aggregate::Last
            }),
        };
        let window = reader.duration(&raw.window, "window", Duration::from_secs(600));
        if window.is_zero() {
            if let Some(w) = &raw.window {
                reader.refuse(w.span(), "`window` must be above zero");
            }
        }
        let for_ = reader.duration(&raw.for_, "for", Duration::ZERO);
        let keep_firing_for = reader.duration(
            &raw.keep_firing_for,
            "keep_firing_for",
            Duration::from_secs(3600),
        );
        let parsed_fire = Condition::parse(raw.fire.get_ref());
        let fire_ok = parsed_fire.is_ok();
        let fire = parsed_fire.unwrap_or_else(|e| {
            reader.refuse(raw.fire.span(), format!("`fire`: {e}"));
            Condition {
                op: Op::Gt,
                threshold: 0.0,
            }
        });
        let clear = match &raw.clear {
            None => fire.negated(),
            Some(c) => match Condition::parse(c.get_ref()) {
                // Against a `fire` that did not parse, nothing is checked.
                Ok(clear) if !fire_ok => clear,
                Ok(clear) => {
                    // The two must not hold at once, or a gap would clear
                    // and fire on the same value.
                    let overlap = [
                        fire.threshold,
                        clear.threshold,
                        (fire.threshold + clear.threshold) / 2.0,
                    ]
                    .into_iter()
                    .flat_map(|t| [t - 1e-9, t, t + 1e-9])
                    .any(|v| fire.holds(v) && clear.holds(v));
                    if overlap {
                        reader.refuse(
                            c.span(),
                            format!("`clear` ({clear}) holds where `fire` ({fire}) does: a gap would clear and fire on one value; clear on the other side of the threshold"),
                        );
                    }
                    clear
                }
                Err(e) => {
                    reader.refuse(c.span(), format!("`clear`: {e}"));
                    fire.negated()
                }
            },
        };
        let severity = match &raw.severity {
            None => Severity::Warning,
            Some(s) => Severity::parse(s.get_ref()).unwrap_or_else(|| {
                reader.refuse(
                    s.span(),
                    format!(
                        "`severity` {:?} is not info, warning or critical",
                        s.get_ref()
                    ),
                );
                Severity::Warning
            }),
        };
        let min_samples = match &raw.min_samples {
            None => 1,
            Some(n) if *n.get_ref() >= 1 => *n.get_ref() as u64,
            Some(n) => {
                reader.refuse(n.span(), "`min_samples` must be at least 1");
                1
            }
        };
        for label in &by {
            let probe: Labels = [(label.clone(), "x".to_string())].into();
            if check_labels(&probe).is_err() {
                reader.refuse(
                    by_span.clone(),
                    format!("`by`: {label:?} is not a label name"),
                );
            }
        }
        let mut inhibited_by = Vec::new();
        for i in &raw.inhibited_by {
            inhibited_by.push((
                i.span(),
                Inhibition {
                    rule: i.get_ref().rule.clone(),
                    on: i.get_ref().on.clone(),
                },
            ));
        }
        rules.push((
            spanned.span(),
            inhibited_by
                .iter()
                .map(|(s, i)| (s.clone(), i.rule.clone()))
                .collect::<Vec<_>>(),
            Rule {
                summary: raw
                    .summary
                    .clone()
                    .unwrap_or_else(|| format!("{name}: {{value}} {}", fire)),
                description: raw.description.clone().unwrap_or_default(),
                name,
                source,
                aggregate,
                window,
                by,
                fire,
                clear,
                for_,
                keep_firing_for,
                severity,
                min_samples,
                inhibited_by: inhibited_by.into_iter().map(|(_, i)| i).collect(),
            },
        ));
    }
    for (_, inhibitions, rule) in &rules {
        for (span, other) in inhibitions {
            if other == &rule.name {
                reader.refuse(
                    span.clone(),
                    format!("rule `{}` inhibits itself", rule.name),
                );
                continue;
            }
            let Some((_, _, inhibitor)) = rules.iter().find(|(_, _, r)| &r.name == other) else {
                reader.refuse(
                    span.clone(),
                    format!("`inhibited_by` names rule `{other}`, which this file does not define"),
                );
                continue;
            };
            // A label one of the two gaps does not carry never matches.
            let on = rule
                .inhibited_by
                .iter()
                .find(|i| &i.rule == other)
                .map(|i| i.on.clone())
                .unwrap_or_default();
            for label in on {
                if !rule.by.contains(&label) || !inhibitor.by.contains(&label) {
                    reader.refuse(
                        span.clone(),
                        format!("`on` label `{label}` must be in the `by` of both `{}` and `{other}`, or the inhibition never matches", rule.name),
                    );
                }
            }
            // Through any number of rules, an inhibition must not come back
            // to the rule it starts from.
            let mut seen = vec![other.clone()];
            let mut next = vec![inhibitor];
            let mut cycle = false;
            while let Some(r) = next.pop() {
                for i in &r.inhibited_by {
                    if i.rule == rule.name {
                        cycle = true;
                    } else if !seen.contains(&i.rule) {
                        seen.push(i.rule.clone());
                        if let Some((_, _, r)) = rules.iter().find(|(_, _, x)| x.name == i.rule) {
                            next.push(r);
                        }
                    }
                }
            }
            if cycle {
                reader.refuse(
                    span.clone(),
                    format!(
                        "rule `{}` is inhibited by `{other}`, which an inhibition leads back \
                         from: a cycle of inhibitions",
                        rule.name
                    ),
                );
            }
        }
    }
    if !reader.problems.is_empty() {
        return Err(reader.finish());
    }
    Ok(rules.into_iter().map(|(_, _, r)| r).collect())
}

/// Reads the rule file at `path`.
pub fn load(path: &Path, known: &Known<'_>) -> Result<Vec<Rule>, RulesError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RulesError {
        problems: vec![format!("{file}: cannot read the rule file: {e}")],
    })?;
    parse(&file, &text, known)
}

/// The rule file the host runs when none is given: the five watches.
pub const DEFAULT_RULES: &str = include_str!("default-rules.toml");

/// The five watches.
pub fn default_rules() -> Vec<Rule> {
    let known = Known {
        series: &|_| false,
        prometheus: false,
    };
    parse("default-rules.toml", DEFAULT_RULES, &known).expect("the default rules are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Known<'static> {
        Known {
            series: &|name| name == "pushed.series",
            prometheus: false,
        }
    }

    #[test]
    fn the_defaults_are_the_five_watches() {
        let rules = default_rules();
        let names: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cards-blocked",
                "agent-down",
                "memory-ingest-lag",
                "ci-not-green",
                "agent-cost"
            ]
        );
        let cost = rules.iter().find(|r| r.name == "agent-cost").unwrap();
        assert_eq!(
            cost.fire,
            Condition {
                op: Op::Gt,
                threshold: 2.0
            }
        );
        assert_eq!(
            cost.clear,
            Condition {
                op: Op::Lt,
                threshold: 1.5
            }
        );
        assert_eq!(
            cost.inhibited_by,
            [Inhibition {
                rule: "agent-down".into(),
                on: vec!["agent".into()]
            }]
        );
    }

    #[test]
    fn every_problem_is_named_with_its_place() {
        let text = r#"
[[rule]]
name = "Bad Name"
series = "board.cards_blocked_lon"
fire = "above 2"

[[rule]]
name = "x"
series = "pushed.series"
fire = "> 2"
clear = "< 3"
for = "ten minutes"
severity = "page"
inhibited_by = [{ rule = "nope" }]
"#;
        let err = parse("rules.toml", text, &known()).unwrap_err();
        let p = &err.problems;
        assert!(
            p[0].starts_with("rules.toml:3:8: rule name \"Bad Name\""),
            "{p:#?}"
        );
        assert!(p[1].starts_with("rules.toml:4:10: no series is named `board.cards_blocked_lon`: did you mean `board.cards_blocked_long`?"), "{p:#?}");
        assert!(
            p[2].starts_with("rules.toml:5:8: `fire`: \"above 2\" is not a condition"),
            "{p:#?}"
        );
        assert!(
            p[3].starts_with("rules.toml:11:9: `clear` (< 3) holds where `fire` (> 2) does"),
            "{p:#?}"
        );
        assert!(
            p[4].starts_with("rules.toml:12:7: `for` \"ten minutes\""),
            "{p:#?}"
        );
        assert!(
            p[5].starts_with("rules.toml:13:12: `severity` \"page\""),
            "{p:#?}"
        );
        assert!(
            p[6].starts_with("rules.toml:14:17: `inhibited_by` names rule `nope`"),
            "{p:#?}"
        );
        assert_eq!(p.len(), 7, "{p:#?}");
        let err = parse("r.toml", "[[rule]]\nname = \"a\"\nfire = 2\n", &known()).unwrap_err();
        assert!(
            err.problems[0].starts_with("r.toml:3:8: invalid type"),
            "{err}"
        );
        let err = parse("r.toml", "[[rule]]\nname = \"a\"\nsery = \"x\"\n", &known()).unwrap_err();
        assert!(err.problems[0].contains("unknown field `sery`"), "{err}");
        let err = parse(
            "r.toml",
            "[[rule]]\nname = \"a\"\nquery = \"up\"\nfire = \"> 1\"\n",
            &known(),
        )
        .unwrap_err();
        assert!(err.problems[0].contains("--prometheus-url"), "{err}");
        let inhibit = r#"
[[rule]]
name = "down"
series = "pushed.series"
by = ["agent"]
fire = "> 2"
inhibited_by = [{ rule = "cost" }]

[[rule]]
name = "cost"
series = "pushed.series"
fire = "> 2"
inhibited_by = [{ rule = "down", on = ["agent"] }]
"#;
        let err = parse("i.toml", inhibit, &known()).unwrap_err();
        assert!(err.problems[0].contains("a cycle of inhibitions"), "{err}");
        let three = "[[rule]]\nname = \"a\"\nseries = \"pushed.series\"\nfire = \"> 1\"\ninhibited_by = [{ rule = \"b\" }]\n\
            [[rule]]\nname = \"b\"\nseries = \"pushed.series\"\nfire = \"> 1\"\ninhibited_by = [{ rule = \"c\" }]\n\
            [[rule]]\nname = \"c\"\nseries = \"pushed.series\"\nfire = \"> 1\"\ninhibited_by = [{ rule = \"a\" }]\n";
        let cycle = parse("c.toml", three, &known()).unwrap_err();
        assert_eq!(cycle.problems.len(), 3, "{cycle}");
        assert!(
            cycle
                .problems
                .iter()
                .all(|p| p.contains("a cycle of inhibitions")),
            "{cycle}"
        );
        assert!(
            err.problems
                .iter()
                .any(|p| p
                    .contains("`on` label `agent` must be in the `by` of both `cost` and `down`")),
            "{err}"
        );
    }

    #[test]
    fn conditions_and_their_negations() {
        let c = Condition::parse(">= 172_800").unwrap();
        assert!(c.holds(172_800.0) && !c.holds(1.0));
        assert!(c.negated().holds(1.0) && !c.negated().holds(172_800.0));
        assert!(Condition::parse("> inf").is_err());
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(3.0), "3");
    }
}
