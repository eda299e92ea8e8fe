//! What a memory is: its text, namespace, metadata and id, and the checks a
//! new one passes before anything is written.
//!
//! A memory's id is derived from its namespace and its normalised text
//! (sha256, the first 16 bytes written as a UUID, which both Qdrant Edge and
//! Qdrant server accept as a point id). Storing the same text in the same
//! namespace again therefore finds the same point: re-ingesting is
//! idempotent, and the API reports the store as a duplicate.

use super::namespace::Namespace;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Longest text of one memory, in bytes.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Most metadata pairs on one memory (or in one filter).
pub const MAX_METADATA_PAIRS: usize = 32;
/// Longest metadata key, in bytes.
pub const MAX_METADATA_KEY: usize = 64;
/// Longest metadata value, in bytes.
pub const MAX_METADATA_VALUE: usize = 1024;

/// Metadata of a memory: text keys to text values.
pub type Metadata = BTreeMap<String, String>;

/// A memory about to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMemory {
    /// The derived id.
    pub id: String,
    /// The text, trimmed.
    pub text: String,
    /// Where it goes.
    pub namespace: Namespace,
    /// Its metadata, checked.
    pub metadata: Metadata,
    /// When it was said or stored, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Who stored it: `api`, `cli`, `skill:<name>`, `ingest`, `import`.
    pub source: String,
}

impl NewMemory {
    /// Checks the text and metadata and derives the id.
    pub fn new(
        text: &str,
        namespace: Namespace,
        metadata: Metadata,
        created_at_ms: u64,
        source: impl Into<String>,
    ) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the text is empty".to_string());
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(format!(
                "the text is {} bytes; a memory holds at most {MAX_TEXT_BYTES} bytes (64 KiB)",
                text.len()
            ));
        }
        check_metadata(&metadata)?;
        Ok(NewMemory {
            id: memory_id(&namespace, text),
            text: text.to_string(),
            namespace,
            metadata,
            created_at_ms,
            source: source.into(),
        })
    }
}

/// A stored memory, as read back.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MemoryRecord {
    /// Its id.
    pub id: String,
    /// Its text.
    pub text: String,
    /// Its namespace, as text.
    pub namespace: String,
    /// Its metadata.
    #[schema(value_type = BTreeMap<String, String>)]
    pub metadata: Metadata,
    /// When it was stored (or said), in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// Who stored it.
    pub source: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Hit {
    /// The memory.
    #[serde(flatten)]
    pub record: MemoryRecord,
    /// The ranking score, higher is better.
    pub score: f32,
    /// The BM25 score, when the query's words matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bm25: Option<f32>,
    /// The cosine similarity, when dense vectors are on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dense: Option<f32>,
}

/// Lower case with every run of white space made one space: what "the same
/// text" means for ids and de-duplication.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// The id of `text` in `namespace`.
pub fn memory_id(namespace: &Namespace, text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(namespace.to_string().as_bytes());
    hasher.update([0u8]);
    hasher.update(normalise(text).as_bytes());
    let digest = hasher.finalize();
    let h = hex::encode(&digest[..16]);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Checks that `id` looks like a memory id (a UUID), so a typo is a clear
/// error and not a silent miss.
pub fn check_id(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    let ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a memory id (ids look like 0f8fad5b-d9cb-469f-a165-70867728950e)"
        ))
    }
}

/// Checks metadata (or a filter): sizes, and keys a payload path can hold.
pub fn check_metadata(metadata: &Metadata) -> Result<(), String> {
    if metadata.len() > MAX_METADATA_PAIRS {
        return Err(format!(
            "{} metadata pairs; at most {MAX_METADATA_PAIRS} are allowed",
            metadata.len()
        ));
    }
    for (key, value) in metadata {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_METADATA_KEY
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !key_ok {
            return Err(format!(
                "invalid metadata key `{key}`: use 1 to {MAX_METADATA_KEY} of A-Z, a-z, 0-9, \
                 `_`, `-`"
            ));
        }
        if value.len() > MAX_METADATA_VALUE {
            return Err(format!(
                "metadata `{key}` is {} bytes; values hold at most {MAX_METADATA_VALUE}",
                value.len()
            ));
        }
    }
    Ok(())
}

/// Reads metadata from a JSON object: text values as they are, numbers and
/// booleans as their JSON text; anything nested is an error.
pub fn metadata_from_json(value: &serde_json::Value) -> Result<Metadata, String> {
    let serde_json::Value::Object(map) = value else {
        return Err("metadata must be a JSON object of keys to values".to_string());
    };
    let mut out = Metadata::new();
    for (key, value) in map {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "metadata `{key}` must be a string, number or boolean"
                ))
            }
        };
        out.insert(key.clone(), text);
    }
    check_metadata(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_namespace_same_id() {
        let a = memory_id(&Namespace::Org, "Deploys need  a green\nCI run");
        let b = memory_id(&Namespace::Org, "deploys need a green ci run ");
        let c = memory_id(&Namespace::User("7".into()), "deploys need a green ci run");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(check_id(&a).is_ok(), "{a}");
        assert!(check_id("not-an-id").is_err());
    }

    #[test]
    fn bad_texts_and_metadata_are_refused() {
        let new = |t: &str, m: Metadata| NewMemory::new(t, Namespace::Org, m, 0, "test");
        assert!(new("  \n ", Metadata::new()).unwrap_err().contains("empty"));
        let long = "x".repeat(MAX_TEXT_BYTES + 1);
        assert!(new(&long, Metadata::new()).unwrap_err().contains("64 KiB"));
        assert!(new(&"x".repeat(MAX_TEXT_BYTES), Metadata::new()).is_ok());
        let bad_key = Metadata::from([("a.b".to_string(), "v".to_string())]);
        assert!(new("ok", bad_key).unwrap_err().contains("metadata key"));
        let many: Metadata = (0..=MAX_METADATA_PAIRS)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(new("ok", many).is_err());
    }

    #[test]
    fn metadata_from_json_scalars_only() {
        let m = metadata_from_json(&serde_json::json!({"a": "x", "n": 3, "b": true})).unwrap();
        assert_eq!(m["n"], "3");
        assert_eq!(m["b"], "true");
        assert!(metadata_from_json(&serde_json::json!({"a": [1]})).is_err());
        assert!(metadata_from_json(&serde_json::json!([1])).is_err());
    }
}
