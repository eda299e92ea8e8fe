//! Nearest-rank percentiles of sorted latencies (each bench includes this
//! file with `#[path]`).

use std::time::Duration;

/// The `p` percentile (0 < p ≤ 1) of `sorted`, by nearest rank; zero when
/// there is no sample.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}
