//! The embedded board end to end: the HTTP API, its errors and the CLI.

use crate::harness::{assert_error, refused_start, run_cli, run_cli_as, wasm, Dirs, Host};
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

    // "Longer than 0 s" is strict: let a millisecond pass.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
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

/// `board add` (with a label), `board move` and `board comment` through the
/// CLI; the card's id.
fn add_move_comment(host: &Host, title: &str, label: &str, to: &str) -> String {
    let run = |args: &[&str]| run_cli_as(&host.url, host.token.as_deref(), args);
    let (ok, out, err) = run(&["board", "add", title, "details", "--label", label]);
    assert!(ok && out.contains("(in Backlog)"), "{out}{err}");
    let id = out.split_whitespace().next().unwrap().to_string();
    let (ok, out, _) = run(&["board", "move", &id, &to.to_lowercase()]);
    assert!(ok && out.contains(&format!("is in {to}")), "{out}");
    let (ok, out, _) = run(&["board", "comment", &id, "looking into it"]);
    assert!(ok && out.contains("commented"), "{out}");
    id
}

#[tokio::test]
async fn board_commands_against_a_running_host() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let run = |args: &[&str]| run_cli(&host.url, args);
    let id = add_move_comment(&host, "Gap: agent alfred down", "gap", "In Progress");
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

    // More cards than one page holds: the CLI follows the cursor.
    let bulk = (0..1004)
        .map(|i| json!({"title": format!("bulk {i}"), "list": "Review"}))
        .collect();
    let statuses = host.post_all_at_once("/api/board/cards", bulk).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    let (ok, out, err) = run(&["board", "list", "--json"]);
    assert!(ok, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    let cards: usize = body["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cards"].as_array().unwrap().len())
        .sum();
    assert_eq!(cards, 1005, "every card, over two pages");
    let (_, page) = host.get("/api/board").await;
    assert!(page["next_cursor"].is_string(), "the API pages by 100");
}

#[tokio::test]
async fn the_blocked_skill_reads_the_board_within_its_grants() {
    let dirs = Dirs::new();
    dirs.install("blocked", &wasm("blocked"));
    let host = Host::start(&dirs, &[]);
    host.wait_for("blocked", "loaded", |s| s["status"] == "ready")
        .await;
    let (_, card) = post(
        &host,
        "/api/board/cards",
        json!({"title": "Gap: CI red", "list": "Blocked", "labels": ["ci"]}),
    )
    .await;
    post(&host, "/api/board/cards", json!({"title": "Unrelated"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (status, out) = host.invoke("blocked", r#"{"longer_than": 0}"#).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["count"], 1, "{out}");
    assert_eq!(out["cards"][0]["id"], card["id"]);
    assert_eq!(out["cards"][0]["labels"], json!(["ci"]));
    let (_, out) = host.invoke("blocked", "{}").await;
    assert_eq!(
        (out["count"].as_u64(), out["longer_than_seconds"].as_u64()),
        (Some(0), Some(172_800))
    );
    // Its manifest grants `Blocked` only: other lists are refused.
    let (status, err) = host.invoke("blocked", r#"{"list": "Backlog"}"#).await;
    assert_error(status, &err, 422, "board-denied");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("board_read"),
        "{err}"
    );
    let (status, err) = host.invoke("blocked", r#"{"longer_than": "soon"}"#).await;
    assert_error(status, &err, 422, "invalid-input");

    // Without a board grant, a component that imports `board` loads with
    // the import listed, and every board call is denied.
    std::fs::write(dirs.skills.join("blocked.toml"), "board_read = []\n").unwrap();
    let skill = host
        .wait_for("blocked", "the empty grant", |s| {
            s["ungranted_imports"] == json!(["darkfactory:skill/board@0.1.0"])
        })
        .await;
    assert_eq!(skill["status"], "ready", "{skill}");
    let (status, err) = host.invoke("blocked", r#"{"longer_than": 0}"#).await;
    assert_error(status, &err, 422, "board-denied");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may use no board list"),
        "{err}"
    );
}

#[path = "../support/planka_stub.rs"]
mod planka_stub;

fn planka_args(url: &str) -> Vec<String> {
    [
        "--planka-url",
        url,
        "--planka-api-key",
        planka_stub::API_KEY,
        "--planka-project",
        planka_stub::PROJECT,
        "--planka-board",
        planka_stub::BOARD,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_commands_endpoints_and_skill_against_planka() {
    let mut server = planka_stub::start(false).await;
    let dirs = Dirs::new();
    dirs.install("blocked", &wasm("blocked"));
    let args = planka_args(&server.url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start(&dirs, &args);
    let (_, board) = host.get("/api/board").await;
    assert_eq!(board["backend"], "planka", "{board}");
    assert_eq!(board["lists"].as_array().unwrap().len(), 5, "{board}");

    let run = |args: &[&str]| run_cli(&host.url, args);
    let id = add_move_comment(&host, "Gap: ingest lag", "kpi-gap", "Blocked");
    assert_eq!(server.stub.labels_of(&id), ["kpi-gap"]);
    // Planka says when the card entered Blocked: 50 hours ago.
    server.stub.age_card(&id, 50);
    host.wait_for("blocked", "loaded", |s| s["status"] == "ready")
        .await;
    let (status, out) = host.invoke("blocked", r#"{"longer_than": "48h"}"#).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["cards"][0]["id"], id.as_str(), "{out}");
    assert_eq!(out["cards"][0]["comments"], 1, "{out}");
    let hours = out["cards"][0]["hours_in_list"].as_f64().unwrap();
    assert!((50.0..50.2).contains(&hours), "{out}");
    let (_, out) = host.invoke("blocked", r#"{"longer_than": "51h"}"#).await;
    assert_eq!(out["count"], 0, "{out}");

    // Bad input: a label the board lacks, an unknown list, an unknown card.
    let (ok, _, err) = run(&["board", "add", "x", "--label", "invented"]);
    assert!(
        !ok && err.contains("invented") && err.contains("kpi-gap, urgent"),
        "{err}"
    );
    let (status, err) = post(
        &host,
        "/api/board/cards",
        json!({"title": "t", "list": "Someday"}),
    )
    .await;
    assert_error(status, &err, 404, "board_not_found");
    let (status, err) = patch(&host, "42", json!({"list": "Done"})).await;
    assert_error(status, &err, 404, "board_not_found");
    assert_eq!(server.stub.cards().len(), 1);

    // Planka goes away: clear 503s, and the host goes on serving.
    server.stop();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, err) = host.get("/api/board").await;
    assert_error(status, &err, 503, "board_unavailable");
    let (status, err) = host.invoke("blocked", "{}").await;
    assert_error(status, &err, 422, "board-unavailable");
    assert_eq!(host.get("/healthz").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_with_a_wrong_planka_configuration_does_not_start() {
    let server = planka_stub::start(false).await;
    let dirs = Dirs::new();
    let mut args = planka_args(&server.url);
    args[5] = "Nope".into();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--skills"])
        .arg(&dirs.skills)
        .arg("--data")
        .arg(&dirs.data)
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no project `Nope`") && stderr.contains("`Fleet`"),
        "{stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--planka-url",
            &server.url,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--planka-api-key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planka_webhooks_need_their_secret_and_only_the_boards_events_are_kept() {
    let server = planka_stub::start(false).await;
    let dirs = Dirs::new();
    let mut args = planka_args(&server.url);
    args.extend(
        [
            "--token",
            "host-token",
            "--planka-webhook-secret",
            "whsecret",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start(&dirs, &args);
    let url = format!("{}/api/board/webhooks/planka", host.url);
    // Planka's admin points a webhook at the host, with its own secret.
    let answer = reqwest::Client::new()
        .post(format!("{}/api/webhooks", server.url))
        .header("x-api-key", planka_stub::API_KEY)
        .json(
            &json!({"name": "darkfactory", "url": url, "accessToken": "whsecret",
            "events": "cardCreate,cardUpdate,commentCreate"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    // A card on the host's board, moved; and a card another user makes on
    // another board of the same Planka, which Planka delivers all the same.
    let id = add_move_comment(&host, "Gap: CI red", "kpi-gap", "Blocked");
    server
        .stub
        .change_on_other_board("1003", "Someone else's card");
    let events = {
        let started = std::time::Instant::now();
        loop {
            let (_, events) = host.get("/api/board/events").await;
            let events = events["events"].as_array().unwrap().clone();
            if events.len() >= 3 || started.elapsed() > std::time::Duration::from_secs(5) {
                break events;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, all) = host.get("/api/board/events").await;
    let all = all["events"].as_array().unwrap();
    assert_eq!(all.len(), events.len(), "{all:?}");
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds,
        ["commentCreate", "cardUpdate", "cardCreate"],
        "{all:?}"
    );
    assert!(all.iter().all(|e| e["card_id"] == id.as_str()), "{all:?}");
    let moved = &all[1];
    assert_eq!(moved["list"], "Blocked", "{moved}");

    // The host's token is not the webhook's secret; no secret, no delivery.
    let delivery = json!({"event": "cardUpdate",
        "data": {"item": {"id": "77", "name": "x", "listId": "3", "boardId": planka_stub::BOARD_ID}}});
    let (status, err) = host
        .send(
            host.http
                .post(&url)
                .bearer_auth("host-token")
                .json(&delivery),
        )
        .await;
    assert_error(status, &err, 401, "invalid_webhook_secret");
    let (status, err) = host.send(host.http.post(&url).json(&delivery)).await;
    assert_error(status, &err, 401, "invalid_webhook_secret");
    let (status, err) = host
        .send(
            host.http
                .post(&url)
                .bearer_auth("whsecret")
                .json(&json!({"hello": 1})),
        )
        .await;
    assert_error(status, &err, 400, "invalid_webhook");
    // Reading the events needs the host's token.
    let (status, _) = host
        .send(host.http.get(format!("{}/api/board/events", host.url)))
        .await;
    assert_eq!(status, 401);

    // Without a secret there is no receiver; a secret without Planka is a
    // mistake the host refuses to start with.
    host.stop();
    let host = Host::start(&dirs, &[]);
    let url = format!("{}/api/board/webhooks/planka", host.url);
    let (status, err) = host.send(host.http.post(&url).json(&delivery)).await;
    assert_error(status, &err, 404, "webhooks_off");
    host.stop();
    let stderr = refused_start(
        &dirs.skills,
        &dirs.data,
        &["--planka-webhook-secret", "whsecret"],
    );
    assert!(stderr.contains("--planka-url"), "{stderr}");
}

#[tokio::test]
async fn a_skill_reads_and_writes_only_the_lists_it_is_granted() {
    let dirs = Dirs::new();
    dirs.install("clerk", &wasm("clerk"));
    let host = Host::start(&dirs, &[]);
    host.wait_for("clerk", "loaded", |s| s["status"] == "ready")
        .await;
    let call = |input: Value| {
        let host = &host;
        async move { host.invoke("clerk", &input.to_string()).await }
    };
    // A card in Review, put there by an operator.
    let (_, review) = post(
        &host,
        "/api/board/cards",
        json!({"title": "Review me", "list": "Review"}),
    )
    .await;
    let review = review["id"].as_str().unwrap();

    // Reads: every list (`board_read = "*"`).
    let (status, out) = call(json!({"lists": true})).await;
    assert_eq!(
        (status, out["lists"].as_array().unwrap().len()),
        (200, 5),
        "{out}"
    );
    let (status, out) = call(json!({"get": review})).await;
    assert_eq!(
        (status, out["list"].as_str()),
        (200, Some("Review")),
        "{out}"
    );

    // Writes: Backlog and Blocked only.
    let (status, made) =
        call(json!({"create": {"list": "backlog", "title": "Gap", "labels": ["gap"]}})).await;
    assert_eq!(
        (status, made["list"].as_str()),
        (200, Some("Backlog")),
        "{made}"
    );
    let id = made["id"].as_str().unwrap();
    let (status, err) = call(json!({"create": {"list": "Done", "title": "x"}})).await;
    assert_error(status, &err, 422, "board-denied");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Backlog, Blocked"),
        "{err}"
    );
    let (status, out) = call(json!({"move": id, "to": "Blocked"})).await;
    assert_eq!(
        (status, out["list"].as_str()),
        (200, Some("Blocked")),
        "{out}"
    );
    // Into a list it may not write, and out of one: refused, nothing moves.
    let (status, err) = call(json!({"move": id, "to": "Done"})).await;
    assert_error(status, &err, 422, "board-denied");
    let (status, err) = call(json!({"move": review, "to": "Backlog"})).await;
    assert_error(status, &err, 422, "board-denied");
    let (status, out) = call(json!({"comment": id, "text": "on it"})).await;
    assert_eq!((status, out["card_id"].as_str()), (200, Some(id)), "{out}");
    let (status, err) = call(json!({"comment": review, "text": "sneaky"})).await;
    assert_error(status, &err, 422, "board-denied");
    let (_, board) = host.get("/api/board").await;
    let lists = board["lists"].as_array().unwrap();
    let count = |name: &str| {
        lists.iter().find(|l| l["name"] == name).unwrap()["cards"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(
        (
            count("Blocked"),
            count("Review"),
            count("Done"),
            count("Backlog")
        ),
        (1, 1, 0, 0)
    );
    let (_, out) = call(json!({"cards": {"list": "Blocked", "label": "gap"}})).await;
    assert_eq!(out["cards"][0]["comments"], 1, "{out}");

    // Bad input through the interface: an unknown list, card, an empty title.
    let (status, err) = call(json!({"create": {"list": "Backlog", "title": " "}})).await;
    assert_error(status, &err, 422, "board-invalid");
    let (status, err) = call(json!({"cards": {"list": "Someday"}})).await;
    assert_error(status, &err, 422, "board-not-found");
    let (status, err) = call(json!({"get": "4242"})).await;
    assert_error(status, &err, 422, "board-not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planka_is_held_to_its_own_limits_and_explains_its_refusals() {
    let server = planka_stub::start(false).await;
    let dirs = Dirs::new();
    let args = planka_args(&server.url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start(&dirs, &args);

    // 600 emoji are 600 characters but 1 200 UTF-16 code units, which is
    // what Planka counts: refused by the host, before Planka sees it.
    let title = "🚀".repeat(600);
    let (status, err) = post(&host, "/api/board/cards", json!({"title": title})).await;
    assert_error(status, &err, 400, "invalid_board_request");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1200 UTF-16"),
        "{err}"
    );
    assert_eq!(server.stub.count("POST /api/lists"), 0);
    // 1 024 units fit both.
    let (status, card) = post(
        &host,
        "/api/board/cards",
        json!({"title": "🚀".repeat(512)}),
    )
    .await;
    assert_eq!(status, 201, "{card}");

    // A description within 1 MiB whose JSON is over 1 MiB (every quote is
    // escaped): a clear error from the host, no empty 400 from Planka.
    let description = "\"".repeat(700 * 1024);
    let (status, err) = post(
        &host,
        "/api/board/cards",
        json!({"title": "quotes", "description": description}),
    )
    .await;
    assert_error(status, &err, 400, "invalid_board_request");
    let message = err["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("1 MiB") && message.contains("bytes"),
        "{message}"
    );

    // Planka's own reasons reach the caller.
    server
        .stub
        .refuse_next(&["Invalid \"name\": the name is reserved."]);
    let (status, err) = post(&host, "/api/board/cards", json!({"title": "reserved"})).await;
    assert_error(status, &err, 400, "invalid_board_request");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the name is reserved"),
        "{err}"
    );

    // Six cards added at once get six positions, in order.
    let burst = (0..6)
        .map(|i| json!({"title": format!("burst {i}"), "list": "Review"}))
        .collect();
    let statuses = host.post_all_at_once("/api/board/cards", burst).await;
    assert_eq!(statuses, [201; 6]);
    let review = server.stub.list_id("Review");
    let mut positions: Vec<f64> = server
        .stub
        .cards()
        .iter()
        .filter(|c| c["listId"] == review.as_str())
        .map(|c| c["position"].as_f64().unwrap())
        .collect();
    assert_eq!(positions.len(), 6);
    positions.dedup();
    assert_eq!(positions.len(), 6, "{positions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planka_url_that_is_a_web_page_stops_the_host_from_starting() {
    let server = planka_stub::start(false).await;
    let dirs = Dirs::new();
    let args = planka_args(&format!("{}/boards/{}", server.url, planka_stub::BOARD_ID));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let stderr = refused_start(&dirs.skills, &dirs.data, &args);
    assert!(
        stderr.contains("web page") && stderr.contains("--planka-url"),
        "{stderr}"
    );
    // A Planka that is down is not a configuration error: the host starts.
    let mut down = planka_stub::start(false).await;
    let url = down.url.clone();
    down.stop();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let args = planka_args(&url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let host = Host::start(&dirs, &args);
    let (status, err) = host.get("/api/board").await;
    assert_error(status, &err, 503, "board_unavailable");
}

#[tokio::test]
async fn board_listings_are_paged_and_cut_descriptions() {
    let dirs = Dirs::new();
    let host = Host::start(&dirs, &[]);
    let big = "d".repeat(1 << 20);
    for i in 0..12 {
        let (status, _) = post(
            &host,
            "/api/board/cards",
            json!({"title": format!("card {i}"), "description": big}),
        )
        .await;
        assert_eq!(status, 201);
    }
    // A page of five, descriptions cut: small, and the cursor goes on.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/board?limit=5&cursor={c}"),
            None => "/api/board?limit=5".to_string(),
        };
        let r = host
            .http
            .get(format!("{}{path}", host.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.unwrap();
        assert!(body.len() < 16 * 1024, "{} bytes", body.len());
        let page: Value = serde_json::from_slice(&body).unwrap();
        for list in page["lists"].as_array().unwrap() {
            for card in list["cards"].as_array().unwrap() {
                assert_eq!(card["description"].as_str().unwrap().len(), 500);
                assert_eq!(card["description_truncated"], true);
                seen.push(card["title"].as_str().unwrap().to_string());
            }
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    let want: Vec<String> = (0..12).map(|i| format!("card {i}")).collect();
    assert_eq!(seen, want);
    // The whole descriptions when asked for, one page of two.
    let (status, page) = host.get("/api/board?limit=2&descriptions=full").await;
    assert_eq!(status, 200);
    let cards = page["lists"][0]["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 2);
    assert_eq!(cards[0]["description"].as_str().unwrap().len(), 1 << 20);
    assert!(cards[0].get("description_truncated").is_none());
    for bad in ["limit=0", "limit=5000", "cursor=abc", "descriptions=all"] {
        let (status, err) = host.get(&format!("/api/board?{bad}")).await;
        assert_error(status, &err, 400, "invalid_board_request");
    }
    // The other listings page the same way.
    let (_, skills) = host.get("/api/skills?limit=1").await;
    assert!(skills["next_cursor"].is_null(), "{skills}");
    let (status, err) = host.get("/api/capabilities?limit=0").await;
    assert_error(status, &err, 400, "invalid_fleet_request");
}
