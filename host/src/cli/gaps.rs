//! Client commands of the factory's gaps: `gaps list | show ID | silence ID
//! --for 2h`, and `gaps evaluate` to run an evaluation now.

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

/// Options of `gaps`.
#[derive(Debug, Args)]
pub struct GapsArgs {
    #[command(subcommand)]
    command: GapsCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum GapsCommand {
    /// The gaps, newest first, and the monitors that could not measure.
    List {
        /// Only gaps in this state.
        #[arg(long, value_parser = ["pending", "firing", "resolved"])]
        state: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One gap with its evaluations and card, as JSON.
    Show {
        /// The gap's id.
        id: u64,
    },
    /// Open, comment and escalate nothing for a gap for a while.
    Silence {
        /// The gap's id.
        id: u64,
        /// How long: `2h`, `1d` (`0s` lifts a silence).
        #[arg(long = "for")]
        duration: String,
    },
    /// Run an evaluation now and print what it did.
    Evaluate,
}

pub(super) async fn run(args: GapsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        GapsCommand::List { state, json } => {
            let query: Vec<(&str, String)> = state.map(|s| ("state", s)).into_iter().collect();
            let body = client
                .all_pages("/api/gaps", &query, |all, more| {
                    super::client::extend_array(all, &more, "gaps")
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_gaps(&body);
            }
        }
        GapsCommand::Show { id } => {
            let body = client
                .json(client.request(Method::GET, &format!("/api/gaps/{id}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        GapsCommand::Silence { id, duration } => {
            let gap = client
                .json(
                    client
                        .request(Method::POST, &format!("/api/gaps/{id}/silence"))
                        .json(&json!({ "for": duration })),
                )
                .await?;
            println!(
                "gap {id} silenced until {}",
                super::kpi::time(gap["silenced_until_ms"].as_u64().unwrap_or(0))
            );
        }
        GapsCommand::Evaluate => {
            let report = client
                .json(client.request(Method::POST, "/api/factory/evaluate"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(())
}

fn print_gaps(body: &Value) {
    for m in body["monitors"].as_array().into_iter().flatten() {
        if m["ok"] == false {
            println!(
                "monitor {} could not measure ({} times): {}",
                m["name"].as_str().unwrap_or("?"),
                m["failures"],
                m["error"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(error) = body["rules"]["error"].as_str() {
        println!("the rule file's newest text was refused; older rules keep running:\n{error}");
    }
    let gaps = body["gaps"].as_array().cloned().unwrap_or_default();
    if gaps.is_empty() {
        println!("no gaps");
        return;
    }
    for g in &gaps {
        let labels: Vec<String> = g["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        println!(
            "{:>5}  {:<9} {:<20} {:<24} value {} ({})  card {}",
            g["id"],
            g["state"].as_str().unwrap_or("?"),
            g["rule"].as_str().unwrap_or("?"),
            labels.join(","),
            g["value"],
            g["condition"].as_str().unwrap_or(""),
            g["card_id"].as_str().unwrap_or("-")
        );
    }
}
