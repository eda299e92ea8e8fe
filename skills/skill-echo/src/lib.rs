//! `echo`: answers with its input, unchanged.
//!
//! The smallest useful skill: a smoke test for a new host, the baseline of the
//! benchmarks, and a template for a new skill.

use darkfactory_sdk::{export_skill, SkillError};
use serde_json::Value;

fn echo(input: Value) -> Result<Value, SkillError> {
    Ok(input)
}

export_skill!(echo, deadline_ms = 1000, memory_mib = 16);
