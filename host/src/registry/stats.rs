//! Per-skill call counters, latency percentiles and a latency histogram,
//! lock-free on the path of a call that succeeds.
//!
//! Latencies of the most recent [`WINDOW`] calls are kept in a ring of atomics;
//! percentiles are computed from that window when someone asks. Every call
//! also counts in one bucket of [`BUCKETS`] (what `/metrics` exposes as a
//! histogram), and a call that fails counts under its error's code (a
//! skill's own codes are kept up to [`MAX_CODES`]; the rest count as
//! `other`).

use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Number of recent calls the percentiles are computed over.
pub const WINDOW: usize = 1024;

/// The histogram's upper bounds, in seconds (a last bucket takes the rest).
pub const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Distinct error codes counted per skill; more count as `other`.
pub const MAX_CODES: usize = 32;

/// What `/metrics` shows of one skill.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillMetrics {
    /// The skill.
    pub name: String,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls that failed, by code.
    pub errors: Vec<(String, u64)>,
    /// `(upper bound in seconds, calls in that bucket)`, the last bound
    /// infinite; not cumulative.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all calls' latencies, in seconds.
    pub sum_seconds: f64,
    /// Calls running now.
    pub in_flight: u32,
}

/// Counters of one skill.
pub struct Stats {
    invocations: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    next: AtomicU64,
    /// Latencies in microseconds (saturating at ~71 minutes).
    samples: Box<[AtomicU32]>,
    /// Calls per histogram bucket, the last one past every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Latencies summed, in microseconds.
    sum_micros: AtomicU64,
    /// Failed calls by code.
    codes: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
}

/// A snapshot for the API.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct StatsSnapshot {
    /// Calls that reached the skill.
    pub invocations: u64,
    /// Calls that ended in an error of any kind.
    pub errors: u64,
    /// Median latency of the recent window, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency of the recent window, in milliseconds.
    pub p99_ms: Option<f64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            invocations: AtomicU64::new(0),
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            next: AtomicU64::new(0),
            samples: (0..WINDOW).map(|_| AtomicU32::new(0)).collect(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
            codes: Default::default(),
        }
    }
}

impl Stats {
    /// Records one call: `Ok`, or `Err` with its error's code.
    pub fn record(&self, latency: Duration, outcome: Result<(), &str>) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        if outcome.is_ok() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(code) = outcome {
            self.errors.fetch_add(1, Ordering::Relaxed);
            let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
            let key = if codes.contains_key(code) || codes.len() < MAX_CODES {
                code
            } else {
                "other"
            };
            *codes.entry(key.to_string()).or_default() += 1;
        }
        let seconds = latency.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
        let slot = self.next.fetch_add(1, Ordering::Relaxed) as usize % WINDOW;
        let micros = u32::try_from(latency.as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        self.samples[slot].store(micros, Ordering::Relaxed);
    }

    /// The counters and the histogram of skill `name`, with `in_flight`
    /// calls running.
    pub fn metrics(&self, name: &str, in_flight: u32) -> SkillMetrics {
        let errors: Vec<(String, u64)> = self
            .codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(c, n)| (c.clone(), *n))
            .collect();
        let bounds = BUCKETS.iter().copied().chain([f64::INFINITY]);
        SkillMetrics {
            name: name.to_string(),
            ok: self.ok.load(Ordering::Relaxed),
            errors,
            buckets: bounds
                .zip(&self.buckets)
                .map(|(b, n)| (b, n.load(Ordering::Relaxed)))
                .collect(),
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
            in_flight,
        }
    }

    /// Counters and percentiles now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let mut window: Vec<u32> = self
            .samples
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|v| *v > 0)
            .collect();
        window.sort_unstable();
        let pct = |p: f64| -> Option<f64> {
            if window.is_empty() {
                return None;
            }
            let rank = ((p * window.len() as f64).ceil() as usize).clamp(1, window.len());
            Some(window[rank - 1] as f64 / 1000.0)
        };
        StatsSnapshot {
            invocations: self.invocations.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_over_the_window() {
        let stats = Stats::default();
        assert_eq!(stats.snapshot().p50_ms, None);
        for ms in 1..=100 {
            stats.record(
                Duration::from_millis(ms),
                if ms % 10 != 0 { Ok(()) } else { Err("trap") },
            );
        }
        let s = stats.snapshot();
        assert_eq!(s.invocations, 100);
        assert_eq!(s.errors, 10);
        assert_eq!(s.p50_ms, Some(50.0));
        assert_eq!(s.p99_ms, Some(99.0));
    }

    #[test]
    fn window_forgets_old_calls() {
        let stats = Stats::default();
        for _ in 0..WINDOW {
            stats.record(Duration::from_secs(1), Ok(()));
        }
        for _ in 0..WINDOW {
            stats.record(Duration::from_millis(1), Ok(()));
        }
        assert_eq!(stats.snapshot().p99_ms, Some(1.0));
    }
}
