//! The host side of the `skills` interface.

use super::{depth, nested, SkillCallError, MAX_DEPTH};
use crate::capabilities::SkillContext;
use crate::runtime::bindings::darkfactory::skill::{skills as wit, types};
use crate::runtime::SkillState;

impl wit::Host for SkillState {
    async fn invoke(
        &mut self,
        name: String,
        input: String,
    ) -> wasmtime::Result<Result<String, wit::CallError>> {
        let Some(context) = self.context::<SkillContext>() else {
            return Ok(Err(wit::CallError::Denied(
                "this skill has no grants".into(),
            )));
        };
        let Some(grant) = &context.skills else {
            return Ok(Err(wit::CallError::Denied(format!(
                "`{}` may call no skill: its manifest has no `skills` grant",
                context.skill
            ))));
        };
        if !grant.allows(&name) {
            return Ok(Err(wit::CallError::Denied(format!(
                "`{}` may not call `{name}`: its `skills` grant does not name it",
                context.skill
            ))));
        }
        if depth() >= MAX_DEPTH {
            return Ok(Err(wit::CallError::Denied(format!(
                "calls from skill to skill nest {MAX_DEPTH} deep at most; `{}` calling `{name}` would be deeper",
                context.skill
            ))));
        }
        let Some(invoker) = context.capabilities.skills.get() else {
            return Ok(Err(wit::CallError::Unavailable(
                "this host cannot call skills".into(),
            )));
        };
        let result = nested(async move { invoker.invoke_skill(&name, &input).await }).await;
        Ok(result.map_err(|e| match e {
            SkillCallError::Denied(m) => wit::CallError::Denied(m),
            SkillCallError::NotFound(m) => wit::CallError::NotFound(m),
            SkillCallError::Invalid(m) => wit::CallError::Invalid(m),
            SkillCallError::Failed { code, message } => {
                wit::CallError::Failed(types::SkillError { code, message })
            }
            SkillCallError::Unavailable(m) => wit::CallError::Unavailable(m),
        }))
    }
}
