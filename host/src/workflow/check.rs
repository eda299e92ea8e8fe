//! The checker: names, types, capabilities and grants, then the program.
//!
//! It walks the syntax tree once. Every variable must be declared before it
//! is used; every capability call must name a function of the WIT, with
//! arguments of the right types, and be covered by a grant in the front
//! matter. Each problem is reported where it is, with a hint, and checking
//! goes on (an expression in error has type `json`, which silences the
//! errors that would only follow from it). The result is the [`Program`]
//! the interpreter runs and the capability functions it calls.

use super::diag::{did_you_mean, Diagnostic, Diagnostics, Span};
use super::front::{Grants, Header};
use super::syntax::{Arg, Expr, ExprKind, Ident, Op, Stmt, StmtKind, TemplatePart};
use super::types::{omittable, Ty};
use super::wit::{snake, Interfaces, Signature};
use darkfactory_workflow_vm::program::{self as vm, BinOp, Builtin, Level, Part, Program, FORMAT};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// What the checker found a workflow uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Capability functions called: `(interface, WIT function name)`.
    pub functions: BTreeSet<(String, String)>,
    /// Grant keys the calls need (`board_read`, `fleet`, ...), each with the
    /// level it needs (`read`/`write` for `fleet`).
    pub grants: BTreeMap<&'static str, &'static str>,
}

impl Usage {
    /// The capability functions called, as a workflow writes them
    /// (`board.move_card`; `log` for logging).
    pub fn calls(&self) -> Vec<String> {
        self.functions
            .iter()
            .map(|(i, f)| {
                if i == "log" {
                    "log".to_string()
                } else {
                    format!("{i}.{}", snake(f))
                }
            })
            .collect()
    }
}

/// Checks `body` against `header`; returns the program and what it uses.
pub fn check(
    name: &str,
    header: &Header,
    body: &[Stmt],
    diags: &mut Diagnostics,
) -> (Program, Usage) {
    let mut c = Checker {
        diags,
        interfaces: Interfaces::get(),
        grants: &header.grants,
        scopes: vec![vec![Var {
            name: "input".into(),
            slot: 0,
            ty: header.input_type(),
            span: Span::default(),
        }]],
        next_slot: 1,
        usage: Usage::default(),
    };
    let body = c.block(body);
    // With errors, a grant may look unused only because its calls are wrong.
    if !c.diags.has_errors() {
        c.unused_grants();
    }
    let defaults = header
        .input
        .iter()
        .flatten()
        .filter_map(|f| Some((f.name.clone(), f.default.clone()?)))
        .collect();
    let program = Program {
        format: FORMAT,
        name: name.to_string(),
        defaults,
        slots: c.next_slot,
        body,
    };
    (program, c.usage)
}

struct Var {
    name: String,
    slot: u32,
    ty: Ty,
    span: Span,
}

struct Checker<'a> {
    diags: &'a mut Diagnostics,
    interfaces: &'static Interfaces,
    grants: &'a Grants,
    scopes: Vec<Vec<Var>>,
    next_slot: u32,
    usage: Usage,
}

/// Where an expression in error stands: `null` of type `json`.
fn poisoned() -> (vm::Expr, Ty) {
    (vm::Expr::Value(Value::Null), Ty::Json)
}

fn builtin_named(name: &str) -> Option<Builtin> {
    Builtin::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
}

fn level_named(name: &str) -> Option<Level> {
    Level::ALL.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

impl Checker<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn lookup(&self, name: &str) -> Option<&Var> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .find(|v| v.name == name)
    }

    fn visible_names(&self) -> Vec<String> {
        self.scopes
            .iter()
            .flatten()
            .map(|v| v.name.clone())
            .collect()
    }

    fn block(&mut self, body: &[Stmt]) -> Vec<vm::Stmt> {
        self.scopes.push(Vec::new());
        let out = body.iter().filter_map(|s| self.stmt(s)).collect();
        self.scopes.pop();
        out
    }

    fn declare(&mut self, name: &Ident, ty: Ty) -> u32 {
        let reserved = name.name == "input"
            || name.name == "fail"
            || self.interfaces.0.contains_key(&name.name)
            || builtin_named(&name.name).is_some();
        if reserved {
            self.error(
                Diagnostic::error(name.span, format!("`{}` is a name the language uses", name.name))
                    .expected("a variable name of your own")
                    .hint("`input`, `fail`, the capabilities and the built-in functions cannot be redeclared"),
            );
        } else if let Some(prev) = self
            .scopes
            .last()
            .and_then(|s| s.iter().find(|v| v.name == name.name))
        {
            let line = prev.span.start.line;
            self.error(
                Diagnostic::error(
                    name.span,
                    format!(
                        "`{}` is already declared in this block (line {line})",
                        name.name
                    ),
                )
                .hint(format!("assign it without `let`: `{} = ...`", name.name)),
            );
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let ty = if ty == Ty::Null { Ty::Json } else { ty };
        self.scopes.last_mut().expect("a scope").push(Var {
            name: name.name.clone(),
            slot,
            ty,
            span: name.span,
        });
        slot
    }

    fn undefined(&mut self, name: &str, span: Span) {
        let names = self.visible_names();
        let mut d = Diagnostic::error(span, format!("undefined variable `{name}`"))
            .expected("a variable declared with `let` before this line");
        if let Some(m) = did_you_mean(name, names.iter().map(String::as_str)) {
            d = d.hint(format!("did you mean `{m}`?"));
        } else if self.interfaces.0.contains_key(name) {
            d = d.hint(format!(
                "`{name}` is a capability: call one of its functions, `{name}.function(...)`"
            ));
        } else {
            d = d.hint(format!("declare it first: `let {name} = ...`"));
        }
        self.error(d);
    }

    fn stmt(&mut self, stmt: &Stmt) -> Option<vm::Stmt> {
        let line = stmt.span.start.line;
        let kind = match &stmt.kind {
            StmtKind::Let { name, value } => {
                let (value, ty) = self.expr(value);
                let slot = self.declare(name, ty);
                vm::StmtKind::Set { slot, value }
            }
            StmtKind::Assign { name, value } => {
                let (value, ty) = self.expr(value);
                let Some(var) = self.lookup(&name.name) else {
                    self.undefined(&name.name, name.span);
                    return None;
                };
                let (slot, want) = (var.slot, var.ty.clone());
                if slot == 0 {
                    self.error(
                        Diagnostic::error(name.span, "`input` cannot be assigned")
                            .hint("copy what you need: `let x = input.field`"),
                    );
                    return None;
                }
                if let Err(e) = ty.assignable_to(&want) {
                    self.error(
                        Diagnostic::error(
                            name.span,
                            format!("`{}` is {want}; this value is {ty}", name.name),
                        )
                        .expected(format!("a {want}"))
                        .hint(if e.is_empty() {
                            "declare a new variable for a value of another type".to_string()
                        } else {
                            e
                        }),
                    );
                }
                vm::StmtKind::Set { slot, value }
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                let branches = branches
                    .iter()
                    .map(|(cond, body)| (self.condition(cond), self.block(body)))
                    .collect();
                let otherwise = otherwise
                    .as_deref()
                    .map(|b| self.block(b))
                    .unwrap_or_default();
                vm::StmtKind::If {
                    branches,
                    otherwise,
                }
            }
            StmtKind::For { var, list, body } => {
                let (list, ty) = self.expr(list);
                let item = match ty {
                    Ty::List(t) => *t,
                    Ty::Json => Ty::Json,
                    other => {
                        self.error(
                            Diagnostic::error(
                                stmt.span,
                                format!("`for` loops over a list; this is {other}"),
                            )
                            .expected("a list")
                            .hint(if matches!(other, Ty::Int) {
                                "count with `for i in range(n)`"
                            } else {
                                "for an object's fields, loop over `keys(x)`"
                            }),
                        );
                        Ty::Json
                    }
                };
                self.scopes.push(Vec::new());
                let slot = self.declare(var, item);
                let body = self.block(body);
                self.scopes.pop();
                vm::StmtKind::For { slot, list, body }
            }
            StmtKind::Return(e) => vm::StmtKind::Return(self.expr(e).0),
            StmtKind::Expr(e) => return self.effect(e).map(|kind| vm::Stmt { line, kind }),
        };
        Some(vm::Stmt { line, kind })
    }

    /// An expression used as a statement: a call for its effect.
    fn effect(&mut self, e: &Expr) -> Option<vm::StmtKind> {
        let ExprKind::Call(callee, args) = &e.kind else {
            self.error(
                Diagnostic::error(e.span, "this value is not used")
                    .hint("give it a name with `let x = ...`, or `return` it"),
            );
            return None;
        };
        match &callee.kind {
            ExprKind::Var(name) if name == "fail" && self.lookup("fail").is_none() => {
                let [code, message] = args.as_slice() else {
                    self.error(
                        Diagnostic::error(
                            e.span,
                            format!("`fail` takes 2 arguments, not {}", args.len()),
                        )
                        .expected("`fail(\"code\", \"message\")`"),
                    );
                    return None;
                };
                let (code_e, code_t) = self.expr(&code.value);
                let (message_e, _) = self.expr(&message.value);
                if code_t.assignable_to(&Ty::Str).is_err() {
                    self.error(
                        Diagnostic::error(code.value.span, format!("the error code is {code_t}"))
                            .expected("a string such as \"not-found\""),
                    );
                }
                Some(vm::StmtKind::Fail {
                    code: code_e,
                    message: message_e,
                })
            }
            ExprKind::Field(target, level) if matches!(&target.kind, ExprKind::Var(n) if n == "log") =>
            {
                let Some(level_v) = level_named(&level.name) else {
                    let names: Vec<&str> = Level::ALL.iter().map(|(n, _)| *n).collect();
                    let mut d = Diagnostic::error(
                        level.span,
                        format!("`log` has no level `{}`", level.name),
                    )
                    .expected(format!("one of {}", names.join(", ")));
                    if let Some(m) = did_you_mean(&level.name, names.iter().copied()) {
                        d = d.hint(format!("did you mean `log.{m}`?"));
                    }
                    self.error(d);
                    return None;
                };
                let [message] = args.as_slice() else {
                    self.error(
                        Diagnostic::error(
                            e.span,
                            format!(
                                "`log.{}` takes one message, not {} arguments",
                                level.name,
                                args.len()
                            ),
                        )
                        .expected("`log.info(\"text {value}\")`"),
                    );
                    return None;
                };
                let (message, _) = self.expr(&message.value);
                self.usage
                    .functions
                    .insert(("log".to_string(), "log".to_string()));
                Some(vm::StmtKind::Log {
                    level: level_v,
                    message,
                })
            }
            _ => {
                let (call, _) = self.expr(e);
                Some(vm::StmtKind::Eval(call))
            }
        }
    }

    fn condition(&mut self, cond: &Expr) -> vm::Expr {
        let (e, ty) = self.expr(cond);
        if !matches!(ty, Ty::Bool | Ty::Json) {
            let hint = match ty {
                Ty::Optional(_) => "compare it with null: `x != null`",
                Ty::List(_) | Ty::Str => "test its length: `len(x) > 0`",
                _ => "compare it: `x > 0`, `x == \"...\"`",
            };
            self.error(
                Diagnostic::error(
                    cond.span,
                    format!("a condition must be true or false; this is {ty}"),
                )
                .expected("a bool")
                .hint(hint),
            );
        }
        e
    }

    fn expr(&mut self, e: &Expr) -> (vm::Expr, Ty) {
        match &e.kind {
            ExprKind::Int(i) => (vm::Expr::Value(Value::from(*i)), Ty::Int),
            ExprKind::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => (vm::Expr::Value(Value::Number(n)), Ty::Float),
                None => {
                    self.error(Diagnostic::error(e.span, "this number is not finite"));
                    poisoned()
                }
            },
            ExprKind::Bool(b) => (vm::Expr::Value(Value::Bool(*b)), Ty::Bool),
            ExprKind::Null => (vm::Expr::Value(Value::Null), Ty::Null),
            ExprKind::Str(parts) => {
                if let [TemplatePart::Text(t)] = parts.as_slice() {
                    return (vm::Expr::Value(Value::String(t.clone())), Ty::Str);
                }
                let parts = parts
                    .iter()
                    .map(|p| match p {
                        TemplatePart::Text(t) => Part::Text(t.clone()),
                        TemplatePart::Expr(x) => Part::Expr(self.expr(x).0),
                    })
                    .collect();
                (vm::Expr::Template(parts), Ty::Str)
            }
            ExprKind::Var(name) => match self.lookup(name) {
                Some(v) => (vm::Expr::Var(v.slot), v.ty.clone()),
                None => {
                    self.undefined(name, e.span);
                    poisoned()
                }
            },
            ExprKind::List(items) => {
                let mut ty: Option<Ty> = None;
                let mut out = Vec::new();
                for item in items {
                    let (x, t) = self.expr(item);
                    ty = Some(match ty {
                        None => t,
                        Some(prev) => prev.join(&t),
                    });
                    out.push(x);
                }
                (
                    vm::Expr::List(out),
                    Ty::List(Box::new(ty.unwrap_or(Ty::Json))),
                )
            }
            ExprKind::Object(fields) => {
                let mut out = Vec::new();
                let mut types = Vec::new();
                for (key, value) in fields {
                    if types.iter().any(|(n, _): &(String, Ty)| *n == key.name) {
                        self.error(Diagnostic::error(
                            key.span,
                            format!("field `{}` is written twice", key.name),
                        ));
                    }
                    let (x, t) = self.expr(value);
                    out.push((key.name.clone(), x));
                    types.push((key.name.clone(), t));
                }
                let ty = Ty::Record(std::sync::Arc::new(super::types::Record {
                    name: String::new(),
                    fields: types,
                }));
                (vm::Expr::Object(out), ty)
            }
            ExprKind::Field(target, field) => {
                if let ExprKind::Var(iface) = &target.kind {
                    if self.lookup(iface).is_none() && self.interfaces.0.contains_key(iface) {
                        self.error(
                            Diagnostic::error(
                                e.span,
                                format!("`{iface}.{}` is a function; call it", field.name),
                            )
                            .expected(format!("`{iface}.{}(...)`", field.name)),
                        );
                        return poisoned();
                    }
                }
                let (x, ty) = self.expr(target);
                let out = vm::Expr::Field(Box::new(x), field.name.clone());
                let (inner, optional) = match &ty {
                    Ty::Optional(t) => (t.as_ref().clone(), true),
                    t => (t.clone(), false),
                };
                let field_ty = match &inner {
                    Ty::Json => Ty::Json,
                    Ty::Map(t) => t.as_ref().clone().optional(),
                    Ty::Record(r) => match r.field(&field.name) {
                        Some(t) => t.clone(),
                        None => {
                            let what = if r.name.is_empty() {
                                "this object".to_string()
                            } else {
                                format!("`{}`", r.name)
                            };
                            let fields: Vec<&str> =
                                r.fields.iter().map(|(n, _)| n.as_str()).collect();
                            let mut d = Diagnostic::error(
                                field.span,
                                format!("{what} has no field `{}`", field.name),
                            )
                            .expected(format!(
                                "one of {}",
                                if fields.is_empty() {
                                    "(no fields)".to_string()
                                } else {
                                    fields.join(", ")
                                }
                            ));
                            if let Some(m) = did_you_mean(&field.name, fields.iter().copied()) {
                                d = d.hint(format!("did you mean `{m}`?"));
                            } else if r.name == "input" {
                                d = d.hint(format!("declare it under `[input]` in the front matter: `{} = \"string\"`", field.name));
                            }
                            self.error(d);
                            return poisoned();
                        }
                    },
                    other => {
                        let hint = match other {
                            Ty::List(_) => {
                                "a list has no fields: take an item (`x[0]`) or loop over it"
                            }
                            _ => "only objects have fields",
                        };
                        self.error(
                            Diagnostic::error(
                                field.span,
                                format!("{other} has no field `{}`", field.name),
                            )
                            .hint(hint),
                        );
                        return poisoned();
                    }
                };
                (
                    out,
                    if optional {
                        field_ty.optional()
                    } else {
                        field_ty
                    },
                )
            }
            ExprKind::Index(target, index) => {
                let (x, ty_of_target) = self.expr(target);
                let (i, ity) = self.expr(index);
                let out = vm::Expr::Index(Box::new(x), Box::new(i));
                let ty = match (ty_of_target.required(), &ity) {
                    (Ty::Json, _) => Ty::Json,
                    (Ty::List(t), Ty::Int | Ty::Json) => t.as_ref().clone(),
                    (Ty::Map(t), Ty::Str | Ty::Json) => t.as_ref().clone().optional(),
                    (Ty::Record(_), Ty::Str | Ty::Json) => Ty::Json,
                    (t, i) => {
                        self.error(
                            Diagnostic::error(index.span, format!("cannot index {t} with {i}"))
                                .expected("a list with an int, or an object with a string"),
                        );
                        return poisoned();
                    }
                };
                // Indexing what may be null may give null.
                let ty = if matches!(ty_of_target, Ty::Optional(_)) {
                    ty.optional()
                } else {
                    ty
                };
                (out, ty)
            }
            ExprKind::Not(inner) => {
                let x = self.condition(inner);
                (vm::Expr::Not(Box::new(x)), Ty::Bool)
            }
            ExprKind::Neg(inner) => {
                let (x, ty) = self.expr(inner);
                if !ty.is_numeric() {
                    self.error(
                        Diagnostic::error(inner.span, format!("cannot negate {ty}"))
                            .expected("a number"),
                    );
                }
                (vm::Expr::Neg(Box::new(x)), ty)
            }
            ExprKind::Binary(op, a, b) => self.binary(*op, a, b, e.span),
            ExprKind::Call(callee, args) => self.call(e, callee, args),
            ExprKind::Error => poisoned(),
        }
    }

    fn binary(&mut self, op: Op, a: &Expr, b: &Expr, span: Span) -> (vm::Expr, Ty) {
        match op {
            Op::And | Op::Or => {
                let (x, y) = (self.condition(a), self.condition(b));
                let e = if op == Op::And {
                    vm::Expr::And(Box::new(x), Box::new(y))
                } else {
                    vm::Expr::Or(Box::new(x), Box::new(y))
                };
                return (e, Ty::Bool);
            }
            Op::Coalesce => {
                let (x, tx) = self.expr(a);
                let (y, ty) = self.expr(b);
                let result = match &tx {
                    Ty::Optional(inner) => {
                        if let Err(e) = ty.assignable_to(inner) {
                            self.error(
                                Diagnostic::error(
                                    b.span,
                                    format!("the default is {ty}, but the value is {inner}"),
                                )
                                .hint(e),
                            );
                        }
                        inner.as_ref().clone()
                    }
                    Ty::Json => ty.clone(),
                    Ty::Null => ty.clone(),
                    other => {
                        self.error(Diagnostic::warning(
                            span,
                            format!("`??` has no effect: the left side is {other} and never null"),
                        ));
                        other.clone()
                    }
                };
                return (vm::Expr::Coalesce(Box::new(x), Box::new(y)), result);
            }
            Op::Vm(_) => {}
        }
        let Op::Vm(op) = op else {
            unreachable!("handled above")
        };
        let (x, tx) = self.expr(a);
        let (y, ty) = self.expr(b);
        let out = vm::Expr::Binary(op, Box::new(x), Box::new(y));
        let numeric = |t: &Ty| matches!(t, Ty::Int | Ty::Float | Ty::Json);
        let result = match op {
            BinOp::Eq | BinOp::Ne => Some(Ty::Bool),
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => match (&tx, &ty) {
                (a, b) if numeric(a) && numeric(b) => Some(Ty::Bool),
                (Ty::Str | Ty::Json, Ty::Str | Ty::Json) => Some(Ty::Bool),
                _ => None,
            },
            BinOp::Add => match (&tx, &ty) {
                (Ty::Int, Ty::Int) => Some(Ty::Int),
                (Ty::Str, Ty::Str) => Some(Ty::Str),
                (Ty::List(p), Ty::List(q)) => Some(Ty::List(Box::new(p.join(q)))),
                (Ty::Json, Ty::Json) => Some(Ty::Json),
                (Ty::Json, t) | (t, Ty::Json) if matches!(t, Ty::Str | Ty::List(_)) => {
                    Some(t.clone())
                }
                (a, b) if numeric(a) && numeric(b) => Some(if *a == Ty::Json || *b == Ty::Json {
                    Ty::Json
                } else {
                    Ty::Float
                }),
                _ => None,
            },
            BinOp::Sub | BinOp::Mul | BinOp::Rem => match (&tx, &ty) {
                (Ty::Int, Ty::Int) => Some(Ty::Int),
                (a, b) if numeric(a) && numeric(b) => Some(if *a == Ty::Json || *b == Ty::Json {
                    Ty::Json
                } else {
                    Ty::Float
                }),
                _ => None,
            },
            BinOp::Div => (numeric(&tx) && numeric(&ty)).then_some(Ty::Float),
        };
        match result {
            Some(t) => (out, t),
            None => {
                let hint = match (op, &tx, &ty) {
                    (BinOp::Add, Ty::Str, _) | (BinOp::Add, _, Ty::Str) => {
                        "put values into text with a template: \"{x} items\""
                    }
                    (_, Ty::Optional(_), _) | (_, _, Ty::Optional(_)) => {
                        "the value may be null: give a default with `x ?? 0`"
                    }
                    _ => "convert first: `int(x)`, `float(x)`, `str(x)`",
                };
                self.error(
                    Diagnostic::error(
                        span,
                        format!("cannot apply `{}` to {tx} and {ty}", op.symbol()),
                    )
                    .hint(hint),
                );
                poisoned()
            }
        }
    }

    fn call(&mut self, whole: &Expr, callee: &Expr, args: &[Arg]) -> (vm::Expr, Ty) {
        match &callee.kind {
            ExprKind::Var(name) if self.lookup(name).is_none() => {
                if name == "fail" {
                    self.error(
                        Diagnostic::error(
                            whole.span,
                            "`fail(...)` is a statement; it ends the run",
                        )
                        .hint("write it on its own line"),
                    );
                    return poisoned();
                }
                let Some(b) = builtin_named(name) else {
                    let names: Vec<&str> = Builtin::ALL.iter().map(|(n, _)| *n).collect();
                    let mut d =
                        Diagnostic::error(callee.span, format!("unknown function `{name}`"))
                            .expected(
                            "a built-in function or a capability call `interface.function(...)`",
                        );
                    if let Some(m) = did_you_mean(name, names.iter().copied()) {
                        d = d.hint(format!("did you mean `{m}`?"));
                    } else {
                        d = d.hint(format!("the built-in functions are {}", names.join(", ")));
                    }
                    self.error(d);
                    return poisoned();
                };
                if let Some(named) = args.iter().find_map(|a| a.name.as_ref()) {
                    self.error(Diagnostic::error(
                        named.span,
                        format!("`{name}` takes its arguments in order, without names"),
                    ));
                }
                let checked: Vec<(vm::Expr, Ty)> =
                    args.iter().map(|a| self.expr(&a.value)).collect();
                let types: Vec<Ty> = checked.iter().map(|(_, t)| t.clone()).collect();
                let literal = args.get(1).and_then(|a| match &a.value.kind {
                    ExprKind::Str(p) => match p.as_slice() {
                        [TemplatePart::Text(t)] => Some(t.clone()),
                        _ => None,
                    },
                    _ => None,
                });
                let ty = match builtin_type(b, &types, literal.as_deref()) {
                    Ok(t) => t,
                    Err((expected, hint)) => {
                        let shown: Vec<String> = types.iter().map(Ty::to_string).collect();
                        let mut d = Diagnostic::error(
                            whole.span,
                            format!("`{name}` cannot take ({})", shown.join(", ")),
                        )
                        .expected(expected);
                        if let Some(h) = hint {
                            d = d.hint(h);
                        }
                        self.error(d);
                        Ty::Json
                    }
                };
                (
                    vm::Expr::Builtin(b, checked.into_iter().map(|(e, _)| e).collect()),
                    ty,
                )
            }
            ExprKind::Field(target, function) => {
                let ExprKind::Var(iface) = &target.kind else {
                    self.error(
                        Diagnostic::error(
                            callee.span,
                            "only capabilities and built-in functions can be called",
                        )
                        .hint(
                            "built-in functions take the value first: `len(x)`, `join(xs, \", \")`",
                        ),
                    );
                    return poisoned();
                };
                if self.lookup(iface).is_some() {
                    self.error(
                        Diagnostic::error(
                            callee.span,
                            format!("`{iface}` is a variable; values have no methods"),
                        )
                        .hint(format!(
                            "built-in functions take the value first: `{}({iface}, ...)`",
                            function.name
                        )),
                    );
                    return poisoned();
                }
                self.capability_call(whole, iface, &target.span, function, args)
            }
            _ => {
                self.error(Diagnostic::error(
                    callee.span,
                    "only capabilities and built-in functions can be called",
                ));
                poisoned()
            }
        }
    }

    fn capability_call(
        &mut self,
        whole: &Expr,
        iface: &str,
        iface_span: &Span,
        function: &Ident,
        args: &[Arg],
    ) -> (vm::Expr, Ty) {
        let Some(functions) = self.interfaces.0.get(iface) else {
            let names: Vec<&str> = self.interfaces.0.keys().map(String::as_str).collect();
            let mut d = Diagnostic::error(*iface_span, format!("unknown capability `{iface}`"))
                .expected(format!("one of {}", names.join(", ")));
            if let Some(m) = did_you_mean(iface, names.iter().copied()) {
                d = d.hint(format!("did you mean `{m}`?"));
            }
            self.error(d);
            return poisoned();
        };
        if iface == "log" {
            self.error(
                Diagnostic::error(
                    whole.span,
                    "`log` is written as a statement: `log.info(\"...\")`",
                )
                .hint("levels: trace, debug, info, warn, error"),
            );
            return poisoned();
        }
        let Some(sig) = functions.get(&function.name) else {
            let names: Vec<&str> = functions.keys().map(String::as_str).collect();
            let mut d = Diagnostic::error(
                function.span,
                format!("`{iface}` has no function `{}`", function.name),
            )
            .expected(format!("one of {}", names.join(", ")));
            if let Some(m) = did_you_mean(&function.name, names.iter().copied()) {
                d = d.hint(format!("did you mean `{iface}.{m}`?"));
            } else if function.name.contains('-') || snake(&function.name) != function.name {
                d = d.hint("write WIT names in snake_case");
            }
            self.error(d);
            return poisoned();
        };
        let sig: Signature = sig.clone();
        self.require_grant(iface, &sig.wit_name, whole.span);
        if iface == "skills" {
            self.granted_skill(args);
        }
        let args = self.arguments(iface, &sig, whole.span, args);
        self.usage
            .functions
            .insert((iface.to_string(), sig.wit_name.clone()));
        (
            vm::Expr::Call {
                interface: iface.to_string(),
                function: sig.wit_name.clone(),
                args,
            },
            sig.result.clone(),
        )
    }

    /// Matches arguments to parameters: positional first, then by name.
    fn arguments(
        &mut self,
        iface: &str,
        sig: &Signature,
        span: Span,
        args: &[Arg],
    ) -> Vec<vm::Expr> {
        let mut slots: Vec<Option<(vm::Expr, Ty, Span)>> = vec![None; sig.params.len()];
        let mut seen_named = false;
        for (i, arg) in args.iter().enumerate() {
            let index = match &arg.name {
                None if seen_named => {
                    self.error(
                        Diagnostic::error(
                            arg.value.span,
                            "a positional argument after a named one",
                        )
                        .hint("name every argument after the first named one"),
                    );
                    continue;
                }
                None if i >= sig.params.len() => {
                    self.error(Diagnostic::error(
                        arg.value.span,
                        format!(
                            "too many arguments: {} takes {}",
                            sig.render(iface),
                            sig.params.len()
                        ),
                    ));
                    continue;
                }
                None => i,
                Some(name) => {
                    seen_named = true;
                    match sig.params.iter().position(|(p, _)| *p == name.name) {
                        Some(p) => p,
                        None => {
                            let names: Vec<&str> =
                                sig.params.iter().map(|(n, _)| n.as_str()).collect();
                            let mut d = Diagnostic::error(
                                name.span,
                                format!(
                                    "`{iface}.{}` has no parameter `{}`",
                                    snake(&sig.wit_name),
                                    name.name
                                ),
                            )
                            .expected(sig.render(iface));
                            if let Some(m) = did_you_mean(&name.name, names.iter().copied()) {
                                d = d.hint(format!("did you mean `{m}`?"));
                            }
                            self.error(d);
                            continue;
                        }
                    }
                }
            };
            if slots[index].is_some() {
                self.error(Diagnostic::error(
                    arg.value.span,
                    format!("`{}` is given twice", sig.params[index].0),
                ));
                continue;
            }
            let (e, t) = self.expr(&arg.value);
            slots[index] = Some((e, t, arg.value.span));
        }
        let mut out = Vec::new();
        for ((name, want), slot) in sig.params.iter().zip(slots) {
            match slot {
                Some((e, t, at)) => {
                    if let Err(reason) = t.assignable_to(want) {
                        self.error(
                            Diagnostic::error(
                                at,
                                format!(
                                    "`{name}` of `{iface}.{}` must be {want}; this is {t}",
                                    snake(&sig.wit_name)
                                ),
                            )
                            .expected(want.describe())
                            .hint(reason),
                        );
                    }
                    out.push(e);
                }
                None if omittable(want) => out.push(vm::Expr::Value(Value::Null)),
                None => {
                    self.error(
                        Diagnostic::error(
                            span,
                            format!("`{iface}.{}` needs `{name}`", snake(&sig.wit_name)),
                        )
                        .expected(sig.render(iface))
                        .hint(format!("`{name}` is {}", want.describe())),
                    );
                    out.push(vm::Expr::Value(Value::Null));
                }
            }
        }
        out
    }

    /// Checks that the front matter grants what a call needs.
    fn require_grant(&mut self, iface: &str, function: &str, span: Span) {
        let Some((key, level)) = grant_needed(iface, function) else {
            return;
        };
        let g = self.grants;
        let granted = match key {
            "board_read" => !g.board_read.is_empty() || !g.board_write.is_empty(),
            "board_write" => !g.board_write.is_empty(),
            "memory_read" => !g.memory_read.is_empty() || !g.memory_write.is_empty(),
            "memory_write" => !g.memory_write.is_empty(),
            "fleet" if level == "write" => g.fleet.as_deref() == Some("write"),
            "fleet" => g.fleet.is_some(),
            "kpi_read" => !g.kpi_read.is_empty(),
            "skills" => !g.skills.is_empty(),
            _ => false,
        };
        if !granted {
            let example = match key {
                "fleet" => format!("fleet = \"{level}\""),
                k if k.starts_with("board") => format!("{k} = [\"Blocked\"]"),
                "kpi_read" => "kpi_read = [\"ci.green\"]".to_string(),
                "skills" => "skills = [\"text-stats\"]".to_string(),
                k => format!("{k} = [\"agent\"]"),
            };
            self.error(
                Diagnostic::error(span, format!("`{iface}.{}` needs the `{key}` capability, which the front matter does not declare", snake(function)))
                    .expected(format!("`{example}` under `[capabilities]`"))
                    .hint("a workflow may use only what its front matter asks for; a reviewer approves that list"),
            );
        }
        let entry = self.usage.grants.entry(key).or_insert(level);
        if level == "write" {
            *entry = "write";
        }
    }

    /// A skill named by a literal must be one the front matter grants.
    fn granted_skill(&mut self, args: &[Arg]) {
        let named = args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "name"))
            .or_else(|| args.first().filter(|a| a.name.is_none()));
        let Some(arg) = named else { return };
        let ExprKind::Str(parts) = &arg.value.kind else {
            return;
        };
        let [TemplatePart::Text(name)] = parts.as_slice() else {
            return;
        };
        let granted = &self.grants.skills;
        if !granted.is_empty() && !granted.iter().any(|g| g == "*" || g == name) {
            self.error(
                Diagnostic::error(
                    arg.value.span,
                    format!("skill `{name}` is not in the front matter's `skills`"),
                )
                .expected(format!("one of {}", granted.join(", ")))
                .hint(format!(
                    "add it: `skills = [{}, \"{name}\"]`",
                    granted
                        .iter()
                        .map(|g| format!("\"{g}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    }

    fn unused_grants(&mut self) {
        let spans = self.grants.spans.clone();
        for (key, span) in spans {
            let used = match key.as_str() {
                // Writing a list implies reading it.
                "board_read" => self.usage.grants.contains_key("board_read"),
                "board_write" => self.usage.grants.contains_key("board_write"),
                "memory_read" => self.usage.grants.contains_key("memory_read"),
                "memory_write" => self.usage.grants.contains_key("memory_write"),
                "fleet" => self.usage.grants.contains_key("fleet"),
                "kpi_read" => self.usage.grants.contains_key("kpi_read"),
                "skills" => self.usage.grants.contains_key("skills"),
                _ => true,
            };
            if !used {
                self.error(
                    Diagnostic::warning(span, format!("`{key}` is declared but no step needs it"))
                        .hint("remove it: the compiled skill is granted only what its steps use"),
                );
            }
        }
    }
}

/// The grant key a capability function needs, and at what level.
pub fn grant_needed(iface: &str, function: &str) -> Option<(&'static str, &'static str)> {
    Some(match (iface, function) {
        ("log", _) => return None,
        ("board", "lists" | "cards" | "get-card") => ("board_read", "read"),
        ("board", _) => ("board_write", "write"),
        ("memory", "search") => ("memory_read", "read"),
        ("memory", _) => ("memory_write", "write"),
        ("fleet", "send-heartbeat") => ("fleet", "write"),
        ("fleet", _) => ("fleet", "read"),
        ("kpi", _) => ("kpi_read", "read"),
        ("skills", _) => ("skills", "read"),
        _ => ("unknown", "read"),
    })
}

type BuiltinError = (String, Option<String>);

/// The result type of a built-in for these argument types.
fn builtin_type(b: Builtin, args: &[Ty], literal: Option<&str>) -> Result<Ty, BuiltinError> {
    use Ty::*;
    let e = |expected: &str| -> Result<Ty, BuiltinError> { Err((expected.to_string(), None)) };
    let arity = |n: std::ops::RangeInclusive<usize>, expected: &str| -> Result<(), BuiltinError> {
        if n.contains(&args.len()) {
            Ok(())
        } else {
            Err((expected.to_string(), None))
        }
    };
    let list_of = |t: &Ty| -> Option<Ty> {
        match t {
            List(x) => Some(x.as_ref().clone()),
            Json => Some(Json),
            _ => None,
        }
    };
    let is = |t: &Ty, want: &Ty| t.assignable_to(want).is_ok() && !matches!(t, Optional(_));
    match b {
        Builtin::Len => {
            arity(1..=1, "`len(list | string | object)`")?;
            match &args[0] {
                List(_) | Str | Map(_) | Record(_) | Json => Ok(Int),
                Optional(_) => Err((
                    "`len(list | string | object)`".into(),
                    Some("it may be null: `len(x ?? [])`".into()),
                )),
                _ => e("`len(list | string | object)`"),
            }
        }
        Builtin::Str => arity(1..=1, "`str(value)`").map(|_| Str),
        Builtin::Int | Builtin::Float => {
            arity(1..=1, "one number or string")?;
            match &args[0] {
                Int | Float | Str | Json => Ok(if b == Builtin::Int { Int } else { Float }),
                _ => e("one number or string"),
            }
        }
        Builtin::Join => {
            arity(2..=2, "`join(list, separator)`")?;
            match (list_of(&args[0]), &args[1]) {
                (Some(_), Str | Json) => Ok(Str),
                _ => e("`join(list, separator)`"),
            }
        }
        Builtin::Split => {
            arity(2..=2, "`split(string, separator)`")?;
            if is(&args[0], &Str) && is(&args[1], &Str) {
                Ok(List(Box::new(Str)))
            } else {
                e("`split(string, separator)`")
            }
        }
        Builtin::Lower | Builtin::Upper | Builtin::Trim => {
            arity(1..=1, "one string")?;
            if is(&args[0], &Str) {
                Ok(Str)
            } else {
                e("one string")
            }
        }
        Builtin::Contains => {
            arity(2..=2, "`contains(string, part)` or `contains(list, item)`")?;
            match (&args[0], &args[1]) {
                (Str, Str | Json) | (Json, _) => Ok(Bool),
                (List(item), x)
                    if x.assignable_to(item).is_ok() || item.assignable_to(x).is_ok() =>
                {
                    Ok(Bool)
                }
                _ => e("`contains(string, part)` or `contains(list, item)`"),
            }
        }
        Builtin::StartsWith | Builtin::EndsWith => {
            arity(2..=2, "two strings")?;
            if is(&args[0], &Str) && is(&args[1], &Str) {
                Ok(Bool)
            } else {
                e("two strings")
            }
        }
        Builtin::Keys => {
            arity(1..=1, "`keys(object)`")?;
            match &args[0] {
                Map(_) | Record(_) | Json => Ok(List(Box::new(Str))),
                _ => e("`keys(object)`"),
            }
        }
        Builtin::Range => {
            arity(1..=2, "`range(n)` or `range(from, to)`")?;
            if args.iter().all(|t| is(t, &Int)) {
                Ok(List(Box::new(Int)))
            } else {
                e("`range(n)` or `range(from, to)` with ints")
            }
        }
        Builtin::Sum | Builtin::Min | Builtin::Max => {
            arity(1..=1, "a list of numbers")?;
            let item = list_of(&args[0]).filter(|t| t.is_numeric());
            match (b, item) {
                (_, None) => e("a list of numbers"),
                (Builtin::Sum, Some(t)) => Ok(t),
                (_, Some(t)) => Ok(t.optional()),
            }
        }
        Builtin::Round => {
            arity(1..=1, "one number")?;
            if args[0].is_numeric() {
                Ok(Int)
            } else {
                e("one number")
            }
        }
        Builtin::Abs => {
            arity(1..=1, "one number")?;
            if args[0].is_numeric() {
                Ok(args[0].clone())
            } else {
                e("one number")
            }
        }
        Builtin::Sort | Builtin::Reverse => {
            arity(1..=1, "one list")?;
            match list_of(&args[0]) {
                Some(item) if b == Builtin::Reverse || matches!(item, Int | Float | Str | Json) => {
                    Ok(List(Box::new(item)))
                }
                Some(_) => Err((
                    "a list of numbers or strings".into(),
                    Some("sort objects with `sort_by(list, \"field\")`".into()),
                )),
                None => e("one list"),
            }
        }
        Builtin::SortBy => {
            arity(2..=2, "`sort_by(list, \"field\")`")?;
            let Some(item) = list_of(&args[0]) else {
                return e("`sort_by(list, \"field\")`");
            };
            if !is(&args[1], &Str) {
                return e("`sort_by(list, \"field\")`");
            }
            if let (Record(r), Some(field)) = (&item, literal) {
                match r.field(field) {
                    Some(Int | Float | Str) => {}
                    Some(t) => {
                        return Err((
                            format!("a field of numbers or strings; `{field}` is {t}"),
                            None,
                        ))
                    }
                    None => {
                        let names: Vec<&str> = r.fields.iter().map(|(n, _)| n.as_str()).collect();
                        return Err((
                            format!("a field of `{}`: {}", r.name, names.join(", ")),
                            did_you_mean(field, names.iter().copied())
                                .map(|m| format!("did you mean \"{m}\"?")),
                        ));
                    }
                }
            }
            Ok(List(Box::new(item)))
        }
        Builtin::Slice => {
            arity(2..=3, "`slice(list, from, to)`")?;
            match list_of(&args[0]) {
                Some(item) if args[1..].iter().all(|t| is(t, &Int)) => Ok(List(Box::new(item))),
                _ => e("`slice(list, from, to)` with int positions"),
            }
        }
    }
}
