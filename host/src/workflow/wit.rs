//! The capabilities a workflow can call, read from the WIT contract itself.
//!
//! The host embeds `wit/` and reads it with `wit-parser`, so the checker
//! knows every function of every interface the `workflow` world imports, with
//! its parameters and result as [`Ty`]s: a new interface in `wit/` is
//! callable from workflows without a line of checker code. In a workflow,
//! WIT's kebab-case names are written in snake_case (`board.get_card`,
//! `in_list_longer_than`).

use super::types::{Record, Ty};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use wit_parser::{Resolve, SourceMap, Type, TypeDefKind, TypeId, WorldItem};

/// The WIT files of `darkfactory:skill`, as the host was built with them.
pub const WIT_FILES: [(&str, &str); 9] = [
    ("world.wit", include_str!("../../../wit/world.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("log.wit", include_str!("../../../wit/log.wit")),
    ("memory.wit", include_str!("../../../wit/memory.wit")),
    ("board.wit", include_str!("../../../wit/board.wit")),
    ("fleet.wit", include_str!("../../../wit/fleet.wit")),
    ("kpi.wit", include_str!("../../../wit/kpi.wit")),
    ("skills.wit", include_str!("../../../wit/skills.wit")),
    ("llm.wit", include_str!("../../../wit/llm.wit")),
];

/// The world workflows are checked against and the interpreter is built
/// for: `skill`, and any interface the host does not serve yet (none today).
pub const WORLD: &str = "workflow";

/// The version of the `darkfactory:skill` package the WIT declares.
pub const VERSION: &str = "0.1.0";

/// One callable function.
#[derive(Debug, Clone)]
pub struct Signature {
    /// Its name in WIT (kebab-case).
    pub wit_name: String,
    /// Parameters in order, names in snake_case.
    pub params: Vec<(String, Ty)>,
    /// What a successful call gives (`null` for none).
    pub result: Ty,
    /// The first line of its WIT doc comment.
    pub doc: String,
}

impl Signature {
    /// `name(param: type, ...) -> result`, for messages.
    pub fn render(&self, interface: &str) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect();
        format!(
            "{interface}.{}({}) -> {}",
            snake(&self.wit_name),
            params.join(", "),
            self.result
        )
    }
}

/// Every interface the `skill` world imports, by name, with its functions
/// by snake_case name.
#[derive(Debug)]
pub struct Interfaces(pub BTreeMap<String, BTreeMap<String, Signature>>);

impl Interfaces {
    /// The interfaces of the embedded WIT (read once).
    pub fn get() -> &'static Interfaces {
        static READ: OnceLock<Interfaces> = OnceLock::new();
        READ.get_or_init(|| Interfaces::read().expect("the embedded WIT is valid"))
    }

    fn read() -> Result<Interfaces, String> {
        let mut map = SourceMap::new();
        for (name, text) in WIT_FILES {
            map.push_str(name, text);
        }
        let group = map.parse().map_err(|(_, e)| format!("{e:?}"))?;
        let mut resolve = Resolve::default();
        let package = resolve.push_group(group).map_err(|e| format!("{e:?}"))?;
        let world = resolve
            .select_world(&[package], Some(WORLD))
            .map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for item in resolve.worlds[world].imports.values() {
            let WorldItem::Interface { id, .. } = item else {
                continue;
            };
            let iface = &resolve.interfaces[*id];
            let Some(name) = iface.name.clone() else {
                continue;
            };
            if iface.functions.is_empty() {
                continue;
            }
            let mut functions = BTreeMap::new();
            for (fname, f) in &iface.functions {
                let params = f
                    .params
                    .iter()
                    .map(|p| (snake(&p.name), ty(&resolve, &p.ty)))
                    .collect();
                let result = match f.result {
                    None => Ty::Null,
                    Some(Type::Id(id)) => match &resolve.types[id].kind {
                        TypeDefKind::Result(r) => {
                            r.ok.as_ref().map(|t| ty(&resolve, t)).unwrap_or(Ty::Null)
                        }
                        _ => ty(&resolve, &Type::Id(id)),
                    },
                    Some(ref t) => ty(&resolve, t),
                };
                let doc = f
                    .docs
                    .contents
                    .as_deref()
                    .and_then(|d| d.lines().next())
                    .unwrap_or("")
                    .to_string();
                functions.insert(
                    snake(fname),
                    Signature {
                        wit_name: fname.clone(),
                        params,
                        result,
                        doc,
                    },
                );
            }
            out.insert(name, functions);
        }
        // Another skill's input and output are JSON text in the WIT; in a
        // workflow they are values (the interpreter encodes and decodes).
        if let Some(invoke) = out.get_mut("skills").and_then(|f| f.get_mut("invoke")) {
            if let Some(input) = invoke.params.get_mut(1) {
                input.1 = Ty::Json;
            }
            invoke.result = Ty::Json;
        }
        Ok(Interfaces(out))
    }
}

/// `in-list-longer-than` → `in_list_longer_than`.
pub fn snake(name: &str) -> String {
    name.replace('-', "_")
}

fn ty(resolve: &Resolve, t: &Type) -> Ty {
    match t {
        Type::Bool => Ty::Bool,
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::S8
        | Type::S16
        | Type::S32
        | Type::S64 => Ty::Int,
        Type::F32 | Type::F64 => Ty::Float,
        Type::Char | Type::String => Ty::Str,
        Type::ErrorContext => Ty::Json,
        Type::Id(id) => typedef(resolve, *id),
    }
}

fn typedef(resolve: &Resolve, id: TypeId) -> Ty {
    let def = &resolve.types[id];
    match &def.kind {
        TypeDefKind::Record(r) => Ty::Record(Arc::new(Record {
            name: def.name.clone().unwrap_or_default(),
            fields: r
                .fields
                .iter()
                .map(|f| (snake(&f.name), ty(resolve, &f.ty)))
                .collect(),
        })),
        TypeDefKind::Option(t) => ty(resolve, t).optional(),
        TypeDefKind::List(Type::Id(inner)) if is_string_pair(resolve, *inner) => {
            Ty::Map(Box::new(Ty::Str))
        }
        TypeDefKind::List(t) => Ty::List(Box::new(ty(resolve, t))),
        TypeDefKind::Enum(_) => Ty::Str,
        TypeDefKind::Type(t) => ty(resolve, t),
        _ => Ty::Json,
    }
}

/// `tuple<string, string>`: a list of them is an object of strings.
fn is_string_pair(resolve: &Resolve, id: TypeId) -> bool {
    match &resolve.types[id].kind {
        TypeDefKind::Tuple(t) => t.types.len() == 2 && t.types.iter().all(|t| *t == Type::String),
        TypeDefKind::Type(Type::Id(inner)) => is_string_pair(resolve, *inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = WIT_FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn the_version_is_the_packages() {
        assert!(WIT_FILES[0]
            .1
            .contains(&format!("package darkfactory:skill@{VERSION};")));
    }

    #[test]
    fn signatures_come_from_the_wit() {
        let i = Interfaces::get();
        let cards = &i.0["board"]["cards"];
        assert_eq!(
            cards.render("board"),
            "board.cards(filter: card-filter) -> list<card>"
        );
        let Ty::Record(filter) = &cards.params[0].1 else {
            panic!()
        };
        assert_eq!(
            filter.field("in_list_longer_than"),
            Some(&Ty::Int.optional())
        );
        assert_eq!(
            i.0["memory"]["store"].params[2].1,
            Ty::Map(Box::new(Ty::Str))
        );
        assert_eq!(i.0["fleet"]["send_heartbeat"].result, Ty::Null);
        assert!(i.0["log"].contains_key("log"));
    }

    #[test]
    fn the_interpreter_has_glue_for_every_function() {
        let vm = super::super::emit::Interpreter::get().functions();
        for (iface, functions) in &Interfaces::get().0 {
            for sig in functions.values() {
                assert!(
                    vm.contains(&(iface.clone(), sig.wit_name.clone())),
                    "{iface}.{} has no glue in host/workflow-vm",
                    sig.wit_name
                );
            }
        }
    }
}
