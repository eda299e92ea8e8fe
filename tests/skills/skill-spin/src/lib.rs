//! Test skill `spin`: never returns unless `{"spin": false}`; the host's
//! epoch deadline must stop it.

use darkfactory_sdk::{export_skill, SkillError};
use serde_json::Value;

fn spin(input: Value) -> Result<Value, SkillError> {
    let mut n: u64 = 0;
    while input.get("spin") != Some(&Value::Bool(false)) {
        n = std::hint::black_box(n.wrapping_add(1));
    }
    Ok(Value::from(n))
}

export_skill!(spin, deadline_ms = 300);
