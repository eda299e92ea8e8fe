//! Host capabilities: one folder per WIT interface of `darkfactory:skill`.
//!
//! Each folder has the same shape: `mod.rs` says what the capability is,
//! `host.rs` implements the generated WIT trait, and each backend (when the
//! capability has one) lives in a file of its own. [`add_to_linker`] is the
//! one list of what the host offers a skill.

pub mod log;

use crate::runtime::{RuntimeError, SkillState};
use wasmtime::component::{HasSelf, Linker};

/// Adds every capability interface to the skill linker.
pub fn add_to_linker(linker: &mut Linker<SkillState>) -> Result<(), RuntimeError> {
    use crate::runtime::bindings::darkfactory::skill as wit;
    let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
    wit::types::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    wit::log::add_to_linker::<SkillState, HasSelf<SkillState>>(linker, |s| s).map_err(link)?;
    Ok(())
}
