//! How many calls of one skill may run at once.
//!
//! Every call takes from the instance pool: one component instance, one
//! core instance per module it instantiates, and its memories and tables.
//! A skill may hold at most a quarter of each kind of slot, so that calls
//! of one skill (a loop until the deadline, a flood of requests) leave the
//! rest of the pool to the others. Within that share, its manifest's
//! `concurrency` may ask for less. A [`CallGate`] lets that many calls in
//! at once: a call that finds it full waits a moment for one to end.

use crate::runtime::{PoolCapacity, RuntimeConfig};
use crate::skill::ComponentInfo;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use wasmtime::component::Component;

/// The part of each kind of pool slot one skill may hold.
const SHARE_DIVISOR: u32 = 4;

/// What one call of a component takes from the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CallNeeds {
    core_instances: u32,
    memories: u32,
    tables: u32,
}

impl CallNeeds {
    /// What a call of `component` takes. When wasmtime cannot tell (a
    /// component that imports a module), the per-component bounds.
    pub(super) fn of(component: &Component, info: &ComponentInfo, config: &RuntimeConfig) -> Self {
        let bounds = config.component_bounds;
        let (memories, tables) = match component.resources_required() {
            Some(required) => (required.num_memories, required.num_tables),
            None => (bounds.memories, bounds.tables),
        };
        // A nested component instantiated several times creates its core
        // instances each time, which the file does not say: assume the bound.
        let core_instances = if info.instantiates_components {
            bounds.core_instances
        } else {
            info.core_instances.clamp(1, bounds.core_instances)
        };
        CallNeeds {
            core_instances,
            memories,
            tables,
        }
    }
}

/// The calls of a skill that may run at once: `asked` (its manifest's
/// `concurrency`) or, without it, as many as its share of the pool holds.
pub(super) fn concurrency(needs: &CallNeeds, asked: Option<u32>, pool: &PoolCapacity) -> u32 {
    let share = |total: u32, per_call: u32| match per_call {
        0 => u32::MAX,
        n => (total / SHARE_DIVISOR) / n,
    };
    let fits = share(pool.component_instances, 1)
        .min(share(pool.core_instances, needs.core_instances))
        .min(share(pool.memories, needs.memories))
        .min(share(pool.tables, needs.tables))
        .max(1);
    asked.map_or(fits, |asked| asked.min(fits)).max(1)
}

/// Lets at most `limit` calls run at once. Entering and leaving cost an
/// atomic operation each while there is room (no lock, unlike a tokio
/// semaphore's release); only a call that finds the gate full waits.
pub(super) struct CallGate {
    limit: AtomicU32,
    running: AtomicU32,
    waiting: AtomicU32,
    freed: Notify,
}

/// A call inside the gate; it leaves when this drops.
pub(super) struct Inside<'a>(&'a CallGate);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        let gate = self.0;
        gate.running.fetch_sub(1, Ordering::AcqRel);
        if gate.waiting.load(Ordering::Acquire) > 0 {
            gate.freed.notify_one();
        }
    }
}

impl CallGate {
    pub(super) fn new(limit: u32) -> Self {
        CallGate {
            limit: AtomicU32::new(limit.max(1)),
            running: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            freed: Notify::new(),
        }
    }

    /// Calls inside now.
    pub(super) fn running(&self) -> u32 {
        self.running.load(Ordering::Acquire)
    }

    /// Changes how many calls may be inside at once (a new version of the
    /// skill); calls inside stay, and count against it.
    pub(super) fn set_limit(&self, limit: u32) {
        self.limit.store(limit.max(1), Ordering::Release);
        self.freed.notify_waiters();
    }

    fn try_enter(&self) -> Option<Inside<'_>> {
        let limit = self.limit.load(Ordering::Acquire);
        self.running
            .try_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Inside(self))
    }

    /// Enters, waiting at most `wait` for a call to leave: `None` if none
    /// did.
    pub(super) async fn enter(&self, wait: Duration) -> Option<Inside<'_>> {
        if let Some(inside) = self.try_enter() {
            return Some(inside);
        }
        // Counted as waiting until this returns or is dropped.
        let _waiting = Waiting::new(&self.waiting);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(inside) = self.try_enter() {
                return Some(inside);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.try_enter();
            }
        }
    }
}

/// One call waiting at a gate, however its wait ends.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_admits_its_limit_and_the_next_when_one_leaves() {
        let gate = std::sync::Arc::new(CallGate::new(2));
        let a = gate.enter(Duration::ZERO).await.unwrap();
        let _b = gate.enter(Duration::ZERO).await.unwrap();
        assert!(gate.enter(Duration::from_millis(20)).await.is_none());
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.enter(Duration::from_secs(5)).await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(a);
        assert!(waiter.await.unwrap());
        assert_eq!(gate.running.load(Ordering::Acquire), 1);
        assert_eq!(gate.waiting.load(Ordering::Acquire), 0);
        // A wider gate lets the next in at once.
        gate.set_limit(3);
        assert!(gate.enter(Duration::ZERO).await.is_some());
    }

    fn pool() -> PoolCapacity {
        RuntimeConfig::default().pool()
    }

    #[test]
    fn a_small_skill_gets_a_quarter_of_the_component_instances() {
        let echo = CallNeeds {
            core_instances: 18,
            memories: 1,
            tables: 2,
        };
        // 256 instances: 64; 2048 core instances / 4 / 18 = 28.
        assert_eq!(concurrency(&echo, None, &pool()), 28);
        let floor = CallNeeds {
            core_instances: 1,
            memories: 1,
            tables: 0,
        };
        assert_eq!(concurrency(&floor, None, &pool()), 64);
        assert_eq!(concurrency(&floor, Some(4), &pool()), 4);
        assert_eq!(concurrency(&floor, Some(1000), &pool()), 64);
    }

    #[test]
    fn a_heavy_skill_gets_at_least_one_call_and_no_more_than_its_share() {
        let heavy = CallNeeds {
            core_instances: 64,
            memories: 16,
            tables: 32,
        };
        // 2048 / 4 / 64 = 8 core-instance shares; 512 / 4 / 16 = 8 memory
        // shares; 1024 / 4 / 32 = 8 table shares.
        assert_eq!(concurrency(&heavy, None, &pool()), 8);
        let tiny_pool = PoolCapacity {
            component_instances: 2,
            core_instances: 16,
            memories: 4,
            tables: 8,
        };
        assert_eq!(concurrency(&heavy, None, &tiny_pool), 1);
    }
}
