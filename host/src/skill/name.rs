//! Skill names: `[a-z0-9][a-z0-9-]{0,63}`, the file stem in the skills directory.

use std::fmt;

/// Longest skill name.
pub const MAX_NAME_LEN: usize = 64;

/// A validated skill name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SkillName(String);

impl SkillName {
    /// Validates `name`; the error says what is wrong with it.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::check(name)?;
        Ok(SkillName(name.to_string()))
    }

    /// Whether `name` is a valid skill name, without keeping it: the error
    /// says what is wrong with it.
    pub fn check(name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("a skill name must not be empty".into());
        }
        if name.len() > MAX_NAME_LEN {
            return Err(format!(
                "skill name `{}…` is {} characters long; at most {MAX_NAME_LEN} are allowed",
                &name[..name.char_indices().nth(16).map_or(name.len(), |(i, _)| i)],
                name.chars().count()
            ));
        }
        let mut chars = name.chars();
        let first = chars.next().unwrap_or_default();
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(format!(
                "skill name `{name}` must start with a lowercase letter or a digit"
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "skill name `{name}` contains `{bad}`; only a-z, 0-9 and `-` are allowed"
            ));
        }
        Ok(())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lookups by `&str` in maps keyed by names (ordering and hashing are the
/// string's own), so the invoke path neither re-validates nor allocates.
impl std::borrow::Borrow<str> for SkillName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SkillName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::SkillName;

    #[test]
    fn accepts_valid_names() {
        for name in ["echo", "a", "0day", "text-stats", &"x".repeat(64)] {
            assert!(SkillName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_invalid_names_with_a_reason() {
        for (name, why) in [
            ("", "empty"),
            ("-echo", "must start"),
            ("Echo", "must start"),
            ("ec ho", "contains ` `"),
            ("echo.v2", "contains `.`"),
            ("é", "must start"),
        ] {
            let err = SkillName::parse(name).unwrap_err();
            assert!(err.contains(why), "{name}: {err}");
        }
        assert!(SkillName::parse(&"x".repeat(65))
            .unwrap_err()
            .contains("at most 64"));
    }
}
