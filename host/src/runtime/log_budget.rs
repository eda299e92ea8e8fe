//! How many log records one call may write.
//!
//! A skill in a loop that logs, or prints, could otherwise bury the host's log
//! (and its disk) in a few seconds. Every call gets a budget shared by the
//! `log` interface, stdout and stderr; records over it are counted, not
//! written, and one warning says how many were dropped once the call's
//! streams are gone.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The log budget of one call; clones share it.
#[derive(Clone)]
pub(crate) struct LogBudget(Arc<Inner>);

struct Inner {
    skill: Arc<str>,
    limit: u32,
    written: AtomicU32,
    dropped: AtomicU32,
}

impl LogBudget {
    pub(crate) fn new(skill: Arc<str>, limit: u32) -> Self {
        LogBudget(Arc::new(Inner {
            skill,
            limit,
            written: AtomicU32::new(0),
            dropped: AtomicU32::new(0),
        }))
    }

    /// Takes one record from the budget: `false` when it is spent.
    pub(crate) fn take(&self) -> bool {
        let inner = &self.0;
        let taken = inner
            .written
            .try_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < inner.limit).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let dropped = *self.dropped.get_mut();
        if dropped > 0 {
            tracing::warn!(
                target: "darkfactory::skill",
                skill = %self.skill,
                dropped,
                limit = self.limit,
                "log records dropped: the call wrote more than its budget (--log-records-per-call)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogBudget;

    #[test]
    fn the_budget_is_shared_by_clones_and_counts_what_it_drops() {
        let budget = LogBudget::new("t".into(), 2);
        let other = budget.clone();
        assert!(budget.take());
        assert!(other.take());
        assert!(!budget.take());
        assert!(!other.take());
        assert_eq!(
            budget.0.dropped.load(std::sync::atomic::Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn a_zero_budget_writes_nothing() {
        let budget = LogBudget::new("t".into(), 0);
        assert!(!budget.take());
    }
}
