//! Workflows: a `workflow.md` compiled, inside the host, into a sandboxed
//! skill component.
//!
//! `markdown` splits the file, `front` reads the front matter, `syntax`
//! parses the steps, `check` resolves names, types and capabilities against
//! the WIT (`wit`), and `emit` builds the component from the interpreter the
//! host carries. No Rust toolchain, no network: the CLI, the HTTP API and
//! the skills directory all compile through [`compile`]. The format is
//! specified in `docs/workflow.md`.

pub mod check;
pub mod cron;
pub mod diag;
pub mod emit;
pub mod fixtures;
pub mod front;
pub mod markdown;
pub mod shadow;
pub mod syntax;
pub mod types;
pub mod wit;

pub use diag::{Diagnostic, Diagnostics, Severity};

use crate::skill::{append_manifest, sha256_hex, SkillName};
use darkfactory_workflow_vm::Program;
use diag::Span;
use front::Header;
use markdown::Document;

/// The largest workflow file compiled.
pub const MAX_SOURCE_BYTES: usize = 256 * 1024;
/// The file name suffix of a workflow in the skills directory.
pub const SUFFIX: &str = ".workflow.md";

/// A workflow that was read and checked (it may have errors).
#[derive(Debug, Clone)]
pub struct Checked {
    /// The skill name: from the front matter, or else the file name.
    pub name: Option<String>,
    pub header: Header,
    pub document: Document,
    pub program: Program,
    pub usage: check::Usage,
    /// The examples of the `## Tests` section.
    pub tests: Vec<fixtures::TestCase>,
    /// Every problem, errors and warnings, in source order.
    pub diagnostics: Diagnostics,
}

/// A compiled workflow.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub name: String,
    /// The component's bytes.
    pub component: Vec<u8>,
    /// sha256 of the component.
    pub sha256: String,
    /// sha256 of the source.
    pub source_sha256: String,
    /// The manifest embedded in the component (TOML).
    pub manifest: String,
    /// Warnings (a compiled workflow has no errors).
    pub diagnostics: Diagnostics,
    pub checked: Checked,
}

/// Why a workflow did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The source has errors; all of them are here.
    #[error("the workflow has {} error(s)", .0.errors())]
    Invalid(Diagnostics),
    /// The compiler itself failed (a bug, or a broken host build).
    #[error(transparent)]
    Emit(#[from] emit::EmitError),
}

/// The skill name a file name gives: `NAME.workflow.md` → `NAME`.
pub fn name_from_file(file: &str) -> Option<&str> {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.strip_suffix(SUFFIX)
}

/// Reads and checks `source`; `file_name` is the name from the file (or the
/// request) when there is one.
pub fn check(source: &str, file_name: Option<&str>) -> Checked {
    let mut diags = Diagnostics::default();
    if source.len() > MAX_SOURCE_BYTES {
        diags.push(
            Diagnostic::error(
                Span::new(1, 1, 1),
                format!(
                    "the file is {} KiB; a workflow may be at most {} KiB",
                    source.len() / 1024,
                    MAX_SOURCE_BYTES / 1024
                ),
            )
            .hint("split it into several workflows"),
        );
        return Checked {
            name: file_name.map(str::to_string),
            header: front::parse(None, &mut Diagnostics::default()),
            document: Document::default(),
            program: empty_program(),
            usage: check::Usage::default(),
            tests: Vec::new(),
            diagnostics: diags,
        };
    }
    let document = markdown::split(source, &mut diags);
    let header = front::parse(document.front.as_ref(), &mut diags);
    let name = match (&header.name, file_name) {
        (Some((declared, span)), Some(file))
            if declared != file && SkillName::check(declared).is_ok() =>
        {
            diags.push(
                Diagnostic::error(*span, format!("the front matter names the workflow `{declared}`, but its file makes it `{file}`"))
                    .hint(format!("rename the file to `{declared}{SUFFIX}`, or remove `name`")),
            );
            Some(file.to_string())
        }
        (Some((declared, _)), _) => Some(declared.clone()),
        (None, Some(file)) => {
            if let Err(e) = SkillName::check(file) {
                diags.push(Diagnostic::error(
                    Span::new(1, 1, 1),
                    format!("`{file}` is not a skill name: {e}"),
                ));
            }
            Some(file.to_string())
        }
        (None, None) => {
            diags.push(
                Diagnostic::error(Span::new(1, 1, 3), "the workflow has no name")
                    .expected("`name = \"...\"` in the front matter")
                    .hint("without a file name to take it from, the front matter must name the workflow"),
            );
            None
        }
    };
    let body = syntax::parse(&document.steps, &mut diags);
    let (program, usage) = check::check(
        name.as_deref().unwrap_or("workflow"),
        &header,
        &body,
        &mut diags,
    );
    let tests = fixtures::parse(&document.tests, &mut diags);
    diags.sort();
    Checked {
        name,
        header,
        document,
        program,
        usage,
        tests,
        diagnostics: diags,
    }
}

fn empty_program() -> Program {
    Program {
        format: darkfactory_workflow_vm::program::FORMAT,
        name: String::new(),
        defaults: Vec::new(),
        slots: 1,
        body: Vec::new(),
    }
}

/// Compiles `source` to a component.
pub fn compile(source: &str, file_name: Option<&str>) -> Result<Compiled, CompileError> {
    let checked = check(source, file_name);
    if checked.diagnostics.has_errors() {
        return Err(CompileError::Invalid(checked.diagnostics));
    }
    let name = checked
        .name
        .clone()
        .expect("a workflow without errors has a name");
    let source_sha256 = sha256_hex(source.as_bytes());
    let manifest = manifest(&checked, &source_sha256);
    let program =
        serde_json::to_vec(&checked.program).map_err(|e| emit::EmitError::new(e.to_string()))?;
    let mut component = emit::emit(&program, &checked.usage.functions)?;
    append_manifest(&mut component, &manifest);
    Ok(Compiled {
        name,
        sha256: sha256_hex(&component),
        component,
        source_sha256,
        manifest,
        diagnostics: checked.diagnostics.clone(),
        checked,
    })
}

/// The manifest a compiled workflow carries: its description and limits,
/// the input schema, and only the grants its steps use.
fn manifest(checked: &Checked, source_sha256: &str) -> String {
    use toml::Value;
    let h = &checked.header;
    let mut package = toml::Table::new();
    package.insert("name".into(), Value::String("darkfactory-workflow".into()));
    if let Some(v) = &h.version {
        package.insert("version".into(), Value::String(v.clone()));
    }
    let mut skill = toml::Table::new();
    if let Some(d) = &h.description {
        skill.insert("description".into(), Value::String(d.clone()));
    }
    if let Some(v) = &h.version {
        skill.insert("version".into(), Value::String(v.clone()));
    }
    if let Some(schema) = h.input_schema() {
        skill.insert("input_schema".into(), Value::String(schema.to_string()));
    }
    if let Some(ms) = h.deadline_ms {
        skill.insert(
            "deadline_ms".into(),
            Value::Integer(ms.min(i64::MAX as u64) as i64),
        );
    }
    if let Some(mib) = h.memory_mib {
        skill.insert(
            "memory_mib".into(),
            Value::Integer(mib.min(i64::MAX as u64) as i64),
        );
    }
    let list = |items: &[String]| Value::Array(items.iter().cloned().map(Value::String).collect());
    let used = &checked.usage.grants;
    let g = &h.grants;
    if used.contains_key("board_read") && !g.board_read.is_empty() {
        skill.insert("board_read".into(), list(&g.board_read));
    }
    if used.contains_key("board_write") {
        skill.insert("board_write".into(), list(&g.board_write));
    }
    if used.contains_key("memory_read") && !g.memory_read.is_empty() {
        skill.insert("memory_read".into(), list(&g.memory_read));
    }
    if used.contains_key("memory_write") {
        skill.insert("memory_write".into(), list(&g.memory_write));
    }
    if used.contains_key("skills") {
        skill.insert("skills".into(), list(&g.skills));
    }
    if used.contains_key("kpi_read") {
        skill.insert("kpi_read".into(), list(&g.kpi_read));
    }
    if let Some(level) = used.get("fleet") {
        skill.insert("fleet".into(), Value::String(level.to_string()));
    }
    let mut workflow = toml::Table::new();
    workflow.insert(
        "source_sha256".into(),
        Value::String(source_sha256.to_string()),
    );
    workflow.insert("trigger".into(), Value::String(h.trigger.to_string()));
    let mut root = toml::Table::new();
    root.insert("package".into(), Value::Table(package));
    root.insert("skill".into(), Value::Table(skill));
    root.insert("workflow".into(), Value::Table(workflow));
    toml::to_string(&root).expect("a table of strings and integers serialises")
}

#[cfg(test)]
mod tests;
