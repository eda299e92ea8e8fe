//! The steps' language: tokens, the syntax tree, and the parser.
//!
//! One statement per line; blocks in braces; expressions as in most
//! languages an LLM has read (Python's `and`/`or`/`not`, JavaScript's object
//! literals and `??`). The parser recovers at the next line after an error,
//! so one file reports all its syntax errors. It never panics and never
//! recurses without bound: nesting is limited ([`MAX_DEPTH`]).

use super::diag::{Diagnostic, Diagnostics, Span};
use super::markdown::Block;
use darkfactory_workflow_vm::program::BinOp;

/// How deeply blocks and expressions may nest.
pub const MAX_DEPTH: usize = 32;
/// How many statements a workflow may have.
pub const MAX_STATEMENTS: usize = 2_000;

/// A name and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub span: Span,
    pub kind: StmtKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    Let {
        name: Ident,
        value: Expr,
    },
    Assign {
        name: Ident,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Vec<Stmt>)>,
        otherwise: Option<Vec<Stmt>>,
    },
    For {
        var: Ident,
        list: Expr,
        body: Vec<Stmt>,
    },
    Return(Expr),
    Expr(Expr),
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub span: Span,
    pub kind: ExprKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Float(f64),
    Str(Vec<TemplatePart>),
    Bool(bool),
    Null,
    Var(String),
    List(Vec<Expr>),
    Object(Vec<(Ident, Expr)>),
    Field(Box<Expr>, Ident),
    Index(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    Call(Box<Expr>, Vec<Arg>),
    /// Where a syntax error was (already reported).
    Error,
}

/// A binary operator of the language.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Vm(BinOp),
    And,
    Or,
    Coalesce,
}

impl Op {
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Vm(op) => op.symbol(),
            Op::And => "and",
            Op::Or => "or",
            Op::Coalesce => "??",
        }
    }
}

/// A piece of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplatePart {
    Text(String),
    Expr(Expr),
}

/// A call argument, named (`list: "Blocked"`) or not.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(Vec<RawPart>),
    Newline,
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
enum RawPart {
    Text(String),
    /// The source of an interpolation and where it starts.
    Expr(String, u32, u32),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    span: Span,
}

const PUNCT: [&str; 22] = [
    "==", "!=", "<=", ">=", "??", "(", ")", "[", "]", "{", "}", ",", ":", ".", "=", "<", ">", "+",
    "-", "*", "/", "%",
];

const KEYWORDS: [&str; 12] = [
    "let", "if", "else", "for", "in", "return", "and", "or", "not", "true", "false", "null",
];

/// Splits one code text into tokens; `line`/`col` is where it starts.
fn lex(text: &str, line: u32, col: u32, diags: &mut Diagnostics) -> Vec<Token> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut l, mut c) = (0usize, line, col);
    while i < chars.len() {
        let ch = chars[i];
        let start = (l, c);
        let span = |len: usize| Span::new(start.0, start.1, len as u32);
        if ch == '\n' {
            out.push(Token {
                tok: Tok::Newline,
                span: span(1),
            });
            i += 1;
            l += 1;
            c = 1;
            continue;
        }
        if ch.is_whitespace() {
            i += 1;
            c += 1;
            continue;
        }
        if ch == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
                c += 1;
            }
            continue;
        }
        if ch.is_ascii_alphabetic() || ch == '_' {
            let s: String = chars[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            let n = s.chars().count();
            out.push(Token {
                tok: Tok::Ident(s),
                span: span(n),
            });
            i += n;
            c += n as u32;
            continue;
        }
        if ch.is_ascii_digit() {
            let s: String = chars[i..]
                .iter()
                .enumerate()
                .take_while(|(k, c)| {
                    c.is_ascii_digit()
                        || **c == '_'
                        || (**c == '.' && chars.get(i + k + 1).is_some_and(|d| d.is_ascii_digit()))
                })
                .map(|(_, c)| *c)
                .collect();
            let n = s.chars().count();
            let clean = s.replace('_', "");
            let tok = if clean.contains('.') {
                clean.parse().map(Tok::Float).ok()
            } else {
                clean.parse().map(Tok::Int).ok()
            };
            match tok {
                Some(tok) => out.push(Token { tok, span: span(n) }),
                None => {
                    diags.push(Diagnostic::error(
                        span(n),
                        format!("`{s}` does not fit a 64-bit integer"),
                    ));
                    out.push(Token {
                        tok: Tok::Int(0),
                        span: span(n),
                    });
                }
            }
            i += n;
            c += n as u32;
            continue;
        }
        if ch == '"' {
            let (tok, used, lines, end_col) = lex_string(&chars[i..], l, c, diags);
            out.push(Token {
                tok,
                span: span(if lines == 0 { used } else { 1 }),
            });
            i += used;
            l += lines;
            c = end_col;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if let Some(p) = PUNCT.iter().find(|p| rest.starts_with(**p)) {
            out.push(Token {
                tok: Tok::Punct(p),
                span: span(p.len()),
            });
            i += p.len();
            c += p.len() as u32;
            continue;
        }
        // Other languages' spellings: one error each, and the meaning they
        // clearly have, so that checking goes on without a cascade.
        if ch == '\'' {
            let len = chars[i + 1..]
                .iter()
                .take_while(|c| **c != '\'' && **c != '\n')
                .count();
            let closed = chars.get(i + 1 + len) == Some(&'\'');
            let text: String = chars[i + 1..i + 1 + len].iter().collect();
            diags.push(
                Diagnostic::error(span(len + 2), "strings are written in double quotes")
                    .expected(format!("\"{text}\""))
                    .hint("single quotes are not strings in a workflow"),
            );
            out.push(Token {
                tok: Tok::Str(vec![RawPart::Text(text)]),
                span: span(len + 2),
            });
            let used = len + 1 + usize::from(closed);
            i += used;
            c += used as u32;
            continue;
        }
        let word = match (ch, chars.get(i + 1)) {
            ('&', Some('&')) => Some(("and", 2)),
            ('|', Some('|')) => Some(("or", 2)),
            ('!', next) if next != Some(&'=') => Some(("not", 1)),
            _ => None,
        };
        if let Some((word, len)) = word {
            let written: String = chars[i..i + len].iter().collect();
            diags.push(
                Diagnostic::error(span(len), format!("`{written}` is written `{word}`"))
                    .expected(format!("`{word}`")),
            );
            out.push(Token {
                tok: Tok::Ident(word.to_string()),
                span: span(len),
            });
            i += len;
            c += len as u32;
            continue;
        }
        let hint = match ch {
            ';' => "end a statement with a new line",
            _ => "",
        };
        let mut d = Diagnostic::error(span(1), format!("unexpected character `{ch}`"));
        if !hint.is_empty() {
            d = d.hint(hint);
        }
        diags.push(d);
        i += 1;
        c += 1;
    }
    out
}

/// Lexes a string literal starting at `chars[0] == '"'`. Returns the token,
/// characters used, newlines crossed and the column after it.
fn lex_string(
    chars: &[char],
    line: u32,
    col: u32,
    diags: &mut Diagnostics,
) -> (Tok, usize, u32, u32) {
    let mut parts = Vec::new();
    let mut text = String::new();
    let (mut i, l, mut c) = (1usize, line, col + 1);
    loop {
        let Some(&ch) = chars.get(i) else {
            diags.push(
                Diagnostic::error(Span::new(line, col, 1), "this string is not closed")
                    .expected("a closing `\"`"),
            );
            break;
        };
        match ch {
            '"' => {
                i += 1;
                c += 1;
                break;
            }
            '\n' => {
                diags.push(
                    Diagnostic::error(
                        Span::new(line, col, 1),
                        "this string is not closed on its line",
                    )
                    .expected("a closing `\"`")
                    .hint("write a line break inside a string as `\\n`"),
                );
                break;
            }
            '\\' => {
                let esc = chars.get(i + 1).copied();
                let out = match esc {
                    Some('n') => Some('\n'),
                    Some('t') => Some('\t'),
                    Some('"') => Some('"'),
                    Some('\\') => Some('\\'),
                    Some('{') => Some('{'),
                    Some('}') => Some('}'),
                    _ => None,
                };
                match out {
                    Some(o) => text.push(o),
                    None => diags.push(
                        Diagnostic::error(
                            Span::new(l, c, 2),
                            format!("unknown escape `\\{}`", esc.unwrap_or(' ')),
                        )
                        .expected("\\n, \\t, \\\", \\\\, \\{ or \\}"),
                    ),
                }
                i += 2;
                c += 2;
            }
            '{' => {
                // An interpolation: up to the matching `}`, skipping strings.
                let (start_l, start_c) = (l, c + 1);
                let mut depth = 0usize;
                let mut j = i + 1;
                let mut in_str = false;
                let mut closed = false;
                // The expression's text. A quote escaped for the outer string
                // (`\"`) is a quote here; the backslash becomes a space so
                // that columns stay true.
                let mut inner = String::new();
                while let Some(&x) = chars.get(j) {
                    if x == '\n' {
                        break;
                    }
                    if x == '\\' && chars.get(j + 1) == Some(&'"') {
                        // The space goes outside the nested string.
                        inner.push_str(if in_str { "\" " } else { " \"" });
                        in_str = !in_str;
                        j += 2;
                        continue;
                    }
                    inner.push(x);
                    if in_str {
                        if x == '\\' {
                            j += 1;
                            if let Some(&next) = chars.get(j) {
                                inner.push(next);
                            }
                        } else if x == '"' {
                            in_str = false;
                        }
                    } else if x == '"' {
                        in_str = true;
                    } else if x == '{' {
                        depth += 1;
                    } else if x == '}' {
                        if depth == 0 {
                            closed = true;
                            break;
                        }
                        depth -= 1;
                    }
                    j += 1;
                }
                if !closed {
                    diags.push(
                        Diagnostic::error(Span::new(l, c, 1), "this `{` in a string is not closed")
                            .expected("`}` after the expression")
                            .hint("write a literal brace as `\\{`"),
                    );
                    text.push('{');
                    i += 1;
                    c += 1;
                    continue;
                }
                if !text.is_empty() {
                    parts.push(RawPart::Text(std::mem::take(&mut text)));
                }
                inner.pop(); // the closing `}`
                parts.push(RawPart::Expr(inner, start_l, start_c));
                c += (j - i + 1) as u32;
                i = j + 1;
            }
            other => {
                text.push(other);
                i += 1;
                c += 1;
            }
        }
    }
    if !text.is_empty() || parts.is_empty() {
        parts.push(RawPart::Text(text));
    }
    (Tok::Str(parts), i, l - line, c)
}

/// Parses the steps of a workflow (all its `workflow` blocks, in order).
pub fn parse(blocks: &[Block], diags: &mut Diagnostics) -> Vec<Stmt> {
    let mut tokens = Vec::new();
    for block in blocks {
        tokens.extend(lex(&block.text, block.first_line, 1, diags));
        let end = block.first_line + block.text.lines().count() as u32;
        tokens.push(Token {
            tok: Tok::Newline,
            span: Span::new(end, 1, 1),
        });
    }
    let last = tokens.last().map(|t| t.span).unwrap_or_default();
    tokens.push(Token {
        tok: Tok::Eof,
        span: last,
    });
    let mut p = Parser {
        tokens,
        pos: 0,
        diags,
        depth: 0,
        statements: 0,
    };
    let body = p.statements(false);
    if p.statements > MAX_STATEMENTS {
        p.diags.push(
            Diagnostic::error(
                Span::new(blocks.first().map(|b| b.first_line).unwrap_or(1), 1, 1),
                format!(
                    "the workflow has {} statements; at most {MAX_STATEMENTS} are allowed",
                    p.statements
                ),
            )
            .hint("split it into several workflows that call each other"),
        );
    }
    body
}

/// The binary operators' precedence levels, loosest first.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Level {
    Or,
    And,
    Compare,
    Coalesce,
    Sum,
    Product,
}

impl Level {
    /// The operator of this level that `tok` is, if any.
    fn op(self, tok: &Tok) -> Option<Op> {
        Some(match (self, tok) {
            (Level::Or, Tok::Ident(k)) if k == "or" => Op::Or,
            (Level::And, Tok::Ident(k)) if k == "and" => Op::And,
            (Level::Compare, Tok::Punct("==")) => Op::Vm(BinOp::Eq),
            (Level::Compare, Tok::Punct("!=")) => Op::Vm(BinOp::Ne),
            (Level::Compare, Tok::Punct("<")) => Op::Vm(BinOp::Lt),
            (Level::Compare, Tok::Punct("<=")) => Op::Vm(BinOp::Le),
            (Level::Compare, Tok::Punct(">")) => Op::Vm(BinOp::Gt),
            (Level::Compare, Tok::Punct(">=")) => Op::Vm(BinOp::Ge),
            (Level::Coalesce, Tok::Punct("??")) => Op::Coalesce,
            (Level::Sum, Tok::Punct("+")) => Op::Vm(BinOp::Add),
            (Level::Sum, Tok::Punct("-")) => Op::Vm(BinOp::Sub),
            (Level::Product, Tok::Punct("*")) => Op::Vm(BinOp::Mul),
            (Level::Product, Tok::Punct("/")) => Op::Vm(BinOp::Div),
            (Level::Product, Tok::Punct("%")) => Op::Vm(BinOp::Rem),
            _ => return None,
        })
    }
}

/// The prefix operators.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Prefix {
    Not,
    Neg,
}

struct Parser<'d> {
    tokens: Vec<Token>,
    pos: usize,
    diags: &'d mut Diagnostics,
    depth: usize,
    statements: usize,
}

/// A syntax error already reported; the caller skips to the next line.
struct Reported;

type PResult<T> = Result<T, Reported>;

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.tokens[self.pos].tok
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    fn bump(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::Punct(q) if *q == p)
    }

    fn is_keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == k)
    }

    fn skip_newlines(&mut self) {
        while *self.peek() == Tok::Newline {
            self.bump();
        }
    }

    fn describe(tok: &Tok) -> String {
        match tok {
            Tok::Ident(s) if KEYWORDS.contains(&s.as_str()) => format!("keyword `{s}`"),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Int(i) => format!("number `{i}`"),
            Tok::Float(f) => format!("number `{f}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Newline => "end of line".to_string(),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Eof => "end of the steps".to_string(),
        }
    }

    fn fail<T>(&mut self, expected: &str, hint: Option<&str>) -> PResult<T> {
        let found = Self::describe(self.peek());
        let mut d = Diagnostic::error(self.span(), format!("unexpected {found}"))
            .expected(expected.to_string());
        if let Some(h) = hint {
            d = d.hint(h.to_string());
        }
        self.diags.push(d);
        Err(Reported)
    }

    fn expect(&mut self, p: &str, expected: &str) -> PResult<Span> {
        if self.is_punct(p) {
            Ok(self.bump().span)
        } else {
            self.fail(expected, None)
        }
    }

    fn ident(&mut self, expected: &str) -> PResult<Ident> {
        match self.peek().clone() {
            Tok::Ident(name) if !KEYWORDS.contains(&name.as_str()) => {
                let span = self.bump().span;
                Ok(Ident { name, span })
            }
            _ => self.fail(expected, None),
        }
    }

    /// Skips to the end of the current line, or to a `}` that closes the
    /// block being parsed.
    fn recover(&mut self) {
        let mut depth = 0i32;
        loop {
            match self.peek() {
                Tok::Eof => return,
                Tok::Newline if depth <= 0 => return,
                Tok::Punct("{") | Tok::Punct("(") | Tok::Punct("[") => depth += 1,
                Tok::Punct("}") | Tok::Punct(")") | Tok::Punct("]") => {
                    if depth == 0 {
                        return;
                    }
                    depth -= 1;
                }
                _ => {}
            }
            self.bump();
        }
    }

    fn enter(&mut self, span: Span) -> PResult<()> {
        if self.depth >= MAX_DEPTH {
            self.diags.push(
                Diagnostic::error(span, format!("nested more than {MAX_DEPTH} levels deep"))
                    .hint("flatten it: give parts a name with `let`"),
            );
            return Err(Reported);
        }
        self.depth += 1;
        Ok(())
    }

    /// Statements up to `}` (when `in_block`) or the end.
    fn statements(&mut self, in_block: bool) -> Vec<Stmt> {
        let mut out = Vec::new();
        loop {
            self.skip_newlines();
            match self.peek() {
                Tok::Eof => {
                    if in_block {
                        self.diags.push(
                            Diagnostic::error(self.span(), "a block is not closed").expected("`}`"),
                        );
                    }
                    return out;
                }
                Tok::Punct("}") if in_block => return out,
                Tok::Punct("}") => {
                    self.diags.push(
                        Diagnostic::error(self.span(), "unexpected `}`")
                            .hint("there is no block to close here"),
                    );
                    self.bump();
                    continue;
                }
                _ => {}
            }
            self.statements += 1;
            match self.statement() {
                Ok(stmt) => {
                    out.push(stmt);
                    match self.peek() {
                        Tok::Newline | Tok::Eof => {}
                        Tok::Punct("}") if in_block => {}
                        _ => {
                            let _ = self.fail::<()>(
                                "the end of the line",
                                Some("write one statement per line"),
                            );
                            self.recover();
                        }
                    }
                }
                Err(Reported) => {
                    let before = self.pos;
                    self.recover();
                    // A stray `)` or `]` would otherwise stop recovery forever.
                    if self.pos == before
                        && !matches!(self.peek(), Tok::Newline | Tok::Eof | Tok::Punct("}"))
                    {
                        self.bump();
                    }
                }
            }
        }
    }

    fn block(&mut self) -> PResult<Vec<Stmt>> {
        let open = self.expect("{", "`{` to open the block")?;
        self.enter(open)?;
        let body = self.statements(true);
        self.depth -= 1;
        self.expect("}", "`}` to close the block")?;
        Ok(body)
    }

    fn statement(&mut self) -> PResult<Stmt> {
        let start = self.span();
        let kind = match self.peek().clone() {
            Tok::Ident(k) if k == "let" => {
                self.bump();
                let name = self.ident("a variable name after `let`")?;
                self.expect("=", "`=` after the variable's name")?;
                let value = self.expr()?;
                StmtKind::Let { name, value }
            }
            Tok::Ident(k) if k == "if" => {
                self.bump();
                let mut branches = vec![(self.expr()?, self.block()?)];
                let mut otherwise = None;
                while self.is_keyword("else") {
                    self.bump();
                    if self.is_keyword("if") {
                        self.bump();
                        branches.push((self.expr()?, self.block()?));
                    } else {
                        otherwise = Some(self.block()?);
                        break;
                    }
                }
                StmtKind::If {
                    branches,
                    otherwise,
                }
            }
            Tok::Ident(k) if k == "for" => {
                self.bump();
                let var = self.ident("a variable name after `for`")?;
                if !self.is_keyword("in") {
                    return self.fail("`in`", Some("write `for item in list { ... }`"));
                }
                self.bump();
                let list = self.expr()?;
                StmtKind::For {
                    var,
                    list,
                    body: self.block()?,
                }
            }
            Tok::Ident(k) if k == "return" => {
                self.bump();
                if matches!(self.peek(), Tok::Newline | Tok::Eof | Tok::Punct("}")) {
                    return self.fail(
                        "the value to return",
                        Some("write `return { ... }`; the output is JSON"),
                    );
                }
                StmtKind::Return(self.expr()?)
            }
            Tok::Ident(k) if k == "while" || k == "loop" => {
                return self.fail(
                    "a statement",
                    Some("there is no `while`: loop over a list with `for item in list`"),
                );
            }
            Tok::Ident(k) if k == "var" || k == "const" => {
                return self.fail("a statement", Some("declare a variable with `let`"));
            }
            _ => {
                let e = self.expr()?;
                if self.is_punct("=") {
                    self.bump();
                    let value = self.expr()?;
                    match e.kind {
                        ExprKind::Var(name) => StmtKind::Assign {
                            name: Ident { name, span: e.span },
                            value,
                        },
                        _ => {
                            self.diags.push(
                                Diagnostic::error(e.span, "only a variable can be assigned")
                                    .hint("build a new value instead: `x = { ...fields }` with every field"),
                            );
                            return Err(Reported);
                        }
                    }
                } else {
                    StmtKind::Expr(e)
                }
            }
        };
        Ok(Stmt { span: start, kind })
    }

    fn expr(&mut self) -> PResult<Expr> {
        let span = self.span();
        self.enter(span)?;
        let e = self.level(Level::Or);
        self.depth -= 1;
        e
    }

    fn binary(&mut self, op: Op, a: Expr, b: Expr) -> Expr {
        Expr {
            span: a.span.to(b.span),
            kind: ExprKind::Binary(op, Box::new(a), Box::new(b)),
        }
    }

    /// The operand of a level: the next tighter level, or a prefix
    /// operator (`not` below `and`, `-` below `* / %`).
    fn operand(&mut self, level: Level) -> PResult<Expr> {
        match level {
            Level::Or => self.level(Level::And),
            Level::And => self.prefix(Prefix::Not),
            Level::Compare => self.level(Level::Coalesce),
            Level::Coalesce => self.level(Level::Sum),
            Level::Sum => self.level(Level::Product),
            Level::Product => self.prefix(Prefix::Neg),
        }
    }

    /// Left-associative binary operators of one level; comparisons do not
    /// chain.
    fn level(&mut self, level: Level) -> PResult<Expr> {
        let mut e = self.operand(level)?;
        while let Some(op) = level.op(self.peek()) {
            self.bump();
            self.skip_newlines();
            let r = self.operand(level)?;
            e = self.binary(op, e, r);
            if level == Level::Compare {
                if level.op(self.peek()).is_some() {
                    return self.fail(
                        "the end of the comparison",
                        Some("comparisons do not chain: write `a < b and b < c`"),
                    );
                }
                break;
            }
        }
        Ok(e)
    }

    fn prefix(&mut self, prefix: Prefix) -> PResult<Expr> {
        let found = match prefix {
            Prefix::Not => self.is_keyword("not"),
            Prefix::Neg => self.is_punct("-"),
        };
        if !found {
            return match prefix {
                Prefix::Not => self.level(Level::Compare),
                Prefix::Neg => self.postfix(),
            };
        }
        let span = self.bump().span;
        self.enter(span)?;
        let inner = self.prefix(prefix);
        self.depth -= 1;
        let inner = Box::new(inner?);
        Ok(Expr {
            span: span.to(inner.span),
            kind: match prefix {
                Prefix::Not => ExprKind::Not(inner),
                Prefix::Neg => ExprKind::Neg(inner),
            },
        })
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            if self.is_punct(".") {
                self.bump();
                let field = self.ident("a field name after `.`")?;
                e = Expr {
                    span: e.span.to(field.span),
                    kind: ExprKind::Field(Box::new(e), field),
                };
            } else if self.is_punct("[") {
                self.bump();
                self.skip_newlines();
                let index = self.expr()?;
                self.skip_newlines();
                let close = self.expect("]", "`]` after the index")?;
                e = Expr {
                    span: e.span.to(close),
                    kind: ExprKind::Index(Box::new(e), Box::new(index)),
                };
            } else if self.is_punct("(") {
                self.bump();
                let (args, close) = self.separated(")", "the arguments", |p| {
                    let named = matches!(p.peek(), Tok::Ident(_))
                        && matches!(
                            p.tokens.get(p.pos + 1).map(|t| &t.tok),
                            Some(Tok::Punct(":"))
                        );
                    let name = if named {
                        let n = p.ident("an argument name")?;
                        p.bump();
                        p.skip_newlines();
                        Some(n)
                    } else {
                        None
                    };
                    Ok(Arg {
                        name,
                        value: p.expr()?,
                    })
                })?;
                e = Expr {
                    span: e.span.to(close),
                    kind: ExprKind::Call(Box::new(e), args),
                };
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let span = self.span();
        let kind = match self.peek().clone() {
            Tok::Int(i) => {
                self.bump();
                ExprKind::Int(i)
            }
            Tok::Float(f) => {
                self.bump();
                ExprKind::Float(f)
            }
            Tok::Str(parts) => {
                self.bump();
                let mut out = Vec::new();
                for part in parts {
                    match part {
                        RawPart::Text(t) => out.push(TemplatePart::Text(t)),
                        RawPart::Expr(text, line, col) => {
                            out.push(TemplatePart::Expr(self.interpolation(&text, line, col)?))
                        }
                    }
                }
                ExprKind::Str(out)
            }
            Tok::Ident(k) if k == "true" || k == "false" => {
                self.bump();
                ExprKind::Bool(k == "true")
            }
            Tok::Ident(k) if k == "null" => {
                self.bump();
                ExprKind::Null
            }
            Tok::Ident(k) if KEYWORDS.contains(&k.as_str()) => return self.fail("a value", None),
            Tok::Ident(name) => {
                self.bump();
                ExprKind::Var(name)
            }
            Tok::Punct("(") => {
                self.bump();
                self.skip_newlines();
                let e = self.expr()?;
                self.skip_newlines();
                self.expect(")", "`)`")?;
                return Ok(e);
            }
            Tok::Punct("[") => {
                self.bump();
                let (items, close) = self.separated("]", "the list", Self::expr)?;
                return Ok(Expr {
                    span: span.to(close),
                    kind: ExprKind::List(items),
                });
            }
            Tok::Punct("{") => {
                self.bump();
                let (fields, close) = self.separated("}", "the object", |p| {
                    let key = match p.peek().clone() {
                        Tok::Str(parts) => match parts.as_slice() {
                            [RawPart::Text(t)] => Ident {
                                name: t.clone(),
                                span: p.bump().span,
                            },
                            _ => {
                                return p.fail(
                                    "a plain field name",
                                    Some("a field name cannot be a template"),
                                )
                            }
                        },
                        _ => p.ident("a field name")?,
                    };
                    let value = if p.is_punct(":") {
                        p.bump();
                        p.skip_newlines();
                        p.expr()?
                    } else {
                        // `{ cards }` is `{ cards: cards }`.
                        Expr {
                            span: key.span,
                            kind: ExprKind::Var(key.name.clone()),
                        }
                    };
                    Ok((key, value))
                })?;
                return Ok(Expr {
                    span: span.to(close),
                    kind: ExprKind::Object(fields),
                });
            }
            _ => return self.fail("a value", None),
        };
        Ok(Expr { span, kind })
    }

    /// Items separated by commas (a trailing one allowed, line breaks
    /// free) up to `close`, which it consumes; returns them and its span.
    fn separated<T>(
        &mut self,
        close: &str,
        what: &str,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<(Vec<T>, Span)> {
        let mut items = Vec::new();
        loop {
            self.skip_newlines();
            if self.is_punct(close) {
                return Ok((items, self.bump().span));
            }
            items.push(item(self)?);
            self.skip_newlines();
            if self.is_punct(",") {
                self.bump();
            } else if !self.is_punct(close) {
                return self.fail(&format!("`,` or `{close}` in {what}"), None);
            }
        }
    }

    /// Parses the expression inside `{...}` of a string.
    fn interpolation(&mut self, text: &str, line: u32, col: u32) -> PResult<Expr> {
        let mut tokens = lex(text, line, col, self.diags);
        let end = Span::new(line, col + text.chars().count() as u32, 1);
        if tokens.is_empty() {
            self.diags.push(
                Diagnostic::error(
                    Span::new(line, col.saturating_sub(1), 2),
                    "an empty `{}` in a string",
                )
                .hint("write a literal brace as `\\{`"),
            );
            return Err(Reported);
        }
        tokens.push(Token {
            tok: Tok::Eof,
            span: end,
        });
        let saved_tokens = std::mem::replace(&mut self.tokens, tokens);
        let saved_pos = std::mem::replace(&mut self.pos, 0);
        let e = self.expr();
        let trailing = e.is_ok() && *self.peek() != Tok::Eof;
        if trailing {
            let _ = self.fail::<()>("`}` after the expression in the string", None);
        }
        self.tokens = saved_tokens;
        self.pos = saved_pos;
        if trailing {
            return Err(Reported);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> (Vec<Stmt>, Vec<(u32, u32, String)>) {
        let mut diags = Diagnostics::default();
        let body = parse(
            &[Block {
                text: text.to_string(),
                first_line: 1,
            }],
            &mut diags,
        );
        (
            body,
            diags
                .0
                .into_iter()
                .map(|d| (d.line, d.column, d.message))
                .collect(),
        )
    }

    #[test]
    fn statements_and_precedence() {
        let (body, errors) = parse_text(
            "let cards = board.cards(filter: { list: \"Blocked\" })\nfor c in cards {\n  if c.comments > 1 + 2 * 3 and not c.done { log.info(\"late: {c.title}\") } else { n = n + 1 }\n}\nreturn { n, ids: [1, 2,\n 3] }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(body.len(), 3);
        let StmtKind::For { body: inner, .. } = &body[1].kind else {
            panic!()
        };
        let StmtKind::If {
            branches,
            otherwise,
        } = &inner[0].kind
        else {
            panic!()
        };
        let ExprKind::Binary(Op::And, left, _) = &branches[0].0.kind else {
            panic!("{:?}", branches[0].0)
        };
        let ExprKind::Binary(Op::Vm(BinOp::Gt), _, sum) = &left.kind else {
            panic!()
        };
        assert!(matches!(
            sum.kind,
            ExprKind::Binary(Op::Vm(BinOp::Add), _, _)
        ));
        assert!(otherwise.is_some());
        let StmtKind::Return(Expr {
            kind: ExprKind::Object(fields),
            ..
        }) = &body[2].kind
        else {
            panic!()
        };
        assert_eq!(fields[0].0.name, "n");
    }

    /// The template parts of the message of a one-line `log.info("...")`.
    fn message_parts(line: &str) -> Vec<TemplatePart> {
        let (body, errors) = parse_text(line);
        assert!(errors.is_empty(), "{errors:?}");
        let StmtKind::Expr(Expr {
            kind: ExprKind::Call(_, args),
            ..
        }) = &body[0].kind
        else {
            panic!("{body:?}")
        };
        let ExprKind::Str(parts) = &args[0].value.kind else {
            panic!("{args:?}")
        };
        parts.clone()
    }

    #[test]
    fn templates_hold_expressions() {
        let parts = message_parts("log.info(\"{join(names, \", \")} and {n + 1}\")\n");
        assert_eq!(parts.len(), 3);
        let var = |col, name: &str| Expr {
            span: Span::new(1, col, 1),
            kind: ExprKind::Var(name.into()),
        };
        let one = Expr {
            span: Span::new(1, 40, 1),
            kind: ExprKind::Int(1),
        };
        assert_eq!(
            parts[2],
            TemplatePart::Expr(Expr {
                span: Span::new(1, 36, 5),
                kind: ExprKind::Binary(Op::Vm(BinOp::Add), Box::new(var(36, "n")), Box::new(one)),
            })
        );
    }

    #[test]
    fn quotes_escaped_for_the_outer_string_work_inside_templates() {
        let parts = message_parts("log.info(\"{join(xs, \\\", \\\")}!\")\n");
        let TemplatePart::Expr(Expr {
            kind: ExprKind::Call(_, join),
            ..
        }) = &parts[0]
        else {
            panic!("{parts:?}")
        };
        assert_eq!(
            join[1].value.kind,
            ExprKind::Str(vec![TemplatePart::Text(", ".into())])
        );
    }

    #[test]
    fn every_syntax_error_is_reported_once() {
        let (_, errors) = parse_text("let = 3\nlet x = 'a'\nwhile x { }\nlet y = (1 +\nreturn\n");
        let mut lines: Vec<u32> = errors.iter().map(|e| e.0).collect();
        lines.sort();
        // Line 4's open parenthesis runs into line 5, where it is reported.
        assert_eq!(lines, vec![1, 2, 3, 5], "{errors:?}");
    }

    #[test]
    fn depth_is_bounded() {
        let deep = format!("let x = {}1{}\n", "(".repeat(200), ")".repeat(200));
        let (_, errors) = parse_text(&deep);
        assert!(
            errors.iter().any(|e| e.2.contains("nested more than")),
            "{errors:?}"
        );
        let deep = format!("{}{}", "if true {\n".repeat(100), "}\n".repeat(100));
        let (_, errors) = parse_text(&deep);
        assert!(errors.iter().any(|e| e.2.contains("nested more than")));
    }
}
