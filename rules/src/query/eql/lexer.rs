//! EQL tokens: identifiers (with `` ` `` quoting and `?` optional fields), strings (escapes,
//! raw `"""` strings), numbers (unsigned: a minus sign is an operator), operators and
//! brackets; comments skipped. Every token keeps its byte span.

use crate::query::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum T {
    Ident(String),
    /// `?field`: an optional field.
    OptIdent(String),
    Str(String),
    /// A number; `int` when written without a fraction and it fits an `i64`.
    Num {
        value: f64,
        int: Option<i64>,
    },
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Pipe,
    End,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) kind: T,
    pub(super) at: usize,
    /// Just past the token.
    pub(super) end: usize,
}

pub(super) fn lex(src: &str) -> Result<Vec<Token>, ParseError> {
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
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let mut fraction = false;
            if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                fraction = true;
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let text = &src[start..i];
            let value = text
                .parse::<f64>()
                .map_err(|_| err(start, "expected a number"))?;
            let int = if fraction {
                None
            } else {
                text.parse::<i64>().ok()
            };
            T::Num { value, int }
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
            let ops: &[&'static str] = &[
                "==", "!=", "<=", ">=", "<", ">", ":", "~", "+", "-", "*", "/", "%", "=", "!",
            ];
            if let Some(op) = ops.iter().find(|o| src[i..].starts_with(**o)) {
                i += op.len();
                T::Op(op)
            } else {
                i += 1;
                match c {
                    b'(' => T::LParen,
                    b')' => T::RParen,
                    b'[' => T::LBracket,
                    b']' => T::RBracket,
                    b',' => T::Comma,
                    b'|' => T::Pipe,
                    _ => {
                        let ch = src[at..].chars().next().unwrap_or('?');
                        return Err(err(at, &format!("unexpected character `{ch}`")));
                    }
                }
            }
        };
        out.push(Token { kind, at, end: i });
    }
    out.push(Token {
        kind: T::End,
        at: src.len(),
        end: src.len(),
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
