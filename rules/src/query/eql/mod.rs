//! EQL: event queries (`process where ...`), sequences and samples.
//!
//! Operators and their case rules as Elasticsearch defines them: `==`, `!=`, `in`, `like`,
//! `regex` are case-sensitive; `:`, `in~`, `like~`, `regex~` are case-insensitive. `like` and
//! `:` take `*` and `?` wildcards. The function library, arithmetic and field-to-field
//! comparisons are evaluated; pipes, and event categories this host's events never have,
//! are valid EQL this engine does not run: they are reported as [`EqlError::Unsupported`],
//! not as syntax errors.
//!
//! [`lexer`] turns the text into tokens with their offsets; [`parser`] builds the tree;
//! [`lower`] turns conditions into the shared query tree.

mod lexer;
mod lower;
mod parser;

pub use parser::like_toks;

use super::ParseError;
use super::ast::{Cmp, Eql, Lit, Op, Pred, Query, Sample, Sequence, Stage};
use parser::{EventQuery, Parser, StageAst, TopAst};

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

/// Parses an EQL text. Each event query also tests `event.category` (unless `any`).
pub fn parse(src: &str) -> Result<Eql<Query<Pred>>, EqlError> {
    super::limits::check_size(src)?;
    let mut p = Parser::new(lexer::lex(src)?, src.len());
    Ok(match p.top()? {
        TopAst::Event(q) => Eql::Event(event_query(q)?),
        TopAst::Sequence {
            by,
            maxspan,
            stages,
            until,
        } => {
            let mut out = Vec::new();
            for st in stages {
                let runs = st.runs;
                let stage = stage(st)?;
                for _ in 1..runs {
                    out.push(stage.clone());
                }
                out.push(stage);
            }
            if out.iter().any(|s| s.missing) && maxspan.is_none() {
                return Err(EqlError::Syntax(ParseError {
                    offset: out.iter().find(|s| s.missing).map_or(0, |s| s.at),
                    message: "a sequence with missing events (`![...]`) needs `with maxspan`"
                        .into(),
                }));
            }
            Eql::Sequence(Sequence {
                by,
                maxspan,
                stages: out,
                until: until.map(stage).transpose()?,
            })
        }
        TopAst::Sample { by, stages } => Eql::Sample(Sample {
            by,
            stages: stages.into_iter().map(stage).collect::<Result<_, _>>()?,
        }),
    })
}

/// The single-event query of an event-query text (what the older single-event-only callers
/// and tests use).
pub fn parse_event(src: &str) -> Result<Query<Pred>, EqlError> {
    match parse(src)? {
        Eql::Event(q) => Ok(q),
        _ => Err(EqlError::Unsupported(
            "a sequence or sample where an event query was expected".into(),
        )),
    }
}

fn stage(st: StageAst) -> Result<Stage<Query<Pred>>, EqlError> {
    Ok(Stage {
        query: event_query(st.query)?,
        keys: st.keys,
        missing: st.missing,
        at: st.at,
    })
}

fn event_query(q: EventQuery) -> Result<Query<Pred>, EqlError> {
    let cond = lower::lower(q.cond)?;
    if q.category == "any" {
        return Ok(cond);
    }
    if !crate::ecs::CATEGORIES.contains(&q.category.as_str()) {
        return Err(EqlError::Unsupported(format!(
            "event category `{}`: no source here produces it (only {} events)",
            q.category,
            crate::ecs::CATEGORIES.join(" and ")
        )));
    }
    let cat = Query::Leaf(Pred {
        field: "event.category".into(),
        op: Op::Compare(Cmp::Eq, Lit::Str(q.category)),
        at: q.category_at,
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
        super::parse_event(src).map(|q| {
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
        let q = super::parse_event("process where a == 1 and\n  startsWith(b, \"x\")").unwrap();
        let at: Vec<usize> = q.leaves().iter().map(|p| p.at).collect();
        assert_eq!(at, vec![0, 14, 38]);
    }

    #[test]
    fn unsupported_and_errors() {
        assert!(matches!(
            parse("sequence [process where true] [process where true]"),
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
            parse("process where lenght(a) > 1"),
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
