//! Client commands of the fleet registry: `fleet heartbeat|list|show|route|forget`.

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// Options of `fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum FleetCommand {
    /// Send an agent's heartbeat (what an agent's cron does with curl).
    Heartbeat {
        /// The agent's name.
        #[arg(long)]
        agent: String,
        /// Its skill tags, comma-separated.
        #[arg(long, value_delimiter = ',')]
        skills: Vec<String>,
        /// Its load, 0 (idle) to 1 (full).
        #[arg(long)]
        load: f64,
        /// What it is working on.
        #[arg(long)]
        task: Option<String>,
        /// What it is good at, comma-separated.
        #[arg(long, value_delimiter = ',')]
        specialties: Vec<String>,
        /// Its heartbeat interval, when not the host's default (e.g. `5m`).
        #[arg(long, value_parser = humantime::parse_duration)]
        interval: Option<Duration>,
    },
    /// Every agent with its status.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// One agent, as JSON.
    Show {
        /// The agent's name.
        agent: String,
    },
    /// The agent that should take a task, and why.
    Route {
        /// The task, in words or as a skill tag.
        task: String,
        /// Skills the agent must have, comma-separated.
        #[arg(long, value_delimiter = ',')]
        require: Vec<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget an agent (its next heartbeat brings it back).
    Forget {
        /// The agent's name.
        agent: String,
    },
}

pub(super) async fn run(args: FleetArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        FleetCommand::Heartbeat {
            agent,
            skills,
            load,
            task,
            specialties,
            interval,
        } => {
            let mut body = json!({
                "agent": agent,
                "skills": skills,
                "load": load,
                "specialties": specialties,
                "last_heartbeat": crate::capabilities::now_ms() / 1000,
            });
            if let Some(task) = task {
                body["current_task"] = json!(task);
            }
            if let Some(interval) = interval {
                body["interval_seconds"] = json!(interval.as_secs());
            }
            let seen = client
                .json(
                    client
                        .request(Method::POST, "/api/fleet/heartbeat")
                        .json(&body),
                )
                .await?;
            println!(
                "{} is {} (heartbeat {})",
                seen["agent"].as_str().unwrap_or("?"),
                seen["status"].as_str().unwrap_or("?"),
                seen["heartbeats"]
            );
        }
        FleetCommand::List { json } => {
            let body = client
                .all_pages("/api/capabilities", &[], |all, more| {
                    super::client::extend_array(all, &more, "agents")
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_agents(&body);
            }
        }
        FleetCommand::Show { agent } => {
            let body = client
                .json(client.request(Method::GET, &format!("/api/capabilities/{agent}")))
                .await?;
            println!("{}", serde_json::to_string_pretty(&body)?);
        }
        FleetCommand::Route {
            task,
            require,
            json,
        } => {
            let body = json!({"task": task, "required_skills": require});
            let decision = client
                .json(client.request(Method::POST, "/api/route").json(&body))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&decision)?);
            } else {
                print_route(&decision);
            }
        }
        FleetCommand::Forget { agent } => {
            client
                .send(client.request(Method::DELETE, &format!("/api/capabilities/{agent}")))
                .await?;
            println!("forgot {agent}");
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn print_agents(body: &Value) {
    println!(
        "{} up, {} stale, {} down ({})",
        body["up"],
        body["stale"],
        body["down"],
        body["backend"].as_str().unwrap_or("?")
    );
    for a in body["agents"].as_array().into_iter().flatten() {
        println!(
            "  {:<20} {:<5} load {:.2}  {:>5} s ago  skills: {}  task: {}",
            a["agent"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["load"].as_f64().unwrap_or(0.0),
            a["seconds_since_heartbeat"],
            text(&a["skills"]),
            text(&a["current_task"])
        );
    }
}

fn print_route(d: &Value) {
    println!(
        "{} (score {:.3})",
        d["agent"].as_str().unwrap_or("?"),
        d["score"].as_f64().unwrap_or(0.0)
    );
    for reason in d["reasons"].as_array().into_iter().flatten() {
        println!("  {}", reason.as_str().unwrap_or(""));
    }
    println!("candidates:");
    for c in d["candidates"].as_array().into_iter().flatten() {
        println!(
            "  {:<20} {:.3}  {}",
            c["agent"].as_str().unwrap_or("?"),
            c["score"].as_f64().unwrap_or(0.0),
            c["reason"].as_str().unwrap_or("")
        );
    }
}
