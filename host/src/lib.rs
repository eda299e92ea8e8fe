//! # darkfactory
//!
//! A WebAssembly plugin host for synthesised skills: the runtime of a
//! self-improving agent fleet. Skills are sandboxed Wasm components loaded
//! hot from a skills directory and called over HTTP.
//!
//! The modules depend downwards only (a test holds it, see `layering`):
//! [`cli`] → [`server`] → [`api`] → [`factory`] → [`registry`] → [`workflow`] →
//! [`capabilities`] → [`state`], [`skill`] → [`runtime`], which uses
//! nothing of ours. [`skill`] is what a skill is to every layer (its name,
//! manifest and hash); [`capabilities`] implement the WIT imports for the
//! runtime; [`factory`] watches the fleet's KPIs and turns gaps into
//! cards; [`server`] puts them together into a running host.

pub mod api;
pub mod capabilities;
pub mod cli;
pub mod factory;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod skill;
pub mod state;
pub mod workflow;

mod layering;
