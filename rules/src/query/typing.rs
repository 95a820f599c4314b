//! Type resolution: a parsed leaf's field name becomes a schema id and its literal a value of
//! the field's mapping, the way Elasticsearch coerces a query's literals when it builds the
//! query (`true` on a boolean field is a boolean, on a keyword field a string). Regular
//! expressions are compiled here, once, for both matchers.

use crate::ecs::{Field, FieldKind, kind_of};
use crate::pattern::Regex;

use super::ast::{Cmp, Lit, Op, Pred, Query, Tok};

/// A leaf after type resolution: what both matchers evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct TypedPred {
    pub name: String,
    /// `None`: the view never produces this field.
    pub field: Option<Field>,
    pub kind: FieldKind,
    pub test: Test,
    /// Byte offset of the leaf in the query text.
    pub at: usize,
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
    /// Lucene regular expression, anchored at both ends.
    Regex(Regex),
    Num(Cmp, f64),
    Bool(bool),
}

/// A literal or pattern that does not fit its field's mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeError {
    /// Byte offset of the leaf in the query text.
    pub at: usize,
    pub message: String,
}

impl Query<Pred> {
    /// Resolves fields and literal types; the error says which field and value do not fit.
    pub fn typed(self) -> Result<Query<TypedPred>, TypeError> {
        self.try_map(&mut |p: Pred| {
            let at = p.at;
            type_pred(p).map_err(|message| TypeError { at, message })
        })
    }
}

impl Query<TypedPred> {
    /// Fields the query names that the view never produces, with where each is first named.
    pub fn absent_fields(&self) -> Vec<(&str, usize)> {
        let mut out: Vec<(&str, usize)> = Vec::new();
        for p in self.leaves() {
            if p.field.is_none() && !out.iter().any(|(n, _)| *n == p.name) {
                out.push((&p.name, p.at));
            }
        }
        out
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
            FieldKind::Keyword | FieldKind::Wildcard => Test::Regex(Regex::new(&pattern, ci)?),
            _ => return Err(mismatch("a regular expression")),
        },
    };
    Ok(TypedPred {
        name,
        field,
        kind,
        test,
        at: p.at,
    })
}
