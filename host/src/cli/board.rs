//! Client commands of the board: `board list|add|move|comment`, against a
//! running host's `/api/board`.

use super::client::Client;
use super::HostArgs;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};

/// Options of `board`.
#[derive(Debug, Args)]
pub struct BoardArgs {
    #[command(subcommand)]
    command: BoardCommand,
    #[command(flatten)]
    host: HostArgs,
}

#[derive(Debug, Subcommand)]
enum BoardCommand {
    /// The lists and their cards (oldest in their list first).
    List {
        /// Only this list.
        #[arg(long)]
        list: Option<String>,
        /// Only cards with this label.
        #[arg(long)]
        label: Option<String>,
        /// Only cards in their list longer than this, e.g. `48h`.
        #[arg(long, value_name = "DURATION")]
        older_than: Option<String>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Open a card; prints its id.
    Add {
        /// The title.
        title: String,
        /// The description (markdown).
        description: Option<String>,
        /// The list (default Backlog).
        #[arg(long)]
        list: Option<String>,
        /// A label; repeat for more.
        #[arg(long = "label")]
        labels: Vec<String>,
    },
    /// Move a card to a list.
    Move {
        /// The card's id.
        id: String,
        /// The list's name.
        list: String,
    },
    /// Comment on a card.
    Comment {
        /// The card's id.
        id: String,
        /// The comment (markdown).
        text: String,
    },
}

pub(super) async fn run(args: BoardArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.host)?;
    match args.command {
        BoardCommand::List {
            list,
            label,
            older_than,
            json,
        } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            for (key, value) in [
                ("list", list),
                ("label", label),
                ("in_list_longer_than", older_than),
            ] {
                if let Some(v) = value {
                    query.push((key, v));
                }
            }
            // Each page holds every list, with the cards of that page.
            let body = client
                .all_pages("/api/board", &query, |all, more| {
                    let Some(lists) = all["lists"].as_array_mut() else {
                        return;
                    };
                    for page_list in more["lists"].as_array().into_iter().flatten() {
                        if let Some(list) = lists.iter_mut().find(|l| l["id"] == page_list["id"]) {
                            super::client::extend_array(list, page_list, "cards");
                        }
                    }
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                print_board(&body);
            }
        }
        BoardCommand::Add {
            title,
            description,
            list,
            labels,
        } => {
            let mut body = json!({"title": title, "labels": labels});
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if let Some(l) = list {
                body["list"] = json!(l);
            }
            let card = client
                .json(client.request(Method::POST, "/api/board/cards").json(&body))
                .await?;
            println!(
                "{} (in {})",
                card["id"].as_str().unwrap_or("?"),
                card["list"].as_str().unwrap_or("?")
            );
        }
        BoardCommand::Move { id, list } => {
            let card = client
                .json(
                    client
                        .request(Method::PATCH, &format!("/api/board/cards/{id}"))
                        .json(&json!({"list": list})),
                )
                .await?;
            println!("{id} is in {}", card["list"].as_str().unwrap_or("?"));
        }
        BoardCommand::Comment { id, text } => {
            client
                .json(
                    client
                        .request(Method::POST, &format!("/api/board/cards/{id}/comments"))
                        .json(&json!({"text": text})),
                )
                .await?;
            println!("commented on {id}");
        }
    }
    Ok(())
}

fn print_board(body: &Value) {
    let now = crate::capabilities::now_ms();
    for list in body["lists"].as_array().into_iter().flatten() {
        let cards = list["cards"].as_array().cloned().unwrap_or_default();
        println!("{} ({})", list["name"].as_str().unwrap_or("?"), cards.len());
        for card in cards {
            let since = card["list_entered_at_ms"].as_u64().unwrap_or(now);
            let age = std::time::Duration::from_secs(now.saturating_sub(since) / 1000);
            let labels: Vec<&str> = card["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str())
                .collect();
            println!(
                "  {:>6}  {}{}  ({} in list)",
                card["id"].as_str().unwrap_or("?"),
                card["title"].as_str().unwrap_or(""),
                if labels.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", labels.join(", "))
                },
                humantime::format_duration(age)
            );
        }
    }
}
