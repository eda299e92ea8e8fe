//! Host capabilities: one folder per WIT interface of `darkfactory:skill`.
//!
//! Each folder has the same shape: `mod.rs` says what the capability is and
//! holds its service, `host.rs` implements the generated WIT trait, and each
//! backend lives in a file of its own. [`add_to_linker`] is the one list of
//! what the host offers a skill; [`Capabilities`] holds the services, and a
//! [`SkillContext`] (built per skill version from its manifest) is what one
//! call may use. Deny by default: a skill whose component imports an
//! interface its manifest was not granted is refused at load
//! ([`check_imports`]).

pub mod board;
pub mod fleet;
pub mod log;
pub mod memory;
pub mod skills;

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
/// The `kpi` interface: declared for workflows, not served by the host yet.
pub const KPI_INTERFACE: &str = "darkfactory:skill/kpi";

/// Refuses a component that imports a capability its manifest does not
/// grant; the message names the import and the manifest keys to set.
pub fn check_imports(imports: &[String], context: &SkillContext) -> Result<(), String> {
    for import in imports {
        let interface = import.split('@').next().unwrap_or(import);
        if interface == MEMORY_INTERFACE && context.memory.is_none() {
            return Err(format!(
                "the component imports `{import}` but its manifest grants no memory \
                 namespace: set `memory_read` and/or `memory_write` (e.g. \
                 `memory_read = [\"agent\", \"org\"]`)"
            ));
        }
        if interface == BOARD_INTERFACE && context.board.is_none() {
            return Err(format!(
                "the component imports `{import}` but its manifest grants no board list: \
                 set `board_read` and/or `board_write` (e.g. `board_read = \"*\"`, \
                 `board_write = \"Backlog\"`)"
            ));
        }
        if interface == KPI_INTERFACE {
            return Err(format!(
                "the component imports `{import}`, which this host does not serve yet (no \
                 KPI series are recorded); a workflow that reads KPIs runs its examples with \
                 `darkfactory workflow test`"
            ));
        }
        if interface == SKILLS_INTERFACE && context.skills.is_none() {
            return Err(format!(
                "the component imports `{import}` but its manifest grants no skill to call: \
                 set `skills` to the names it calls (e.g. `skills = [\"text-stats\"]`), or \
                 `\"*\"`"
            ));
        }
        if interface == FLEET_INTERFACE && context.fleet.is_none() {
            return Err(format!(
                "the component imports `{import}` but its manifest grants no fleet access: \
                 set `fleet = \"read\"` (agents and routes), or `fleet = \"write\"` to send \
                 heartbeats too"
            ));
        }
    }
    Ok(())
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
        }
    }

    #[test]
    fn an_import_without_its_grant_is_refused_and_named() {
        let imports = |i: &str| vec![format!("{i}@0.1.0"), "darkfactory:skill/log@0.1.0".into()];
        for (interface, key) in [
            (MEMORY_INTERFACE, "memory_read"),
            (BOARD_INTERFACE, "board_read"),
            (FLEET_INTERFACE, "fleet = \"read\""),
            (SKILLS_INTERFACE, "skills = ["),
        ] {
            let err = check_imports(&imports(interface), &context()).unwrap_err();
            assert!(err.contains(interface) && err.contains(key), "{err}");
        }
        let granted = SkillContext {
            fleet: fleet::FleetGrant::parse(Some("read"), "s".into()).unwrap(),
            board: board::BoardGrants::parse(&["*".into()], &[]).unwrap(),
            ..context()
        };
        check_imports(&imports(FLEET_INTERFACE), &granted).unwrap();
        check_imports(&imports(BOARD_INTERFACE), &granted).unwrap();
        // Logging needs no grant.
        check_imports(&imports("darkfactory:skill/log"), &context()).unwrap();
    }
}
