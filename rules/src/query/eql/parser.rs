//! The EQL parser: `category where condition`, `and` / `or` / `not`, comparisons, `in`,
//! `like`, `regex`, `:` and the string functions, into the shared query tree.

use super::EqlError;
use super::lexer::{T, Token};
use crate::query::ParseError;
use crate::query::ast::{Cmp, Lit, Op, Pred, Query, Tok};

pub(super) struct Parser {
    toks: Vec<Token>,
    i: usize,
    end: usize,
}

/// A right-hand side value.
#[derive(Debug, Clone)]
enum Constant {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Parser {
    pub(super) fn new(toks: Vec<Token>, end: usize) -> Parser {
        Parser { toks, i: 0, end }
    }

    /// Steps past the current token.
    pub(super) fn bump(&mut self) {
        self.i += 1;
    }

    pub(super) fn peek_tok(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn at(&self) -> usize {
        self.peek_tok().at.min(self.end)
    }

    pub(super) fn error(&self, expected: &str) -> ParseError {
        let found = match &self.peek_tok().kind {
            T::Ident(w) | T::OptIdent(w) => format!("`{w}`"),
            T::Str(s) => format!("string \"{s}\""),
            T::Num(n) => format!("number {n}"),
            T::Op(o) => format!("`{o}`"),
            T::LParen => "`(`".into(),
            T::RParen => "`)`".into(),
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
        matches!(&self.peek_tok().kind, T::Ident(x) if x == w)
    }

    pub(super) fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.is_word(w);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn eat(&mut self, t: &T) -> bool {
        let yes = self.peek_tok().kind == *t;
        if yes {
            self.i += 1;
        }
        yes
    }

    /// A `~` glued to the previous token (`like~`, `in~`, `regex~`, `startsWith~`).
    fn eat_tilde(&mut self) -> bool {
        let prev_end = self.toks.get(self.i.wrapping_sub(1)).map(|t| t.at);
        let tok = self.peek_tok().clone();
        if tok.kind == T::Op("~") && prev_end.is_some() {
            self.i += 1;
            return true;
        }
        false
    }

    pub(super) fn or_expr(&mut self) -> Result<Query<Pred>, EqlError> {
        let mut parts = vec![self.and_expr()?];
        while self.eat_word("or") {
            parts.push(self.and_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::Or(parts)
        })
    }

    fn and_expr(&mut self) -> Result<Query<Pred>, EqlError> {
        let mut parts = vec![self.not_expr()?];
        while self.eat_word("and") {
            parts.push(self.not_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::And(parts)
        })
    }

    fn not_expr(&mut self) -> Result<Query<Pred>, EqlError> {
        if self.eat_word("not") {
            return Ok(Query::Not(Box::new(self.not_expr()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Query<Pred>, EqlError> {
        if self.eat(&T::LParen) {
            let q = self.or_expr()?;
            if !self.eat(&T::RParen) {
                return Err(self.error("`)`").into());
            }
            return Ok(q);
        }
        let tok = self.peek_tok().clone();
        let field = match tok.kind {
            T::Ident(ref w) if w == "true" || w == "false" => {
                self.i += 1;
                return Ok(Query::Const(w == "true"));
            }
            T::Ident(name) | T::OptIdent(name) => name,
            _ => return Err(self.error("a field name, a function, `not` or `(`").into()),
        };
        self.i += 1;
        if self.peek_tok().kind == T::LParen || self.peek_tok().kind == T::Op("~") {
            return self.function(&field, tok.at);
        }
        self.comparison(field, tok.at)
    }

    fn function(&mut self, name: &str, at: usize) -> Result<Query<Pred>, EqlError> {
        let ci = self.eat_tilde();
        let shape: fn(String) -> Vec<Tok> = match name {
            "startsWith" => |s| vec![Tok::Lit(s), Tok::Star],
            "endsWith" => |s| vec![Tok::Star, Tok::Lit(s)],
            "stringContains" => |s| vec![Tok::Star, Tok::Lit(s), Tok::Star],
            _ => {
                return Err(EqlError::Unsupported(format!(
                    "EQL function `{name}` (at offset {at}) is not evaluated"
                )));
            }
        };
        if !self.eat(&T::LParen) {
            return Err(self.error("`(`").into());
        }
        let field_at = self.at();
        let field = match self.peek_tok().kind.clone() {
            T::Ident(f) | T::OptIdent(f) => f,
            _ => {
                return Err(EqlError::Unsupported(format!(
                    "`{name}` on something other than a field is not evaluated"
                )));
            }
        };
        self.i += 1;
        if !self.eat(&T::Comma) {
            return Err(self.error("`,`").into());
        }
        let value = match self.peek_tok().kind.clone() {
            T::Str(s) => s,
            T::Ident(_) | T::OptIdent(_) => {
                return Err(EqlError::Unsupported(format!(
                    "`{name}` with a field as its second argument (a field-to-field comparison) is not evaluated"
                )));
            }
            _ => return Err(self.error("a string").into()),
        };
        self.i += 1;
        if !self.eat(&T::RParen) {
            return Err(self.error("`)`").into());
        }
        Ok(Query::Leaf(Pred {
            field,
            op: Op::Pattern {
                toks: shape(value),
                ci,
            },
            at: field_at,
        }))
    }

    fn comparison(&mut self, field: String, at: usize) -> Result<Query<Pred>, EqlError> {
        let leaf = |op: Op| {
            Query::Leaf(Pred {
                field: field.clone(),
                op,
                at,
            })
        };
        let tok = self.peek_tok().clone();
        match tok.kind {
            T::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">=")) => {
                self.i += 1;
                let c = self.constant()?;
                let cmp = match op {
                    "==" | "!=" => Cmp::Eq,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                let q = match c {
                    Constant::Null if op == "==" => Query::Not(Box::new(leaf(Op::Exists))),
                    Constant::Null if op == "!=" => leaf(Op::Exists),
                    Constant::Null => {
                        return Err(ParseError {
                            offset: tok.at,
                            message: "null can only be compared with `==` or `!=`".into(),
                        }
                        .into());
                    }
                    c => leaf(Op::Compare(cmp, to_lit(c))),
                };
                Ok(
                    if op == "!=" && !matches!(q, Query::Leaf(Pred { op: Op::Exists, .. })) {
                        Query::Not(Box::new(q))
                    } else {
                        q
                    },
                )
            }
            T::Op(":") => {
                self.i += 1;
                let values = self.strings_or_list()?;
                Ok(any(values
                    .into_iter()
                    .map(|s| {
                        leaf(Op::Pattern {
                            toks: like_toks(&s),
                            ci: true,
                        })
                    })
                    .collect()))
            }
            T::Ident(ref w) if w == "like" || w == "regex" => {
                self.i += 1;
                let ci = self.eat_tilde();
                let values = self.strings_or_list()?;
                let regex = w == "regex";
                Ok(any(values
                    .into_iter()
                    .map(|s| {
                        leaf(if regex {
                            Op::Regex { pattern: s, ci }
                        } else {
                            Op::Pattern {
                                toks: like_toks(&s),
                                ci,
                            }
                        })
                    })
                    .collect()))
            }
            T::Ident(ref w) if w == "in" || w == "not" => {
                self.i += 1;
                let negated = w == "not";
                if negated && !self.eat_word("in") {
                    return Err(self.error("`in` after `not`").into());
                }
                let ci = self.eat_tilde();
                let values = self.list()?;
                let mut parts = Vec::new();
                for v in values {
                    parts.push(match v {
                        Constant::Str(s) if ci => leaf(Op::Pattern {
                            toks: vec![Tok::Lit(s)],
                            ci: true,
                        }),
                        Constant::Null => Query::Not(Box::new(leaf(Op::Exists))),
                        c => leaf(Op::Compare(Cmp::Eq, to_lit(c))),
                    });
                }
                let q = any(parts);
                Ok(if negated { Query::Not(Box::new(q)) } else { q })
            }
            T::Op(_) | T::Ident(_) => Err(self.error("a comparison operator").into()),
            _ => Err(EqlError::Syntax(self.error(
                "a comparison (`==`, `!=`, `<`, `:`, `like`, `regex`, `in`...)",
            ))),
        }
    }

    fn constant(&mut self) -> Result<Constant, EqlError> {
        let c = match self.peek_tok().kind.clone() {
            T::Str(s) => Constant::Str(s),
            T::Num(n) => Constant::Num(n),
            T::Ident(w) if w == "true" => Constant::Bool(true),
            T::Ident(w) if w == "false" => Constant::Bool(false),
            T::Ident(w) if w == "null" => Constant::Null,
            T::Ident(_) | T::OptIdent(_) => {
                return Err(EqlError::Unsupported(
                    "comparisons between two fields are not evaluated".into(),
                ));
            }
            _ => {
                return Err(self
                    .error("a value (string, number, true, false or null)")
                    .into());
            }
        };
        self.i += 1;
        Ok(c)
    }

    fn list(&mut self) -> Result<Vec<Constant>, EqlError> {
        if !self.eat(&T::LParen) {
            return Err(self.error("`(`").into());
        }
        let mut out = vec![self.constant()?];
        while self.eat(&T::Comma) {
            out.push(self.constant()?);
        }
        if !self.eat(&T::RParen) {
            return Err(self.error("`,` or `)`").into());
        }
        Ok(out)
    }

    fn strings_or_list(&mut self) -> Result<Vec<String>, EqlError> {
        let at = self.at();
        let values = if self.peek_tok().kind == T::LParen {
            self.list()?
        } else {
            vec![self.constant()?]
        };
        values
            .into_iter()
            .map(|c| match c {
                Constant::Str(s) => Ok(s),
                _ => Err(EqlError::Syntax(ParseError {
                    offset: at,
                    message: "expected a string pattern".into(),
                })),
            })
            .collect()
    }
}

fn to_lit(c: Constant) -> Lit {
    match c {
        Constant::Str(s) => Lit::Str(s),
        Constant::Num(n) => Lit::Num(n),
        Constant::Bool(b) => Lit::Bool(b),
        Constant::Null => Lit::Str(String::new()),
    }
}

fn any(mut parts: Vec<Query<Pred>>) -> Query<Pred> {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Query::Or(parts)
    }
}

/// A `like` / `:` pattern: `*` any characters, `?` one character, `\` escapes `*`, `?`, `\`.
pub fn like_toks(s: &str) -> Vec<Tok> {
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
