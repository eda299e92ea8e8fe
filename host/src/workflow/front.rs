//! The front matter: what the workflow is, when it runs, what it may use,
//! what input it takes, and its limits.
//!
//! TOML, read with spans so that every mistake (an unknown key, a wrong
//! type, a default that does not fit its field) is reported at its own line
//! and column, all of them at once. The capability keys are the manifest's
//! own (`board_read`, `fleet`, ...), so a workflow and a Rust skill are
//! granted the same way.

use super::diag::{did_you_mean, Diagnostic, Diagnostics, Span};
use super::markdown::Block;
use super::types::{parse_type, Record, Ty};
use std::sync::Arc;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The gap kinds the factory watches; `trigger = "gap: KIND"` names one.
pub const GAP_KINDS: [&str; 5] = [
    "cards-blocked",
    "agent-down",
    "memory-ingest-lag",
    "ci-not-green",
    "agent-cost",
];

/// When a workflow runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Only when invoked.
    Manual,
    /// On a schedule: five cron fields.
    Cron(String),
    /// When the factory detects a gap of this kind.
    Gap(String),
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Manual => f.write_str("manual"),
            Trigger::Cron(c) => write!(f, "cron: {c}"),
            Trigger::Gap(g) => write!(f, "gap: {g}"),
        }
    }
}

/// The capability grants the workflow asks for (the manifest's keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grants {
    pub memory_read: Vec<String>,
    pub memory_write: Vec<String>,
    pub board_read: Vec<String>,
    pub board_write: Vec<String>,
    /// `read` or `write`.
    pub fleet: Option<String>,
    /// KPI series the workflow may read.
    pub kpi_read: Vec<String>,
    /// Other skills the workflow may call.
    pub skills: Vec<String>,
    /// Where each key was written, for "declared but unused" warnings.
    pub spans: Vec<(String, Span)>,
}

/// One declared input field.
#[derive(Debug, Clone, PartialEq)]
pub struct InputField {
    pub name: String,
    pub ty: Ty,
    pub default: Option<serde_json::Value>,
    pub description: Option<String>,
}

/// The front matter, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub name: Option<(String, Span)>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub trigger: Trigger,
    pub grants: Grants,
    /// `None` when there is no `[input]` table: the input is then `json`.
    pub input: Option<Vec<InputField>>,
    pub deadline_ms: Option<u64>,
    pub memory_mib: Option<u64>,
}

impl Header {
    /// The type of `input` in the steps.
    pub fn input_type(&self) -> Ty {
        match &self.input {
            None => Ty::Json,
            Some(fields) => Ty::Record(Arc::new(Record {
                name: "input".to_string(),
                fields: fields
                    .iter()
                    .map(|f| {
                        let ty = if f.default.is_some() {
                            f.ty.required().clone()
                        } else {
                            f.ty.clone()
                        };
                        (f.name.clone(), ty)
                    })
                    .collect(),
            })),
        }
    }

    /// The JSON Schema the host checks every input against.
    pub fn input_schema(&self) -> Option<serde_json::Value> {
        let fields = self.input.as_ref()?;
        let mut schema = Ty::Record(Arc::new(Record {
            name: String::new(),
            fields: fields
                .iter()
                .map(|f| {
                    let ty = if f.default.is_some() {
                        f.ty.clone().optional()
                    } else {
                        f.ty.clone()
                    };
                    (f.name.clone(), ty)
                })
                .collect(),
        }))
        .schema();
        if let Some(props) = schema.get_mut("properties").and_then(|p| p.as_object_mut()) {
            for f in fields {
                if let (Some(d), Some(p)) = (&f.description, props.get_mut(&f.name)) {
                    p["description"] = serde_json::Value::String(d.clone());
                }
            }
        }
        schema["additionalProperties"] = serde_json::Value::Bool(false);
        Some(schema)
    }
}

const TOP_KEYS: [&str; 7] = [
    "name",
    "version",
    "description",
    "trigger",
    "capabilities",
    "input",
    "limits",
];
const GRANT_KEYS: [&str; 7] = [
    "memory_read",
    "memory_write",
    "board_read",
    "board_write",
    "fleet",
    "kpi_read",
    "skills",
];
const LIMIT_KEYS: [&str; 2] = ["deadline_ms", "memory_mib"];

/// Reads the front matter; problems go to `diags`, and what could be read is
/// returned so the steps are still checked.
pub fn parse(block: Option<&Block>, diags: &mut Diagnostics) -> Header {
    let mut header = Header {
        name: None,
        version: None,
        description: None,
        trigger: Trigger::Manual,
        grants: Grants::default(),
        input: None,
        deadline_ms: None,
        memory_mib: None,
    };
    let Some(block) = block else { return header };
    let (table, errors) = DeTable::parse_recoverable(&block.text);
    for e in errors {
        let span = block.span_of(e.span().unwrap_or(0..0));
        diags.push(Diagnostic::error(
            span,
            format!("front matter: {}", e.message().trim()),
        ));
    }
    let mut r = Reader { block, diags };
    let mut saw_description = false;
    for (key, value) in table.get_ref().iter() {
        let span = r.span(key);
        match &**key.get_ref() {
            "name" => {
                if let Some(name) = r.string(value, "name") {
                    if let Err(e) = crate::skill::SkillName::check(&name) {
                        r.error(
                            r.span(value),
                            format!("`{name}` is not a skill name: {e}"),
                            None,
                        );
                    }
                    header.name = Some((name, r.span(value)));
                }
            }
            "version" => header.version = r.string(value, "version"),
            "description" => {
                saw_description = true;
                header.description = r.string(value, "description");
            }
            "trigger" => {
                if let Some(text) = r.string(value, "trigger") {
                    header.trigger = r.trigger(&text, r.span(value));
                }
            }
            "capabilities" => header.grants = r.grants(value),
            "input" => header.input = Some(r.inputs(value)),
            "limits" => r.limits(value, &mut header),
            other => r.unknown(span, other, &TOP_KEYS, "front matter key"),
        }
    }
    if !saw_description {
        r.diags.push(
            Diagnostic::error(
                Span::new(block.first_line.saturating_sub(1), 1, 3),
                "the front matter has no `description`",
            )
            .expected("`description = \"what the workflow does\"`")
            .hint("one sentence a reviewer reads first; it becomes the skill's description"),
        );
    }
    header
}

struct Reader<'a> {
    block: &'a Block,
    diags: &'a mut Diagnostics,
}

impl Reader<'_> {
    fn span<T>(&self, s: &Spanned<T>) -> Span {
        self.block.span_of(s.span())
    }

    fn error(&mut self, span: Span, message: impl Into<String>, expected: Option<&str>) {
        let mut d = Diagnostic::error(span, message);
        if let Some(e) = expected {
            d = d.expected(e.to_string());
        }
        self.diags.push(d);
    }

    fn unknown(&mut self, span: Span, key: &str, known: &[&str], what: &str) {
        let mut d = Diagnostic::error(span, format!("unknown {what} `{key}`"))
            .expected(format!("one of {}", known.join(", ")));
        if let Some(m) = did_you_mean(key, known.iter().copied()) {
            d = d.hint(format!("did you mean `{m}`?"));
        }
        self.diags.push(d);
    }

    fn string(&mut self, value: &Spanned<DeValue>, what: &str) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.error(
                    self.span(value),
                    format!("`{what}` must be a string, not {}", other.type_str()),
                    Some("a quoted string"),
                );
                None
            }
        }
    }

    fn table<'v, 'i>(
        &mut self,
        value: &'v Spanned<DeValue<'i>>,
        what: &str,
    ) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.error(
                    self.span(value),
                    format!("`{what}` must be a table, not {}", other.type_str()),
                    Some(&format!("`[{what}]`")),
                );
                None
            }
        }
    }

    fn trigger(&mut self, text: &str, span: Span) -> Trigger {
        let text = text.trim();
        if text == "manual" {
            return Trigger::Manual;
        }
        if let Some(cron) = text.strip_prefix("cron:") {
            let cron = cron.trim();
            if let Err(e) = check_cron(cron) {
                self.diags.push(
                    Diagnostic::error(span, format!("bad cron expression `{cron}`: {e}"))
                        .expected("five fields: minute hour day-of-month month day-of-week")
                        .hint("for example `cron: 0 9 * * 1-5` (09:00 on weekdays)"),
                );
            }
            return Trigger::Cron(cron.to_string());
        }
        if let Some(kind) = text.strip_prefix("gap:") {
            let kind = kind.trim();
            if !GAP_KINDS.contains(&kind) {
                let mut d = Diagnostic::error(span, format!("unknown gap kind `{kind}`"))
                    .expected(format!("one of {}", GAP_KINDS.join(", ")));
                if let Some(m) = did_you_mean(kind, GAP_KINDS) {
                    d = d.hint(format!("did you mean `gap: {m}`?"));
                }
                self.diags.push(d);
            }
            return Trigger::Gap(kind.to_string());
        }
        self.diags.push(
            Diagnostic::error(span, format!("unknown trigger `{text}`"))
                .expected("`manual`, `cron: M H DOM MON DOW` or `gap: KIND`"),
        );
        Trigger::Manual
    }

    fn grants(&mut self, value: &Spanned<DeValue>) -> Grants {
        let mut grants = Grants::default();
        let Some(table) = self.table(value, "capabilities") else {
            return grants;
        };
        for (key, value) in table.iter() {
            let span = self.span(key);
            let name = &**key.get_ref();
            let list = |r: &mut Self| -> Vec<String> {
                match value.get_ref() {
                    DeValue::String(s) => vec![s.to_string()],
                    DeValue::Array(items) => {
                        items.iter().filter_map(|i| r.string(i, name)).collect()
                    }
                    other => {
                        r.error(
                            r.span(value),
                            format!("`{name}` must be a list of names, not {}", other.type_str()),
                            Some("`[\"Blocked\"]` or `\"*\"`"),
                        );
                        Vec::new()
                    }
                }
            };
            match name {
                "memory_read" => grants.memory_read = list(self),
                "memory_write" => grants.memory_write = list(self),
                "board_read" => grants.board_read = list(self),
                "board_write" => grants.board_write = list(self),
                "kpi_read" => grants.kpi_read = list(self),
                "skills" => grants.skills = list(self),
                "fleet" => {
                    if let Some(level) = self.string(value, "fleet") {
                        if level != "read" && level != "write" {
                            self.error(
                                self.span(value),
                                format!("`fleet` must be \"read\" or \"write\", not {level:?}"),
                                Some("\"read\" or \"write\""),
                            );
                        }
                        grants.fleet = Some(level);
                    }
                }
                other => {
                    self.unknown(span, other, &GRANT_KEYS, "capability");
                    continue;
                }
            }
            grants.spans.push((name.to_string(), span));
        }
        grants
    }

    fn inputs(&mut self, value: &Spanned<DeValue>) -> Vec<InputField> {
        let mut fields = Vec::new();
        let Some(table) = self.table(value, "input") else {
            return fields;
        };
        for (key, value) in table.iter() {
            let span = self.span(key);
            let name = key.get_ref().to_string();
            if !is_identifier(&name) {
                self.error(
                    span,
                    format!("input field `{name}` is not a name the steps can use"),
                    Some("lower-case letters, digits and `_`, starting with a letter"),
                );
            }
            let (ty_value, default, description) = match value.get_ref() {
                DeValue::String(_) => (Some(value), None, None),
                DeValue::Table(t) => {
                    let mut ty = None;
                    let mut default = None;
                    let mut description = None;
                    for (k, v) in t.iter() {
                        match &**k.get_ref() {
                            "type" => ty = Some(v),
                            "default" => default = Some(v),
                            "description" => description = self.string(v, "description"),
                            other => self.unknown(
                                self.span(k),
                                other,
                                &["type", "default", "description"],
                                "input property",
                            ),
                        }
                    }
                    if ty.is_none() {
                        self.error(
                            self.span(value),
                            format!("input field `{name}` has no type"),
                            Some("`type = \"string\"` (or int, float, bool, json, list<T>)"),
                        );
                    }
                    (ty, default, description)
                }
                other => {
                    self.error(
                        self.span(value),
                        format!(
                            "input field `{name}` must be a type or a table, not {}",
                            other.type_str()
                        ),
                        Some("`\"int\"` or `{ type = \"int\", default = 48 }`"),
                    );
                    (None, None, None)
                }
            };
            let ty = match ty_value.and_then(|v| self.string(v, "type").map(|t| (t, v))) {
                Some((text, v)) => match parse_type(&text) {
                    Ok(ty) => ty,
                    Err(e) => {
                        self.error(self.span(v), e, None);
                        Ty::Json
                    }
                },
                None => Ty::Json,
            };
            let default = default.and_then(|d| {
                let json = self.json(d)?;
                let actual = type_of_json(&json);
                if let Err(e) = actual.assignable_to(&ty) {
                    self.error(
                        self.span(d),
                        format!("the default of `{name}` does not fit its type {ty}: {e}"),
                        Some(&format!("a {ty}")),
                    );
                }
                Some(json)
            });
            fields.push(InputField {
                name,
                ty,
                default,
                description,
            });
        }
        fields
    }

    fn limits(&mut self, value: &Spanned<DeValue>, header: &mut Header) {
        let Some(table) = self.table(value, "limits") else {
            return;
        };
        for (key, value) in table.iter() {
            let name = &**key.get_ref();
            let number = match value.get_ref() {
                DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                    .ok()
                    .filter(|n| *n > 0),
                _ => None,
            };
            match name {
                "deadline_ms" | "memory_mib" if number.is_none() => {
                    self.error(
                        self.span(value),
                        format!("`{name}` must be a positive integer"),
                        Some("for example `deadline_ms = 5000`"),
                    );
                }
                "deadline_ms" => header.deadline_ms = number,
                "memory_mib" => header.memory_mib = number,
                other => self.unknown(self.span(key), other, &LIMIT_KEYS, "limit"),
            }
        }
    }

    /// A TOML value as JSON; datetimes become strings.
    fn json(&mut self, value: &Spanned<DeValue>) -> Option<serde_json::Value> {
        match toml_to_json(value.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(self.span(value), e, None);
                None
            }
        }
    }
}

/// A TOML value as JSON (datetimes become strings).
pub fn toml_to_json(value: &DeValue) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => Value::from(
            i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| format!("{} does not fit a 64-bit integer", i.as_str()))?,
        ),
        DeValue::Float(f) => {
            let x: f64 = f
                .as_str()
                .parse()
                .map_err(|_| format!("{} is not a number", f.as_str()))?;
            Value::Number(
                serde_json::Number::from_f64(x).ok_or("infinite and NaN floats are not JSON")?,
            )
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| toml_to_json(i.get_ref()))
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), toml_to_json(v.get_ref())?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}

/// The type of a JSON value, as precisely as it shows.
pub fn type_of_json(v: &serde_json::Value) -> Ty {
    use serde_json::Value;
    match v {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Bool,
        Value::Number(n) if n.is_f64() => Ty::Float,
        Value::Number(_) => Ty::Int,
        Value::String(_) => Ty::Str,
        Value::Array(items) => Ty::List(Box::new(
            items
                .iter()
                .map(type_of_json)
                .reduce(|a, b| a.join(&b))
                .unwrap_or(Ty::Json),
        )),
        Value::Object(map) => Ty::Record(Arc::new(Record {
            name: String::new(),
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), type_of_json(v)))
                .collect(),
        })),
    }
}

/// A name the steps can use: `[a-z_][a-z0-9_]*`.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Checks the five fields of a cron expression.
fn check_cron(expr: &str) -> Result<(), String> {
    super::cron::Cron::parse(expr).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Header, Vec<(u32, u32, String)>) {
        let mut diags = Diagnostics::default();
        let block = Block {
            text: text.to_string(),
            first_line: 2,
        };
        let header = parse(Some(&block), &mut diags);
        let found = diags
            .0
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect();
        (header, found)
    }

    #[test]
    fn a_full_front_matter() {
        let (h, errors) = read(
            "name = \"esc\"\ndescription = \"d\"\ntrigger = \"gap: cards-blocked\"\n[capabilities]\nboard_read = [\"Blocked\"]\nfleet = \"read\"\n[input]\nhours = { type = \"int\", default = 48 }\nnote = \"string?\"\n[limits]\ndeadline_ms = 2000\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(h.trigger, Trigger::Gap("cards-blocked".into()));
        assert_eq!(h.grants.board_read, vec!["Blocked"]);
        assert_eq!(h.deadline_ms, Some(2000));
        let input = h.input.as_ref().unwrap();
        assert_eq!(input[0].default, Some(serde_json::json!(48)));
        assert_eq!(h.input_type().to_string(), "input");
        let schema = h.input_schema().unwrap();
        assert_eq!(schema["required"], serde_json::json!([]));
    }

    #[test]
    fn every_mistake_at_its_place() {
        let (_, errors) = read(
            "name = \"Esc\"\ntrigger = \"gap: card-blocked\"\n[capabilities]\nbord_read = [\"x\"]\n[input]\nhours = { type = \"int\", default = \"48\" }\nn = \"integer\"\n[limits]\ndeadline = 3\n",
        );
        let mut errors = errors;
        errors.sort();
        let lines: Vec<(u32, u32)> = errors.iter().map(|(l, c, _)| (*l, *c)).collect();
        assert_eq!(
            lines,
            vec![(1, 1), (2, 8), (3, 11), (5, 1), (7, 35), (8, 5), (10, 1)],
            "{errors:?}"
        );
        assert!(errors[2].2.contains("unknown gap kind `card-blocked`"));
        assert!(errors[3].2.contains("unknown capability `bord_read`"));
    }

    #[test]
    fn cron_fields() {
        assert!(check_cron("0 9 * * 1-5").is_ok());
        assert!(check_cron("*/15 * * * *").is_ok());
        assert!(check_cron("60 * * * *").unwrap_err().contains("minute"));
        assert!(check_cron("* * *").is_err());
    }
}
