//! The fleet's indicators as time series: what the host's monitors record
//! (cards blocked, heartbeats missed, ingest lag, CI age, agents' cost) and
//! what agents push.
//!
//! The manifest grants `kpi_read`: series names, `PREFIX.*`, or `"*"`. A
//! skill without it gets [`KpiError::Denied`] from every call:
//!
//! ```no_run
//! use darkfactory_sdk::{export_skill, kpi, SkillError};
//!
//! fn newest_lag(_: serde_json::Value) -> Result<f64, SkillError> {
//!     let samples = kpi::series("memory.ingest.lag_seconds", 3600)?;
//!     samples
//!         .last()
//!         .map(|s| s.value)
//!         .ok_or_else(|| SkillError::new("no-data", "no lag recorded in the last hour"))
//! }
//!
//! export_skill!(newest_lag, kpi_read = "memory.ingest.lag_seconds");
//! # fn main() {}
//! ```

use crate::bindings::darkfactory::skill::kpi as wit;
use crate::SkillError;

pub use wit::{KpiError, Sample};

impl From<KpiError> for SkillError {
    /// A KPI error as the skill's own error: code `kpi-denied`,
    /// `kpi-invalid`, `kpi-not-found` or `kpi-unavailable`.
    fn from(e: KpiError) -> Self {
        let (code, message) = match e {
            KpiError::Denied(m) => ("kpi-denied", m),
            KpiError::Invalid(m) => ("kpi-invalid", m),
            KpiError::NotFound(m) => ("kpi-not-found", m),
            KpiError::Unavailable(m) => ("kpi-unavailable", m),
        };
        SkillError::new(code, message)
    }
}

/// The samples of series `name` (every label set of it) in the last
/// `window_seconds`, oldest first.
pub fn series(name: &str, window_seconds: u64) -> Result<Vec<Sample>, KpiError> {
    wit::series(name, window_seconds)
}

impl Sample {
    /// The value of label `key`, if the sample has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}
