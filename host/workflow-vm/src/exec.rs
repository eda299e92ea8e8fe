//! The interpreter: runs a [`Program`] against the host's capabilities.
//!
//! Values are JSON. The compiler has checked types wherever they are known,
//! so the checks here matter for values whose shape only the run knows (the
//! input's untyped fields, another skill's output): those fail with an error
//! that names the line, never with a panic. Loops run over lists that are
//! already built, so a run ends unless a `range` is enormous; the host's
//! deadline stops that one like any runaway skill.

use crate::program::{BinOp, Builtin, Expr, Level, Part, Program, Stmt, StmtKind, FORMAT};
use serde_json::{Map, Number, Value};

/// What the interpreter needs from its host: the capability calls.
pub trait Capabilities {
    /// Calls `interface.function` with arguments shaped like its WIT
    /// parameters; answers with its result shaped the same way.
    fn call(
        &mut self,
        interface: &str,
        function: &str,
        args: Vec<Value>,
    ) -> Result<Value, CallFailure>;
    /// Writes a line to the host's log.
    fn log(&mut self, level: Level, message: &str);
}

/// A capability call that failed: the case of the interface's error variant
/// (`denied`, `invalid`, `not-found`, `unavailable`) and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFailure {
    pub kind: String,
    pub message: String,
}

/// Why a run ended without an output: becomes the skill's `skill-error`.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

impl Failure {
    fn at(line: u32, message: impl std::fmt::Display) -> Self {
        Failure {
            code: "workflow-error".to_string(),
            message: format!("line {line}: {message}"),
        }
    }
}

/// Runs `program` on `input` (a JSON object).
pub fn run(program: &Program, input: Value, caps: &mut dyn Capabilities) -> Result<Value, Failure> {
    if program.format != FORMAT {
        return Err(Failure {
            code: "workflow-error".to_string(),
            message: format!(
                "the program has format {} but this interpreter runs format {FORMAT}; recompile the workflow",
                program.format
            ),
        });
    }
    let mut input = match input {
        Value::Object(map) => map,
        other => {
            return Err(Failure {
                code: "invalid-input".to_string(),
                message: format!("the input must be a JSON object, not {}", kind(&other)),
            })
        }
    };
    for (field, default) in &program.defaults {
        if input.get(field).is_none_or(Value::is_null) {
            input.insert(field.clone(), default.clone());
        }
    }
    let mut slots = vec![Value::Null; program.slots.max(1) as usize];
    slots[0] = Value::Object(input);
    let mut machine = Machine { slots, caps };
    match machine.block(&program.body)? {
        Flow::Return(value) => Ok(value),
        Flow::Next => Ok(Value::Null),
    }
}

enum Flow {
    Next,
    Return(Value),
}

struct Machine<'a> {
    slots: Vec<Value>,
    caps: &'a mut dyn Capabilities,
}

impl Machine<'_> {
    fn block(&mut self, body: &[Stmt]) -> Result<Flow, Failure> {
        for stmt in body {
            if let Flow::Return(v) = self.stmt(stmt)? {
                return Ok(Flow::Return(v));
            }
        }
        Ok(Flow::Next)
    }

    fn stmt(&mut self, stmt: &Stmt) -> Result<Flow, Failure> {
        let line = stmt.line;
        match &stmt.kind {
            StmtKind::Set { slot, value } => {
                let v = self.expr(value, line)?;
                *self.slot(*slot, line)? = v;
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for (cond, body) in branches {
                    if self.truth(cond, line)? {
                        return self.block(body);
                    }
                }
                return self.block(otherwise);
            }
            StmtKind::For { slot, list, body } => {
                let items = match self.expr(list, line)? {
                    Value::Array(items) => items,
                    other => {
                        return Err(Failure::at(
                            line,
                            format!("`for` needs a list, not {}", kind(&other)),
                        ))
                    }
                };
                for item in items {
                    *self.slot(*slot, line)? = item;
                    if let Flow::Return(v) = self.block(body)? {
                        return Ok(Flow::Return(v));
                    }
                }
            }
            StmtKind::Eval(e) => {
                self.expr(e, line)?;
            }
            StmtKind::Return(e) => return Ok(Flow::Return(self.expr(e, line)?)),
            StmtKind::Fail { code, message } => {
                let code = render(&self.expr(code, line)?);
                let message = render(&self.expr(message, line)?);
                return Err(Failure { code, message });
            }
            StmtKind::Log { level, message } => {
                let message = render(&self.expr(message, line)?);
                self.caps.log(*level, &message);
            }
        }
        Ok(Flow::Next)
    }

    fn slot(&mut self, slot: u32, line: u32) -> Result<&mut Value, Failure> {
        self.slots.get_mut(slot as usize).ok_or_else(|| {
            Failure::at(
                line,
                format!("variable slot {slot} does not exist; recompile the workflow"),
            )
        })
    }

    fn truth(&mut self, e: &Expr, line: u32) -> Result<bool, Failure> {
        match self.expr(e, line)? {
            Value::Bool(b) => Ok(b),
            other => Err(Failure::at(
                line,
                format!("a condition must be true or false, not {}", kind(&other)),
            )),
        }
    }

    fn expr(&mut self, e: &Expr, line: u32) -> Result<Value, Failure> {
        Ok(match e {
            Expr::Value(v) => v.clone(),
            Expr::Var(slot) => self.slot(*slot, line)?.clone(),
            Expr::List(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.expr(i, line))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Object(fields) => {
                let mut map = Map::new();
                for (k, v) in fields {
                    let v = self.expr(v, line)?;
                    map.insert(k.clone(), v);
                }
                Value::Object(map)
            }
            Expr::Field(target, name) => match self.expr(target, line)? {
                Value::Object(mut map) => map.remove(name).unwrap_or(Value::Null),
                // A field of something that may be null is null too (the
                // checker types it optional).
                Value::Null => Value::Null,
                other => {
                    return Err(Failure::at(
                        line,
                        format!("cannot read `.{name}` of {}", kind(&other)),
                    ))
                }
            },
            Expr::Index(target, index) => {
                let target = self.expr(target, line)?;
                let index = self.expr(index, line)?;
                self.index(target, index, line)?
            }
            Expr::Not(e) => Value::Bool(!self.truth(e, line)?),
            Expr::Neg(e) => match self.expr(e, line)? {
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Value::from(
                        i.checked_neg()
                            .ok_or_else(|| Failure::at(line, "integer overflow"))?,
                    ),
                    None => float(-n.as_f64().unwrap_or(0.0), line)?,
                },
                other => return Err(Failure::at(line, format!("cannot negate {}", kind(&other)))),
            },
            Expr::Binary(op, a, b) => {
                let a = self.expr(a, line)?;
                let b = self.expr(b, line)?;
                binary(*op, a, b, line)?
            }
            Expr::And(a, b) => Value::Bool(self.truth(a, line)? && self.truth(b, line)?),
            Expr::Or(a, b) => Value::Bool(self.truth(a, line)? || self.truth(b, line)?),
            Expr::Coalesce(a, b) => match self.expr(a, line)? {
                Value::Null => self.expr(b, line)?,
                v => v,
            },
            Expr::Template(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part {
                        Part::Text(t) => out.push_str(t),
                        Part::Expr(e) => out.push_str(&render(&self.expr(e, line)?)),
                    }
                }
                Value::String(out)
            }
            Expr::Builtin(b, args) => {
                let args = args
                    .iter()
                    .map(|a| self.expr(a, line))
                    .collect::<Result<Vec<_>, _>>()?;
                builtin(*b, args, line)?
            }
            Expr::Call {
                interface,
                function,
                args,
            } => {
                let args = args
                    .iter()
                    .map(|a| self.expr(a, line))
                    .collect::<Result<Vec<_>, _>>()?;
                self.caps
                    .call(interface, function, args)
                    .map_err(|f| Failure {
                        code: format!("{interface}-{}", f.kind),
                        message: format!(
                            "line {line}: {interface}.{}: {}",
                            function.replace('-', "_"),
                            f.message
                        ),
                    })?
            }
        })
    }

    fn index(&self, target: Value, index: Value, line: u32) -> Result<Value, Failure> {
        match (target, index) {
            (Value::Null, _) => Ok(Value::Null),
            (Value::Array(mut items), Value::Number(n)) => {
                let len = items.len() as i64;
                let i = n.as_i64().ok_or_else(|| {
                    Failure::at(line, format!("a list index must be an integer, not {n}"))
                })?;
                let at = if i < 0 { len + i } else { i };
                if at < 0 || at >= len {
                    return Err(Failure::at(
                        line,
                        format!("index {i} is out of range for a list of {len}"),
                    ));
                }
                Ok(items.swap_remove(at as usize))
            }
            (Value::Object(mut map), Value::String(key)) => {
                Ok(map.remove(&key).unwrap_or(Value::Null))
            }
            (target, index) => Err(Failure::at(
                line,
                format!("cannot index {} with {}", kind(&target), kind(&index)),
            )),
        }
    }
}

/// What kind of JSON value `v` is, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a float",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A value as template text: strings as they are, anything else as JSON.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn float(f: f64, line: u32) -> Result<Value, Failure> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| Failure::at(line, "the result is not a finite number"))
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn binary(op: BinOp, a: Value, b: Value, line: u32) -> Result<Value, Failure> {
    let sym = op.symbol();
    let mismatch = |a: &Value, b: &Value| {
        Failure::at(
            line,
            format!("cannot apply `{sym}` to {} and {}", kind(a), kind(b)),
        )
    };
    match op {
        BinOp::Eq => return Ok(Value::Bool(equal(&a, &b))),
        BinOp::Ne => return Ok(Value::Bool(!equal(&a, &b))),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match (&a, &b) {
                (Value::String(x), Value::String(y)) => x.cmp(y),
                (Value::Number(_), Value::Number(_)) => number(&a)
                    .zip(number(&b))
                    .and_then(|(x, y)| x.partial_cmp(&y))
                    .ok_or_else(|| mismatch(&a, &b))?,
                _ => return Err(mismatch(&a, &b)),
            };
            use std::cmp::Ordering::*;
            let holds = match op {
                BinOp::Lt => ord == Less,
                BinOp::Le => ord != Greater,
                BinOp::Gt => ord == Greater,
                _ => ord != Less,
            };
            return Ok(Value::Bool(holds));
        }
        _ => {}
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) if op == BinOp::Add => Ok(Value::String(x + &y)),
        (Value::Array(mut x), Value::Array(y)) if op == BinOp::Add => {
            x.extend(y);
            Ok(Value::Array(x))
        }
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(i), Some(j), false) = (x.as_i64(), y.as_i64(), op == BinOp::Div) {
                let r = match op {
                    BinOp::Add => i.checked_add(j),
                    BinOp::Sub => i.checked_sub(j),
                    BinOp::Mul => i.checked_mul(j),
                    _ => {
                        if j == 0 {
                            return Err(Failure::at(line, "remainder of a division by zero"));
                        }
                        i.checked_rem(j)
                    }
                };
                return r.map(Value::from).ok_or_else(|| {
                    Failure::at(line, format!("integer overflow in `{i} {sym} {j}`"))
                });
            }
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            if matches!(op, BinOp::Div | BinOp::Rem) && y == 0.0 {
                return Err(Failure::at(line, "division by zero"));
            }
            let r = match op {
                BinOp::Add => x + y,
                BinOp::Sub => x - y,
                BinOp::Mul => x * y,
                BinOp::Div => x / y,
                _ => x % y,
            };
            float(r, line)
        }
        (a, b) => Err(mismatch(&a, &b)),
    }
}

/// JSON equality where `1 == 1.0` (what `==` means in a workflow).
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn builtin(b: Builtin, args: Vec<Value>, line: u32) -> Result<Value, Failure> {
    let name = b.name();
    let bad = |args: &[Value]| {
        let kinds: Vec<&str> = args.iter().map(kind).collect();
        Failure::at(line, format!("`{name}` cannot take ({})", kinds.join(", ")))
    };
    let mut it = args.clone().into_iter();
    let (a, b2, c) = (it.next(), it.next(), it.next());
    Ok(match (b, a, b2, c) {
        (Builtin::Len, Some(Value::Array(x)), None, None) => Value::from(x.len()),
        (Builtin::Len, Some(Value::String(x)), None, None) => Value::from(x.chars().count()),
        (Builtin::Len, Some(Value::Object(x)), None, None) => Value::from(x.len()),
        (Builtin::Str, Some(v), None, None) => Value::String(render(&v)),
        (Builtin::Int, Some(Value::Number(n)), None, None) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => {
                let f = n.as_f64().unwrap_or(0.0).trunc();
                if f.abs() >= 9.2e18 {
                    return Err(Failure::at(line, format!("{n} does not fit an integer")));
                }
                Value::from(f as i64)
            }
        },
        (Builtin::Int, Some(Value::String(s)), None, None) => Value::from(
            s.trim()
                .parse::<i64>()
                .map_err(|_| Failure::at(line, format!("`int`: {s:?} is not an integer")))?,
        ),
        (Builtin::Float, Some(Value::Number(n)), None, None) => {
            float(n.as_f64().unwrap_or(0.0), line)?
        }
        (Builtin::Float, Some(Value::String(s)), None, None) => float(
            s.trim()
                .parse::<f64>()
                .map_err(|_| Failure::at(line, format!("`float`: {s:?} is not a number")))?,
            line,
        )?,
        (Builtin::Join, Some(Value::Array(items)), Some(Value::String(sep)), None) => {
            Value::String(items.iter().map(render).collect::<Vec<_>>().join(&sep))
        }
        (Builtin::Split, Some(Value::String(s)), Some(Value::String(sep)), None) => {
            if sep.is_empty() {
                return Err(Failure::at(line, "`split` needs a non-empty separator"));
            }
            Value::Array(
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        (Builtin::Lower, Some(Value::String(s)), None, None) => Value::String(s.to_lowercase()),
        (Builtin::Upper, Some(Value::String(s)), None, None) => Value::String(s.to_uppercase()),
        (Builtin::Trim, Some(Value::String(s)), None, None) => Value::String(s.trim().to_string()),
        (Builtin::Contains, Some(Value::String(s)), Some(Value::String(p)), None) => {
            Value::Bool(s.contains(p.as_str()))
        }
        (Builtin::Contains, Some(Value::Array(items)), Some(v), None) => {
            Value::Bool(items.iter().any(|i| equal(i, &v)))
        }
        (Builtin::StartsWith, Some(Value::String(s)), Some(Value::String(p)), None) => {
            Value::Bool(s.starts_with(p.as_str()))
        }
        (Builtin::EndsWith, Some(Value::String(s)), Some(Value::String(p)), None) => {
            Value::Bool(s.ends_with(p.as_str()))
        }
        (Builtin::Keys, Some(Value::Object(map)), None, None) => {
            Value::Array(map.keys().map(|k| Value::String(k.clone())).collect())
        }
        (Builtin::Range, Some(Value::Number(n)), to, None) => {
            let (from, to) = match to {
                None => (0, n.as_i64()),
                Some(Value::Number(m)) => (n.as_i64().ok_or_else(|| bad(&args))?, m.as_i64()),
                Some(_) => return Err(bad(&args)),
            };
            let to = to.ok_or_else(|| bad(&args))?;
            // Built lazily in chunks would still have to fit in memory; the
            // per-call memory limit stops an enormous range.
            Value::Array((from..to.max(from)).map(Value::from).collect())
        }
        (Builtin::Sum, Some(Value::Array(items)), None, None) => {
            let mut int: Option<i64> = Some(0);
            let mut total = 0.0f64;
            for item in &items {
                let Value::Number(n) = item else {
                    return Err(bad(&args));
                };
                int = int.and_then(|acc| n.as_i64().and_then(|i| acc.checked_add(i)));
                total += n.as_f64().unwrap_or(0.0);
            }
            match int {
                Some(i) => Value::from(i),
                None => float(total, line)?,
            }
        }
        (Builtin::Min | Builtin::Max, Some(Value::Array(items)), None, None) => {
            let mut best: Option<Value> = None;
            for item in items {
                if !item.is_number() {
                    return Err(bad(&args));
                }
                let better = match &best {
                    None => true,
                    Some(cur) => {
                        let (x, y) = (item.as_f64().unwrap_or(0.0), cur.as_f64().unwrap_or(0.0));
                        if b == Builtin::Min {
                            x < y
                        } else {
                            x > y
                        }
                    }
                };
                if better {
                    best = Some(item);
                }
            }
            best.unwrap_or(Value::Null)
        }
        (Builtin::Round, Some(Value::Number(n)), None, None) => builtin(
            Builtin::Int,
            vec![float(n.as_f64().unwrap_or(0.0).round(), line)?],
            line,
        )?,
        (Builtin::Abs, Some(Value::Number(n)), None, None) => match n.as_i64() {
            Some(i) => Value::from(
                i.checked_abs()
                    .ok_or_else(|| Failure::at(line, "integer overflow"))?,
            ),
            None => float(n.as_f64().unwrap_or(0.0).abs(), line)?,
        },
        (Builtin::Sort, Some(Value::Array(mut items)), None, None) => {
            if items.iter().all(Value::is_string) {
                items.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            } else if items.iter().all(Value::is_number) {
                items.sort_by(|x, y| {
                    x.as_f64()
                        .unwrap_or(0.0)
                        .total_cmp(&y.as_f64().unwrap_or(0.0))
                });
            } else {
                return Err(Failure::at(
                    line,
                    "`sort` sorts a list of numbers or of strings; use `sort_by` for objects",
                ));
            }
            Value::Array(items)
        }
        (Builtin::SortBy, Some(Value::Array(mut items)), Some(Value::String(field)), None) => {
            let key = |v: &Value| v.get(&field).cloned().unwrap_or(Value::Null);
            let keys: Vec<Value> = items.iter().map(key).collect();
            if !(keys.iter().all(Value::is_string) || keys.iter().all(Value::is_number)) {
                return Err(Failure::at(
                    line,
                    format!("`sort_by`: field `{field}` must be a number in every item, or a string in every item"),
                ));
            }
            items.sort_by(|x, y| {
                let (kx, ky) = (key(x), key(y));
                match (kx.as_str(), ky.as_str()) {
                    (Some(a), Some(b)) => a.cmp(b),
                    _ => kx
                        .as_f64()
                        .unwrap_or(0.0)
                        .total_cmp(&ky.as_f64().unwrap_or(0.0)),
                }
            });
            Value::Array(items)
        }
        (Builtin::Reverse, Some(Value::Array(mut items)), None, None) => {
            items.reverse();
            Value::Array(items)
        }
        (Builtin::Slice, Some(Value::Array(items)), Some(Value::Number(from)), to) => {
            let len = items.len() as i64;
            let clamp = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
            let from = clamp(from.as_i64().ok_or_else(|| bad(&args))?);
            let to = match to {
                None => len,
                Some(Value::Number(t)) => clamp(t.as_i64().ok_or_else(|| bad(&args))?),
                Some(_) => return Err(bad(&args)),
            };
            Value::Array(items[from as usize..to.max(from) as usize].to_vec())
        }
        _ => return Err(bad(&args)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Recorder(Vec<String>);

    impl Capabilities for Recorder {
        fn call(
            &mut self,
            interface: &str,
            function: &str,
            args: Vec<Value>,
        ) -> Result<Value, CallFailure> {
            self.0.push(format!(
                "{interface}.{function}({})",
                Value::Array(args.clone())
            ));
            match function {
                "lists" => Ok(json!([{"name": "Blocked"}])),
                _ => Err(CallFailure {
                    kind: "unavailable".into(),
                    message: "down".into(),
                }),
            }
        }
        fn log(&mut self, level: Level, message: &str) {
            self.0.push(format!("{level:?}: {message}"));
        }
    }

    fn stmt(line: u32, kind: StmtKind) -> Stmt {
        Stmt { line, kind }
    }

    fn program(slots: u32, body: Vec<Stmt>) -> Program {
        Program {
            format: FORMAT,
            name: "t".into(),
            defaults: vec![("n".into(), json!(2))],
            slots,
            body,
        }
    }

    fn e(v: Value) -> Expr {
        Expr::Value(v)
    }

    #[test]
    fn loops_templates_and_defaults() {
        // let total = 0; for x in range(input.n) { total = total + x }; return "{total}"
        let p = program(
            3,
            vec![
                stmt(
                    1,
                    StmtKind::Set {
                        slot: 1,
                        value: e(json!(0)),
                    },
                ),
                stmt(
                    2,
                    StmtKind::For {
                        slot: 2,
                        list: Expr::Builtin(
                            Builtin::Range,
                            vec![Expr::Field(Box::new(Expr::Var(0)), "n".into())],
                        ),
                        body: vec![stmt(
                            3,
                            StmtKind::Set {
                                slot: 1,
                                value: Expr::Binary(
                                    BinOp::Add,
                                    Box::new(Expr::Var(1)),
                                    Box::new(Expr::Var(2)),
                                ),
                            },
                        )],
                    },
                ),
                stmt(
                    4,
                    StmtKind::Log {
                        level: Level::Info,
                        message: Expr::Template(vec![
                            Part::Text("t=".into()),
                            Part::Expr(Expr::Var(1)),
                        ]),
                    },
                ),
                stmt(
                    5,
                    StmtKind::Return(Expr::Object(vec![("total".into(), Expr::Var(1))])),
                ),
            ],
        );
        let mut rec = Recorder(vec![]);
        assert_eq!(run(&p, json!({}), &mut rec).unwrap(), json!({"total": 1}));
        assert_eq!(
            run(&p, json!({"n": 5}), &mut rec).unwrap(),
            json!({"total": 10})
        );
        assert_eq!(rec.0, vec!["Info: t=1", "Info: t=10"]);
    }

    #[test]
    fn fields_and_items_of_null_are_null() {
        let field = Expr::Field(Box::new(e(Value::Null)), "x".into());
        let item = Expr::Index(Box::new(e(Value::Null)), Box::new(e(json!(0))));
        let p = program(
            1,
            vec![stmt(1, StmtKind::Return(Expr::List(vec![field, item])))],
        );
        assert_eq!(
            run(&p, json!({}), &mut Recorder(vec![])).unwrap(),
            json!([null, null])
        );
    }

    #[test]
    fn runtime_errors_name_the_line() {
        let p = program(
            1,
            vec![stmt(
                7,
                StmtKind::Return(Expr::Binary(
                    BinOp::Rem,
                    Box::new(e(json!(1))),
                    Box::new(e(json!(0))),
                )),
            )],
        );
        let err = run(&p, json!({}), &mut Recorder(vec![])).unwrap_err();
        assert_eq!(err.code, "workflow-error");
        assert!(err.message.starts_with("line 7:"), "{}", err.message);
        let p = program(
            1,
            vec![stmt(
                9,
                StmtKind::Return(Expr::Index(Box::new(e(json!([1]))), Box::new(e(json!(3))))),
            )],
        );
        assert!(run(&p, json!({}), &mut Recorder(vec![]))
            .unwrap_err()
            .message
            .contains("out of range"));
        let err = run(&p, json!([1]), &mut Recorder(vec![])).unwrap_err();
        assert_eq!(err.code, "invalid-input");
    }

    #[test]
    fn capability_failures_become_skill_errors() {
        let call = |function: &str| Expr::Call {
            interface: "board".into(),
            function: function.into(),
            args: vec![],
        };
        let p = program(
            1,
            vec![
                stmt(2, StmtKind::Eval(call("lists"))),
                stmt(3, StmtKind::Eval(call("get-card"))),
            ],
        );
        let mut rec = Recorder(vec![]);
        let err = run(&p, json!({}), &mut rec).unwrap_err();
        assert_eq!(err.code, "board-unavailable");
        assert_eq!(err.message, "line 3: board.get_card: down");
        assert_eq!(rec.0, vec!["board.lists([])", "board.get-card([])"]);
    }

    #[test]
    fn builtins() {
        let b = |f: Builtin, args: Vec<Value>| builtin(f, args, 1);
        assert_eq!(
            b(Builtin::Join, vec![json!(["a", 1]), json!(", ")]).unwrap(),
            json!("a, 1")
        );
        assert_eq!(
            b(
                Builtin::SortBy,
                vec![json!([{"k": 2}, {"k": 1}]), json!("k")]
            )
            .unwrap(),
            json!([{"k": 1}, {"k": 2}])
        );
        assert_eq!(
            b(Builtin::Slice, vec![json!([1, 2, 3]), json!(-2)]).unwrap(),
            json!([2, 3])
        );
        assert_eq!(
            b(Builtin::Slice, vec![json!([1, 2, 3]), json!(2), json!(1)]).unwrap(),
            json!([])
        );
        assert_eq!(b(Builtin::Sum, vec![json!([1, 2.5])]).unwrap(), json!(3.5));
        assert_eq!(b(Builtin::Max, vec![json!([])]).unwrap(), Value::Null);
        assert_eq!(b(Builtin::Round, vec![json!(2.5)]).unwrap(), json!(3));
        assert!(b(Builtin::Int, vec![json!(1e300)]).is_err());
        assert!(b(Builtin::Split, vec![json!("a"), json!("")]).is_err());
        assert!(b(Builtin::Len, vec![json!(1)])
            .unwrap_err()
            .message
            .contains("`len` cannot take (an integer)"));
        assert!(binary(BinOp::Add, json!(i64::MAX), json!(1), 1).is_err());
        assert_eq!(
            binary(BinOp::Div, json!(7), json!(2), 1).unwrap(),
            json!(3.5)
        );
        assert_eq!(
            binary(BinOp::Eq, json!(1), json!(1.0), 1).unwrap(),
            json!(true)
        );
    }
}
