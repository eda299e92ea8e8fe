//! The built skills a benchmark loads, and distinct copies of them (each
//! bench includes this file with `#[path]`).

use std::path::Path;

/// The component of example or test skill `skill`, built by `make skills`.
pub fn wasm(skill: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/skill")
        .join(format!("skill_{}.wasm", skill.replace('-', "_")));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run `make skills` first", path.display()))
}

/// Appends a custom section so the bytes (and the sha256) differ while the
/// component stays the same: a cache miss, a new compile, on demand.
pub fn with_nonce(bytes: &[u8], nonce: u64) -> Vec<u8> {
    let name = b"bench-nonce";
    let payload = nonce.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // LEB128 of a length < 128
    out.extend_from_slice(&section);
    out
}
