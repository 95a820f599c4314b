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
    /// An EQL condition over computed values: field-to-field comparisons, function results,
    /// arithmetic. The leaf's `field` names its first field, for messages.
    Check(Check),
}

/// An EQL value expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A field; `optional` for `?field`.
    Field {
        name: String,
        optional: bool,
        at: usize,
    },
    Str(String),
    /// A number as written: `int` when it has no fraction.
    Num {
        value: f64,
        int: Option<i64>,
    },
    Bool(bool),
    Null,
    Call {
        func: Func,
        /// The `~` variant: case-insensitive.
        ci: bool,
        args: Vec<Expr>,
        at: usize,
    },
    Arith {
        op: Arith,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Neg(Box<Expr>),
}

/// EQL's function library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Add,
    Between,
    CidrMatch,
    Concat,
    Divide,
    EndsWith,
    IndexOf,
    Length,
    Modulo,
    Multiply,
    Number,
    StartsWith,
    String,
    StringContains,
    Substring,
    Subtract,
    Wildcard,
}

impl Func {
    /// The function of an EQL name (names are case-insensitive, as in Elasticsearch).
    pub fn from_name(name: &str) -> Option<Func> {
        const NAMES: &[(&str, Func)] = &[
            ("add", Func::Add),
            ("between", Func::Between),
            ("cidrmatch", Func::CidrMatch),
            ("concat", Func::Concat),
            ("divide", Func::Divide),
            ("endswith", Func::EndsWith),
            ("indexof", Func::IndexOf),
            ("length", Func::Length),
            ("modulo", Func::Modulo),
            ("multiply", Func::Multiply),
            ("number", Func::Number),
            ("startswith", Func::StartsWith),
            ("string", Func::String),
            ("stringcontains", Func::StringContains),
            ("substring", Func::Substring),
            ("subtract", Func::Subtract),
            ("wildcard", Func::Wildcard),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| *f)
    }

    /// How many arguments it takes: (least, most).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Func::Add | Func::Divide | Func::Modulo | Func::Multiply | Func::Subtract => (2, 2),
            Func::Between => (3, 4),
            Func::CidrMatch | Func::Wildcard => (2, usize::MAX),
            Func::Concat => (1, usize::MAX),
            Func::EndsWith | Func::StartsWith | Func::StringContains => (2, 2),
            Func::IndexOf | Func::Substring => (2, 3),
            Func::Length | Func::String => (1, 1),
            Func::Number => (1, 2),
        }
    }

    /// Whether a `~` (case-insensitive) variant exists.
    pub fn has_ci(self) -> bool {
        matches!(
            self,
            Func::Between
                | Func::EndsWith
                | Func::IndexOf
                | Func::StartsWith
                | Func::StringContains
                | Func::Wildcard
        )
    }
}

/// Arithmetic operators (`+ - * / %` and `add`... `modulo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

/// A condition on computed values.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// `lhs OP rhs`; `!=` is `ne`.
    Cmp {
        cmp: Cmp,
        ne: bool,
        lhs: Expr,
        rhs: Expr,
    },
    /// `value : patterns`, `value like patterns`, `value regex patterns`.
    Match {
        value: Expr,
        patterns: Vec<MatchPattern>,
    },
    /// `value in (items)`; `in~` is `ci`.
    In {
        value: Expr,
        items: Vec<Expr>,
        ci: bool,
    },
    /// A boolean-valued expression (a function such as `startsWith`, `cidrMatch`).
    Truthy(Expr),
}

/// One pattern of a [`Check::Match`].
#[derive(Debug, Clone, PartialEq)]
pub enum MatchPattern {
    Wildcard { toks: Vec<Tok>, ci: bool },
    Regex { pattern: String, ci: bool },
}

impl Expr {
    /// Every field the expression reads, depth first.
    pub fn fields(&self) -> Vec<(&str, usize)> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'s>(&'s self, out: &mut Vec<(&'s str, usize)>) {
        match self {
            Expr::Field { name, at, .. } => out.push((name, *at)),
            Expr::Call { args, .. } => args.iter().for_each(|a| a.collect_fields(out)),
            Expr::Arith { lhs, rhs, .. } => {
                lhs.collect_fields(out);
                rhs.collect_fields(out);
            }
            Expr::Neg(e) => e.collect_fields(out),
            Expr::Str(_) | Expr::Num { .. } | Expr::Bool(_) | Expr::Null => {}
        }
    }
}

impl Check {
    /// Every field the condition reads.
    pub fn fields(&self) -> Vec<(&str, usize)> {
        match self {
            Check::Cmp { lhs, rhs, .. } => {
                let mut v = lhs.fields();
                v.extend(rhs.fields());
                v
            }
            Check::Match { value, .. } => value.fields(),
            Check::In { value, items, .. } => {
                let mut v = value.fields();
                for i in items {
                    v.extend(i.fields());
                }
                v
            }
            Check::Truthy(e) => e.fields(),
        }
    }
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

/// A field a sequence or sample joins on (`by`); `optional` for `?field`, whose value may
/// be null (a missing non-optional key keeps the event out of every match, as in
/// Elasticsearch).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinKey {
    pub field: String,
    pub optional: bool,
    pub at: usize,
}

/// One item of a sequence or sample: its event query and its own join keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage<Q> {
    pub query: Q,
    pub keys: Vec<JoinKey>,
    /// `![...]`: no such event may occur there.
    pub missing: bool,
    /// Byte offset of the item in the query text.
    pub at: usize,
}

/// `sequence [by ...] [with maxspan=...] [...] [...] ... [until [...]]`, with `runs=N`
/// items already repeated.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence<Q> {
    pub by: Vec<JoinKey>,
    pub maxspan: Option<std::time::Duration>,
    pub stages: Vec<Stage<Q>>,
    pub until: Option<Stage<Q>>,
}

/// `sample [by ...] [...] [...] ...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<Q> {
    pub by: Vec<JoinKey>,
    pub stages: Vec<Stage<Q>>,
}

/// What an EQL text asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Eql<Q> {
    Event(Q),
    Sequence(Sequence<Q>),
    Sample(Sample<Q>),
}

impl<Q> Stage<Q> {
    pub fn try_map<R, E>(self, f: &mut impl FnMut(Q) -> Result<R, E>) -> Result<Stage<R>, E> {
        Ok(Stage {
            query: f(self.query)?,
            keys: self.keys,
            missing: self.missing,
            at: self.at,
        })
    }
}

impl<Q> Eql<Q> {
    /// Applies `f` to every event query, stopping at the first error.
    pub fn try_map<R, E>(self, f: &mut impl FnMut(Q) -> Result<R, E>) -> Result<Eql<R>, E> {
        Ok(match self {
            Eql::Event(q) => Eql::Event(f(q)?),
            Eql::Sequence(s) => Eql::Sequence(Sequence {
                by: s.by,
                maxspan: s.maxspan,
                stages: s
                    .stages
                    .into_iter()
                    .map(|st| st.try_map(f))
                    .collect::<Result<_, _>>()?,
                until: s.until.map(|u| u.try_map(f)).transpose()?,
            }),
            Eql::Sample(s) => Eql::Sample(Sample {
                by: s.by,
                stages: s
                    .stages
                    .into_iter()
                    .map(|st| st.try_map(f))
                    .collect::<Result<_, _>>()?,
            }),
        })
    }

    /// Every event query, in order (stages, then `until`).
    pub fn queries(&self) -> Vec<&Q> {
        match self {
            Eql::Event(q) => vec![q],
            Eql::Sequence(s) => s
                .stages
                .iter()
                .chain(s.until.iter())
                .map(|st| &st.query)
                .collect(),
            Eql::Sample(s) => s.stages.iter().map(|st| &st.query).collect(),
        }
    }
}
