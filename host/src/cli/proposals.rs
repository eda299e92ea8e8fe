//! Client commands of the factory's proposals and approvals: `proposals
//! list | show ID` (a proposal with its source and diagnostics), and
//! `approvals list | show ID | approve ID | reject ID`.

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

/// Options of `proposals`.
#[derive(Debug, Args)]
pub struct ProposalsArgs {
    #[command(subcommand)]
    command: ProposalsCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum ProposalsCommand {
    /// The proposals, newest first.
    List {
        /// Only the proposals of this gap.
        #[arg(long)]
        gap: Option<u64>,
        /// Only proposals in this state.
        #[arg(long, value_parser = ["synthesising", "failed", "awaiting_approval", "approved", "rejected", "expired"])]
        state: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One proposal: its verification, rounds and requests as JSON, or
    /// only its `workflow.md` with `--source`.
    Show {
        /// The proposal's id.
        id: u64,
        /// Print only its source.
        #[arg(long)]
        source: bool,
    },
}

/// Options of `approvals`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(subcommand)]
    command: ApprovalsCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// The pending approval requests (`--all`: decided ones too).
    List {
        /// Decided and expired requests too.
        #[arg(long)]
        all: bool,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One request, with the refused attempts to decide it, as JSON.
    Show {
        /// The request's id.
        id: u64,
    },
    /// Approve a pending request.
    Approve {
        /// The request's id.
        id: u64,
    },
    /// Reject a pending request.
    Reject {
        /// The request's id.
        id: u64,
    },
}

pub(super) async fn run_proposals(args: ProposalsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        ProposalsCommand::List { gap, state, json } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(gap) = gap {
                query.push(("gap", gap.to_string()));
            }
            if let Some(state) = state {
                query.push(("state", state));
            }
            let body = client
                .all_pages("/api/proposals", &query, |all, more| {
                    super::client::extend_array(all, &more, "proposals")
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            if let Some(error) = body["policy"]["error"].as_str() {
                println!("the policy file's newest text was refused; the policy in force stays:\n{error}");
            }
            let proposals = body["proposals"].as_array().cloned().unwrap_or_default();
            if proposals.is_empty() {
                println!("no proposals");
            }
            for p in &proposals {
                println!(
                    "{:>5}  gap {:<5} {:<18} {:<32} {}{}",
                    p["id"],
                    p["gap_id"],
                    p["state"].as_str().unwrap_or("?"),
                    p["skill"].as_str().unwrap_or("?"),
                    p["summary"].as_str().unwrap_or(""),
                    p["reason"]
                        .as_str()
                        .map(|r| format!("\n       {r}"))
                        .unwrap_or_default()
                );
            }
        }
        ProposalsCommand::Show { id, source } => {
            let body = client
                .json(client.request(Method::GET, &format!("/api/proposals/{id}")))
                .await?;
            if source {
                print!("{}", body["source"].as_str().unwrap_or(""));
            } else {
                println!("{}", serde_json::to_string_pretty(&body)?);
            }
        }
    }
    Ok(())
}

pub(super) async fn run_approvals(args: ApprovalsArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        ApprovalsCommand::List { all, json } => {
            let query = [("all", all.to_string()), ("limit", "1000".to_string())];
            let body = client
                .json(client.request(Method::GET, "/api/approvals").query(&query))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let requests = body["approvals"].as_array().cloned().unwrap_or_default();
            if requests.is_empty() {
                println!("no {}approval requests", if all { "" } else { "pending " });
            }
            for r in &requests {
                println!("{}", line(r));
            }
        }
        ApprovalsCommand::Show { id } => {
            let body = client
                .json(client.request(Method::GET, &format!("/api/approvals/{id}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        ApprovalsCommand::Approve { id } => decide(&client, id, "approve").await?,
        ApprovalsCommand::Reject { id } => decide(&client, id, "reject").await?,
    }
    Ok(())
}

async fn decide(client: &Client, id: u64, verb: &str) -> anyhow::Result<()> {
    {
        {
            let body = client
                .json(
                    client
                        .request(Method::POST, &format!("/api/approvals/{id}/{verb}"))
                        .json(&json!({ "via": "cli" })),
                )
                .await?;
            println!(
                "request {id} {}: proposal {} is {}",
                body["approval"]["state"].as_str().unwrap_or("?"),
                body["proposal"]["id"],
                body["proposal"]["state"].as_str().unwrap_or("?")
            );
        }
    }
    Ok(())
}

fn line(r: &Value) -> String {
    format!(
        "{:>5}  proposal {:<5} {:<9} sha256 {}  expires {}{}",
        r["id"],
        r["proposal_id"],
        r["state"].as_str().unwrap_or("?"),
        r["sha256"]
            .as_str()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or(""),
        super::kpi::time(r["expires_at_ms"].as_u64().unwrap_or(0)),
        r["decided_by"]
            .as_str()
            .map(|by| format!("  decided by {by}"))
            .unwrap_or_default()
    )
}
