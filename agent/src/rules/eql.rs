//! EQL parser for single-event queries (`process where ...`).
//!
//! Operators and their case rules as Elasticsearch defines them: `==`, `!=`, `in`, `like`,
//! `regex` are case-sensitive; `:`, `in~`, `like~`, `regex~` are case-insensitive. `like` and
//! `:` take `*` and `?` wildcards. Sequences, samples, pipes, field-to-field comparisons and
//! functions other than `startsWith`, `endsWith` and `stringContains` are valid EQL this engine
//! does not evaluate: they are reported as [`EqlError::Unsupported`], not as syntax errors.

use super::ParseError;
use super::ast::{Cmp, Lit, Op, Pred, Query, Tok};

/// Why an EQL query cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub enum EqlError {
    Syntax(ParseError),
    Unsupported(String),
}

impl From<ParseError> for EqlError {
    fn from(e: ParseError) -> Self {
        EqlError::Syntax(e)
    }
}

/// Event categories the exec view produces.
const CATEGORIES: &[&str] = &["process"];

/// Parses `category where condition` into a query that also tests `event.category`.
pub fn parse(src: &str) -> Result<Query<Pred>, EqlError> {
    let head = src.trim_start();
    for word in ["sequence", "sample"] {
        if head.starts_with(word)
            && !head[word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(EqlError::Unsupported(format!(
                "EQL {word} queries need correlated events; only single-event queries are evaluated"
            )));
        }
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        end: src.len(),
    };
    let first = p.peek_tok().clone();
    let category = match first.kind {
        T::Ident(w) | T::Str(w) => w,
        _ => return Err(p.error("an event category (e.g. `process`)").into()),
    };
    p.i += 1;
    if !p.eat_word("where") {
        return Err(p.error("`where`").into());
    }
    let cond = p.or_expr()?;
    match p.peek_tok().kind {
        T::End => {}
        T::Pipe => {
            return Err(EqlError::Unsupported(
                "EQL pipes (`| head`, `| filter`...) are not evaluated".into(),
            ));
        }
        _ => return Err(p.error("`and`, `or` or the end of the query").into()),
    }
    if category == "any" {
        return Ok(cond);
    }
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(EqlError::Unsupported(format!(
            "event category `{category}`: the exec view produces only process events"
        )));
    }
    let cat = Query::Leaf(Pred {
        field: "event.category".into(),
        op: Op::Compare(Cmp::Eq, Lit::Str(category)),
    });
    Ok(Query::And(vec![cat, cond]))
}

#[derive(Debug, Clone, PartialEq)]
enum T {
    Ident(String),
    /// `?field`: an optional field.
    OptIdent(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Pipe,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    kind: T,
    at: usize,
}

fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, m: &str| ParseError {
        offset: at,
        message: m.to_owned(),
    };
    while i < b.len() {
        let c = b[i];
        let at = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(b.len(), |n| i + n);
            continue;
        }
        if src[i..].starts_with("/*") {
            i = src[i + 2..]
                .find("*/")
                .map(|n| i + 2 + n + 2)
                .ok_or_else(|| err(at, "unterminated comment: expected `*/`"))?;
            continue;
        }
        let kind = if src[i..].starts_with("\"\"\"") {
            let body = &src[i + 3..];
            let n = body
                .find("\"\"\"")
                .ok_or_else(|| err(at, "unterminated raw string: expected `\"\"\"`"))?;
            i += 3 + n + 3;
            T::Str(body[..n].to_owned())
        } else if c == b'"' {
            let (s, next) = lex_string(src, i)?;
            i = next;
            T::Str(s)
        } else if c == b'\'' {
            return Err(err(
                at,
                "expected a string in double quotes (\"...\"); single quotes are not EQL strings",
            ));
        } else if c.is_ascii_digit() || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let n = src[start..i]
                .parse::<f64>()
                .map_err(|_| err(start, "expected a number"))?;
            T::Num(n)
        } else if c == b'?'
            && b.get(i + 1)
                .is_some_and(|n| is_ident_start(*n) || *n == b'`')
        {
            let (name, next) = lex_ident(src, i + 1)?;
            i = next;
            T::OptIdent(name)
        } else if is_ident_start(c) || c == b'`' {
            let (name, next) = lex_ident(src, i)?;
            i = next;
            T::Ident(name)
        } else {
            let ops: &[&'static str] = &["==", "!=", "<=", ">=", "<", ">", ":", "~"];
            if let Some(op) = ops.iter().find(|o| src[i..].starts_with(**o)) {
                i += op.len();
                T::Op(op)
            } else {
                i += 1;
                match c {
                    b'(' => T::LParen,
                    b')' => T::RParen,
                    b',' => T::Comma,
                    b'|' => T::Pipe,
                    _ => {
                        let ch = src[at..].chars().next().unwrap_or('?');
                        return Err(err(at, &format!("unexpected character `{ch}`")));
                    }
                }
            }
        };
        out.push(Token { kind, at });
    }
    out.push(Token {
        kind: T::End,
        at: src.len(),
    });
    Ok(out)
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'@'
}

fn lex_ident(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let b = src.as_bytes();
    let mut i = start;
    let mut name = String::new();
    loop {
        if b.get(i) == Some(&b'`') {
            let end = src[i + 1..].find('`').ok_or(ParseError {
                offset: i,
                message: "unterminated `` ` `` identifier".into(),
            })?;
            name.push_str(&src[i + 1..i + 1 + end]);
            i += end + 2;
        } else {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'@') {
                i += 1;
            }
            if s == i {
                return Err(ParseError {
                    offset: i,
                    message: "expected a field name".into(),
                });
            }
            name.push_str(&src[s..i]);
        }
        if b.get(i) == Some(&b'.')
            && b.get(i + 1)
                .is_some_and(|n| is_ident_start(*n) || *n == b'`')
        {
            name.push('.');
            i += 1;
        } else {
            return Ok((name, i));
        }
    }
}

fn lex_string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut it = src[start + 1..].char_indices();
    let abs = |j: usize| start + 1 + j;
    while let Some((j, c)) = it.next() {
        match c {
            '"' => return Ok((out, abs(j) + 1)),
            '\\' => {
                let (k, e) = it.next().ok_or(ParseError {
                    offset: abs(j),
                    message: "unterminated string: expected a closing `\"`".into(),
                })?;
                match e {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    '"' | '\\' | '\'' => out.push(e),
                    'u' => {
                        let rest = &src[abs(k) + 1..];
                        let bad = || ParseError {
                            offset: abs(j),
                            message: "expected a unicode escape `\\u{XXXX}` (2 to 8 hex digits)"
                                .into(),
                        };
                        let close = rest
                            .find('}')
                            .filter(|_| rest.starts_with('{'))
                            .ok_or_else(bad)?;
                        let hex = &rest[1..close];
                        if !(2..=8).contains(&hex.len()) {
                            return Err(bad());
                        }
                        let ch = u32::from_str_radix(hex, 16)
                            .ok()
                            .and_then(char::from_u32)
                            .ok_or_else(bad)?;
                        out.push(ch);
                        for _ in 0..=close {
                            it.next();
                        }
                    }
                    _ => {
                        return Err(ParseError {
                            offset: abs(j),
                            message: format!(
                                "expected an escape (\\n \\r \\t \\b \\f \\\" \\' \\\\ \\u{{...}}), found `\\{e}`"
                            ),
                        });
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(ParseError {
        offset: start,
        message: "unterminated string: expected a closing `\"`".into(),
    })
}

struct Parser {
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
    fn peek_tok(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn at(&self) -> usize {
        self.peek_tok().at.min(self.end)
    }

    fn error(&self, expected: &str) -> ParseError {
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

    fn eat_word(&mut self, w: &str) -> bool {
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

    fn or_expr(&mut self) -> Result<Query<Pred>, EqlError> {
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
        self.comparison(field)
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
        }))
    }

    fn comparison(&mut self, field: String) -> Result<Query<Pred>, EqlError> {
        let leaf = |op: Op| {
            Query::Leaf(Pred {
                field: field.clone(),
                op,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(field: &str, op: Op) -> Query<Pred> {
        Query::Leaf(Pred {
            field: field.into(),
            op,
        })
    }

    #[test]
    fn operators_and_case_rules() {
        let q = parse(r#"any where a == "X" and b : "x*" and c like~ ("y?", "z") and not d in ("1", "2") and e != null"#).unwrap();
        let Query::And(parts) = q else { panic!() };
        assert_eq!(
            parts[0],
            leaf("a", Op::Compare(Cmp::Eq, Lit::Str("X".into())))
        );
        assert_eq!(
            parts[1],
            leaf(
                "b",
                Op::Pattern {
                    toks: vec![Tok::Lit("x".into()), Tok::Star],
                    ci: true
                }
            )
        );
        assert_eq!(
            parts[2],
            Query::Or(vec![
                leaf(
                    "c",
                    Op::Pattern {
                        toks: vec![Tok::Lit("y".into()), Tok::One],
                        ci: true
                    }
                ),
                leaf(
                    "c",
                    Op::Pattern {
                        toks: vec![Tok::Lit("z".into())],
                        ci: true
                    }
                ),
            ])
        );
        assert!(matches!(parts[3], Query::Not(_)));
        assert_eq!(parts[4], leaf("e", Op::Exists));
    }

    #[test]
    fn process_category_strings_and_comments() {
        let q = parse("process where // c\n f regex~ \"\"\"a\\/b\"\"\" and g == \"q\\\"\\u{41}\"")
            .unwrap();
        let Query::And(parts) = q else { panic!() };
        assert_eq!(
            parts[0],
            leaf(
                "event.category",
                Op::Compare(Cmp::Eq, Lit::Str("process".into()))
            )
        );
        let Query::And(inner) = &parts[1] else {
            panic!()
        };
        assert_eq!(
            inner[0],
            leaf(
                "f",
                Op::Regex {
                    pattern: "a\\/b".into(),
                    ci: true
                }
            )
        );
        assert_eq!(
            inner[1],
            leaf("g", Op::Compare(Cmp::Eq, Lit::Str("q\"A".into())))
        );
    }

    #[test]
    fn unsupported_and_errors() {
        assert!(matches!(
            parse("sequence [process where true]"),
            Err(EqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("file where true"),
            Err(EqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("process where true | head 1"),
            Err(EqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("process where length(a) > 1"),
            Err(EqlError::Unsupported(_))
        ));
        match parse("process where a == ") {
            Err(EqlError::Syntax(e)) => assert_eq!(e.offset, 19),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("process where a == 'x'"),
            Err(EqlError::Syntax(_))
        ));
        assert!(matches!(
            parse("process where (a == 1"),
            Err(EqlError::Syntax(_))
        ));
    }
}
