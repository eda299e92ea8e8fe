//! The `## Tests` section: examples a workflow carries, run against
//! recorded fixtures instead of the fleet's real services.
//!
//! Each example gives an input, what each capability function answers
//! (`fixtures`), which calls fail (`failures`), and what to expect: the
//! output or the error code, the writes in order, the log lines. The
//! examples run the *compiled component* in the same sandbox as in the host;
//! only its imports are different: every WIT function is answered from the
//! fixtures, and every call that would change something (a card created, a
//! heartbeat sent) is recorded and never applied.
//!
//! Values cross the sandbox as JSON shaped like the WIT types, the same
//! convention the interpreter uses (snake_case field names; a list of string
//! pairs is an object); a fixture may leave out fields, which then take
//! their type's zero value.

use super::check::grant_needed;
use super::diag::{did_you_mean, Diagnostic, Diagnostics};
use super::front::toml_to_json;
use super::markdown::TestBlock;
use super::wit::{snake, Interfaces};
use super::Compiled;
use crate::runtime::{CallContext, Runtime, RuntimeConfig, RuntimeError, SkillState};
use crate::skill::Manifest;
use darkfactory_workflow_vm::exec::equal;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use toml::de::{DeTable, DeValue};
use wasmtime::component::types::Type;
use wasmtime::component::{Linker, Val};

/// The cases of the capabilities' error variants (each has some of them;
/// `failed` is another skill's own error, written "failed: CODE: message").
const FAILURE_KINDS: [&str; 5] = ["denied", "invalid", "not-found", "unavailable", "failed"];

/// One example of the Tests section, read.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub name: String,
    /// Line of its `### name` heading.
    pub line: u32,
    pub input: Value,
    /// Answers by call name (`board.cards`).
    pub fixtures: BTreeMap<String, Value>,
    /// Failing calls: `(error case, message)`.
    pub failures: BTreeMap<String, (String, String)>,
    pub expect: Expect,
}

/// What an example expects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Expect {
    pub output: Option<Value>,
    /// The skill error code.
    pub error: Option<String>,
    /// The writes in order: the call, and arguments that must match.
    pub writes: Option<Vec<(String, Option<Value>)>>,
    /// Log lines, in order.
    pub logs: Option<Vec<String>>,
}

/// Reads every example; problems go to `diags` with their line and column.
pub fn parse(tests: &[TestBlock], diags: &mut Diagnostics) -> Vec<TestCase> {
    let mut out = Vec::new();
    for test in tests {
        let Some(block) = &test.body else { continue };
        let (table, errors) = DeTable::parse_recoverable(&block.text);
        for e in &errors {
            diags.push(Diagnostic::error(
                block.span_of(e.span().unwrap_or(0..0)),
                format!("test `{}`: {}", test.name, e.message().trim()),
            ));
        }
        if !errors.is_empty() {
            continue;
        }
        let mut case = TestCase {
            name: test.name.clone(),
            line: test.heading.start.line,
            input: Value::Object(Map::new()),
            fixtures: BTreeMap::new(),
            failures: BTreeMap::new(),
            expect: Expect::default(),
        };
        let mut error = |span: std::ops::Range<usize>, message: String, hint: Option<String>| {
            let mut d = Diagnostic::error(
                block.span_of(span),
                format!("test `{}`: {message}", test.name),
            );
            if let Some(h) = hint {
                d = d.hint(h);
            }
            diags.push(d);
        };
        for (key, value) in table.get_ref().iter() {
            match &**key.get_ref() {
                "input" => match toml_to_json(value.get_ref()) {
                    Ok(v) => case.input = v,
                    Err(e) => error(value.span(), e, None),
                },
                "fixtures" | "failures" => {
                    let DeValue::Table(calls) = value.get_ref() else {
                        error(
                            value.span(),
                            format!("`{}` must be a table of calls", &**key.get_ref()),
                            Some("`[fixtures]` then `\"board.cards\" = [...]`".into()),
                        );
                        continue;
                    };
                    for (call, answer) in calls.iter() {
                        let call_name = call.get_ref().to_string();
                        if let Err((message, hint)) = known_call(&call_name) {
                            error(call.span(), message, hint);
                            continue;
                        }
                        if &**key.get_ref() == "fixtures" {
                            match toml_to_json(answer.get_ref()) {
                                Ok(v) => {
                                    case.fixtures.insert(call_name, v);
                                }
                                Err(e) => error(answer.span(), e, None),
                            }
                        } else {
                            let text = answer.get_ref().as_str().unwrap_or_default();
                            let (kind, message) = text.split_once(':').unwrap_or((text, ""));
                            if !FAILURE_KINDS.contains(&kind.trim()) {
                                error(answer.span(), format!("a failure is written \"KIND: message\" with KIND one of {}", FAILURE_KINDS.join(", ")), Some("for example \"unavailable: Planka is down\"".into()));
                                continue;
                            }
                            case.failures.insert(
                                call_name,
                                (kind.trim().to_string(), message.trim().to_string()),
                            );
                        }
                    }
                }
                "expect" => {
                    let DeValue::Table(expect) = value.get_ref() else {
                        error(value.span(), "`expect` must be a table".into(), None);
                        continue;
                    };
                    for (k, v) in expect.iter() {
                        let json = match toml_to_json(v.get_ref()) {
                            Ok(j) => j,
                            Err(e) => {
                                error(v.span(), e, None);
                                continue;
                            }
                        };
                        match &**k.get_ref() {
                            "output" => case.expect.output = Some(json),
                            "error" => match json {
                                Value::String(code) => case.expect.error = Some(code),
                                _ => error(v.span(), "`expect.error` is the skill error code, a string".into(), None),
                            },
                            "writes" => match parse_writes(&json) {
                                Ok(w) => case.expect.writes = Some(w),
                                Err(m) => error(v.span(), m, Some("`writes = [\"board.add_comment\", { call = \"board.move_card\", args = { to_list = \"Review\" } }]`".into())),
                            },
                            "logs" => match json {
                                Value::Array(lines) if lines.iter().all(Value::is_string) => {
                                    case.expect.logs = Some(lines.iter().filter_map(|l| l.as_str().map(str::to_string)).collect())
                                }
                                _ => error(v.span(), "`expect.logs` is a list of log lines".into(), None),
                            },
                            other => {
                                let known = ["output", "error", "writes", "logs"];
                                error(k.span(), format!("unknown expectation `{other}`"), did_you_mean(other, known).map(|m| format!("did you mean `{m}`?")));
                            }
                        }
                    }
                }
                other => {
                    let known = ["input", "fixtures", "failures", "expect"];
                    error(
                        key.span(),
                        format!("unknown key `{other}`"),
                        did_you_mean(other, known)
                            .map(|m| format!("did you mean `{m}`?"))
                            .or(Some(format!("an example has {}", known.join(", ")))),
                    );
                }
            }
        }
        if case.expect.output.is_none() && case.expect.error.is_none() {
            diags.push(
                Diagnostic::error(
                    test.heading,
                    format!("test `{}` expects nothing", test.name),
                )
                .expected("`[expect]` with `output = ...` or `error = \"code\"`"),
            );
        }
        out.push(case);
    }
    out
}

/// Whether `call` (`interface.function`) is a function of the WIT.
fn known_call(call: &str) -> Result<(), (String, Option<String>)> {
    let interfaces = &Interfaces::get().0;
    let Some((iface, function)) = call.split_once('.') else {
        return Err((
            format!("`{call}` is not a call"),
            Some("write it as \"interface.function\", e.g. \"board.cards\"".into()),
        ));
    };
    let Some(functions) = interfaces.get(iface) else {
        return Err((
            format!("unknown capability `{iface}`"),
            did_you_mean(iface, interfaces.keys().map(String::as_str))
                .map(|m| format!("did you mean `{m}`?")),
        ));
    };
    if !functions.contains_key(function) {
        return Err((
            format!("`{iface}` has no function `{function}`"),
            did_you_mean(function, functions.keys().map(String::as_str))
                .map(|m| format!("did you mean `{iface}.{m}`?")),
        ));
    }
    Ok(())
}

fn parse_writes(json: &Value) -> Result<Vec<(String, Option<Value>)>, String> {
    let Value::Array(items) = json else {
        return Err("`expect.writes` is a list".into());
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(call) => known_call(call)
                .map(|_| (call.clone(), None))
                .map_err(|(m, _)| m),
            Value::Object(map) => {
                let call = map
                    .get("call")
                    .and_then(Value::as_str)
                    .ok_or("a write given as a table needs `call`")?;
                known_call(call).map_err(|(m, _)| m)?;
                if let Some(extra) = map.keys().find(|k| *k != "call" && *k != "args") {
                    return Err(format!("a write has `call` and `args`, not `{extra}`"));
                }
                Ok((call.to_string(), map.get("args").cloned()))
            }
            _ => Err("each write is a call name or `{ call, args }`".into()),
        })
        .collect()
}

/// One capability call a run made.
#[derive(Debug, Clone, Serialize)]
pub struct Call {
    /// `interface.function`.
    pub call: String,
    /// Arguments by parameter name.
    pub args: Map<String, Value>,
    /// Whether it would change something (recorded, never applied).
    pub write: bool,
}

/// What one example did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub line: u32,
    pub passed: bool,
    /// Why it failed, one sentence each.
    pub problems: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub calls: Vec<Call>,
    pub logs: Vec<String>,
}

/// A run's answer: its output as JSON, or its error (`CODE: message` for
/// the skill's own, else the host's words: a trap, the deadline).
pub(super) fn answer_of(
    result: Result<String, crate::runtime::InvokeError>,
) -> (Option<Value>, Option<String>) {
    match result {
        Ok(text) => (serde_json::from_str::<Value>(&text).ok(), None),
        Err(crate::runtime::InvokeError::Skill { code, message }) => {
            (None, Some(format!("{code}: {message}")))
        }
        Err(e) => (None, Some(e.to_string())),
    }
}

/// What a run records, reached from the store's context.
#[derive(Default)]
struct Session {
    fixtures: BTreeMap<String, Value>,
    failures: BTreeMap<String, (String, String)>,
    calls: Mutex<Vec<Call>>,
    logs: Mutex<Vec<String>>,
    missing: Mutex<Vec<String>>,
}

/// A workflow's examples never reach the network: every request is denied.
impl crate::runtime::CallCapabilities for Session {
    fn outgoing_http(
        &self,
        deadline: tokio::time::Instant,
    ) -> Box<dyn wasmtime_wasi_http::WasiHttpHooks> {
        Box::new(crate::capabilities::http::OutgoingHooks::new(
            Arc::from("workflow"),
            None,
            deadline,
        ))
    }
}

/// Why the examples could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("cannot start the sandbox: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("the compiled workflow's manifest: {0}")]
    Manifest(String),
}

/// Runs every example of a compiled workflow, in a sandbox of its own.
pub async fn run(compiled: &Compiled) -> Result<Vec<Outcome>, FixtureError> {
    let runtime = Runtime::new(RuntimeConfig::default(), &link)?;
    let component = runtime.compile(&compiled.component)?;
    run_on(&runtime, &component, compiled).await
}

/// Runs every example of `compiled`, whose component is `component`, on
/// `runtime` (one whose linker is [`link`]'s: the shadow runner's
/// sibling, never a runtime with live capabilities).
pub(super) async fn run_on(
    runtime: &Runtime,
    component: &wasmtime::component::Component,
    compiled: &Compiled,
) -> Result<Vec<Outcome>, FixtureError> {
    let resolved = Manifest::merge(Some(&compiled.manifest), None)
        .and_then(|m| m.resolve(&compiled.name, runtime.config()))
        .map_err(FixtureError::Manifest)?;
    let pre = runtime.prepare(component)?;
    let tag: Arc<str> = Arc::from(compiled.name.as_str());
    let mut outcomes = Vec::new();
    for case in &compiled.checked.tests {
        let session = Arc::new(Session {
            fixtures: case.fixtures.clone(),
            failures: case.failures.clone(),
            ..Session::default()
        });
        let context: CallContext = session.clone();
        let mut problems = Vec::new();
        if let Some(schema) = &resolved.schema {
            for e in schema.iter_errors(&case.input).take(3) {
                problems.push(format!("the input does not match the input schema: {e}"));
            }
        }
        let result = runtime
            .invoke(
                &pre,
                &tag,
                &resolved.limits,
                Some(&context),
                &case.input.to_string(),
            )
            .await;
        let (output, error) = answer_of(result);
        let calls = std::mem::take(&mut *lock(&session.calls));
        let logs = std::mem::take(&mut *lock(&session.logs));
        for missing in lock(&session.missing).iter() {
            problems.push(format!("`{missing}` was called, but the test has no fixture for it (add `\"{missing}\" = ...` under `[fixtures]`)"));
        }
        compare(&case.expect, &output, &error, &calls, &logs, &mut problems);
        outcomes.push(Outcome {
            name: case.name.clone(),
            line: case.line,
            passed: problems.is_empty(),
            problems,
            output,
            error,
            calls,
            logs,
        });
    }
    Ok(outcomes)
}

fn compare(
    expect: &Expect,
    output: &Option<Value>,
    error: &Option<String>,
    calls: &[Call],
    logs: &[String],
    problems: &mut Vec<String>,
) {
    match (&expect.output, &expect.error, output, error) {
        (Some(want), _, Some(got), None) if !output_equal(want, got) => {
            problems.push(format!("the output is {got}, expected {want}"))
        }
        (Some(_), _, _, Some(err)) => {
            problems.push(format!("the run failed ({err}); expected an output"))
        }
        (None, Some(code), Some(got), None) => problems.push(format!(
            "the run answered {got}; expected the error `{code}`"
        )),
        (_, Some(code), _, Some(err)) if err.split(':').next() != Some(code.as_str()) => problems
            .push(format!(
                "the run failed with `{err}`; expected the error `{code}`"
            )),
        _ => {}
    }
    if let Some(want) = &expect.writes {
        let writes: Vec<&Call> = calls.iter().filter(|c| c.write).collect();
        let names: Vec<&str> = writes.iter().map(|c| c.call.as_str()).collect();
        let wanted: Vec<&str> = want.iter().map(|(c, _)| c.as_str()).collect();
        if names != wanted {
            problems.push(format!(
                "the writes were [{}], expected [{}]",
                names.join(", "),
                wanted.join(", ")
            ));
        } else {
            for (i, ((call, args), got)) in want.iter().zip(&writes).enumerate() {
                if let Some(Value::Object(args)) = args {
                    for (k, v) in args {
                        match got.args.get(k) {
                            Some(actual) if equal(v, actual) => {}
                            actual => problems.push(format!(
                                "write {} ({call}): `{k}` is {}, expected {v}",
                                i + 1,
                                actual
                                    .map(Value::to_string)
                                    .unwrap_or_else(|| "missing".into())
                            )),
                        }
                    }
                }
            }
        }
    }
    if let Some(want) = &expect.logs {
        if want != logs {
            problems.push(format!("the log lines were {logs:?}, expected {want:?}"));
        }
    }
}

/// An expected output against the actual one: JSON equality where
/// `1 == 1.0` ([`equal`]), and where a field the expectation leaves out must be `null`
/// (TOML, which the examples are written in, has no null).
pub fn output_equal(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| output_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.iter()
                .all(|(k, v)| y.get(k).is_some_and(|w| output_equal(v, w)))
                && y.iter().all(|(k, w)| x.contains_key(k) || w.is_null())
        }
        _ => equal(want, got),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Defines every function of every interface of the WIT, answering from
/// the session of the store it is called in.
pub fn link(linker: &mut Linker<SkillState>) -> Result<(), RuntimeError> {
    let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
    for (iface, functions) in &Interfaces::get().0 {
        let mut instance = linker
            .instance(&format!(
                "{}/{iface}@{}",
                super::emit::PACKAGE,
                super::wit::VERSION
            ))
            .map_err(link)?;
        for sig in functions.values() {
            let call = if iface == "log" {
                "log".to_string()
            } else {
                format!("{iface}.{}", snake(&sig.wit_name))
            };
            let write =
                grant_needed(iface, &sig.wit_name).is_some_and(|(_, level)| level == "write");
            instance
                .func_new(&sig.wit_name, move |store, ty, params, results| {
                    let Some(session) = store.data().context::<Session>() else {
                        return Err(wasmtime::format_err!("no fixture session"));
                    };
                    answer(&session, &call, write, &ty, params, results)
                        .map_err(|e| wasmtime::format_err!("{e}"))
                })
                .map_err(link)?;
        }
    }
    Ok(())
}

fn answer(
    session: &Session,
    call: &str,
    write: bool,
    ty: &wasmtime::component::types::ComponentFunc,
    params: &[Val],
    results: &mut [Val],
) -> Result<(), String> {
    let mut args = Map::new();
    for ((name, pty), val) in ty.params().zip(params) {
        args.insert(snake(name), val_to_json(val, &pty));
    }
    if call == "log" {
        let message = args
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        lock(&session.logs).push(message.to_string());
        return Ok(());
    }
    // Another skill's input and output are values in a workflow.
    if call == "skills.invoke" {
        if let Some(Value::String(text)) = args.get("input") {
            let parsed = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()));
            args.insert("input".into(), parsed);
        }
    }
    lock(&session.calls).push(Call {
        call: call.to_string(),
        args,
        write,
    });
    let Some(result_ty) = ty.results().next() else {
        return Ok(());
    };
    let Type::Result(result) = &result_ty else {
        return Err(format!("{call} does not return a result"));
    };
    let value = if let Some((kind, message)) = session.failures.get(call) {
        let err_ty = result.err().ok_or_else(|| format!("{call} cannot fail"))?;
        Err(Some(Box::new(error_case(&err_ty, kind, message)?)))
    } else {
        let answer = match (session.fixtures.get(call), write) {
            (Some(v), _) if call == "skills.invoke" => Some(Value::String(v.to_string())),
            (Some(v), _) => Some(v.clone()),
            (None, true) => None,
            (None, false) => {
                lock(&session.missing).push(call.to_string());
                return Err(format!("no fixture for `{call}`"));
            }
        };
        Ok(match result.ok() {
            None => None,
            Some(ok) => Some(Box::new(match answer {
                Some(v) => {
                    json_to_val(&v, &ok).map_err(|e| format!("the fixture of `{call}`: {e}"))?
                }
                None => zero(&ok),
            })),
        })
    };
    results[0] = Val::Result(value);
    Ok(())
}

fn error_case(ty: &Type, kind: &str, message: &str) -> Result<Val, String> {
    let Type::Variant(v) = ty else {
        return Err("the error type is not a variant".into());
    };
    let case = v
        .cases()
        .find(|c| c.name == kind)
        .ok_or_else(|| format!("this call has no error `{kind}`"))?;
    let payload = case.ty.map(|t| match t {
        Type::String => Box::new(Val::String(message.to_string())),
        // A skill error: "CODE: message".
        Type::Record(r) => {
            let (code, text) = message.split_once(':').unwrap_or((message, ""));
            Box::new(Val::Record(
                r.fields()
                    .map(|f| {
                        let value = match f.name {
                            "code" => Val::String(code.trim().to_string()),
                            "message" => Val::String(text.trim().to_string()),
                            _ => zero(&f.ty),
                        };
                        (f.name.to_string(), value)
                    })
                    .collect(),
            ))
        }
        other => Box::new(zero(&other)),
    });
    Ok(Val::Variant(kind.to_string(), payload))
}

/// The value a missing fixture field takes.
pub(super) fn zero(ty: &Type) -> Val {
    match ty {
        Type::Bool => Val::Bool(false),
        Type::S8 => Val::S8(0),
        Type::U8 => Val::U8(0),
        Type::S16 => Val::S16(0),
        Type::U16 => Val::U16(0),
        Type::S32 => Val::S32(0),
        Type::U32 => Val::U32(0),
        Type::S64 => Val::S64(0),
        Type::U64 => Val::U64(0),
        Type::Float32 => Val::Float32(0.0),
        Type::Float64 => Val::Float64(0.0),
        Type::Char => Val::Char(' '),
        Type::String => Val::String(String::new()),
        Type::Record(r) => Val::Record(
            r.fields()
                .map(|f| (f.name.to_string(), zero(&f.ty)))
                .collect(),
        ),
        Type::Tuple(t) => Val::Tuple(t.types().map(|t| zero(&t)).collect()),
        Type::Enum(e) => Val::Enum(e.names().next().unwrap_or_default().to_string()),
        Type::Variant(v) => match v.cases().next() {
            Some(c) => Val::Variant(c.name.to_string(), c.ty.map(|t| Box::new(zero(&t)))),
            None => Val::Option(None),
        },
        Type::Option(_) => Val::Option(None),
        _ => Val::List(Vec::new()),
    }
}

fn is_string_pair(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.types().len() == 2 && t.types().all(|t| t == Type::String))
}

/// A fixture value as the WIT type wants it.
fn json_to_val(v: &Value, ty: &Type) -> Result<Val, String> {
    let int = |lo: i128, hi: i128| -> Result<i128, String> {
        let n = v
            .as_i64()
            .map(i128::from)
            .or(v.as_u64().map(i128::from))
            .ok_or_else(|| format!("{v} is not an integer"))?;
        if n < lo || n > hi {
            return Err(format!("{n} is out of range"));
        }
        Ok(n)
    };
    Ok(match ty {
        Type::Bool => Val::Bool(v.as_bool().ok_or_else(|| format!("{v} is not a bool"))?),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::Float32 => {
            Val::Float32(v.as_f64().ok_or_else(|| format!("{v} is not a number"))? as f32)
        }
        Type::Float64 => Val::Float64(v.as_f64().ok_or_else(|| format!("{v} is not a number"))?),
        Type::Char => Val::Char(
            v.as_str()
                .and_then(|s| s.chars().next())
                .ok_or_else(|| format!("{v} is not a character"))?,
        ),
        Type::String => Val::String(
            v.as_str()
                .ok_or_else(|| format!("{v} is not a string"))?
                .to_string(),
        ),
        Type::List(l) => {
            let item = l.ty();
            match v {
                Value::Object(map) if is_string_pair(&item) => Val::List(
                    map.iter()
                        .map(|(k, v)| {
                            Ok(Val::Tuple(vec![
                                Val::String(k.clone()),
                                Val::String(
                                    v.as_str()
                                        .ok_or_else(|| format!("`{k}`: {v} is not a string"))?
                                        .to_string(),
                                ),
                            ]))
                        })
                        .collect::<Result<_, String>>()?,
                ),
                Value::Array(items) => Val::List(
                    items
                        .iter()
                        .map(|i| json_to_val(i, &item))
                        .collect::<Result<_, _>>()?,
                ),
                other => return Err(format!("{other} is not a list")),
            }
        }
        Type::Record(r) => {
            let Value::Object(map) = v else {
                return Err(format!("{v} is not an object"));
            };
            let fields: Vec<(String, Type)> =
                r.fields().map(|f| (f.name.to_string(), f.ty)).collect();
            if let Some(unknown) = map
                .keys()
                .find(|k| !fields.iter().any(|(n, _)| snake(n) == **k))
            {
                let names: Vec<String> = fields.iter().map(|(n, _)| snake(n)).collect();
                let hint = did_you_mean(unknown, names.iter().map(String::as_str))
                    .map(|m| format!(" (did you mean `{m}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "no field `{unknown}`{hint}; the fields are {}",
                    names.join(", ")
                ));
            }
            Val::Record(
                fields
                    .iter()
                    .map(|(name, t)| {
                        let value = match map.get(&snake(name)) {
                            Some(x) => {
                                json_to_val(x, t).map_err(|e| format!("`{}`: {e}", snake(name)))?
                            }
                            None => zero(t),
                        };
                        Ok((name.clone(), value))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        Type::Tuple(t) => {
            let Value::Array(items) = v else {
                return Err(format!("{v} is not a list"));
            };
            let types: Vec<Type> = t.types().collect();
            if items.len() != types.len() {
                return Err(format!("{v} does not have {} items", types.len()));
            }
            Val::Tuple(
                items
                    .iter()
                    .zip(&types)
                    .map(|(i, t)| json_to_val(i, t))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Enum(e) => {
            let s = v.as_str().ok_or_else(|| format!("{v} is not a string"))?;
            let names: Vec<&str> = e.names().collect();
            if !names.contains(&s) {
                return Err(format!("{s:?} is not one of {}", names.join(", ")));
            }
            Val::Enum(s.to_string())
        }
        Type::Option(o) => match v {
            Value::Null => Val::Option(None),
            x => Val::Option(Some(Box::new(json_to_val(x, &o.ty())?))),
        },
        other => return Err(format!("fixtures cannot give a {other:?}")),
    })
}

/// A call argument as JSON, shaped like the fixtures.
pub(super) fn val_to_json(v: &Val, ty: &Type) -> Value {
    match (v, ty) {
        (Val::Bool(b), _) => Value::Bool(*b),
        (Val::S8(n), _) => Value::from(*n),
        (Val::U8(n), _) => Value::from(*n),
        (Val::S16(n), _) => Value::from(*n),
        (Val::U16(n), _) => Value::from(*n),
        (Val::S32(n), _) => Value::from(*n),
        (Val::U32(n), _) => Value::from(*n),
        (Val::S64(n), _) => Value::from(*n),
        (Val::U64(n), _) => Value::from(*n),
        (Val::Float32(f), _) => serde_json::Number::from_f64(f64::from(*f))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        (Val::Float64(f), _) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        (Val::Char(c), _) => Value::String(c.to_string()),
        (Val::String(s), _) => Value::String(s.clone()),
        (Val::List(items), Type::List(l)) if is_string_pair(&l.ty()) => Value::Object(
            items
                .iter()
                .filter_map(|i| match i {
                    Val::Tuple(pair) => match pair.as_slice() {
                        [Val::String(k), Val::String(v)] => {
                            Some((k.clone(), Value::String(v.clone())))
                        }
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
        ),
        (Val::List(items), Type::List(l)) => {
            Value::Array(items.iter().map(|i| val_to_json(i, &l.ty())).collect())
        }
        (Val::Record(fields), Type::Record(r)) => {
            let types: Vec<Type> = r.fields().map(|f| f.ty).collect();
            Value::Object(
                fields
                    .iter()
                    .zip(types)
                    .map(|((n, v), t)| (snake(n), val_to_json(v, &t)))
                    .collect(),
            )
        }
        (Val::Enum(s), _) => Value::String(s.clone()),
        (Val::Option(None), _) => Value::Null,
        (Val::Option(Some(x)), Type::Option(o)) => val_to_json(x, &o.ty()),
        (Val::Tuple(items), Type::Tuple(t)) => Value::Array(
            items
                .iter()
                .zip(t.types())
                .map(|(i, t)| val_to_json(i, &t))
                .collect(),
        ),
        (other, _) => Value::String(format!("{other:?}")),
    }
}
