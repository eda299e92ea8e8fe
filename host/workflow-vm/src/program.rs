//! The program format: what the compiler emits and the interpreter runs.
//!
//! Names are already resolved to variable slots and capability calls to
//! `(interface, function)` pairs the component imports; every type has been
//! checked. Each statement keeps its source line so a run-time error can say
//! where it happened. The format is serialised as JSON into the component's
//! data; [`FORMAT`] changes whenever the meaning of a program changes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The version of this format. The interpreter refuses any other.
pub const FORMAT: u32 = 1;

/// A compiled workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The workflow's name (for messages).
    pub name: String,
    /// Input fields that have a default, applied when the input lacks them.
    pub defaults: Vec<(String, Value)>,
    /// How many variable slots the body uses; slot 0 holds the input.
    pub slots: u32,
    /// The steps.
    pub body: Vec<Stmt>,
}

/// One statement and the source line it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    /// 1-based line in the workflow file.
    pub line: u32,
    /// What it does.
    pub kind: StmtKind,
}

/// What a statement does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StmtKind {
    /// `let x = e` and `x = e`.
    Set { slot: u32, value: Expr },
    /// `if c { } else if c { } else { }`.
    If {
        branches: Vec<(Expr, Vec<Stmt>)>,
        otherwise: Vec<Stmt>,
    },
    /// `for x in list { }`: the list is evaluated once.
    For {
        slot: u32,
        list: Expr,
        body: Vec<Stmt>,
    },
    /// A call whose result is not used.
    Eval(Expr),
    /// `return e`: ends the run with `e` as the output.
    Return(Expr),
    /// `fail(code, message)`: ends the run with a skill error.
    Fail { code: Expr, message: Expr },
    /// `log.info(message)` and its siblings.
    Log { level: Level, message: Expr },
}

/// A log level of the `log` interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// Every level, by its name in a workflow.
    pub const ALL: [(&'static str, Level); 5] = [
        ("trace", Level::Trace),
        ("debug", Level::Debug),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("error", Level::Error),
    ];
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// A literal.
    Value(Value),
    /// A variable's value.
    Var(u32),
    /// `[a, b]`.
    List(Vec<Expr>),
    /// `{ key: value }`, keys in source order.
    Object(Vec<(String, Expr)>),
    /// `e.name`: a missing field of an object is `null`.
    Field(Box<Expr>, String),
    /// `e[i]`: a list by position (negative counts from the end), an object
    /// by key.
    Index(Box<Expr>, Box<Expr>),
    /// `not e`.
    Not(Box<Expr>),
    /// `-e`.
    Neg(Box<Expr>),
    /// Arithmetic and comparison.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a and b`: `b` is evaluated only when `a` is true.
    And(Box<Expr>, Box<Expr>),
    /// `a or b`: `b` is evaluated only when `a` is false.
    Or(Box<Expr>, Box<Expr>),
    /// `a ?? b`: `b` when `a` is null.
    Coalesce(Box<Expr>, Box<Expr>),
    /// `"text {e} text"`.
    Template(Vec<Part>),
    /// A built-in function.
    Builtin(Builtin, Vec<Expr>),
    /// A host capability: `interface.function(args)`, arguments in the
    /// order of the WIT signature, as JSON shaped like the WIT types.
    Call {
        interface: String,
        function: String,
        args: Vec<Expr>,
    },
}

/// One piece of a string template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Part {
    Text(String),
    Expr(Expr),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
        }
    }
}

/// The built-in functions. Their types are checked by the compiler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Builtin {
    /// `len(list | string | object) -> int` (a string's length in characters).
    Len,
    /// `str(any) -> string`: strings as they are, anything else as JSON.
    Str,
    /// `int(number | string) -> int`: floats are truncated.
    Int,
    /// `float(number | string) -> float`.
    Float,
    /// `join(list<string>, sep) -> string`.
    Join,
    /// `split(string, sep) -> list<string>`.
    Split,
    /// `lower(string) -> string`.
    Lower,
    /// `upper(string) -> string`.
    Upper,
    /// `trim(string) -> string`.
    Trim,
    /// `contains(string, string) | contains(list, any) -> bool`.
    Contains,
    /// `starts_with(string, string) -> bool`.
    StartsWith,
    /// `ends_with(string, string) -> bool`.
    EndsWith,
    /// `keys(object) -> list<string>`.
    Keys,
    /// `range(n)` or `range(from, to) -> list<int>`.
    Range,
    /// `sum(list<number>) -> number`.
    Sum,
    /// `min(list<number>) -> number` (null for an empty list).
    Min,
    /// `max(list<number>) -> number` (null for an empty list).
    Max,
    /// `round(number) -> int`.
    Round,
    /// `abs(number) -> number`.
    Abs,
    /// `sort(list) -> list`: numbers and strings in ascending order.
    Sort,
    /// `sort_by(list<object>, field) -> list<object>`.
    SortBy,
    /// `reverse(list) -> list`.
    Reverse,
    /// `slice(list, from, to) -> list`.
    Slice,
}

impl Builtin {
    /// Every built-in, by its name in a workflow.
    pub const ALL: [(&'static str, Builtin); 23] = [
        ("len", Builtin::Len),
        ("str", Builtin::Str),
        ("int", Builtin::Int),
        ("float", Builtin::Float),
        ("join", Builtin::Join),
        ("split", Builtin::Split),
        ("lower", Builtin::Lower),
        ("upper", Builtin::Upper),
        ("trim", Builtin::Trim),
        ("contains", Builtin::Contains),
        ("starts_with", Builtin::StartsWith),
        ("ends_with", Builtin::EndsWith),
        ("keys", Builtin::Keys),
        ("range", Builtin::Range),
        ("sum", Builtin::Sum),
        ("min", Builtin::Min),
        ("max", Builtin::Max),
        ("round", Builtin::Round),
        ("abs", Builtin::Abs),
        ("sort", Builtin::Sort),
        ("sort_by", Builtin::SortBy),
        ("reverse", Builtin::Reverse),
        ("slice", Builtin::Slice),
    ];

    /// The built-in's name in a workflow.
    pub fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}
