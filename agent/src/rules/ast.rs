//! The query tree both parsers produce, and its typed form that both matchers evaluate.
//!
//! KQL and EQL differ in syntax and in a few semantics (which operators are case-insensitive,
//! whether `?` is a wildcard); the parsers settle those, so a [`Query`] says exactly what each
//! leaf tests. [`Query::typed`] then resolves field names against the ECS view and coerces
//! literals to the field's mapping, the way Elasticsearch does when it builds the query.

use crate::ecs::{Field, FieldKind, kind_of};

/// A boolean tree over leaves `P`.
#[derive(Debug, Clone, PartialEq)]
pub enum Query<P> {
    And(Vec<Query<P>>),
    Or(Vec<Query<P>>),
    Not(Box<Query<P>>),
    Leaf(P),
    Const(bool),
}

/// One piece of a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Lit(String),
    /// `*`: any characters, possibly none.
    Star,
    /// `?` (EQL only): exactly one character.
    One,
}

/// A literal as the query wrote it.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// KQL text: its type is the field's (`true` is a boolean on a boolean field and a string
    /// on a keyword field).
    Text(String),
    Str(String),
    Num(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Cmp::Eq => ord == Equal,
            Cmp::Lt => ord == Less,
            Cmp::Le => ord != Greater,
            Cmp::Gt => ord == Greater,
            Cmp::Ge => ord != Less,
        }
    }
}

/// What a parsed leaf tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// The field has a value.
    Exists,
    /// Exact, case-sensitive equality (or a comparison).
    Compare(Cmp, Lit),
    /// Wildcard pattern; `ci` = case-insensitive.
    Pattern { toks: Vec<Tok>, ci: bool },
    /// Lucene regular expression, anchored at both ends.
    Regex { pattern: String, ci: bool },
}

/// A parsed leaf: field name and test.
#[derive(Debug, Clone, PartialEq)]
pub struct Pred {
    pub field: String,
    pub op: Op,
}

/// A leaf after type resolution: what both matchers evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedPred {
    pub name: String,
    /// `None`: the view never produces this field.
    pub field: Option<Field>,
    pub kind: FieldKind,
    pub test: Test,
}

/// A leaf test on values of the field's own type.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Exists,
    /// String comparison (bytes order, as Lucene sorts keywords).
    Str(Cmp, String),
    Pattern {
        toks: Vec<Tok>,
        ci: bool,
    },
    Regex {
        pattern: String,
        ci: bool,
    },
    Num(Cmp, f64),
    Bool(bool),
}

impl<P> Query<P> {
    /// Applies `f` to every leaf, stopping at the first error.
    pub fn try_map<Q, E>(self, f: &mut impl FnMut(P) -> Result<Q, E>) -> Result<Query<Q>, E> {
        Ok(match self {
            Query::And(v) => Query::And(
                v.into_iter()
                    .map(|q| q.try_map(f))
                    .collect::<Result<_, _>>()?,
            ),
            Query::Or(v) => Query::Or(
                v.into_iter()
                    .map(|q| q.try_map(f))
                    .collect::<Result<_, _>>()?,
            ),
            Query::Not(q) => Query::Not(Box::new(q.try_map(f)?)),
            Query::Leaf(p) => Query::Leaf(f(p)?),
            Query::Const(b) => Query::Const(b),
        })
    }

    /// Every leaf, depth first.
    pub fn leaves(&self) -> Vec<&P> {
        let mut out = Vec::new();
        self.collect_leaves(&mut out);
        out
    }

    fn collect_leaves<'s>(&'s self, out: &mut Vec<&'s P>) {
        match self {
            Query::And(v) | Query::Or(v) => v.iter().for_each(|q| q.collect_leaves(out)),
            Query::Not(q) => q.collect_leaves(out),
            Query::Leaf(p) => out.push(p),
            Query::Const(_) => {}
        }
    }
}

impl Query<Pred> {
    /// Resolves fields and literal types; the error says which field and value do not fit.
    pub fn typed(self) -> Result<Query<TypedPred>, String> {
        self.try_map(&mut |p: Pred| type_pred(p))
    }
}

fn type_pred(p: Pred) -> Result<TypedPred, String> {
    let field = Field::from_name(&p.field);
    let kind = field.map_or_else(|| kind_of(&p.field), Field::kind);
    let name = p.field;
    let mismatch = |what: &str| format!("{what} cannot be compared with field `{name}` ({kind:?})");
    let test = match p.op {
        Op::Exists => Test::Exists,
        Op::Compare(cmp, lit) => match (kind, lit) {
            (FieldKind::Keyword | FieldKind::Wildcard, Lit::Text(s) | Lit::Str(s)) => {
                Test::Str(cmp, s)
            }
            (FieldKind::Long, Lit::Num(n)) => Test::Num(cmp, n),
            (FieldKind::Long, Lit::Text(s)) => match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Test::Num(cmp, n),
                _ => return Err(format!("`{s}` is not a number (field `{name}` is numeric)")),
            },
            (FieldKind::Bool, Lit::Bool(b)) if cmp == Cmp::Eq => Test::Bool(b),
            (FieldKind::Bool, Lit::Text(s)) if cmp == Cmp::Eq => match s.as_str() {
                "true" => Test::Bool(true),
                "false" => Test::Bool(false),
                _ => {
                    return Err(format!(
                        "`{s}` is not a boolean (field `{name}` is boolean)"
                    ));
                }
            },
            (_, Lit::Str(_)) => return Err(mismatch("a string")),
            (_, Lit::Num(_)) => return Err(mismatch("a number")),
            (_, Lit::Bool(_)) => return Err(mismatch("a boolean")),
            (FieldKind::Bool, Lit::Text(_)) => return Err(mismatch("a range")),
        },
        Op::Pattern { toks, ci } => match kind {
            FieldKind::Keyword | FieldKind::Wildcard => Test::Pattern { toks, ci },
            _ => return Err(mismatch("a wildcard pattern")),
        },
        Op::Regex { pattern, ci } => match kind {
            FieldKind::Keyword | FieldKind::Wildcard => {
                crate::rules::pattern::lucene_to_regex(&pattern, ci)?;
                Test::Regex { pattern, ci }
            }
            _ => return Err(mismatch("a regular expression")),
        },
    };
    Ok(TypedPred {
        name,
        field,
        kind,
        test,
    })
}

/// Case-insensitive character equality as Lucene builds it for a pattern character `p`:
/// `v` matches when it is `p`, its lower case or its upper case (simple, one-character mappings).
pub fn ci_char_eq(p: char, v: char) -> bool {
    if p == v {
        return true;
    }
    if p.is_ascii() {
        return v.is_ascii() && p.eq_ignore_ascii_case(&v);
    }
    single(p.to_lowercase()) == Some(v) || single(p.to_uppercase()) == Some(v)
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

/// Whether a keyword value is indexed at all (`ignore_above`, counted in UTF-16 units).
pub fn within_ignore_above(s: &str) -> bool {
    s.len() <= crate::ecs::IGNORE_ABOVE || s.encode_utf16().count() <= crate::ecs::IGNORE_ABOVE
}
