//! Client commands of the factory's loop: `factory runs`, the runs of
//! skills by their triggers (a gap of their kind firing, their schedule).

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};

/// Options of `factory`.
#[derive(Debug, Args)]
pub struct FactoryArgs {
    #[command(subcommand)]
    command: FactoryCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum FactoryCommand {
    /// The runs of skills by their triggers (`gap: KIND`, `cron: …`),
    /// newest first.
    Runs {
        /// Only the runs of this skill.
        #[arg(long)]
        skill: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(args: FactoryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        FactoryCommand::Runs { skill, json } => {
            let query: Vec<(&str, String)> = skill.into_iter().map(|s| ("skill", s)).collect();
            let body = client
                .all_pages("/api/factory/runs", &query, |all, more| {
                    super::client::extend_array(all, &more, "runs")
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let runs = body["runs"].as_array().cloned().unwrap_or_default();
            if runs.is_empty() {
                println!("no runs");
            }
            for r in &runs {
                let took = r["took_ms"]
                    .as_f64()
                    .map(|ms| format!("{ms:.0} ms"))
                    .unwrap_or_default();
                println!(
                    "{:>5}  {:<32} {:<12} {:<24} {:>8}{}",
                    r["id"],
                    r["skill"].as_str().unwrap_or("?"),
                    r["state"].as_str().unwrap_or("?"),
                    r["trigger"].as_str().unwrap_or("?"),
                    took,
                    r["error"]
                        .as_str()
                        .map(|e| format!("\n       {e}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
