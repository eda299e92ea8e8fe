//! The host side of the `llm` interface: a skill's chat goes to the host's
//! client within the skill's `llm_tokens` budget for the call, and what it
//! spent is recorded as KPI samples (`skill.llm_tokens`, and
//! `skill.llm_cost_usd` when the model's price is configured), labelled
//! with the skill and the model.
//!
//! The budget is checked before a request is sent (the prompt's tokens are
//! estimated at four bytes each, and the answer's `max_tokens` is lowered
//! to what is left) and counted after, from the server's own `usage`; a
//! server that reports none is charged the estimate.

use super::{ChatAnswer, ChatRequest, FinishReason, LlmError, Message, Role, Schema};
use crate::capabilities::kpi::{Labels, NewSample};
use crate::capabilities::SkillContext;
use crate::runtime::bindings::darkfactory::skill::llm as wit;
use crate::runtime::SkillState;
use std::sync::Arc;

type Result<T> = wasmtime::Result<std::result::Result<T, wit::LlmError>>;

/// The tokens a text is estimated at before the server counts them: four
/// bytes a token, what OpenAI's tokenisers average on English and code.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// The tokens a request's prompt is estimated at (each message's text and
/// a few tokens of framing).
fn estimate_prompt(request: &wit::Request) -> u64 {
    let schema = request.json_schema.as_deref().map_or(0, estimate_tokens);
    request
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.content) + 4)
        .sum::<u64>()
        + schema
}

impl wit::Host for SkillState {
    async fn chat(&mut self, request: wit::Request) -> Result<wit::Answer> {
        let Some(ctx) = self.context::<SkillContext>() else {
            return Ok(Err(wit::LlmError::Denied(
                "this skill has no grants".into(),
            )));
        };
        let Some(grant) = ctx.llm else {
            return Ok(Err(wit::LlmError::Denied(format!(
                "skill `{}` may not ask the model: its manifest has no `llm_tokens` grant (e.g. \
                 `llm_tokens = 4000`)",
                ctx.skill
            ))));
        };
        let Some(client) = ctx.capabilities.llm.clone() else {
            return Ok(Err(wit::LlmError::Unavailable(
                "this host has no model: it runs without --llm-url".into(),
            )));
        };
        if request.messages.is_empty() {
            return Ok(Err(wit::LlmError::Invalid(
                "a chat needs at least one message".into(),
            )));
        }
        let schema = match request.json_schema.as_deref() {
            None => None,
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(schema) if schema.is_object() => Some(Schema {
                    name: ctx.skill.clone(),
                    schema,
                    strict: false,
                }),
                Ok(_) => {
                    return Ok(Err(wit::LlmError::Invalid(
                        "`json-schema` must be a JSON object".into(),
                    )))
                }
                Err(e) => {
                    return Ok(Err(wit::LlmError::Invalid(format!(
                        "`json-schema` is not JSON: {e}"
                    ))))
                }
            },
        };
        let left = grant.tokens_per_call.saturating_sub(self.tokens_spent());
        let prompt = estimate_prompt(&request);
        if prompt >= left {
            return Ok(Err(wit::LlmError::BudgetExceeded(format!(
                "skill `{}` has {left} of its {} tokens a call left, and this prompt is about \
                 {prompt} tokens",
                ctx.skill, grant.tokens_per_call
            ))));
        }
        let room = u32::try_from(left - prompt).unwrap_or(u32::MAX);
        let chat = ChatRequest {
            messages: request
                .messages
                .into_iter()
                .map(|m| {
                    let role = match m.role {
                        wit::Role::System => Role::System,
                        wit::Role::User => Role::User,
                        wit::Role::Assistant => Role::Assistant,
                    };
                    Message::new(role, m.content)
                })
                .collect(),
            schema,
            max_tokens: Some(request.max_tokens.map_or(room, |asked| asked.min(room))),
            temperature: request.temperature.filter(|t| t.is_finite()),
            seed: None,
        };
        let answer = match tokio::time::timeout_at(self.deadline(), client.chat(&chat)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Ok(Err(to_wit(e))),
            Err(_) => {
                return Ok(Err(wit::LlmError::Unavailable(
                    "the model did not answer before the call's deadline".into(),
                )))
            }
        };
        let spent = match answer.usage.total_tokens {
            0 => prompt + estimate_tokens(&answer.content),
            reported => reported,
        };
        self.spend_tokens(spent);
        record(&ctx, &answer, spent, client.price()).await;
        let budget_left = grant.tokens_per_call.saturating_sub(self.tokens_spent());
        Ok(Ok(wit::Answer {
            finish_reason: match &answer.finish_reason {
                FinishReason::Stop => wit::FinishReason::Stop,
                FinishReason::Length => wit::FinishReason::Length,
                FinishReason::Other(reason) if reason == "content_filter" => {
                    wit::FinishReason::ContentFilter
                }
                FinishReason::Other(_) => wit::FinishReason::Other,
            },
            prompt_tokens: answer.usage.prompt_tokens,
            completion_tokens: answer.usage.completion_tokens,
            model: answer.model,
            content: answer.content,
            budget_left,
        }))
    }
}

/// Records what one chat of a skill spent. A store that refuses the sample
/// is logged, never the skill's failure: the answer was had and paid for.
async fn record(
    ctx: &Arc<SkillContext>,
    answer: &ChatAnswer,
    tokens: u64,
    price: Option<super::Price>,
) {
    let Some(kpi) = ctx.capabilities.kpi.as_ref() else {
        return;
    };
    let model = crate::runtime::bounded::cut(&answer.model, 256);
    let mut labels = Labels::new();
    labels.insert("skill".into(), ctx.skill.clone());
    if !model.is_empty() {
        labels.insert("model".into(), model.to_string());
    }
    let mut samples = vec![NewSample {
        name: "skill.llm_tokens".into(),
        value: tokens as f64,
        at: None,
        labels: labels.clone(),
    }];
    if let Some(price) = price {
        samples.push(NewSample {
            name: "skill.llm_cost_usd".into(),
            value: price.of(&answer.usage),
            at: None,
            labels,
        });
    }
    if let Err(e) = kpi.push(samples).await {
        tracing::warn!(skill = %ctx.skill, error = %e, "a skill's model spending was not recorded");
    }
}

fn to_wit(e: LlmError) -> wit::LlmError {
    match e {
        LlmError::Unavailable { .. } | LlmError::Invalid { .. } => {
            wit::LlmError::Unavailable(e.to_string())
        }
        LlmError::Refused { .. } => wit::LlmError::Refused(e.to_string()),
        LlmError::Request(m) => wit::LlmError::Invalid(m),
    }
}
