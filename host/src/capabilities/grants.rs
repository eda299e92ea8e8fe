//! A manifest resolved against this host: a call's limits (checked against
//! the host's bounds), the compiled input schema, and the grants of every
//! capability, parsed from the manifest's keys. The manifest itself (what
//! a skill says of itself) is `skill::Manifest`; this is what it comes to
//! here, built once per version when it loads.

use crate::capabilities::board::BoardGrants;
use crate::capabilities::fleet::FleetGrant;
use crate::capabilities::http::HttpGrant;
use crate::capabilities::kpi::KpiGrant;
use crate::capabilities::llm::LlmGrant;
use crate::capabilities::memory::{Grant, SkillGrants};
use crate::capabilities::skills::SkillsGrant;
use crate::runtime::{CallLimits, RuntimeConfig};
use crate::skill::{without_values, Manifest};
use std::sync::Arc;
use std::time::Duration;

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
    /// The KPI series it may read, when the manifest names any.
    pub kpi: Option<KpiGrant>,
    /// What it may spend on the model, when the manifest grants any.
    pub llm: Option<LlmGrant>,
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
        let kpi = KpiGrant::parse(&self.kpi_read)?;
        let llm = LlmGrant::parse(self.llm_tokens)?;
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
            kpi,
            llm,
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

#[cfg(test)]
mod tests {
    use super::*;

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
