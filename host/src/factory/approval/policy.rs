//! The approval policy (`DATA/policy.toml`): for a gap kind and the grants
//! a fix asks for, whether the fix is deployed on its own (`auto`), waits
//! for a person (`human`), or may not be deployed at all (`deny`).
//!
//! ```toml
//! # How long an approval request stays open (default 24h).
//! expires = "24h"
//!
//! # The first rule that matches decides; when none does, a person decides.
//! [[rule]]
//! gap = "agent-down"        # a gap kind (its rule's name), or "*"
//! grants = ["fleet_read", "board_read", "board_write"]  # matches a fix that asks only these
//! approval = "auto"
//!
//! [[rule]]
//! gap = "*"
//! any_of = ["outbound_http", "memory_write"]  # matches a fix that asks any of these
//! approval = "deny"
//! ```
//!
//! A grant is named by what it lets a fix do: `memory_read`,
//! `memory_write`, `board_read`, `board_write`, `fleet_read`, `fleet_write`,
//! `skills`, `kpi_read`, `llm` and `outbound_http` ([`grants_of`] reads
//! them off a manifest). A rule without `grants` or `any_of` matches every
//! fix for its gap kind. Without a file, or with no rule that matches, the
//! answer is `human`: nothing is deployed without a person unless the
//! operator wrote so.

use crate::skill::Manifest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// Every grant a fix may ask for.
pub const GRANTS: [&str; 10] = [
    "memory_read",
    "memory_write",
    "board_read",
    "board_write",
    "fleet_read",
    "fleet_write",
    "skills",
    "kpi_read",
    "llm",
    "outbound_http",
];

/// How long an approval request stays open unless the policy says.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Who decides on a fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Deployed without asking.
    Auto,
    /// A person approves or rejects it.
    Human,
    /// Never deployed.
    Deny,
}

/// What the policy says of one fix, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// Who decides.
    pub approval: Approval,
    /// The rule that decided (`rule 2 (gap "*")`), or the default.
    pub because: String,
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
    /// How long an approval request stays open.
    pub expires: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            rules: Vec::new(),
            expires: DEFAULT_EXPIRY,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    gap: String,
    grants: Option<BTreeSet<String>>,
    any_of: Option<BTreeSet<String>>,
    approval: Approval,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    expires: Option<String>,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    gap: String,
    grants: Option<Vec<String>>,
    any_of: Option<Vec<String>>,
    approval: Approval,
}

impl Policy {
    /// Reads a policy file's text; an error names the line and what is
    /// wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        let expires = match file.expires.as_deref() {
            None => DEFAULT_EXPIRY,
            Some(text) => match humantime::parse_duration(text) {
                Ok(d) if d >= Duration::from_secs(60) => d,
                Ok(_) => return Err(format!("`expires` is {text}; it must be at least 1m")),
                Err(e) => return Err(format!("`expires` is not a duration such as 24h: {e}")),
            },
        };
        let mut rules = Vec::with_capacity(file.rule.len());
        for (i, rule) in file.rule.into_iter().enumerate() {
            let n = i + 1;
            if rule.gap.trim().is_empty() {
                return Err(format!(
                    "rule {n}: `gap` is empty; name a gap kind, or \"*\""
                ));
            }
            let set = |key: &str, list: Option<Vec<String>>| -> Result<_, String> {
                let Some(list) = list else { return Ok(None) };
                let mut set = BTreeSet::new();
                for grant in list {
                    if grant != "*" && !GRANTS.contains(&grant.as_str()) {
                        return Err(format!(
                            "rule {n}: `{key}` names `{grant}`, which is no grant; the grants are \
                             {}",
                            GRANTS.join(", ")
                        ));
                    }
                    set.insert(grant);
                }
                Ok(Some(set))
            };
            let grants = set("grants", rule.grants)?;
            let any_of = set("any_of", rule.any_of)?;
            if grants.is_some() && any_of.is_some() {
                return Err(format!(
                    "rule {n}: `grants` and `any_of` together; a rule matches on one of them"
                ));
            }
            rules.push(Rule {
                gap: rule.gap,
                grants,
                any_of,
                approval: rule.approval,
            });
        }
        Ok(Policy { rules, expires })
    }

    /// What the policy says of a fix for gap kind `gap` that asks `grants`.
    pub fn decide(&self, gap: &str, grants: &BTreeSet<String>) -> Decision {
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.gap != "*" && rule.gap != gap {
                continue;
            }
            let matches = match (&rule.grants, &rule.any_of) {
                (Some(allowed), _) => {
                    allowed.contains("*") || grants.iter().all(|g| allowed.contains(g))
                }
                (_, Some(any)) => {
                    (any.contains("*") && !grants.is_empty())
                        || grants.iter().any(|g| any.contains(g))
                }
                (None, None) => true,
            };
            if matches {
                return Decision {
                    approval: rule.approval,
                    because: format!("rule {} (gap {:?}) of the policy", i + 1, rule.gap),
                };
            }
        }
        Decision {
            approval: Approval::Human,
            because: "no rule of the policy matches: a person decides".into(),
        }
    }
}

/// The grants a manifest asks for, by the policy's names.
pub fn grants_of(manifest: &Manifest) -> BTreeSet<String> {
    let mut grants = BTreeSet::new();
    let mut add = |on: bool, name: &str| {
        if on {
            grants.insert(name.to_string());
        }
    };
    add(!manifest.memory_read.is_empty(), "memory_read");
    add(!manifest.memory_write.is_empty(), "memory_write");
    add(!manifest.board_read.is_empty(), "board_read");
    add(!manifest.board_write.is_empty(), "board_write");
    match manifest.fleet.as_deref() {
        Some("write") => {
            add(true, "fleet_read");
            add(true, "fleet_write");
        }
        Some(_) => add(true, "fleet_read"),
        None => {}
    }
    add(!manifest.skills.is_empty(), "skills");
    add(!manifest.kpi_read.is_empty(), "kpi_read");
    add(manifest.llm_tokens.is_some(), "llm");
    add(!manifest.allowed_outbound_hosts.is_empty(), "outbound_http");
    grants
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(grants: &[&str]) -> BTreeSet<String> {
        grants.iter().map(|g| g.to_string()).collect()
    }

    #[test]
    fn the_first_matching_rule_decides_and_a_person_by_default() {
        let policy = Policy::parse(
            r#"
            expires = "2h"
            [[rule]]
            gap = "*"
            any_of = ["outbound_http"]
            approval = "deny"
            [[rule]]
            gap = "agent-down"
            grants = ["fleet_read", "board_read", "board_write"]
            approval = "auto"
            "#,
        )
        .unwrap();
        assert_eq!(policy.expires, Duration::from_secs(7200));
        let d = policy.decide("agent-down", &set(&["fleet_read", "board_write"]));
        assert_eq!(d.approval, Approval::Auto, "{d:?}");
        assert!(d.because.contains("rule 2"), "{d:?}");
        // A grant beyond the list: the auto rule does not match.
        let d = policy.decide("agent-down", &set(&["fleet_read", "memory_write"]));
        assert_eq!(d.approval, Approval::Human, "{d:?}");
        let d = policy.decide("ci-not-green", &set(&["board_read", "outbound_http"]));
        assert_eq!(d.approval, Approval::Deny, "{d:?}");
        assert_eq!(
            Policy::default().decide("x", &set(&[])).approval,
            Approval::Human
        );
    }

    #[test]
    fn a_bad_policy_is_refused_with_the_reason() {
        for (text, needle) in [
            ("[[rule]]\ngap = \"x\"\napproval = \"maybe\"", "maybe"),
            (
                "[[rule]]\ngap = \"x\"\ngrants = [\"root\"]\napproval = \"auto\"",
                "no grant",
            ),
            ("[[rule]]\ngap = \"\"\napproval = \"auto\"", "empty"),
            (
                "[[rule]]\ngap = \"x\"\ngrants = []\nany_of = []\napproval = \"auto\"",
                "together",
            ),
            ("expires = \"5s\"", "at least"),
            ("expire = \"5h\"", "unknown field"),
        ] {
            let err = Policy::parse(text).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
