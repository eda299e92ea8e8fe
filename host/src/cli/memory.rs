//! Client commands of the fleet's memory: `memory store|search|forget|show|stats`,
//! against a running host's `/api/memory`.

use super::client::Client;
use super::HostArgs;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

/// Options of `memory`.
#[derive(Debug, Args)]
pub struct MemoryArgs {
    #[command(subcommand)]
    command: MemoryCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum MemoryCommand {
    /// Store TEXT in a namespace; prints its id (the same text gets the same id).
    Store {
        /// The text (at most 64 KiB).
        text: String,
        /// `org`, `agent:<name>` or `user:<id>`.
        #[arg(long, short)]
        namespace: String,
        /// Metadata as KEY=VALUE; repeat for more.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
    },
    /// Find memories for QUERY, best first.
    Search {
        /// What to look for.
        query: String,
        /// One namespace, or `all`.
        #[arg(long, short, default_value = "all")]
        namespace: String,
        /// The most hits to show (1 to 100).
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Only memories whose metadata has KEY=VALUE; repeat for more.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// Print the API's JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Delete a memory by id.
    Forget {
        /// The memory's id.
        id: String,
    },
    /// Show one memory as JSON.
    Show {
        /// The memory's id.
        id: String,
    },
    /// Counts per namespace, as JSON.
    Stats,
}

fn pairs(meta: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    meta.iter()
        .map(|m| match m.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--meta takes KEY=VALUE, not `{m}`"),
        })
        .collect()
}

pub(super) async fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        MemoryCommand::Store {
            text,
            namespace,
            meta,
        } => {
            let metadata: Map<String, Value> = pairs(&meta)?
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body = json!({"text": text, "namespace": namespace, "metadata": metadata});
            let stored = client
                .json(client.request(Method::POST, "/api/memory").json(&body))
                .await?;
            let id = stored["id"].as_str().unwrap_or("?");
            if stored["created"].as_bool() == Some(false) {
                println!("{id} (already stored)");
            } else {
                println!("{id}");
            }
        }
        MemoryCommand::Search {
            query,
            namespace,
            limit,
            meta,
            json,
        } => {
            let mut params = vec![
                ("q".to_string(), query),
                ("namespace".to_string(), namespace),
                ("limit".to_string(), limit.to_string()),
            ];
            for (k, v) in pairs(&meta)? {
                params.push((format!("meta.{k}"), v));
            }
            let body = client
                .json(
                    client
                        .request(Method::GET, "/api/memory/search")
                        .query(&params),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let hits = body["hits"].as_array().context("no hits in the answer")?;
            if hits.is_empty() {
                println!("no memories found");
            }
            for hit in hits {
                println!(
                    "{:>8.3}  {:<16} {}\n          {}",
                    hit["score"].as_f64().unwrap_or(0.0),
                    hit["namespace"].as_str().unwrap_or("?"),
                    hit["id"].as_str().unwrap_or("?"),
                    one_line(hit["text"].as_str().unwrap_or(""), 200),
                );
            }
        }
        MemoryCommand::Forget { id } => {
            client
                .send(client.request(Method::DELETE, &format!("/api/memory/{id}")))
                .await?;
            println!("forgot {id}");
        }
        MemoryCommand::Show { id } => {
            let body = client
                .json(client.request(Method::GET, &format!("/api/memory/{id}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        MemoryCommand::Stats => {
            let body = client
                .json(client.request(Method::GET, "/api/memory/stats"))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
    }
    Ok(())
}

/// The text on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}
