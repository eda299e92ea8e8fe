//! The interpreter as a component: the `skill` world's `run`, the program
//! the compiler placed in this module's data, and the glue between JSON
//! values and the typed WIT imports.
//!
//! JSON shapes follow the WIT types: records are objects with their field
//! names in snake_case, options are the value or `null`, enums are their
//! case names, and `memory`'s `metadata` (a list of string pairs) is an
//! object of strings. The compiler checks the same shapes from the WIT, and
//! the host's tests check that every WIT function has glue here.

use crate::exec::{self, CallFailure, Capabilities};
use crate::program::{Level, Program};
use serde_json::{json, Map, Value};

wit_bindgen::generate!({
    path: "../../wit",
    world: "workflow",
});

use darkfactory::skill::{board, fleet, kpi, log, memory, skills};

/// Where the program is: `(address << 32) | length`. The compiler replaces
/// this function's body with the constant for the data it adds; the bare
/// interpreter has no program and answers 0.
#[no_mangle]
#[inline(never)]
pub extern "C" fn darkfactory_workflow_program() -> u64 {
    0
}

fn program() -> Result<Program, SkillError> {
    // Called through a pointer the optimiser cannot see through, so the
    // body the compiler writes is the one that runs.
    let locate: extern "C" fn() -> u64 = core::hint::black_box(darkfactory_workflow_program);
    let packed = locate();
    let (address, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if len == 0 {
        return Err(SkillError {
            code: "workflow-error".to_string(),
            message: "this is the workflow interpreter without a workflow; compile a workflow.md"
                .to_string(),
        });
    }
    // SAFETY: the compiler placed `len` bytes of program at `address`, in
    // pages above the module's initial data that the allocator never hands
    // out (it grows memory for its own pages).
    let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, len) };
    serde_json::from_slice(bytes).map_err(|e| SkillError {
        code: "workflow-error".to_string(),
        message: format!("the embedded program is unreadable ({e}); recompile the workflow"),
    })
}

struct Vm;

impl Guest for Vm {
    fn run(input: String) -> Result<String, SkillError> {
        let program = program()?;
        let input: Value = serde_json::from_str(&input).map_err(|e| SkillError {
            code: "invalid-input".to_string(),
            message: format!("the input is not JSON: {e}"),
        })?;
        match exec::run(&program, input, &mut Imports) {
            Ok(output) => Ok(output.to_string()),
            Err(failure) => Err(SkillError {
                code: failure.code,
                message: failure.message,
            }),
        }
    }
}

export!(Vm);

struct Imports;

impl Capabilities for Imports {
    fn call(
        &mut self,
        interface: &str,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, CallFailure> {
        let mut args = Args {
            function,
            items: args.into_iter(),
        };
        match interface {
            "board" => board_call(function, &mut args),
            "fleet" => fleet_call(function, &mut args),
            "memory" => memory_call(function, &mut args),
            "kpi" => kpi_call(function, &mut args),
            "skills" => skills_call(function, &mut args),
            _ => Err(invalid(format!(
                "the interpreter has no interface `{interface}`"
            ))),
        }
    }

    fn log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::log(level, message);
    }
}

fn invalid(message: String) -> CallFailure {
    CallFailure {
        kind: "invalid".to_string(),
        message,
    }
}

fn unknown(function: &str) -> CallFailure {
    invalid(format!("the interpreter has no function `{function}`"))
}

/// The arguments of one call, taken in WIT order.
struct Args<'a> {
    function: &'a str,
    items: std::vec::IntoIter<Value>,
}

impl Args<'_> {
    fn next(&mut self, what: &str) -> Result<Value, CallFailure> {
        self.items
            .next()
            .ok_or_else(|| invalid(format!("`{}` is missing its `{what}`", self.function)))
    }

    fn string(&mut self, what: &str) -> Result<String, CallFailure> {
        let v = self.next(what)?;
        as_string(&v, what)
    }

    fn strings(&mut self, what: &str) -> Result<Vec<String>, CallFailure> {
        let v = self.next(what)?;
        as_strings(&v, what)
    }
}

fn as_string(v: &Value, what: &str) -> Result<String, CallFailure> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| invalid(format!("`{what}` must be a string, not {}", exec::kind(v))))
}

fn as_opt_string(v: Option<&Value>, what: &str) -> Result<Option<String>, CallFailure> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => as_string(v, what).map(Some),
    }
}

fn as_strings(v: &Value, what: &str) -> Result<Vec<String>, CallFailure> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|i| as_string(i, what)).collect(),
        other => Err(invalid(format!(
            "`{what}` must be a list of strings, not {}",
            exec::kind(other)
        ))),
    }
}

fn as_u64(v: &Value, what: &str) -> Result<u64, CallFailure> {
    v.as_u64()
        .ok_or_else(|| invalid(format!("`{what}` must be a non-negative integer, not {v}")))
}

fn as_f64(v: &Value, what: &str) -> Result<f64, CallFailure> {
    v.as_f64()
        .ok_or_else(|| invalid(format!("`{what}` must be a number, not {}", exec::kind(v))))
}

fn object<'v>(v: &'v Value, what: &str) -> Result<&'v Map<String, Value>, CallFailure> {
    v.as_object()
        .ok_or_else(|| invalid(format!("`{what}` must be an object, not {}", exec::kind(v))))
}

fn pairs(v: &Value, what: &str) -> Result<Vec<(String, String)>, CallFailure> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), as_string(v, what)?)))
            .collect(),
        other => Err(invalid(format!(
            "`{what}` must be an object of strings, not {}",
            exec::kind(other)
        ))),
    }
}

fn pairs_json(pairs: Vec<(String, String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn failure(kind: &str, message: String) -> CallFailure {
    CallFailure {
        kind: kind.to_string(),
        message,
    }
}

fn board_error(e: board::BoardError) -> CallFailure {
    match e {
        board::BoardError::Denied(m) => failure("denied", m),
        board::BoardError::Invalid(m) => failure("invalid", m),
        board::BoardError::NotFound(m) => failure("not-found", m),
        board::BoardError::Unavailable(m) => failure("unavailable", m),
    }
}

fn card_json(c: board::Card) -> Value {
    json!({
        "id": c.id,
        "list": c.list,
        "title": c.title,
        "description": c.description,
        "labels": c.labels,
        "created_at": c.created_at,
        "list_entered_at": c.list_entered_at,
        "comments": c.comments,
    })
}

fn board_call(function: &str, args: &mut Args) -> Result<Value, CallFailure> {
    Ok(match function {
        "lists" => Value::Array(
            board::lists()
                .map_err(board_error)?
                .into_iter()
                .map(|l| json!({"id": l.id, "name": l.name, "position": l.position}))
                .collect(),
        ),
        "cards" => {
            let filter = args.next("filter")?;
            let filter = object(&filter, "filter")?;
            let filter = board::CardFilter {
                list: as_opt_string(filter.get("list"), "filter.list")?,
                label: as_opt_string(filter.get("label"), "filter.label")?,
                in_list_longer_than: match filter.get("in_list_longer_than") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(as_u64(v, "filter.in_list_longer_than")?),
                },
            };
            Value::Array(
                board::cards(&filter)
                    .map_err(board_error)?
                    .into_iter()
                    .map(card_json)
                    .collect(),
            )
        }
        "get-card" => card_json(board::get_card(&args.string("id")?).map_err(board_error)?),
        "create-card" => {
            let card = args.next("card")?;
            let card = object(&card, "card")?;
            let field = |name: &str| card.get(name).cloned().unwrap_or(Value::Null);
            let new = board::NewCard {
                list: as_string(&field("list"), "card.list")?,
                title: as_string(&field("title"), "card.title")?,
                description: as_opt_string(card.get("description"), "card.description")?
                    .unwrap_or_default(),
                labels: as_strings(&field("labels"), "card.labels")?,
            };
            card_json(board::create_card(&new).map_err(board_error)?)
        }
        "move-card" => {
            let id = args.string("id")?;
            let to = args.string("to_list")?;
            card_json(board::move_card(&id, &to).map_err(board_error)?)
        }
        "add-comment" => {
            let card = args.string("card_id")?;
            let text = args.string("text")?;
            let c = board::add_comment(&card, &text).map_err(board_error)?;
            json!({"id": c.id, "card_id": c.card_id, "text": c.text, "created_at": c.created_at})
        }
        other => return Err(unknown(other)),
    })
}

fn fleet_error(e: fleet::FleetError) -> CallFailure {
    match e {
        fleet::FleetError::Denied(m) => failure("denied", m),
        fleet::FleetError::Invalid(m) => failure("invalid", m),
        fleet::FleetError::NotFound(m) => failure("not-found", m),
        fleet::FleetError::Unavailable(m) => failure("unavailable", m),
    }
}

fn status(s: fleet::AgentStatus) -> &'static str {
    match s {
        fleet::AgentStatus::Up => "up",
        fleet::AgentStatus::Stale => "stale",
        fleet::AgentStatus::Down => "down",
    }
}

fn agent_json(a: fleet::Agent) -> Value {
    json!({
        "name": a.name,
        "status": status(a.status),
        "skills": a.skills,
        "specialties": a.specialties,
        "current_task": a.current_task,
        "load": a.load,
        "interval_seconds": a.interval_seconds,
        "last_seen": a.last_seen,
    })
}

fn fleet_call(function: &str, args: &mut Args) -> Result<Value, CallFailure> {
    Ok(match function {
        "agents" => Value::Array(
            fleet::agents()
                .map_err(fleet_error)?
                .into_iter()
                .map(agent_json)
                .collect(),
        ),
        "get-agent" => agent_json(fleet::get_agent(&args.string("name")?).map_err(fleet_error)?),
        "route" => {
            let task = args.string("task")?;
            let required = args.strings("required_skills")?;
            let d = fleet::route(&task, &required).map_err(fleet_error)?;
            let candidates: Vec<Value> = d
                .candidates
                .into_iter()
                .map(|c| {
                    json!({
                        "agent": c.agent,
                        "status": status(c.status),
                        "eligible": c.eligible,
                        "score": c.score,
                        "skill_match": c.skill_match,
                        "load": c.load,
                        "reason": c.reason,
                    })
                })
                .collect();
            json!({"agent": d.agent, "score": d.score, "reasons": d.reasons, "candidates": candidates})
        }
        "send-heartbeat" => {
            let beat = args.next("beat")?;
            let beat = object(&beat, "beat")?;
            let field = |name: &str| beat.get(name).cloned().unwrap_or(Value::Null);
            let beat = fleet::Heartbeat {
                skills: as_strings(&field("skills"), "beat.skills")?,
                specialties: as_strings(&field("specialties"), "beat.specialties")?,
                current_task: as_opt_string(beat.get("current_task"), "beat.current_task")?,
                load: as_f64(&field("load"), "beat.load")?,
            };
            fleet::send_heartbeat(&beat).map_err(fleet_error)?;
            Value::Null
        }
        other => return Err(unknown(other)),
    })
}

fn memory_error(e: memory::MemoryError) -> CallFailure {
    match e {
        memory::MemoryError::Denied(m) => failure("denied", m),
        memory::MemoryError::Invalid(m) => failure("invalid", m),
        memory::MemoryError::Unavailable(m) => failure("unavailable", m),
    }
}

fn memory_call(function: &str, args: &mut Args) -> Result<Value, CallFailure> {
    Ok(match function {
        "store" => {
            let text = args.string("text")?;
            let namespace = args.string("namespace")?;
            let metadata = pairs(&args.next("metadata")?, "metadata")?;
            Value::String(memory::store(&text, &namespace, &metadata).map_err(memory_error)?)
        }
        "search" => {
            let query = args.string("query")?;
            let scope = args.string("scope")?;
            let limit = as_u64(&args.next("limit")?, "limit")?;
            let limit = u32::try_from(limit)
                .map_err(|_| invalid(format!("`limit` {limit} is too large")))?;
            let filter = pairs(&args.next("filter")?, "filter")?;
            let hits = memory::search(&query, &scope, limit, &filter).map_err(memory_error)?;
            Value::Array(
                hits.into_iter()
                    .map(|h| {
                        json!({
                            "id": h.id,
                            "text": h.text,
                            "namespace": h.namespace,
                            "score": h.score,
                            "bm25": h.bm25,
                            "dense": h.dense,
                            "metadata": pairs_json(h.metadata),
                            "created_at": h.created_at,
                        })
                    })
                    .collect(),
            )
        }
        "forget" => Value::Bool(memory::forget(&args.string("id")?).map_err(memory_error)?),
        other => return Err(unknown(other)),
    })
}

fn kpi_error(e: kpi::KpiError) -> CallFailure {
    match e {
        kpi::KpiError::Denied(m) => failure("denied", m),
        kpi::KpiError::Invalid(m) => failure("invalid", m),
        kpi::KpiError::NotFound(m) => failure("not-found", m),
        kpi::KpiError::Unavailable(m) => failure("unavailable", m),
    }
}

fn kpi_call(function: &str, args: &mut Args) -> Result<Value, CallFailure> {
    Ok(match function {
        "series" => {
            let name = args.string("name")?;
            let window = as_u64(&args.next("window_seconds")?, "window_seconds")?;
            Value::Array(
                kpi::series(&name, window)
                    .map_err(kpi_error)?
                    .into_iter()
                    .map(|s| json!({"at": s.at, "value": s.value, "labels": pairs_json(s.labels)}))
                    .collect(),
            )
        }
        other => return Err(unknown(other)),
    })
}

/// `skills.invoke`: the input is any value, sent as JSON text; the output
/// comes back as a value.
fn skills_call(function: &str, args: &mut Args) -> Result<Value, CallFailure> {
    Ok(match function {
        "invoke" => {
            let name = args.string("name")?;
            let input = args.next("input")?.to_string();
            let output = skills::invoke(&name, &input).map_err(|e| match e {
                skills::CallError::Denied(m) => failure("denied", m),
                skills::CallError::NotFound(m) => failure("not-found", m),
                skills::CallError::Invalid(m) => failure("invalid", m),
                skills::CallError::Failed(e) => {
                    failure("failed", format!("{}: {}", e.code, e.message))
                }
                skills::CallError::Unavailable(m) => failure("unavailable", m),
            })?;
            serde_json::from_str(&output).map_err(|e| {
                invalid(format!("`{name}` answered something that is not JSON: {e}"))
            })?
        }
        other => return Err(unknown(other)),
    })
}
