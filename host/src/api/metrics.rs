//! `GET /metrics`: the host's own figures in the Prometheus text format
//! (0.0.4), for a Prometheus server to scrape: calls, latency histograms
//! and errors by skill and code, swaps and failed loads, the instance
//! pool, KPI samples, gaps by state and rule, and the monitors.
//!
//! The figures are read when the scrape comes (counters are atomics kept
//! by the modules that count); nothing is kept here.

use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A text exposition being written.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

/// A label value escaped as the format says: `\`, `"` and line breaks.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if value.is_nan() {
        "NaN".to_string()
    } else {
        format!("{value}")
    }
}

/// The host's figures.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    operation_id = "metrics",
    responses((status = 200, description = "The Prometheus text format (0.0.4).", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    let registry = &state.registry;

    let skills = registry.metrics();
    out.family(
        "darkfactory_invocations_total",
        "counter",
        "Calls of a skill that reached it, by outcome: ok, or the error's code.",
    );
    for skill in &skills {
        out.sample(
            "darkfactory_invocations_total",
            &[("skill", &skill.name), ("outcome", "ok")],
            skill.ok as f64,
        );
        for (code, n) in &skill.errors {
            out.sample(
                "darkfactory_invocations_total",
                &[("skill", &skill.name), ("outcome", code)],
                *n as f64,
            );
        }
    }
    out.family(
        "darkfactory_invocation_duration_seconds",
        "histogram",
        "How long calls of a skill took, in seconds.",
    );
    for skill in &skills {
        let mut cumulative = 0u64;
        for (le, n) in &skill.buckets {
            cumulative += n;
            out.sample(
                "darkfactory_invocation_duration_seconds_bucket",
                &[("skill", &skill.name), ("le", &number(*le))],
                cumulative as f64,
            );
        }
        out.sample(
            "darkfactory_invocation_duration_seconds_sum",
            &[("skill", &skill.name)],
            skill.sum_seconds,
        );
        out.sample(
            "darkfactory_invocation_duration_seconds_count",
            &[("skill", &skill.name)],
            cumulative as f64,
        );
    }
    out.family(
        "darkfactory_calls_in_flight",
        "gauge",
        "Calls of a skill running now.",
    );
    for skill in &skills {
        out.sample(
            "darkfactory_calls_in_flight",
            &[("skill", &skill.name)],
            skill.in_flight as f64,
        );
    }
    out.family(
        "darkfactory_instance_pool_size",
        "gauge",
        "Skill instances that may run at once (--max-instances).",
    );
    out.sample(
        "darkfactory_instance_pool_size",
        &[],
        registry.runtime().config().max_instances as f64,
    );
    let counts = registry.counts();
    out.family(
        "darkfactory_skills",
        "gauge",
        "Skills by state: serving a version, loading, or failed (nothing serving).",
    );
    let failed = counts
        .skills
        .saturating_sub(counts.serving + counts.loading);
    for (state, n) in [
        ("serving", counts.serving),
        ("loading", counts.loading),
        ("failed", failed),
    ] {
        out.sample("darkfactory_skills", &[("state", state)], n as f64);
    }
    let (swaps, failed) = registry.load_counts();
    out.family(
        "darkfactory_swaps_total",
        "counter",
        "Versions of skills published (loads, deploys, rollbacks).",
    );
    out.sample("darkfactory_swaps_total", &[], swaps as f64);
    out.family(
        "darkfactory_failed_loads_total",
        "counter",
        "Skill files or uploads that failed to load (the last good version kept serving).",
    );
    out.sample("darkfactory_failed_loads_total", &[], failed as f64);

    if let Some(kpi) = &state.kpi {
        let series = kpi.series();
        out.family("darkfactory_kpi_series", "gauge", "KPI series stored.");
        out.sample("darkfactory_kpi_series", &[], series.len() as f64);
        out.family(
            "darkfactory_kpi_stored_samples",
            "gauge",
            "KPI samples stored (a folded bucket counts once).",
        );
        out.sample(
            "darkfactory_kpi_stored_samples",
            &[],
            series.iter().map(|s| s.samples).sum::<u64>() as f64,
        );
        out.family(
            "darkfactory_kpi_samples_total",
            "counter",
            "KPI samples recorded since the host started.",
        );
        out.sample("darkfactory_kpi_samples_total", &[], kpi.recorded() as f64);
    }

    if let Some(factory) = &state.factory {
        let mut gaps: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
        for rule in factory.rules().iter() {
            for state in ["pending", "firing", "resolved"] {
                gaps.insert((rule.name.clone(), state), 0);
            }
        }
        for gap in factory.gaps().all_latest() {
            *gaps
                .entry((gap.rule.clone(), gap.state.name()))
                .or_default() += 1;
        }
        out.family(
            "darkfactory_gaps",
            "gauge",
            "Gaps by rule and state (the newest gap of each fingerprint).",
        );
        for ((rule, state), n) in &gaps {
            out.sample(
                "darkfactory_gaps",
                &[("rule", rule), ("state", state)],
                *n as f64,
            );
        }
        let monitors = factory.monitors();
        out.family(
            "darkfactory_monitor_up",
            "gauge",
            "Whether a monitor measured everything it watches at the last evaluation.",
        );
        for m in &monitors {
            out.sample(
                "darkfactory_monitor_up",
                &[("monitor", &m.name)],
                if m.ok { 1.0 } else { 0.0 },
            );
        }
        out.family(
            "darkfactory_monitor_failures_total",
            "counter",
            "Evaluations at which a monitor could not measure (all or part of what it watches).",
        );
        for m in &monitors {
            out.sample(
                "darkfactory_monitor_failures_total",
                &[("monitor", &m.name)],
                m.failures_total as f64,
            );
        }
        if let Some(triggers) = factory.triggers() {
            out.family(
                "darkfactory_factory_runs_total",
                "counter",
                "Runs of skills by their triggers that ended since the host started, by skill, trigger (gap, cron) and state (ok, failed, skipped).",
            );
            for ((skill, trigger, state), n) in triggers.ended() {
                out.sample(
                    "darkfactory_factory_runs_total",
                    &[("skill", &skill), ("trigger", trigger), ("state", state)],
                    n as f64,
                );
            }
        }
        let (evaluations, last_ms) = factory.evaluation_counts();
        out.family(
            "darkfactory_evaluations_total",
            "counter",
            "Evaluations of the factory's rules.",
        );
        out.sample("darkfactory_evaluations_total", &[], evaluations as f64);
        out.family(
            "darkfactory_evaluation_duration_seconds",
            "gauge",
            "How long the last evaluation took.",
        );
        out.sample(
            "darkfactory_evaluation_duration_seconds",
            &[],
            last_ms / 1000.0,
        );
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.0).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_written_as_the_format_says() {
        let mut out = Exposition(String::new());
        out.family("x_total", "counter", "A thing.");
        out.sample("x_total", &[("skill", "a\"b\\c\nd")], 3.0);
        out.sample("x_bucket", &[("le", &number(f64::INFINITY))], 0.5);
        assert_eq!(
            out.0,
            "# HELP x_total A thing.\n# TYPE x_total counter\n\
             x_total{skill=\"a\\\"b\\\\c\\nd\"} 3\nx_bucket{le=\"+Inf\"} 0.5\n"
        );
    }
}
