//! The host's one clock for what it measures over time: KPI samples, the
//! factory's evaluations, how long a card sat in a list, how many heartbeat
//! cycles an agent missed.
//!
//! It is the system clock in production. A host started with a manual
//! clock (`serve --test-clock START_MS`, which the end-to-end tests use)
//! reads a time that moves only when it is told to, so a test can let 48
//! hours pass in a millisecond; `POST /api/clock` moves it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The time source, shared by clones.
#[derive(Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.manual {
            None => f.write_str("Clock::System"),
            Some(ms) => write!(f, "Clock::Manual({})", ms.load(Ordering::SeqCst)),
        }
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that reads `start_ms` until it is moved.
    pub fn manual(start_ms: u64) -> Self {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// Whether this clock moves only when told to.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => super::now_ms(),
        }
    }

    /// Moves a manual clock forward by `ms` and answers the new time;
    /// `None` on the system clock, which nothing moves.
    pub fn advance(&self, ms: u64) -> Option<u64> {
        let manual = self.manual.as_ref()?;
        Some(manual.fetch_add(ms, Ordering::SeqCst).saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        assert_eq!(other.advance(500), Some(1_500));
        assert_eq!(clock.now_ms(), 1_500);
        assert!(clock.is_manual());
        let system = Clock::system();
        assert_eq!(system.advance(1), None);
        assert!(system.now_ms() > 1_700_000_000_000);
    }
}
