//! Test skill `trap`: panics, which traps the instance; with `{"fail": "error"}`
//! it returns a skill error instead; with `{"flood": N}` it writes N records
//! to each of stdout, stderr and the `log` interface; with anything else it
//! answers after writing one record to each.

use darkfactory_sdk::{export_skill, log, SkillError};
use serde_json::{json, Value};

fn trap(input: Value) -> Result<Value, SkillError> {
    if let Some(n) = input.get("flood").and_then(Value::as_u64) {
        for i in 0..n {
            println!("flood {i} on stdout");
            eprintln!("flood {i} on stderr");
            log::info(&format!("flood {i} through the log interface"));
        }
        return Ok(json!({ "flooded": n }));
    }
    match input.get("fail").and_then(Value::as_str) {
        Some("panic") => panic!("the trap skill was asked to panic"),
        Some("error") => Err(SkillError::new(
            "asked-to-fail",
            "the trap skill was asked to fail",
        )),
        _ => {
            println!("trap skill says hello on stdout");
            eprintln!("trap skill says hello on stderr");
            log::warn("trap skill says hello through the log interface");
            Ok(json!({ "ok": true }))
        }
    }
}

export_skill!(trap);
