//! What a skill may do on the board: read, or write, all lists or only
//! named ones. Built from the manifest keys `board_read` and `board_write`
//! (`"*"` for every list, or list names); writing a list implies reading it.
//! The host, not the skill, applies them to every call.

use super::BoardError;

/// A set of lists: every list, or the named ones (compared
/// case-insensitively, as the board names lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lists {
    /// Every list of the board.
    All,
    /// Only these (trimmed, as the manifest writes them).
    Named(Vec<String>),
}

impl Lists {
    /// Whether `list` is in the set.
    pub fn contains(&self, list: &str) -> bool {
        match self {
            Lists::All => true,
            Lists::Named(names) => names.iter().any(|n| same_list(n, list)),
        }
    }

    fn union(&self, other: &Lists) -> Lists {
        match (self, other) {
            (Lists::All, _) | (_, Lists::All) => Lists::All,
            (Lists::Named(a), Lists::Named(b)) => {
                let mut names = a.clone();
                for name in b {
                    if !names.iter().any(|n| same_list(n, name)) {
                        names.push(name.clone());
                    }
                }
                Lists::Named(names)
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Lists::All => "every list".to_string(),
            Lists::Named(names) if names.is_empty() => "no list".to_string(),
            Lists::Named(names) => names.join(", "),
        }
    }
}

/// One skill's board grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardGrants {
    read: Lists,
    write: Lists,
}

impl BoardGrants {
    /// Parses the manifest's `board_read` and `board_write` entries; `None`
    /// when both are empty (the skill may not use the board at all).
    pub fn parse(read: &[String], write: &[String]) -> Result<Option<Self>, String> {
        if read.is_empty() && write.is_empty() {
            return Ok(None);
        }
        let read = parse_lists("board_read", read)?;
        let write = parse_lists("board_write", write)?;
        Ok(Some(BoardGrants {
            read: read.union(&write),
            write,
        }))
    }

    /// Full access (the host's own calls and tests).
    pub fn all() -> Self {
        BoardGrants {
            read: Lists::All,
            write: Lists::All,
        }
    }

    /// The lists it may read.
    pub fn read(&self) -> &Lists {
        &self.read
    }

    /// Refuses reading `list` unless granted.
    pub fn check_read(&self, list: &str) -> Result<(), BoardError> {
        check(&self.read, list, "read", "board_read")
    }

    /// Refuses writing `list` unless granted.
    pub fn check_write(&self, list: &str) -> Result<(), BoardError> {
        check(&self.write, list, "write", "board_write")
    }
}

fn check(lists: &Lists, list: &str, what: &str, key: &str) -> Result<(), BoardError> {
    if lists.contains(list) {
        return Ok(());
    }
    Err(BoardError::Denied(format!(
        "this skill may not {what} the list `{}`: its manifest's `{key}` grants {}",
        list.trim(),
        lists.describe()
    )))
}

/// List names compare case-insensitively, as the board matches them.
fn same_list(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

fn parse_lists(key: &str, entries: &[String]) -> Result<Lists, String> {
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if entry == "*" {
            return Ok(Lists::All);
        }
        if entry.is_empty() || entry.chars().count() > 128 || entry.chars().any(char::is_control) {
            return Err(format!(
                "`{key}`: `{entry}` is not a list name (1 to 128 characters) or `*`"
            ));
        }
        if !names.iter().any(|n| same_list(n, entry)) {
            names.push(entry.to_string());
        }
    }
    Ok(Lists::Named(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_entries_means_no_grant() {
        assert_eq!(BoardGrants::parse(&[], &[]).unwrap(), None);
    }

    #[test]
    fn write_implies_read_and_names_are_case_insensitive() {
        let g = BoardGrants::parse(&strings(&["Blocked"]), &strings(&["backlog"]))
            .unwrap()
            .unwrap();
        g.check_read("blocked").unwrap();
        g.check_read("Backlog").unwrap();
        g.check_write(" BACKLOG ").unwrap();
        let e = g.check_write("Blocked").unwrap_err();
        assert!(matches!(e, BoardError::Denied(_)), "{e:?}");
        assert!(e.to_string().contains("board_write"), "{e}");
        assert!(e.to_string().ends_with("grants backlog"), "{e}");
        assert!(g.check_read("Done").is_err());
    }

    #[test]
    fn star_grants_every_list() {
        let g = BoardGrants::parse(&strings(&["*"]), &[]).unwrap().unwrap();
        g.check_read("Anything").unwrap();
        assert!(g.check_write("Anything").is_err());
        assert_eq!(g.read(), &Lists::All);
    }

    #[test]
    fn bad_entries_are_refused() {
        let e = BoardGrants::parse(&strings(&[" "]), &[]).unwrap_err();
        assert!(e.contains("board_read"), "{e}");
        let e = BoardGrants::parse(&[], &strings(&["a\nb"])).unwrap_err();
        assert!(e.contains("board_write"), "{e}");
    }
}
