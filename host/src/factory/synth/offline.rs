//! The offline synthesiser: a fix for each of the five gap kinds, written
//! for the gap at hand (which agent, which repository and branch, the
//! rule's threshold, the gap's card), with examples that pin down what it
//! does. Deterministic and without network: the same gap gives the same
//! `workflow.md`, byte for byte.
//!
//! The steps are fixed per kind and the gap's particulars enter as the
//! defaults of the workflow's `[input]` (TOML-quoted), never as code, so a
//! label value cannot change what the fix does. Each fix reads what it
//! needs, acts through the interfaces its front matter grants, and says on
//! the gap's card what it found and did.

use super::{Draft, GapBrief};

/// The gap kinds this synthesiser writes fixes for.
pub const KINDS: [&str; 5] = [
    "cards-blocked",
    "agent-down",
    "memory-ingest-lag",
    "ci-not-green",
    "agent-cost",
];

/// A TOML string literal of `text` (basic string, escaped).
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// `text` as it may stand in prose: one line, no Markdown code or fences.
fn prose(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            '`' | '+' | '#' | '<' | '>' | '*' | '_' | '[' | ']' => ' ',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The fix for `gap`, or `None` for a kind this synthesiser does not know.
pub fn synthesise(gap: &GapBrief) -> Option<Draft> {
    let template = match gap.kind.as_str() {
        "agent-down" => AGENT_DOWN,
        "cards-blocked" => CARDS_BLOCKED,
        "memory-ingest-lag" => INGEST_LAG,
        "ci-not-green" => CI_NOT_GREEN,
        "agent-cost" => AGENT_COST,
        _ => return None,
    };
    let label = |key: &str| gap.labels.get(key).cloned().unwrap_or_default();
    let mut write_lists = vec![gap.card_list.clone()];
    if gap.kind == "cards-blocked" {
        for list in ["Blocked", "Review"] {
            if !write_lists.iter().any(|l| l.eq_ignore_ascii_case(list)) {
                write_lists.push(list.to_string());
            }
        }
    }
    let lists: Vec<String> = write_lists.iter().map(|l| quoted(l)).collect();
    let summary = match gap.kind.as_str() {
        "agent-down" => format!(
            "Hands the task of agent {} to another agent and says so on the gap's card, while \
             it stays down.",
            label("agent")
        ),
        "cards-blocked" => format!(
            "Comments on each card blocked more than {} h and moves the longest-blocked one to \
             Review.",
            gap.blocked_hours
        ),
        "memory-ingest-lag" => format!(
            "Reports on the gap's card how far the memory ingest lags while it is more than {} s \
             behind.",
            gap.threshold
        ),
        "ci-not-green" => format!(
            "Finds an agent with the `ci` skill for the CI of {} on {} and puts it on the gap's \
             card while the last green build is more than {} s old.",
            label("repo"),
            label("branch"),
            gap.threshold
        ),
        _ => format!(
            "Reports on the gap's card what agent {} costs against the fleet while it is more \
             than {} times the average per session.",
            label("agent"),
            gap.threshold
        ),
    };
    let description = format!(
        "Fix for gap #{} ({}): {}",
        gap.id,
        gap.kind,
        summary.trim_end_matches('.')
    );
    let source = template
        .replace("@NAME@", &quoted(&gap.skill))
        .replace("@DESCRIPTION@", &quoted(&description))
        .replace("@WRITE_LISTS@", &lists.join(", "))
        .replace("@CARD@", &quoted(&gap.card_id))
        .replace("@AGENT@", &quoted(&label("agent")))
        .replace("@REPO@", &quoted(&label("repo")))
        .replace("@BRANCH@", &quoted(&label("branch")))
        .replace("@HOURS@", &gap.blocked_hours.to_string())
        .replace("@THRESHOLD@", &float(gap.threshold))
        .replace("@GAP_ID@", &gap.id.to_string())
        .replace("@SUMMARY_TEXT@", &prose(&gap.summary))
        .replace("@CONDITION_TEXT@", &prose(&gap.condition))
        .replace("@VALUE_TEXT@", &float(gap.value));
    Some(Draft {
        skill: gap.skill.clone(),
        source,
        summary,
    })
}

/// A number as a workflow and TOML float literal (`2.0`, not `2`).
fn float(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.1}")
    } else if value.is_finite() {
        format!("{value}")
    } else {
        "0.0".to_string()
    }
}

const AGENT_DOWN: &str = r#"+++
name = @NAME@
version = "1.0.0"
description = @DESCRIPTION@
trigger = "gap: agent-down"

[capabilities]
fleet = "read"
board_write = [@WRITE_LISTS@]

[input]
agent = { type = "string", default = @AGENT@, description = "The agent that stopped sending heartbeats" }
card = { type = "string", default = @CARD@, description = "The gap's card, where the fix reports" }
+++

# Agent down: a fix for gap #@GAP_ID@

The factory found: @SUMMARY_TEXT@ (the rule fires at @CONDITION_TEXT@; it measured
@VALUE_TEXT@). The router already avoids a down agent, but the task it held
is stranded: this fix hands it to the agent the router picks, and says so on
the gap's card.

## Steps

Is the agent still down, and what was it doing?

```workflow
let found = []
for a in fleet.agents() {
  if a.name == input.agent {
    found = found + [a]
  }
}
if len(found) == 0 {
  board.add_comment(card_id: input.card, text: "Agent {input.agent} is no longer registered with the fleet: there is no task to hand over.")
  return { agent: input.agent, down: false, handed_to: "" }
}
let agent = found[0]
if agent.status != "down" {
  return { agent: agent.name, down: false, handed_to: "" }
}
```

Its task goes to the best agent the router finds.

```workflow
let task = agent.current_task ?? ""
let handed_to = ""
if task != "" {
  let route = fleet.route(task: task, required_skills: agent.skills)
  handed_to = route.agent
  board.add_comment(card_id: input.card, text: "Agent {agent.name} is down (last heartbeat at {agent.last_seen} ms). Its task \"{task}\" goes to {route.agent}.")
} else {
  board.add_comment(card_id: input.card, text: "Agent {agent.name} is down (last heartbeat at {agent.last_seen} ms) and held no task: it needs a restart.")
}
log.warn("agent {agent.name} is down")
return { agent: agent.name, down: true, handed_to }
```

## Tests

### the agent is down with a task: the task is handed over

```toml
input = {}

[fixtures]
"fleet.agents" = [
  { name = @AGENT@, status = "down", skills = ["search"], current_task = "summarise the incident", last_seen = 1_764_000_000_000 },
  { name = "factory-standby", status = "up", skills = ["search"] },
]
"fleet.route" = { agent = "factory-standby", score = 0.9 }

[expect]
output = { agent = @AGENT@, down = true, handed_to = "factory-standby" }
writes = ["board.add_comment"]
```

### the agent is down without a task: the card asks for a restart

```toml
input = {}

[fixtures]
"fleet.agents" = [{ name = @AGENT@, status = "down" }]

[expect]
output = { agent = @AGENT@, down = true, handed_to = "" }
writes = ["board.add_comment"]
```

### the agent is back: nothing is written

```toml
input = {}

[fixtures]
"fleet.agents" = [{ name = @AGENT@, status = "up" }]

[expect]
output = { agent = @AGENT@, down = false, handed_to = "" }
writes = []
```

### the registry is down: the error says so

```toml
[failures]
"fleet.agents" = "unavailable: Redis refused the connection"

[expect]
error = "fleet-unavailable"
```
"#;

const CARDS_BLOCKED: &str = r#"+++
name = @NAME@
version = "1.0.0"
description = @DESCRIPTION@
trigger = "gap: cards-blocked"

[capabilities]
board_read = ["Blocked"]
board_write = [@WRITE_LISTS@]

[input]
hours = { type = "int", default = @HOURS@, description = "How long a card may stay in Blocked" }
card = { type = "string", default = @CARD@, description = "The gap's card, where the fix reports" }
+++

# Cards blocked: a fix for gap #@GAP_ID@

The factory found: @SUMMARY_TEXT@ (the rule fires at @CONDITION_TEXT@; it measured
@VALUE_TEXT@). Work behind a card blocked for days is stuck and nobody is
looking: this fix comments on each one, moves the longest-blocked card to
Review where a person looks every day, and reports on the gap's card.

## Steps

The cards blocked too long, longest-blocked first:

```workflow
let late = board.cards(filter: { list: "Blocked", in_list_longer_than: input.hours * 3600 })
if len(late) == 0 {
  return { escalated: 0, moved: "" }
}
for card in late {
  board.add_comment(card_id: card.id, text: "Blocked for more than {input.hours} h: escalated by the factory (gap #@GAP_ID@).")
}
let moved = board.move_card(id: late[0].id, to_list: "Review")
board.add_comment(card_id: input.card, text: "{len(late)} card(s) blocked for more than {input.hours} h were commented on; \"{late[0].title}\" moved to Review.")
log.info("{len(late)} blocked card(s) escalated")
return { escalated: len(late), moved: moved.id }
```

## Tests

### two cards blocked for days: both commented, the oldest moved

```toml
input = {}

[fixtures]
"board.cards" = [
  { id = "7", list = "Blocked", title = "Deploy the API" },
  { id = "9", list = "Blocked", title = "Rotate the keys" },
]
"board.move_card" = { id = "7", list = "Review", title = "Deploy the API" }

[expect]
output = { escalated = 2, moved = "7" }
writes = ["board.add_comment", "board.add_comment", "board.move_card", "board.add_comment"]
```

### nothing blocked any more: nothing written

```toml
input = {}

[fixtures]
"board.cards" = []

[expect]
output = { escalated = 0, moved = "" }
writes = []
```

### the board is down: the error says so

```toml
[failures]
"board.cards" = "unavailable: Planka answered 503"

[expect]
error = "board-unavailable"
```
"#;

const INGEST_LAG: &str = r#"+++
name = @NAME@
version = "1.0.0"
description = @DESCRIPTION@
trigger = "gap: memory-ingest-lag"

[capabilities]
kpi_read = ["memory.ingest.lag_seconds"]
board_write = [@WRITE_LISTS@]

[input]
limit_seconds = { type = "float", default = @THRESHOLD@, description = "The lag the rule fires above" }
card = { type = "string", default = @CARD@, description = "The gap's card, where the fix reports" }
+++

# Memory ingest lag: a fix for gap #@GAP_ID@

The factory found: @SUMMARY_TEXT@ (the rule fires at @CONDITION_TEXT@; it measured
@VALUE_TEXT@). Agents recall stale memory until the ingest catches up: this
fix measures the lag over the last hour and reports it on the gap's card,
with how long it has been over the limit.

## Steps

```workflow
let samples = kpi.series(name: "memory.ingest.lag_seconds", window_seconds: 3600)
if len(samples) == 0 {
  fail("no-data", "no ingest lag was recorded in the last hour: is the memory monitor running?")
}
let lag = samples[-1].value
if lag <= input.limit_seconds {
  return { lagging: false, lag_hours: round(lag / 3600) }
}
let over = 0
for sample in samples {
  if sample.value > input.limit_seconds {
    over = over + 1
  }
}
board.add_comment(card_id: input.card, text: "The memory ingest is {round(lag / 3600)} h behind the transcripts (over the limit in {over} of the last {len(samples)} samples).")
log.warn("memory ingest lags {round(lag / 3600)} h")
return { lagging: true, lag_hours: round(lag / 3600) }
```

## Tests

### lagging: the card says how far

```toml
input = { limit_seconds = 172800.0 }

[fixtures]
"kpi.series" = [
  { at = 1_764_000_000_000, value = 180_000.0 },
  { at = 1_764_000_060_000, value = 259_200.0 },
]

[expect]
output = { lagging = true, lag_hours = 72 }
writes = ["board.add_comment"]
```

### caught up: nothing written

```toml
input = { limit_seconds = 172800.0 }

[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 600.0 }]

[expect]
output = { lagging = false, lag_hours = 0 }
writes = []
```

### no samples: the monitor is asked about

```toml
[fixtures]
"kpi.series" = []

[expect]
error = "no-data"
```
"#;

const CI_NOT_GREEN: &str = r#"+++
name = @NAME@
version = "1.0.0"
description = @DESCRIPTION@
trigger = "gap: ci-not-green"

[capabilities]
kpi_read = ["ci.last_success_age_seconds"]
fleet = "read"
board_write = [@WRITE_LISTS@]

[input]
repo = { type = "string", default = @REPO@, description = "The repository whose CI is not green" }
branch = { type = "string", default = @BRANCH@, description = "Its branch" }
limit_seconds = { type = "float", default = @THRESHOLD@, description = "The age of the last green build the rule fires above" }
card = { type = "string", default = @CARD@, description = "The gap's card, where the fix reports" }
+++

# CI not green: a fix for gap #@GAP_ID@

The factory found: @SUMMARY_TEXT@ (the rule fires at @CONDITION_TEXT@; it measured
@VALUE_TEXT@). A branch red for days stops being looked at: this fix finds
the agent with the `ci` skill the router picks and names it on the gap's
card, with how old the last green build is.

## Steps

```workflow
let ages = []
for sample in kpi.series(name: "ci.last_success_age_seconds", window_seconds: 3600) {
  if (sample.labels.repo ?? "") == input.repo and (sample.labels.branch ?? "") == input.branch {
    ages = ages + [sample.value]
  }
}
if len(ages) == 0 {
  fail("no-data", "no CI age of {input.repo} on {input.branch} was recorded in the last hour")
}
let age = ages[-1]
if age <= input.limit_seconds {
  return { green: true, age_days: round(age / 86400), owner: "" }
}
let route = fleet.route(task: "make the CI of {input.repo} on {input.branch} green", required_skills: ["ci"])
board.add_comment(card_id: input.card, text: "The last green build of {input.repo} on {input.branch} is {round(age / 86400)} days old. Suggested owner: {route.agent}.")
log.warn("CI of {input.repo} on {input.branch} not green for {round(age / 86400)} days")
return { green: false, age_days: round(age / 86400), owner: route.agent }
```

## Tests

### red for ten days: an owner is named on the card

```toml
input = { limit_seconds = 604800.0 }

[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 864_000.0, labels = { repo = @REPO@, branch = @BRANCH@ } }]
"fleet.route" = { agent = "factory-ci", score = 0.8 }

[expect]
output = { green = false, age_days = 10, owner = "factory-ci" }
writes = ["board.add_comment"]
```

### green again: nothing written

```toml
input = { limit_seconds = 604800.0 }

[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 3_600.0, labels = { repo = @REPO@, branch = @BRANCH@ } }]

[expect]
output = { green = true, age_days = 0, owner = "" }
writes = []
```

### another branch's age is not this one's

```toml
[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 864_000.0, labels = { repo = "factory-other", branch = "factory-other" } }]

[expect]
error = "no-data"
```
"#;

const AGENT_COST: &str = r#"+++
name = @NAME@
version = "1.0.0"
description = @DESCRIPTION@
trigger = "gap: agent-cost"

[capabilities]
kpi_read = ["agent.cost_ratio"]
board_write = [@WRITE_LISTS@]

[input]
agent = { type = "string", default = @AGENT@, description = "The agent whose cost runs away" }
factor = { type = "float", default = @THRESHOLD@, description = "The ratio to the fleet's average the rule fires above" }
card = { type = "string", default = @CARD@, description = "The gap's card, where the fix reports" }
+++

# Agent cost: a fix for gap #@GAP_ID@

The factory found: @SUMMARY_TEXT@ (the rule fires at @CONDITION_TEXT@; it measured
@VALUE_TEXT@). An agent in a loop, or with prompts that grew unnoticed, costs
a multiple of its peers: this fix reads its cost ratio over the last hour
and puts it on the gap's card for the person who owns the agent.

## Steps

```workflow
let ratios = []
for sample in kpi.series(name: "agent.cost_ratio", window_seconds: 3600) {
  if (sample.labels.agent ?? "") == input.agent {
    ratios = ratios + [sample.value]
  }
}
if len(ratios) == 0 {
  fail("no-data", "no cost ratio of agent {input.agent} was recorded in the last hour")
}
let ratio = ratios[-1]
if ratio <= input.factor {
  return { runaway: false, ratio: round(ratio * 100) / 100 }
}
board.add_comment(card_id: input.card, text: "Agent {input.agent} costs {round(ratio * 100) / 100} times the fleet's average per session (the limit is {input.factor}), highest in the last hour: {round(max(ratios) * 100) / 100}.")
log.warn("agent {input.agent} costs {round(ratio * 100) / 100} times the average")
return { runaway: true, ratio: round(ratio * 100) / 100 }
```

## Tests

### three times the average: the card says so

```toml
input = { factor = 2.0 }

[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 3.0, labels = { agent = @AGENT@ } }]

[expect]
output = { runaway = true, ratio = 3.0 }
writes = ["board.add_comment"]
```

### back under the limit: nothing written

```toml
input = { factor = 2.0 }

[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 1.2, labels = { agent = @AGENT@ } }]

[expect]
output = { runaway = false, ratio = 1.2 }
writes = []
```

### another agent's cost is not this one's

```toml
[fixtures]
"kpi.series" = [{ at = 1_764_000_000_000, value = 9.0, labels = { agent = "factory-other" } }]

[expect]
error = "no-data"
```
"#;
