//! `darkfactory rules check FILE | show`: a rule file checked without a
//! host, and the rules a running host has in force.

use super::client::Client;
use super::HostArgs;
use crate::factory::rules::{self, Known, Source, MONITOR_SERIES};
use clap::{Args, Subcommand};
use reqwest::Method;
use std::path::PathBuf;

/// Options of `rules`.
#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Check a rule file: every error with FILE:LINE:COLUMN (no host needed).
    Check {
        /// The rule file (`rules.toml`).
        file: PathBuf,
        /// Accept PromQL `query` rules (the host runs with --prometheus-url).
        #[arg(long)]
        prometheus: bool,
    },
    /// Print the built-in rules (the five watches) as a rule file.
    Defaults,
    /// The rules a running host has in force, and its rule file's state.
    Show {
        #[command(flatten)]
        host: HostArgs,
    },
}

pub(super) async fn run(args: RulesArgs) -> anyhow::Result<()> {
    match args.command {
        RulesCommand::Check { file, prometheus } => {
            // Without a host there is no store to ask: a series no monitor
            // writes is named, and the host refuses it until a sample of it
            // has been pushed.
            let knows = |_: &str| true;
            let known = Known {
                series: &knows,
                prometheus,
            };
            let rules = rules::load(&file, &known).map_err(|e| {
                let n = e.problems.len();
                anyhow::anyhow!(
                    "{e}\n`{}` has {n} error{}",
                    file.display(),
                    if n == 1 { "" } else { "s" }
                )
            })?;
            for rule in &rules {
                if let Source::Series { name, .. } = &rule.source {
                    if !MONITOR_SERIES.contains(&name.as_str()) {
                        eprintln!(
                            "note: rule `{}` reads `{name}`, which no monitor writes: it has \
                             no data until a sample of it is pushed",
                            rule.name
                        );
                    }
                }
            }
            let n = rules.len();
            eprintln!(
                "{}: ok, {n} rule{}",
                file.display(),
                if n == 1 { "" } else { "s" }
            );
        }
        RulesCommand::Defaults => print!("{}", rules::DEFAULT_RULES),
        RulesCommand::Show { host } => {
            let client = Client::new(&host)?;
            let body = client
                .json(client.request(Method::GET, "/api/rules"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
    }
    Ok(())
}
