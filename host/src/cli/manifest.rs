//! `darkfactory manifest embed|show`: the `darkfactory:manifest` custom
//! section for components of any language.
//!
//! The Rust SDK writes the section from `export_skill!`; componentize-py,
//! componentize-js and other toolchains cannot, so `embed` adds it to any
//! component after the build: a manifest travels inside the `.wasm` and no
//! sidecar is needed. The section is TOML: a `[skill]` table with the keys
//! of a sidecar, and an optional `[package]` table (`name`, `version`,
//! `description`). `embed` reads either that shape or a sidecar's flat keys,
//! checks it as the host would, and replaces any top-level section already
//! there; a top-level section wins over one inside a core module (the
//! Rust SDK's), so `embed` also overrides what a Rust build embedded.

use crate::runtime::RuntimeConfig;
use crate::skill::{inspect_component, replace_manifest, Manifest, MANIFEST_SECTION};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Options of `manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    #[command(subcommand)]
    command: ManifestCommand,
}

#[derive(Debug, Subcommand)]
enum ManifestCommand {
    /// Write a manifest into a component (any language) as its
    /// `darkfactory:manifest` section.
    Embed(EmbedArgs),
    /// Print a component's embedded manifest (TOML).
    Show(ShowArgs),
}

#[derive(Debug, Args)]
struct EmbedArgs {
    /// The component.
    file: PathBuf,
    /// The manifest: a sidecar's keys, or `[skill]` and `[package]` tables.
    #[arg(long = "from")]
    from: PathBuf,
    /// Where to write the component with its manifest (may be FILE itself).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// The component.
    file: PathBuf,
}

pub(super) fn run(args: ManifestArgs) -> anyhow::Result<()> {
    match args.command {
        ManifestCommand::Embed(args) => embed(args),
        ManifestCommand::Show(args) => show(args),
    }
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))
}

fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    let bytes = read(&args.file)?;
    inspect_component(&bytes).map_err(|e| anyhow::anyhow!("`{}`: {e}", args.file.display()))?;
    let text = std::fs::read_to_string(&args.from)
        .with_context(|| format!("cannot read `{}`", args.from.display()))?;
    let section =
        section_text(&text).map_err(|e| anyhow::anyhow!("`{}`: {e}", args.from.display()))?;
    // Checked as the host will check it: keys, limits, grants.
    let name = super::name_from_path(&args.file).unwrap_or_else(|| "skill".into());
    Manifest::merge(Some(&section), None)
        .and_then(|m| m.resolve(&name, &RuntimeConfig::default()))
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", args.from.display()))?;
    let out = replace_manifest(&bytes, &section)
        .map_err(|e| anyhow::anyhow!("`{}`: {e}", args.file.display()))?;
    let tmp = args.output.with_extension("wasm.partial");
    std::fs::write(&tmp, &out).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("cannot write `{}`", args.output.display()))?;
    println!(
        "{}: manifest embedded ({} bytes of TOML), {} bytes",
        args.output.display(),
        section.len(),
        out.len()
    );
    Ok(())
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let bytes = read(&args.file)?;
    let info =
        inspect_component(&bytes).map_err(|e| anyhow::anyhow!("`{}`: {e}", args.file.display()))?;
    match info.manifest {
        Some(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            Ok(())
        }
        None => bail!(
            "`{}` has no `{MANIFEST_SECTION}` section (add one with `darkfactory manifest embed`)",
            args.file.display()
        ),
    }
}

/// The section's TOML: `[skill]` (and `[package]`) tables, from either
/// that shape or a sidecar's flat keys.
fn section_text(text: &str) -> Result<String, String> {
    let table: toml::Table =
        toml::from_str(text).map_err(|e| format!("not valid TOML: {}", e.message().trim()))?;
    let shaped = table.keys().all(|k| k == "skill" || k == "package")
        && table.values().all(|v| v.is_table());
    let table = if shaped && !table.is_empty() {
        table
    } else {
        let mut outer = toml::Table::new();
        outer.insert("skill".into(), toml::Value::Table(table));
        outer
    };
    toml::to_string(&table).map_err(|e| format!("cannot write the manifest: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keys_become_the_skill_table_and_tables_stay() {
        let flat = section_text("deadline_ms = 500\nmemory_read = [\"agent\"]\n").unwrap();
        let m = Manifest::merge(Some(&flat), None).unwrap();
        assert_eq!(m.deadline_ms, Some(500));
        assert_eq!(m.memory_read, vec!["agent".to_string()]);
        let shaped =
            section_text("[package]\nname = \"x\"\n[skill]\ndescription = \"d\"\n").unwrap();
        let m = Manifest::merge(Some(&shaped), None).unwrap();
        assert_eq!(
            (m.package.as_deref(), m.description.as_deref()),
            (Some("x"), Some("d"))
        );
        assert!(section_text("= nope").is_err());
    }
}
