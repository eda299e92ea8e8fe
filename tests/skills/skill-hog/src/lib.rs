//! Test skill `hog`: allocates `{"mib": N}` mebibytes and touches every page;
//! the host's per-call memory limit must stop it.

use darkfactory_sdk::{export_skill, SkillError};
use serde_json::{json, Value};

fn hog(input: Value) -> Result<Value, SkillError> {
    let mib = input.get("mib").and_then(Value::as_u64).unwrap_or(1024);
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        blocks.push(vec![1u8; 1 << 20]);
    }
    let total: usize = blocks.iter().map(|b| b.len()).sum();
    Ok(json!({ "allocated": total }))
}

export_skill!(hog, memory_mib = 32);
