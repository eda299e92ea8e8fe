//! A skill's manifest: what it is and what one call of it may use.
//!
//! Two sources, merged key by key: the `darkfactory:manifest` custom section
//! the SDK embeds (a `[package]` table from Cargo.toml and a `[skill]` table
//! from `export_skill!`), then the optional sidecar `NAME.toml` in the skills
//! directory, which wins. Unknown keys are errors, so a typo never silently
//! leaves a limit at its default.
//!
//! This is the manifest as written; what it comes to on a host (limits
//! checked against the host's bounds, the schema compiled, the grants
//! parsed) is `Manifest::resolve`, in `capabilities::grants`.

use serde::{Deserialize, Serialize};

/// The merged manifest of one skill version.
#[derive(Debug, Clone, Default, Serialize, PartialEq, utoipa::ToSchema)]
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
    /// KPI series the skill may read: names, `PREFIX.*`, or `*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kpi_read: Vec<String>,
    /// The most tokens one call may spend on the host's model (the `llm`
    /// grant; none: no model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_tokens: Option<u64>,
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
    llm_tokens: Option<u64>,
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
        if let Some(tokens) = fields.llm_tokens {
            self.llm_tokens = Some(tokens);
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
}

/// A TOML error's message without the values it quotes, and bounded: the
/// host names the line and the problem (and the key, when it is the key
/// that is unknown), but does not repeat what a file in the skills
/// directory holds.
pub(crate) fn without_values(message: &str) -> String {
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
    "llm_tokens",
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
}
