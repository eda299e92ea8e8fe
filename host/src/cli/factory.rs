//! Client commands of the factory's loop: `factory runs`, the runs of
//! skills by their triggers (a gap of their kind firing, their schedule).

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};
use reqwest::Method;

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
        /// The newest this many (a cron skill makes many).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(args: FactoryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        FactoryCommand::Runs { skill, limit, json } => {
            let mut query: Vec<(&str, String)> = skill.into_iter().map(|s| ("skill", s)).collect();
            query.push(("limit", limit.to_string()));
            let body = client
                .json(
                    client
                        .request(Method::GET, "/api/factory/runs")
                        .query(&query),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let runs = body["runs"].as_array().cloned().unwrap_or_default();
            if runs.is_empty() {
                println!("no runs");
            }
            if body["next_cursor"].is_string() {
                println!("(the newest {limit}; --limit shows more)");
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
