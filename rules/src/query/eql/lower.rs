//! Lowering: a parsed EQL condition into the shared query tree.
//!
//! A field tested against literals (`==`, `!=`, `<`..., `:`, `like`, `regex`, `in`, and
//! `startsWith` / `endsWith` / `stringContains` / `wildcard` with a literal) becomes a plain
//! leaf, which the matcher indexes and evaluates without computing values; anything else
//! (field-to-field comparisons, function results, arithmetic) becomes a
//! [`Check`](crate::query::ast::Check).

use super::EqlError;
use super::parser::{Cond, like_toks};
use crate::query::ParseError;
use crate::query::ast::{Check, Cmp, Expr, Func, Lit, MatchPattern, Op, Pred, Query, Tok};

pub(super) fn lower(c: Cond) -> Result<Query<Pred>, EqlError> {
    Ok(match c {
        Cond::And(v) => Query::And(v.into_iter().map(lower).collect::<Result<_, _>>()?),
        Cond::Or(v) => Query::Or(v.into_iter().map(lower).collect::<Result<_, _>>()?),
        Cond::Not(inner) => Query::Not(Box::new(lower(*inner)?)),
        Cond::Value(e, at) => value_cond(e, at)?,
        Cond::Cmp { op, lhs, rhs, at } => comparison(op, lhs, rhs, at)?,
        Cond::Seq {
            value,
            patterns,
            regex,
            ci,
            at,
        } => match value {
            Expr::Field { name, .. } => any(patterns
                .into_iter()
                .map(|s| {
                    leaf(
                        &name,
                        if regex {
                            Op::Regex { pattern: s, ci }
                        } else {
                            Op::Pattern {
                                toks: like_toks(&s),
                                ci,
                            }
                        },
                        at,
                    )
                })
                .collect()),
            value => check(
                Check::Match {
                    value,
                    patterns: patterns
                        .into_iter()
                        .map(|s| {
                            if regex {
                                MatchPattern::Regex { pattern: s, ci }
                            } else {
                                MatchPattern::Wildcard {
                                    toks: like_toks(&s),
                                    ci,
                                }
                            }
                        })
                        .collect(),
                },
                at,
            ),
        },
        Cond::In {
            value,
            items,
            ci,
            negated,
            at,
        } => {
            let q = match value {
                Expr::Field { name, .. } if items.iter().all(is_literal) => {
                    let mut parts = Vec::new();
                    for item in items {
                        parts.push(match item {
                            Expr::Str(s) if ci => leaf(
                                &name,
                                Op::Pattern {
                                    toks: vec![Tok::Lit(s)],
                                    ci: true,
                                },
                                at,
                            ),
                            Expr::Null => Query::Not(Box::new(leaf(&name, Op::Exists, at))),
                            lit => leaf(&name, Op::Compare(Cmp::Eq, to_lit(lit, at)?), at),
                        });
                    }
                    any(parts)
                }
                value => check(Check::In { value, items, ci }, at),
            };
            if negated { Query::Not(Box::new(q)) } else { q }
        }
    })
}

/// A value used as a condition.
fn value_cond(e: Expr, at: usize) -> Result<Query<Pred>, EqlError> {
    Ok(match e {
        Expr::Bool(b) => Query::Const(b),
        Expr::Field { name, .. } => leaf(&name, Op::Compare(Cmp::Eq, Lit::Bool(true)), at),
        Expr::Call {
            func: f @ (Func::StartsWith | Func::EndsWith | Func::StringContains),
            ci,
            args,
            at: call_at,
        } => match <[Expr; 2]>::try_from(args) {
            Ok([Expr::Field { name, at, .. }, Expr::Str(s)]) => match (f, s.is_empty()) {
                // Elasticsearch: any string starts and ends with "", none contains it.
                (Func::StartsWith | Func::EndsWith, true) => leaf(&name, Op::Exists, at),
                (Func::StringContains, true) => Query::Const(false),
                (Func::StartsWith, false) => pattern(&name, vec![Tok::Lit(s), Tok::Star], ci, at),
                (Func::EndsWith, false) => pattern(&name, vec![Tok::Star, Tok::Lit(s)], ci, at),
                _ => pattern(&name, vec![Tok::Star, Tok::Lit(s), Tok::Star], ci, at),
            },
            Ok(args) => truthy(f, ci, args.into(), call_at, at),
            Err(args) => truthy(f, ci, args, call_at, at),
        },
        Expr::Call {
            func: Func::Wildcard,
            ci,
            args,
            ..
        } if matches!(args.first(), Some(Expr::Field { .. }))
            && args[1..].iter().all(|a| matches!(a, Expr::Str(_))) =>
        {
            let mut args = args.into_iter();
            let Some(Expr::Field { name, .. }) = args.next() else {
                return Err(not_a_condition(at));
            };
            any(args
                .filter_map(|a| match a {
                    Expr::Str(p) => Some(pattern(&name, like_toks(&p), ci, at)),
                    _ => None,
                })
                .collect())
        }
        e @ (Expr::Call { .. } | Expr::Arith { .. } | Expr::Neg(_)) => check(Check::Truthy(e), at),
        Expr::Str(_) | Expr::Num { .. } | Expr::Null => return Err(not_a_condition(at)),
    })
}

fn comparison(op: &'static str, lhs: Expr, rhs: Expr, at: usize) -> Result<Query<Pred>, EqlError> {
    let (cmp, ne) = match op {
        "==" => (Cmp::Eq, false),
        "!=" => (Cmp::Eq, true),
        "<" => (Cmp::Lt, false),
        "<=" => (Cmp::Le, false),
        ">" => (Cmp::Gt, false),
        _ => (Cmp::Ge, false),
    };
    // `literal OP field` reads as `field OP' literal`.
    let (cmp, lhs, rhs) = if is_literal(&lhs) && matches!(rhs, Expr::Field { .. }) {
        (flip(cmp), rhs, lhs)
    } else {
        (cmp, lhs, rhs)
    };
    let Expr::Field { name, .. } = &lhs else {
        return Ok(check(Check::Cmp { cmp, ne, lhs, rhs }, at));
    };
    if !is_literal(&rhs) {
        return Ok(check(Check::Cmp { cmp, ne, lhs, rhs }, at));
    }
    let name = name.clone();
    let q = match rhs {
        Expr::Null if cmp == Cmp::Eq && !ne => Query::Not(Box::new(leaf(&name, Op::Exists, at))),
        Expr::Null if cmp == Cmp::Eq => return Ok(leaf(&name, Op::Exists, at)),
        Expr::Null => {
            return Err(ParseError {
                offset: at,
                message: "null can only be compared with `==` or `!=`".into(),
            }
            .into());
        }
        lit => leaf(&name, Op::Compare(cmp, to_lit(lit, at)?), at),
    };
    Ok(if ne && !matches!(q, Query::Not(_)) {
        Query::Not(Box::new(q))
    } else {
        q
    })
}

fn flip(c: Cmp) -> Cmp {
    match c {
        Cmp::Lt => Cmp::Gt,
        Cmp::Le => Cmp::Ge,
        Cmp::Gt => Cmp::Lt,
        Cmp::Ge => Cmp::Le,
        Cmp::Eq => Cmp::Eq,
    }
}

fn is_literal(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Str(_) | Expr::Num { .. } | Expr::Bool(_) | Expr::Null
    )
}

fn to_lit(e: Expr, at: usize) -> Result<Lit, EqlError> {
    Ok(match e {
        Expr::Str(s) => Lit::Str(s),
        Expr::Num { value, .. } => Lit::Num(value),
        Expr::Bool(b) => Lit::Bool(b),
        _ => return Err(not_a_condition(at)),
    })
}

fn not_a_condition(at: usize) -> EqlError {
    EqlError::Syntax(ParseError {
        offset: at,
        message: "expected a condition, found a value".into(),
    })
}

fn truthy(func: Func, ci: bool, args: Vec<Expr>, call_at: usize, at: usize) -> Query<Pred> {
    check(
        Check::Truthy(Expr::Call {
            func,
            ci,
            args,
            at: call_at,
        }),
        at,
    )
}

fn leaf(field: &str, op: Op, at: usize) -> Query<Pred> {
    Query::Leaf(Pred {
        field: field.to_owned(),
        op,
        at,
    })
}

fn pattern(field: &str, toks: Vec<Tok>, ci: bool, at: usize) -> Query<Pred> {
    leaf(field, Op::Pattern { toks, ci }, at)
}

fn check(c: Check, at: usize) -> Query<Pred> {
    let field = c
        .fields()
        .first()
        .map_or_else(String::new, |(n, _)| (*n).to_owned());
    Query::Leaf(Pred {
        field,
        op: Op::Check(c),
        at,
    })
}

fn any(mut parts: Vec<Query<Pred>>) -> Query<Pred> {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Query::Or(parts)
    }
}
