//! Limits and sizing of the runtime, with the defaults a fresh host uses.

use super::{ComponentBounds, RuntimeError};
use std::time::Duration;

/// Sizing of the engine, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Instances that may run at once; sizes the pooling allocator.
    pub max_instances: u32,
    /// Deadline of a call when the skill's manifest does not set one.
    pub default_deadline: Duration,
    /// Linear-memory limit of a call when the manifest does not set one.
    pub default_memory_bytes: u64,
    /// The largest deadline a manifest may ask for.
    pub max_deadline: Duration,
    /// The largest memory limit a manifest may ask for.
    pub max_memory_bytes: u64,
    /// Granularity of deadlines.
    pub epoch_tick: Duration,
    /// Log records (`log` interface, stdout and stderr lines together) one
    /// call may write; the rest are counted and dropped.
    pub log_records_per_call: u32,
    /// Instances, memories and tables one component may create per call;
    /// a component over them is refused when it loads.
    pub component_bounds: ComponentBounds,
    /// The largest output a call may return, in bytes.
    pub max_output_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            max_instances: 256,
            default_deadline: Duration::from_secs(10),
            default_memory_bytes: 64 << 20,
            max_deadline: Duration::from_secs(300),
            max_memory_bytes: 1 << 30,
            epoch_tick: Duration::from_millis(10),
            log_records_per_call: 1000,
            component_bounds: ComponentBounds::default(),
            max_output_bytes: 16 << 20,
        }
    }
}

impl RuntimeConfig {
    /// Checks that the numbers make sense together.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |m: String| Err(RuntimeError::Config(m));
        if self.max_instances == 0 {
            return bad("max_instances must be at least 1".into());
        }
        if self.default_memory_bytes > self.max_memory_bytes {
            return bad(format!(
                "the default memory limit ({} bytes) is above the maximum ({} bytes)",
                self.default_memory_bytes, self.max_memory_bytes
            ));
        }
        if self.default_deadline > self.max_deadline || self.default_deadline.is_zero() {
            return bad(format!(
                "the default deadline ({:?}) must be above zero and at most the maximum ({:?})",
                self.default_deadline, self.max_deadline
            ));
        }
        if self.epoch_tick.is_zero() {
            return bad("epoch_tick must be above zero".into());
        }
        let b = &self.component_bounds;
        if b.core_instances == 0 || b.memories == 0 || b.tables == 0 {
            return bad("the per-component bounds must each be at least 1".into());
        }
        if self.max_output_bytes == 0 {
            return bad("the output limit must be above zero".into());
        }
        Ok(())
    }

    /// The limits of a skill whose manifest sets nothing.
    pub fn default_limits(&self) -> CallLimits {
        CallLimits {
            deadline: self.default_deadline,
            memory_bytes: self.default_memory_bytes,
            log_records: self.log_records_per_call,
        }
    }

    /// What the instance pool holds in all: the budget that per-skill
    /// shares are cut from.
    pub fn pool(&self) -> PoolCapacity {
        let n = self.max_instances;
        PoolCapacity {
            component_instances: n,
            core_instances: n.saturating_mul(8),
            memories: n.saturating_mul(2),
            tables: n.saturating_mul(4),
        }
    }
}

/// The slots of the instance pool, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCapacity {
    /// Component instances (one per call).
    pub component_instances: u32,
    /// Core module instances.
    pub core_instances: u32,
    /// Linear memories.
    pub memories: u32,
    /// Tables.
    pub tables: u32,
}

/// What one call of one skill may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock time from instantiation to the answer.
    pub deadline: Duration,
    /// Bytes of linear memory and tables, all the call's memories and
    /// tables together.
    pub memory_bytes: u64,
    /// Log records the call may write.
    pub log_records: u32,
}
