//! `darkfactory inspect FILE.wasm`: what a component is and whether this host
//! would load it, without running it.

use crate::runtime::{Runtime, RuntimeConfig};
use crate::skill::{inspect_component, sha256_hex, Manifest};
use anyhow::Context;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;

/// Options of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The component to inspect.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(args: InspectArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let sha = sha256_hex(&bytes);
    let info =
        inspect_component(&bytes).map_err(|e| anyhow::anyhow!("`{}`: {e}", args.file.display()))?;
    let sidecar_path = args.file.with_extension("toml");
    let sidecar = std::fs::read_to_string(&sidecar_path).ok();
    let manifest = Manifest::merge(info.manifest.as_deref(), sidecar.as_deref());
    // Compiling and linking checks the imports against what this host
    // provides; nothing is instantiated or run.
    let verdict = Runtime::new(
        RuntimeConfig::default(),
        &crate::capabilities::add_to_linker,
    )
    .map_err(|e| e.to_string())
    .and_then(|rt| {
        if let Some(refusal) = crate::capabilities::unserved_import(&info.imports) {
            return Err(refusal);
        }
        let component = rt.compile(&bytes).map_err(|e| e.to_string())?;
        rt.prepare(&component).map_err(|e| e.to_string())?;
        // The grants: a capability imported but not granted loads, and its
        // calls answer `denied`.
        let name = super::name_from_path(&args.file).unwrap_or_else(|| "skill".into());
        let resolved = manifest.clone()?.resolve(&name, rt.config())?;
        let context = crate::capabilities::SkillContext {
            skill: name,
            capabilities: Default::default(),
            memory: resolved.memory,
            board: resolved.board,
            fleet: resolved.fleet,
            skills: resolved.skills,
            kpi: resolved.kpi,
            http: resolved.http,
            llm: resolved.llm,
            shadow: None,
        };
        if let Some(refusal) = crate::capabilities::refused_import(&info.imports, &context) {
            return Err(refusal);
        }
        Ok(crate::capabilities::ungranted_imports(
            &info.imports,
            &context,
        ))
    });
    let warnings: Vec<String> = verdict
        .as_ref()
        .map(|ungranted| {
            ungranted
                .iter()
                .map(|i| {
                    format!(
                        "{}; its calls of it answer `denied`",
                        crate::capabilities::ungranted_message(i)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if args.json {
        let out = json!({
            "file": args.file,
            "sha256": sha,
            "size": bytes.len(),
            "imports": info.imports,
            "exports": info.exports,
            "manifest": manifest.as_ref().ok(),
            "manifest_error": manifest.as_ref().err(),
            "sidecar": sidecar.as_ref().map(|_| sidecar_path.clone()),
            "loadable": verdict.is_ok(),
            "load_error": verdict.as_ref().err(),
            "ungranted_imports": verdict.as_ref().ok(),
            "warnings": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("file:     {}", args.file.display());
    println!("sha256:   {sha}");
    println!("size:     {} bytes", bytes.len());
    println!("imports:");
    for import in &info.imports {
        println!("  {import}");
    }
    println!("exports:");
    for export in &info.exports {
        println!("  {export}");
    }
    match &manifest {
        Ok(m) => {
            let source = match (&info.manifest, &sidecar) {
                (Some(_), Some(_)) => "embedded + sidecar",
                (Some(_), None) => "embedded",
                (None, Some(_)) => "sidecar",
                (None, None) => "none",
            };
            println!("manifest ({source}):");
            let text = toml::to_string(m).unwrap_or_default();
            for line in text.lines() {
                println!("  {line}");
            }
        }
        Err(e) => println!("manifest: invalid: {e}"),
    }
    match &verdict {
        Ok(_) => println!("loadable: yes"),
        Err(e) => println!("loadable: no: {e}"),
    }
    for warning in &warnings {
        println!("warning:  {warning}");
    }
    Ok(())
}
