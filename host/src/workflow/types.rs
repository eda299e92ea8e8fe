//! The types a workflow's values have, as the checker sees them.
//!
//! Values are JSON at run time; these types are what the checker knows of
//! them ahead of time: from literals, from the declared input, and from the
//! WIT signatures of the capabilities. `json` is the escape hatch for what
//! only the run knows (another skill's output, an undeclared input); it is
//! accepted anywhere and checked when the program runs.

use std::fmt;
use std::sync::Arc;

/// A type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    /// Anything: known only when the program runs.
    Json,
    /// `null` itself.
    Null,
    Bool,
    Int,
    Float,
    Str,
    /// A list of one type.
    List(Box<Ty>),
    /// An object whose keys are not known ahead, values of one type (WIT
    /// `list<tuple<string, string>>` is an object of strings).
    Map(Box<Ty>),
    /// An object with known fields: a WIT record, an object literal, the
    /// declared input.
    Record(Arc<Record>),
    /// The type, or `null`.
    Optional(Box<Ty>),
}

/// A record's name (empty for an object literal) and fields, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: String,
    pub fields: Vec<(String, Ty)>,
}

impl Record {
    /// The type of field `name`.
    pub fn field(&self, name: &str) -> Option<&Ty> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Json => f.write_str("json"),
            Ty::Null => f.write_str("null"),
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Float => f.write_str("float"),
            Ty::Str => f.write_str("string"),
            Ty::List(t) => write!(f, "list<{t}>"),
            Ty::Map(t) => write!(f, "map<{t}>"),
            Ty::Record(r) if !r.name.is_empty() => f.write_str(&r.name),
            Ty::Record(r) => {
                f.write_str("{ ")?;
                for (i, (name, ty)) in r.fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}: {ty}")?;
                }
                f.write_str(" }")
            }
            Ty::Optional(t) => write!(f, "{t}?"),
        }
    }
}

impl Ty {
    /// `t?`, without doubling.
    pub fn optional(self) -> Ty {
        match self {
            Ty::Optional(_) | Ty::Json | Ty::Null => self,
            t => Ty::Optional(Box::new(t)),
        }
    }

    /// The type without its `?`.
    pub fn required(&self) -> &Ty {
        match self {
            Ty::Optional(t) => t,
            t => t,
        }
    }

    /// Whether it is a number (or may be one).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Float | Ty::Json)
    }

    /// The fields of a record, written out for a message.
    pub fn describe(&self) -> String {
        match self {
            Ty::Record(r) if !r.name.is_empty() => {
                let fields: Vec<String> =
                    r.fields.iter().map(|(n, t)| format!("{n}: {t}")).collect();
                format!("{} {{ {} }}", r.name, fields.join(", "))
            }
            t => t.to_string(),
        }
    }

    /// Whether a value of type `self` may be used where `to` is expected;
    /// the error says why not.
    pub fn assignable_to(&self, to: &Ty) -> Result<(), String> {
        match (self, to) {
            (Ty::Json, _) | (_, Ty::Json) => Ok(()),
            (a, b) if a == b => Ok(()),
            (Ty::Int, Ty::Float) => Ok(()),
            (Ty::Null, Ty::Optional(_)) => Ok(()),
            (Ty::Optional(a), Ty::Optional(b)) => a.assignable_to(b),
            (Ty::Optional(_), b) => Err(format!("it may be null, and {b} is not optional")),
            (a, Ty::Optional(b)) => a.assignable_to(b),
            (Ty::List(a), Ty::List(b)) => a
                .assignable_to(b)
                .map_err(|e| format!("an item does not fit: {e}")),
            (Ty::Map(a), Ty::Map(b)) => a.assignable_to(b),
            (Ty::Record(r), Ty::Map(b)) => {
                for (name, ty) in &r.fields {
                    ty.assignable_to(b)
                        .map_err(|e| format!("field `{name}`: {e}"))?;
                }
                Ok(())
            }
            (Ty::Record(from), Ty::Record(to)) => {
                for (name, ty) in &from.fields {
                    match to.field(name) {
                        Some(want) => ty.assignable_to(want).map_err(|e| {
                            format!(
                                "field `{name}` is {ty}, but {} needs {want}{}",
                                record_name(to),
                                because(&e)
                            )
                        })?,
                        None => {
                            let hint = super::diag::did_you_mean(
                                name,
                                to.fields.iter().map(|(n, _)| n.as_str()),
                            )
                            .map(|m| format!(" (did you mean `{m}`?)"))
                            .unwrap_or_default();
                            return Err(format!("{} has no field `{name}`{hint}", record_name(to)));
                        }
                    }
                }
                for (name, want) in &to.fields {
                    if from.field(name).is_none() && !omittable(want) {
                        return Err(format!("field `{name}: {want}` is missing"));
                    }
                }
                Ok(())
            }
            (a, b) => Err(format!("{a} is not {b}")),
        }
    }

    /// The type of a value that is `self` or `other` (for `if`/`else`
    /// assignments and list literals).
    pub fn join(&self, other: &Ty) -> Ty {
        match (self, other) {
            (a, b) if a == b => a.clone(),
            (Ty::Int, Ty::Float) | (Ty::Float, Ty::Int) => Ty::Float,
            (Ty::Null, t) | (t, Ty::Null) => t.clone().optional(),
            (Ty::Optional(a), b) | (b, Ty::Optional(a)) => a.join(b).optional(),
            _ => Ty::Json,
        }
    }

    /// The JSON Schema of values of this type (the manifest's input schema).
    pub fn schema(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Ty::Json => json!({}),
            Ty::Null => json!({"type": "null"}),
            Ty::Bool => json!({"type": "boolean"}),
            Ty::Int => json!({"type": "integer"}),
            Ty::Float => json!({"type": "number"}),
            Ty::Str => json!({"type": "string"}),
            Ty::List(t) => json!({"type": "array", "items": t.schema()}),
            Ty::Map(t) => json!({"type": "object", "additionalProperties": t.schema()}),
            Ty::Record(r) => {
                let props: serde_json::Map<String, serde_json::Value> = r
                    .fields
                    .iter()
                    .map(|(n, t)| (n.clone(), t.schema()))
                    .collect();
                let required: Vec<&str> = r
                    .fields
                    .iter()
                    .filter(|(_, t)| !matches!(t, Ty::Optional(_)))
                    .map(|(n, _)| n.as_str())
                    .collect();
                json!({"type": "object", "properties": props, "required": required})
            }
            Ty::Optional(t) => json!({"anyOf": [t.schema(), {"type": "null"}]}),
        }
    }
}

fn record_name(r: &Record) -> String {
    if r.name.is_empty() {
        "the object".to_string()
    } else {
        format!("`{}`", r.name)
    }
}

fn because(e: &str) -> String {
    if e.is_empty() {
        String::new()
    } else {
        format!(" ({e})")
    }
}

/// Record fields a caller may leave out: options (none) and lists (empty).
pub fn omittable(ty: &Ty) -> bool {
    matches!(ty, Ty::Optional(_) | Ty::List(_) | Ty::Map(_) | Ty::Json)
}

/// Parses a type as the front matter writes it: `string`, `int`, `float`,
/// `bool`, `json`, `list<T>`, and `T?` for optional.
pub fn parse_type(text: &str) -> Result<Ty, String> {
    let text = text.trim();
    if let Some(inner) = text.strip_suffix('?') {
        return Ok(parse_type(inner)?.optional());
    }
    if let Some(inner) = text.strip_prefix("list<").and_then(|t| t.strip_suffix('>')) {
        return Ok(Ty::List(Box::new(parse_type(inner)?)));
    }
    Ok(match text {
        "string" => Ty::Str,
        "int" => Ty::Int,
        "float" => Ty::Float,
        "bool" => Ty::Bool,
        "json" => Ty::Json,
        other => {
            let known = ["string", "int", "float", "bool", "json"];
            let hint = super::diag::did_you_mean(other, known)
                .map(|m| format!("; did you mean `{m}`?"))
                .unwrap_or_default();
            return Err(format!(
                "unknown type `{other}`: use string, int, float, bool, json, list<T>, or T? for optional{hint}"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, fields: &[(&str, Ty)]) -> Ty {
        Ty::Record(Arc::new(Record {
            name: name.into(),
            fields: fields
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        }))
    }

    #[test]
    fn assignability() {
        assert!(Ty::Int.assignable_to(&Ty::Float).is_ok());
        assert!(Ty::Float.assignable_to(&Ty::Int).is_err());
        assert!(Ty::Null.assignable_to(&Ty::Str.optional()).is_ok());
        assert!(Ty::Str.optional().assignable_to(&Ty::Str).is_err());
        let card = record(
            "new-card",
            &[
                ("list", Ty::Str),
                ("title", Ty::Str),
                ("labels", Ty::List(Box::new(Ty::Str))),
            ],
        );
        let lit = record("", &[("list", Ty::Str), ("title", Ty::Str)]);
        assert!(lit.assignable_to(&card).is_ok());
        let typo = record("", &[("list", Ty::Str), ("titel", Ty::Str)]);
        let err = typo.assignable_to(&card).unwrap_err();
        assert_eq!(
            err,
            "`new-card` has no field `titel` (did you mean `title`?)"
        );
        let missing = record("", &[("list", Ty::Str)]);
        assert_eq!(
            missing.assignable_to(&card).unwrap_err(),
            "field `title: string` is missing"
        );
    }

    #[test]
    fn types_parse_and_print() {
        assert_eq!(parse_type("list<int>?").unwrap().to_string(), "list<int>?");
        assert!(parse_type("strng")
            .unwrap_err()
            .contains("did you mean `string`"));
        assert_eq!(Ty::Int.join(&Ty::Null), Ty::Int.optional());
    }
}
