//! Monitors: at every evaluation each one measures one part of the fleet
//! and writes what it measured as KPI samples, with evidence (which cards,
//! which agents) for the cards of the gaps its series open.
//!
//! A monitor whose source is down answers an error instead of samples: the
//! factory records that it could not measure (the gaps API shows it), and
//! no rule sees a value it did not get, so an outage never becomes a gap.

mod board;
pub mod ci;
mod cost;
pub mod fleet;
mod memory;

/// The series the monitors write at each evaluation's time: the newest
/// sample of any of them is when the host last measured.
pub const MEASURED: &[&str] = &[
    board::SERIES,
    fleet::SERIES,
    memory::SERIES,
    ci::SERIES,
    cost::RATIO,
];

pub use board::BoardMonitor;
pub use ci::{CiMonitor, CiRepo};
pub use cost::CostMonitor;
pub use fleet::FleetMonitor;
pub use memory::MemoryMonitor;

use crate::capabilities::kpi::{Labels, NewSample};

/// One line of evidence: the labels of the series it explains, and what it
/// says.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The series name.
    pub series: String,
    /// The labels of the samples it explains.
    pub labels: Labels,
    /// A line for the card.
    pub line: String,
}

/// What one monitor measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    /// The samples to record (timed now unless they say otherwise).
    pub samples: Vec<NewSample>,
    /// The evidence behind them.
    pub evidence: Vec<Evidence>,
    /// What it could not measure although it measured the rest (one
    /// repository of several that did not answer).
    pub problems: Vec<String>,
}

impl Measurement {
    /// Adds a sample of `series` with `labels`, timed `at`.
    pub fn sample(&mut self, series: &str, labels: Labels, value: f64, at: u64) {
        self.samples.push(NewSample {
            name: series.to_string(),
            value,
            at: Some(at),
            labels,
        });
    }

    /// Adds a line of evidence for `series` with `labels`.
    pub fn evidence(&mut self, series: &str, labels: Labels, line: String) {
        self.evidence.push(Evidence {
            series: series.to_string(),
            labels,
            line,
        });
    }
}

/// A source of samples.
#[async_trait::async_trait]
pub trait Monitor: Send + Sync {
    /// Its name: `board`, `fleet`, `memory`, `ci`, `cost`.
    fn name(&self) -> &'static str;

    /// Measures at `now_ms`; an error says why it could not.
    async fn measure(&self, now_ms: u64) -> Result<Measurement, String>;
}

/// Labels from pairs.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A time as `2026-12-01 21:44 UTC`.
pub fn when(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// A duration in hours, for a person: `50 h`.
pub fn hours(ms: u64) -> String {
    format!("{} h", ms / 3_600_000)
}
