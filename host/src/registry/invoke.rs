//! Calling a skill: from the HTTP API, and from another skill through the
//! `skills` capability (the same path, so the same limits and grants).

use super::*;

impl Registry {
    /// Calls skill `name` with JSON text `input`.
    pub async fn invoke(&self, name: &str, input: &str) -> Result<String, RegistryError> {
        let slot = self
            .get(name)
            .ok_or_else(|| RegistryError::NotFound(name.to_string()))?;
        let Some(version) = slot.active() else {
            let reason = match lock(&slot.failure).error.clone() {
                Some(error) => error,
                None => "it is still loading".into(),
            };
            return Err(RegistryError::Unavailable {
                name: name.to_string(),
                reason,
            });
        };
        if let Some(schema) = &version.resolved.schema {
            let value: serde_json::Value = serde_json::from_str(input)
                .map_err(|e| RegistryError::InvalidInput(e.to_string()))?;
            let problems: Vec<String> = schema
                .iter_errors(&value)
                .take(5)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    let e = cut_owned(e.to_string(), 512);
                    if at.is_empty() {
                        e
                    } else {
                        format!("at `{}`: {e}", cut(&at, 256))
                    }
                })
                .collect();
            if !problems.is_empty() {
                return Err(RegistryError::InvalidInput(problems.join("; ")));
            }
        }
        // The skill's share of the pool: wait a moment for a place, then
        // answer busy rather than queue without bound.
        let Some(_call) = slot.calls.enter(QUEUE_WAIT).await else {
            return Err(RegistryError::Invoke(InvokeError::Busy(format!(
                "skill `{name}` is running its limit of {} calls at once (its \
                 `concurrency`, within its share of the instance pool); try again shortly",
                version.concurrency
            ))));
        };
        let started = Instant::now();
        let result = self
            .runtime
            .invoke(
                &version.pre,
                &slot.tag,
                &version.resolved.limits,
                Some(&version.context),
                input,
            )
            .await;
        let result = match result {
            Ok(output) => match serde_json::from_str::<serde::de::IgnoredAny>(&output) {
                Ok(_) => Ok(output),
                Err(e) => Err(RegistryError::InvalidOutput(e.to_string())),
            },
            Err(e) => Err(RegistryError::Invoke(e)),
        };
        let elapsed = started.elapsed();
        slot.stats
            .record(elapsed, result.as_ref().map(|_| ()).map_err(outcome_code));
        match &result {
            Ok(_) => {
                tracing::debug!(skill = %name, elapsed_us = elapsed.as_micros() as u64, "invoked")
            }
            Err(e) => {
                tracing::info!(skill = %name, elapsed_us = elapsed.as_micros() as u64, error = %e, "invocation failed")
            }
        }
        result
    }
}

/// The code a failed call counts under in the metrics: the skill's own
/// code, or what stopped it.
fn outcome_code(e: &RegistryError) -> &str {
    match e {
        RegistryError::Invoke(InvokeError::Skill { code, .. }) => code,
        RegistryError::Invoke(InvokeError::Trap { .. }) => "trap",
        RegistryError::Invoke(InvokeError::DeadlineExceeded(_)) => "deadline_exceeded",
        RegistryError::Invoke(InvokeError::MemoryLimit { .. }) => "memory_limit",
        RegistryError::Invoke(InvokeError::Busy(_)) => "busy",
        RegistryError::Invoke(InvokeError::OutputTooLarge { .. }) => "output_too_large",
        RegistryError::InvalidOutput(_) => "invalid_output",
        _ => "failed",
    }
}

/// A skill calling a skill: the same path as an HTTP invoke.
#[async_trait::async_trait]
impl SkillInvoker for Registry {
    async fn invoke_skill(&self, name: &str, input: &str) -> Result<String, SkillCallError> {
        self.invoke(name, input).await.map_err(|e| match e {
            RegistryError::NotFound(_)
            | RegistryError::InvalidName(_)
            | RegistryError::Unavailable { .. } => SkillCallError::NotFound(e.to_string()),
            RegistryError::InvalidInput(_) => SkillCallError::Invalid(e.to_string()),
            RegistryError::Invoke(InvokeError::Skill { code, message }) => {
                SkillCallError::Failed { code, message }
            }
            other => SkillCallError::Unavailable(other.to_string()),
        })
    }
}
