//! Reading a component without running it (its kind, imports, exports and
//! the embedded `darkfactory:manifest` custom section), and writing that
//! section.
//!
//! Read by the loader (to find the manifest and to reject core modules with
//! a helpful message) and by `darkfactory inspect`; written by the workflow
//! compiler and `darkfactory manifest embed`.

use serde::Serialize;
use wasmparser::{Parser, Payload};

/// Name of the custom section the SDK writes the manifest into.
pub const MANIFEST_SECTION: &str = "darkfactory:manifest";

/// What a component declares at its top level.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ComponentInfo {
    /// Names of the component's top-level imports.
    pub imports: Vec<String>,
    /// Names of the component's top-level exports.
    pub exports: Vec<String>,
    /// The embedded manifest, as TOML text, when present.
    pub manifest: Option<String>,
    /// Core module instances the component creates (at every depth), what
    /// a call of it takes from the instance pool.
    #[serde(skip)]
    pub core_instances: u32,
    /// Whether it instantiates components of its own (whose core instances
    /// the count above does not multiply out).
    #[serde(skip)]
    pub instantiates_components: bool,
}

/// Parses `bytes` as a component; core modules and garbage are errors that
/// say what the file is and how to get a component.
pub fn inspect_component(bytes: &[u8]) -> Result<ComponentInfo, String> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            "the file is not WebAssembly (no `\\0asm` header)".to_string()
        });
    }
    if Parser::is_core_wasm(bytes) {
        return Err(
            "the file is a core Wasm module, not a component; build the skill with \
             `--target wasm32-wasip2` (or run `wasm-tools component new`)"
                .to_string(),
        );
    }
    let mut info = ComponentInfo::default();
    // Depth of nested modules/components: only depth 0 is the top level, but
    // the manifest is found at any depth (the SDK writes it into the core
    // module, which the component embeds).
    let mut depth = 0usize;
    let mut top_level = None;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| format!("malformed component: {e}"))?;
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| format!("malformed import: {e}"))?;
                    info.imports.push(import.name.full_name().into_owned());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(|e| format!("malformed export: {e}"))?;
                    info.exports.push(export.name.full_name().into_owned());
                }
            }
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    let instance = instance.map_err(|e| format!("malformed instance: {e}"))?;
                    if matches!(instance, wasmparser::Instance::Instantiate { .. }) {
                        info.core_instances = info.core_instances.saturating_add(1);
                    }
                }
            }
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader {
                    let instance = instance.map_err(|e| format!("malformed instance: {e}"))?;
                    if matches!(instance, wasmparser::ComponentInstance::Instantiate { .. }) {
                        info.instantiates_components = true;
                    }
                }
            }
            Payload::CustomSection(reader) if reader.name() == MANIFEST_SECTION => {
                let text = std::str::from_utf8(reader.data())
                    .map_err(|_| format!("the `{MANIFEST_SECTION}` section is not UTF-8"))?;
                // One at the top level (`darkfactory manifest embed`) wins
                // over one inside a core module (the Rust SDK's).
                if depth == 0 {
                    top_level = Some(text.to_string());
                } else if top_level.is_none() {
                    info.manifest = Some(text.to_string());
                }
            }
            _ => {}
        }
    }
    if top_level.is_some() {
        info.manifest = top_level;
    }
    Ok(info)
}

/// Appends `text` to a component as its `darkfactory:manifest` section.
pub fn append_manifest(component: &mut Vec<u8>, text: &str) {
    append_custom_section(component, MANIFEST_SECTION, text.as_bytes());
}

/// Appends a custom section `name` holding `data` to a component (or a
/// module): the same code, other bytes.
pub fn append_custom_section(component: &mut Vec<u8>, name: &str, data: &[u8]) {
    use wasm_encoder::Section;
    wasm_encoder::CustomSection {
        name: name.into(),
        data: data.into(),
    }
    .append_to(component);
}

/// `component` with its top-level manifest sections replaced by one
/// holding `text` (a section inside a core module stays, and is outranked
/// by the top-level one). A component's top level is a sequence of
/// sections (id, LEB128 size, contents) after the 8-byte header.
pub fn replace_manifest(component: &[u8], text: &str) -> Result<Vec<u8>, String> {
    let malformed = || "malformed component: a section runs past the end".to_string();
    let mut out = component.get(..8).ok_or_else(malformed)?.to_vec();
    let mut at = 8;
    while at < component.len() {
        let id = component[at];
        let (size, len) = read_leb128(&component[at + 1..]).ok_or_else(malformed)?;
        let end = (at + 1 + len)
            .checked_add(size)
            .filter(|end| *end <= component.len())
            .ok_or_else(malformed)?;
        let contents = &component[at + 1 + len..end];
        let is_manifest = id == 0
            && read_leb128(contents)
                .is_some_and(|(n, l)| contents.get(l..l + n) == Some(MANIFEST_SECTION.as_bytes()));
        if !is_manifest {
            out.extend_from_slice(&component[at..end]);
        }
        at = end;
    }
    append_manifest(&mut out, text);
    Ok(out)
}

/// An unsigned LEB128 number (at most 32 bits) and the bytes it took.
fn read_leb128(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut value = 0usize;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::inspect_component;

    #[test]
    fn rejects_non_wasm_and_core_modules_with_advice() {
        assert!(inspect_component(b"").unwrap_err().contains("empty"));
        assert!(inspect_component(b"hello world")
            .unwrap_err()
            .contains("not WebAssembly"));
        let core = b"\0asm\x01\0\0\0";
        assert!(inspect_component(core)
            .unwrap_err()
            .contains("wasm32-wasip2"));
    }

    #[test]
    fn a_replaced_manifest_is_the_only_top_level_one() {
        let component = wat::parse_str("(component)").unwrap();
        let mut once = component.clone();
        super::append_manifest(&mut once, "[skill]\ndeadline_ms = 1\n");
        let twice = super::replace_manifest(&once, "[skill]\ndeadline_ms = 2\n").unwrap();
        let info = inspect_component(&twice).unwrap();
        assert_eq!(info.manifest.as_deref(), Some("[skill]\ndeadline_ms = 2\n"));
        assert_eq!(twice.len(), once.len());
        assert!(super::replace_manifest(&once[..once.len() - 3], "x").is_err());
    }

    #[test]
    fn truncated_component_is_malformed() {
        // A component header followed by a cut-off section.
        let bytes = b"\0asm\x0d\0\x01\0\x07\x10\x01";
        assert!(inspect_component(bytes).unwrap_err().contains("malformed"));
    }
}
