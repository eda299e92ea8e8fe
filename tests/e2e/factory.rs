//! The factory's watch end to end, on a host whose clock the test drives
//! (`--test-clock`): each watch fires once after `for`, opens exactly one
//! card, does not flap, clears with hysteresis, survives a restart in the
//! middle of a `for`, is inhibited, and makes no gap of a source that is
//! down.

use crate::harness::{run_cli, Dirs, Host};
use serde_json::{json, Value};
use std::time::Duration;

/// 2027-01-15T08:00:00Z.
pub(crate) const T0: u64 = 1_800_000_000_000;
pub(crate) const MINUTE: u64 = 60_000;
pub(crate) const HOUR: u64 = 60 * MINUTE;

/// A host on a manual clock, and the clock's time.
pub(crate) struct Watch {
    pub(crate) host: Host,
    pub(crate) now: u64,
    extra: Vec<String>,
}

impl Watch {
    pub(crate) fn start(dirs: &Dirs, extra: &[&str]) -> Watch {
        Watch::start_at(dirs, extra, T0)
    }

    pub(crate) fn start_at(dirs: &Dirs, extra: &[&str], now: u64) -> Watch {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        // Evaluations run when the test asks (the loop's own come a
        // thousand hours apart).
        let mut args = vec![
            "--test-clock".to_string(),
            now.to_string(),
            "--eval-interval".into(),
            "1000h".into(),
        ];
        args.extend(extra.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Watch {
            host: Host::start(dirs, &refs),
            now,
            extra,
        }
    }

    /// Stops the host and starts it again on the same data at the same time.
    pub(crate) fn restart(self, dirs: &Dirs) -> Watch {
        let (now, extra) = (self.now, self.extra.clone());
        self.host.stop();
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        Watch::start_at(dirs, &refs, now)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        let (status, out) = self
            .host
            .send(
                self.host
                    .http
                    .post(format!("{}{path}", self.host.url))
                    .json(&body),
            )
            .await;
        assert!(
            status == 200 || status == 201,
            "POST {path}: {status} {out:#}"
        );
        out
    }

    pub(crate) async fn advance(&mut self, ms: u64) {
        let out = self.post("/api/clock", json!({ "advance_ms": ms })).await;
        self.now += ms;
        assert_eq!(out["now_ms"], self.now);
    }

    pub(crate) async fn evaluate(&self) -> Value {
        let (status, report) = self
            .host
            .send(
                self.host
                    .http
                    .post(format!("{}/api/factory/evaluate", self.host.url)),
            )
            .await;
        assert_eq!(status, 200, "{report:#}");
        assert_eq!(report["at_ms"], self.now);
        report
    }

    pub(crate) async fn push(&self, name: &str, value: f64, labels: Value) {
        self.post(
            "/api/kpis/samples",
            json!({"samples": [{"name": name, "value": value, "labels": labels}]}),
        )
        .await;
    }

    /// Every card with the label `gap`, in any list.
    pub(crate) async fn gap_cards(&self) -> Vec<Value> {
        let (status, board) = self.host.get("/api/board?label=gap").await;
        assert_eq!(status, 200, "{board}");
        board["lists"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["cards"].as_array().unwrap().clone())
            .collect()
    }

    pub(crate) async fn gaps(&self) -> Value {
        let (status, gaps) = self.host.get("/api/gaps").await;
        assert_eq!(status, 200, "{gaps}");
        gaps
    }

    pub(crate) async fn card(&self, list: &str, title: &str) -> String {
        let out = self
            .post("/api/board/cards", json!({"title": title, "list": list}))
            .await;
        out["id"].as_str().unwrap().to_string()
    }

    pub(crate) async fn move_card(&self, id: &str, list: &str) {
        let (status, out) = self
            .host
            .send(
                self.host
                    .http
                    .patch(format!("{}/api/board/cards/{id}", self.host.url))
                    .json(&json!({ "list": list })),
            )
            .await;
        assert_eq!(status, 200, "{out}");
    }

    /// The proposal of gap `gap` once synthesis is done with it (it runs
    /// on a task of its own, within a second of the evaluation).
    pub(crate) async fn proposal_of(&self, gap: u64) -> Value {
        self.proposal_within(gap, 10).await
    }

    /// The proposal of gap `gap` once synthesis is done with it, waiting
    /// up to `secs` seconds.
    pub(crate) async fn proposal_within(&self, gap: u64, secs: u64) -> Value {
        for _ in 0..secs * 20 {
            let (status, page) = self.host.get(&format!("/api/proposals?gap={gap}")).await;
            assert_eq!(status, 200, "{page:#}");
            if let Some(p) = page["proposals"].as_array().and_then(|p| p.first()) {
                if p["state"] != "synthesising" {
                    let (_, full) = self.host.get(&format!("/api/proposals/{}", p["id"])).await;
                    return full;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gap {gap} got no proposal within {secs} s");
    }

    pub(crate) async fn heartbeat(&self, agent: &str, interval_seconds: u64) {
        self.post(
            "/api/fleet/heartbeat",
            json!({"agent": agent, "skills": ["research"], "load": 0.1, "interval_seconds": interval_seconds}),
        )
        .await;
    }
}

pub(crate) fn transitions(report: &Value) -> Vec<String> {
    report["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn three_cards_blocked_two_days_open_one_gap_card_that_a_restart_keeps() {
    let dirs = Dirs::new();
    let mut w = Watch::start(&dirs, &[]);
    let mut blocked = Vec::new();
    for title in [
        "Migrate the CI runners",
        "Renew the TLS certificate",
        "Rotate the API keys",
    ] {
        blocked.push(w.card("Blocked", title).await);
    }
    let report = w.evaluate().await;
    assert_eq!(transitions(&report), Vec::<String>::new(), "{report:#}");
    assert!(report["samples"].as_u64().unwrap() >= 1, "{report:#}");
    let (_, series) = w
        .host
        .get("/api/kpis/board.cards_blocked_long?window=1h")
        .await;
    assert_eq!(series["series"][0]["points"][0]["value"], 0.0, "{series:#}");

    // 47 hours: not yet. A fourth card blocked now is too young to count.
    w.advance(47 * HOUR).await;
    assert!(transitions(&w.evaluate().await).is_empty());
    w.card("Blocked", "Blocked only today").await;
    w.advance(2 * HOUR).await;
    let report = w.evaluate().await;
    assert_eq!(
        transitions(&report),
        ["1 cards-blocked pending", "1 cards-blocked firing"],
        "{report:#}"
    );
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    let card = &cards[0];
    assert_eq!(card["list"], "Backlog");
    assert_eq!(card["title"], "Gap: 3 cards blocked for more than 48 h");
    // Listings cut descriptions: the gap shows its card whole.
    let (_, gap) = w.host.get("/api/gaps/1").await;
    let description = gap["card"]["description"].as_str().unwrap();
    assert!(!description.contains("Blocked only today"), "{description}");
    for title in [
        "Migrate the CI runners",
        "Renew the TLS certificate",
        "Rotate the API keys",
    ] {
        assert!(description.contains(title), "{description}");
    }
    assert!(
        description.contains("in Blocked since 2027-01-15 08:00 UTC (49 h)"),
        "{description}"
    );
    assert!(
        description.contains("the rule fires when it is > 2"),
        "{description}"
    );
    assert!(description.contains("gap-id: 1"), "{description}");
    let card_id = card["id"].as_str().unwrap().to_string();

    // The gap gets a fix, written offline for it, that passes the whole
    // gate; the card says so.
    let proposal = w.proposal_of(1).await;
    assert_eq!(proposal["state"], "awaiting_approval", "{proposal:#}");
    assert_eq!(proposal["skill"], "fix-cards-blocked");
    let steps: Vec<&str> = proposal["verification"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["passed"] == true)
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["check", "compile", "tests", "shadow", "policy"]);
    // The shadow run saw the three cards and wrote nothing.
    let writes = proposal["verification"]["shadow"]["writes"]
        .as_array()
        .unwrap();
    assert_eq!(
        writes.len(),
        5,
        "three comments, a move, the report: {writes:#?}"
    );
    let (_, board) = w.host.get("/api/board").await;
    let review = board["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "Review")
        .map_or(0, |l| l["cards"].as_array().unwrap().len());
    assert_eq!(review, 0, "nothing was moved: {board:#}");
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(gap["card"]["comments"], 1, "the proposal: {gap:#}");

    // However many evaluations see it, it stays one card.
    for _ in 0..3 {
        w.advance(MINUTE).await;
        let report = w.evaluate().await;
        assert!(report["cards"].as_array().unwrap().is_empty(), "{report:#}");
    }
    let w = w.restart(&dirs);
    let report = w.evaluate().await;
    assert!(transitions(&report).is_empty(), "{report:#}");
    assert_eq!(w.gap_cards().await.len(), 1);
    let gaps = w.gaps().await;
    assert_eq!(gaps["gaps"].as_array().unwrap().len(), 1, "{gaps:#}");
    assert_eq!(gaps["gaps"][0]["state"], "firing");
    assert_eq!(gaps["gaps"][0]["card_id"], json!(card_id));

    // Two cards unblocked: 1 is under the clear threshold (2 would sit
    // inside the band), and after keep_firing_for the gap resolves; the
    // card is commented and moved to Done.
    let mut w = w;
    w.move_card(&blocked[0], "Done").await;
    w.move_card(&blocked[1], "Done").await;
    w.advance(MINUTE).await;
    let report = w.evaluate().await;
    assert!(
        transitions(&report).is_empty(),
        "clearing, not resolved yet: {report:#}"
    );
    w.advance(HOUR).await;
    let report = w.evaluate().await;
    assert_eq!(
        transitions(&report),
        ["1 cards-blocked resolved"],
        "{report:#}"
    );
    assert_eq!(report["cards"], json!([format!("{card_id} done")]));
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(gap["state"], "resolved");
    assert_eq!(gap["card"]["list"], "Done", "{gap:#}");
    assert_eq!(
        gap["card"]["comments"], 2,
        "the proposal, the resolution: {gap:#}"
    );
    assert_eq!(gap["evaluations"][0]["note"], "resolved");
    assert!(
        gap["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["note"].as_str().unwrap().starts_with("clear since")),
        "{gap:#}"
    );
    let (ok, stdout, stderr) = run_cli(&w.host.url, &["gaps", "list", "--state", "resolved"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("resolved  cards-blocked"), "{stdout}");

    // The figures, for a Prometheus server.
    let response = w
        .host
        .http
        .get(format!("{}/metrics", w.host.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for line in [
        "darkfactory_gaps{rule=\"cards-blocked\",state=\"resolved\"} 1",
        "darkfactory_gaps{rule=\"agent-down\",state=\"firing\"} 0",
        "darkfactory_monitor_up{monitor=\"board\"} 1",
        "darkfactory_evaluations_total ",
        "# TYPE darkfactory_invocation_duration_seconds histogram",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}

const QUEUE_RULES: &str = r#"
[[rule]]
name = "queue-deep"
series = "queue.depth"
by = ["queue"]
window = "2m"
fire = "> 2.0"
clear = "< 1.5"
for = "10m"
keep_firing_for = "5m"
summary = "queue {labels.queue} is {value} deep"
"#;

async fn wait_for_rules(w: &Watch, check: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (_, rules) = w.host.get("/api/rules").await;
        if check(&rules) {
            return rules;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the rule file was not read again: {rules:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rule_with_hysteresis_fires_once_does_not_flap_and_a_restart_mid_for_keeps_it() {
    let dirs = Dirs::new();
    let mut w = Watch::start(&dirs, &[]);
    let q1 = json!({"queue": "q1"});
    w.push("queue.depth", 1.0, q1.clone()).await;

    // A broken file is refused with its place; the rules in force stay.
    let rules_path = dirs.data.join("rules.toml");
    std::fs::write(
        &rules_path,
        QUEUE_RULES.replace("fire = \"> 2.0\"", "fire = \"> two\""),
    )
    .unwrap();
    let rules = wait_for_rules(&w, |r| !r["status"]["error"].is_null()).await;
    let error = rules["status"]["error"].as_str().unwrap();
    assert!(
        error.contains("rules.toml:7:8: `fire`: \"> two\""),
        "{error}"
    );
    assert_eq!(
        error.lines().count(),
        1,
        "one error, not its echoes: {error}"
    );
    assert_eq!(rules["status"]["rules"], 5, "the five watches still run");
    let (ok, _, stderr) = run_cli(
        &w.host.url,
        &["rules", "check", rules_path.to_str().unwrap()],
    );
    assert!(!ok && stderr.contains("rules.toml:7:8: `fire`"), "{stderr}");
    std::fs::write(&rules_path, QUEUE_RULES).unwrap();
    let rules = wait_for_rules(&w, |r| r["status"]["rules"] == 1).await;
    assert_eq!(rules["status"]["error"], Value::Null, "{rules:#}");
    assert_eq!(
        rules["rules"][0]["clear"],
        json!({"op": "<", "threshold": 1.5})
    );

    // Oscillating around 2.0, never under 1.5: pending from the first 2.2.
    let mut values = [2.2, 1.8].into_iter().cycle();
    for _ in 0..5 {
        w.push("queue.depth", values.next().unwrap(), q1.clone())
            .await;
        w.evaluate().await;
        w.advance(MINUTE).await;
    }
    let gaps = w.gaps().await;
    assert_eq!(gaps["gaps"][0]["state"], "pending", "{gaps:#}");
    assert_eq!(gaps["gaps"][0]["pending_since_ms"], T0);

    // A restart in the middle of `for` neither resets it nor adds a gap.
    let mut w = w.restart(&dirs);
    let mut fired = Vec::new();
    for _ in 0..30 {
        w.push("queue.depth", values.next().unwrap(), q1.clone())
            .await;
        let report = w.evaluate().await;
        fired.extend(transitions(&report));
        w.advance(MINUTE).await;
    }
    assert_eq!(
        fired,
        ["1 queue-deep firing"],
        "one firing, at the end of `for`"
    );
    let gaps = w.gaps().await;
    assert_eq!(gaps["gaps"].as_array().unwrap().len(), 1, "{gaps:#}");
    assert_eq!(gaps["gaps"][0]["fired_at_ms"], T0 + 10 * MINUTE);
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    assert_eq!(cards[0]["title"], "Gap: queue q1 is 2.2 deep");

    // Under 1.5 for keep_firing_for: resolved, the card in Done.
    let mut resolved = Vec::new();
    for _ in 0..7 {
        w.push("queue.depth", 1.0, q1.clone()).await;
        resolved.extend(transitions(&w.evaluate().await));
        w.advance(MINUTE).await;
    }
    assert_eq!(resolved, ["1 queue-deep resolved"]);
    assert_eq!(w.gap_cards().await[0]["list"], "Done");

    // Firing again within keep_firing_for of resolving: the same gap and
    // card, reopened once `for` has passed again.
    let mut again = Vec::new();
    for _ in 0..12 {
        w.push("queue.depth", 3.0, q1.clone()).await;
        let report = w.evaluate().await;
        again.extend(transitions(&report));
        again.extend(
            report["cards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string()),
        );
        w.advance(MINUTE).await;
    }
    let card_id = cards[0]["id"].as_str().unwrap();
    assert_eq!(
        again,
        [
            "1 queue-deep pending".to_string(),
            "1 queue-deep firing".to_string(),
            format!("{card_id} reopened"),
        ]
    );
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    assert_eq!(cards[0]["list"], "Backlog");
    assert_eq!(
        cards[0]["comments"], 2,
        "resolved, then fired again: {cards:#?}"
    );
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert!(
        gap["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["note"].as_str().unwrap().contains("the same gap")),
        "{gap:#}"
    );
}

#[path = "../support/notify_stub.rs"]
pub(crate) mod notify_stub;

#[tokio::test]
async fn a_down_agent_is_escalated_once_and_inhibits_its_cost_gap_until_it_is_back() {
    let notify = notify_stub::start().await;
    // Telegram's flood limit refuses the first message: it is sent again.
    notify.refuse_next(1);
    let hooks = format!("{}/hooks", notify.url);
    let dirs = Dirs::new();
    let mut w = Watch::start(
        &dirs,
        &[
            "--telegram-bot-token",
            notify_stub::BOT_TOKEN,
            "--telegram-chat-id",
            "4242",
            "--telegram-api-url",
            &notify.url,
            "--openclaw-hooks-url",
            &hooks,
            "--openclaw-hooks-token",
            notify_stub::HOOKS_TOKEN,
        ],
    );
    // Three agents on a day's interval; diana beats every minute, and goes
    // quiet for four cycles.
    for agent in ["alfred", "bruce", "clark"] {
        w.heartbeat(agent, 86_400).await;
    }
    w.heartbeat("diana", 60).await;
    w.advance(4 * MINUTE).await;
    for (agent, session, cost) in [
        ("alfred", "s1", 1.0),
        ("bruce", "s2", 1.0),
        ("clark", "s3", 1.0),
        ("diana", "s4", 9.0),
    ] {
        w.push(
            "agent.cost_usd",
            cost,
            json!({"agent": agent, "session": session}),
        )
        .await;
    }
    let report = w.evaluate().await;
    assert_eq!(
        transitions(&report),
        ["1 agent-down pending", "1 agent-down firing"],
        "{report:#}"
    );
    assert_eq!(report["escalations"], json!(["1 openclaw"]), "{report:#}");
    assert!(
        report["errors"].to_string().contains("Too Many Requests"),
        "{report:#}"
    );
    let cards = w.gap_cards().await;
    assert_eq!(
        cards.len(),
        1,
        "no cost card while diana is down: {cards:#?}"
    );
    assert_eq!(
        cards[0]["title"],
        "Gap: agent diana down for 4 heartbeat cycles"
    );
    let (_, ratio) = w
        .host
        .get("/api/kpis/agent.cost_ratio?label.agent=diana")
        .await;
    assert_eq!(ratio["series"][0]["points"][0]["value"], 3.0, "{ratio:#}");

    // Back: agent-down clears, resolves after an hour, and the cost gap
    // (no longer inhibited) fires.
    w.heartbeat("diana", 60).await;
    w.advance(MINUTE).await;
    w.heartbeat("diana", 60).await;
    let report = w.evaluate().await;
    assert!(
        transitions(&report).is_empty(),
        "still inhibited: {report:#}"
    );
    assert_eq!(report["escalations"], json!(["1 telegram"]), "{report:#}");
    w.advance(HOUR).await;
    w.heartbeat("diana", 60).await;
    let report = w.evaluate().await;
    let t = transitions(&report);
    assert!(
        t.contains(&"1 agent-down resolved".to_string()),
        "{report:#}"
    );
    assert!(t.contains(&"2 agent-cost firing".to_string()), "{report:#}");
    let cards = w.gap_cards().await;
    let titles: Vec<&str> = cards.iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert!(
        titles.contains(&"Gap: agent diana costs 3 times the fleet's average per session"),
        "{titles:?}"
    );
    assert_eq!(cards.len(), 2);

    // Each channel was told once, of the critical gap only.
    // The escalation; an approval request for the gap's fix, with its
    // buttons, may have gone to the chat too.
    let messages: Vec<Value> = notify
        .messages()
        .into_iter()
        .filter(|m| m.get("reply_markup").is_none())
        .collect();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["chat_id"], "4242");
    let text = messages[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Critical gap 1: Gap: agent diana down for 4 heartbeat cycles"),
        "{text}"
    );
    assert!(text.contains("(agent=diana)"), "{text}");
    let hooks = notify.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert_eq!(hooks[0]["agentId"], "main");
    // OpenClaw was told when the gap fired; Telegram, retried, also says
    // where the value is now.
    let hook = hooks[0]["message"].as_str().unwrap();
    assert!(
        hook.contains("the value was 4 and it fires when > 2"),
        "{hook}"
    );
    assert!(text.contains("the value was 4 (now 0)"), "{text}");
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(gap["escalated_to"], json!(["telegram", "openclaw"]));
}

#[tokio::test]
async fn a_fleet_registry_that_is_down_is_reported_and_makes_no_gap() {
    let dirs = Dirs::new();
    let mut w = Watch::start(&dirs, &["--redis-url", "redis://127.0.0.1:1/0"]);
    for _ in 0..3 {
        let report = w.evaluate().await;
        let failures = report["monitor_failures"].as_array().unwrap();
        assert!(
            failures
                .iter()
                .any(|f| f.as_str().unwrap().starts_with("fleet: ")),
            "{report:#}"
        );
        w.advance(10 * MINUTE).await;
    }
    let gaps = w.gaps().await;
    assert_eq!(gaps["gaps"], json!([]), "{gaps:#}");
    let fleet = gaps["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "fleet")
        .unwrap()
        .clone();
    assert_eq!(fleet["ok"], false);
    assert_eq!(fleet["failures"], 3);
    assert!(
        fleet["error"].as_str().unwrap().contains("redis"),
        "{fleet:#}"
    );
    let (ok, stdout, _) = run_cli(&w.host.url, &["gaps", "list"]);
    assert!(ok);
    assert!(
        stdout.contains("monitor fleet could not measure (3 times)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_ingest_two_days_behind_its_transcripts_opens_one_card() {
    let dirs = Dirs::new();
    let transcripts = dirs.data.parent().unwrap().join("transcripts");
    std::fs::create_dir_all(&transcripts).unwrap();
    let now = std::time::SystemTime::now();
    for (file, age_s) in [("old.jsonl", 72 * 3600 + 60), ("new.jsonl", 0)] {
        let path = transcripts.join(file);
        std::fs::write(&path, "").unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - Duration::from_secs(age_s)).unwrap();
    }
    let source = format!("org={}", transcripts.display());
    let w = Watch::start(&dirs, &["--ingest", &source]);
    let report = w.evaluate().await;
    assert_eq!(
        transitions(&report),
        ["1 memory-ingest-lag pending", "1 memory-ingest-lag firing"],
        "{report:#}"
    );
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1);
    let title = cards[0]["title"].as_str().unwrap();
    assert_eq!(
        title,
        "Gap: memory ingest more than 48 h behind the transcripts"
    );
    let (_, gap) = w.host.get("/api/gaps/1").await;
    let description = gap["card"]["description"].as_str().unwrap();
    assert!(
        description.contains("(72 h behind, 2 files)"),
        "{description}"
    );
    assert!(description.contains("the value is 2592"), "{description}");
    assert!(transitions(&w.evaluate().await).is_empty());
}

/// An assistant message as OpenClaw writes it (`@openclaw/ai`'s
/// `AssistantMessage`, its `usage` with `cost` in USD), `at` in ms.
fn openclaw_assistant(id: &str, parent: &str, at: u64, cost: f64) -> String {
    json!({"type": "message", "id": id, "parentId": parent, "timestamp": "2027-01-15T07:00:00.000Z",
           "message": {"role": "assistant",
                       "content": [{"type": "thinking", "thinking": "…"}, {"type": "text", "text": "Done: the deploy is green."},
                                   {"type": "toolCall", "id": "call_1", "name": "ci", "arguments": {}}],
                       "api": "anthropic-messages", "provider": "anthropic", "model": "claude-sonnet-4-5",
                       "usage": {"input": 1200, "output": 300, "cacheRead": 5000, "cacheWrite": 0, "totalTokens": 6500,
                                 "cost": {"input": cost * 0.4, "output": cost * 0.5, "cacheRead": cost * 0.1,
                                          "cacheWrite": 0, "total": cost},
                                 "cacheTelemetry": {"state": "available"}},
                       "stopReason": "toolUse", "responseId": format!("msg_{id}"), "timestamp": at}})
    .to_string()
}

fn openclaw_user(id: &str, parent: Option<&str>, at: u64) -> String {
    json!({"type": "message", "id": id, "parentId": parent, "timestamp": "2027-01-15T06:59:59.000Z",
           "message": {"role": "user", "content": [{"type": "text", "text": "Is the deploy green?"}], "timestamp": at}})
    .to_string()
}

fn openclaw_header(id: &str) -> String {
    json!({"type": "session", "version": 3, "id": id, "timestamp": "2027-01-15T06:59:58.000Z", "cwd": "/srv/agent"})
        .to_string()
}

/// An agent store as OpenClaw 2026.7.2 and later keep it: `transcript_events`
/// (agent schema 23), events of 1 KiB and more zstd-compressed.
fn openclaw_store(path: &std::path::Path, events: &[(&str, i64, String)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE transcript_events (
           session_id TEXT NOT NULL, seq INTEGER NOT NULL, event_json TEXT, created_at INTEGER NOT NULL,
           event_zstd BLOB, event_utf8_bytes INTEGER, navigation_json TEXT,
           PRIMARY KEY (session_id, seq)) STRICT;",
    )
    .unwrap();
    // Written an hour ago by the real clock: the sessions are finished.
    let written = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    for (session, seq, json) in events {
        let bytes = json.len() as i64;
        if json.len() >= 1024 {
            let blob = zstd::bulk::compress(json.as_bytes(), 1).unwrap();
            conn.execute(
                "INSERT INTO transcript_events VALUES (?1, ?2, NULL, ?3, ?4, ?5, '{\"version\":1}')",
                rusqlite::params![session, seq, written, blob, bytes],
            )
            .unwrap();
        } else {
            conn.execute(
                "INSERT INTO transcript_events VALUES (?1, ?2, ?3, ?4, NULL, ?5, NULL)",
                rusqlite::params![session, seq, json, written, bytes],
            )
            .unwrap();
        }
    }
}

#[tokio::test]
async fn cost_from_transcripts_shaped_as_openclaw_writes_them_opens_one_card() {
    let dirs = Dirs::new();
    let home = dirs.data.parent().unwrap().join(".openclaw");
    let at = T0 - HOUR;
    // alfred: a legacy JSONL session; bruce and clark: agent stores, one
    // of bruce's events compressed; diana: a store whose session was
    // compacted, its last call copied forward into the next session.
    let sessions = home.join("agents/alfred/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let jsonl = sessions.join("a1.jsonl");
    std::fs::write(
        &jsonl,
        [
            openclaw_header("a1"),
            openclaw_user("u1", None, at),
            openclaw_assistant("m1", "u1", at + 1000, 0.5),
            openclaw_user("u2", Some("m1"), at + 2000),
            openclaw_assistant("m2", "u2", at + 3000, 0.5),
        ]
        .join("\n")
            + "\n",
    )
    .unwrap();
    std::fs::File::options()
        .write(true)
        .open(&jsonl)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let long = format!(
        r#"{{"type":"custom","customType":"notes","data":"{}"}}"#,
        "x".repeat(2048)
    );
    openclaw_store(
        &home.join("agents/bruce/agent/openclaw-agent.sqlite"),
        &[
            ("b1", 0, openclaw_header("b1")),
            ("b1", 1, long),
            ("b1", 2, openclaw_user("u1", None, at)),
            (
                "b1",
                3,
                openclaw_assistant("m1", "u1", at + 1000, 1.0).replace("…", &"…".repeat(400)),
            ),
        ],
    );
    openclaw_store(
        &home.join("agents/clark/agent/openclaw-agent.sqlite"),
        &[
            ("c1", 0, openclaw_header("c1")),
            ("c1", 1, openclaw_user("u1", None, at)),
            ("c1", 2, openclaw_assistant("m1", "u1", at + 1000, 1.0)),
        ],
    );
    openclaw_store(
        &home.join("agents/diana/agent/openclaw-agent.sqlite"),
        &[
            ("d1", 0, openclaw_header("d1")),
            ("d1", 1, openclaw_user("u1", None, at)),
            ("d1", 2, openclaw_assistant("m1", "u1", at + 1000, 4.5)),
            ("d1", 3, openclaw_user("u2", Some("m1"), at + 2000)),
            ("d1", 4, openclaw_assistant("m2", "u2", at + 3000, 4.5)),
            ("d2", 0, openclaw_header("d2")),
            ("d2", 1, openclaw_assistant("m2", "u2", at + 3000, 4.5)),
        ],
    );
    let source = format!("org={}", home.display());
    let w = Watch::start(&dirs, &["--ingest", &source]);
    let home_arg = home.to_str().unwrap();
    let (ok, stdout, stderr) = run_cli(
        &w.host.url,
        &["memory", "ingest", home_arg, "--namespace", "org", "--json"],
    );
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["files"], 5, "{report:#}");
    assert_eq!(report["usage_recorded"], 6, "{report:#}");
    assert_eq!(report["usage_duplicates"], 1, "diana's copy: {report:#}");
    assert_eq!(report["malformed_lines"], 0, "{report:#}");
    // Again: nothing new is read, and nothing is recorded twice.
    let (ok, stdout, stderr) = run_cli(
        &w.host.url,
        &["memory", "ingest", home_arg, "--namespace", "org", "--json"],
    );
    assert!(ok, "{stderr}");
    let again: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(again["usage_recorded"], 0, "{again:#}");
    // Into another namespace, from the top: every call is known already.
    let (ok, stdout, stderr) = run_cli(
        &w.host.url,
        &["memory", "ingest", home_arg, "--namespace", "agent:fleet"],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("7 model calls: 0 recorded as cost and tokens, 7 recorded before"),
        "{stdout}"
    );
    // A store whose table is not OpenClaw's is reported, and the rest
    // still read; the command fails so a cron job sees it.
    let broken = home.join("agents/eve/agent/openclaw-agent.sqlite");
    std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
    rusqlite::Connection::open(&broken)
        .unwrap()
        .execute_batch("CREATE TABLE transcript_events (id INTEGER)")
        .unwrap();
    let (ok, stdout, stderr) = run_cli(
        &w.host.url,
        &["memory", "ingest", home_arg, "--namespace", "org"],
    );
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("1 transcript could not be read; the others were ingested"),
        "{stderr}"
    );
    assert!(
        stdout.contains("agents/eve/agent/openclaw-agent.sqlite: not read:"),
        "{stdout}"
    );
    std::fs::remove_file(&broken).unwrap();
    let (_, tokens) = w
        .host
        .get("/api/kpis/agent.tokens?label.agent=diana&window=1d")
        .await;
    let points: Vec<f64> = tokens["series"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_f64().unwrap())
        })
        .collect();
    assert_eq!(points, [6500.0, 6500.0], "{tokens:#}");

    // Four sessions of $1 and diana's one of $9: three times the fleet's $3.
    let report = w.evaluate().await;
    assert_eq!(
        transitions(&report),
        ["1 agent-cost pending", "1 agent-cost firing"],
        "{report:#}"
    );
    let (_, ratio) = w
        .host
        .get("/api/kpis/agent.cost_ratio?label.agent=diana")
        .await;
    assert_eq!(ratio["series"][0]["points"][0]["value"], 3.0, "{ratio:#}");
    // Beside the cost: sessions, and tokens a session (two calls of 6500).
    for (series, value) in [
        ("agent.sessions", 1.0),
        ("agent.tokens_per_session", 13000.0),
    ] {
        let (_, read) = w
            .host
            .get(&format!("/api/kpis/{series}?label.agent=diana"))
            .await;
        assert_eq!(read["series"][0]["points"][0]["value"], value, "{read:#}");
    }
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    assert_eq!(
        cards[0]["title"],
        "Gap: agent diana costs 3 times the fleet's average per session"
    );
    let (_, gap) = w.host.get("/api/gaps/1").await;
    let description = gap["card"]["description"].as_str().unwrap();
    assert!(
        description.contains(
            "agent diana: $9 over 1 session in 24 h, $9 a session against the fleet's $3 \
             (4 agents, 4 sessions)"
        ),
        "{description}"
    );
    assert!(transitions(&w.evaluate().await).is_empty());
}

#[tokio::test]
async fn an_ingest_every_second_records_usage_soon_after_it_is_written() {
    // On the system clock: the scheduled ingest runs in real time.
    let dirs = Dirs::new();
    let home = dirs.data.parent().unwrap().join(".openclaw");
    let sessions = home.join("agents/alfred/sessions");
    std::fs::create_dir_all(&sessions).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let transcript = sessions.join("a1.jsonl");
    let mut lines = vec![
        openclaw_header("a1"),
        openclaw_user("u1", None, now - 60_000),
        openclaw_assistant("m1", "u1", now - 59_000, 0.25),
        openclaw_user("u2", Some("m1"), now - 30_000),
    ];
    std::fs::write(&transcript, lines.join("\n") + "\n").unwrap();
    let source = format!("org={}", home.display());
    let host = Host::start(&dirs, &["--ingest", &source, "--ingest-every", "1s"]);
    // Each pass reads what was added since the one before.
    let points = |n: usize| {
        let host = &host;
        async move {
            let started = std::time::Instant::now();
            loop {
                let (_, body) = host
                    .get("/api/kpis/agent.cost_usd?label.agent=alfred&window=1h")
                    .await;
                let values: Vec<f64> = body["series"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s["points"].as_array().unwrap().clone())
                    .map(|p| p["value"].as_f64().unwrap())
                    .collect();
                if values.len() >= n {
                    return (values, body);
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{n} calls not recorded: {body}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let (values, body) = points(1).await;
    assert_eq!(values, [0.25], "{body:#}");
    assert_eq!(body["series"][0]["labels"]["session"], "a1", "{body:#}");
    lines.push(openclaw_assistant("m2", "u2", now - 29_000, 0.5));
    lines.push(openclaw_user("u3", Some("m2"), now - 10_000));
    std::fs::write(&transcript, lines.join("\n") + "\n").unwrap();
    let (values, _) = points(2).await;
    assert_eq!(values, [0.25, 0.5]);
}

#[path = "../support/forge_stub.rs"]
mod forge_stub;

fn run(repo: &str, branch: &str, outcome: &str, ended: &str) -> forge_stub::Run {
    forge_stub::Run {
        repo: repo.into(),
        branch: branch.into(),
        outcome: outcome.into(),
        ended: ended.into(),
    }
}

fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn ci_a_week_without_a_green_build_opens_one_card_from_any_forge_or_webhook() {
    use forge_stub::Kind;
    let github = forge_stub::start(Kind::GitHub).await;
    let gitea = forge_stub::start(Kind::Gitea).await;
    let forgejo = forge_stub::start(Kind::Forgejo).await;
    github.set_runs(vec![
        run("acme/api", "main", "success", "2027-01-13T08:00:00Z"),
        run("acme/api", "main", "failure", "2027-01-15T07:00:00Z"),
    ]);
    gitea.set_runs(vec![
        run("acme/web", "main", "success", "2027-01-07T08:00:00Z"),
        run("acme/web", "main", "failure", "2027-01-14T08:00:00Z"),
        run("acme/web", "dev", "success", "2027-01-15T07:00:00Z"),
    ]);
    forgejo.set_runs(vec![
        run("acme/ops", "main", "success", "2027-01-14T08:00:00Z"),
        run("acme/ops", "dev", "success", "2027-01-15T07:30:00Z"),
    ]);
    let dirs = Dirs::new();
    let repos = [
        github.spec("acme/api", "main"),
        gitea.spec("acme/web", "main"),
        forgejo.spec("acme/ops", "main"),
    ]
    .join(",");
    let token = forge_stub::TOKEN;
    let mut w = Watch::start(
        &dirs,
        &[
            "--ci-repo",
            &repos,
            "--github-token",
            token,
            "--gitea-token",
            token,
            "--forgejo-token",
            token,
            "--ci-webhook-secret",
            "hook-secret",
        ],
    );
    let report = w.evaluate().await;
    assert_eq!(report["monitor_failures"], json!([]), "{report:#}");
    assert_eq!(
        transitions(&report),
        ["1 ci-not-green pending", "1 ci-not-green firing"],
        "{report:#}"
    );
    let (_, ages) = w
        .host
        .get("/api/kpis/ci.last_success_age_seconds?window=1h")
        .await;
    let ages: Vec<(String, f64)> = ages["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["labels"]["repo"].as_str().unwrap().to_string(),
                s["points"][0]["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ages,
        [
            ("acme/api".to_string(), 172_800.0),
            ("acme/ops".to_string(), 86_400.0),
            ("acme/web".to_string(), 691_200.0)
        ]
    );
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    assert_eq!(
        cards[0]["title"],
        "Gap: no green build of acme/web on main for more than 7 days"
    );
    let (_, gap) = w.host.get("/api/gaps/1").await;
    let description = gap["card"]["description"].as_str().unwrap();
    assert!(
        description.contains(
            "acme/web main: last green build 2027-01-07 08:00 UTC on gitea (https://gitea.example/acme/web/actions/runs/1)"
        ),
        "{description}"
    );
    assert!(
        description.contains("labels: branch=main, repo=acme/web"),
        "{description}"
    );

    // A green build: the gap clears, and resolves an hour later.
    gitea.add_run(run("acme/web", "main", "success", "2027-01-15T08:00:00Z"));
    w.advance(MINUTE).await;
    assert!(transitions(&w.evaluate().await).is_empty());
    w.advance(HOUR).await;
    assert_eq!(
        transitions(&w.evaluate().await),
        ["1 ci-not-green resolved"]
    );

    // Any other CI: a webhook signed as the forges sign them, or a push.
    let delivery = serde_json::to_vec(&json!({
        "action": "completed",
        "workflow_run": {"id": 9, "conclusion": "success", "status": "completed", "head_branch": "main",
                         "updated_at": "2027-01-05T08:00:00Z", "html_url": "https://ci.example/9"},
        "repository": {"full_name": "acme/hooked"},
    }))
    .unwrap();
    let deliver = |sig: String| {
        w.host
            .http
            .post(format!("{}/api/ci/webhooks", w.host.url))
            .header("X-GitHub-Event", "workflow_run")
            .header("X-Hub-Signature-256", sig)
            .body(delivery.clone())
    };
    let (status, out) = w
        .host
        .send(deliver(signature("hook-secret", &delivery)))
        .await;
    assert_eq!((status, &out["recorded"]), (200, &json!(true)), "{out}");
    let (status, out) = w.host.send(deliver(signature("wrong", &delivery))).await;
    crate::harness::assert_error(status, &out, 401, "invalid_signature");
    for (conclusion, recorded) in [("success", true), ("failure", false)] {
        let out = w
            .post(
                "/api/ci/runs",
                json!({"repo": "acme/pushed", "branch": "main", "conclusion": conclusion}),
            )
            .await;
        assert_eq!(out["recorded"], recorded);
    }
    let (status, out) = w
        .host
        .send(
            w.host
                .http
                .post(format!("{}/api/ci/runs", w.host.url))
                .json(&json!({"repo": "not a repo", "branch": "main", "conclusion": "success"})),
        )
        .await;
    crate::harness::assert_error(status, &out, 400, "invalid_ci_run");
    w.advance(MINUTE).await;
    let report = w.evaluate().await;
    assert_eq!(
        transitions(&report),
        ["2 ci-not-green pending", "2 ci-not-green firing"],
        "the hooked repository, 10 days without green: {report:#}"
    );

    // A forge that answers something its API does not document: reported,
    // and no gap is made of it.
    github.set_broken(true);
    w.advance(40 * MINUTE).await;
    let report = w.evaluate().await;
    let failures = report["monitor_failures"].to_string();
    assert!(
        failures.contains("acme/api")
            && failures.contains("the github Actions API does not document"),
        "{report:#}"
    );
    assert!(transitions(&report).is_empty(), "{report:#}");
    let gaps = w.gaps().await;
    let ci = gaps["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(ci["ok"], false, "{ci:#}");
    assert!(github.requests() >= 4);
}

#[path = "../support/prometheus_server.rs"]
mod prometheus_server;

#[tokio::test]
async fn a_real_prometheus_scrapes_the_metrics_and_answers_a_promql_rule() {
    use prometheus_server::Prometheus;
    let dirs = Dirs::new();
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::fs::write(
        dirs.data.join("rules.toml"),
        r#"
[[rule]]
name = "kpi-series-seen"
query = 'darkfactory_kpi_series{job="darkfactory"}'
by = ["job"]
fire = "> 0"
summary = "{value} KPI series scraped by {labels.job}"
"#,
    )
    .unwrap();
    const TOKEN: &str = "scrape-token-0123456789";
    let port = Prometheus::free_port();
    let url = format!("http://127.0.0.1:{port}");
    // On the system clock: Prometheus answers at real times.
    let host = Host::start(
        &dirs,
        &[
            "--prometheus-url",
            &url,
            "--token",
            TOKEN,
            "--eval-interval",
            "1000h",
        ],
    );
    let post = |path: &str, body: Value| {
        host.http
            .post(format!("{}{path}", host.url))
            .bearer_auth(TOKEN)
            .json(&body)
    };
    let (status, out) = host
        .send(post(
            "/api/kpis/samples",
            json!({"samples": [{"name": "queue.depth", "value": 3}]}),
        ))
        .await;
    assert_eq!(status, 200, "{out}");
    let target = host.url.trim_start_matches("http://").to_string();
    let mut prometheus = Prometheus::start(port, &target, Some(TOKEN));

    // Prometheus scrapes /metrics with the token: the target is up and the
    // host's figures are in its store.
    let query = |q: &str| {
        let q = q.to_string();
        let url = url.clone();
        async move {
            let body: Value = reqwest::Client::new()
                .get(format!("{url}/api/v1/query"))
                .query(&[("query", q)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["data"]["result"].clone()
        }
    };
    let started = std::time::Instant::now();
    loop {
        let result = query("darkfactory_kpi_series").await;
        if result.as_array().is_some_and(|r| !r.is_empty()) {
            assert_eq!(result[0]["value"][1], "1", "{result:#}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no scrape: {result:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let up = query("up{job=\"darkfactory\"}").await;
    assert_eq!(up[0]["value"][1], "1", "{up:#}");

    // The rule reads it back as PromQL: one gap, one card.
    let (_, report) = host.send(post("/api/factory/evaluate", json!({}))).await;
    assert_eq!(
        transitions(&report),
        ["1 kpi-series-seen pending", "1 kpi-series-seen firing"],
        "{report:#}"
    );
    let (_, gap) = host.get("/api/gaps/1").await;
    assert_eq!(gap["labels"], json!({"job": "darkfactory"}));
    assert_eq!(
        gap["card"]["title"],
        "Gap: 1 KPI series scraped by darkfactory"
    );

    // Prometheus down: an error, and the gap stays as it was.
    prometheus.stop();
    let (_, report) = host.send(post("/api/factory/evaluate", json!({}))).await;
    assert!(transitions(&report).is_empty(), "{report:#}");
    assert!(
        report["errors"]
            .to_string()
            .contains("cannot reach Prometheus"),
        "{report:#}"
    );
    let (_, gap) = host.get("/api/gaps/1").await;
    assert_eq!(gap["state"], "firing");
}

/// The shipped rules as a rule file, each with `for = "10m"`: a watch must
/// hold for ten minutes before it fires, so a restart can fall inside it.
fn shipped_rules_with_a_for() -> String {
    let mut out = String::new();
    for line in include_str!("../../host/src/factory/default-rules.toml").lines() {
        if line.starts_with("for = ") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        if line.starts_with("window = ") {
            out.push_str("for = \"10m\"\n");
        }
    }
    out
}

/// A host on the shipped rules with a ten-minute `for`.
fn start_watching(dirs: &Dirs, extra: &[&str]) -> Watch {
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::fs::write(dirs.data.join("rules.toml"), shipped_rules_with_a_for()).unwrap();
    Watch::start(dirs, extra)
}

/// Every transition of a watch's evaluations, in order.
#[derive(Default)]
struct Log(Vec<String>);

impl Log {
    async fn eval(&mut self, w: &Watch) {
        self.0.extend(transitions(&w.evaluate().await));
    }

    /// Evaluates, then moves the clock a minute on, `n` times.
    async fn ticks(&mut self, w: &mut Watch, n: usize) {
        for _ in 0..n {
            self.eval(w).await;
            w.advance(MINUTE).await;
        }
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.0)
    }
}

/// One gap, in `state`, and one card for it in `list`, titled `title`.
async fn one_gap_one_card(w: &Watch, state: &str, list: &str, title: &str) {
    let gaps = w.gaps().await;
    assert_eq!(gaps["gaps"].as_array().unwrap().len(), 1, "{gaps:#}");
    assert_eq!(gaps["gaps"][0]["state"], state, "{gaps:#}");
    let cards = w.gap_cards().await;
    assert_eq!(cards.len(), 1, "{cards:#?}");
    assert_eq!(cards[0]["list"], list, "{cards:#?}");
    assert!(
        cards[0]["title"].as_str().unwrap().starts_with(title),
        "{cards:#?}"
    );
}

#[tokio::test]
async fn the_board_watch_fires_once_after_for_through_a_restart_without_flapping() {
    let dirs = Dirs::new();
    let mut w = start_watching(&dirs, &[]);
    let mut cards = Vec::new();
    for title in ["A", "B", "C"] {
        cards.push(w.card("Blocked", title).await);
    }
    // Two more cards come to Blocked later: they count 48 h after.
    w.advance(20 * MINUTE).await;
    cards.push(w.card("Blocked", "D").await);
    w.advance(20 * MINUTE).await;
    cards.push(w.card("Blocked", "E").await);
    w.advance(48 * HOUR - 39 * MINUTE).await; // T0 + 48 h + 1 min: A, B, C count

    // Pending for five minutes; a restart; fired once, ten minutes on.
    let mut log = Log::default();
    log.ticks(&mut w, 5).await;
    assert_eq!(log.take(), ["1 cards-blocked pending"]);
    let mut w = w.restart(&dirs);
    log.ticks(&mut w, 6).await;
    assert_eq!(log.take(), ["1 cards-blocked firing"]);
    one_gap_one_card(&w, "firing", "Backlog", "Gap: 3 cards blocked").await;
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(gap["fired_at_ms"], T0 + 48 * HOUR + 11 * MINUTE);

    // Around the threshold, 3 and 2 in turn: it stays one firing gap.
    w.move_card(&cards[0], "Done").await; // 2
    log.ticks(&mut w, 9).await; // to T0 + 48 h + 21 min: D counts, 3
    w.move_card(&cards[1], "Done").await; // 2
    log.ticks(&mut w, 20).await; // E counts, 3
    log.eval(&w).await;
    assert_eq!(log.take(), Vec::<String>::new());

    // Two is inside the hysteresis band: two hours on, still firing.
    w.move_card(&cards[2], "Done").await;
    log.eval(&w).await;
    w.advance(2 * HOUR).await;
    log.eval(&w).await;
    assert_eq!(log.take(), Vec::<String>::new());
    one_gap_one_card(&w, "firing", "Backlog", "Gap: 3 cards blocked").await;
    // One is under it: cleared, and resolved an hour on.
    w.move_card(&cards[3], "Done").await;
    log.eval(&w).await;
    w.advance(HOUR).await;
    log.eval(&w).await;
    assert_eq!(log.take(), ["1 cards-blocked resolved"]);
    one_gap_one_card(&w, "resolved", "Done", "Gap: 3 cards blocked").await;
}

#[tokio::test]
async fn the_fleet_watch_fires_once_after_for_through_a_restart_without_flapping() {
    let dirs = Dirs::new();
    let mut w = start_watching(&dirs, &[]);
    w.heartbeat("alfred", 86_400).await;
    w.heartbeat("diana", 60).await;
    w.advance(3 * MINUTE).await;
    let mut log = Log::default();
    log.ticks(&mut w, 4).await; // 3 to 6 cycles missed
    assert_eq!(log.take(), ["1 agent-down pending"]);
    // The host's restart takes nothing from diana's missed cycles.
    let mut w = w.restart(&dirs);
    log.ticks(&mut w, 7).await;
    assert_eq!(log.take(), ["1 agent-down firing"]);
    // 13 cycles, less the minute from the host's last measurement to its
    // start, which counts as the host's downtime.
    one_gap_one_card(&w, "firing", "Backlog", "Gap: agent diana down for 12 ").await;

    // Back for a beat, gone again, back again: one gap throughout.
    w.heartbeat("diana", 60).await;
    w.advance(90_000).await;
    log.eval(&w).await; // 1 missed: inside the band
    w.advance(2 * MINUTE).await;
    log.eval(&w).await; // 3
    w.heartbeat("diana", 60).await;
    w.advance(30_000).await;
    log.eval(&w).await; // 0: clearing
    w.advance(3 * MINUTE).await;
    log.eval(&w).await; // 3: firing still, not again
    assert_eq!(log.take(), Vec::<String>::new());

    // One cycle missed at a time is inside the band: two hours, still firing.
    w.heartbeat("diana", 60).await;
    w.advance(90_000).await;
    log.eval(&w).await;
    w.advance(2 * HOUR).await;
    w.heartbeat("diana", 60).await;
    w.advance(90_000).await;
    log.eval(&w).await;
    assert_eq!(log.take(), Vec::<String>::new());
    one_gap_one_card(&w, "firing", "Backlog", "Gap: agent diana down").await;
    // Beating on time: cleared, and resolved an hour on.
    w.heartbeat("diana", 60).await;
    w.advance(30_000).await;
    log.eval(&w).await;
    w.advance(HOUR).await;
    w.heartbeat("diana", 60).await;
    w.advance(30_000).await;
    log.eval(&w).await;
    assert_eq!(log.take(), ["1 agent-down resolved"]);
    one_gap_one_card(&w, "resolved", "Done", "Gap: agent diana down").await;
}

/// Sets the memory watch's lag: the newest transcript written now, and
/// the ingest (which has read nothing) behind it by `lag_h` hours.
pub(crate) fn transcripts_behind(dir: &std::path::Path, lag_h: u64) {
    let now = std::time::SystemTime::now();
    for (file, age_s) in [("old.jsonl", lag_h * 3600), ("new.jsonl", 0)] {
        let path = dir.join(file);
        if !path.exists() {
            std::fs::write(&path, "").unwrap();
        }
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(now - Duration::from_secs(age_s)).unwrap();
    }
}

#[tokio::test]
async fn the_memory_watch_fires_once_after_for_through_a_restart_without_flapping() {
    let dirs = Dirs::new();
    let transcripts = dirs.data.parent().unwrap().join("transcripts");
    std::fs::create_dir_all(&transcripts).unwrap();
    transcripts_behind(&transcripts, 72);
    let source = format!("org={}", transcripts.display());
    let mut w = start_watching(&dirs, &["--ingest", &source]);
    let mut log = Log::default();
    log.ticks(&mut w, 5).await;
    assert_eq!(log.take(), ["1 memory-ingest-lag pending"]);
    // 36 h is under the threshold but over the clear: `for` goes on.
    transcripts_behind(&transcripts, 36);
    let mut w = w.restart(&dirs);
    log.ticks(&mut w, 2).await;
    transcripts_behind(&transcripts, 72);
    log.ticks(&mut w, 4).await;
    assert_eq!(log.take(), ["1 memory-ingest-lag firing"]);
    one_gap_one_card(&w, "firing", "Backlog", "Gap: memory ingest").await;

    // 72 h and 36 h in turn, for an hour and a half: one firing gap.
    for lag in [36, 72, 36, 72, 36, 72] {
        transcripts_behind(&transcripts, lag);
        log.ticks(&mut w, 15).await;
    }
    assert_eq!(log.take(), Vec::<String>::new());
    // 12 h behind: under the clear, resolved an hour on.
    transcripts_behind(&transcripts, 12);
    log.eval(&w).await;
    w.advance(HOUR).await;
    log.eval(&w).await;
    assert_eq!(log.take(), ["1 memory-ingest-lag resolved"]);
    one_gap_one_card(&w, "resolved", "Done", "Gap: memory ingest").await;
}

#[tokio::test]
async fn the_ci_watch_fires_once_after_for_through_a_restart_without_flapping() {
    let dirs = Dirs::new();
    let mut w = start_watching(&dirs, &[]);
    async fn green(w: &Watch, finished_at: u64) {
        let body = json!({"repo": "acme/web", "branch": "main", "conclusion": "success",
                          "finished_at": finished_at});
        w.post("/api/ci/runs", body).await;
    }
    green(&w, T0).await;
    w.advance(7 * 24 * HOUR + MINUTE).await;
    let mut log = Log::default();
    log.ticks(&mut w, 5).await;
    assert_eq!(log.take(), ["1 ci-not-green pending"]);
    let mut w = w.restart(&dirs);
    log.ticks(&mut w, 6).await;
    assert_eq!(log.take(), ["1 ci-not-green firing"]);
    one_gap_one_card(
        &w,
        "firing",
        "Backlog",
        "Gap: no green build of acme/web on main",
    )
    .await;

    // A build that was green 6 days and 23.5 hours ago: under the
    // threshold for half an hour, over it again after; one gap throughout.
    for _ in 0..3 {
        green(&w, w.now - 7 * 24 * HOUR + 30 * MINUTE).await;
        log.ticks(&mut w, 40).await;
    }
    assert_eq!(log.take(), Vec::<String>::new());
    // Green now: cleared, and resolved an hour on.
    green(&w, w.now).await;
    log.eval(&w).await;
    w.advance(HOUR).await;
    log.eval(&w).await;
    assert_eq!(log.take(), ["1 ci-not-green resolved"]);
    one_gap_one_card(&w, "resolved", "Done", "Gap: no green build").await;
}

#[tokio::test]
async fn the_cost_watch_fires_once_after_for_through_a_restart_without_flapping() {
    let dirs = Dirs::new();
    let mut w = start_watching(&dirs, &[]);
    // One session each; what each costs is added as the test goes.
    async fn spend(w: &Watch, agent: &str, usd: f64) {
        w.push(
            "agent.cost_usd",
            usd,
            json!({"agent": agent, "session": format!("{agent}-1")}),
        )
        .await;
    }
    for agent in ["alfred", "bruce", "clark"] {
        spend(&w, agent, 1.0).await;
    }
    spend(&w, "diana", 9.0).await; // 4 × 9 / 12: 3 times the fleet's
    let mut log = Log::default();
    log.ticks(&mut w, 5).await;
    assert_eq!(log.take(), ["1 agent-cost pending"]);
    // The others spend $2 more each: 4 × 9 / 18, twice the fleet's,
    // inside the band; `for` goes on, through a restart.
    for agent in ["alfred", "bruce", "clark"] {
        spend(&w, agent, 2.0).await;
    }
    let mut w = w.restart(&dirs);
    log.ticks(&mut w, 3).await;
    spend(&w, "diana", 18.0).await; // 4 × 27 / 36: 3 times
    log.ticks(&mut w, 3).await;
    assert_eq!(log.take(), ["1 agent-cost firing"]);
    one_gap_one_card(&w, "firing", "Backlog", "Gap: agent diana costs").await;
    let (_, ratio) = w
        .host
        .get("/api/kpis/agent.cost_ratio?label.agent=diana&window=2m")
        .await;
    assert_eq!(ratio["series"][0]["points"][0]["value"], 3.0, "{ratio:#}");

    // Twice and three times in turn: one firing gap.
    for agent in ["alfred", "bruce", "clark"] {
        spend(&w, agent, 6.0).await; // 4 × 27 / 54: 2
    }
    log.ticks(&mut w, 5).await;
    spend(&w, "diana", 54.0).await; // 4 × 81 / 108: 3
    log.ticks(&mut w, 5).await;
    assert_eq!(log.take(), Vec::<String>::new());
    // Under 1.5 (4 × 81 / 324: 1): cleared, and resolved an hour on.
    for agent in ["alfred", "bruce", "clark"] {
        spend(&w, agent, 72.0).await;
    }
    log.eval(&w).await;
    w.advance(HOUR).await;
    log.eval(&w).await;
    assert_eq!(log.take(), ["1 agent-cost resolved"]);
    one_gap_one_card(&w, "resolved", "Done", "Gap: agent diana costs").await;
}

#[tokio::test]
async fn a_down_agent_gets_a_verified_fix_that_one_approval_decides_once() {
    let dirs = Dirs::new();
    let mut w = Watch::start(&dirs, &[]);
    w.heartbeat("scout", 60).await;
    w.heartbeat("standby", 86_400).await;
    w.advance(4 * MINUTE).await;
    let report = w.evaluate().await;
    assert!(
        transitions(&report).contains(&"1 agent-down firing".to_string()),
        "{report:#}"
    );
    assert_eq!(report["proposals"], json!(["1 queued"]), "{report:#}");
    let p = w.proposal_of(1).await;
    assert_eq!(p["state"], "awaiting_approval", "{p:#}");
    assert_eq!(p["skill"], "fix-agent-down-scout");
    assert_eq!(p["synthesiser"], "offline");
    assert_eq!(p["approval"], "human", "no policy file: a person decides");
    let source = p["source"].as_str().unwrap();
    assert!(source.contains("trigger = \"gap: agent-down\""), "{source}");
    assert!(source.contains("default = \"scout\""), "{source}");
    assert_eq!(p["rounds"].as_array().unwrap().len(), 1);
    let writes = &p["verification"]["shadow"]["writes"];
    assert_eq!(writes[0]["call"], "board.add_comment", "{writes:#}");
    assert!(
        writes[0]["args"]["text"]
            .as_str()
            .unwrap()
            .contains("Agent scout is down"),
        "{writes:#}"
    );
    // The card carries the proposal; the shadow run's comment was not made.
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(gap["card"]["comments"], 1, "{gap:#}");
    // A second evaluation opens no second proposal.
    let report = w.evaluate().await;
    assert!(report["proposals"].as_array().unwrap().len() <= 1);
    let (_, all) = w.host.get("/api/proposals").await;
    assert_eq!(all["proposals"].as_array().unwrap().len(), 1, "{all:#}");

    // One request, pending; the CLI lists it.
    let (_, approvals) = w.host.get("/api/approvals").await;
    let request = approvals["approvals"][0].clone();
    assert_eq!(request["state"], "pending", "{approvals:#}");
    assert_eq!(request["sha256"], p["sha256"]);
    assert!(request.get("nonce").is_none(), "the secret is never shown");
    let id = request["id"].as_i64().unwrap();
    let (ok, out, err) = run_cli(&w.host.url, &["approvals", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("pending"), "{out}");
    let (ok, out, err) = run_cli(&w.host.url, &["proposals", "show", "1", "--source"]);
    assert!(ok, "{err}");
    assert_eq!(out, source);

    // Approved once through the CLI; a second decision is refused, says
    // why, and is kept.
    let (ok, out, err) = run_cli(&w.host.url, &["approvals", "approve", &id.to_string()]);
    assert!(ok, "{err}");
    assert!(out.contains("approved"), "{out}");
    let (status, again) = w
        .host
        .send(
            w.host
                .http
                .post(format!("{}/api/approvals/{id}/reject", w.host.url)),
        )
        .await;
    assert_eq!(status, 409, "{again:#}");
    assert_eq!(again["error"]["code"], "approval_decided");
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already approved by cli"),
        "{again:#}"
    );
    let (_, request) = w.host.get(&format!("/api/approvals/{id}")).await;
    assert_eq!(request["state"], "approved");
    assert_eq!(request["decided_by"], "cli");
    assert_eq!(
        request["refusals"].as_array().unwrap().len(),
        1,
        "{request:#}"
    );
    let (status, missing) = w
        .host
        .send(
            w.host
                .http
                .post(format!("{}/api/approvals/999/approve", w.host.url)),
        )
        .await;
    assert_eq!(status, 404, "{missing:#}");
    let p = w.proposal_of(1).await;
    assert_eq!(p["state"], "approved");
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(
        gap["card"]["comments"], 2,
        "the proposal and its approval: {gap:#}"
    );

    // After a restart the proposal is where it was: nothing is opened again.
    let w = w.restart(&dirs);
    let report = w.evaluate().await;
    assert!(
        report["errors"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let p = w.proposal_of(1).await;
    assert_eq!(p["state"], "approved");
    let (_, all) = w.host.get("/api/proposals").await;
    assert_eq!(all["proposals"].as_array().unwrap().len(), 1, "{all:#}");
}

#[tokio::test]
async fn the_policy_approves_on_its_own_or_denies_and_an_expired_request_decides_nothing() {
    let dirs = Dirs::new();
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::fs::write(
        dirs.data.join("policy.toml"),
        "expires = \"1h\"\n\n[[rule]]\ngap = \"agent-down\"\ngrants = [\"fleet_read\", \"board_write\"]\napproval = \"auto\"\n\n[[rule]]\ngap = \"agent-cost\"\nany_of = [\"kpi_read\"]\napproval = \"deny\"\n",
    )
    .unwrap();
    let mut w = Watch::start(&dirs, &[]);
    w.heartbeat("scout", 60).await;
    w.advance(4 * MINUTE).await;
    w.evaluate().await;
    let p = w.proposal_of(1).await;
    assert_eq!(p["state"], "approved", "{p:#}");
    assert_eq!(p["approvals"][0]["decided_by"], "policy", "{p:#}");

    // A cost gap's fix reads KPIs, which the policy denies for it: it fails
    // at the policy step, and the card says why.
    w.heartbeat("scout", 60).await;
    for (agent, session, usd) in [
        ("alfred", "a", 1.0),
        ("bruce", "b", 9.0),
        ("clark", "c", 1.0),
    ] {
        w.push(
            "agent.cost_usd",
            usd,
            json!({"agent": agent, "session": session}),
        )
        .await;
    }
    w.evaluate().await;
    let gaps = w.gaps().await;
    let cost = gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["rule"] == "agent-cost" && g["state"] == "firing")
        .unwrap_or_else(|| panic!("{gaps:#}"))
        .clone();
    let p = w.proposal_of(cost["id"].as_u64().unwrap()).await;
    assert_eq!(p["state"], "failed", "{p:#}");
    let reason = p["reason"].as_str().unwrap();
    assert!(reason.starts_with("policy failed"), "{reason}");
    assert!(reason.contains("denies"), "{reason}");
    let (_, gap) = w.host.get(&format!("/api/gaps/{}", cost["id"])).await;
    assert_eq!(gap["card"]["comments"], 1, "{gap:#}");
    let (_, approvals) = w.host.get("/api/approvals").await;
    assert_eq!(
        approvals["approvals"],
        json!([]),
        "nothing is asked: {approvals:#}"
    );

    // With the policy gone, a new gap's request waits for a person, and
    // expires after the default 24 hours: deciding it then is refused.
    std::fs::remove_file(dirs.data.join("policy.toml")).unwrap();
    w.heartbeat("miner", 60).await;
    w.advance(4 * MINUTE).await;
    w.heartbeat("scout", 60).await;
    w.evaluate().await;
    let gaps = w.gaps().await;
    let miner = gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["labels"]["agent"] == "miner")
        .unwrap_or_else(|| panic!("{gaps:#}"))
        .clone();
    let p = w.proposal_of(miner["id"].as_u64().unwrap()).await;
    assert_eq!(p["state"], "awaiting_approval", "{p:#}");
    let request = p["approvals"][0]["id"].as_i64().unwrap();
    w.advance(25 * HOUR).await;
    let (status, late) = w
        .host
        .send(
            w.host
                .http
                .post(format!("{}/api/approvals/{request}/approve", w.host.url)),
        )
        .await;
    assert!(status == 410 || status == 409, "{status} {late:#}");
    let p = w.proposal_of(miner["id"].as_u64().unwrap()).await;
    assert_eq!(p["state"], "expired", "{p:#}");
}
