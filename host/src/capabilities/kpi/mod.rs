//! `darkfactory:skill/kpi`: the fleet's indicators as time series.
//!
//! A series is a name plus labels (`agent.cost_usd{agent="alfred"}`); a
//! sample is a time in milliseconds, a finite value and the series it
//! belongs to. The factory's monitors write samples at every evaluation,
//! agents and CI push theirs over HTTP, and rules and skills read them.
//!
//! The store is SQLite in the data directory ([`KpiStore`]): one row per
//! sample, keyed by series and time, so pushing the same sample twice keeps
//! one. Samples older than `downsample_after` are folded into buckets of
//! [`KpiConfig::bucket`] (their mean, count, minimum and maximum, so sums,
//! counts and extremes over a window stay exact), and samples older than
//! the retention are dropped. A skill reads with a `kpi_read` grant (deny
//! by default); see [`KpiGrant`].

mod grant;
mod host;
mod store;

pub use grant::KpiGrant;
pub use store::{CompactOutcome, KpiStore, Point, PushOutcome, SeriesInfo, SeriesPoints};

use std::collections::BTreeMap;
use std::time::Duration;

/// The longest series name, in bytes.
pub const MAX_NAME_BYTES: usize = 200;
/// The most labels a sample may carry.
pub const MAX_LABELS: usize = 16;
/// The longest label name, in bytes.
pub const MAX_LABEL_NAME_BYTES: usize = 64;
/// The longest label value, in bytes.
pub const MAX_LABEL_VALUE_BYTES: usize = 256;
/// How far ahead of the host's clock a sample's time may be (clocks drift).
pub const MAX_FUTURE: Duration = Duration::from_secs(5 * 60);
/// The most samples one read answers; a longer read asks for a shorter
/// window.
pub const MAX_READ_SAMPLES: usize = 100_000;

/// Why a KPI call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KpiError {
    /// Not granted to the skill.
    #[error("{0}")]
    Denied(String),
    /// Bad input: a name, a label, a value or a time out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// No series of that name.
    #[error("{0}")]
    NotFound(String),
    /// The store is down.
    #[error("{0}")]
    Unavailable(String),
}

/// How long samples are kept, and how they are folded as they age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiConfig {
    /// Samples older than this are dropped.
    pub retention: Duration,
    /// Samples older than this are folded into buckets.
    pub downsample_after: Duration,
    /// The width of a bucket.
    pub bucket: Duration,
}

impl Default for KpiConfig {
    fn default() -> Self {
        KpiConfig {
            retention: Duration::from_secs(30 * 24 * 3600),
            downsample_after: Duration::from_secs(7 * 24 * 3600),
            bucket: Duration::from_secs(5 * 60),
        }
    }
}

impl KpiConfig {
    /// Refuses settings that contradict each other.
    pub fn check(&self) -> Result<(), String> {
        if self.bucket.is_zero() || self.retention.is_zero() {
            return Err("the KPI retention and bucket must be above zero".into());
        }
        if self.downsample_after >= self.retention {
            return Err(format!(
                "--kpi-downsample-after ({}) must be shorter than --kpi-retention ({}): \
                 otherwise samples are dropped before they are folded",
                humantime::format_duration(self.downsample_after),
                humantime::format_duration(self.retention)
            ));
        }
        if self.bucket > self.downsample_after {
            return Err("the KPI bucket must not be wider than --kpi-downsample-after".into());
        }
        Ok(())
    }
}

/// The labels of a series, sorted by name.
pub type Labels = BTreeMap<String, String>;

/// One sample to record.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSample {
    /// The series name: letters, digits, `_`, `.`, `:` and `-`, starting
    /// with a letter or `_` (`ci.last_success_age_seconds`).
    #[schema(pattern = "^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$")]
    pub name: String,
    /// The value; it must be finite.
    pub value: f64,
    /// When it was measured, in milliseconds since the Unix epoch; the
    /// host's time when absent. At most 5 minutes ahead of the host's
    /// clock, and within the retention.
    #[serde(default)]
    #[schema(minimum = 0)]
    pub at: Option<u64>,
    /// What it is about (`agent`, `repo`, `branch`, ...): at most 16
    /// labels, names of letters, digits and `_` (not starting with `__`),
    /// values of 1 to 256 bytes.
    #[serde(default)]
    pub labels: Labels,
}

/// Checks a series name.
pub fn check_name(name: &str) -> Result<(), KpiError> {
    let invalid = |why: &str| Err(KpiError::Invalid(format!("series name {name:?} {why}")));
    if name.is_empty() {
        return Err(KpiError::Invalid("a series name must not be empty".into()));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(KpiError::Invalid(format!(
            "a series name is at most {MAX_NAME_BYTES} bytes; this one has {}",
            name.len()
        )));
    }
    let first = name.as_bytes()[0];
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return invalid("must start with a letter or `_`");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')))
    {
        return invalid(&format!(
            "holds {c:?}; a name is letters, digits, `_`, `.`, `:` and `-`"
        ));
    }
    Ok(())
}

/// Checks a sample's labels.
pub fn check_labels(labels: &Labels) -> Result<(), KpiError> {
    if labels.len() > MAX_LABELS {
        return Err(KpiError::Invalid(format!(
            "a sample carries at most {MAX_LABELS} labels; this one has {}",
            labels.len()
        )));
    }
    for (key, value) in labels {
        let first = key.as_bytes().first().copied().unwrap_or(b'0');
        if key.len() > MAX_LABEL_NAME_BYTES
            || !(first.is_ascii_alphabetic() || first == b'_')
            || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(KpiError::Invalid(format!(
                "label name {key:?} is not letters, digits and `_` starting with a letter or \
                 `_`, at most {MAX_LABEL_NAME_BYTES} bytes"
            )));
        }
        if key.starts_with("__") {
            return Err(KpiError::Invalid(format!(
                "label name {key:?} starts with `__`, which is reserved"
            )));
        }
        if value.is_empty() {
            return Err(KpiError::Invalid(format!(
                "label {key:?} is empty; leave a label out rather than send it empty"
            )));
        }
        if value.len() > MAX_LABEL_VALUE_BYTES {
            return Err(KpiError::Invalid(format!(
                "label {key:?} is {} bytes; a label value is at most {MAX_LABEL_VALUE_BYTES}",
                value.len()
            )));
        }
        if value.chars().any(char::is_control) {
            return Err(KpiError::Invalid(format!(
                "label {key:?} holds a control character"
            )));
        }
    }
    Ok(())
}

impl NewSample {
    /// Checks the sample against the bounds and the clock: `now_ms` is the
    /// host's time and `oldest_ms` the oldest time still kept. Answers the
    /// sample's time.
    pub fn check(&self, now_ms: u64, oldest_ms: u64) -> Result<u64, KpiError> {
        check_name(&self.name)?;
        check_labels(&self.labels)?;
        if !self.value.is_finite() {
            return Err(KpiError::Invalid(format!(
                "the value of {} is {}; a sample's value must be finite",
                self.name, self.value
            )));
        }
        let at = self.at.unwrap_or(now_ms);
        let latest = now_ms + MAX_FUTURE.as_millis() as u64;
        if at > latest {
            return Err(KpiError::Invalid(format!(
                "the sample of {} is at {at} ms, {} ahead of the host's clock; at most {} \
                 ahead is accepted (is the time in seconds rather than milliseconds?)",
                self.name,
                humantime::format_duration(Duration::from_secs((at - now_ms) / 1000)),
                humantime::format_duration(MAX_FUTURE)
            )));
        }
        if at < oldest_ms {
            return Err(KpiError::Invalid(format!(
                "the sample of {} is at {at} ms, older than the host takes samples (from \
                 {oldest_ms} ms on: older ones are folded or dropped; is the time in seconds \
                 rather than milliseconds?)",
                self.name
            )));
        }
        Ok(at)
    }
}

/// A series as text: `name{k="v",...}`, as Prometheus writes it.
pub fn series_key(name: &str, labels: &Labels) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect();
    format!("{name}{{{}}}", inner.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, value: f64, at: Option<u64>, labels: &[(&str, &str)]) -> NewSample {
        NewSample {
            name: name.into(),
            value,
            at,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn bad_samples_are_refused_with_what_is_wrong() {
        let now = 1_800_000_000_000;
        let ok = sample("agent.cost_usd", 1.5, None, &[("agent", "alfred")]);
        assert_eq!(ok.check(now, 0).unwrap(), now);
        let long_name = "a".repeat(MAX_NAME_BYTES + 1);
        let many: Vec<(String, String)> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".into()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (&**k, &**v)).collect();
        let long_value = "v".repeat(MAX_LABEL_VALUE_BYTES + 1);
        for (bad, says) in [
            (sample("x", f64::NAN, None, &[]), "finite"),
            (sample("x", f64::INFINITY, None, &[]), "finite"),
            (sample("", 1.0, None, &[]), "empty"),
            (sample("1x", 1.0, None, &[]), "start with a letter"),
            (sample("a b", 1.0, None, &[]), "holds ' '"),
            (sample(&long_name, 1.0, None, &[]), "at most 200 bytes"),
            (sample("x", 1.0, None, &many), "at most 16 labels"),
            (sample("x", 1.0, None, &[("a-b", "v")]), "label name"),
            (sample("x", 1.0, None, &[("__name", "v")]), "reserved"),
            (sample("x", 1.0, None, &[("a", "")]), "empty"),
            (sample("x", 1.0, None, &[("a", &long_value)]), "at most 256"),
            (sample("x", 1.0, Some(now + 3_600_000), &[]), "ahead"),
            (sample("x", 1.0, Some(5), &[]), "older than the host takes"),
        ] {
            let err = bad.check(now, 1_000).unwrap_err().to_string();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }

    #[test]
    fn a_series_prints_as_prometheus_writes_it() {
        let labels: Labels = [
            ("b".to_string(), "2".to_string()),
            ("a".into(), "x\"y".into()),
        ]
        .into_iter()
        .collect();
        assert_eq!(series_key("m", &labels), r#"m{a="x\"y",b="2"}"#);
        assert_eq!(series_key("m", &Labels::new()), "m");
    }

    #[test]
    fn contradictory_retention_settings_are_refused() {
        KpiConfig::default().check().unwrap();
        let err = KpiConfig {
            downsample_after: Duration::from_secs(40 * 24 * 3600),
            ..KpiConfig::default()
        }
        .check()
        .unwrap_err();
        assert!(err.contains("shorter than --kpi-retention"), "{err}");
    }
}
