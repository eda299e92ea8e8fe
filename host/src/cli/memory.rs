//! Client commands of the fleet's memory: `memory store|search|forget|show|stats`,
//! against a running host's `/api/memory`.

use super::client::Client;
use super::HostArgs;
use crate::capabilities::memory::ingest::{is_idle, CHUNK_BYTES};
use crate::capabilities::memory::markdown;
use crate::capabilities::memory::transcript::transcripts;
use crate::capabilities::memory::DEFAULT_MIN_DENSITY;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

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
    /// Counts per namespace and the ingest's lag, as JSON.
    Stats,
    /// Ingest conversation transcripts (a `.jsonl` file, an OpenClaw agent
    /// store `openclaw-agent.sqlite`, or every one of them under a
    /// directory) from where the last ingest of each stopped; the usage
    /// their assistant messages record goes to `agent.cost_usd` and
    /// `agent.tokens`.
    Ingest {
        /// A transcript file, a store, or a directory of them.
        path: PathBuf,
        /// `org`, `agent:<name>` or `user:<id>`.
        #[arg(long, short)]
        namespace: String,
        /// Skip exchanges already stored. Always on: a memory's id is the
        /// sha256 of its normalised text; accepted so memory.sh scripts run.
        #[arg(long)]
        dedupe: bool,
        /// Drop exchanges whose information density is under this (0 to 1).
        #[arg(long, value_name = "DENSITY", default_value_t = DEFAULT_MIN_DENSITY)]
        quality_filter: f64,
        /// The agent whose transcripts these are, for their usage (read from
        /// an `agents/AGENT/` part of each path when absent).
        #[arg(long)]
        agent: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Seed memory from a markdown file: one memory per section.
    Import {
        /// The markdown file (e.g. MEMORY.md).
        file: PathBuf,
        /// `org`, `agent:<name>` or `user:<id>`.
        #[arg(long, short)]
        namespace: String,
    },
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
        MemoryCommand::Ingest {
            path,
            namespace,
            dedupe: _,
            quality_filter,
            agent,
            json,
        } => {
            if !(0.0..=1.0).contains(&quality_filter) {
                bail!("--quality-filter must be between 0 and 1");
            }
            let report =
                ingest(&client, &path, &namespace, quality_filter, agent.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_report(&report);
            }
            let unreadable = report["unreadable"].as_array().map_or(0, Vec::len);
            if unreadable > 0 {
                let what = if unreadable == 1 {
                    "1 transcript".to_string()
                } else {
                    format!("{unreadable} transcripts")
                };
                bail!("{what} could not be read; the others were ingested");
            }
        }
        MemoryCommand::Import { file, namespace } => {
            import(&client, &file, &namespace).await?;
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

/// Sends each transcript file to the host in chunks from its watermark,
/// with a progress bar over the bytes; returns the summed report.
async fn ingest(
    client: &Client,
    path: &Path,
    namespace: &str,
    min_density: f64,
    agent: Option<&str>,
) -> anyhow::Result<Value> {
    let listing = transcripts(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    if listing.transcripts.is_empty() && listing.unreadable.is_empty() {
        bail!(
            "no .jsonl transcripts or OpenClaw stores under `{}`",
            path.display()
        );
    }
    // What could not be read is reported; the rest is still read.
    let mut unreadable: Vec<Value> = listing
        .unreadable
        .into_iter()
        .map(|(file, error)| json!({"file": file, "error": error}))
        .collect();
    let mut plan = Vec::new();
    let mut total = 0u64;
    for file in listing.transcripts {
        let key = file.key();
        let stat = match file.stat() {
            Ok(stat) => stat,
            Err(e) => {
                unreadable.push(json!({"file": key, "error": e.to_string()}));
                continue;
            }
        };
        let mut offset = watermark(client, &key, namespace).await?;
        if stat.len < offset {
            offset = 0; // truncated or replaced: from the top
        }
        total += stat.len - offset;
        plan.push((file, key, offset, stat.len, is_idle(stat.modified_ms)));
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    // Every count, 0 when no chunk had to be sent.
    let mut sum: Map<String, Value> = COUNTS
        .iter()
        .filter(|k| **k != "newest_message_ms")
        .map(|k| (k.to_string(), json!(0)))
        .collect();
    let mut malformed = Vec::new();
    let files_count = plan.len();
    for (file, key, mut offset, len, idle) in plan {
        bar.set_message(file.short_name());
        let mut chunk = CHUNK_BYTES;
        while offset < len {
            let bytes = match file.read_range(offset, chunk) {
                // Shorter than it was a moment ago: read again next run.
                Ok(bytes) if bytes.is_empty() => break,
                Ok(bytes) => bytes,
                Err(e) => {
                    unreadable.push(json!({"file": key, "error": e.to_string()}));
                    break;
                }
            };
            let at_end = offset + bytes.len() as u64 >= len;
            let bytes_len = bytes.len();
            let mut query = vec![
                ("namespace", namespace.to_string()),
                ("min_density", min_density.to_string()),
                ("source", key.clone()),
                ("offset", offset.to_string()),
                ("last", (at_end && idle).to_string()),
            ];
            if let Some(agent) = agent {
                query.push(("agent", agent.to_string()));
            }
            let rb = client
                .request(Method::POST, "/api/memory/ingest")
                .query(&query)
                .header("content-type", "application/x-ndjson")
                .body(bytes);
            let sent = bytes_len;
            let result = match client.json(rb).await {
                Ok(r) => r,
                Err(e) if e.to_string().contains("watermark_moved") => {
                    // Another ingest read this file meanwhile: go on from it.
                    let now = watermark(client, &key, namespace).await?;
                    bar.inc(now.saturating_sub(offset));
                    offset = now;
                    continue;
                }
                Err(e) => return Err(e.context(format!("while ingesting `{key}`"))),
            };
            add_counts(&mut sum, &result);
            if let Some(list) = result["malformed"].as_array() {
                malformed.extend(list.iter().cloned());
            }
            let consumed = result["consumed"].as_u64().unwrap_or(0);
            if consumed == 0 {
                // The file's last exchange may still grow, or the file
                // shrank since it was measured: the next run.
                if at_end || sent < chunk {
                    break;
                }
                chunk = chunk.saturating_mul(2);
                continue;
            }
            offset += consumed;
            bar.inc(consumed);
            if at_end {
                break;
            }
        }
    }
    bar.finish_and_clear();
    sum.insert("files".into(), json!(files_count));
    malformed.truncate(100);
    sum.insert("malformed".into(), Value::Array(malformed));
    sum.insert("unreadable".into(), Value::Array(unreadable));
    Ok(Value::Object(sum))
}

async fn watermark(client: &Client, source: &str, namespace: &str) -> anyhow::Result<u64> {
    let body = client
        .json(
            client
                .request(Method::GET, "/api/memory/ingest/watermark")
                .query(&[("source", source), ("namespace", namespace)]),
        )
        .await?;
    Ok(body["offset"].as_u64().unwrap_or(0))
}

const COUNTS: [&str; 13] = [
    "usage_recorded",
    "usage_duplicates",
    "usage_unattributed",
    "usage_out_of_range",
    "bytes",
    "exchanges",
    "stored",
    "duplicates",
    "too_short",
    "low_density",
    "skipped_entries",
    "malformed_lines",
    "newest_message_ms",
];

fn add_counts(sum: &mut Map<String, Value>, chunk: &Value) {
    for key in COUNTS {
        let Some(n) = chunk[key].as_u64() else {
            continue;
        };
        let old = sum.get(key).and_then(Value::as_u64).unwrap_or(0);
        let new = if key == "newest_message_ms" {
            old.max(n)
        } else {
            old + n
        };
        sum.insert(key.to_string(), json!(new));
    }
}

fn print_report(r: &Value) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    println!(
        "{} files, {} exchanges: {} stored, {} already stored, {} too short, {} low density, \
         {} other entries skipped, {} malformed lines",
        n("files"),
        n("exchanges"),
        n("stored"),
        n("duplicates"),
        n("too_short"),
        n("low_density"),
        n("skipped_entries"),
        n("malformed_lines"),
    );
    let calls = [
        "usage_recorded",
        "usage_duplicates",
        "usage_unattributed",
        "usage_out_of_range",
    ]
    .map(n);
    if calls.iter().any(|c| *c > 0) {
        println!(
            "{} model calls: {} recorded as cost and tokens, {} recorded before, {} with no \
             agent known, {} at a time the KPI store does not take",
            calls.iter().sum::<u64>(),
            calls[0],
            calls[1],
            calls[2],
            calls[3]
        );
    }
    for u in r["unreadable"].as_array().into_iter().flatten() {
        println!(
            "  {}: not read: {}",
            u["file"].as_str().unwrap_or("?"),
            u["error"].as_str().unwrap_or("?")
        );
    }
    for m in r["malformed"].as_array().into_iter().flatten().take(20) {
        println!(
            "  {}:{}: {}",
            m["file"].as_str().unwrap_or("?"),
            m["line"],
            m["error"].as_str().unwrap_or("?")
        );
    }
}

/// Stores each section of a markdown file as one memory.
async fn import(client: &Client, file: &Path, namespace: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read `{}`", file.display()))?;
    let sections = markdown::sections(&text);
    if sections.is_empty() {
        bail!("`{}` has no sections to import", file.display());
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut stored, mut existing, mut failed) = (0, 0, 0);
    for section in &sections {
        let mut metadata = Map::new();
        metadata.insert("file".into(), json!(name));
        metadata.insert("line".into(), json!(section.line.to_string()));
        if !section.path.is_empty() {
            metadata.insert("section".into(), json!(section.path));
        }
        let body = json!({"text": section.text, "namespace": namespace, "metadata": metadata});
        match client
            .json(client.request(Method::POST, "/api/memory").json(&body))
            .await
        {
            Ok(out) if out["created"].as_bool() == Some(true) => stored += 1,
            Ok(_) => existing += 1,
            // A bad section (over 64 KiB, say) is reported; the rest go on.
            Err(e) if e.to_string().contains("(400)") => {
                eprintln!("{}:{}: not imported: {e}", file.display(), section.line);
                failed += 1;
            }
            Err(e) => return Err(e),
        }
    }
    println!(
        "{} sections: {stored} stored, {existing} already stored, {failed} not imported",
        sections.len()
    );
    if failed > 0 {
        bail!("{failed} sections were not imported");
    }
    Ok(())
}
