//! The layering of the host's modules, held by a test: a module may use
//! only those below it, so the arrows run one way and a change in a low
//! layer never needs one above it.
//!
//! ```text
//! cli → server → api → factory → registry → workflow → capabilities → state
//!                                                                    → skill → runtime
//! ```
//!
//! `LAYERS` is the list, lowest first: a module may use only those before
//! it. The test reads every `crate::MODULE` path in the code (comments
//! aside) and fails with the file, the line and the rule it breaks.

/// The modules of the crate, lowest first: each may use only those before
/// it.
#[cfg(test)]
const LAYERS: &[&str] = &[
    "runtime",
    "state",
    "skill",
    "capabilities",
    "workflow",
    "registry",
    "factory",
    "api",
    "server",
    "cli",
];

#[cfg(test)]
mod tests {
    use super::LAYERS;
    use std::path::{Path, PathBuf};

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The `crate::NAME` paths of a line of code (after any `//` comment
    /// is cut off).
    fn uses(line: &str) -> Vec<&str> {
        let code = line.split("//").next().unwrap_or("");
        code.match_indices("crate::")
            .filter(|(at, _)| {
                // `darkfactory_crate::` or `$crate::` are not ours.
                !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$')
            })
            .map(|(at, m)| {
                let rest = &code[at + m.len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .collect()
    }

    #[test]
    fn every_module_uses_only_the_layers_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut broken = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (level, module) in LAYERS.iter().enumerate() {
            let allowed = &LAYERS[..level];
            let dir = src.join(module);
            let mut paths = Vec::new();
            if dir.is_dir() {
                files(&dir, &mut paths);
            }
            let single = src.join(format!("{module}.rs"));
            if single.is_file() {
                paths.push(single);
            }
            for path in paths {
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    for used in uses(line) {
                        seen.insert(*module);
                        if used != *module && !allowed.contains(&used) {
                            broken.push(format!(
                                "{}:{}: `{module}` uses `crate::{used}`, which is not below it \
                                 (it may use: {})",
                                path.strip_prefix(&src).unwrap().display(),
                                n + 1,
                                allowed.join(", ")
                            ));
                        }
                    }
                }
            }
        }
        assert!(broken.is_empty(), "{}", broken.join("\n"));
        // The test reads what it should: the big layers do use others.
        for module in ["capabilities", "registry", "api", "cli"] {
            assert!(seen.contains(module), "nothing read of `{module}`");
        }
    }

    #[test]
    fn every_module_of_the_crate_has_a_layer() {
        let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
            .unwrap();
        for line in lib.lines() {
            if let Some(module) = line
                .strip_prefix("pub mod ")
                .and_then(|m| m.strip_suffix(';'))
            {
                assert!(
                    LAYERS.contains(&module),
                    "`{module}` is not in `layering::LAYERS`: give it its place"
                );
            }
        }
    }

    #[test]
    fn a_use_is_found_in_code_not_in_comments() {
        assert_eq!(uses("use crate::registry::Registry;"), vec!["registry"]);
        assert_eq!(
            uses("    x(crate::skill::sha256_hex(b), crate::runtime::X)"),
            vec!["skill", "runtime"]
        );
        assert!(uses("//! the answers hyper writes itself (`crate::server`)").is_empty());
        assert!(uses("$crate::foo").is_empty());
    }
}
