//! Per-skill call counters and latency percentiles, lock-free.
//!
//! Latencies of the most recent [`WINDOW`] calls are kept in a ring of atomics;
//! percentiles are computed from that window when someone asks, so the hot
//! path is two atomic adds and one store.

use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Number of recent calls the percentiles are computed over.
pub const WINDOW: usize = 1024;

/// Counters of one skill.
pub struct Stats {
    invocations: AtomicU64,
    errors: AtomicU64,
    next: AtomicU64,
    /// Latencies in microseconds (saturating at ~71 minutes).
    samples: Box<[AtomicU32]>,
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
            errors: AtomicU64::new(0),
            next: AtomicU64::new(0),
            samples: (0..WINDOW).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

impl Stats {
    /// Records one call.
    pub fn record(&self, latency: Duration, ok: bool) {
        self.invocations.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) as usize % WINDOW;
        let micros = u32::try_from(latency.as_micros())
            .unwrap_or(u32::MAX)
            .max(1);
        self.samples[slot].store(micros, Ordering::Relaxed);
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
            stats.record(Duration::from_millis(ms), ms % 10 != 0);
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
            stats.record(Duration::from_secs(1), true);
        }
        for _ in 0..WINDOW {
            stats.record(Duration::from_millis(1), true);
        }
        assert_eq!(stats.snapshot().p99_ms, Some(1.0));
    }
}
