//! Reading `darkfactory.toml`: every key checked against the list of keys,
//! its type and its value, each refusal pointing at `FILE:LINE:COLUMN`.
//! Nothing here knows the order flag > environment > file > default; it
//! turns the file into settings, and `super` decides which of them apply.

use super::keys::{url_has_password, Key, Kind, Secret, KEYS};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The largest configuration file or secret file read, in bytes.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A place in the file, 1-based, as an editor shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The file.
    pub file: PathBuf,
    /// Its line.
    pub line: usize,
    /// Its column, in characters.
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// One or more keys were refused; each names its place.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Refusal>),
}

/// One refused key or value.
#[derive(Debug)]
pub struct Refusal {
    /// Where.
    pub at: Position,
    /// What is wrong and how to put it right.
    pub message: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Where a setting's value comes from.
#[derive(Debug, Clone)]
pub(super) enum Value {
    /// Written in the file (relative paths already made absolute to the
    /// file's directory); several for a list.
    Literal(Vec<String>),
    /// A secret, read from where the file says when it is used.
    Secret(SecretSource),
}

/// Where the file says a secret is.
#[derive(Debug, Clone)]
pub(super) enum SecretSource {
    /// In this file (`KEY_file`).
    File(PathBuf),
    /// In this environment variable (`KEY_env`).
    Env(String),
}

/// One key of the file.
#[derive(Debug, Clone)]
pub(super) struct Setting {
    /// Which key.
    pub key: &'static Key,
    /// Its value.
    pub value: Value,
    /// Where it is written.
    pub at: Position,
}

/// The settings of a file, in the order of [`KEYS`].
#[derive(Debug, Default)]
pub(super) struct FileSettings {
    /// Its keys.
    pub settings: Vec<Setting>,
}

impl FileSettings {
    /// Reads and checks `path`; `check` judges each value written in it
    /// (the flag's own parser), and says why one is refused.
    pub(super) fn read(path: &Path, check: &Check<'_>) -> Result<Self, ConfigError> {
        use std::io::Read;
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::new();
        std::fs::File::open(path)
            .map_err(read)?
            .take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(read(std::io::Error::other(format!(
                "it is over {MAX_FILE_BYTES} bytes"
            ))));
        }
        Self::parse(path, &text, check)
    }

    /// Checks the text of a file named `path`.
    pub(super) fn parse(path: &Path, text: &str, check: &Check<'_>) -> Result<Self, ConfigError> {
        let mut reader = Reader {
            path,
            check,
            text,
            base: path.parent().filter(|p| !p.as_os_str().is_empty()),
            refusals: Vec::new(),
            settings: Vec::new(),
        };
        let (table, errors) = DeTable::parse_recoverable(text);
        if errors.is_empty() {
            reader.table(None, table.get_ref());
        }
        // Every syntax error, not only the first; the keys of a file that
        // does not parse are not judged.
        for err in errors {
            let span = err.span().unwrap_or(0..0);
            reader.refuse(span, err.message().trim_end().to_string());
        }
        if !reader.refusals.is_empty() {
            let mut refusals = reader.refusals;
            refusals.sort_by_key(|r| (r.at.line, r.at.column));
            return Err(ConfigError::Invalid(refusals));
        }
        let mut settings = reader.settings;
        settings.sort_by_key(|s| KEYS.iter().position(|k| std::ptr::eq(k, s.key)));
        Ok(FileSettings { settings })
    }
}

/// A judge of one value of a key: why it is refused, if it is.
pub(super) type Check<'a> = dyn Fn(&Key, &str) -> Result<(), String> + 'a;

/// The walk over the parsed file, gathering settings and refusals.
struct Reader<'a> {
    path: &'a Path,
    check: &'a Check<'a>,
    text: &'a str,
    base: Option<&'a Path>,
    refusals: Vec<Refusal>,
    settings: Vec<Setting>,
}

impl Reader<'_> {
    fn position(&self, span: Range<usize>) -> Position {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            file: self.path.to_path_buf(),
            line,
            // A byte-order mark is not a column.
            column: self.text[line_start..offset]
                .trim_start_matches('\u{feff}')
                .chars()
                .count()
                + 1,
        }
    }

    fn refuse(&mut self, span: Range<usize>, message: String) {
        let at = self.position(span);
        self.refusals.push(Refusal { at, message });
    }

    fn table(&mut self, section: Option<&'static str>, table: &DeTable<'_>) {
        // In the order they are written (the table itself sorts its keys).
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(name, _)| name.span().start);
        for (name, value) in entries {
            let span = name.span();
            let name = name.get_ref().as_ref();
            if section.is_none() {
                if let Some(&table_name) = super::keys::sections().iter().find(|s| **s == name) {
                    match value.get_ref() {
                        DeValue::Table(inner) => self.table(Some(table_name), inner),
                        other => self.refuse(
                            value.span(),
                            format!(
                                "`{name}` is a table ([{name}]), not {}",
                                article(other.type_str())
                            ),
                        ),
                    }
                    continue;
                }
            }
            self.key(section, name, span, value);
        }
    }

    fn key(
        &mut self,
        section: Option<&'static str>,
        name: &str,
        span: Range<usize>,
        value: &Spanned<DeValue<'_>>,
    ) {
        let in_section = |k: &&Key| k.section == section;
        let exact = KEYS.iter().filter(in_section).find(|k| k.name == name);
        let indirect = |suffix: &str| {
            name.strip_suffix(suffix).and_then(|base| {
                KEYS.iter()
                    .filter(in_section)
                    .find(|k| k.name == base && k.secret != Secret::No)
            })
        };
        let at = self.position(span.clone());
        if let Some(key) = exact {
            if key.secret == Secret::Yes {
                let dotted = key.dotted();
                return self.refuse(
                    span,
                    format!(
                        "`{dotted}` is a secret and is not written in the file: set \
                         `{name}_file = \"PATH\"` (a file holding it) or `{name}_env = \
                         \"VARIABLE\"` (an environment variable holding it)"
                    ),
                );
            }
            if key.secret == Secret::UrlPassword {
                if let DeValue::String(url) = value.get_ref() {
                    if url_has_password(url) {
                        return self.refuse(
                            value.span(),
                            format!(
                                "`{}` carries a password, which is not written in the file: \
                                 set `{name}_file = \"PATH\"` or `{name}_env = \"VARIABLE\"` \
                                 instead",
                                key.dotted()
                            ),
                        );
                    }
                }
            }
            if let Some(values) = self.literal(key, value) {
                let refused: Vec<String> = values
                    .iter()
                    .filter_map(|v| {
                        (self.check)(key, v)
                            .err()
                            .map(|why| format!("{v:?}: {why}"))
                    })
                    .collect();
                if refused.is_empty() {
                    self.push(key, Value::Literal(values), at);
                } else {
                    let message = format!("`{}` is refused: {}", key.dotted(), refused.join("; "));
                    self.refuse(value.span(), message);
                }
            }
        } else if let Some(key) = indirect("_file") {
            if let Some(path) = self.string(key, name, value) {
                let path = self.resolve(&path);
                self.push(key, Value::Secret(SecretSource::File(path)), at);
            }
        } else if let Some(key) = indirect("_env") {
            if let Some(variable) = self.string(key, name, value) {
                self.push(key, Value::Secret(SecretSource::Env(variable)), at);
            }
        } else {
            let table = section.map_or("at the top level".to_string(), |s| format!("in [{s}]"));
            let known = known_names(section);
            let hint = match closest(name, &known) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => String::new(),
            };
            self.refuse(
                span,
                format!(
                    "unknown key `{name}` {table}{hint} (the keys are listed in \
                     docs/configuration.md, or by `darkfactory config keys`)"
                ),
            );
        }
    }

    fn push(&mut self, key: &'static Key, value: Value, at: Position) {
        if let Some(earlier) = self.settings.iter().find(|s| std::ptr::eq(s.key, key)) {
            let message = format!(
                "`{}` is already set at {}; give it once",
                key.dotted(),
                earlier.at
            );
            self.refusals.push(Refusal { at, message });
            return;
        }
        self.settings.push(Setting { key, value, at });
    }

    /// A `KEY_file` / `KEY_env` value: a non-empty string.
    fn string(&mut self, key: &Key, name: &str, value: &Spanned<DeValue<'_>>) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() => Some(s.to_string()),
            other => {
                let what = match other {
                    DeValue::String(_) => "an empty string".to_string(),
                    other => article(other.type_str()),
                };
                let dotted = key.dotted();
                self.refuse(
                    value.span(),
                    format!("`{name}` (where `{dotted}` is read from) must be a non-empty string, not {what}"),
                );
                None
            }
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        match self.base {
            Some(base) if Path::new(path).is_relative() => base.join(path),
            _ => PathBuf::from(path),
        }
    }

    /// The value of a key written in the file, as the flag's arguments.
    fn literal(&mut self, key: &Key, value: &Spanned<DeValue<'_>>) -> Option<Vec<String>> {
        let text = match (key.kind, value.get_ref()) {
            (Kind::Text | Kind::Duration, DeValue::String(s)) => s.to_string(),
            (Kind::Path, DeValue::String(s)) => self.resolve(s).to_string_lossy().into_owned(),
            (Kind::Integer | Kind::Number, DeValue::Integer(i)) => {
                match i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => n.to_string(),
                    Err(_) => {
                        self.refuse(value.span(), format!("`{}` is too large", key.dotted()));
                        return None;
                    }
                }
            }
            (Kind::Number, DeValue::Float(f)) => f.as_str().replace('_', ""),
            (Kind::Bool, DeValue::Boolean(b)) => b.to_string(),
            (Kind::Sources | Kind::Strings, DeValue::Array(items)) => {
                let mut sources = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        // The flag splits its values at commas.
                        DeValue::String(s) if s.contains(',') => {
                            let message = format!(
                                "a{} of `{}` cannot contain a comma; {}",
                                if key.kind == Kind::Sources {
                                    " source"
                                } else {
                                    "n item"
                                },
                                key.dotted(),
                                if key.kind == Kind::Sources {
                                    "rename the path"
                                } else {
                                    "give it as an item of its own"
                                }
                            );
                            self.refuse(item.span(), message);
                            return None;
                        }
                        DeValue::String(s) if key.kind == Kind::Sources => {
                            sources.push(self.source(s))
                        }
                        DeValue::String(s) => sources.push(s.to_string()),
                        other => {
                            let message = format!(
                                "each of `{}` is a string, not {}",
                                key.dotted(),
                                article(other.type_str())
                            );
                            self.refuse(item.span(), message);
                            return None;
                        }
                    }
                }
                return Some(sources);
            }
            (kind, other) => {
                let message = format!(
                    "`{}` is {}, not {}",
                    key.dotted(),
                    kind.expected(),
                    article(other.type_str())
                );
                self.refuse(value.span(), message);
                return None;
            }
        };
        Some(vec![text])
    }

    /// An ingest source with its path made absolute to the file's directory.
    fn source(&self, text: &str) -> String {
        use crate::capabilities::memory::schedule::IngestSource;
        match IngestSource::parse(text) {
            Ok(source) if source.path.as_os_str() != text => {
                let path = self.resolve(&source.path.to_string_lossy());
                format!("{}={}", source.namespace, path.display())
            }
            Ok(source) => self
                .resolve(&source.path.to_string_lossy())
                .display()
                .to_string(),
            // Left as written: the flag's own parser refuses it, at this key.
            Err(_) => text.to_string(),
        }
    }
}

/// `a string`, `an integer`, `a table`, …
fn article(type_str: &str) -> String {
    let vowel = type_str.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {type_str}", if vowel { "an" } else { "a" })
}

/// The names a table accepts, for a suggestion.
fn known_names(section: Option<&str>) -> Vec<String> {
    let mut names = Vec::new();
    for key in KEYS.iter().filter(|k| k.section == section) {
        if key.secret != Secret::Yes {
            names.push(key.name.to_string());
        }
        if key.secret != Secret::No {
            names.push(format!("{}_file", key.name));
            names.push(format!("{}_env", key.name));
        }
    }
    if section.is_none() {
        names.extend(super::keys::sections().iter().map(|s| s.to_string()));
    }
    names
}

/// The known name nearest to a misspelt one, when it is near enough.
fn closest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.as_str())
}

/// Reads the secret of `setting`, named by the file at `setting.at`: a
/// file's content without its final line break, or an environment variable.
pub(super) fn read_secret(setting: &Setting, source: &SecretSource) -> Result<String, Refusal> {
    use std::io::Read;
    let refuse = |message: String| Refusal {
        at: setting.at.clone(),
        message,
    };
    let name = setting.key.dotted();
    let secret = match source {
        SecretSource::File(path) => {
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
                .map_err(|e| {
                    refuse(format!("cannot read `{name}` from {}: {e}", path.display()))
                })?;
            if text.len() as u64 > MAX_FILE_BYTES {
                return Err(refuse(format!(
                    "{} (`{name}`) is over {MAX_FILE_BYTES} bytes",
                    path.display()
                )));
            }
            let trimmed = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(&text);
            if trimmed.is_empty() {
                return Err(refuse(format!("{} (`{name}`) is empty", path.display())));
            }
            trimmed.to_string()
        }
        SecretSource::Env(variable) => match std::env::var(variable) {
            Ok(value) if !value.is_empty() => value,
            Ok(_) => {
                return Err(refuse(format!(
                    "`{name}` is read from ${variable}, which is empty"
                )))
            }
            Err(std::env::VarError::NotPresent) => {
                return Err(refuse(format!(
                    "`{name}` is read from ${variable}, which is not set"
                )))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(refuse(format!(
                    "`{name}` is read from ${variable}, which is not UTF-8"
                )))
            }
        },
    };
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_of(setting: &Setting) -> Result<String, Refusal> {
        match &setting.value {
            Value::Secret(source) => read_secret(setting, source),
            Value::Literal(v) => panic!("not a secret: {v:?}"),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<FileSettings, ConfigError> {
        FileSettings::parse(path, text, &|_, _| Ok(()))
    }

    fn refusals(text: &str) -> Vec<String> {
        match parse(Path::new("df.toml"), text) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(ConfigError::Invalid(r)) => r.iter().map(ToString::to_string).collect(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn unknown_keys_name_their_place() {
        let r = refusals("listen = \"127.0.0.1:1\"\n\n[http]\nmax_bdy = 5\n  colour = 1\n");
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(
            r[0].starts_with(
                "df.toml:4:1: unknown key `max_bdy` in [http]; did you mean `max_body`?"
            ),
            "{r:?}"
        );
        assert!(
            r[1].starts_with("df.toml:5:3: unknown key `colour` in [http]"),
            "{r:?}"
        );
        let r = refusals("[plank]\nurl = \"x\"\n");
        assert!(
            r[0].starts_with(
                "df.toml:1:2: unknown key `plank` at the top level; did you mean `planka`?"
            ),
            "{r:?}"
        );
    }

    #[test]
    fn types_are_checked_where_written() {
        let r = refusals("[http]\nmax_body = \"1M\"\nheader_timeout = 10\n");
        assert_eq!(
            r[0],
            "df.toml:2:12: `http.max_body` is an integer, not a string"
        );
        assert!(
            r[1].starts_with("df.toml:3:18: `http.header_timeout` is a duration"),
            "{r:?}"
        );
        let r = refusals("http = 3\n");
        assert_eq!(
            r[0],
            "df.toml:1:8: `http` is a table ([http]), not an integer"
        );
        let r = refusals("[ingest]\nsources = [\"logs/a,b.jsonl\"]\n");
        assert!(
            r[0].starts_with("df.toml:2:12: a source of `ingest.sources` cannot contain a comma"),
            "{r:?}"
        );
        let r = refusals("\u{feff}[http]\nmax_body = 1\nmax_body = 2\n[[http]]\n");
        assert!(
            r.len() >= 2 && r.iter().all(|r| r.starts_with("df.toml:")),
            "{r:?}"
        );
        let r = refusals("\u{feff}plank = 1\n");
        assert!(
            r[0].starts_with("df.toml:1:1: unknown key `plank`"),
            "{r:?}"
        );
        let r = refusals("[ingest]\nsources = [\"a\", 3]\n");
        assert!(
            r[0].starts_with("df.toml:2:17: each of `ingest.sources` is a string"),
            "{r:?}"
        );
    }

    #[test]
    fn syntax_errors_name_their_place() {
        let r = refusals("listen = \n");
        assert!(r[0].starts_with("df.toml:1:"), "{r:?}");
    }

    #[test]
    fn secrets_are_named_not_written() {
        let r = refusals("token = \"hunter2\"\n");
        assert!(
            r[0].starts_with("df.toml:1:1: `token` is a secret"),
            "{r:?}"
        );
        assert!(!r[0].contains("hunter2"));
        let r = refusals("[fleet]\nredis_url = \"redis://:pw@r:6379\"\n");
        assert!(r[0].contains("carries a password"), "{r:?}");
        let s = parse(
            Path::new("/etc/df/df.toml"),
            "token_file = \"token\"\n[planka]\napi_key_env = \"PK\"\n[fleet]\nredis_url = \"redis://r:6379\"\n",
        )
        .unwrap();
        let values: Vec<String> = s
            .settings
            .iter()
            .map(|s| format!("{}={:?}", s.key.dotted(), s.value))
            .collect();
        assert_eq!(
            values,
            [
                "token=Secret(File(\"/etc/df/token\"))",
                "planka.api_key=Secret(Env(\"PK\"))",
                "fleet.redis_url=Literal([\"redis://r:6379\"])",
            ]
        );
        let r = refusals("token_file = \"a\"\ntoken_env = \"B\"\n");
        assert_eq!(
            r[0],
            "df.toml:2:1: `token` is already set at df.toml:1:1; give it once"
        );
    }

    #[test]
    fn relative_paths_are_the_files_own() {
        let s = parse(
            Path::new("/srv/df/darkfactory.toml"),
            "skills = \"skills\"\ndata = \"/var/lib/df\"\n[ingest]\nsources = [\"agent:ops=logs/ops\", \"org.jsonl\"]\n",
        )
        .unwrap();
        let values: Vec<String> = s
            .settings
            .iter()
            .map(|s| format!("{:?}", s.value))
            .collect();
        assert_eq!(
            values,
            [
                "Literal([\"/srv/df/skills\"])",
                "Literal([\"/var/lib/df\"])",
                "Literal([\"agent:ops=/srv/df/logs/ops\", \"/srv/df/org.jsonl\"])",
            ]
        );
    }

    #[test]
    fn secrets_are_read_from_where_the_file_says() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        let file = dir.path().join("df.toml");
        let s = parse(&file, "token_file = \"t\"\nread_token_file = \"empty\"\n[qdrant]\napi_key_file = \"missing\"\n").unwrap();
        assert_eq!(secret_of(&s.settings[0]).unwrap(), "s3cret");
        let e = secret_of(&s.settings[1]).unwrap_err().to_string();
        assert!(e.ends_with("(`read_token`) is empty"), "{e}");
        let e = secret_of(&s.settings[2]).unwrap_err().to_string();
        assert!(e.contains(":4:1: cannot read `qdrant.api_key` from"), "{e}");
        let s = parse(&file, "token_env = \"DARKFACTORY_TEST_UNSET_VARIABLE\"\n").unwrap();
        let e = secret_of(&s.settings[0]).unwrap_err().to_string();
        assert!(
            e.ends_with("is read from $DARKFACTORY_TEST_UNSET_VARIABLE, which is not set"),
            "{e}"
        );
    }
}
