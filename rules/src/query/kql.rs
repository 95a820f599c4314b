//! KQL (Kibana Query Language) parser, following Kibana's grammar (`kuery.peg`).
//!
//! `or` < `and` < `not`, keywords case-insensitive and delimited by whitespace; `field:value`,
//! `field:(a or b and not c)`, `field:*` (exists), ranges `< <= > >=`; unquoted values may
//! hold inner spaces and `*` wildcards (`?` is a plain character); quoted values are literal.
//! Values keep their text; their type comes from the field's mapping ([`Lit::Text`]).

use super::ParseError;
use super::ast::{Cmp, Lit, Op, Pred, Query, Tok};
use super::limits::{self, Budget};

/// Parses a KQL query. Total: any text gives a query or an error (see [`limits`]).
pub fn parse(src: &str) -> Result<Query<Pred>, ParseError> {
    limits::check_size(src)?;
    let mut p = Parser {
        s: src,
        pos: 0,
        field_at: 0,
        budget: Budget::default(),
    };
    p.skip_ws();
    if p.pos == src.len() {
        return Ok(Query::Const(true));
    }
    let q = p.or_query()?;
    p.skip_ws();
    if p.pos != src.len() {
        return Err(p.error("`and`, `or` or the end of the query"));
    }
    Ok(q)
}

struct Parser<'s> {
    s: &'s str,
    pos: usize,
    /// Where the field of the expression being parsed starts (its leaves' position).
    field_at: usize,
    budget: Budget,
}

/// A value as written: its pieces and whether it was quoted.
struct Value {
    toks: Vec<Tok>,
    quoted: bool,
    start: usize,
}

const SPECIAL: &[char] = &['\\', '(', ')', ':', '<', '>', '"', '*', '{', '}'];

impl<'s> Parser<'s> {
    fn rest(&self) -> &'s str {
        &self.s[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn error(&self, expected: &str) -> ParseError {
        let found = match self.peek() {
            Some(c) => format!("`{c}`"),
            None => "the end of the query".to_owned(),
        };
        ParseError {
            offset: self.pos,
            message: format!("expected {expected}, found {found}"),
        }
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start_matches(is_space);
        self.pos = self.s.len() - trimmed.len();
    }

    /// `Space+ word Space+` (or `(` after the word) at `at`; returns the end of the word.
    fn binary_keyword_at(&self, at: usize, word: &str) -> Option<usize> {
        let rest = &self.s[at..];
        let after_ws = rest.trim_start_matches(is_space);
        if after_ws.len() == rest.len() {
            return None;
        }
        let kw_start = self.s.len() - after_ws.len();
        self.word_at(kw_start, word)
    }

    /// `word` (case-insensitive) at `at`, followed by whitespace or `(`.
    fn word_at(&self, at: usize, word: &str) -> Option<usize> {
        let rest = self.s.get(at..)?;
        let head = rest.get(..word.len())?;
        if !head.eq_ignore_ascii_case(word) {
            return None;
        }
        match rest[word.len()..].chars().next() {
            Some(c) if is_space(c) || c == '(' => Some(at + word.len()),
            _ => None,
        }
    }

    fn keyword_starts_at(&self, at: usize) -> bool {
        self.binary_keyword_at(at, "or").is_some()
            || self.binary_keyword_at(at, "and").is_some()
            || self.word_at(at, "not").is_some()
    }

    fn take_binary(&mut self, word: &str) -> bool {
        match self.binary_keyword_at(self.pos, word) {
            Some(end) => {
                self.pos = end;
                self.skip_ws();
                true
            }
            None => false,
        }
    }

    fn take_not(&mut self) -> bool {
        match self.word_at(self.pos, "not") {
            Some(end) => {
                self.pos = end;
                self.skip_ws();
                true
            }
            None => false,
        }
    }

    fn or_query(&mut self) -> Result<Query<Pred>, ParseError> {
        let mut parts = vec![self.and_query()?];
        while self.take_binary("or") {
            parts.push(self.and_query()?);
        }
        Ok(flatten(parts, Query::Or))
    }

    fn and_query(&mut self) -> Result<Query<Pred>, ParseError> {
        let mut parts = vec![self.not_query()?];
        while self.take_binary("and") {
            parts.push(self.not_query()?);
        }
        Ok(flatten(parts, Query::And))
    }

    /// `inner` one nesting level down, for the `(` or `not` at byte `at` (refused past
    /// [`limits::MAX_DEPTH`], naming that byte).
    fn nested<T>(
        &mut self,
        at: usize,
        inner: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.budget.enter(at)?;
        let out = inner(self);
        self.budget.leave();
        out
    }

    fn not_query(&mut self) -> Result<Query<Pred>, ParseError> {
        let at = self.pos;
        if self.take_not() {
            return self.nested(at, |p| Ok(Query::Not(Box::new(p.not_query()?))));
        }
        if self.peek() == Some('(') {
            self.pos += 1;
            self.skip_ws();
            let q = self.nested(at, Self::or_query)?;
            self.skip_ws();
            if self.peek() != Some(')') {
                return Err(self.error("`)`, `and` or `or`"));
            }
            self.pos += 1;
            return Ok(q);
        }
        self.expression()
    }

    fn expression(&mut self) -> Result<Query<Pred>, ParseError> {
        let start = self.pos;
        let field = self.value()?;
        let Some(field) = field else {
            return Err(self.error("a field name, `(` or `not`"));
        };
        if field.toks.contains(&Tok::Star) {
            return Err(ParseError {
                offset: start,
                message: "wildcard field names are not supported".into(),
            });
        }
        let name = literal_text(&field.toks);
        self.field_at = start;
        self.skip_ws();
        let rest = self.rest();
        for (op, cmp) in [
            ("<=", Cmp::Le),
            (">=", Cmp::Ge),
            ("<", Cmp::Lt),
            (">", Cmp::Gt),
        ] {
            if rest.starts_with(op) {
                self.pos += op.len();
                self.skip_ws();
                let value = match self.value()? {
                    Some(v) if !v.toks.contains(&Tok::Star) => v,
                    Some(v) => {
                        return Err(ParseError {
                            offset: v.start,
                            message: "a range bound cannot hold a wildcard".into(),
                        });
                    }
                    None => return Err(self.error("a value")),
                };
                self.budget.leaf(start)?;
                return Ok(Query::Leaf(Pred {
                    field: name,
                    op: Op::Compare(cmp, Lit::Text(literal_text(&value.toks))),
                    at: start,
                }));
            }
        }
        if !rest.starts_with(':') {
            return Err(self.error("`:`, `<`, `<=`, `>` or `>=` after a field name"));
        }
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some('{') {
            return Err(ParseError {
                offset: self.pos,
                message: "nested field queries (`field:{...}`) need a nested mapping, which the exec view has none of".into(),
            });
        }
        self.value_list(&name)
    }

    fn value_list(&mut self, field: &str) -> Result<Query<Pred>, ParseError> {
        if self.peek() == Some('(') {
            let at = self.pos;
            self.pos += 1;
            self.skip_ws();
            let q = self.nested(at, |p| p.or_values(field))?;
            self.skip_ws();
            if self.peek() != Some(')') {
                return Err(self.error("`)`, `and` or `or`"));
            }
            self.pos += 1;
            return Ok(q);
        }
        let at = self.pos;
        match self.value()? {
            Some(v) => {
                self.budget.leaf(at)?;
                Ok(Query::Leaf(value_pred(field, v, self.field_at)))
            }
            None => Err(self.error("a value, `(` or `*`")),
        }
    }

    fn or_values(&mut self, field: &str) -> Result<Query<Pred>, ParseError> {
        let mut parts = vec![self.and_values(field)?];
        while self.take_binary("or") {
            parts.push(self.and_values(field)?);
        }
        Ok(flatten(parts, Query::Or))
    }

    fn and_values(&mut self, field: &str) -> Result<Query<Pred>, ParseError> {
        let mut parts = vec![self.not_values(field)?];
        while self.take_binary("and") {
            parts.push(self.not_values(field)?);
        }
        Ok(flatten(parts, Query::And))
    }

    fn not_values(&mut self, field: &str) -> Result<Query<Pred>, ParseError> {
        let at = self.pos;
        if self.take_not() {
            return self.nested(at, |p| Ok(Query::Not(Box::new(p.not_values(field)?))));
        }
        self.value_list(field)
    }

    /// A quoted string or an unquoted literal; `None` when neither starts here.
    fn value(&mut self) -> Result<Option<Value>, ParseError> {
        let start = self.pos;
        if self.peek() == Some('"') {
            return self.quoted(start).map(Some);
        }
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = String::new();
        loop {
            if self.keyword_starts_at(self.pos) {
                break;
            }
            let Some(c) = self.peek() else { break };
            if is_space(c) {
                // No `and` / `or` follows this run of whitespace (checked just above): take
                // the whole run at once, since checking at each of its positions again would
                // make a long run quadratic.
                let run = self.rest().len() - self.rest().trim_start_matches(is_space).len();
                lit.push_str(&self.s[self.pos..self.pos + run]);
                self.pos += run;
                continue;
            }
            match c {
                '\\' => {
                    self.pos += 1;
                    let rest = self.rest();
                    let mut kw = None;
                    for word in ["or", "and", "not"] {
                        if rest
                            .get(..word.len())
                            .is_some_and(|h| h.eq_ignore_ascii_case(word))
                        {
                            kw = Some(&rest[..word.len()]);
                            break;
                        }
                    }
                    if let Some(word) = kw {
                        lit.push_str(word);
                        self.pos += word.len();
                        continue;
                    }
                    match self.peek() {
                        Some('t') => lit.push('\t'),
                        Some('r') => lit.push('\r'),
                        Some('n') => lit.push('\n'),
                        Some('u') => {
                            self.pos += 1;
                            lit.push(self.unicode_escape()?);
                            continue;
                        }
                        Some(e) if SPECIAL.contains(&e) => lit.push(e),
                        _ => {
                            return Err(self.error(
                                "an escape: one of \\\\ \\( \\) \\: \\< \\> \\\" \\* \\{ \\} \\t \\r \\n \\uXXXX or an escaped keyword",
                            ));
                        }
                    }
                    self.pos += self.peek().map_or(0, char::len_utf8);
                }
                '*' => {
                    self.pos += 1;
                    if !lit.is_empty() {
                        toks.push(Tok::Lit(std::mem::take(&mut lit)));
                    }
                    toks.push(Tok::Star);
                }
                c if SPECIAL.contains(&c) => break,
                c => {
                    lit.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
        if self.pos == start {
            return Ok(None);
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit));
        }
        // Unquoted literals are trimmed (only unescaped whitespace; escapes were resolved, so
        // trim the raw span instead).
        trim_toks(&mut toks, &self.s[start..self.pos]);
        if toks.is_empty() {
            return Ok(None);
        }
        Ok(Some(Value {
            toks,
            quoted: false,
            start,
        }))
    }

    fn quoted(&mut self, start: usize) -> Result<Value, ParseError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError {
                    offset: start,
                    message: "unterminated quoted string: expected a closing `\"`".into(),
                });
            };
            self.pos += c.len_utf8();
            match c {
                '"' => break,
                '\\' => {
                    let e = self.peek();
                    match e {
                        Some('"') | Some('\\') => out.push(e.unwrap_or('\\')),
                        Some('t') => out.push('\t'),
                        Some('r') => out.push('\r'),
                        Some('n') => out.push('\n'),
                        Some('u') => {
                            self.pos += 1;
                            out.push(self.unicode_escape()?);
                            continue;
                        }
                        _ => {
                            return Err(self.error(
                                "an escape inside quotes: \\\" \\\\ \\t \\r \\n or \\uXXXX",
                            ));
                        }
                    }
                    self.pos += 1;
                }
                c => out.push(c),
            }
        }
        Ok(Value {
            toks: vec![Tok::Lit(out)],
            quoted: true,
            start,
        })
    }

    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let hex = self
            .rest()
            .get(..4)
            .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
        let c = hex
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .and_then(char::from_u32);
        match c {
            Some(c) => {
                self.pos += 4;
                Ok(c)
            }
            None => Err(self.error("four hexadecimal digits after \\u")),
        }
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Removes leading and trailing unescaped whitespace of an unquoted literal.
fn trim_toks(toks: &mut Vec<Tok>, raw: &str) {
    // Escaped whitespace is written `\t`, `\r`, `\n`, so whitespace at either end of the raw
    // text is unescaped and sits, as is, at the same end of the first or last literal: take
    // off as many whitespace characters as the raw text has there (and never more).
    let lead = raw.chars().take_while(|c| is_space(*c)).count();
    let trail = raw.chars().rev().take_while(|c| is_space(*c)).count();
    if lead > 0
        && let Some(Tok::Lit(s)) = toks.first_mut()
    {
        let cut: usize = s
            .chars()
            .take(lead)
            .take_while(|c| is_space(*c))
            .map(char::len_utf8)
            .sum();
        s.drain(..cut);
    }
    if trail > 0
        && let Some(Tok::Lit(s)) = toks.last_mut()
    {
        let cut: usize = s
            .chars()
            .rev()
            .take(trail)
            .take_while(|c| is_space(*c))
            .map(char::len_utf8)
            .sum();
        s.truncate(s.len() - cut);
    }
    toks.retain(|t| !matches!(t, Tok::Lit(s) if s.is_empty()));
}

fn literal_text(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(s) => s.as_str(),
            Tok::Star => "*",
            Tok::One => "?",
        })
        .collect()
}

fn value_pred(field: &str, v: Value, at: usize) -> Pred {
    let field = field.to_owned();
    if !v.quoted && v.toks.iter().all(|t| *t == Tok::Star) {
        return Pred {
            field,
            op: Op::Exists,
            at,
        };
    }
    if !v.quoted && v.toks.contains(&Tok::Star) {
        return Pred {
            field,
            op: Op::Pattern {
                toks: v.toks,
                ci: false,
            },
            at,
        };
    }
    Pred {
        field,
        op: Op::Compare(Cmp::Eq, Lit::Text(literal_text(&v.toks))),
        at,
    }
}

fn flatten(mut parts: Vec<Query<Pred>>, make: fn(Vec<Query<Pred>>) -> Query<Pred>) -> Query<Pred> {
    if parts.len() == 1 {
        parts.pop().unwrap_or(Query::Const(true))
    } else {
        make(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(field: &str, op: Op) -> Query<Pred> {
        Query::Leaf(Pred {
            field: field.into(),
            op,
            at: 0,
        })
    }

    /// The query without leaf positions (tests compare shapes).
    fn parse(src: &str) -> Result<Query<Pred>, ParseError> {
        super::parse(src).map(|q| {
            q.try_map(&mut |p: Pred| Ok::<_, ()>(Pred { at: 0, ..p }))
                .unwrap_or(Query::Const(false))
        })
    }

    #[test]
    fn leaves_know_where_their_field_is() {
        let q = super::parse("a:1 and\n bb:(x or y) and c >= 2").unwrap();
        let at: Vec<usize> = q.leaves().iter().map(|p| p.at).collect();
        assert_eq!(at, vec![0, 9, 9, 25]);
    }
    fn eq(field: &str, v: &str) -> Query<Pred> {
        leaf(field, Op::Compare(Cmp::Eq, Lit::Text(v.into())))
    }

    #[test]
    fn precedence_or_and_not() {
        let q = parse("a:1 or b:2 AND NOT c:3").unwrap();
        assert_eq!(
            q,
            Query::Or(vec![
                eq("a", "1"),
                Query::And(vec![eq("b", "2"), Query::Not(Box::new(eq("c", "3")))])
            ])
        );
    }

    #[test]
    fn value_lists_spaces_wildcards_and_escapes() {
        let q = parse("f:(a or b c and not d*)").unwrap();
        assert_eq!(
            q,
            Query::Or(vec![
                eq("f", "a"),
                Query::And(vec![
                    eq("f", "b c"),
                    Query::Not(Box::new(leaf(
                        "f",
                        Op::Pattern {
                            toks: vec![Tok::Lit("d".into()), Tok::Star],
                            ci: false
                        }
                    )))
                ])
            ])
        );
        assert_eq!(parse("f:*").unwrap(), leaf("f", Op::Exists));
        assert_eq!(parse(r#"f:"*""#).unwrap(), eq("f", "*"));
        assert_eq!(parse(r"f:a\*b\:c\\\or").unwrap(), eq("f", r"a*b:c\or"));
        assert_eq!(parse("f:a?b").unwrap(), eq("f", "a?b"));
        assert_eq!(
            parse("f : ~$*.zip").unwrap(),
            leaf(
                "f",
                Op::Pattern {
                    toks: vec![Tok::Lit("~$".into()), Tok::Star, Tok::Lit(".zip".into())],
                    ci: false
                }
            )
        );
        assert_eq!(
            parse("n >= 3").unwrap(),
            leaf("n", Op::Compare(Cmp::Ge, Lit::Text("3".into())))
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("a:b and ").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("field name"), "{}", e.message);
        let e = parse("a:(b or c").unwrap_err();
        assert_eq!(e.offset, 9);
        assert!(e.message.contains("`)`"), "{}", e.message);
        let e = parse("a:{b:c}").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(parse(r#"a:"x"#).is_err());
        assert!(parse(r"a:\q").is_err());
        assert!(parse("a.*:x").is_err());
        assert_eq!(parse("  ").unwrap(), Query::Const(true));
    }
}
