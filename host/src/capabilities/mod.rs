//! Host capabilities: one folder per WIT interface of `darkfactory:skill`.
//!
//! Each folder has the same shape: `mod.rs` says what the capability is and
//! holds its service, `host.rs` implements the generated WIT trait, and each
//! backend lives in a file of its own. [`add_to_linker`] is the one list of
//! what the host offers a skill; [`Capabilities`] holds the services, and a
//! [`SkillContext`] (built per skill version from its manifest) is what one
//! call may use. Deny by default: a call of an interface the skill's
//! manifest does not grant answers that interface's `denied` error. A
//! component may import interfaces it is not granted (other languages'
//! toolchains import every interface of the world); they are listed as a
//! warning ([`ungranted_imports`]), and refused in strict mode. The one
//! exception is `llm`, which spends money: a component that imports it
//! without an `llm_tokens` grant is refused at load ([`refused_import`]).

pub mod board;
mod clock;
pub mod fleet;
pub mod grants;
pub mod http;
pub mod kpi;
pub mod llm;
pub mod log;
pub mod memory;
pub mod skills;

pub use clock::Clock;

use crate::runtime::{RuntimeError, SkillState};
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

/// Adds every capability interface to the skill linker.
pub fn add_to_linker(linker: &mut Linker<SkillState>) -> Result<(), RuntimeError> {
    use crate::runtime::bindings::darkfactory::skill as wit;
    let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
    wit::types::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::log::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::memory::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::board::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::fleet::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::skills::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::kpi::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::llm::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    Ok(())
}

/// The services behind the capability interfaces, shared by every call.
#[derive(Clone, Default)]
pub struct Capabilities {
    /// Agent memory; `None` on a host built without it (some tests).
    pub memory: Option<Arc<memory::Memory>>,
    /// The board; `None` on a host built without it (some tests).
    pub board: Option<Arc<dyn board::BoardBackend>>,
    /// The fleet registry; `None` on a host built without it (some tests).
    pub fleet: Option<Arc<fleet::Fleet>>,
    /// What calls other skills (the registry, once it is open).
    pub skills: skills::InvokerSlot,
    /// The KPI series; `None` on a host built without them (some tests).
    pub kpi: Option<Arc<kpi::KpiStore>>,
    /// The model; `None` on a host run without `--llm-url`.
    pub llm: Option<Arc<llm::Llm>>,
}

/// What one skill version may use: built from its manifest when it loads,
/// handed to every call of it.
pub struct SkillContext {
    /// The skill's name.
    pub skill: String,
    /// The host's services.
    pub capabilities: Capabilities,
    /// Its memory grants; `None` when it has none.
    pub memory: Option<memory::SkillGrants>,
    /// Its board grants; `None` when it has none.
    pub board: Option<board::BoardGrants>,
    /// Its fleet grant; `None` when it has none.
    pub fleet: Option<fleet::FleetGrant>,
    /// The skills it may call; `None` when it has no grant.
    pub skills: Option<skills::SkillsGrant>,
    /// The KPI series it may read; `None` when it has no grant.
    pub kpi: Option<kpi::KpiGrant>,
    /// The hosts it may send HTTP requests to; `None` when it has none.
    pub http: Option<Arc<http::HttpGrant>>,
    /// What one call may spend on the model; `None` when it has no grant.
    pub llm: Option<llm::LlmGrant>,
    /// Set for a shadow run (the factory's verification of a fix against
    /// the live host): the linker of such a run records each write here
    /// instead of applying it; reads go to the services as for any call.
    pub shadow: Option<Arc<ShadowLog>>,
}

/// What a shadow run would have changed, and what it logged.
#[derive(Debug, Default)]
pub struct ShadowLog {
    /// Each write, `interface.function` and its arguments, in order.
    pub writes: std::sync::Mutex<Vec<(String, serde_json::Value)>>,
    /// Its log lines.
    pub logs: std::sync::Mutex<Vec<String>>,
}

impl crate::runtime::CallCapabilities for SkillContext {
    fn outgoing_http(
        &self,
        deadline: tokio::time::Instant,
    ) -> Box<dyn wasmtime_wasi_http::WasiHttpHooks> {
        Box::new(http::OutgoingHooks::new(
            Arc::from(self.skill.as_str()),
            self.http.clone(),
            deadline,
        ))
    }
}

/// Milliseconds since the Unix epoch: the time stamps of memories, cards
/// and comments.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The WIT interface name of `memory`, as a component imports it.
pub const MEMORY_INTERFACE: &str = "darkfactory:skill/memory";
/// The WIT interface name of `board`.
pub const BOARD_INTERFACE: &str = "darkfactory:skill/board";
/// The WIT interface name of `fleet`.
pub const FLEET_INTERFACE: &str = "darkfactory:skill/fleet";
/// The WIT interface name of `skills`.
pub const SKILLS_INTERFACE: &str = "darkfactory:skill/skills";
/// The WIT interface name of `kpi`.
pub const KPI_INTERFACE: &str = "darkfactory:skill/kpi";
/// The WIT interface name of `llm`.
pub const LLM_INTERFACE: &str = "darkfactory:skill/llm";

/// The WIT interface name of outgoing HTTP (`wasi:http`).
pub const HTTP_INTERFACE: &str = "wasi:http/outgoing-handler";

/// What a manifest key grants an interface, as a sentence's end.
fn grant_hint(interface: &str) -> Option<&'static str> {
    Some(match interface {
        MEMORY_INTERFACE => {
            "grants no memory namespace: set `memory_read` and/or `memory_write` (e.g. \
             `memory_read = [\"agent\", \"org\"]`)"
        }
        BOARD_INTERFACE => {
            "grants no board list: set `board_read` and/or `board_write` (e.g. \
             `board_read = \"*\"`, `board_write = \"Backlog\"`)"
        }
        SKILLS_INTERFACE => {
            "grants no skill to call: set `skills` to the names it calls (e.g. \
             `skills = [\"text-stats\"]`), or `\"*\"`"
        }
        FLEET_INTERFACE => {
            "grants no fleet access: set `fleet = \"read\"` (agents and routes), or \
             `fleet = \"write\"` to send heartbeats too"
        }
        KPI_INTERFACE => {
            "grants no KPI series: set `kpi_read` to the series it reads (e.g. \
             `kpi_read = [\"ci.last_success_age_seconds\"]`), or `\"*\"`"
        }
        LLM_INTERFACE => {
            "grants no model: set `llm_tokens` to the most tokens one call may spend (e.g. \
             `llm_tokens = 4000`)"
        }
        HTTP_INTERFACE => {
            "allows no outgoing HTTP: set `allowed_outbound_hosts` (e.g. \
             `allowed_outbound_hosts = [\"https://api.example.com\"]`)"
        }
        _ => return None,
    })
}

/// The interfaces a component imports that its manifest grants nothing
/// of (full names, with versions). They still link: every call of them
/// answers the interface's own `denied` error, so a toolchain that imports
/// every interface of the world (componentize-py, componentize-js) builds
/// a skill that loads with only the grants it uses.
pub fn ungranted_imports(imports: &[String], context: &SkillContext) -> Vec<String> {
    let mut ungranted = Vec::new();
    for import in imports {
        let interface = import.split('@').next().unwrap_or(import);
        let granted = match interface {
            KPI_INTERFACE => context.kpi.is_some(),
            MEMORY_INTERFACE => context.memory.is_some(),
            BOARD_INTERFACE => context.board.is_some(),
            SKILLS_INTERFACE => context.skills.is_some(),
            FLEET_INTERFACE => context.fleet.is_some(),
            HTTP_INTERFACE => context.http.is_some(),
            LLM_INTERFACE => context.llm.is_some(),
            _ => true,
        };
        if !granted {
            ungranted.push(import.clone());
        }
    }
    ungranted
}

/// Refuses a component that imports `llm` without an `llm_tokens` grant:
/// a model spends money, so a missing grant is an error at load rather
/// than a denial found in production. (A Python or JavaScript skill that
/// does not ask the model is built against the world `skill`, which has no
/// `llm`.)
pub fn refused_import(imports: &[String], context: &SkillContext) -> Option<String> {
    let import = imports
        .iter()
        .find(|i| i.split('@').next() == Some(LLM_INTERFACE))?;
    if context.llm.is_some() {
        return None;
    }
    Some(format!(
        "{}; a component that imports it without the grant is refused (build a skill that \
         does not ask the model against the world `skill`, which has no `llm`)",
        ungranted_message(import)
    ))
}

/// The warning (or, in strict mode, the refusal) for one ungranted import.
pub fn ungranted_message(import: &str) -> String {
    let interface = import.split('@').next().unwrap_or(import);
    let hint = grant_hint(interface).unwrap_or("grants none of it");
    format!("the component imports `{import}` but its manifest {hint}")
}

/// The packages this host serves, and the versions it accepts of them.
const SERVED: &[(&str, &str)] = &[
    ("darkfactory:skill", "0.1"),
    ("wasi:cli", "0.2"),
    ("wasi:clocks", "0.2"),
    ("wasi:filesystem", "0.2"),
    ("wasi:io", "0.2"),
    ("wasi:random", "0.2"),
    ("wasi:sockets", "0.2"),
    ("wasi:http", "0.2"),
];

/// What the host serves, for an error that names an import it does not.
pub const SERVED_SUMMARY: &str = "darkfactory:skill@0.1 (log, memory, board, fleet, skills, \
     kpi, llm, types), wasi:http@0.2 (outgoing-handler, types: behind `allowed_outbound_hosts`), and WASI \
     0.2 (cli, clocks, filesystem, io, random, sockets: no files, sockets or environment are \
     given)";

/// Refuses an import of a package (or a version of one) the host does not
/// serve, saying what it does serve; `None` when every package is served.
pub fn unserved_import(imports: &[String]) -> Option<String> {
    for import in imports {
        // Type imports of the world (`skill-error`) are not interfaces.
        let Some((package, rest)) = import.split_once('/') else {
            continue;
        };
        let version = rest.split_once('@').map(|(_, v)| v);
        let served = SERVED.iter().any(|(name, series)| {
            *name == package
                && version.is_some_and(|v| v == *series || v.starts_with(&format!("{series}.")))
        });
        if !served {
            return Some(format!(
                "the component imports `{import}`, which this host does not serve; it serves \
                 {SERVED_SUMMARY}"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> SkillContext {
        SkillContext {
            skill: "s".into(),
            capabilities: Capabilities::default(),
            memory: None,
            board: None,
            fleet: None,
            skills: None,
            kpi: None,
            http: None,
            llm: None,
            shadow: None,
        }
    }

    #[test]
    fn an_import_without_its_grant_is_listed_with_the_key_to_set() {
        let imports = |i: &str| vec![format!("{i}@0.1.0"), "darkfactory:skill/log@0.1.0".into()];
        for (interface, key) in [
            (MEMORY_INTERFACE, "memory_read"),
            (BOARD_INTERFACE, "board_read"),
            (FLEET_INTERFACE, "fleet = \"read\""),
            (SKILLS_INTERFACE, "skills = ["),
            (HTTP_INTERFACE, "allowed_outbound_hosts"),
            (KPI_INTERFACE, "kpi_read"),
            (LLM_INTERFACE, "llm_tokens"),
        ] {
            let ungranted = ungranted_imports(&imports(interface), &context());
            assert_eq!(ungranted, vec![format!("{interface}@0.1.0")]);
            let message = ungranted_message(&ungranted[0]);
            assert!(
                message.contains(interface) && message.contains(key),
                "{message}"
            );
        }
        let granted = SkillContext {
            fleet: fleet::FleetGrant::parse(Some("read"), "s".into()).unwrap(),
            board: board::BoardGrants::parse(&["*".into()], &[]).unwrap(),
            ..context()
        };
        assert!(ungranted_imports(&imports(FLEET_INTERFACE), &granted).is_empty());
        assert!(ungranted_imports(&imports(BOARD_INTERFACE), &granted).is_empty());
        // Logging needs no grant.
        assert!(ungranted_imports(&imports("darkfactory:skill/log"), &context()).is_empty());
    }

    #[test]
    fn an_llm_import_without_its_grant_is_refused_and_with_it_loads() {
        let imports = vec![
            format!("{LLM_INTERFACE}@0.1.0"),
            "darkfactory:skill/log@0.1.0".to_string(),
        ];
        let refusal = refused_import(&imports, &context()).unwrap();
        assert!(
            refusal.contains("llm_tokens") && refusal.contains("world `skill`"),
            "{refusal}"
        );
        let granted = SkillContext {
            llm: llm::LlmGrant::parse(Some(100)).unwrap(),
            ..context()
        };
        assert_eq!(refused_import(&imports, &granted), None);
        assert_eq!(refused_import(&imports[1..], &context()), None);
    }

    #[test]
    fn an_unserved_package_or_version_is_named_with_what_is_served() {
        let ok: Vec<String> = [
            "wasi:io/poll@0.2.12",
            "wasi:http/types@0.2.10",
            "darkfactory:skill/memory@0.1.0",
            "skill-error",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(unserved_import(&ok), None);
        for bad in [
            "wasi:keyvalue/store@0.2.0",
            "wasi:io/poll@0.3.0",
            "darkfactory:skill/log@0.2.0",
            "acme:x/y",
        ] {
            let err = unserved_import(&[bad.to_string()]).unwrap();
            assert!(
                err.contains(bad) && err.contains("it serves darkfactory:skill@0.1"),
                "{err}"
            );
        }
    }
}
