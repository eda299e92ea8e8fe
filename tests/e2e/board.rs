//! The embedded board end to end: the HTTP API, its errors and the CLI.

use crate::harness::{assert_error, run_cli, Dirs, Host};
use serde_json::{json, Value};

async fn post(host: &Host, path: &str, body: Value) -> (u16, Value) {
    host.send(host.http.post(format!("{}{path}", host.url)).json(&body))
        .await
}

async fn patch(host: &Host, id: &str, body: Value) -> (u16, Value) {
    host.send(
        host.http
            .patch(format!("{}/api/board/cards/{id}", host.url))
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn embedded_board_over_http() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let (status, board) = host.get("/api/board").await;
    assert_eq!(status, 200);
    assert_eq!(board["backend"], "embedded");
    let names: Vec<&str> = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Backlog", "In Progress", "Blocked", "Review", "Done"]
    );

    let (status, card) = post(
        &host,
        "/api/board/cards",
        json!({"title": "Gap: ingest lag over 2 days", "description": "seen by the monitor", "labels": ["gap"]}),
    )
    .await;
    assert_eq!(status, 201, "{card}");
    assert_eq!(
        (card["list"].as_str(), card["labels"].clone()),
        (Some("Backlog"), json!(["gap"]))
    );
    let id = card["id"].as_str().unwrap().to_string();

    let (status, moved) = patch(&host, &id, json!({"list": "blocked"})).await;
    assert_eq!(
        (status, moved["list"].as_str()),
        (200, Some("Blocked")),
        "{moved}"
    );
    let (status, c) = post(
        &host,
        &format!("/api/board/cards/{id}/comments"),
        json!({"text": "waiting on CI"}),
    )
    .await;
    assert_eq!(
        (status, c["card_id"].as_str()),
        (201, Some(id.as_str())),
        "{c}"
    );

    let (_, blocked) = host
        .get("/api/board?list=Blocked&in_list_longer_than=0s")
        .await;
    let lists = blocked["lists"].as_array().unwrap();
    let blocked_list = lists.iter().find(|l| l["name"] == "Blocked").unwrap();
    assert_eq!(blocked_list["cards"][0]["comments"], 1, "{blocked}");
    let (_, later) = host.get("/api/board?in_list_longer_than=48h").await;
    assert!(
        later["lists"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["cards"] == json!([])),
        "{later}"
    );

    // Bad input: clear errors, nothing changed.
    let (status, err) = post(&host, "/api/board/cards", json!({"title": " "})).await;
    assert_error(status, &err, 400, "invalid_board_request");
    let (status, err) = post(
        &host,
        "/api/board/cards",
        json!({"title": "x".repeat(1025)}),
    )
    .await;
    assert_error(status, &err, 400, "invalid_board_request");
    let (status, err) = post(
        &host,
        "/api/board/cards",
        json!({"title": "t", "list": "Someday"}),
    )
    .await;
    assert_error(status, &err, 404, "board_not_found");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Backlog"),
        "{err}"
    );
    let (status, err) = post(
        &host,
        "/api/board/cards",
        json!({"title": "t", "colour": "red"}),
    )
    .await;
    assert_error(status, &err, 400, "invalid_json");
    let (status, err) = patch(&host, &id, json!({"list": "Nowhere", "title": "renamed"})).await;
    assert_error(status, &err, 404, "board_not_found");
    let (status, err) = patch(&host, &id, json!({})).await;
    assert_error(status, &err, 400, "invalid_board_request");
    let (status, err) = patch(&host, "424242", json!({"list": "Done"})).await;
    assert_error(status, &err, 404, "board_not_found");
    let (status, err) = post(
        &host,
        "/api/board/cards/424242/comments",
        json!({"text": "hi"}),
    )
    .await;
    assert_error(status, &err, 404, "board_not_found");
    let (status, err) = host.get("/api/board?in_list_longer_than=soon").await;
    assert_error(status, &err, 400, "invalid_board_request");
    let (_, board) = host.get("/api/board").await;
    let all: Vec<&Value> = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["cards"].as_array().unwrap())
        .collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["title"], "Gap: ingest lag over 2 days");

    // The board survives a restart.
    host.stop();
    let host = Host::start(&dirs, &[]);
    let (_, board) = host.get("/api/board?list=Blocked").await;
    let blocked = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Blocked")
        .unwrap();
    assert_eq!(blocked["cards"][0]["id"], id.as_str());
}

#[tokio::test]
async fn board_commands_against_a_running_host() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let run = |args: &[&str]| run_cli(&host.url, args);
    let (ok, out, err) = run(&[
        "board",
        "add",
        "Gap: agent alfred down",
        "no heartbeat for 10 min",
        "--label",
        "gap",
    ]);
    assert!(ok && out.contains("(in Backlog)"), "{out}{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    let (ok, out, _) = run(&["board", "move", &id, "In Progress"]);
    assert!(ok && out.contains("is in In Progress"), "{out}");
    let (ok, out, _) = run(&["board", "comment", &id, "restarting it"]);
    assert!(ok && out.contains("commented"), "{out}");
    let (ok, out, _) = run(&["board", "list"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("In Progress (1)") && out.contains("Gap: agent alfred down [gap]"),
        "{out}"
    );
    let (ok, out, _) = run(&["board", "list", "--older-than", "1h", "--json"]);
    assert!(ok);
    let body: Value = serde_json::from_str(&out).unwrap();
    assert!(body["lists"]
        .as_array()
        .unwrap()
        .iter()
        .all(|l| l["cards"] == json!([])));
    let (ok, _, err) = run(&["board", "move", &id, "Limbo"]);
    assert!(
        !ok && err.contains("board_not_found (404)") && err.contains("Limbo"),
        "{err}"
    );
}
