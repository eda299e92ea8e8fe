//! Test skill `trap`: panics, which traps the instance; with `{"fail": "error"}`
//! it returns a skill error instead, and with anything else it answers after
//! writing to stdout, stderr and the `log` interface.

use darkfactory_sdk::{export_skill, log, SkillError};
use serde_json::{json, Value};

fn trap(input: Value) -> Result<Value, SkillError> {
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
