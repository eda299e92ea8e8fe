//! Memory namespaces, and who may read and write which.
//!
//! A memory lives in exactly one [`Namespace`]: `agent:<name>`, `org` or
//! `user:<id>`. Callers name namespaces in requests; a skill may also say
//! `agent` (its own agent, from its manifest) and `all` (every namespace it
//! may read). [`Access`] turns a requested name into concrete namespaces,
//! refusing what the caller was not granted, and gives the backend the
//! [`Scope`] it must filter on. The filter is always added by the host.

use std::fmt;

/// Longest agent name or user id.
pub const MAX_ID_LEN: usize = 128;

/// Where one memory lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// What one agent learned: `agent:<name>`.
    Agent(String),
    /// What the whole organisation knows: `org`.
    Org,
    /// What is known about or for one user: `user:<id>`.
    User(String),
}

impl Namespace {
    /// Parses `org`, `agent:<name>` or `user:<id>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "org" {
            return Ok(Namespace::Org);
        }
        if let Some(name) = text.strip_prefix("agent:") {
            return check_id(name, "agent name").map(|_| Namespace::Agent(name.to_string()));
        }
        if let Some(id) = text.strip_prefix("user:") {
            return check_id(id, "user id").map(|_| Namespace::User(id.to_string()));
        }
        Err(unknown_namespace(text))
    }

    /// `agent`, `org` or `user`: what kind of namespace this is.
    pub fn kind(&self) -> &'static str {
        match self {
            Namespace::Agent(_) => "agent",
            Namespace::Org => "org",
            Namespace::User(_) => "user",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Agent(name) => write!(f, "agent:{name}"),
            Namespace::Org => f.write_str("org"),
            Namespace::User(id) => write!(f, "user:{id}"),
        }
    }
}

fn unknown_namespace(text: &str) -> String {
    format!("unknown namespace `{text}`: expected `org`, `agent:<name>` or `user:<id>`")
}

/// Agent names and user ids: 1 to 128 of `A-Z a-z 0-9 . _ @ -`, starting
/// with a letter or digit.
fn check_id(id: &str, what: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} `{id}`: use 1 to {MAX_ID_LEN} of A-Z, a-z, 0-9, `.`, `_`, `@`, `-`, \
             starting with a letter or digit"
        ))
    }
}

/// One entry of a skill's `memory_read` or `memory_write` grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `agent`: the skill's own agent.
    OwnAgent,
    /// `user:*`: every user namespace.
    AnyUser,
    /// A namespace by name: `org`, `agent:<name>`, `user:<id>`.
    Exactly(Namespace),
}

impl Grant {
    /// Parses one grant entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "agent" => Ok(Grant::OwnAgent),
            "user:*" => Ok(Grant::AnyUser),
            "all" => Err(
                "`all` is not a grant: list the namespaces (`agent`, `org`, \
                          `user:*`, `user:<id>`, `agent:<name>`)"
                    .to_string(),
            ),
            other => Namespace::parse(other).map(Grant::Exactly).map_err(|_| {
                format!(
                    "unknown memory grant `{other}`: expected `agent`, `org`, `user:*`, \
                     `user:<id>` or `agent:<name>`"
                )
            }),
        }
    }

    fn covers(&self, ns: &Namespace, agent: &str) -> bool {
        match (self, ns) {
            (Grant::OwnAgent, Namespace::Agent(name)) => name == agent,
            (Grant::AnyUser, Namespace::User(_)) => true,
            (Grant::Exactly(granted), ns) => granted == ns,
            _ => false,
        }
    }
}

/// A skill's memory grants, resolved for its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillGrants {
    /// The agent the skill acts for: what `agent` means.
    pub agent: String,
    /// Namespaces it may search.
    pub read: Vec<Grant>,
    /// Namespaces it may store into and forget from.
    pub write: Vec<Grant>,
}

impl SkillGrants {
    /// Checks the agent name; the grants are parsed already.
    pub fn new(agent: String, read: Vec<Grant>, write: Vec<Grant>) -> Result<Self, String> {
        check_id(&agent, "agent name")?;
        Ok(SkillGrants { agent, read, write })
    }

    /// Whether the skill was granted any namespace at all.
    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub enum Access {
    /// The host's own API and CLI: every namespace (the API's token guards
    /// the writes).
    Operator,
    /// A skill: only what its manifest grants.
    Skill(SkillGrants),
}

/// The namespaces a search may see; the backend turns this into a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// No restriction (the operator's `all`).
    Everything,
    /// Any of these namespaces, plus every user namespace when `any_user`.
    Only {
        /// Namespaces by name, sorted.
        namespaces: Vec<Namespace>,
        /// Whether every `user:*` namespace is included as well.
        any_user: bool,
    },
}

/// A refusal or a mistake in a requested namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceError {
    /// Not a namespace.
    Invalid(String),
    /// A namespace the caller was not granted.
    Denied(String),
}

impl Access {
    /// The one namespace a store goes to.
    pub fn writable(&self, requested: &str) -> Result<Namespace, NamespaceError> {
        let ns = self.name(requested)?;
        self.check_write(&ns)?;
        Ok(ns)
    }

    /// Whether the caller may change (forget) a memory of `ns`.
    pub fn check_write(&self, ns: &Namespace) -> Result<(), NamespaceError> {
        match self {
            Access::Operator => Ok(()),
            Access::Skill(g) if g.write.iter().any(|w| w.covers(ns, &g.agent)) => Ok(()),
            Access::Skill(_) => Err(NamespaceError::Denied(format!(
                "this skill may not write to namespace `{ns}`; grant it with `memory_write` \
                 in the skill's manifest"
            ))),
        }
    }

    /// What a search in `requested` (a namespace, `agent`, or `all`) may see.
    pub fn readable(&self, requested: &str) -> Result<Scope, NamespaceError> {
        if requested == "all" {
            return Ok(match self {
                Access::Operator => Scope::Everything,
                Access::Skill(g) => {
                    let mut namespaces = Vec::new();
                    let mut any_user = false;
                    for grant in &g.read {
                        match grant {
                            Grant::OwnAgent => namespaces.push(Namespace::Agent(g.agent.clone())),
                            Grant::AnyUser => any_user = true,
                            Grant::Exactly(ns) => namespaces.push(ns.clone()),
                        }
                    }
                    if any_user {
                        namespaces.retain(|ns| !matches!(ns, Namespace::User(_)));
                    }
                    namespaces.sort();
                    namespaces.dedup();
                    if namespaces.is_empty() && !any_user {
                        return Err(NamespaceError::Denied(
                            "this skill may not read any memory namespace; grant some with \
                             `memory_read` in the skill's manifest"
                                .to_string(),
                        ));
                    }
                    Scope::Only {
                        namespaces,
                        any_user,
                    }
                }
            });
        }
        let ns = self.name(requested)?;
        match self {
            Access::Operator => {}
            Access::Skill(g) if g.read.iter().any(|r| r.covers(&ns, &g.agent)) => {}
            Access::Skill(_) => {
                return Err(NamespaceError::Denied(format!(
                    "this skill may not read namespace `{ns}`; grant it with `memory_read` in \
                     the skill's manifest"
                )))
            }
        }
        Ok(Scope::Only {
            namespaces: vec![ns],
            any_user: false,
        })
    }

    /// Parses a namespace name, resolving `agent` for a skill.
    fn name(&self, requested: &str) -> Result<Namespace, NamespaceError> {
        match (self, requested) {
            (Access::Skill(g), "agent") => Ok(Namespace::Agent(g.agent.clone())),
            (Access::Operator, "agent") => Err(NamespaceError::Invalid(
                "`agent` means the calling skill's agent; outside a skill name one: \
                 `agent:<name>`"
                    .to_string(),
            )),
            (_, "all") => Err(NamespaceError::Invalid(
                "`all` is only for searches; store into one namespace".to_string(),
            )),
            _ => Namespace::parse(requested).map_err(NamespaceError::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skill(read: &[&str], write: &[&str]) -> Access {
        let parse = |v: &[&str]| v.iter().map(|g| Grant::parse(g).unwrap()).collect();
        Access::Skill(SkillGrants::new("alfred".into(), parse(read), parse(write)).unwrap())
    }

    #[test]
    fn namespaces_round_trip_and_reject_garbage() {
        for text in ["org", "agent:alfred", "user:42", "user:ana@example.com"] {
            assert_eq!(Namespace::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "",
            "orgs",
            "agent:",
            "user:",
            "agent:a b",
            "user:-x",
            "team:x",
        ] {
            assert!(Namespace::parse(bad).is_err(), "{bad}");
        }
        let long = format!("user:{}", "x".repeat(MAX_ID_LEN + 1));
        assert!(Namespace::parse(&long).is_err());
    }

    #[test]
    fn a_skill_writes_only_where_granted() {
        let access = skill(&["agent", "org"], &["agent"]);
        assert_eq!(
            access.writable("agent").unwrap(),
            Namespace::Agent("alfred".into())
        );
        assert_eq!(
            access.writable("agent:alfred").unwrap(),
            Namespace::Agent("alfred".into())
        );
        assert!(matches!(
            access.writable("org"),
            Err(NamespaceError::Denied(_))
        ));
        assert!(matches!(
            access.writable("agent:bob"),
            Err(NamespaceError::Denied(_))
        ));
        assert!(matches!(
            access.writable("all"),
            Err(NamespaceError::Invalid(_))
        ));
        assert!(matches!(
            access.writable("nope"),
            Err(NamespaceError::Invalid(_))
        ));
    }

    #[test]
    fn all_is_what_the_skill_may_read() {
        let access = skill(&["agent", "org", "user:7", "user:*"], &[]);
        assert_eq!(
            access.readable("all").unwrap(),
            Scope::Only {
                namespaces: vec![Namespace::Agent("alfred".into()), Namespace::Org],
                any_user: true,
            }
        );
        assert!(access.readable("user:99").is_ok());
        assert!(matches!(
            access.readable("agent:bob"),
            Err(NamespaceError::Denied(_))
        ));
        assert!(matches!(
            skill(&[], &["org"]).readable("all"),
            Err(NamespaceError::Denied(_))
        ));
        assert_eq!(Access::Operator.readable("all").unwrap(), Scope::Everything);
        assert!(matches!(
            Access::Operator.readable("agent"),
            Err(NamespaceError::Invalid(_))
        ));
    }

    #[test]
    fn grants_parse() {
        assert_eq!(Grant::parse(" agent ").unwrap(), Grant::OwnAgent);
        assert_eq!(Grant::parse("user:*").unwrap(), Grant::AnyUser);
        assert!(Grant::parse("all").unwrap_err().contains("not a grant"));
        assert!(Grant::parse("everything").is_err());
    }
}
