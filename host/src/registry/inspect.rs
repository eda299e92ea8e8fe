//! Reading a component without running it: its kind, imports, exports and the
//! embedded `darkfactory:manifest` custom section.
//!
//! Used by the loader (to find the manifest and to reject core modules with a
//! helpful message) and by `darkfactory inspect`.

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
                info.manifest = Some(text.to_string());
            }
            _ => {}
        }
    }
    Ok(info)
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
    fn truncated_component_is_malformed() {
        // A component header followed by a cut-off section.
        let bytes = b"\0asm\x0d\0\x01\0\x07\x10\x01";
        assert!(inspect_component(bytes).unwrap_err().contains("malformed"));
    }
}
