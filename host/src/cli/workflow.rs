//! `darkfactory workflow check|compile|test FILE`: the workflow compiler on
//! the command line, with no host running and no Rust toolchain.

use crate::workflow::{self, CompileError};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of `workflow`.
#[derive(Debug, Args)]
pub struct WorkflowArgs {
    #[command(subcommand)]
    command: WorkflowCommand,
}

#[derive(Debug, Subcommand)]
enum WorkflowCommand {
    /// Report every error and warning of a workflow, with line and column.
    Check {
        /// The `NAME.workflow.md` file.
        file: PathBuf,
        /// Print the diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compile a workflow to a component.
    Compile {
        /// The `NAME.workflow.md` file.
        file: PathBuf,
        /// Where to write the component (`NAME.wasm` beside the source when
        /// not given).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Compile a workflow and run the examples of its `## Tests` section
    /// against their fixtures (writes are recorded, never applied).
    Test {
        /// The `NAME.workflow.md` file.
        file: PathBuf,
        /// Print every example's calls, output and logs as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(args: WorkflowArgs) -> anyhow::Result<()> {
    match args.command {
        WorkflowCommand::Check { file, json } => check(&file, json),
        WorkflowCommand::Compile { file, output } => compile(&file, output),
        WorkflowCommand::Test { file, json } => test(&file, json).await,
    }
}

fn read(file: &Path) -> anyhow::Result<(String, Option<String>)> {
    let source = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read `{}`", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(workflow::name_from_file)
        .map(str::to_string);
    Ok((source, name))
}

fn check(file: &Path, as_json: bool) -> anyhow::Result<()> {
    let (source, name) = read(file)?;
    let checked = workflow::check(&source, name.as_deref());
    let errors = checked.diagnostics.errors();
    if as_json {
        let out = json!({
            "name": checked.name,
            "ok": errors == 0,
            "diagnostics": checked.diagnostics,
            "calls": checked.usage.calls(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        eprint!(
            "{}",
            checked
                .diagnostics
                .render(&file.display().to_string(), &source)
        );
    }
    if errors > 0 {
        anyhow::bail!(
            "`{}` has {errors} error{}",
            file.display(),
            if errors == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn compile(file: &Path, output: Option<PathBuf>) -> anyhow::Result<()> {
    let (source, name) = read(file)?;
    let started = Instant::now();
    match workflow::compile(&source, name.as_deref()) {
        Ok(compiled) => {
            let elapsed = started.elapsed();
            if !compiled.diagnostics.0.is_empty() {
                eprint!(
                    "{}",
                    compiled
                        .diagnostics
                        .render(&file.display().to_string(), &source)
                );
            }
            let out =
                output.unwrap_or_else(|| file.with_file_name(format!("{}.wasm", compiled.name)));
            crate::registry::write_atomically(&out, &compiled.component)
                .with_context(|| format!("cannot write `{}`", out.display()))?;
            let calls = compiled.checked.usage.calls();
            println!(
                "compiled `{}` to {} ({} bytes, sha256 {}) in {:.1} ms; calls: {}",
                compiled.name,
                out.display(),
                compiled.component.len(),
                compiled.sha256,
                elapsed.as_secs_f64() * 1000.0,
                if calls.is_empty() {
                    "nothing".to_string()
                } else {
                    calls.join(", ")
                }
            );
            Ok(())
        }
        Err(CompileError::Invalid(diags)) => {
            eprint!("{}", diags.render(&file.display().to_string(), &source));
            anyhow::bail!("`{}` does not compile", file.display())
        }
        Err(e) => Err(e.into()),
    }
}

async fn test(file: &Path, as_json: bool) -> anyhow::Result<()> {
    let (source, name) = read(file)?;
    let shown = file.display().to_string();
    let compiled = match workflow::compile(&source, name.as_deref()) {
        Ok(compiled) => compiled,
        Err(CompileError::Invalid(diags)) => {
            eprint!("{}", diags.render(&shown, &source));
            anyhow::bail!("`{shown}` does not compile");
        }
        Err(e) => return Err(e.into()),
    };
    if compiled.checked.tests.is_empty() {
        anyhow::bail!("`{shown}` has no examples: add a `## Tests` section with `### name` and a ```toml block");
    }
    let outcomes = workflow::fixtures::run(&compiled).await?;
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "workflow": compiled.name, "tests": outcomes }))?
        );
    } else {
        println!(
            "{shown}: {} example{}",
            outcomes.len(),
            if outcomes.len() == 1 { "" } else { "s" }
        );
        for o in &outcomes {
            println!(
                "  {}  {} (line {})",
                if o.passed { "ok  " } else { "FAIL" },
                o.name,
                o.line
            );
            for p in &o.problems {
                println!("        {p}");
            }
        }
        println!("{} passed, {failed} failed", outcomes.len() - failed);
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} example{} of `{shown}` failed",
            if failed == 1 { "" } else { "s" }
        );
    }
    Ok(())
}
