//! # darkfactory
//!
//! A WebAssembly plugin host for synthesised skills: the runtime of a
//! self-improving agent fleet. Skills are sandboxed Wasm components loaded
//! hot from a skills directory and called over HTTP.
//!
//! The modules depend downwards only: [`api`] and [`cli`] use everything,
//! [`registry`] uses [`runtime`], [`capabilities`] implement the WIT imports
//! for the runtime, and [`runtime`] uses nothing of ours. [`server`] puts
//! them together into a running host.

pub mod api;
pub mod capabilities;
pub mod cli;
pub mod registry;
pub mod runtime;
pub mod server;
pub mod state;
pub mod workflow;
