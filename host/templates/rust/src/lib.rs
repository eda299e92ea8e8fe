//! `{{name}}`: counts the words of a text.
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the
//! component is `target/wasm32-wasip2/release/{{crate}}.wasm`. Test it with
//! `cargo test` (natively: no host needed).

use darkfactory_sdk::{export_skill, log, SkillError};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    text: String,
}

#[derive(Serialize, Debug, PartialEq)]
struct Output {
    words: usize,
}

fn count(input: Input) -> Result<Output, SkillError> {
    if input.text.len() > 1 << 20 {
        return Err(SkillError::new("too-long", "`text` is over 1 MiB"));
    }
    let words = input.text.split_whitespace().count();
    log::info(&format!("counted {words} words"));
    Ok(Output { words })
}

export_skill!(count,
    description = "Counts the words of a text",
    deadline_ms = 1000,
    input_schema = r#"{"type":"object","required":["text"],"properties":{"text":{"type":"string"}}}"#,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        let out = count(Input { text: "one two  three\nfour".into() }).unwrap();
        assert_eq!(out, Output { words: 4 });
    }
}
