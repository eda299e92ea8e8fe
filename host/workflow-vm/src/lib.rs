//! The workflow virtual machine.
//!
//! A `workflow.md` is checked by the host's compiler (`darkfactory::workflow`)
//! and lowered to a [`Program`]: a small tree of statements whose names are
//! resolved, whose capability calls are known to exist, and whose types have
//! been checked. This crate holds that format and [`run`], the interpreter.
//!
//! The interpreter is compiled once, for `wasm32-unknown-unknown`, into a core
//! module that exports the `skill` world's `run`; the compiler makes each
//! workflow's component from it by adding the program as data and dropping
//! the imports the workflow does not use. So a workflow runs inside the same
//! sandbox as any skill, and compiling one needs no Rust toolchain.
//!
//! Everything here is also built natively, so the interpreter is unit-tested
//! without Wasm.

pub mod exec;
pub mod program;

#[cfg(all(feature = "guest", target_arch = "wasm32"))]
mod guest;

pub use exec::{run, CallFailure, Capabilities, Failure};
pub use program::Program;
