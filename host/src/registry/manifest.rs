//! A skill's manifest: what it is and what one call of it may use.
//!
//! Two sources, merged key by key: the `darkfactory:manifest` custom section
//! the SDK embeds (a `[package]` table from Cargo.toml and a `[skill]` table
//! from `export_skill!`), then the optional sidecar `NAME.toml` in the skills
//! directory, which wins. Unknown keys are errors, so a typo never silently
//! leaves a limit at its default.

use crate::capabilities::board::BoardGrants;
use crate::capabilities::fleet::FleetGrant;
use crate::capabilities::http::HttpGrant;
use crate::capabilities::memory::{Grant, SkillGrants};
use crate::capabilities::skills::SkillsGrant;
use crate::runtime::{CallLimits, RuntimeConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// The merged manifest of one skill version.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Manifest {
    /// Name of the crate (or tool) that built the component, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// What the skill does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The skill author's version string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// JSON Schema every input must satisfy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
    /// Deadline of one call, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// Memory limit of one call (all its memories and tables), in MiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
    /// Calls that may run at once (within the skill's share of the
    /// instance pool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// The agent the skill acts for (what the memory namespace `agent`
    /// means); the skill's own name when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Memory namespaces the skill may search.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory_read: Vec<String>,
    /// Memory namespaces the skill may store into and forget from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub memory_write: Vec<String>,
    /// Board lists the skill may read (`*`: every list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub board_read: Vec<String>,
    /// Board lists the skill may write: create cards in, move cards into
    /// and out of, comment on cards in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub board_write: Vec<String>,
    /// `read` (agents and routes) or `write` (heartbeats for its agent too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<String>,
    /// The skills it may call (`*`: every skill).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    /// KPI series the skill may read (`kpi`, which only workflows import
    /// so far).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kpi_read: Vec<String>,
    /// Where its outgoing HTTP requests may go: `scheme://host[:port]`
    /// entries (see `capabilities::http`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    /// Outgoing HTTP requests one call may send.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_requests: Option<u32>,
    /// Outgoing HTTP body MiB (sent and received) one call may move.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_mib: Option<u64>,
    /// Set when the component was compiled from a `workflow.md`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowOrigin>,
}

/// Where a compiled workflow came from (the `[workflow]` table the workflow
/// compiler embeds; a sidecar cannot set it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkflowOrigin {
    /// sha256 of the `workflow.md` source.
    pub source_sha256: String,
    /// When it runs: `manual`, `cron: ...` or `gap: KIND`.
    pub trigger: String,
}

/// The keys a manifest may set (sidecar file, or `[skill]` of the section).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    description: Option<String>,
    version: Option<String>,
    input_schema: Option<toml::Value>,
    deadline_ms: Option<u64>,
    memory_mib: Option<u64>,
    concurrency: Option<u32>,
    agent: Option<String>,
    memory_read: Option<List>,
    memory_write: Option<List>,
    board_read: Option<List>,
    board_write: Option<List>,
    fleet: Option<String>,
    skills: Option<List>,
    kpi_read: Option<List>,
    allowed_outbound_hosts: Option<List>,
    outbound_requests: Option<u32>,
    outbound_mib: Option<u64>,
}

/// A list written as a TOML array, or as one comma-separated string (what
/// the SDK's `export_skill!` writes).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum List {
    Array(Vec<String>),
    Text(String),
}

impl List {
    fn items(self) -> Vec<String> {
        match self {
            List::Array(items) => items,
            List::Text(text) => text
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Embedded {
    #[serde(default)]
    package: Package,
    #[serde(default)]
    skill: Fields,
    workflow: Option<WorkflowOrigin>,
}

#[derive(Debug, Default, Deserialize)]
struct Package {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
}

/// A manifest ready to use: limits resolved, schema compiled.
#[derive(Clone)]
pub struct ResolvedManifest {
    /// The manifest as written.
    pub manifest: Manifest,
    /// The limits of one call.
    pub limits: CallLimits,
    /// The compiled input schema.
    pub schema: Option<Arc<jsonschema::Validator>>,
    /// Memory grants, when the manifest gives any.
    pub memory: Option<SkillGrants>,
    /// Board grants, when the manifest gives any.
    pub board: Option<BoardGrants>,
    /// The fleet grant, when the manifest gives one.
    pub fleet: Option<FleetGrant>,
    /// The skills it may call, when the manifest names any.
    pub skills: Option<SkillsGrant>,
    /// Its outgoing HTTP, when the manifest allows any host.
    pub http: Option<Arc<HttpGrant>>,
}

impl std::fmt::Debug for ResolvedManifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedManifest")
            .field("manifest", &self.manifest)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// Merges the embedded section (if any) with the sidecar text (if any).
    pub fn merge(embedded: Option<&str>, sidecar: Option<&str>) -> Result<Self, String> {
        let mut manifest = Manifest::default();
        if let Some(text) = embedded {
            let e: Embedded = toml::from_str(text).map_err(|e| {
                format!(
                    "the embedded manifest is invalid: {}",
                    without_values(e.message())
                )
            })?;
            manifest.package = e.package.name;
            manifest.version = e.package.version;
            manifest.description = e.package.description.filter(|d| !d.is_empty());
            manifest.workflow = e.workflow;
            manifest.apply(e.skill, "embedded manifest")?;
        }
        if let Some(text) = sidecar {
            let fields: Fields = toml::from_str(text).map_err(|e| {
                let at = e
                    .span()
                    .map(|s| {
                        let line = text[..s.start].matches('\n').count() + 1;
                        format!(" (line {line})")
                    })
                    .unwrap_or_default();
                format!(
                    "the sidecar manifest is invalid{at}: {}",
                    without_values(e.message().trim())
                )
            })?;
            manifest.apply(fields, "sidecar manifest")?;
        }
        Ok(manifest)
    }

    fn apply(&mut self, fields: Fields, source: &str) -> Result<(), String> {
        if let Some(d) = fields.description {
            self.description = Some(d);
        }
        if let Some(v) = fields.version {
            self.version = Some(v);
        }
        if let Some(ms) = fields.deadline_ms {
            self.deadline_ms = Some(ms);
        }
        if let Some(mib) = fields.memory_mib {
            self.memory_mib = Some(mib);
        }
        if let Some(n) = fields.concurrency {
            self.concurrency = Some(n);
        }
        if let Some(agent) = fields.agent {
            self.agent = Some(agent);
        }
        if let Some(read) = fields.memory_read {
            self.memory_read = read.items();
        }
        if let Some(write) = fields.memory_write {
            self.memory_write = write.items();
        }
        if let Some(read) = fields.board_read {
            self.board_read = read.items();
        }
        if let Some(write) = fields.board_write {
            self.board_write = write.items();
        }
        if let Some(fleet) = fields.fleet {
            self.fleet = Some(fleet);
        }
        if let Some(names) = fields.skills {
            self.skills = names.items();
        }
        if let Some(read) = fields.kpi_read {
            self.kpi_read = read.items();
        }
        if let Some(hosts) = fields.allowed_outbound_hosts {
            self.allowed_outbound_hosts = hosts.items();
        }
        if let Some(n) = fields.outbound_requests {
            self.outbound_requests = Some(n);
        }
        if let Some(mib) = fields.outbound_mib {
            self.outbound_mib = Some(mib);
        }
        if let Some(schema) = fields.input_schema {
            let json = match schema {
                toml::Value::String(text) => serde_json::from_str(&text)
                    .map_err(|e| format!("{source}: `input_schema` is not valid JSON: {e}"))?,
                other => serde_json::to_value(other)
                    .map_err(|e| format!("{source}: `input_schema` cannot be read: {e}"))?,
            };
            self.input_schema = Some(json);
        }
        Ok(())
    }

    /// Checks the limits against the host's bounds, compiles the schema and
    /// parses the grants of skill `skill`.
    pub fn resolve(self, skill: &str, config: &RuntimeConfig) -> Result<ResolvedManifest, String> {
        let mut limits = config.default_limits();
        if let Some(ms) = self.deadline_ms {
            let max = config.max_deadline.as_millis() as u64;
            if ms == 0 || ms > max {
                return Err(format!(
                    "`deadline_ms` is {ms}; it must be between 1 and {max} on this host"
                ));
            }
            limits.deadline = Duration::from_millis(ms);
        }
        if let Some(mib) = self.memory_mib {
            let max = config.max_memory_bytes >> 20;
            if mib == 0 || mib > max {
                return Err(format!(
                    "`memory_mib` is {mib}; it must be between 1 and {max} on this host"
                ));
            }
            limits.memory_bytes = mib << 20;
        }
        if let Some(n) = self.concurrency {
            let max = config.max_instances;
            if n == 0 || n > max {
                return Err(format!(
                    "`concurrency` is {n}; it must be between 1 and {max} on this host"
                ));
            }
        }
        let schema = match &self.input_schema {
            Some(schema) => Some(Arc::new(jsonschema::validator_for(schema).map_err(
                |e| {
                    format!(
                        "`input_schema` is not a valid JSON Schema: {}",
                        without_values(&e.to_string())
                    )
                },
            )?)),
            None => None,
        };
        let memory = self.memory_grants(skill)?;
        let board = BoardGrants::parse(&self.board_read, &self.board_write)?;
        let agent = self.agent.clone().unwrap_or_else(|| skill.to_string());
        let fleet = FleetGrant::parse(self.fleet.as_deref(), agent)?;
        let skills = SkillsGrant::parse(&self.skills)?;
        let http = HttpGrant::parse(
            &self.allowed_outbound_hosts,
            self.outbound_requests,
            self.outbound_mib,
        )?
        .map(Arc::new);
        Ok(ResolvedManifest {
            fleet,
            skills,
            http,
            manifest: self,
            limits,
            schema,
            memory,
            board,
        })
    }

    fn memory_grants(&self, skill: &str) -> Result<Option<SkillGrants>, String> {
        if self.memory_read.is_empty() && self.memory_write.is_empty() {
            return Ok(None);
        }
        let parse = |key: &str, list: &[String]| {
            list.iter()
                .map(|g| Grant::parse(g).map_err(|e| format!("`{key}`: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        let read = parse("memory_read", &self.memory_read)?;
        let write = parse("memory_write", &self.memory_write)?;
        let agent = self.agent.clone().unwrap_or_else(|| skill.to_string());
        SkillGrants::new(agent, read, write)
            .map(Some)
            .map_err(|e| format!("`agent`: {e}"))
    }
}

/// A TOML error's message without the values it quotes, and bounded: the
/// host names the line and the problem (and the key, when it is the key
/// that is unknown), but does not repeat what a file in the skills
/// directory holds.
fn without_values(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(['"', '\'', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(len) = after.find(quote) else {
            rest = "";
            break;
        };
        let quoted = &after[..len];
        // The manifest's own keys help ("expected one of `deadline_ms`,
        // ..."), and so does the name of an unknown key; everything else
        // quoted is a value.
        let is_key = quote == '`'
            && (KEYS.contains(&quoted)
                || (out.ends_with("unknown field ")
                    && quoted.len() <= 64
                    && quoted
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')));
        if is_key {
            out.push('`');
            out.push_str(quoted);
            out.push('`');
        } else {
            out.push_str("(a value)");
        }
        rest = &after[len + 1..];
    }
    out.push_str(rest);
    crate::runtime::bounded::cut_owned(out, 512)
}

/// The keys a manifest may set, as its errors may name them.
const KEYS: &[&str] = &[
    "description",
    "version",
    "input_schema",
    "deadline_ms",
    "memory_mib",
    "concurrency",
    "agent",
    "memory_read",
    "memory_write",
    "board_read",
    "board_write",
    "fleet",
    "skills",
    "kpi_read",
    "allowed_outbound_hosts",
    "outbound_requests",
    "outbound_mib",
    "package",
    "skill",
    "workflow",
    "name",
    "source_sha256",
    "trigger",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_errors_name_the_line_and_key_but_not_the_values() {
        let err = Manifest::merge(None, Some("deadline_ms = \"hunter2-secret\"")).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = Manifest::merge(None, Some("\n\nAWS_SECRET = \"abc\"")).unwrap_err();
        assert!(
            err.contains("line 3") && err.contains("AWS_SECRET"),
            "{err}"
        );
        assert!(!err.contains("abc"), "{err}");
        let err = Manifest::merge(None, Some("PATH=/usr/bin:/secret/dir\n")).unwrap_err();
        assert!(!err.contains("/secret/dir"), "{err}");
        let err =
            Manifest::merge(None, Some("deadline_ms = 123456789012345678901234")).unwrap_err();
        assert!(!err.contains("1234567890"), "{err}");
    }

    const EMBEDDED: &str = "[package]\nname = '''skill-echo'''\nversion = '''0.1.0'''\n\
        description = ''''''\n[skill]\ndeadline_ms = 1000\nmemory_mib = 16\n";

    #[test]
    fn sidecar_overrides_embedded_keys() {
        let m = Manifest::merge(
            Some(EMBEDDED),
            Some("deadline_ms = 2500\ndescription = \"x\""),
        )
        .unwrap();
        assert_eq!(m.package.as_deref(), Some("skill-echo"));
        assert_eq!(m.version.as_deref(), Some("0.1.0"));
        assert_eq!(m.description.as_deref(), Some("x"));
        assert_eq!(m.deadline_ms, Some(2500));
        assert_eq!(m.memory_mib, Some(16));
        let r = m.resolve("t", &RuntimeConfig::default()).unwrap();
        assert_eq!(r.limits.deadline, Duration::from_millis(2500));
        assert_eq!(r.limits.memory_bytes, 16 << 20);
    }

    #[test]
    fn defaults_apply_without_a_manifest() {
        let r = Manifest::merge(None, None)
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap();
        assert_eq!(r.limits, RuntimeConfig::default().default_limits());
        assert!(r.schema.is_none());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = Manifest::merge(None, Some("deadline = 5")).unwrap_err();
        assert!(err.contains("unknown field `deadline`"), "{err}");
        assert!(err.contains("line 1"), "{err}");
        let err = Manifest::merge(None, Some("memory_mib = 999999"))
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap_err();
        assert!(err.contains("memory_mib"), "{err}");
        let err = Manifest::merge(None, Some("deadline_ms = 0"))
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap_err();
        assert!(err.contains("deadline_ms"), "{err}");
    }

    #[test]
    fn board_grants_from_the_section_and_the_sidecar() {
        let r = Manifest::merge(
            Some("[skill]\nboard_read = '''*'''\n"),
            Some("board_write = [\"Backlog\", \"Blocked\"]"),
        )
        .unwrap()
        .resolve("t", &RuntimeConfig::default())
        .unwrap();
        let grants = r.board.unwrap();
        grants.check_read("Done").unwrap();
        grants.check_write("blocked").unwrap();
        assert!(grants.check_write("Done").is_err());
        let err = Manifest::merge(None, Some("board_read = [\"\"]"))
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap_err();
        assert!(err.contains("board_read"), "{err}");
    }

    #[test]
    fn memory_grants_from_arrays_or_text() {
        let r = Manifest::merge(
            Some("[skill]\nmemory_read = '''agent, org'''\n"),
            Some("agent = \"alfred\"\nmemory_write = [\"agent\"]"),
        )
        .unwrap()
        .resolve("t", &RuntimeConfig::default())
        .unwrap();
        let grants = r.memory.unwrap();
        assert_eq!(grants.agent, "alfred");
        assert_eq!(grants.read.len(), 2);
        assert_eq!(grants.write, vec![Grant::OwnAgent]);
        let none = Manifest::merge(None, None)
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap();
        assert!(none.memory.is_none());
        let err = Manifest::merge(None, Some("memory_read = [\"everything\"]"))
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap_err();
        assert!(err.contains("memory_read"), "{err}");
        let err = Manifest::merge(None, Some("agent = \"a b\"\nmemory_read = [\"org\"]"))
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap_err();
        assert!(err.contains("agent"), "{err}");
    }

    #[test]
    fn input_schema_as_json_text_or_toml_table() {
        let text = Manifest::merge(None, Some(r#"input_schema = '{"type":"object"}'"#)).unwrap();
        let table = Manifest::merge(None, Some("[input_schema]\ntype = \"object\"")).unwrap();
        assert_eq!(text.input_schema, table.input_schema);
        let r = text.resolve("t", &RuntimeConfig::default()).unwrap();
        let schema = r.schema.unwrap();
        assert!(schema.is_valid(&serde_json::json!({})));
        assert!(!schema.is_valid(&serde_json::json!([1])));
        let err = Manifest::merge(None, Some(r#"input_schema = '{"type": 5}'"#))
            .unwrap()
            .resolve("t", &RuntimeConfig::default())
            .unwrap_err();
        assert!(err.contains("not a valid JSON Schema"), "{err}");
    }
}
