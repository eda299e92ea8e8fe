//! The `kpi_read` grant: which series a skill may read. Deny by default: a
//! skill whose manifest has no `kpi_read` reads nothing, and an entry names
//! a series exactly, every series under a prefix (`"agent.*"`), or every
//! series (`"*"`).

use super::check_name;

/// The series one skill may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiGrant {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    All,
    Prefix(String),
    Exact(String),
}

impl KpiGrant {
    /// Parses the manifest's `kpi_read` list; `None` when it is empty.
    pub fn parse(names: &[String]) -> Result<Option<Self>, String> {
        if names.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let entry = if name == "*" {
                Entry::All
            } else if let Some(prefix) = name.strip_suffix(".*") {
                check_name(prefix).map_err(|e| format!("`kpi_read`: {e}"))?;
                Entry::Prefix(format!("{prefix}."))
            } else {
                check_name(name).map_err(|e| {
                    format!("`kpi_read`: {e} (an entry is a series name, `PREFIX.*` or `*`)")
                })?;
                Entry::Exact(name.clone())
            };
            entries.push(entry);
        }
        Ok(Some(KpiGrant { entries }))
    }

    /// Whether series `name` may be read.
    pub fn allows(&self, name: &str) -> bool {
        self.entries.iter().any(|e| match e {
            Entry::All => true,
            Entry::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Entry::Exact(exact) => exact == name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_names_series_exactly_by_prefix_or_all() {
        assert_eq!(KpiGrant::parse(&[]).unwrap(), None);
        let g = KpiGrant::parse(&["ci.green".into(), "agent.*".into()])
            .unwrap()
            .unwrap();
        assert!(g.allows("ci.green") && g.allows("agent.cost_usd"));
        assert!(!g.allows("ci.greenish") && !g.allows("agent") && !g.allows("memory.lag"));
        let all = KpiGrant::parse(&["*".into()]).unwrap().unwrap();
        assert!(all.allows("anything"));
        let err = KpiGrant::parse(&["no spaces".into()]).unwrap_err();
        assert!(
            err.contains("kpi_read") && err.contains("PREFIX.*"),
            "{err}"
        );
    }
}
