//! EQL: single-event queries (`process where ...`).
//!
//! Operators and their case rules as Elasticsearch defines them: `==`, `!=`, `in`, `like`,
//! `regex` are case-sensitive; `:`, `in~`, `like~`, `regex~` are case-insensitive. `like` and
//! `:` take `*` and `?` wildcards. Sequences, samples, pipes, field-to-field comparisons and
//! functions other than `startsWith`, `endsWith` and `stringContains` are valid EQL this engine
//! does not evaluate: they are reported as [`EqlError::Unsupported`], not as syntax errors.
//!
//! [`lexer`] turns the text into tokens with their offsets; [`parser`] builds the tree.

mod lexer;
mod parser;

pub use parser::like_toks;

use super::ParseError;
use super::ast::{Cmp, Lit, Op, Pred, Query};
use lexer::T;
use parser::Parser;

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

/// Event categories the view produces.
const CATEGORIES: &[&str] = &["process", "file"];

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
    let mut p = Parser::new(lexer::lex(src)?, src.len());
    let first = p.peek_tok().clone();
    let category = match first.kind {
        T::Ident(w) | T::Str(w) => w,
        _ => return Err(p.error("an event category (e.g. `process`)").into()),
    };
    p.bump();
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
            "event category `{category}`: no source here produces it (only process and file events)"
        )));
    }
    let cat = Query::Leaf(Pred {
        field: "event.category".into(),
        op: Op::Compare(Cmp::Eq, Lit::Str(category)),
        at: first.at,
    });
    Ok(Query::And(vec![cat, cond]))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::query::ast::Tok;

    fn leaf(field: &str, op: Op) -> Query<Pred> {
        Query::Leaf(Pred {
            field: field.into(),
            op,
            at: 0,
        })
    }

    /// The query without leaf positions (tests compare shapes).
    fn parse(src: &str) -> Result<Query<Pred>, EqlError> {
        super::parse(src).map(|q| {
            q.try_map(&mut |p: Pred| Ok::<_, ()>(Pred { at: 0, ..p }))
                .unwrap_or(Query::Const(false))
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
    fn leaves_know_where_they_are() {
        let q = super::parse("process where a == 1 and\n  startsWith(b, \"x\")").unwrap();
        let at: Vec<usize> = q.leaves().iter().map(|p| p.at).collect();
        assert_eq!(at, vec![0, 14, 38]);
    }

    #[test]
    fn unsupported_and_errors() {
        assert!(matches!(
            parse("sequence [process where true]"),
            Err(EqlError::Unsupported(_))
        ));
        assert!(matches!(
            parse("network where true"),
            Err(EqlError::Unsupported(_))
        ));
        assert!(parse("file where true").is_ok());
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
