//! From a checked program to a component, without a Rust toolchain.
//!
//! The host carries the workflow interpreter as a core Wasm module (built by
//! `host/build.rs` from `host/workflow-vm`). A workflow's component is that
//! module with three changes, then wrapped by `wit-component`:
//!
//! - the program (JSON) is added as a data segment in new pages above the
//!   module's initial memory, which its allocator never hands out, and the
//!   body of `darkfactory_workflow_program` is replaced by a constant that
//!   says where it is;
//! - imports of capability functions the workflow does not call are removed
//!   (calls to them, which the program never makes, go to a trapping stub),
//!   so the component imports only the interfaces the workflow uses and is
//!   held to deny-by-default grants like any skill;
//! - custom sections other than the WIT metadata are dropped.
//!
//! Every step is a pure function of the program and the interpreter's bytes,
//! so the same source gives the same component, byte for byte.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    CodeSection, CustomSection, DataCountSection, DataSection, ExportSection, Function,
    FunctionSection, ImportSection, Instruction, MemorySection, Module, TypeSection,
};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

/// The interpreter module every workflow component is made from.
pub const INTERPRETER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/workflow-vm.wasm"));

/// The export whose body the compiler replaces with the program's location.
const LOCATOR: &str = "darkfactory_workflow_program";
/// The WIT package the interpreter's imports come from.
pub const PACKAGE: &str = "darkfactory:skill";
const PAGE: u64 = 65_536;

/// Why emitting failed: a bug or a broken build, never the workflow's fault.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the workflow component: {0}")]
pub struct EmitError(String);

impl EmitError {
    pub(crate) fn new(message: String) -> Self {
        EmitError(message)
    }
}

/// What the compiler needs to know about the interpreter module.
#[derive(Debug)]
pub struct Interpreter {
    /// Function imports in order: `(module, name, type index)`.
    imports: Vec<(String, String, u32)>,
    /// The locator function's index.
    locator: u32,
    /// Initial pages of its memory.
    min_pages: u64,
}

impl Interpreter {
    /// The interpreter the host was built with (parsed once).
    pub fn get() -> &'static Interpreter {
        static PARSED: OnceLock<Interpreter> = OnceLock::new();
        PARSED.get_or_init(|| {
            Interpreter::parse(INTERPRETER)
                .expect("the built-in workflow interpreter is a valid module")
        })
    }

    fn parse(bytes: &[u8]) -> Result<Interpreter, EmitError> {
        let err = |e: wasmparser::BinaryReaderError| EmitError(e.to_string());
        let mut imports = Vec::new();
        let mut locator = None;
        let mut min_pages = None;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(err)? {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let import = import.map_err(err)?;
                        match import.ty {
                            TypeRef::Func(ty) => imports.push((
                                import.module.to_string(),
                                import.name.to_string(),
                                ty,
                            )),
                            _ => {
                                return Err(EmitError(format!(
                                    "unexpected non-function import {}",
                                    import.name
                                )))
                            }
                        }
                    }
                }
                Payload::MemorySection(section) => {
                    for memory in section {
                        min_pages = Some(memory.map_err(err)?.initial);
                    }
                }
                Payload::ExportSection(section) => {
                    for export in section {
                        let export = export.map_err(err)?;
                        if export.name == LOCATOR && export.kind == ExternalKind::Func {
                            locator = Some(export.index);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(Interpreter {
            imports,
            locator: locator
                .ok_or_else(|| EmitError(format!("the interpreter does not export `{LOCATOR}`")))?,
            min_pages: min_pages
                .ok_or_else(|| EmitError("the interpreter has no memory".into()))?,
        })
    }

    /// The capability functions the interpreter can call, as
    /// `(interface, function)` with WIT names.
    pub fn functions(&self) -> BTreeSet<(String, String)> {
        self.imports
            .iter()
            .filter_map(|(module, name, _)| Some((interface_of(module)?.to_string(), name.clone())))
            .collect()
    }
}

/// `darkfactory:skill/board@0.1.0` → `board`.
fn interface_of(module: &str) -> Option<&str> {
    let rest = module.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split('@').next().unwrap_or(rest))
}

/// Builds the component for `program_json` that may call exactly the
/// capability functions in `used` (`(interface, function)`, WIT names).
pub fn emit(program_json: &[u8], used: &BTreeSet<(String, String)>) -> Result<Vec<u8>, EmitError> {
    let vm = Interpreter::get();
    let core = core_module(vm, INTERPRETER, program_json, used)?;
    wit_component::ComponentEncoder::default()
        .module(&core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| EmitError(format!("{e:#}")))
}

/// Maps the interpreter's function indices to the new module's.
struct Remap {
    /// New index of each old import (kept ones first, in order).
    imports: Vec<u32>,
    /// Old imports that are removed.
    removed: u32,
}

impl Reencode for Remap {
    type Error = std::convert::Infallible;

    fn function_index(
        &mut self,
        func: u32,
    ) -> Result<u32, wasm_encoder::reencode::Error<Self::Error>> {
        Ok(match self.imports.get(func as usize) {
            Some(new) => *new,
            None => func - self.removed,
        })
    }
}

fn core_module(
    vm: &Interpreter,
    bytes: &[u8],
    program: &[u8],
    used: &BTreeSet<(String, String)>,
) -> Result<Vec<u8>, EmitError> {
    let err = |e: wasmparser::BinaryReaderError| EmitError(e.to_string());
    let reenc =
        |e: wasm_encoder::reencode::Error<std::convert::Infallible>| EmitError(e.to_string());
    let keep: Vec<bool> = vm
        .imports
        .iter()
        .map(|(module, name, _)| match interface_of(module) {
            Some(interface) => used.contains(&(interface.to_string(), name.clone())),
            None => true,
        })
        .collect();
    let kept = keep.iter().filter(|k| **k).count() as u32;
    let removed = vm.imports.len() as u32 - kept;
    let mut defined = 0u32;
    // Filled once the function section says how many functions are defined:
    // removed imports map to stubs appended after them.
    let mut stubs = 0u32;
    let mut remap = Remap {
        imports: Vec::new(),
        removed,
    };
    let mut next_kept = 0u32;
    let mut module = Module::new();
    let program_at = vm.min_pages * PAGE;
    let program_pages = (program.len() as u64).div_ceil(PAGE).max(1);
    let mut body_index = vm.imports.len() as u32;
    let mut pending_code: Option<CodeSection> = None;
    let mut data_added = false;
    if program_at + program.len() as u64 > u32::MAX as u64 {
        return Err(EmitError("the program does not fit a 32-bit memory".into()));
    }

    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(err)? {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::TypeSection(section) => {
                let mut types = TypeSection::new();
                RoundtripReencoder
                    .parse_type_section(&mut types, section)
                    .map_err(reenc)?;
                module.section(&types);
            }
            Payload::ImportSection(section) => {
                let mut imports = ImportSection::new();
                for (i, import) in section.into_imports().enumerate() {
                    let import = import.map_err(err)?;
                    if keep[i] {
                        RoundtripReencoder
                            .parse_import(&mut imports, import)
                            .map_err(reenc)?;
                    }
                }
                module.section(&imports);
            }
            Payload::FunctionSection(section) => {
                defined = section.count();
                let first_stub = kept + defined;
                remap.imports = keep
                    .iter()
                    .map(|k| {
                        if *k {
                            next_kept += 1;
                            next_kept - 1
                        } else {
                            stubs += 1;
                            first_stub + stubs - 1
                        }
                    })
                    .collect();
                let mut functions = FunctionSection::new();
                RoundtripReencoder
                    .parse_function_section(&mut functions, section)
                    .map_err(reenc)?;
                for (i, (_, _, ty)) in vm.imports.iter().enumerate() {
                    if !keep[i] {
                        functions.function(*ty);
                    }
                }
                module.section(&functions);
            }
            Payload::TableSection(section) => {
                let mut tables = wasm_encoder::TableSection::new();
                remap
                    .parse_table_section(&mut tables, section)
                    .map_err(reenc)?;
                module.section(&tables);
            }
            Payload::MemorySection(section) => {
                let mut memories = MemorySection::new();
                for memory in section {
                    let mut memory = RoundtripReencoder
                        .memory_type(memory.map_err(err)?)
                        .map_err(reenc)?;
                    memory.minimum += program_pages;
                    if memory.maximum.is_some_and(|max| max < memory.minimum) {
                        return Err(EmitError(
                            "the program does not fit the interpreter's memory".into(),
                        ));
                    }
                    memories.memory(memory);
                }
                module.section(&memories);
            }
            Payload::GlobalSection(section) => {
                let mut globals = wasm_encoder::GlobalSection::new();
                remap
                    .parse_global_section(&mut globals, section)
                    .map_err(reenc)?;
                module.section(&globals);
            }
            Payload::ExportSection(section) => {
                let mut exports = ExportSection::new();
                for export in section {
                    let export = export.map_err(err)?;
                    if export.name != LOCATOR {
                        remap.parse_export(&mut exports, export).map_err(reenc)?;
                    }
                }
                module.section(&exports);
            }
            Payload::StartSection { func, .. } => {
                let func = remap.function_index(func).map_err(reenc)?;
                module.section(&wasm_encoder::StartSection {
                    function_index: func,
                });
            }
            Payload::ElementSection(section) => {
                let mut elements = wasm_encoder::ElementSection::new();
                remap
                    .parse_element_section(&mut elements, section)
                    .map_err(reenc)?;
                module.section(&elements);
            }
            Payload::DataCountSection { count, .. } => {
                module.section(&DataCountSection { count: count + 1 });
            }
            Payload::CodeSectionStart { .. } => pending_code = Some(CodeSection::new()),
            Payload::CodeSectionEntry(body) => {
                let code = pending_code
                    .as_mut()
                    .ok_or_else(|| EmitError("a function body outside the code section".into()))?;
                if body_index == vm.locator {
                    let mut f = Function::new([]);
                    let packed = (program_at << 32) | program.len() as u64;
                    f.instruction(&Instruction::I64Const(packed as i64));
                    f.instruction(&Instruction::End);
                    code.function(&f);
                } else {
                    remap.parse_function_body(code, body).map_err(reenc)?;
                }
                body_index += 1;
                if body_index == vm.imports.len() as u32 + defined {
                    let mut code = pending_code.take().expect("checked above");
                    for _ in 0..stubs {
                        let mut f = Function::new([]);
                        f.instruction(&Instruction::Unreachable);
                        f.instruction(&Instruction::End);
                        code.function(&f);
                    }
                    module.section(&code);
                }
            }
            Payload::DataSection(section) => {
                let mut data = DataSection::new();
                remap
                    .parse_data_section(&mut data, section)
                    .map_err(reenc)?;
                data.active(
                    0,
                    &wasm_encoder::ConstExpr::i32_const(program_at as i32),
                    program.iter().copied(),
                );
                data_added = true;
                module.section(&data);
            }
            Payload::CustomSection(section) => {
                if section.name().starts_with("component-type") {
                    module.section(&CustomSection {
                        name: section.name().into(),
                        data: section.data().into(),
                    });
                }
            }
            other => {
                return Err(EmitError(format!(
                    "the interpreter has a section the compiler does not handle: {:?}",
                    other.as_section()
                )))
            }
        }
    }
    if !data_added {
        return Err(EmitError("the interpreter has no data section".into()));
    }
    Ok(module.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Runtime, RuntimeConfig};
    use darkfactory_workflow_vm::program::{Expr, Program, Stmt, StmtKind, FORMAT};
    use serde_json::json;

    fn program(body: Vec<Stmt>) -> Vec<u8> {
        serde_json::to_vec(&Program {
            format: FORMAT,
            name: "t".into(),
            defaults: vec![],
            slots: 1,
            body,
        })
        .unwrap()
    }

    #[test]
    fn the_interpreter_calls_every_capability_function() {
        let functions = Interpreter::get().functions();
        assert!(
            functions.contains(&("board".to_string(), "cards".to_string())),
            "{functions:?}"
        );
        assert!(functions.contains(&("log".to_string(), "log".to_string())));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_emitted_component_runs_and_imports_only_what_it_uses() {
        let body = vec![Stmt {
            line: 1,
            kind: StmtKind::Return(Expr::Object(vec![(
                "ok".into(),
                Expr::Field(Box::new(Expr::Var(0)), "x".into()),
            )])),
        }];
        let bytes = emit(&program(body.clone()), &BTreeSet::new()).unwrap();
        assert_eq!(
            bytes,
            emit(&program(body), &BTreeSet::new()).unwrap(),
            "deterministic"
        );
        let capabilities = |bytes: &[u8]| -> Vec<String> {
            let info = crate::skill::inspect_component(bytes).unwrap();
            // The world's `skill-error` type comes from `types` in every skill.
            info.imports
                .into_iter()
                .filter(|i| !i.contains("/types@") && i != "skill-error")
                .collect()
        };
        assert_eq!(capabilities(&bytes), Vec::<String>::new());
        let used = BTreeSet::from([("board".to_string(), "cards".to_string())]);
        let with_board = emit(&program(vec![]), &used).unwrap();
        assert_eq!(
            capabilities(&with_board),
            vec!["darkfactory:skill/board@0.1.0".to_string()]
        );

        let rt = Runtime::new(
            RuntimeConfig::default(),
            &crate::capabilities::add_to_linker,
        )
        .unwrap();
        let pre = rt.prepare(&rt.compile(&bytes).unwrap()).unwrap();
        let limits = rt.config().default_limits();
        let out = rt
            .invoke(&pre, &"t".into(), &limits, None, r#"{"x": 3}"#)
            .await
            .unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&out).unwrap(),
            json!({"ok": 3})
        );
    }
}
