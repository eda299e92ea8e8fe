//! Client commands of the KPI series: `kpi list | show NAME | push NAME VALUE`.

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

/// Options of `kpi`.
#[derive(Debug, Args)]
pub struct KpiArgs {
    #[command(subcommand)]
    command: KpiCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum KpiCommand {
    /// Every series with its newest value and sample count.
    List {
        /// Only the series whose name starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// The samples of a series in a window that ends now.
    Show {
        /// The series name.
        name: String,
        /// How far back: `1h`, `24h`, `7d`.
        #[arg(long, default_value = "24h")]
        window: String,
        /// Only the series with this label, `KEY=VALUE`; repeat for more.
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record one sample, timed now (what a cron does with curl).
    Push {
        /// The series name.
        name: String,
        /// The value.
        #[arg(allow_negative_numbers = true, value_parser = finite)]
        value: f64,
        /// A label, `KEY=VALUE`; repeat for more.
        #[arg(long = "label", value_parser = label)]
        labels: Vec<(String, String)>,
        /// When it was measured, ms since the Unix epoch (default: the host's now).
        #[arg(long)]
        at: Option<u64>,
    },
}

fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("a label is KEY=VALUE, e.g. agent=alfred".to_string()),
    }
}

fn finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("a sample's value must be finite".to_string()),
        Err(e) => Err(format!("not a number ({e})")),
    }
}

pub(super) async fn run(args: KpiArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        KpiCommand::List { prefix, json } => {
            let query: Vec<(&str, String)> = prefix.map(|p| ("prefix", p)).into_iter().collect();
            let body = client
                .all_pages("/api/kpis", &query, |all, more| {
                    super::client::extend_array(all, &more, "series")
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_list(&body);
            }
        }
        KpiCommand::Show {
            name,
            window,
            labels,
            json,
        } => {
            let mut query = vec![("window".to_string(), window)];
            query.extend(labels.into_iter().map(|(k, v)| (format!("label.{k}"), v)));
            let body = client
                .json(
                    client
                        .request(Method::GET, &format!("/api/kpis/{name}"))
                        .query(&query),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_points(&body);
            }
        }
        KpiCommand::Push {
            name,
            value,
            labels,
            at,
        } => {
            let labels: serde_json::Map<String, Value> =
                labels.into_iter().map(|(k, v)| (k, json!(v))).collect();
            let mut sample = json!({"name": name, "value": value, "labels": labels});
            if let Some(at) = at {
                sample["at"] = json!(at);
            }
            client
                .json(
                    client
                        .request(Method::POST, "/api/kpis/samples")
                        .json(&json!({ "samples": [sample] })),
                )
                .await?;
            println!("recorded {name} = {value}");
        }
    }
    Ok(())
}

fn print_list(body: &Value) {
    let series = body["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        println!("no series");
        return;
    }
    for s in &series {
        println!(
            "{:<60} {:>14}  {:>7} samples",
            s["key"].as_str().unwrap_or("?"),
            number(&s["newest_value"]),
            s["samples"]
        );
    }
}

fn print_points(body: &Value) {
    for s in body["series"].as_array().into_iter().flatten() {
        let labels: Vec<String> = s["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        println!(
            "{}{}",
            s["name"].as_str().unwrap_or("?"),
            if labels.is_empty() {
                String::new()
            } else {
                format!(" {}", labels.join(" "))
            }
        );
        for p in s["points"].as_array().into_iter().flatten() {
            let when = time(p["at"].as_u64().unwrap_or(0));
            let count = p["count"].as_u64().unwrap_or(1);
            if count > 1 {
                println!("  {when}  {:>14}  (mean of {count})", number(&p["value"]));
            } else {
                println!("  {when}  {:>14}", number(&p["value"]));
            }
        }
    }
}

/// A time in ms as `2026-12-01T21:44:00Z`.
pub(super) fn time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.0}"),
        Some(f) => format!("{f:.4}"),
        None => "-".into(),
    }
}
