//! `darkfactory.toml`: the host's configuration in one file, and the
//! `config` command that checks it and shows what `serve` would run with.
//!
//! Each flag of `serve` is a key of the file (see [`keys`]). The order is
//! flag > environment > file > default: the command line is parsed first,
//! then each key of the file whose flag was neither given nor set in the
//! environment is added to it, checked by the flag's own parser but refused
//! at the file's line and column. Secrets are named by the file
//! (`token_file`, `token_env`) and read from where it says.

mod file;
mod keys;

pub use file::{ConfigError, Position, Refusal};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, Subcommand};
use file::{FileSettings, SecretSource, Setting, Value};
use keys::{Key, Kind, Secret, KEYS};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The file `serve` reads when no `--config` names one.
pub const DEFAULT_FILE: &str = "darkfactory.toml";

/// `darkfactory config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ConfigAction,
}

/// The `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check the configuration (file, environment, these flags) as `serve`
    /// would, without starting a host; exits non-zero when `serve` would
    /// refuse it, with every refusal of the file.
    Check(Box<super::serve::ServeArgs>),
    /// Print the configuration `serve` would run with, each key with where
    /// its value comes from; secrets are masked.
    Show(Box<super::serve::ServeArgs>),
    /// Print every key of the file: its flag, environment variable and default.
    Keys,
}

/// Where each key's value came from, kept for `config show`.
#[derive(Debug, Default, Clone)]
pub struct Origins {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Each key, in the order of the keys: its value as TOML (masked when
    /// secret), or `None` when unset, and where it came from.
    keys: Vec<(&'static Key, Option<String>, String)>,
}

/// The file named by `--config` (or `DARKFACTORY_CONFIG`), else
/// `./darkfactory.toml` when there is one.
fn config_path(matches: &ArgMatches) -> Option<PathBuf> {
    if let Some(path) = matches.get_one::<PathBuf>("config") {
        return Some(path.clone());
    }
    Path::new(DEFAULT_FILE)
        .is_file()
        .then(|| PathBuf::from(DEFAULT_FILE))
}

/// What the file adds to a command line.
pub(super) struct Layer {
    /// `--flag=value` arguments for the keys of the file that apply.
    pub args: Vec<OsString>,
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// The keys set by the file, by flag id: where each was written, and
    /// where a secret was read from.
    from_file: Vec<(&'static str, String)>,
}

/// Reads the file of `serve` (or `config check|show`) and returns the
/// arguments its keys add: only keys whose flag the command line and the
/// environment left at its default.
pub(super) fn layer(command: &clap::Command, matches: &ArgMatches) -> Result<Layer, ConfigError> {
    let Some(path) = config_path(matches) else {
        return Ok(Layer {
            args: Vec::new(),
            file: None,
            from_file: Vec::new(),
        });
    };
    let settings = FileSettings::read(&path, &|key, value| check_value(flag(command, key), value))?;
    let mut refusals = Vec::new();
    let mut args = Vec::new();
    let mut from_file = Vec::new();
    for setting in &settings.settings {
        let key = setting.key;
        let arg = flag(command, key);
        // An empty variable (`DARKFACTORY_TOKEN=` from an unset compose
        // variable) does not override the file: the file's value, added as
        // a flag, wins over it.
        let overridden = match matches.value_source(key.arg) {
            Some(ValueSource::CommandLine) => true,
            Some(ValueSource::EnvVariable) => arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|v| !v.is_empty()),
            _ => false,
        };
        if overridden {
            continue;
        }
        let long = arg.get_long().expect("every key's flag is a long flag");
        let values = match &setting.value {
            // Checked by the flag's parser as the file was read.
            Value::Literal(values) => values.clone(),
            Value::Secret(source) => match file::read_secret(setting, source) {
                Ok(secret) => match check_value(arg, &secret) {
                    Ok(()) => vec![secret],
                    Err(why) => {
                        refusals.push(Refusal {
                            at: setting.at.clone(),
                            message: format!("`{}` is refused: {why}", key.dotted()),
                        });
                        continue;
                    }
                },
                Err(refusal) => {
                    refusals.push(refusal);
                    continue;
                }
            },
        };
        if key.kind == Kind::Bool {
            if values == ["true"] {
                args.push(OsString::from(format!("--{long}")));
            }
        } else {
            args.extend(
                values
                    .iter()
                    .map(|v| OsString::from(format!("--{long}={v}"))),
            );
        }
        from_file.push((key.arg, describe_file_origin(setting)));
    }
    if !refusals.is_empty() {
        return Err(ConfigError::Invalid(refusals));
    }
    Ok(Layer {
        args,
        file: Some(path),
        from_file,
    })
}

/// The flag of a key.
fn flag<'c>(command: &'c clap::Command, key: &Key) -> &'c clap::Arg {
    command
        .get_arguments()
        .find(|a| a.get_id() == key.arg)
        .unwrap_or_else(|| panic!("no flag `{}` for key `{}`", key.arg, key.dotted()))
}

/// A value of the file checked by the flag's own parser (on a command of
/// that flag alone, so that only the value is judged).
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    let id = arg.get_id().clone();
    let flag = format!("--{id}={value}");
    let alone = clap::Command::new("darkfactory.toml").arg(
        clap::Arg::new(id.clone())
            .long(id)
            .action(clap::ArgAction::Set)
            .value_parser(arg.get_value_parser().clone()),
    );
    match alone.try_get_matches_from([OsString::from("darkfactory.toml"), flag.into()]) {
        Ok(_) => Ok(()),
        Err(err) => Err(match std::error::Error::source(&err) {
            Some(inner) => inner.to_string(),
            None => err
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_string(),
        }),
    }
}

fn describe_file_origin(setting: &Setting) -> String {
    match &setting.value {
        Value::Literal(_) => setting.at.to_string(),
        Value::Secret(SecretSource::File(path)) => {
            format!("file {} (named at {})", path.display(), setting.at)
        }
        Value::Secret(SecretSource::Env(variable)) => {
            format!("${variable} (named at {})", setting.at)
        }
    }
}

impl Layer {
    /// Where each key's value came from, once the command line with the
    /// file's arguments is parsed.
    pub(super) fn origins(&self, command: &clap::Command, matches: &ArgMatches) -> Origins {
        let mut keys = Vec::new();
        for key in KEYS {
            let arg = flag(command, key);
            let origin = match self.from_file.iter().find(|(id, _)| *id == key.arg) {
                Some((_, origin)) => origin.clone(),
                None => match matches.value_source(key.arg) {
                    Some(ValueSource::CommandLine) => {
                        format!("flag --{}", arg.get_long().unwrap_or(key.arg))
                    }
                    Some(ValueSource::EnvVariable) => format!(
                        "${}",
                        arg.get_env()
                            .map(OsStr::to_string_lossy)
                            .unwrap_or_default()
                    ),
                    Some(ValueSource::DefaultValue) => "default".to_string(),
                    _ => "not set".to_string(),
                },
            };
            let raw: Option<Vec<String>> = matches
                .get_raw(key.arg)
                .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect());
            let value = raw.filter(|v| !v.is_empty()).map(|v| render(key, &v));
            keys.push((key, value, origin));
        }
        Origins {
            file: self.file.clone(),
            keys,
        }
    }
}

/// A value as TOML, secrets masked.
fn render(key: &Key, values: &[String]) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    match (key.secret, key.kind) {
        (Secret::Yes, _) => quote("********"),
        (Secret::UrlPassword, _) => quote(&keys::url_without_password(&values.concat())),
        (_, Kind::Integer | Kind::Number | Kind::Bool) => values.concat(),
        (_, Kind::Sources | Kind::Strings) => format!(
            "[{}]",
            values
                .iter()
                .map(|v| quote(v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => quote(&values.concat()),
    }
}

impl Origins {
    /// The configuration as a TOML file with each key's origin beside it.
    pub fn show(&self) -> String {
        let mut out = String::new();
        match &self.file {
            Some(path) => out.push_str(&format!(
                "# The configuration `darkfactory serve` runs with; file: {}\n",
                path.display()
            )),
            None => out.push_str(
                "# The configuration `darkfactory serve` runs with; no file (no --config, no ./darkfactory.toml)\n",
            ),
        }
        let mut section = None;
        for (key, value, origin) in &self.keys {
            if key.section != section {
                section = key.section;
                out.push_str(&format!("\n[{}]\n", section.unwrap_or_default()));
            }
            let line = match value {
                Some(value) => format!("{} = {value}", key.name),
                None => format!("# {} =", key.name),
            };
            out.push_str(&format!("{line:<44} # {origin}\n"));
        }
        out
    }
}

/// Runs `config check|show|keys`.
pub(super) fn run(args: ConfigArgs) -> anyhow::Result<()> {
    match args.action {
        ConfigAction::Check(serve) => {
            let file = serve.origins.file.clone();
            super::serve::checked_config(*serve)?;
            match file {
                Some(file) => println!("ok: {} and the environment", file.display()),
                None => println!("ok: the environment and defaults (no configuration file)"),
            }
            Ok(())
        }
        ConfigAction::Show(serve) => {
            print!("{}", serve.origins.show());
            Ok(())
        }
        ConfigAction::Keys => {
            print!("{}", keys_markdown());
            Ok(())
        }
    }
}

/// Every key as a Markdown table: key, flag, environment, default, meaning.
pub fn keys_markdown() -> String {
    use clap::CommandFactory;
    let cli = super::Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve is a subcommand");
    let mut out = String::from(
        "| key | flag | environment | default | what it sets |\n|---|---|---|---|---|\n",
    );
    for key in KEYS {
        let arg = flag(serve, key);
        let dotted = key.dotted();
        let name = match key.secret {
            Secret::No => format!("`{dotted}`"),
            Secret::Yes => format!("`{dotted}_file`, `{dotted}_env`"),
            Secret::UrlPassword => format!("`{dotted}`, `{dotted}_file`, `{dotted}_env`"),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !(key.kind == Kind::Bool && v == "false"))
            .collect();
        let default = if defaults.is_empty() {
            "none".to_string()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg
            .get_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!(
            "| {name} | `--{}` | `{}` | {default} | {help} |\n",
            arg.get_long().unwrap_or_default(),
            arg.get_env()
                .map(OsStr::to_string_lossy)
                .unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A key for every flag of `serve` but `--config` and the hidden ones
    /// (tests' own), and a flag for every key.
    #[test]
    fn every_flag_of_serve_is_a_key() {
        let cli = super::super::Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        for arg in serve.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "config" || arg.get_long().is_none() || id == "help" || arg.is_hide_set() {
                continue;
            }
            assert!(
                KEYS.iter().any(|k| k.arg == id),
                "--{} has no key in darkfactory.toml (cli/config/keys.rs)",
                arg.get_long().unwrap()
            );
            let is_bool = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            let key = KEYS.iter().find(|k| k.arg == id).unwrap();
            assert_eq!(is_bool, key.kind == Kind::Bool, "{id}");
            assert_eq!(
                arg.is_hide_env_values_set(),
                key.secret != Secret::No,
                "--{} hides its value in --help but its key is not a secret, or the reverse",
                arg.get_long().unwrap()
            );
        }
        for key in KEYS {
            flag(serve, key);
        }
    }

    /// docs/configuration.md lists every key as `config keys` prints them.
    #[test]
    fn the_docs_list_every_key() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (start, end) = (
            "<!-- keys: generated by `darkfactory config keys` -->\n",
            "<!-- /keys -->",
        );
        let from = doc.find(start).expect("the keys' start marker") + start.len();
        let to = doc[from..].find(end).expect("the keys' end marker") + from;
        assert_eq!(
            &doc[from..to],
            keys_markdown(),
            "docs/configuration.md is not what `darkfactory config keys` prints; paste its output between the markers"
        );
    }

    /// The example file of docs/configuration.md is one the host accepts.
    #[test]
    fn the_docs_example_file_is_accepted() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let start = doc.find("```toml\n").expect("an example file") + 8;
        let end = doc[start..].find("```").unwrap() + start;
        let settings = FileSettings::parse(
            Path::new("darkfactory.toml"),
            &doc[start..end],
            &|key, value| {
                let cli = super::super::Cli::command();
                check_value(flag(cli.find_subcommand("serve").unwrap(), key), value)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(settings.settings.len() > 5);
    }
}
