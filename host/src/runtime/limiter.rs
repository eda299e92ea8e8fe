//! What one call may hold: the total of its memories and tables, and how
//! many instances, memories and tables it may create.
//!
//! wasmtime's own `StoreLimits` bounds each linear memory on its own, so a
//! component with sixteen core instances could hold sixteen times a skill's
//! memory limit in one call. [`CallLimiter`] counts every memory and table of
//! the call's store against one budget: the bytes of all linear memories
//! plus a pointer's worth per table element (what wasmtime spends on one).
//! The counts bound what a component may create per call, the same bounds
//! the pooling allocator checks when a component is compiled, so that a
//! host on the on-demand allocator holds them too.

use wasmtime::ResourceLimiter;

/// The bytes one table element costs (wasmtime stores a pointer per
/// element).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// How many instances, memories and tables one component may create per
/// call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentBounds {
    /// Core module instances.
    pub core_instances: u32,
    /// Linear memories.
    pub memories: u32,
    /// Tables.
    pub tables: u32,
}

impl Default for ComponentBounds {
    fn default() -> Self {
        ComponentBounds {
            core_instances: 64,
            memories: 16,
            tables: 32,
        }
    }
}

/// A call went over its budget of memory and tables.
#[derive(Debug, thiserror::Error)]
#[error(
    "the call asked for {requested} bytes of linear memory and tables in all, over its limit \
     of {limit} bytes"
)]
pub struct OverBudget {
    /// The limit in force.
    pub limit: usize,
    /// What the call would have held.
    pub requested: usize,
}

/// The resource limiter of one call's store.
pub(crate) struct CallLimiter {
    budget: usize,
    used: usize,
    /// What the last approved growth added, taken back when it then fails.
    last_growth: usize,
    bounds: ComponentBounds,
}

impl CallLimiter {
    pub(crate) fn new(budget_bytes: u64, bounds: ComponentBounds) -> Self {
        CallLimiter {
            budget: usize::try_from(budget_bytes).unwrap_or(usize::MAX),
            used: 0,
            last_growth: 0,
            bounds,
        }
    }

    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let added = desired.saturating_sub(current);
        let requested = self.used.saturating_add(added);
        if requested > self.budget {
            return Err(wasmtime::Error::new(OverBudget {
                limit: self.budget,
                requested,
            }));
        }
        self.used = requested;
        self.last_growth = added;
        Ok(true)
    }

    fn undo_last_growth(&mut self) {
        self.used = self.used.saturating_sub(self.last_growth);
        self.last_growth = 0;
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past the memory's own maximum the growth fails anyway: `memory.grow`
        // answers -1, as the guest expects, and nothing is counted.
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.grow(current, desired)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last_growth();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.undo_last_growth();
        Ok(())
    }

    fn instances(&self) -> usize {
        self.bounds.core_instances as usize
    }

    fn memories(&self) -> usize {
        self.bounds.memories as usize
    }

    fn tables(&self) -> usize {
        self.bounds.tables as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut limiter = CallLimiter::new(64 << 20, ComponentBounds::default());
        assert!(limiter.memory_growing(0, 40 * MIB, None).unwrap());
        // A second memory of 40 MiB would make 80 MiB: over the budget.
        let err = limiter.memory_growing(0, 40 * MIB, None).unwrap_err();
        let over = err.downcast_ref::<OverBudget>().unwrap();
        assert_eq!(over.requested, 80 * MIB);
        assert!(limiter.memory_growing(0, 20 * MIB, None).unwrap());
        // Tables count a pointer per element.
        assert!(limiter.table_growing(0, 1000, None).unwrap());
        assert_eq!(limiter.used, 60 * MIB + 1000 * TABLE_ELEMENT_BYTES);
        assert!(limiter.memory_growing(40 * MIB, 44 * MIB, None).is_err());
    }

    #[test]
    fn a_growth_that_fails_is_not_counted() {
        let mut limiter = CallLimiter::new(64 << 20, ComponentBounds::default());
        assert!(limiter.memory_growing(0, MIB, None).unwrap());
        assert!(limiter.memory_growing(MIB, 2 * MIB, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("no"))
            .unwrap();
        assert_eq!(limiter.used, MIB);
        // Past the memory's own maximum: refused quietly, not counted.
        assert!(!limiter.memory_growing(MIB, 3 * MIB, Some(2 * MIB)).unwrap());
        assert_eq!(limiter.used, MIB);
    }
}
