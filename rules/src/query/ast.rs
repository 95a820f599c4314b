//! The query tree both parsers produce.
//!
//! KQL and EQL differ in syntax and in a few semantics (which operators are case-insensitive,
//! whether `?` is a wildcard); the parsers settle those, so a [`Query`] says exactly what each
//! leaf tests. [`super::typing`] then resolves its field names and literal types.

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
    /// Byte offset of the leaf (its field name) in the query text: where type errors and
    /// warnings point.
    pub at: usize,
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
