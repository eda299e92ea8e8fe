//! The factory's answer to a gap, end to end, on a host whose clock the
//! test drives: an offline fix for each watch that passes the whole gate;
//! the model's path against a loopback chat-completions server (corrected
//! from the compiler's diagnostics, a denied grant, one that never passes,
//! answers that are no answer, a model too slow to wait for); and approval
//! through a loopback Telegram Bot API (long polling with offsets, button
//! presses, every refusal), and the same refusals through the API.

use crate::factory::notify_stub;
use crate::factory::{transcripts_behind, transitions, Watch, HOUR, MINUTE, T0};
use crate::harness::{run_cli, Dirs};
use serde_json::{json, Value};
use std::time::Duration;

#[path = "../support/llm_stub.rs"]
mod llm_stub;
use llm_stub::Reply;

/// The id of the firing gap of `rule` (with `label` = `value`, if given).
async fn gap_id(w: &Watch, rule: &str, label: Option<(&str, &str)>) -> u64 {
    let gaps = w.gaps().await;
    gaps["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["rule"] == rule
                && g["state"] == "firing"
                && label.is_none_or(|(k, v)| g["labels"][k] == v)
        })
        .unwrap_or_else(|| panic!("no firing {rule} gap for {label:?}: {gaps:#}"))["id"]
        .as_u64()
        .unwrap()
}

fn passed_every_step(p: &Value) {
    let steps: Vec<(&str, bool)> = p["verification"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{p:#}"))
        .iter()
        .map(|s| (s["step"].as_str().unwrap(), s["passed"] == true))
        .collect();
    assert_eq!(
        steps,
        [
            ("check", true),
            ("compile", true),
            ("tests", true),
            ("shadow", true),
            ("policy", true)
        ],
        "{p:#}"
    );
    assert_eq!(p["state"], "awaiting_approval", "{p:#}");
}

/// The text of the first write the shadow run recorded.
fn first_write(p: &Value) -> String {
    let writes = &p["verification"]["shadow"]["writes"];
    assert_eq!(writes[0]["call"], "board.add_comment", "{writes:#}");
    writes[0]["args"]["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_memory_ci_and_cost_watches_each_get_an_offline_fix_that_passes_the_whole_gate() {
    let dirs = Dirs::new();
    let transcripts = dirs.data.parent().unwrap().join("transcripts");
    std::fs::create_dir_all(&transcripts).unwrap();
    transcripts_behind(&transcripts, 72);
    let source = format!("org={}", transcripts.display());
    let mut w = Watch::start(&dirs, &["--ingest", &source]);
    // acme/web was last green eight days ago; an agent with the `ci` skill
    // is up to own it.
    w.post(
        "/api/ci/runs",
        json!({"repo": "acme/web", "branch": "main", "conclusion": "success", "finished_at": T0}),
    )
    .await;
    w.advance(8 * 24 * HOUR).await;
    w.post(
        "/api/fleet/heartbeat",
        json!({"agent": "builder", "skills": ["ci"], "load": 0.1, "interval_seconds": 86_400}),
    )
    .await;
    // diana costs three times the fleet's average per session.
    for (agent, usd) in [
        ("alfred", 1.0),
        ("bruce", 1.0),
        ("clark", 1.0),
        ("diana", 9.0),
    ] {
        w.push(
            "agent.cost_usd",
            usd,
            json!({"agent": agent, "session": format!("{agent}-1")}),
        )
        .await;
    }
    let report = w.evaluate().await;
    let fired = transitions(&report);
    for rule in ["memory-ingest-lag", "ci-not-green", "agent-cost"] {
        assert!(
            fired.iter().any(|t| t.ends_with(&format!("{rule} firing"))),
            "{report:#}"
        );
    }
    assert_eq!(
        report["proposals"].as_array().unwrap().len(),
        3,
        "{report:#}"
    );

    let lag = w
        .proposal_within(gap_id(&w, "memory-ingest-lag", None).await, 20)
        .await;
    passed_every_step(&lag);
    assert_eq!(lag["skill"], "fix-memory-ingest-lag");
    assert!(
        lag["source"]
            .as_str()
            .unwrap()
            .contains("trigger = \"gap: memory-ingest-lag\""),
        "{lag:#}"
    );
    assert!(first_write(&lag).contains("behind"), "{lag:#}");

    let ci = w
        .proposal_within(gap_id(&w, "ci-not-green", None).await, 20)
        .await;
    passed_every_step(&ci);
    assert_eq!(ci["skill"], "fix-ci-not-green-main-acme-web");
    let source = ci["source"].as_str().unwrap();
    assert!(source.contains("default = \"acme/web\""), "{source}");
    assert!(source.contains("default = \"main\""), "{source}");
    let said = first_write(&ci);
    assert!(
        said.contains("acme/web on main is 8 days old") && said.contains("builder"),
        "{said}"
    );

    let cost = w
        .proposal_within(gap_id(&w, "agent-cost", Some(("agent", "diana"))).await, 20)
        .await;
    passed_every_step(&cost);
    assert_eq!(cost["skill"], "fix-agent-cost-diana");
    assert!(
        first_write(&cost).contains("Agent diana costs 3"),
        "{cost:#}"
    );

    // Each card says what was proposed; each proposal waits for a person.
    for p in [&lag, &ci, &cost] {
        let (_, gap) = w.host.get(&format!("/api/gaps/{}", p["gap_id"])).await;
        assert_eq!(gap["card"]["comments"], 1, "{gap:#}");
        assert_eq!(p["approvals"][0]["state"], "pending", "{p:#}");
    }
}

/// A fix for agent `agent` as a model would write it: `body` is its steps,
/// `writes` what its example expects it to write.
fn fix_source(agent: &str, grants: &str, body: &str, writes: &str) -> String {
    format!(
        r#"+++
name = "fix-agent-down-{agent}"
version = "1.0.0"
description = "Says on the gap's card that agent {agent} is down."
trigger = "gap: agent-down"

[capabilities]
{grants}

[input]
agent = {{ type = "string", default = "{agent}" }}
card = {{ type = "string", default = "card-1" }}
+++

# Agent {agent} down

## Steps

```workflow
{body}
```

## Tests

### the card is told

```toml
[expect]
output = {{ agent = "{agent}", told = true }}
writes = [{writes}]
```
"#
    )
}

const TELL: &str = "board.add_comment(card_id: input.card, text: \"Agent {input.agent} is down.\")\nreturn { agent: input.agent, told: true }";
/// A string where a bool belongs: the checker says so, with the line.
const MISTYPED: &str = "board.add_comment(card_id: input.card, text: \"Agent {input.agent} is down.\")\nreturn { agent: input.agent, told: true + \"yes\" }";

/// The skill a request is about, and its round (1 for the first prompt).
fn skill_and_round(request: &Value) -> (String, usize) {
    let messages = request["messages"].as_array().unwrap();
    let user = messages[1]["content"].as_str().unwrap();
    let skill = user
        .split("skill name: `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("")
        .to_string();
    (skill, (messages.len() - 2) / 2 + 1)
}

#[tokio::test]
async fn a_model_is_corrected_from_the_diagnostics_and_every_bad_answer_ends_its_attempt() {
    let llm = llm_stub::start(|request| {
        let (skill, round) = skill_and_round(request);
        let agent = skill.trim_start_matches("fix-agent-down-").to_string();
        let board = "board_write = [\"Backlog\"]";
        let tells = "\"board.add_comment\"";
        match agent.as_str() {
            "typo" if round == 1 => {
                Reply::fix(&fix_source(&agent, board, MISTYPED, tells), "Tells.")
            }
            "typo" => Reply::fix(&fix_source(&agent, board, TELL, tells), "Tells the card."),
            "stuck" => Reply::fix(&fix_source(&agent, board, MISTYPED, tells), "Tells."),
            "greedy" => Reply::fix(
                &fix_source(
                    &agent,
                    &format!("{board}\nmemory_write = [\"org\"]"),
                    &format!("memory.store(text: \"agent {{input.agent}} down\", namespace: \"org\", metadata: {{}})\n{TELL}"),
                    "\"memory.store\", \"board.add_comment\"",
                ),
                "Tells and remembers.",
            ),
            "prose" => Reply::says("Sure! Here is a workflow that fixes the agent: ..."),
            "empty" => Reply::says(""),
            "cut" => Reply {
                finish_reason: "length",
                ..Reply::says("{\"summary\": \"Tells.\", \"workflow\": \"+++\\nname = ")
            },
            other => panic!("a prompt for an unexpected skill `{other}`"),
        }
    })
    .await;
    let dirs = Dirs::new();
    std::fs::create_dir_all(&dirs.data).unwrap();
    std::fs::write(
        dirs.data.join("policy.toml"),
        "[[rule]]\ngap = \"agent-down\"\nany_of = [\"memory_write\"]\napproval = \"deny\"\n",
    )
    .unwrap();
    let mut w = Watch::start(
        &dirs,
        &[
            "--llm-url",
            &llm.url,
            "--llm-model",
            "test-model",
            "--llm-timeout",
            "20s",
        ],
    );
    // What worked before, as part 3 keeps it.
    let (status, _) = w
        .host
        .send(w.host.http.post(format!("{}/api/memory", w.host.url)).json(&json!({
            "text": "Fix fix-agent-down-atlas for gap agent-down: told the card and handed the task over; the agent was back within 12 minutes.",
            "namespace": "org",
            "metadata": {"factory": "fix", "gap_kind": "agent-down", "outcome": "recovered"},
        })))
        .await;
    assert_eq!(status, 201);
    let agents = ["typo", "stuck", "greedy", "prose", "empty", "cut"];
    for agent in agents {
        w.heartbeat(agent, 60).await;
    }
    w.advance(4 * MINUTE).await;
    let report = w.evaluate().await;
    assert_eq!(
        report["proposals"].as_array().unwrap().len(),
        6,
        "{report:#}"
    );
    let mut proposals = std::collections::BTreeMap::new();
    for agent in agents {
        let gap = gap_id(&w, "agent-down", Some(("agent", agent))).await;
        proposals.insert(agent, w.proposal_within(gap, 60).await);
    }
    let requests = llm.requests();
    let of = |agent: &str| -> Vec<Value> {
        requests
            .iter()
            .filter(|r| skill_and_round(r).0 == format!("fix-agent-down-{agent}"))
            .cloned()
            .collect()
    };

    // The first answer had a type error; the second prompt carried the
    // diagnostic, line and column, and the second answer passed.
    let typo = &proposals["typo"];
    passed_every_step(typo);
    assert_eq!(typo["synthesiser"], "llm:test-model");
    assert_eq!(typo["summary"], "Tells the card.");
    let rounds = typo["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{typo:#}");
    let diagnostic = rounds[0]["diagnostics"].as_str().unwrap();
    assert!(diagnostic.starts_with("check failed"), "{diagnostic}");
    assert!(
        diagnostic.contains("--> fix-agent-down-typo.workflow.md:21:36")
            && diagnostic.contains("told: true + \"yes\""),
        "file:line:column and the line: {diagnostic}"
    );
    assert_eq!(rounds[1]["diagnostics"], "");
    let asked = of("typo");
    assert_eq!(asked.len(), 2);
    let second = asked[1]["messages"].as_array().unwrap();
    assert_eq!(
        second.len(),
        4,
        "system, user, the first answer, the diagnostics"
    );
    assert_eq!(second[2]["role"], "assistant");
    assert!(
        second[3]["content"].as_str().unwrap().contains(diagnostic),
        "the second prompt carries the diagnostic: {:#}",
        second[3]
    );
    assert!(typo["tokens"].as_u64().unwrap() > 0, "{typo:#}");
    assert!(typo["model_ms"].as_f64().unwrap() > 0.0, "{typo:#}");
    // The first prompt: the gap, the format, only what the policy allows,
    // the worked examples, and the fix that worked before.
    let first = &asked[0];
    assert_eq!(first["model"], "test-model");
    assert_eq!(first["response_format"]["type"], "json_schema", "{first:#}");
    let system = first["messages"][0]["content"].as_str().unwrap();
    let user = first["messages"][1]["content"].as_str().unwrap();
    assert!(system.contains("# The workflow.md format"), "{system}");
    assert!(system.contains("`board.add_comment(card_id: string, text: string)"));
    assert!(system.contains("`memory.search("));
    assert!(
        !system.contains("`memory.store("),
        "memory_write is denied for agent-down gaps: not offered"
    );
    assert!(system.contains("## agent-down.workflow.md"));
    assert!(user.contains("agent = \"typo\""), "{user}");
    assert!(
        user.contains("- rule: `agent-down`, which fires at `> 2`"),
        "{user}"
    );
    assert!(
        user.contains("the agent was back within 12 minutes"),
        "{user}"
    );

    // Never passes: four rounds, then the attempt ends.
    let stuck = &proposals["stuck"];
    assert_eq!(stuck["state"], "failed", "{stuck:#}");
    assert_eq!(stuck["rounds"].as_array().unwrap().len(), 4);
    assert_eq!(of("stuck").len(), 4);
    let reason = stuck["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no round of 4 passed the gate; the last: check failed"),
        "{reason}"
    );

    // Asks for a grant the policy denies: no second round.
    let greedy = &proposals["greedy"];
    assert_eq!(greedy["state"], "failed", "{greedy:#}");
    assert_eq!(of("greedy").len(), 1);
    let reason = greedy["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("round 1: policy failed")
            && reason.contains("memory_write")
            && reason.contains("denies"),
        "{reason}"
    );

    // Not JSON, empty, cut at the token limit: each ends its attempt.
    for (agent, says) in [
        ("prose", "round 1: the model's answer is not JSON"),
        ("empty", "round 1: the model answered nothing"),
        (
            "cut",
            "round 1: the model's answer was cut at its token limit",
        ),
    ] {
        let p = &proposals[agent];
        assert_eq!(p["state"], "failed", "{p:#}");
        assert!(p["reason"].as_str().unwrap().starts_with(says), "{p:#}");
        assert_eq!(of(agent).len(), 1, "{agent}");
        assert_eq!(p["rounds"].as_array().unwrap().len(), 1, "{p:#}");
    }
    // Every card says what came of its gap; only the fix that passed asks
    // for a decision.
    for p in proposals.values() {
        let (_, gap) = w.host.get(&format!("/api/gaps/{}", p["gap_id"])).await;
        assert_eq!(gap["card"]["comments"], 1, "{gap:#}");
    }
    let (_, approvals) = w.host.get("/api/approvals").await;
    let pending = approvals["approvals"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{approvals:#}");
    assert_eq!(pending[0]["proposal_id"], typo["id"]);
    let (_, all) = w.host.get("/api/proposals").await;
    let by: Vec<&str> = all["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["synthesiser"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["llm:test-model"; 6], "{all:#}");
    let (ok, out, err) = run_cli(&w.host.url, &["proposals", "list"]);
    assert!(ok, "{err}");
    for agent in agents {
        assert!(out.contains(&format!("fix-agent-down-{agent} ")), "{out}");
    }
    assert!(out.contains("no round of 4 passed the gate"), "{out}");
}

#[tokio::test]
async fn a_model_too_slow_to_answer_holds_up_nothing_and_the_offline_fix_is_proposed() {
    let llm = llm_stub::start(|_| Reply {
        delay: Duration::from_secs(30),
        ..Reply::says("{}")
    })
    .await;
    let dirs = Dirs::new();
    let mut w = Watch::start(
        &dirs,
        &[
            "--llm-url",
            &llm.url,
            "--llm-model",
            "slow-model",
            "--llm-timeout",
            "1s",
        ],
    );
    w.heartbeat("scout", 60).await;
    w.advance(4 * MINUTE).await;
    let report = w.evaluate().await;
    assert_eq!(report["proposals"], json!(["1 queued"]), "{report:#}");
    // While the model is asked, the loop and the API go on.
    let mut page = Value::Null;
    for _ in 0..100 {
        page = w.host.get("/api/proposals?gap=1").await.1;
        if !page["proposals"][0].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(page["proposals"][0]["state"], "synthesising", "{page:#}");
    w.advance(MINUTE).await;
    let again = w.evaluate().await;
    assert!(again["errors"].as_array().unwrap().is_empty(), "{again:#}");
    let (status, _) = w.host.get("/readyz").await;
    assert_eq!(status, 200);
    let (status, _) = w.host.get("/api/skills").await;
    assert_eq!(status, 200);
    let p = w.proposal_within(1, 30).await;
    passed_every_step(&p);
    assert_eq!(p["synthesiser"], "offline", "{p:#}");
    let reason = p["reason"].as_str().unwrap();
    assert!(
        reason.contains("the model could not be asked")
            && reason.contains("unavailable")
            && reason.ends_with("the offline synthesiser wrote this fix"),
        "{reason}"
    );
    let rounds = p["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{p:#}");
    assert_eq!(rounds[0]["author"], "llm:slow-model");
    assert_eq!(rounds[1]["author"], "offline");
    assert_eq!(
        llm.requests().len(),
        2,
        "a time-out is tried once more only"
    );
}

/// The Approve and Reject buttons' data of a Telegram message.
fn buttons(message: &Value) -> (String, String) {
    let row = &message["reply_markup"]["inline_keyboard"][0];
    assert_eq!(row[0]["text"], "Approve", "{message:#}");
    assert_eq!(row[1]["text"], "Reject", "{message:#}");
    (
        row[0]["callback_data"].as_str().unwrap().to_string(),
        row[1]["callback_data"].as_str().unwrap().to_string(),
    )
}

/// The answer to callback query `update`, once the host gave it.
async fn answered(bot: &notify_stub::Notify, update: i64) -> String {
    let id = format!("cq-{update}");
    for _ in 0..200 {
        if let Some(a) = bot
            .calls("answerCallbackQuery")
            .iter()
            .find(|a| a["callback_query_id"] == id)
        {
            return a["text"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("update {update} was not answered within 10 s");
}

/// `POST /api/approvals/{id}/{verb}`: the status and the answer.
async fn decide(w: &Watch, id: i64, verb: &str) -> (u16, Value) {
    let url = format!("{}/api/approvals/{id}/{verb}", w.host.url);
    w.host.send(w.host.http.post(url)).await
}

/// Approval request `id`, as the API has it.
async fn pending(w: &Watch, id: i64) -> Value {
    w.host.get(&format!("/api/approvals/{id}")).await.1
}

const APPROVER: i64 = 4242;
const CHAT: &str = "-100777";

#[tokio::test]
async fn a_telegram_press_decides_once_and_every_other_press_is_refused_and_deploys_nothing() {
    let bot = notify_stub::start().await;
    let dirs = Dirs::new();
    let approver = APPROVER.to_string();
    let chat = format!("--telegram-chat-id={CHAT}");
    let flags = [
        "--telegram-bot-token",
        notify_stub::BOT_TOKEN,
        &chat,
        "--telegram-api-url",
        &bot.url,
        "--telegram-approver",
        &approver,
        "--telegram-poll-wait",
        "1s",
    ];
    let mut w = Watch::start(&dirs, &flags);
    w.heartbeat("scout", 60).await;
    w.heartbeat("miner", 60).await;
    w.advance(4 * MINUTE).await;
    w.evaluate().await;
    let scout = w
        .proposal_within(gap_id(&w, "agent-down", Some(("agent", "scout"))).await, 20)
        .await;
    let miner = w
        .proposal_within(gap_id(&w, "agent-down", Some(("agent", "miner"))).await, 20)
        .await;
    passed_every_step(&scout);
    passed_every_step(&miner);

    // Each request went to the approval chat with its summary, grants,
    // sha256, verification and two buttons.
    let asked: Vec<Value> = bot
        .messages()
        .into_iter()
        .filter(|m| !m["reply_markup"].is_null())
        .collect();
    assert_eq!(asked.len(), 2, "{asked:#?}");
    // The message about `p`, and its id (the stub numbers every message
    // it was sent, escalations too, from 1).
    let message_of = |p: &Value| -> (i64, Value) {
        let all = bot.messages();
        let at = all
            .iter()
            .position(|m| {
                !m["reply_markup"].is_null()
                    && m["text"]
                        .as_str()
                        .unwrap()
                        .contains(p["sha256"].as_str().unwrap())
            })
            .unwrap_or_else(|| panic!("no message for {p:#}"));
        (at as i64 + 1, all[at].clone())
    };
    let (message_id, scout_message) = message_of(&scout);
    assert_eq!(scout_message["chat_id"], CHAT);
    let text = scout_message["text"].as_str().unwrap();
    for part in [
        "agent-down",
        "agent=scout",
        "May use: board_write, fleet_read",
        "✔ check ✔ compile ✔ tests ✔ shadow ✔ policy",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    let (approve, reject) = buttons(&scout_message);
    assert!(
        approve.len() <= 64 && approve.starts_with("df:"),
        "{approve}"
    );
    let scout_request = scout["approvals"][0]["id"].as_i64().unwrap();

    // Someone in the group who is not an approver.
    let u = bot.press(7, CHAT, message_id, &approve);
    assert_eq!(
        answered(&bot, u).await,
        "Refused: Telegram user 7 is not on the approvers' list"
    );
    // The approver, but in another chat (a forwarded message).
    let u = bot.press(APPROVER, "-100999", message_id, &approve);
    assert_eq!(
        answered(&bot, u).await,
        "Refused: the press came from chat -100999, not the approval chat."
    );
    // A button this host never made, and a forged secret.
    let u = bot.press(APPROVER, CHAT, message_id, "df:1:a");
    assert_eq!(
        answered(&bot, u).await,
        "This button is not one of this host's."
    );
    let forged = format!("df:{scout_request}:a:{}", "0".repeat(22));
    let u = bot.press(APPROVER, CHAT, message_id, &forged);
    assert!(
        answered(&bot, u)
            .await
            .starts_with("Refused: the button's data does not match"),
        "forged"
    );
    let request = pending(&w, scout_request).await;
    assert_eq!(request["state"], "pending", "{request:#}");
    assert_eq!(
        request["refusals"].as_array().unwrap().len(),
        3,
        "{request:#}"
    );
    assert!(
        bot.calls("editMessageReplyMarkup").is_empty(),
        "the buttons stay for the approver"
    );

    // The approver approves: answered, buttons removed, decision written in.
    let approved_update = bot.press(APPROVER, CHAT, message_id, &approve);
    let scout_id = scout["id"].as_i64().unwrap();
    assert_eq!(
        answered(&bot, approved_update).await,
        format!("Proposal #{scout_id} approved.")
    );
    let request = pending(&w, scout_request).await;
    assert_eq!(request["state"], "approved", "{request:#}");
    assert_eq!(
        request["decided_by"],
        format!("telegram:{APPROVER} (@user{APPROVER})"),
        "{request:#}"
    );
    assert_eq!(request["via"], "telegram", "{request:#}");
    let closed = bot.calls("editMessageReplyMarkup");
    assert_eq!(closed[0]["message_id"], message_id, "{closed:#?}");
    assert_eq!(closed[0]["reply_markup"]["inline_keyboard"], json!([]));
    let edited = bot.calls("editMessageText");
    assert!(
        edited[0]["text"]
            .as_str()
            .unwrap()
            .contains("APPROVED by telegram:4242"),
        "{edited:#?}"
    );

    // A second press (of Reject) is refused and changes nothing.
    let u = bot.press(APPROVER, CHAT, message_id, &reject);
    assert!(
        answered(&bot, u).await.starts_with(&format!(
            "Refused: request #{scout_request} was already approved by telegram:4242"
        )),
        "second press"
    );
    // Through the CLI too.
    let (ok, _, err) = run_cli(
        &w.host.url,
        &["approvals", "reject", &scout_request.to_string()],
    );
    assert!(!ok, "a decided request is not decided again");
    assert!(err.contains("already approved by telegram:4242"), "{err}");
    // Telegram hands the approving update out again: it was handled.
    bot.replay(approved_update);
    let replays = || {
        bot.calls("answerCallbackQuery")
            .iter()
            .filter(|a| a["callback_query_id"] == format!("cq-{approved_update}"))
            .count()
    };
    for _ in 0..200 {
        if replays() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(replays(), 2);
    let last = bot.calls("answerCallbackQuery").last().cloned().unwrap();
    assert_eq!(last["text"], "This press was already handled.");
    let request = pending(&w, scout_request).await;
    assert_eq!(request["state"], "approved");
    assert_eq!(
        request["refusals"].as_array().unwrap().len(),
        5,
        "the second press and the CLI's are kept; the replay was never decided: {request:#}"
    );
    let p = w.proposal_of(scout["gap_id"].as_u64().unwrap()).await;
    assert_eq!(p["state"], "approved", "{p:#}");

    // Every update was confirmed by a later offset.
    let last_update = approved_update + 1; // the second press
    for _ in 0..100 {
        if bot.all_confirmed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bot.all_confirmed(), "offsets: {:?}", bot.offsets());
    // A restart keeps the offset: it polls from after the last update, and
    // a replay of that update is known as one (a host that had forgotten
    // would decide it again, and refuse it as decided).
    let mut w = w.restart(&dirs);
    let answers_of = |id: i64| {
        bot.calls("answerCallbackQuery")
            .into_iter()
            .filter(|a| a["callback_query_id"] == format!("cq-{id}"))
            .collect::<Vec<_>>()
    };
    // The stopped host's last long poll ends within its 1 s wait: after
    // that, only the new host is polling.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bot.replay(last_update);
    for _ in 0..200 {
        if answers_of(last_update).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answers = answers_of(last_update);
    assert_eq!(answers.len(), 2, "{answers:#?}");
    assert_eq!(answers[1]["text"], "This press was already handled.");
    assert_eq!(bot.offsets().last(), Some(&(last_update + 1)));
    let request = pending(&w, scout_request).await;
    assert_eq!(
        request["refusals"].as_array().unwrap().len(),
        5,
        "{request:#}"
    );

    // The proposal changed since the request was sent: a press on the old
    // message is refused, and its buttons removed.
    let miner_id = miner["id"].as_i64().unwrap();
    let miner_request = miner["approvals"][0]["id"].as_i64().unwrap();
    let (miner_message_id, miner_message) = message_of(&miner);
    let (miner_approve, _) = buttons(&miner_message);
    {
        let db = rusqlite::Connection::open(dirs.data.join("proposals.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        let changed = db
            .execute(
                "UPDATE proposals SET doc = json_set(doc, '$.sha256', ?1) WHERE id = ?2",
                rusqlite::params!["f".repeat(64), miner_id],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let u = bot.press(APPROVER, CHAT, miner_message_id, &miner_approve);
    assert!(
        answered(&bot, u).await.starts_with(&format!(
            "Refused: proposal #{miner_id} changed since it was asked about"
        )),
        "changed"
    );
    let request = pending(&w, miner_request).await;
    assert_eq!(request["state"], "pending", "{request:#}");
    assert!(bot
        .calls("editMessageReplyMarkup")
        .iter()
        .any(|c| c["message_id"] == miner_message_id));
    // Through the API, the same refusal is a 409.
    let (status, out) = decide(&w, miner_request, "approve").await;
    assert_eq!(status, 409, "{out:#}");
    assert_eq!(out["error"]["code"], "proposal_changed");

    // An expired request: a press on its message is refused.
    w.advance(25 * HOUR).await;
    w.evaluate().await;
    let u = bot.press(APPROVER, CHAT, miner_message_id, &miner_approve);
    let said = answered(&bot, u).await;
    assert!(
        said.starts_with(&format!(
            "Refused: request #{miner_request} was already expired"
        )),
        "{said}"
    );
    let (status, out) = decide(&w, miner_request, "reject").await;
    assert_eq!(status, 409, "{out:#}");
    assert_eq!(out["error"]["code"], "approval_decided");
    let p = w.proposal_of(miner["gap_id"].as_u64().unwrap()).await;
    assert_ne!(p["state"], "approved", "{p:#}");
}

#[tokio::test]
async fn a_webhook_update_decides_like_a_polled_one_and_a_wrong_secret_is_refused() {
    let bot = notify_stub::start().await;
    let dirs = Dirs::new();
    let approver = APPROVER.to_string();
    let chat = format!("--telegram-chat-id={CHAT}");
    let mut w = Watch::start(
        &dirs,
        &[
            "--telegram-bot-token",
            notify_stub::BOT_TOKEN,
            &chat,
            "--telegram-api-url",
            &bot.url,
            "--telegram-approver",
            &approver,
            "--telegram-webhook-secret",
            "s3cret-token_1",
        ],
    );
    w.heartbeat("scout", 60).await;
    w.advance(4 * MINUTE).await;
    w.evaluate().await;
    let p = w.proposal_within(1, 20).await;
    passed_every_step(&p);
    let message = bot
        .messages()
        .into_iter()
        .find(|m| !m["reply_markup"].is_null())
        .unwrap();
    let (_, reject) = buttons(&message);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        bot.offsets().is_empty(),
        "with a webhook, the host does not poll"
    );
    let update = |id: i64, user: i64| {
        json!({"update_id": id, "callback_query": {
            "id": format!("cq-{id}"), "from": {"id": user, "is_bot": false, "first_name": "Ops"},
            "message": {"message_id": 1, "chat": {"id": -100777, "type": "group"}, "date": 1},
            "chat_instance": "x", "data": reject}})
    };
    let url = format!("{}/api/telegram/webhook", w.host.url);
    let post = |body: Value, secret: Option<&str>| {
        let mut req = w.host.http.post(&url).json(&body);
        if let Some(s) = secret {
            req = req.header("X-Telegram-Bot-Api-Secret-Token", s);
        }
        w.host.send(req)
    };
    let (status, out) = post(update(1, APPROVER), Some("s3cret-token_2")).await;
    assert_eq!(status, 401, "{out:#}");
    let (status, _) = post(update(1, APPROVER), None).await;
    assert_eq!(status, 401);
    let request = p["approvals"][0]["id"].as_i64().unwrap();
    let (_, r) = w.host.get(&format!("/api/approvals/{request}")).await;
    assert_eq!(r["state"], "pending", "nothing was decided: {r:#}");
    let (status, _) = post(update(5, APPROVER), Some("s3cret-token_1")).await;
    assert_eq!(status, 200);
    assert_eq!(
        answered(&bot, 5).await,
        format!("Proposal #{} rejected.", p["id"])
    );
    let (_, r) = w.host.get(&format!("/api/approvals/{request}")).await;
    assert_eq!(r["state"], "rejected", "{r:#}");
    // Telegram retries a delivery it thinks failed: the same update again.
    let (status, _) = post(update(5, APPROVER), Some("s3cret-token_1")).await;
    assert_eq!(status, 200);
    let p = w.proposal_of(1).await;
    assert_eq!(p["state"], "rejected", "{p:#}");
    assert!(
        p["reason"]
            .as_str()
            .unwrap()
            .starts_with("rejected by telegram:4242"),
        "{p:#}"
    );
}

/// The runs of skill `skill` once `count` of them have ended (10 s at most).
async fn runs_of(w: &Watch, skill: &str, count: usize) -> Vec<Value> {
    let mut runs = Vec::new();
    for _ in 0..200 {
        let (status, page) = w
            .host
            .get(&format!("/api/factory/runs?skill={skill}"))
            .await;
        assert_eq!(status, 200, "{page:#}");
        runs = page["runs"].as_array().unwrap().clone();
        if runs.len() >= count && runs.iter().all(|r| r["state"] != "running") {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{skill} has not ended {count} runs within 10 s: {runs:#?}");
}

/// Puts workflow `name` into the skills directory.
fn install(dirs: &Dirs, name: &str, source: &str) {
    std::fs::create_dir_all(&dirs.skills).unwrap();
    std::fs::write(dirs.skills.join(format!("{name}.workflow.md")), source).unwrap();
}

/// Waits until skill `name` serves.
async fn ready(w: &Watch, name: &str) {
    w.host
        .wait_for(name, "to serve", |s| s["status"] == "ready")
        .await;
}

/// `GET /metrics`.
async fn scrape(w: &Watch) -> String {
    let url = format!("{}/metrics", w.host.url);
    let response = w.host.http.get(url).send().await.unwrap();
    response.text().await.unwrap()
}

const TELL_DOWN: &str = r#"+++
name = "tell-down"
version = "1.0.0"
description = "Says on a down agent's gap card how many cycles it missed."
trigger = "gap: agent-down"

[capabilities]
board_write = ["Backlog"]

[input]
agent = { type = "string", default = "nobody" }
card = { type = "string", default = "none" }
value = { type = "float", default = 0.0 }
+++

# Tell the card

## Steps

```workflow
board.add_comment(card_id: input.card, text: "Agent {input.agent} missed {input.value} cycles.")
return { agent: input.agent, told: true }
```
"#;

#[tokio::test]
async fn a_skill_whose_trigger_is_a_gap_kind_runs_once_per_firing_and_nothing_is_synthesised() {
    let dirs = Dirs::new();
    install(&dirs, "tell-down", TELL_DOWN);
    let mut w = Watch::start(&dirs, &[]);
    ready(&w, "tell-down").await;
    w.heartbeat("scout", 60).await;
    w.advance(4 * MINUTE).await;
    let report = w.evaluate().await;
    assert_eq!(report["proposals"], json!([]), "answered: {report:#}");
    let runs = runs_of(&w, "tell-down", 1).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["state"], "ok", "{run:#}");
    assert_eq!(run["trigger"], "gap: agent-down");
    assert_eq!(run["gap_id"], 1);
    let gaps = w.gaps().await;
    let card = gaps["gaps"][0]["card_id"].clone();
    assert_eq!(
        run["input"],
        json!({"agent": "scout", "card": card, "value": 4.0}),
        "what its [input] declares, and only that"
    );
    assert_eq!(run["output"], json!({"agent": "scout", "told": true}));
    let metrics = scrape(&w).await;
    assert!(
        metrics.contains(
            "darkfactory_factory_runs_total{skill=\"tell-down\",trigger=\"gap\",state=\"ok\"} 1"
        ),
        "{metrics}"
    );
    // It acted: the card has its comment (the gap's card, nothing else).
    let (_, gap) = w.host.get("/api/gaps/1").await;
    assert_eq!(gap["card"]["comments"], 1, "{gap:#}");
    let (_, proposals) = w.host.get("/api/proposals").await;
    assert_eq!(proposals["proposals"], json!([]), "{proposals:#}");

    // More evaluations, and a restart: the firing ran once.
    w.advance(MINUTE).await;
    w.evaluate().await;
    let w = w.restart(&dirs);
    ready(&w, "tell-down").await;
    w.evaluate().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs_of(&w, "tell-down", 1).await.len(), 1);
    let (ok, out, err) = run_cli(&w.host.url, &["factory", "runs"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("tell-down") && out.contains("gap: agent-down"),
        "{out}"
    );
    // Counted for Prometheus (since this start: none yet).
    let metrics = scrape(&w).await;
    assert!(
        metrics.contains("# TYPE darkfactory_factory_runs_total counter"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("darkfactory_factory_runs_total{"),
        "{metrics}"
    );
}

const TICK: &str = r#"+++
name = "tick"
version = "1.0.0"
description = "Logs every five minutes."
trigger = "cron: */5 * * * *"
+++

# Tick

## Steps

```workflow
log.info("tick")
return { ticked: true }
```
"#;

#[tokio::test]
async fn a_cron_skill_runs_at_each_slot_once_and_missed_slots_are_not_piled_up() {
    let dirs = Dirs::new();
    install(&dirs, "tick", TICK);
    // 08:00:00, a slot: a skill first seen runs from its next one.
    let mut w = Watch::start(&dirs, &[]);
    ready(&w, "tick").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.advance(4 * MINUTE).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs_of(&w, "tick", 0).await, Vec::<Value>::new());
    // 08:05: one run.
    w.advance(MINUTE).await;
    let runs = runs_of(&w, "tick", 1).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["due_at_ms"], T0 + 5 * MINUTE);
    assert_eq!(runs[0]["state"], "ok");
    assert_eq!(runs[0]["output"], json!({"ticked": true}));
    // An hour on at once (twelve slots): the latest runs, once.
    w.advance(HOUR).await;
    runs_of(&w, "tick", 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = runs_of(&w, "tick", 2).await;
    let due: Vec<u64> = runs
        .iter()
        .map(|r| r["due_at_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(due, [T0 + 65 * MINUTE, T0 + 5 * MINUTE], "{runs:#?}");
    // A restart in the same minute runs nothing again; the next slot runs.
    let mut w = w.restart(&dirs);
    ready(&w, "tick").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs_of(&w, "tick", 2).await.len(), 2);
    w.advance(5 * MINUTE).await;
    let runs = runs_of(&w, "tick", 3).await;
    assert_eq!(runs[0]["due_at_ms"], T0 + 70 * MINUTE, "{runs:#?}");
    assert_eq!(runs.len(), 3, "{runs:#?}");

    // At 09:13 its schedule becomes 12 past the hour: the new schedule's
    // latest minute, 09:12, is later than the last run but is not run; the
    // next one, 10:12, is.
    w.advance(3 * MINUTE).await;
    install(&dirs, "tick", &TICK.replace("*/5 * * * *", "12 * * * *"));
    w.host
        .wait_for("tick", "the new schedule", |s| {
            s["manifest"]["workflow"]["trigger"] == "cron: 12 * * * *"
        })
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs_of(&w, "tick", 3).await.len(), 3);
    w.advance(59 * MINUTE).await;
    let runs = runs_of(&w, "tick", 4).await;
    assert_eq!(runs.len(), 4, "{runs:#?}");
    assert_eq!(runs[0]["due_at_ms"], T0 + 132 * MINUTE, "{runs:#?}");
    assert_eq!(runs[0]["trigger"], "cron: 12 * * * *");
}
