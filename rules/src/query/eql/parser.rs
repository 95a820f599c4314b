//! The EQL parser: event queries (`category where condition`), sequences and samples, and
//! conditions as Elasticsearch's grammar has them: `or` < `and` < `not` < comparisons and
//! lookups < `+ -` < `* / %` < unary minus < fields, literals, function calls and
//! parentheses.
//!
//! Conditions are parsed into [`Cond`], a tree of their own; [`super::lower`] then turns it
//! into the shared query tree, keeping field-against-literal tests as plain leaves (what the
//! matcher indexes) and everything else as [`crate::query::ast::Check`]s.

use std::time::Duration;

use super::EqlError;
use super::lexer::{T, Token};
use crate::query::ParseError;
use crate::query::ast::{Arith, Expr, Func, JoinKey};
use crate::query::limits::Budget;

/// A condition as written, before lowering.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    /// `lhs OP rhs` (`==`, `!=`, `<`, `<=`, `>`, `>=`).
    Cmp {
        op: &'static str,
        lhs: Expr,
        rhs: Expr,
        at: usize,
    },
    /// `value : "p"`, `value like[~] (...)`, `value regex[~] (...)`.
    Seq {
        value: Expr,
        patterns: Vec<String>,
        regex: bool,
        ci: bool,
        at: usize,
    },
    /// `value [not] in[~] (items)`.
    In {
        value: Expr,
        items: Vec<Expr>,
        ci: bool,
        negated: bool,
        at: usize,
    },
    /// A value used as a condition (a boolean field, `true`, a function such as
    /// `startsWith`).
    Value(Expr, usize),
}

/// `category where condition`, unlowered.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct EventQuery {
    pub(super) category: String,
    pub(super) category_at: usize,
    pub(super) cond: Cond,
}

/// One bracketed item of a sequence or sample.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StageAst {
    pub(super) query: EventQuery,
    pub(super) keys: Vec<JoinKey>,
    /// `![...]`: a missing event.
    pub(super) missing: bool,
    pub(super) runs: u32,
    pub(super) at: usize,
}

/// What the text is.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TopAst {
    Event(EventQuery),
    Sequence {
        by: Vec<JoinKey>,
        maxspan: Option<Duration>,
        stages: Vec<StageAst>,
        until: Option<StageAst>,
    },
    Sample {
        by: Vec<JoinKey>,
        stages: Vec<StageAst>,
    },
}

/// Words that cannot be field names.
const RESERVED: &[&str] = &[
    "and", "or", "not", "in", "like", "regex", "where", "sequence", "sample", "by", "with",
    "until", "of", "join", "any",
];

/// A parsed term: a value, or a parenthesised condition.
enum Term {
    Value(Expr),
    Cond(Cond),
}

pub(super) struct Parser {
    toks: Vec<Token>,
    i: usize,
    end: usize,
    /// Nesting (parentheses, `not`, calls, lists) and tests so far, within
    /// [`crate::query::limits`].
    budget: Budget,
}

impl Parser {
    pub(super) fn new(toks: Vec<Token>, end: usize) -> Parser {
        Parser {
            toks,
            i: 0,
            end,
            budget: Budget::default(),
        }
    }

    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.i + n).min(self.toks.len() - 1)]
    }

    fn at(&self) -> usize {
        self.peek().at.min(self.end)
    }

    fn bump(&mut self) {
        self.i += 1;
    }

    pub(super) fn error(&self, expected: &str) -> ParseError {
        let found = match &self.peek().kind {
            T::Ident(w) | T::OptIdent(w) => format!("`{w}`"),
            T::Str(s) => format!("string \"{s}\""),
            T::Num { value, .. } => format!("number {value}"),
            T::Op(o) => format!("`{o}`"),
            T::LParen => "`(`".into(),
            T::RParen => "`)`".into(),
            T::LBracket => "`[`".into(),
            T::RBracket => "`]`".into(),
            T::Comma => "`,`".into(),
            T::Pipe => "`|`".into(),
            T::End => "the end of the query".into(),
        };
        ParseError {
            offset: self.at(),
            message: format!("expected {expected}, found {found}"),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(&self.peek().kind, T::Ident(x) if x.eq_ignore_ascii_case(w))
    }

    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.bump();
        }
        yes
    }

    fn eat(&mut self, t: &T) -> bool {
        let yes = self.peek().kind == *t;
        if yes {
            self.bump();
        }
        yes
    }

    fn expect(&mut self, t: &T, what: &str) -> Result<(), ParseError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    /// A `~` glued to the previous token (`like~`, `in~`, `regex~`, `startsWith~`).
    fn eat_tilde(&mut self) -> bool {
        let prev_end = self.toks.get(self.i.wrapping_sub(1)).map(|t| t.end);
        let tok = self.peek();
        if tok.kind == T::Op("~") && prev_end == Some(tok.at) {
            self.bump();
            return true;
        }
        false
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.budget.enter(self.at())
    }

    fn leave(&mut self) {
        self.budget.leave();
    }

    /// The whole text: an event query, a sequence or a sample, and nothing after it.
    pub(super) fn top(&mut self) -> Result<TopAst, EqlError> {
        let top = if self.eat_word("sequence") {
            self.sequence()?
        } else if self.eat_word("sample") {
            self.sample()?
        } else {
            TopAst::Event(self.event_query()?)
        };
        match self.peek().kind {
            T::End => Ok(top),
            T::Pipe => Err(EqlError::Unsupported(
                "EQL pipes (`| head`, `| filter`...) are not evaluated".into(),
            )),
            _ => Err(self.error("`and`, `or` or the end of the query").into()),
        }
    }

    fn event_query(&mut self) -> Result<EventQuery, EqlError> {
        let tok = self.peek().clone();
        let category = match tok.kind {
            T::Ident(w) | T::Str(w) => w,
            _ => return Err(self.error("an event category (e.g. `process`)").into()),
        };
        self.bump();
        if !self.eat_word("where") {
            return Err(self.error("`where`").into());
        }
        let cond = self.or_cond()?;
        Ok(EventQuery {
            category,
            category_at: tok.at,
            cond,
        })
    }

    fn sequence(&mut self) -> Result<TopAst, EqlError> {
        let mut by = Vec::new();
        let mut maxspan = None;
        // `by` and `with maxspan` in either order.
        for _ in 0..2 {
            if self.eat_word("by") {
                by = self.join_keys()?;
            } else if self.is_word("with") {
                self.bump();
                if !self.eat_word("maxspan") {
                    return Err(self.error("`maxspan`").into());
                }
                self.expect(&T::Op("="), "`=`")?;
                maxspan = Some(self.interval()?);
            }
        }
        let mut stages = Vec::new();
        let mut until = None;
        loop {
            if self.eat_word("until") {
                let stage = self.stage()?;
                if stage.missing {
                    return Err(ParseError {
                        offset: stage.at,
                        message: "`until` takes an event, not a missing event".into(),
                    }
                    .into());
                }
                until = Some(stage);
                break;
            }
            if !matches!(self.peek().kind, T::LBracket | T::Op("!") | T::Op("-")) {
                break;
            }
            stages.push(self.stage()?);
        }
        let items: u32 = stages.iter().map(|s| s.runs).sum();
        if stages.iter().filter(|s| !s.missing).count() < 1 || items < 2 {
            return Err(self
                .error("at least two `[...]` items in the sequence")
                .into());
        }
        Ok(TopAst::Sequence {
            by,
            maxspan,
            stages,
            until,
        })
    }

    fn sample(&mut self) -> Result<TopAst, EqlError> {
        let by = if self.eat_word("by") {
            self.join_keys()?
        } else {
            Vec::new()
        };
        let mut stages = Vec::new();
        while self.peek().kind == T::LBracket {
            let stage = self.stage()?;
            if stage.runs != 1 {
                return Err(ParseError {
                    offset: stage.at,
                    message: "`runs` is for sequences, not samples".into(),
                }
                .into());
            }
            stages.push(stage);
        }
        if stages.len() < 2 {
            return Err(self
                .error("at least two `[...]` items in the sample")
                .into());
        }
        Ok(TopAst::Sample { by, stages })
    }

    /// `[query] [by keys] [with runs=N]`, or a missing event `![query] [by keys]`.
    fn stage(&mut self) -> Result<StageAst, EqlError> {
        let at = self.at();
        let missing = matches!(self.peek().kind, T::Op("!") | T::Op("-"));
        if missing {
            self.bump();
        }
        self.expect(&T::LBracket, "`[`")?;
        let query = self.event_query()?;
        self.expect(&T::RBracket, "`]`, `and` or `or`")?;
        let keys = if self.eat_word("by") {
            self.join_keys()?
        } else {
            Vec::new()
        };
        let mut runs = 1;
        if self.is_word("with") && matches!(&self.peek_at(1).kind, T::Ident(w) if w == "runs") {
            self.bump();
            self.bump();
            self.expect(&T::Op("="), "`=`")?;
            runs = match self.peek().kind {
                T::Num {
                    int: Some(n @ 1..=100),
                    ..
                } => n as u32,
                _ => return Err(self.error("a number of runs from 1 to 100").into()),
            };
            self.bump();
        }
        Ok(StageAst {
            query,
            keys,
            missing,
            runs,
            at,
        })
    }

    fn join_keys(&mut self) -> Result<Vec<JoinKey>, EqlError> {
        let mut keys = Vec::new();
        loop {
            let tok = self.peek().clone();
            let (field, optional) = match tok.kind {
                T::Ident(w) if !is_reserved(&w) => (w, false),
                T::OptIdent(w) => (w, true),
                _ => return Err(self.error("a join field").into()),
            };
            self.bump();
            if self.peek().kind == T::LParen || self.peek().kind == T::Op("~") {
                return Err(EqlError::Unsupported(
                    "join keys other than fields are not evaluated".into(),
                ));
            }
            keys.push(JoinKey {
                field,
                optional,
                at: tok.at,
            });
            if !self.eat(&T::Comma) {
                return Ok(keys);
            }
        }
    }

    /// `30s`, `5m`, `1h`, `2d`, `500ms` (a number with a glued unit; no unit = milliseconds).
    fn interval(&mut self) -> Result<Duration, EqlError> {
        let tok = self.peek().clone();
        let T::Num { int: Some(n), .. } = tok.kind else {
            return Err(self.error("a time span such as `30s` or `5m`").into());
        };
        let n = u64::try_from(n).map_err(|_| self.error("a positive time span"))?;
        self.bump();
        let unit = match &self.peek().kind {
            T::Ident(u) if self.peek().at == tok.end => {
                let u = u.clone();
                self.bump();
                u
            }
            _ => "ms".to_owned(),
        };
        let ms = match unit.as_str() {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(ParseError {
                    offset: tok.at,
                    message: format!("unknown time unit `{unit}` (ms, s, m, h, d)"),
                }
                .into());
            }
        };
        Ok(Duration::from_millis(n.saturating_mul(ms)))
    }

    pub(super) fn or_cond(&mut self) -> Result<Cond, EqlError> {
        self.enter()?;
        let mut parts = vec![self.and_cond()?];
        while self.eat_word("or") {
            parts.push(self.and_cond()?);
        }
        self.leave();
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and_cond(&mut self) -> Result<Cond, EqlError> {
        let mut parts = vec![self.not_cond()?];
        while self.eat_word("and") {
            parts.push(self.not_cond()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn not_cond(&mut self) -> Result<Cond, EqlError> {
        if self.eat_word("not") {
            self.enter()?;
            let inner = self.not_cond()?;
            self.leave();
            return Ok(Cond::Not(Box::new(inner)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Cond, EqlError> {
        let at = self.at();
        self.budget.leaf(at)?;
        let lhs = match self.additive()? {
            Term::Cond(c) => return Ok(c),
            Term::Value(e) => e,
        };
        let tok = self.peek().clone();
        match tok.kind {
            T::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">=")) => {
                self.bump();
                let rhs = self.value()?;
                Ok(Cond::Cmp { op, lhs, rhs, at })
            }
            T::Op(":") => {
                self.bump();
                let patterns = self.strings_or_list()?;
                Ok(Cond::Seq {
                    value: lhs,
                    patterns,
                    regex: false,
                    ci: true,
                    at,
                })
            }
            T::Ident(ref w) if w == "like" || w == "regex" => {
                self.bump();
                let ci = self.eat_tilde();
                let patterns = self.strings_or_list()?;
                Ok(Cond::Seq {
                    value: lhs,
                    patterns,
                    regex: w == "regex",
                    ci,
                    at,
                })
            }
            T::Ident(ref w) if w == "in" || w == "not" => {
                self.bump();
                let negated = w == "not";
                if negated && !self.eat_word("in") {
                    return Err(self.error("`in` after `not`").into());
                }
                let ci = self.eat_tilde();
                let items = self.list()?;
                Ok(Cond::In {
                    value: lhs,
                    items,
                    ci,
                    negated,
                    at,
                })
            }
            _ => Ok(Cond::Value(lhs, at)),
        }
    }

    /// A value expression (no condition).
    fn value(&mut self) -> Result<Expr, EqlError> {
        match self.additive()? {
            Term::Value(e) => Ok(e),
            Term::Cond(_) => Err(EqlError::Syntax(ParseError {
                offset: self.at(),
                message: "expected a value, found a condition".into(),
            })),
        }
    }

    fn additive(&mut self) -> Result<Term, EqlError> {
        let mut lhs = self.multiplicative()?;
        loop {
            let op = match self.peek().kind {
                T::Op("+") => Arith::Add,
                T::Op("-") => Arith::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let l = value_of(lhs, self)?;
            let r = value_of(self.multiplicative()?, self)?;
            lhs = Term::Value(Expr::Arith {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            });
        }
    }

    fn multiplicative(&mut self) -> Result<Term, EqlError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().kind {
                T::Op("*") => Arith::Mul,
                T::Op("/") => Arith::Div,
                T::Op("%") => Arith::Mod,
                _ => return Ok(lhs),
            };
            self.bump();
            let l = value_of(lhs, self)?;
            let r = value_of(self.unary()?, self)?;
            lhs = Term::Value(Expr::Arith {
                op,
                lhs: Box::new(l),
                rhs: Box::new(r),
            });
        }
    }

    fn unary(&mut self) -> Result<Term, EqlError> {
        if self.eat(&T::Op("-")) {
            self.enter()?;
            let inner = value_of(self.unary()?, self)?;
            self.leave();
            return Ok(Term::Value(match inner {
                Expr::Num { value, int } => Expr::Num {
                    value: -value,
                    int: int.and_then(i64::checked_neg),
                },
                e => Expr::Neg(Box::new(e)),
            }));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Term, EqlError> {
        let tok = self.peek().clone();
        match tok.kind {
            T::LParen => {
                self.bump();
                let inner = self.or_cond()?;
                self.expect(&T::RParen, "`)`")?;
                Ok(match inner {
                    Cond::Value(e, _) => Term::Value(e),
                    c => Term::Cond(c),
                })
            }
            T::Str(s) => {
                self.bump();
                Ok(Term::Value(Expr::Str(s)))
            }
            T::Num { value, int } => {
                self.bump();
                Ok(Term::Value(Expr::Num { value, int }))
            }
            T::Ident(w) if w == "true" || w == "false" => {
                self.bump();
                Ok(Term::Value(Expr::Bool(w == "true")))
            }
            T::Ident(w) if w == "null" => {
                self.bump();
                Ok(Term::Value(Expr::Null))
            }
            T::Ident(w) if is_reserved(&w) => {
                Err(self.error("a field name, a function, `not` or `(`").into())
            }
            T::Ident(ref name) | T::OptIdent(ref name) => {
                let optional = matches!(tok.kind, T::OptIdent(_));
                let name = name.clone();
                self.bump();
                if !optional && matches!(self.peek().kind, T::LParen | T::Op("~")) {
                    return self.call(&name, tok.at).map(Term::Value);
                }
                Ok(Term::Value(Expr::Field {
                    name,
                    optional,
                    at: tok.at,
                }))
            }
            _ => Err(self
                .error("a field name, a value, a function, `not` or `(`")
                .into()),
        }
    }

    fn call(&mut self, name: &str, at: usize) -> Result<Expr, EqlError> {
        let ci = self.eat_tilde();
        let Some(func) = Func::from_name(name) else {
            return Err(EqlError::Unsupported(format!(
                "EQL function `{name}` (at offset {at}) is not evaluated"
            )));
        };
        if ci && !func.has_ci() {
            return Err(ParseError {
                offset: at,
                message: format!("`{name}` has no case-insensitive `~` variant"),
            }
            .into());
        }
        self.expect(&T::LParen, "`(`")?;
        self.enter()?;
        let mut args = Vec::new();
        if self.peek().kind != T::RParen {
            loop {
                args.push(self.value()?);
                if !self.eat(&T::Comma) {
                    break;
                }
            }
        }
        self.leave();
        self.expect(&T::RParen, "`,` or `)`")?;
        let (least, most) = func.arity();
        if args.len() < least || args.len() > most {
            let want = match (least, most) {
                (a, b) if a == b => format!("{a}"),
                (a, usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(ParseError {
                offset: at,
                message: format!("`{name}` takes {want} argument(s), found {}", args.len()),
            }
            .into());
        }
        Ok(Expr::Call { func, ci, args, at })
    }

    fn list(&mut self) -> Result<Vec<Expr>, EqlError> {
        self.expect(&T::LParen, "`(`")?;
        self.enter()?;
        let mut out = vec![self.value()?];
        while self.eat(&T::Comma) {
            self.budget.leaf(self.at())?;
            out.push(self.value()?);
        }
        self.leave();
        self.expect(&T::RParen, "`,` or `)`")?;
        Ok(out)
    }

    fn strings_or_list(&mut self) -> Result<Vec<String>, EqlError> {
        let at = self.at();
        let values = if self.peek().kind == T::LParen {
            self.list()?
        } else {
            vec![self.value()?]
        };
        values
            .into_iter()
            .map(|c| match c {
                Expr::Str(s) => Ok(s),
                _ => Err(EqlError::Syntax(ParseError {
                    offset: at,
                    message: "expected a string pattern".into(),
                })),
            })
            .collect()
    }
}

fn value_of(t: Term, p: &Parser) -> Result<Expr, EqlError> {
    match t {
        Term::Value(e) => Ok(e),
        Term::Cond(_) => Err(EqlError::Syntax(ParseError {
            offset: p.at(),
            message: "expected a value, found a condition".into(),
        })),
    }
}

fn is_reserved(w: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(w))
}

/// A `like` / `:` pattern: `*` any characters, `?` one character, `\` escapes `*`, `?`, `\`.
pub fn like_toks(s: &str) -> Vec<crate::query::ast::Tok> {
    use crate::query::ast::Tok;
    let mut toks = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                lit.extend(chars.next());
            }
            '*' | '?' => {
                if !lit.is_empty() {
                    toks.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                toks.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        toks.push(Tok::Lit(lit));
    }
    toks
}
