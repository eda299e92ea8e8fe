//! A shadow run: a compiled workflow run once against the live host, its
//! reads answered by the real capabilities and its writes recorded, never
//! applied. The factory's verification runs every fix this way before a
//! person is asked about it: a fix whose examples pass on fixtures but
//! that fails on what the fleet really looks like never reaches approval.
//!
//! The run's linker is the host's own, with every write function (a card
//! created or moved, a comment, a memory stored or forgotten, a heartbeat)
//! and `skills.invoke` (another skill may write) shadowed by one that
//! records the call in the run's [`ShadowLog`] and answers the zero value
//! of its result, as a fixture without an answer does. Log lines are
//! recorded too.

use super::check::grant_needed;
use super::fixtures::{val_to_json, zero};
use super::wit::{snake, Interfaces};
use super::Compiled;
use crate::capabilities::{Capabilities, ShadowLog, SkillContext};
use crate::runtime::{CallContext, Runtime, RuntimeConfig, RuntimeError, SkillState};
use crate::skill::Manifest;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use wasmtime::component::types::Type;
use wasmtime::component::{Component, Linker, Val};

/// What a shadow run did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShadowOutcome {
    /// Its output, when it answered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// Its error (`CODE: message`, or the trap), when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The writes it would have made, in order: `{call, args}`.
    pub writes: Vec<Value>,
    /// What it logged.
    pub logs: Vec<String>,
}

/// The sandbox the verification gate runs a fix in: one engine, with two
/// linkers on it, the examples' fixtures and the host's shadowed
/// capabilities, so a fix is compiled once for both.
pub struct ShadowRunner {
    runtime: Runtime,
    fixtures: Runtime,
    capabilities: Capabilities,
}

impl ShadowRunner {
    /// A runner over the host's services.
    pub fn new(capabilities: Capabilities) -> Result<Self, RuntimeError> {
        let runtime = Runtime::new(RuntimeConfig::default(), &link_shadowed)?;
        let fixtures = runtime.sibling(&super::fixtures::link)?;
        Ok(ShadowRunner {
            runtime,
            fixtures,
            capabilities,
        })
    }

    /// Compiles `compiled`'s component for this sandbox, on the blocking
    /// pool (compiling is CPU-heavy).
    pub async fn compile(&self, compiled: &Compiled) -> Result<Component, String> {
        self.runtime
            .compile_off_thread(compiled.component.clone())
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs `compiled`'s examples on their fixtures.
    pub async fn examples(
        &self,
        compiled: &Compiled,
        component: &Component,
    ) -> Result<Vec<super::fixtures::Outcome>, super::fixtures::FixtureError> {
        super::fixtures::run_on(&self.fixtures, component, compiled).await
    }

    /// Runs `compiled` (compiled to `component`) once with `input`, against
    /// the live host.
    pub async fn run(
        &self,
        compiled: &Compiled,
        component: &Component,
        input: &Value,
    ) -> Result<ShadowOutcome, String> {
        let resolved = Manifest::merge(Some(&compiled.manifest), None)
            .and_then(|m| m.resolve(&compiled.name, self.runtime.config()))?;
        let pre = self.runtime.prepare(component).map_err(|e| e.to_string())?;
        let log = Arc::new(ShadowLog::default());
        let context = SkillContext {
            skill: compiled.name.clone(),
            capabilities: self.capabilities.clone(),
            memory: resolved.memory.clone(),
            board: resolved.board.clone(),
            fleet: resolved.fleet.clone(),
            skills: resolved.skills.clone(),
            kpi: resolved.kpi.clone(),
            http: None,
            llm: None,
            shadow: Some(log.clone()),
        };
        let context: CallContext = Arc::new(context);
        let tag: Arc<str> = Arc::from(compiled.name.as_str());
        let result = self
            .runtime
            .invoke(
                &pre,
                &tag,
                &resolved.limits,
                Some(&context),
                &input.to_string(),
            )
            .await;
        let (output, error) = super::fixtures::answer_of(result);
        let writes = std::mem::take(&mut *lock(&log.writes))
            .into_iter()
            .map(|(call, args)| serde_json::json!({ "call": call, "args": args }))
            .collect();
        let logs = std::mem::take(&mut *lock(&log.logs));
        Ok(ShadowOutcome {
            output,
            error,
            writes,
            logs,
        })
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host's capabilities, with every write, `skills.invoke` and `log`
/// shadowed by a recorder.
fn link_shadowed(linker: &mut Linker<SkillState>) -> Result<(), RuntimeError> {
    crate::capabilities::add_to_linker(linker)?;
    linker.allow_shadowing(true);
    let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
    for (iface, functions) in &Interfaces::get().0 {
        let recorded: Vec<_> = functions
            .values()
            .filter(|sig| {
                iface == "log"
                    || (iface == "skills" && sig.wit_name == "invoke")
                    || grant_needed(iface, &sig.wit_name).is_some_and(|(_, level)| level == "write")
            })
            .collect();
        if recorded.is_empty() {
            continue;
        }
        let mut instance = linker
            .instance(&format!(
                "{}/{iface}@{}",
                super::emit::PACKAGE,
                super::wit::VERSION
            ))
            .map_err(link)?;
        for sig in recorded {
            let call = format!("{iface}.{}", snake(&sig.wit_name));
            let is_log = iface == "log";
            instance
                .func_new(&sig.wit_name, move |store, ty, params, results| {
                    let Some(ctx) = store.data().context::<SkillContext>() else {
                        return Err(wasmtime::format_err!("no shadow run"));
                    };
                    let Some(log) = ctx.shadow.as_ref() else {
                        return Err(wasmtime::format_err!(
                            "a shadowed call outside a shadow run"
                        ));
                    };
                    let mut args = Map::new();
                    for ((name, pty), val) in ty.params().zip(params) {
                        args.insert(snake(name), val_to_json(val, &pty));
                    }
                    if is_log {
                        let message = args
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        lock(&log.logs).push(message.to_string());
                        return Ok(());
                    }
                    lock(&log.writes).push((call.clone(), Value::Object(args)));
                    if let Some(result_ty) = ty.results().next() {
                        let Type::Result(result) = &result_ty else {
                            return Err(wasmtime::format_err!("{call} does not return a result"));
                        };
                        let ok = result.ok().map(|t| {
                            Box::new(match (&t, call.as_str()) {
                                // Another skill's output is JSON text.
                                (Type::String, "skills.invoke") => Val::String("null".into()),
                                _ => zero(&t),
                            })
                        });
                        results[0] = Val::Result(Ok(ok));
                    }
                    Ok(())
                })
                .map_err(link)?;
        }
    }
    Ok(())
}
