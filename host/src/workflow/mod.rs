//! Workflows: a `workflow.md` compiled, inside the host, into a sandboxed
//! skill component.
//!
//! parse (`markdown`, `front`, `syntax`) → check (`check`, with the WIT
//! signatures of `wit`) → emit (`emit`). See `docs/workflow.md` for the
//! format.

pub mod emit;
