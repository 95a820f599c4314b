//! Rule trees: a typed query compiled into a [`Node`] tree that reads event fields directly.
//!
//! Compile time does everything that does not depend on the event: field ids are resolved,
//! a query is compiled once per event [`Shape`], so the fields a shape fixes (`event.category`,
//! `event.type`, `event.action`, `event.kind`) are folded away and fields it never carries (the
//! view never produces) become `false`, `or`-ed string tests on one field are fused, and
//! children of `and`/`or` are ordered cheapest first (in an `and`, negations after every
//! positive test).

use crate::ecs::{Field, FieldKind, Shape, Value};
use crate::pattern::{Glob, Regex};
use crate::query::ast::{Cmp, Query, Tok};
use crate::query::typing::{Test, TypedPred};

use super::check::CheckLeaf;
use super::eval::Scratch;
use super::one_of::StrSet;
use super::pieces::Pieces;

#[derive(Debug)]
pub(super) enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Leaf(Leaf),
    /// An EQL condition over computed values.
    Check(Box<CheckLeaf>),
    Const(bool),
}

#[derive(Debug)]
pub(super) struct Leaf {
    pub(super) field: Field,
    /// Keyword mapping: values over `ignore_above` are invisible.
    pub(super) keyword: bool,
    pub(super) test: CTest,
    /// `process.command_line` can be tested on the NUL-joined argv as is (see
    /// [`CTest::joined_equivalent`]), without joining it with spaces first.
    pub(super) on_joined: bool,
    /// The slot of the per-event memo this leaf's outcome is kept in, when other leaves of
    /// the matcher test the same (see [`super::share`]); [`NO_MEMO`] otherwise.
    pub(super) memo: u32,
}

/// [`Leaf::memo`] of a leaf evaluated every time.
pub(super) const NO_MEMO: u32 = u32::MAX;

#[derive(Debug)]
pub(super) enum CTest {
    Exists,
    Str(Cmp, Box<str>),
    Glob(Glob),
    Regex(Regex),
    Num(Cmp, f64),
    Bool(bool),
    /// Any of several string tests on the same field: an `or` of them, fused so the field is
    /// read (and argv walked) once.
    AnyOf(Box<[CTest]>),
    /// Equal to one of many strings (`in (...)` lists), or, when the set is folded, to one
    /// of many ASCII strings ignoring ASCII case (`in~ (...)`, `: (...)`).
    OneOf(StrSet),
    /// Holds one of several literals (`or`-ed `*literal*` patterns, all case-sensitive or
    /// all ASCII case-insensitive): one pass finds any.
    Contains(Pieces),
}

/// Compiles one typed query for events of `shape`.
pub(super) fn compile(q: &Query<TypedPred>, shape: Shape) -> Node {
    match q {
        Query::And(v) => simplify_and(v.iter().map(|q| compile(q, shape)).collect()),
        Query::Or(v) => simplify_or(v.iter().map(|q| compile(q, shape)).collect()),
        Query::Not(inner) => match compile(inner, shape) {
            Node::Const(b) => Node::Const(!b),
            // Three-valued, as Elasticsearch's scripts: `not` of a null condition is null.
            Node::Check(mut c) => {
                c.negated = !c.negated;
                Node::Check(c)
            }
            n => Node::Not(Box::new(n)),
        },
        Query::Const(b) => Node::Const(*b),
        Query::Leaf(p) => compile_leaf(p, shape),
    }
}

pub(super) fn compile_leaf(p: &TypedPred, shape: Shape) -> Node {
    if let Test::Check(c) = &p.test {
        // Typing refused what cannot compile (too many fields, a bad CIDR block).
        return match CheckLeaf::new(c, shape) {
            Ok(l) => match l.constant() {
                Some(Some(b)) => Node::Const(b),
                _ => Node::Check(Box::new(l)),
            },
            Err(_) => Node::Const(false),
        };
    }
    let Some(field) = p.field.filter(|f| shape.can_carry(*f)) else {
        // Never produced (for this shape): absent, so every test is false.
        return Node::Const(false);
    };
    let test = match &p.test {
        Test::Exists => CTest::Exists,
        Test::Str(cmp, s) => CTest::Str(*cmp, s.as_str().into()),
        Test::Pattern { toks, ci } => {
            let g = Glob::new(toks, *ci);
            match g.exact() {
                Some(s) => CTest::Str(Cmp::Eq, s.into()),
                None => CTest::Glob(g),
            }
        }
        Test::Regex(re) => CTest::Regex(re.clone()),
        Test::Num(cmp, n) => CTest::Num(*cmp, *n),
        Test::Bool(b) => CTest::Bool(*b),
        Test::Check(_) => return Node::Const(false),
    };
    let leaf = Leaf {
        field,
        keyword: p.kind == FieldKind::Keyword,
        on_joined: test.joined_equivalent(),
        test,
        memo: NO_MEMO,
    };
    // Fields with one value for every event of the shape are decided now.
    if matches!(
        field,
        Field::EventCategory | Field::EventType | Field::EventAction | Field::EventKind
    ) {
        let value = match field {
            Field::EventCategory => shape.category(),
            Field::EventType => shape.event_type(),
            Field::EventAction => shape.action(),
            _ => "event",
        };
        let mut sc = Scratch::default();
        return Node::Const(leaf.test_value(&Value::Str(value), &mut sc, None));
    }
    Node::Leaf(leaf)
}

pub(super) fn simplify_and(kids: Vec<Node>) -> Node {
    let mut out = Vec::new();
    for k in kids {
        match k {
            Node::Const(true) => {}
            Node::Const(false) => return Node::Const(false),
            k if k.is_null() => return Node::Const(false),
            Node::And(inner) => out.extend(inner.into_vec()),
            k => out.push(k),
        }
    }
    // What a rule must hold rejects nearly every event; its exclusions (`not ...`) rarely
    // do, however cheap: they run after every positive test.
    out.sort_by_key(|n| (matches!(n, Node::Not(_)), cost(n)));
    match out.len() {
        0 => Node::Const(true),
        1 => out.pop().unwrap_or(Node::Const(true)),
        _ => Node::And(out.into()),
    }
}

pub(super) fn simplify_or(kids: Vec<Node>) -> Node {
    let mut out = Vec::new();
    for k in kids {
        match k {
            Node::Const(false) => {}
            k if k.is_null() => {}
            Node::Const(true) => return Node::Const(true),
            Node::Or(inner) => out.extend(inner.into_vec()),
            k => out.push(k),
        }
    }
    let mut out = fuse_leaves(out);
    out.sort_by_key(cost);
    match out.len() {
        0 => Node::Const(false),
        1 => out.pop().unwrap_or(Node::Const(false)),
        _ => Node::Or(out.into()),
    }
}

/// A rough evaluation cost, to test cheap and selective leaves first.
pub(super) fn cost(n: &Node) -> u32 {
    match n {
        Node::Const(_) => 0,
        // Computed values: after every plain test.
        Node::Check(_) => 60,
        // A negated test rarely rejects: try it after the selective ones.
        Node::Not(inner) => cost(inner) * 3,
        Node::And(v) | Node::Or(v) => v.iter().map(cost).sum(),
        Node::Leaf(l) => leaf_cost(l),
    }
}

/// [`cost`] of one leaf.
pub(super) fn leaf_cost(l: &Leaf) -> u32 {
    let field = match l.field {
        Field::Name => 2,
        // Rarely selective: nearly every event has the one value rules ask for.
        Field::HostOsType => 6,
        Field::Args | Field::ParentArgs => 8,
        // Parents and effective parents cost a process-table probe.
        Field::ParentExecutable
        | Field::ParentPid
        | Field::ParentSignatureExists
        | Field::ParentSignatureTrusted
        | Field::ParentArgsCount
        | Field::ParentName
        | Field::ParentCommandLine
        | Field::ParentSigningId
        | Field::ParentTeamId
        | Field::EffectiveExecutable
        | Field::EffectiveName => 5,
        Field::CommandLine => 12,
        Field::UserName => 30,
        f if matches!(f.kind(), FieldKind::Long | FieldKind::Bool) => 1,
        _ => 3,
    };
    field * l.test.cost()
}

/// Equality with this many strings or more is a [`CTest::OneOf`].
const ONE_OF_MIN: usize = 6;

/// `*literal*` patterns `or`-ed on one field from this many on are one [`CTest::Contains`].
const CONTAINS_MIN: usize = 3;

/// The `or` of string tests on one field, cheapest first; many equalities become one
/// [`CTest::OneOf`], many `*literal*` patterns one [`CTest::Contains`].
fn any_of(tests: Vec<CTest>) -> CTest {
    let mut exact: Vec<Box<str>> = Vec::new();
    // ASCII case-insensitive equalities (`process.name : ("curl", "wget", ...)`).
    let mut exact_ci: Vec<(Box<str>, CTest)> = Vec::new();
    // `*literal*` patterns, case-sensitive ones and case-insensitive ones.
    let mut contains: [Vec<(Vec<u8>, CTest)>; 2] = [Vec::new(), Vec::new()];
    let mut rest = Vec::new();
    for t in tests {
        match t {
            CTest::Str(Cmp::Eq, v) => exact.push(v),
            CTest::OneOf(vs) if vs.is_folded() => {
                for v in vs.into_vec() {
                    let glob = Glob::new(&[Tok::Lit(v.to_string())], true);
                    exact_ci.push((v, CTest::Glob(glob)));
                }
            }
            CTest::OneOf(vs) => exact.extend(vs.into_vec()),
            CTest::Glob(Glob::Exact {
                ref text,
                ci: true,
                ascii: true,
            }) if StrSet::can_fold(text) => exact_ci.push((text.clone(), t)),
            CTest::Glob(Glob::Bytes(ref g)) if g.contained().is_some() => {
                if let Some((lit, ci)) = g.contained() {
                    contains[usize::from(ci)].push((lit.to_vec(), t));
                }
            }
            CTest::Contains(p) => {
                let ci = p.ci();
                for lit in p.iter() {
                    // Valid UTF-8: each literal came from a pattern's text.
                    let text = String::from_utf8_lossy(lit).into_owned();
                    let glob = Glob::new(&[Tok::Star, Tok::Lit(text), Tok::Star], ci);
                    contains[usize::from(ci)].push((lit.to_vec(), CTest::Glob(glob)));
                }
            }
            t => rest.push(t),
        }
    }
    for (ci, globs) in contains.into_iter().enumerate() {
        if globs.len() >= CONTAINS_MIN {
            let mut p = Pieces::new(ci == 1);
            for (lit, _) in &globs {
                p.add(lit);
            }
            rest.push(CTest::Contains(p));
        } else {
            rest.extend(globs.into_iter().map(|(_, t)| t));
        }
    }
    if exact_ci.len() >= ONE_OF_MIN {
        rest.push(CTest::OneOf(StrSet::folded(
            exact_ci.into_iter().map(|(v, _)| v).collect(),
        )));
    } else {
        rest.extend(exact_ci.into_iter().map(|(_, t)| t));
    }
    if exact.len() >= ONE_OF_MIN {
        rest.push(CTest::OneOf(StrSet::new(exact)));
    } else {
        rest.extend(exact.into_iter().map(|v| CTest::Str(Cmp::Eq, v)));
    }
    rest.sort_by_key(CTest::cost);
    if rest.len() == 1 {
        rest.pop().unwrap_or(CTest::Exists)
    } else {
        CTest::AnyOf(rest.into())
    }
}

/// Fuses `or`-ed string leaves on the same field into one [`CTest::AnyOf`] leaf.
pub(super) fn fuse_leaves(nodes: Vec<Node>) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::with_capacity(nodes.len());
    for n in nodes {
        if let Node::Leaf(leaf) = n {
            if leaf.test.is_string_test()
                && let Some(Node::Leaf(prev)) = out.iter_mut().find(|o| {
                    matches!(o, Node::Leaf(p) if p.field == leaf.field && p.keyword == leaf.keyword && p.test.is_string_test())
                })
            {
                let earlier = std::mem::replace(&mut prev.test, CTest::Exists);
                let mut tests = match earlier {
                    CTest::AnyOf(t) => t.into_vec(),
                    t => vec![t],
                };
                tests.push(leaf.test);
                prev.test = any_of(tests);
                prev.on_joined = prev.test.joined_equivalent();
                continue;
            }
            out.push(Node::Leaf(leaf));
        } else {
            out.push(n);
        }
    }
    out
}

impl CTest {
    /// True when the test answers the same on argv joined by NUL as on argv joined by spaces:
    /// no literal holds a space or NUL (a `?` or `*` matches either alike), and no ordering or
    /// regular expression is involved.
    pub(super) fn joined_equivalent(&self) -> bool {
        match self {
            CTest::Exists => true,
            CTest::Str(Cmp::Eq, v) => !v.bytes().any(|b| b == b' ' || b == 0),
            CTest::Glob(g) => !g.has_space_or_nul(),
            CTest::AnyOf(tests) => tests.iter().all(CTest::joined_equivalent),
            CTest::OneOf(vs) => vs.iter().all(|v| !v.bytes().any(|b| b == b' ' || b == 0)),
            CTest::Contains(p) => p.iter().all(|v| !v.iter().any(|b| *b == b' ' || *b == 0)),
            _ => false,
        }
    }

    pub(super) fn is_string_test(&self) -> bool {
        matches!(
            self,
            CTest::Str(..)
                | CTest::Glob(_)
                | CTest::Regex(_)
                | CTest::AnyOf(_)
                | CTest::OneOf(_)
                | CTest::Contains(_)
        )
    }

    pub(super) fn cost(&self) -> u32 {
        match self {
            CTest::Exists | CTest::Num(..) | CTest::Bool(_) | CTest::Str(..) => 1,
            CTest::Glob(Glob::Chars { .. }) => 4,
            CTest::Glob(_) => 2,
            CTest::Regex(_) => 25,
            CTest::AnyOf(tests) => tests.iter().map(CTest::cost).sum(),
            CTest::OneOf(_) => 2,
            CTest::Contains(_) => 4,
        }
    }
}

impl Node {
    /// Whether no event of the shape matches (false, or a null condition).
    pub(super) fn never(&self) -> bool {
        matches!(self, Node::Const(false)) || self.is_null()
    }

    /// A condition that is null for every event: false, and so is its negation.
    pub(super) fn is_null(&self) -> bool {
        matches!(self, Node::Check(c) if c.constant() == Some(None))
    }

    /// Whether evaluating this node can join `process.command_line` into the scratch buffer.
    pub(super) fn needs_scratch(&self) -> bool {
        match self {
            Node::And(v) | Node::Or(v) => v.iter().any(Node::needs_scratch),
            Node::Not(n) => n.needs_scratch(),
            Node::Const(_) => false,
            Node::Leaf(l) => l.field == Field::CommandLine && !l.on_joined,
            Node::Check(c) => c.reads(Field::CommandLine),
        }
    }
}
