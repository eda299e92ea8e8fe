//! Client commands: `skills list|show`, `invoke`, `deploy`, `rollback`, `remove`.

use super::client::Client;
use super::HostArgs;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;
use std::io::Read;
use std::path::PathBuf;

/// Options of `skills`.
#[derive(Debug, Args)]
pub struct SkillsArgs {
    #[command(subcommand)]
    command: SkillsCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum SkillsCommand {
    /// One line per skill: status, version, calls, latency, last error.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Everything about one skill, with its version history, as JSON.
    Show {
        /// The skill.
        name: String,
    },
}

/// Options of `invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The skill to call.
    name: String,
    /// JSON input; `-` reads it from stdin; `{}` when omitted.
    input: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

/// Options of `deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The component file (`.wasm`).
    file: PathBuf,
    /// Skill name; defaults to the file stem with `_` as `-` and without a
    /// leading `skill-` (`skill_echo.wasm` deploys as `echo`).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    host: HostArgs,
}

/// Options of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The skill.
    name: String,
    #[command(flatten)]
    host: HostArgs,
}

/// Options of `remove`.
#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// The skill.
    name: String,
    #[command(flatten)]
    host: HostArgs,
}

pub(super) async fn list_or_show(args: SkillsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        SkillsCommand::List { json } => {
            let body = client
                .all_pages("/api/skills", &[], |all, more| {
                    super::client::extend_array(all, &more, "skills")
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_table(&body);
            }
        }
        SkillsCommand::Show { name } => {
            let body = client
                .json(client.request(Method::GET, &format!("/api/skills/{name}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
    }
    Ok(())
}

fn print_table(body: &Value) {
    let skills = body["skills"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<24} {:<9} {:<12} {:<10} {:>8} {:>7} {:>9} {:>9}  LAST ERROR",
        "NAME", "STATUS", "SHA256", "VERSION", "CALLS", "ERRORS", "P50 ms", "P99 ms"
    );
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let ms = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.3}"));
    for s in skills {
        let sha = text(&s["sha256"]);
        println!(
            "{:<24} {:<9} {:<12} {:<10} {:>8} {:>7} {:>9} {:>9}  {}",
            text(&s["name"]),
            text(&s["status"]),
            &sha[..sha.len().min(12)],
            text(&s["version"]),
            s["invocations"].as_u64().unwrap_or(0),
            s["errors"].as_u64().unwrap_or(0),
            ms(&s["p50_ms"]),
            ms(&s["p99_ms"]),
            s["last_error"].as_str().unwrap_or(""),
        );
    }
}

pub(super) async fn invoke(args: InvokeArgs) -> anyhow::Result<()> {
    let input = match args.input.as_deref() {
        None => "{}".to_string(),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("cannot read the input from stdin")?;
            s
        }
        Some(text) => text.to_string(),
    };
    if let Err(e) = serde_json::from_str::<Value>(&input) {
        bail!("the input is not valid JSON: {e}");
    }
    let client = Client::new(&args.host)?;
    let rb = client
        .request(Method::POST, &format!("/api/skills/{}/invoke", args.name))
        .header("content-type", "application/json")
        .body(input);
    let output = client.json(rb).await?;
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

pub(super) async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let name = match args.name {
        Some(name) => name,
        None => super::name_from_path(&args.file).with_context(|| {
            format!(
                "cannot derive a skill name from `{}`; pass --name",
                args.file.display()
            )
        })?,
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let client = Client::new(&args.host)?;
    let rb = client
        .request(Method::PUT, &format!("/api/skills/{name}"))
        .header("content-type", "application/wasm")
        .body(bytes);
    let body = client.json(rb).await?;
    println!(
        "deployed {} ({} bytes, sha256 {})",
        name,
        body["size"].as_u64().unwrap_or(0),
        body["sha256"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub(super) async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    let body = client
        .json(client.request(Method::POST, &format!("/api/skills/{}/rollback", args.name)))
        .await?;
    println!(
        "{} rolled back to sha256 {}",
        args.name,
        body["sha256"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub(super) async fn remove(args: RemoveArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    client
        .send(client.request(Method::DELETE, &format!("/api/skills/{}", args.name)))
        .await?;
    println!("removed {}", args.name);
    Ok(())
}
