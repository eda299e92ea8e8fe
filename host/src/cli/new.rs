//! `darkfactory new NAME [--lang rust|python|js]`: a ready skill project in
//! a new directory, anywhere.
//!
//! A skill author outside this repository needs what the repository gives
//! its own skills: for Rust a pinned toolchain with the `wasm32-wasip2`
//! target, a crate that is its own workspace, the SDK as a dependency, a
//! release profile tuned for the host, the small-stack `build.rs` and a
//! test; for Python and JavaScript the WIT the host serves (the host's own
//! copy, so it always matches) and a manifest to embed. The templates live
//! in `host/templates/` (the Rust manifest as `Cargo.toml.in`, so that cargo
//! never takes it for a package); the steps that build each are in
//! docs/skills.md.

use crate::workflow::wit::WIT_FILES;
use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// Options of `new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The skill's name (lowercase letters, digits and `-`): the directory
    /// made, and the name it serves as.
    name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// For Rust: the SDK as a path dependency (a checkout's `guest-sdk`)
    /// instead of the git repository.
    #[arg(long, env = "DARKFACTORY_SDK")]
    sdk: Option<PathBuf>,
    /// Where to make the project's directory.
    #[arg(long, default_value = ".")]
    into: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Lang {
    Rust,
    Python,
    Js,
}

/// Where the SDK is, when no `--sdk` is given.
const SDK_GIT: &str = "https://github.com/darkfactory/darkfactory";

/// The toolchain the SDK builds with (the repository's own pin).
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// The WASI 0.2 packages a Python skill's world builds against for
/// outgoing HTTP (the versions this host's wasmtime serves).
const WASI_FILES: [(&str, &str); 7] = [
    ("cli.wit", include_str!("../../../wit/wasi/cli.wit")),
    ("clocks.wit", include_str!("../../../wit/wasi/clocks.wit")),
    (
        "filesystem.wit",
        include_str!("../../../wit/wasi/filesystem.wit"),
    ),
    ("http.wit", include_str!("../../../wit/wasi/http.wit")),
    ("io.wit", include_str!("../../../wit/wasi/io.wit")),
    ("random.wit", include_str!("../../../wit/wasi/random.wit")),
    ("sockets.wit", include_str!("../../../wit/wasi/sockets.wit")),
];

/// A Python skill's world: `skill`, and outgoing HTTP (componentize-py
/// has no `fetch` of its own). JavaScript builds for `skill` itself: its
/// runtime brings `wasi:http` for `fetch`.
const PYTHON_WORLD: &str = "package local:skill;

/// The `darkfactory:skill` world with outgoing HTTP: the skill's calls of
/// it are allowed by its manifest's `allowed_outbound_hosts`.
world skill {
    include darkfactory:skill/skill@0.1.0;
    import wasi:http/outgoing-handler@0.2.12;
}
";

pub(super) fn run(args: NewArgs) -> anyhow::Result<()> {
    crate::skill::SkillName::check(&args.name)
        .map_err(|e| anyhow::anyhow!("`{}` is not a skill name: {e}", args.name))?;
    let dir = args.into.join(&args.name);
    if dir.exists() {
        bail!(
            "`{}` already exists; pick another name or directory",
            dir.display()
        );
    }
    let files = match args.lang {
        Lang::Rust => rust_files(&args)?,
        Lang::Python => python_files(&args.name),
        Lang::Js => js_files(&args.name),
    };
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, text)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    println!("created `{}` ({} files)", dir.display(), files.len());
    let steps = match args.lang {
        Lang::Rust => format!(
            "cd {0}\ncargo test\ncargo build --release --target wasm32-wasip2\n\
             darkfactory deploy target/wasm32-wasip2/release/{1}.wasm --name {0}",
            args.name,
            args.name.replace('-', "_")
        ),
        Lang::Python => format!(
            "cd {0}\ncomponentize-py -d wit -w skill componentize app -o {0}.wasm\n\
             darkfactory manifest embed {0}.wasm --from {0}.toml -o {0}.wasm\n\
             darkfactory deploy {0}.wasm",
            args.name
        ),
        Lang::Js => format!(
            "cd {0}\nnpm install\nnpm run build\ndarkfactory deploy {0}.wasm",
            args.name
        ),
    };
    println!("next:\n{}", indent(&steps));
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn fill(template: &str, name: &str) -> String {
    template
        .replace("{{name}}", name)
        .replace("{{crate}}", &name.replace('-', "_"))
}

fn rust_files(args: &NewArgs) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let sdk = match &args.sdk {
        Some(path) => {
            let path = std::fs::canonicalize(path)
                .with_context(|| format!("--sdk: cannot find `{}`", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!(
                    "--sdk: `{}` has no Cargo.toml (give the checkout's `guest-sdk`)",
                    path.display()
                );
            }
            let path = toml::Value::String(path.display().to_string());
            format!("darkfactory-sdk = {{ path = {path} }}")
        }
        None => format!("darkfactory-sdk = {{ git = \"{SDK_GIT}\" }}"),
    };
    let channel = TOOLCHAIN
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("the host's rust-toolchain.toml has no channel")?;
    let files = [
        (
            "Cargo.toml",
            include_str!("../../templates/rust/Cargo.toml.in"),
        ),
        (
            "rust-toolchain.toml",
            include_str!("../../templates/rust/rust-toolchain.toml"),
        ),
        ("build.rs", include_str!("../../templates/rust/build.rs")),
        (
            "src/lib.rs",
            include_str!("../../templates/rust/src/lib.rs"),
        ),
    ];
    Ok(files
        .into_iter()
        .map(|(path, text)| {
            let text = fill(text, &args.name)
                .replace("{{sdk}}", &sdk)
                .replace("{{toolchain}}", &channel);
            (PathBuf::from(path), text)
        })
        .chain([(PathBuf::from(".gitignore"), "/target\n".to_string())])
        .collect())
}

/// `darkfactory:skill`'s WIT under `dir`.
fn skill_wit(dir: &Path) -> impl Iterator<Item = (PathBuf, String)> + '_ {
    WIT_FILES
        .iter()
        .map(move |(file, text)| (dir.join(file), text.to_string()))
}

fn python_files(name: &str) -> Vec<(PathBuf, String)> {
    let mut files = vec![
        (
            PathBuf::from("app.py"),
            fill(include_str!("../../templates/python/app.py"), name),
        ),
        (
            PathBuf::from(format!("{name}.toml")),
            fill(include_str!("../../templates/python/skill.toml"), name),
        ),
        (PathBuf::from("wit/world.wit"), PYTHON_WORLD.to_string()),
        (PathBuf::from(".gitignore"), "*.wasm\n".to_string()),
    ];
    files.extend(skill_wit(Path::new("wit/deps/darkfactory-skill")));
    files.extend(
        WASI_FILES
            .iter()
            .map(|(file, text)| (Path::new("wit/deps").join(file), text.to_string())),
    );
    files
}

fn js_files(name: &str) -> Vec<(PathBuf, String)> {
    let mut files = vec![
        (
            PathBuf::from("app.js"),
            fill(include_str!("../../templates/js/app.js"), name),
        ),
        (
            PathBuf::from(format!("{name}.toml")),
            fill(include_str!("../../templates/js/skill.toml"), name),
        ),
        (
            PathBuf::from("package.json"),
            fill(include_str!("../../templates/js/package.json"), name),
        ),
        (
            PathBuf::from(".gitignore"),
            "*.wasm\nnode_modules/\n".to_string(),
        ),
    ];
    files.extend(skill_wit(Path::new("wit")));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_projects_wit_parses_with_outgoing_http_in_its_world() {
        // Written out as `new` writes it, and read as componentize-py reads
        // it: the project's `wit/` with its `deps/`.
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in python_files("x") {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let mut resolve = wit_parser::Resolve::default();
        let (local, _) = resolve.push_dir(dir.path().join("wit")).unwrap();
        let world = resolve.select_world(&[local], Some("skill")).unwrap();
        let imports: Vec<String> = resolve.worlds[world]
            .imports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect();
        assert!(
            imports
                .iter()
                .any(|i| i == "wasi:http/outgoing-handler@0.2.12"),
            "{imports:?}"
        );
        assert!(
            imports
                .iter()
                .any(|i| i == "darkfactory:skill/memory@0.1.0"),
            "{imports:?}"
        );
    }

    #[test]
    fn names_are_checked_and_templates_filled() {
        let files = js_files("word-count");
        let package = &files
            .iter()
            .find(|(p, _)| p.ends_with("package.json"))
            .unwrap()
            .1;
        assert!(package.contains("\"name\": \"word-count\"") && !package.contains("{{"));
        assert!(files.iter().any(|(p, _)| p.ends_with("word-count.toml")));
    }
}
