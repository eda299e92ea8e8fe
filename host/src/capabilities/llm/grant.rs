//! The `llm_tokens` grant: whether a skill may ask the host's model, and
//! how many tokens one call of it may spend. Deny by default: a skill whose
//! manifest has no `llm_tokens` asks nothing, and a component that imports
//! `llm` without it is refused at load (a model costs money; a forgotten
//! grant should not surface as a denial in production).

/// The most tokens a grant may give one call: a bound on a typo, well above
/// any model's context.
pub const MAX_TOKENS_PER_CALL: u64 = 10_000_000;

/// What one skill may spend on the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmGrant {
    /// The most tokens (prompts and answers, over all its requests) one
    /// call of the skill may spend.
    pub tokens_per_call: u64,
}

impl LlmGrant {
    /// Parses the manifest's `llm_tokens`; `None` when it is absent.
    pub fn parse(tokens: Option<u64>) -> Result<Option<Self>, String> {
        match tokens {
            None => Ok(None),
            Some(0) => Err(
                "`llm_tokens` is 0; it is the most tokens one call may spend on the model, \
                 e.g. `llm_tokens = 4000` (leave it out to grant no model)"
                    .to_string(),
            ),
            Some(n) if n > MAX_TOKENS_PER_CALL => Err(format!(
                "`llm_tokens` is {n}; it must be at most {MAX_TOKENS_PER_CALL}"
            )),
            Some(n) => Ok(Some(LlmGrant { tokens_per_call: n })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_a_positive_bounded_budget() {
        assert_eq!(LlmGrant::parse(None).unwrap(), None);
        assert_eq!(
            LlmGrant::parse(Some(4000)).unwrap(),
            Some(LlmGrant {
                tokens_per_call: 4000
            })
        );
        let zero = LlmGrant::parse(Some(0)).unwrap_err();
        assert!(
            zero.contains("llm_tokens") && zero.contains("leave it out"),
            "{zero}"
        );
        let huge = LlmGrant::parse(Some(MAX_TOKENS_PER_CALL + 1)).unwrap_err();
        assert!(huge.contains("at most"), "{huge}");
    }
}
