//! # darkfactory-sdk
//!
//! Write a [Dark Factory](https://github.com/darkfactory/darkfactory) skill as
//! one Rust function from a serde input type to `Result<Output, SkillError>`,
//! export it with [`export_skill!`], and build it with
//! `cargo build --release --target wasm32-wasip2`. The resulting `.wasm` is a
//! WebAssembly component that implements the `darkfactory:skill/skill` world
//! (the WIT lives in `wit/` of the Dark Factory repository); copy it into the
//! host's skills directory as `NAME.wasm` and it serves as skill `NAME`.
//!
//! ```no_run
//! use darkfactory_sdk::{export_skill, log, SkillError};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input {
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Output {
//!     greeting: String,
//! }
//!
//! fn greet(input: Input) -> Result<Output, SkillError> {
//!     if input.name.trim().is_empty() {
//!         return Err(SkillError::new("empty-name", "`name` must not be empty"));
//!     }
//!     log::info(&format!("greeting {}", input.name));
//!     Ok(Output { greeting: format!("Hello, {}!", input.name) })
//! }
//!
//! export_skill!(greet,
//!     description = "Greets a person by name",
//!     deadline_ms = 2000,
//!     memory_mib = 16,
//!     input_schema = r#"{"type":"object","required":["name"],"properties":{"name":{"type":"string"}}}"#,
//! );
//! # fn main() {}
//! ```
//!
//! The host's capabilities are modules here: [`log`], [`memory`] (agent
//! memory in namespaces), [`board`] (cards in lists), [`fleet`] (the
//! capability registry and routing), [`kpi`] (the fleet's indicator
//! series) and [`llm`] (the host's language model, within a token budget).
//! A skill uses what its manifest grants
//! (see below).
//!
//! A skill crate is a `cdylib`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! darkfactory-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! ## Faster calls
//!
//! Every call gets a fresh instance whose linear memory the host resets
//! afterwards, so a small memory makes a fast call. Rust reserves a 1 MiB
//! stack by default; a `build.rs` next to the skill's `Cargo.toml` that links
//! a 48 KiB stack (what `darkfactory new` writes) makes a call of a small
//! skill about 2.5× cheaper, and still holds the deepest JSON `serde_json`
//! accepts (128 levels need about 36 KiB):
//!
//! ```ignore
//! // build.rs (a build script, not library code)
//! fn main() {
//!     if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
//!         println!("cargo:rustc-link-arg-cdylib=-zstack-size=49152");
//!     }
//! }
//! ```
//!
//! Memory is reset in 64 KiB pages: when the stack, the skill's data and a
//! call's heap fit in one page, a call is cheaper still (the example `echo`,
//! 12 KiB of data, does).
//!
//! ## The manifest
//!
//! [`export_skill!`] embeds a manifest in a custom section of the component
//! (`darkfactory:manifest`): the crate's name, version and description from
//! `Cargo.toml`, plus the optional keys given to the macro:
//!
//! | key            | meaning                                                  |
//! |----------------|----------------------------------------------------------|
//! | `description`  | overrides the crate description                          |
//! | `version`      | overrides the crate version                              |
//! | `deadline_ms`  | wall-clock limit of one call (host default 10 000)       |
//! | `memory_mib`   | linear-memory limit of one call (host default 64)        |
//! | `input_schema` | JSON Schema the host checks every input against          |
//! | `agent`        | the agent the skill acts for (memory namespace `agent`)  |
//! | `memory_read`  | memory namespaces it may search, e.g. `"agent, org"`     |
//! | `memory_write` | memory namespaces it may store into, e.g. `"agent"`      |
//! | `board_read`   | board lists it may read, e.g. `"*"` or `"Blocked"`       |
//! | `board_write`  | board lists it may change, e.g. `"Backlog, Blocked"`     |
//! | `fleet`        | `"read"` (agents, routes) or `"write"` (heartbeats too)  |
//! | `skills`       | skills it may call, e.g. `"text-stats"` or `"*"`         |
//!
//! Grants are deny-by-default, checked at every call: a skill that calls
//! [`memory`] without a `memory_read` or `memory_write` grant, [`board`]
//! without a `board_read` or `board_write` grant, [`fleet`] without
//! `fleet`, or [`skills`] without `skills`, gets that module's `Denied`
//! error (the skill still loads; a host run with `--strict-imports` refuses
//! it at load instead). Memory grant
//! entries are `agent`, `org`, `user:<id>`, `user:*` (every user) and
//! `agent:<name>`; board grant entries are list names or `*`.
//!
//! A sidecar `NAME.toml` next to `NAME.wasm` in the skills directory overrides
//! any of these without rebuilding the skill. `darkfactory inspect FILE.wasm`
//! shows what a component carries.
//!
//! ## Errors
//!
//! Input that does not deserialize into your input type is answered with a
//! [`SkillError`] of code `invalid-input` before your function runs. Errors you
//! return reach the caller as HTTP 422 with their code and message. A panic is
//! a trap: the host answers 500 and keeps serving.

extern crate self as darkfactory_sdk;

/// Bindings generated from the `darkfactory:skill` WIT package.
///
/// Use them for what the typed wrappers of this crate do not cover yet.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "skill-with-llm",
        pub_export_macro: true,
        export_macro_name: "__export_world_skill",
        default_bindings_module: "darkfactory_sdk::bindings",
        runtime_path: "darkfactory_sdk::__private::wit_bindgen::rt",
    });
}

pub mod board;
pub mod fleet;
pub mod kpi;
pub mod llm;
pub mod log;
pub mod memory;
pub mod skills;

pub use bindings::darkfactory::skill::types::SkillError;

impl SkillError {
    /// An error with a machine-readable `code` and a human `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        SkillError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The error the SDK returns when the input does not match the input type.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new("invalid-input", message)
    }
}

/// Implementation details of [`export_skill!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    use crate::SkillError;
    use serde::{de::DeserializeOwned, Serialize};

    /// Decodes the JSON input, runs the handler and encodes its output.
    pub fn run_json<I, O>(
        input: &str,
        handler: impl FnOnce(I) -> Result<O, SkillError>,
    ) -> Result<String, SkillError>
    where
        I: DeserializeOwned,
        O: Serialize,
    {
        let input: I = serde_json::from_str(input).map_err(|e| {
            SkillError::invalid_input(format!("input does not match the skill's input type: {e}"))
        })?;
        let output = handler(input)?;
        serde_json::to_string(&output).map_err(|e| {
            SkillError::new(
                "invalid-output",
                format!("the skill's output could not be encoded as JSON: {e}"),
            )
        })
    }

    /// Copies a manifest string into a fixed-size array for a custom section.
    pub const fn manifest_bytes<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
}

/// Exports `handler` as the skill's `run` function and embeds its manifest.
///
/// `handler` is any `fn(I) -> Result<O, SkillError>` where `I: Deserialize`
/// and `O: Serialize`. Optional manifest keys follow as `key = literal`:
/// `description`, `version`, `deadline_ms`, `memory_mib`, `input_schema`,
/// `agent`, `memory_read`, `memory_write`, `board_read`, `board_write`, `fleet`,
/// `skills`, `kpi_read`, `llm_tokens`.
/// See the [crate documentation](crate) for an example.
#[macro_export]
macro_rules! export_skill {
    ($handler:path $(, $key:ident = $value:literal)* $(,)?) => {
        const _: () = {
            struct DarkFactorySkill;

            impl $crate::bindings::Guest for DarkFactorySkill {
                fn run(input: ::std::string::String)
                    -> ::core::result::Result<::std::string::String, $crate::SkillError>
                {
                    $crate::__private::run_json(&input, $handler)
                }
            }

            $crate::bindings::__export_world_skill!(DarkFactorySkill with_types_in $crate::bindings);

            const MANIFEST: &str = $crate::__manifest!(@acc [
                "[package]\n",
                "name = '''", env!("CARGO_PKG_NAME"), "'''\n",
                "version = '''", env!("CARGO_PKG_VERSION"), "'''\n",
                "description = '''", env!("CARGO_PKG_DESCRIPTION"), "'''\n",
                "[skill]\n",
            ] $($key = $value,)*);

            #[cfg(target_arch = "wasm32")]
            #[unsafe(link_section = "darkfactory:manifest")]
            #[used]
            static MANIFEST_SECTION: [u8; MANIFEST.len()] =
                $crate::__private::manifest_bytes::<{ MANIFEST.len() }>(MANIFEST);
        };
    };
}

/// Builds the embedded manifest's TOML text; rejects unknown keys.
#[doc(hidden)]
#[macro_export]
macro_rules! __manifest {
    (@acc [$($acc:tt)*]) => { concat!($($acc)*) };
    (@acc [$($acc:tt)*] description = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "description = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] version = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "version = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] input_schema = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "input_schema = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] deadline_ms = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "deadline_ms = ", $v, "\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] memory_mib = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "memory_mib = ", $v, "\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] agent = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "agent = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] memory_read = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "memory_read = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] memory_write = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "memory_write = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] board_read = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "board_read = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] board_write = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "board_write = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] fleet = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "fleet = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] skills = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "skills = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] kpi_read = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "kpi_read = '''", $v, "'''\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] llm_tokens = $v:literal, $($rest:tt)*) => {
        $crate::__manifest!(@acc [$($acc)* "llm_tokens = ", $v, "\n",] $($rest)*)
    };
    (@acc [$($acc:tt)*] $other:ident = $v:literal, $($rest:tt)*) => {
        compile_error!(concat!(
            "unknown manifest key `", stringify!($other),
            "`; expected description, version, input_schema, deadline_ms, memory_mib, \
             agent, memory_read, memory_write, board_read, board_write, fleet, skills, \
             kpi_read or llm_tokens"
        ))
    };
}

/// The version of this SDK, recorded in every skill's manifest.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");
