//! The compiled matcher: typed queries turned into trees that read event fields directly.
//!
//! Compile time does everything that does not depend on the event: field ids are resolved,
//! fields with a constant value in the exec view (`event.category`, `event.type`,
//! `event.action`, `event.kind`) are folded away, fields the view never produces become
//! `false`, children of `and`/`or` are ordered cheapest first, wildcard patterns become
//! [`Glob`]s and regular expressions are compiled. Rules are indexed by the first of these they
//! require: a `process.name`, `process.parent.name` or `process.args` element from a fixed set
//! of values or literal prefixes (ASCII case folded), or a literal `process.command_line` must
//! hold, whichever is expected to cost least (see [`IndexChoice::cost`]); an event is
//! tested only against the rules its values select. Evaluation allocates nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::ecs::{EcsEvent, Field, FieldKind, Value};

use super::ast::{Cmp, Query, Test, TypedPred, within_ignore_above};
use super::pattern::{Glob, find_ascii_ci, lucene_to_regex};

#[derive(Debug)]
enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Leaf(Leaf),
    Const(bool),
}

#[derive(Debug)]
struct Leaf {
    field: Field,
    /// Keyword mapping: values over `ignore_above` are invisible.
    keyword: bool,
    test: CTest,
    /// `process.command_line` can be tested on the NUL-joined argv as is (see
    /// [`CTest::joined_equivalent`]), without joining it with spaces first.
    on_joined: bool,
}

#[derive(Debug)]
enum CTest {
    Exists,
    Str(Cmp, Box<str>),
    Glob(Glob),
    Regex(regex::Regex),
    Num(Cmp, f64),
    Bool(bool),
    /// Any of several string tests on the same field: an `or` of them, fused so the field is
    /// read (and argv walked) once.
    AnyOf(Box<[CTest]>),
}

/// Per-evaluation scratch space: `process.command_line`, joined on first use.
#[derive(Debug, Default)]
struct Scratch {
    command_line: String,
    ready: bool,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Many compiled rules with their index.
#[derive(Debug, Default)]
pub struct Matcher {
    rules: Vec<Node>,
    /// Rules tested on every event.
    always: Vec<u32>,
    by_name: FieldIndex,
    by_parent_name: FieldIndex,
    /// Rules that need one of some `process.args` elements.
    by_arg: FieldIndex,
    /// Rules whose `process.command_line` must hold one of some literals: one search of
    /// argv per literal selects them.
    by_piece: Vec<(Box<[u8]>, Vec<u32>)>,
    /// Some test reads `process.command_line` joined with spaces (the per-thread buffer).
    needs_scratch: bool,
}

/// A 4096-bit filter over the length, first and last byte (ASCII case folded) of a set of
/// keys. Nearly every value an event carries is not a key; the filter turns most of them away
/// with one bit test, before they are folded and hashed. With a few dozen keys, about 1% of
/// other values pass it.
#[derive(Debug, Clone)]
struct KeyFilter(Box<[u64; 64]>);

impl Default for KeyFilter {
    fn default() -> Self {
        KeyFilter(Box::new([0; 64]))
    }
}

impl KeyFilter {
    #[inline]
    fn bit(value: &[u8]) -> usize {
        let first = value.first().map_or(0, u8::to_ascii_lowercase);
        let last = value.last().map_or(0, u8::to_ascii_lowercase);
        let h = (value.len().min(0xffff) as u32) << 16 | u32::from(first) << 8 | u32::from(last);
        // Fibonacci hashing: the top 12 bits of the product.
        (h.wrapping_mul(0x9e37_79b1) >> 20) as usize
    }
    fn insert(&mut self, key: &[u8]) {
        let b = Self::bit(key);
        self.0[b / 64] |= 1 << (b % 64);
    }
    #[inline]
    fn may_hold(&self, value: &[u8]) -> bool {
        let b = Self::bit(value);
        self.0[b / 64] & (1 << (b % 64)) != 0
    }
}

/// A set of bytes: the first bytes (ASCII case folded) of the literal prefixes of an index.
#[derive(Debug, Default, Clone, Copy)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        let b = b.to_ascii_lowercase();
        self.0[usize::from(b / 64)] |= 1 << (b % 64);
    }
    #[inline]
    fn holds(&self, b: u8) -> bool {
        let b = b.to_ascii_lowercase();
        self.0[usize::from(b / 64)] & (1 << (b % 64)) != 0
    }
}

type FastMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<WordHash>>;

/// A word-at-a-time multiplicative hash (as in rustc's FxHash): keys are short and trusted
/// (built from the rules), so a simple hash beats SipHash by a wide margin.
#[derive(Default)]
struct WordHash(u64);

impl WordHash {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// Compiles one typed query (errors only for an invalid regular expression).
fn compile(q: &Query<TypedPred>) -> Result<Node, String> {
    Ok(match q {
        Query::And(v) => {
            let kids = v.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
            simplify_and(kids)
        }
        Query::Or(v) => {
            let kids = v.iter().map(compile).collect::<Result<Vec<_>, _>>()?;
            simplify_or(kids)
        }
        Query::Not(inner) => match compile(inner)? {
            Node::Const(b) => Node::Const(!b),
            n => Node::Not(Box::new(n)),
        },
        Query::Const(b) => Node::Const(*b),
        Query::Leaf(p) => compile_leaf(p)?,
    })
}

fn compile_leaf(p: &TypedPred) -> Result<Node, String> {
    let Some(field) = p.field else {
        // Never produced: absent, so every test is false.
        return Ok(Node::Const(false));
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
        Test::Regex { pattern, ci } => {
            let re = lucene_to_regex(pattern, *ci)?;
            CTest::Regex(regex::Regex::new(&re).map_err(|e| e.to_string())?)
        }
        Test::Num(cmp, n) => CTest::Num(*cmp, *n),
        Test::Bool(b) => CTest::Bool(*b),
    };
    let leaf = Leaf {
        field,
        keyword: p.kind == FieldKind::Keyword,
        on_joined: test.joined_equivalent(),
        test,
    };
    // Fields with one value for every exec event are decided now.
    if matches!(
        field,
        Field::EventCategory | Field::EventType | Field::EventAction | Field::EventKind
    ) {
        let value = match field {
            Field::EventCategory => "process",
            Field::EventType => "start",
            Field::EventAction => "exec",
            _ => "event",
        };
        let mut sc = Scratch::default();
        return Ok(Node::Const(leaf.test_value(
            &Value::Str(value),
            &mut sc,
            None,
        )));
    }
    Ok(Node::Leaf(leaf))
}

fn simplify_and(kids: Vec<Node>) -> Node {
    let mut out = Vec::new();
    for k in kids {
        match k {
            Node::Const(true) => {}
            Node::Const(false) => return Node::Const(false),
            Node::And(inner) => out.extend(inner.into_vec()),
            k => out.push(k),
        }
    }
    out.sort_by_key(cost);
    match out.len() {
        0 => Node::Const(true),
        1 => out.pop().unwrap_or(Node::Const(true)),
        _ => Node::And(out.into()),
    }
}

fn simplify_or(kids: Vec<Node>) -> Node {
    let mut out = Vec::new();
    for k in kids {
        match k {
            Node::Const(false) => {}
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
fn cost(n: &Node) -> u32 {
    match n {
        Node::Const(_) => 0,
        // A negated test rarely rejects: try it after the selective ones.
        Node::Not(inner) => cost(inner) * 3,
        Node::And(v) | Node::Or(v) => v.iter().map(cost).sum(),
        Node::Leaf(l) => {
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
    }
}

impl Leaf {
    fn test_value(&self, value: &Value<'_>, sc: &mut Scratch, ev: Option<&EcsEvent<'_>>) -> bool {
        match value {
            Value::Missing => false,
            Value::Str(s) => self.test_keyword(s),
            Value::Shared(s) => self.test_keyword(s),
            Value::Args(a) => args_iter(a).any(|s| self.test_keyword(s)),
            Value::Joined(a) if self.on_joined => self.test.test_str(a.joined()),
            Value::Joined(a) => {
                if !sc.ready {
                    sc.command_line.clear();
                    for (i, arg) in args_iter(a).enumerate() {
                        if i > 0 {
                            sc.command_line.push(' ');
                        }
                        sc.command_line.push_str(arg);
                    }
                    sc.ready = ev.is_some();
                }
                self.test_keyword(&sc.command_line)
            }
            Value::Id(n) => {
                let mut buf = [0u8; 10];
                self.test_keyword(decimal(*n, &mut buf))
            }
            Value::Long(n) => match self.test {
                CTest::Exists => true,
                CTest::Num(cmp, v) => (*n as f64).partial_cmp(&v).is_some_and(|o| cmp.holds(o)),
                _ => false,
            },
            Value::Bool(b) => match self.test {
                CTest::Exists => true,
                CTest::Bool(v) => *b == v,
                _ => false,
            },
        }
    }

    fn test_keyword(&self, s: &str) -> bool {
        if self.keyword && !within_ignore_above(s) {
            return false;
        }
        self.test.test_str(s)
    }
}

impl CTest {
    fn test_str(&self, s: &str) -> bool {
        match self {
            CTest::Exists => true,
            CTest::Str(Cmp::Eq, v) => **v == *s,
            CTest::Str(cmp, v) => cmp.holds(s.as_bytes().cmp(v.as_bytes())),
            CTest::Glob(g) => g.matches(s),
            CTest::Regex(r) => r.is_match(s),
            CTest::AnyOf(tests) => tests.iter().any(|t| t.test_str(s)),
            CTest::Num(..) | CTest::Bool(_) => false,
        }
    }

    /// True when the test answers the same on argv joined by NUL as on argv joined by spaces:
    /// no literal holds a space or NUL (a `?` or `*` matches either alike), and no ordering or
    /// regular expression is involved.
    fn joined_equivalent(&self) -> bool {
        match self {
            CTest::Exists => true,
            CTest::Str(Cmp::Eq, v) => !v.bytes().any(|b| b == b' ' || b == 0),
            CTest::Glob(g) => !g.has_space_or_nul(),
            CTest::AnyOf(tests) => tests.iter().all(CTest::joined_equivalent),
            _ => false,
        }
    }

    fn is_string_test(&self) -> bool {
        matches!(
            self,
            CTest::Str(..) | CTest::Glob(_) | CTest::Regex(_) | CTest::AnyOf(_)
        )
    }

    fn cost(&self) -> u32 {
        match self {
            CTest::Exists | CTest::Num(..) | CTest::Bool(_) | CTest::Str(..) => 1,
            CTest::Glob(Glob::Chars { .. }) => 4,
            CTest::Glob(_) => 2,
            CTest::Regex(_) => 25,
            CTest::AnyOf(tests) => tests.iter().map(CTest::cost).sum(),
        }
    }

    /// Index keys every value passing this test has one of (see `Node::required_values`).
    fn keys(&self, fold: bool) -> Option<Vec<Key>> {
        let key = |v: &str| -> Option<Key> {
            if !fold {
                return Some(Key::Exact(v.to_owned()));
            }
            (v.len() <= FOLD_MAX).then(|| Key::Exact(v.to_ascii_lowercase()))
        };
        match self {
            CTest::Str(Cmp::Eq, v) => Some(vec![key(v)?]),
            CTest::Glob(Glob::Bytes(g)) if fold => {
                Some(vec![Key::Prefix(g.literal_prefix()?.to_ascii_lowercase())])
            }
            CTest::Glob(Glob::Exact {
                text,
                ci: true,
                ascii: true,
            }) if fold => Some(vec![key(text)?]),
            CTest::AnyOf(tests) => {
                let mut all = Vec::new();
                for t in tests.iter() {
                    all.extend(t.keys(fold)?);
                }
                Some(all)
            }
            _ => None,
        }
    }

    /// Literals one of which every string passing this test holds (see
    /// `Node::required_pieces`). A literal without space or NUL lies within one argument, so
    /// it is found alike in argv joined by spaces or by NUL.
    fn pieces(&self) -> Option<Vec<Vec<u8>>> {
        let piece = |b: &[u8]| {
            (!b.is_empty() && !b.iter().any(|c| *c == b' ' || *c == 0))
                .then(|| b.to_ascii_lowercase())
        };
        match self {
            CTest::Str(Cmp::Eq, v) => Some(vec![piece(v.as_bytes())?]),
            CTest::Glob(Glob::Bytes(g)) => Some(vec![piece(g.longest_literal())?]),
            CTest::Glob(Glob::Exact { text, ascii, .. }) if *ascii => {
                Some(vec![piece(text.as_bytes())?])
            }
            CTest::AnyOf(tests) => {
                let mut all = Vec::new();
                for t in tests.iter() {
                    all.extend(t.pieces()?);
                }
                Some(all)
            }
            _ => None,
        }
    }
}

/// An index key: an exact (ASCII-folded) value or a prefix of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Exact(String),
    Prefix(Vec<u8>),
}

/// Rules indexed by the values of one field.
#[derive(Debug, Default)]
struct FieldIndex {
    exact: FastMap<Vec<u32>>,
    /// The keys of `exact` (see [`KeyFilter`]).
    filter: KeyFilter,
    /// Literal prefixes of patterns (ASCII-lowercased), tested one by one: there are few.
    prefixes: Vec<(Box<[u8]>, Vec<u32>)>,
    /// The first bytes of `prefixes`.
    prefix_starts: ByteSet,
}

impl FieldIndex {
    fn add(&mut self, keys: Vec<Key>, rule: u32) {
        for k in keys {
            let list = match k {
                Key::Exact(s) => {
                    self.filter.insert(s.as_bytes());
                    self.exact
                        .entry(s.into_bytes().into_boxed_slice())
                        .or_default()
                }
                Key::Prefix(p) => {
                    if let Some(&b) = p.first() {
                        self.prefix_starts.insert(b);
                    }
                    let i = match self.prefixes.iter().position(|(q, _)| **q == p[..]) {
                        Some(i) => i,
                        None => {
                            self.prefixes.push((p.into(), Vec::new()));
                            self.prefixes.len() - 1
                        }
                    };
                    &mut self.prefixes[i].1
                }
            };
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Calls `hit` with each list of rules `value` selects; returns how many lists.
    /// Inlined: most values stop at the two filters, before any call.
    #[inline]
    fn lookup(&self, value: &str, hit: impl FnMut(&[u32])) -> usize {
        let exact = self.filter.may_hold(value.as_bytes());
        let prefix = value
            .as_bytes()
            .first()
            .is_some_and(|&b| self.prefix_starts.holds(b));
        if exact || prefix {
            self.lookup_past_filters(value, exact, prefix, hit)
        } else {
            0
        }
    }

    /// [`FieldIndex::lookup`] for a value one of the filters let through.
    #[inline(never)]
    fn lookup_past_filters(
        &self,
        value: &str,
        exact: bool,
        prefix: bool,
        mut hit: impl FnMut(&[u32]),
    ) -> usize {
        let mut lists = 0;
        if exact {
            // Most values are short: fold them in a small buffer.
            let mut small = [0u8; 32];
            let mut big;
            let buf: &mut [u8] = if value.len() <= small.len() {
                &mut small
            } else {
                big = [0u8; FOLD_MAX];
                &mut big
            };
            if let Some(key) = fold(value, buf)
                && let Some(ids) = self.exact.get(key)
            {
                lists += 1;
                hit(ids);
            }
        }
        if prefix {
            for (p, ids) in &self.prefixes {
                if value
                    .as_bytes()
                    .get(..p.len())
                    .is_some_and(|v| v.eq_ignore_ascii_case(p))
                {
                    lists += 1;
                    hit(ids);
                }
            }
        }
        lists
    }
}

/// Fuses `or`-ed string leaves on the same field into one [`CTest::AnyOf`] leaf.
fn fuse_leaves(nodes: Vec<Node>) -> Vec<Node> {
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
                tests.sort_by_key(CTest::cost);
                prev.test = CTest::AnyOf(tests.into());
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

/// The arguments of argv, split with `memchr` (faster than `str::split` on a char).
fn args_iter<'s>(a: &'s nightjar_proto::Args<'_>) -> impl Iterator<Item = &'s str> + 's {
    let joined = a.joined();
    let mut rest = Some(joined);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(0, r.as_bytes()) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
    .take(a.len())
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

impl Node {
    /// Whether evaluating this node can join `process.command_line` into the scratch buffer.
    fn needs_scratch(&self) -> bool {
        match self {
            Node::And(v) | Node::Or(v) => v.iter().any(Node::needs_scratch),
            Node::Not(n) => n.needs_scratch(),
            Node::Const(_) => false,
            Node::Leaf(l) => l.field == Field::CommandLine && !l.on_joined,
        }
    }

    fn eval(&self, ev: &EcsEvent<'_>, sc: &mut Scratch) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(ev, sc)),
            Node::Or(v) => v.iter().any(|n| n.eval(ev, sc)),
            Node::Not(n) => !n.eval(ev, sc),
            Node::Const(b) => *b,
            Node::Leaf(l) => l.test_value(&ev.value(l.field), sc, Some(ev)),
        }
    }

    /// Literals (ASCII-lowercased, without space or NUL) of which `process.command_line` holds
    /// at least one, ignoring ASCII case, in every match.
    fn required_pieces(&self) -> Option<Vec<Vec<u8>>> {
        match self {
            Node::Leaf(l) if l.field == Field::CommandLine => l.test.pieces(),
            Node::And(kids) => kids.iter().find_map(Node::required_pieces),
            Node::Or(kids) => {
                let mut all = Vec::new();
                for k in kids.iter() {
                    all.extend(k.required_pieces()?);
                }
                all.sort_unstable();
                all.dedup();
                Some(all)
            }
            _ => None,
        }
    }

    /// Values of `field` of which every match has at least one: from an `and` child, or the
    /// union over the branches of an `or`. With `fold`, keys are ASCII-lowercased and
    /// case-insensitive exact matches (ASCII only) and patterns starting with a literal count too.
    fn required_values(&self, field: Field, fold: bool) -> Option<Vec<Key>> {
        match self {
            Node::Leaf(l) if l.field == field => l.test.keys(fold),
            Node::And(kids) => kids.iter().find_map(|k| k.required_values(field, fold)),
            Node::Or(kids) => {
                let mut all = Vec::new();
                for k in kids.iter() {
                    all.extend(k.required_values(field, fold)?);
                }
                all.sort_unstable();
                all.dedup();
                Some(all)
            }
            _ => None,
        }
    }
}

/// Where a rule is indexed: the values one of which every match of it holds.
#[derive(Debug)]
enum IndexChoice {
    Name(Vec<Key>),
    ParentName(Vec<Key>),
    Arg(Vec<Key>),
    Pieces(Vec<Vec<u8>>),
    /// Nothing is required: tested on every event.
    Always,
}

impl IndexChoice {
    /// The cheapest candidate (see [`IndexChoice::cost`]); on a tie, the first of name,
    /// parent name, arguments, command line.
    fn best(node: &Node) -> IndexChoice {
        let candidates = [
            node.required_values(Field::Name, true)
                .map(IndexChoice::Name),
            node.required_values(Field::ParentName, true)
                .map(IndexChoice::ParentName),
            node.required_values(Field::Args, true)
                .map(IndexChoice::Arg),
            node.required_pieces().map(IndexChoice::Pieces),
        ];
        candidates
            .into_iter()
            .flatten()
            .min_by_key(IndexChoice::cost)
            .unwrap_or(IndexChoice::Always)
    }

    /// What indexing by these keys is expected to cost, in arbitrary units: the events they
    /// select, plus the lookup every event pays. There are no statistics at compile time, so
    /// length stands in for rarity: "sh", "-e" or "-c" occur in many execs, `emond` or
    /// `add-trusted-cert` in few. A prefix selects more than the same exact value. The name
    /// is one lookup, the parent's name a process-table probe besides, the arguments one
    /// lookup each, and each command-line literal a search of the whole command line.
    fn cost(&self) -> u32 {
        fn by_len(len: usize) -> u32 {
            match len {
                0..=2 => 8,
                3..=4 => 2,
                _ => 1,
            }
        }
        let keys = |keys: &[Key]| -> u32 {
            keys.iter()
                .map(|k| match k {
                    Key::Exact(s) => by_len(s.len()),
                    Key::Prefix(p) => 2 * by_len(p.len()),
                })
                .sum()
        };
        match self {
            IndexChoice::Name(k) => keys(k),
            IndexChoice::ParentName(k) => 1 + keys(k),
            IndexChoice::Arg(k) => 2 + keys(k),
            IndexChoice::Pieces(p) => p.iter().map(|p| 3 * by_len(p.len())).sum(),
            IndexChoice::Always => u32::MAX,
        }
    }
}

/// Longest name looked up (ASCII-lowercased on the stack) in the name indexes.
const FOLD_MAX: usize = 256;

/// `s` ASCII-lowercased into `buf`; `None` when longer than the buffer.
fn fold<'b>(s: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..s.len())?;
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    Some(out)
}

impl Matcher {
    /// Compiles every query; the error names the index of the query that failed.
    pub fn new(queries: &[&Query<TypedPred>]) -> Result<Matcher, (usize, String)> {
        let mut m = Matcher::default();
        for (i, q) in queries.iter().enumerate() {
            m.rules.push(compile(q).map_err(|e| (i, e))?);
        }
        for (i, node) in m.rules.iter().enumerate() {
            let i = i as u32;
            if matches!(node, Node::Const(false)) {
                continue;
            }
            match IndexChoice::best(node) {
                IndexChoice::Name(keys) => m.by_name.add(keys, i),
                IndexChoice::ParentName(keys) => m.by_parent_name.add(keys, i),
                IndexChoice::Arg(keys) => m.by_arg.add(keys, i),
                IndexChoice::Pieces(pieces) => {
                    for p in pieces {
                        match m.by_piece.iter_mut().find(|(q, _)| **q == p[..]) {
                            Some((_, ids)) => ids.push(i),
                            None => m.by_piece.push((p.into(), vec![i])),
                        }
                    }
                }
                IndexChoice::Always => m.always.push(i),
            }
        }
        m.needs_scratch = m.rules.iter().any(Node::needs_scratch);
        Ok(m)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Appends the indices of matching rules to `out` (cleared first), ascending.
    pub fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        out.clear();
        if !self.needs_scratch {
            // Nothing is ever written to it: an empty one allocates nothing.
            return self.run(ev, &mut Scratch::default(), out);
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut sc) => {
                sc.ready = false;
                self.run(ev, &mut sc, out);
            }
            Err(_) => self.run(ev, &mut Scratch::default(), out),
        });
    }

    fn run(&self, ev: &EcsEvent<'_>, sc: &mut Scratch, out: &mut Vec<usize>) {
        let test = |i: u32, sc: &mut Scratch, out: &mut Vec<usize>| {
            if self.rules[i as usize].eval(ev, sc) {
                out.push(i as usize);
            }
        };
        for &i in &self.always {
            test(i, sc, out);
        }
        let mut lists = usize::from(!out.is_empty());
        let mut hit = |ids: &[u32]| ids.iter().for_each(|&i| test(i, sc, out));
        if !self.by_name.is_empty()
            && let Value::Str(name) = ev.value(Field::Name)
        {
            lists += self.by_name.lookup(name, &mut hit);
        }
        if !self.by_parent_name.is_empty()
            && let Value::Str(name) = ev.value(Field::ParentName)
        {
            lists += self.by_parent_name.lookup(name, &mut hit);
        }
        if !self.by_arg.is_empty()
            && let Value::Args(args) = ev.value(Field::Args)
        {
            for arg in args_iter(args) {
                // Several arguments can lead to the same rule.
                lists += 2 * self.by_arg.lookup(arg, &mut hit);
            }
        }
        if !self.by_piece.is_empty()
            && let Value::Joined(args) = ev.value(Field::CommandLine)
        {
            let hay = args.joined().as_bytes();
            for (piece, ids) in &self.by_piece {
                if find_ascii_ci(hay, piece).is_some() {
                    lists += 2;
                    hit(ids);
                }
            }
        }
        if lists > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::ast::Tok;

    fn is(field: Field, value: &str) -> Node {
        Node::Leaf(Leaf {
            field,
            keyword: true,
            test: CTest::Str(Cmp::Eq, value.into()),
            on_joined: false,
        })
    }

    fn any_name(names: &[&str]) -> Node {
        simplify_or(names.iter().map(|n| is(Field::Name, n)).collect())
    }

    fn exact(keys: &[&str]) -> Vec<Key> {
        keys.iter().map(|k| Key::Exact((*k).to_owned())).collect()
    }

    #[test]
    fn a_rare_parent_beats_a_list_of_common_child_names() {
        let emond_child = simplify_and(vec![
            is(Field::ParentName, "emond"),
            any_name(&["sh", "bash", "zsh", "python", "curl"]),
        ]);
        match IndexChoice::best(&emond_child) {
            IndexChoice::ParentName(keys) => assert_eq!(keys, exact(&["emond"])),
            other => panic!("indexed by {other:?}"),
        }
    }

    #[test]
    fn the_name_wins_a_near_tie_because_it_is_one_lookup() {
        let seed = simplify_and(vec![
            is(Field::Name, "kcc"),
            is(Field::Args, "copy_cred_cache"),
        ]);
        match IndexChoice::best(&seed) {
            IndexChoice::Name(keys) => assert_eq!(keys, exact(&["kcc"])),
            other => panic!("indexed by {other:?}"),
        }
    }

    #[test]
    fn a_short_common_argument_loses_to_a_command_line_literal() {
        let electron = simplify_and(vec![
            is(Field::Args, "-e"),
            Node::Leaf(Leaf {
                field: Field::CommandLine,
                keyword: false,
                test: CTest::Glob(Glob::new(
                    &[Tok::Star, Tok::Lit("child_process".into()), Tok::Star],
                    true,
                )),
                on_joined: true,
            }),
        ]);
        match IndexChoice::best(&electron) {
            IndexChoice::Pieces(p) => assert_eq!(p, vec![b"child_process".to_vec()]),
            other => panic!("indexed by {other:?}"),
        }
    }

    #[test]
    fn the_filter_passes_every_key_and_turns_most_other_values_away() {
        let mut f = KeyFilter::default();
        let keys = [
            "kcc",
            "osascript",
            "security",
            "-e",
            "emond",
            "login.keychain-db",
        ];
        for k in keys {
            f.insert(k.as_bytes());
        }
        for k in keys {
            assert!(f.may_hold(k.as_bytes()), "{k}");
            assert!(f.may_hold(k.to_ascii_uppercase().as_bytes()), "{k} folded");
        }
        // Values of 1 to 40 bytes with varied first and last bytes.
        let others = (0..10_000usize).map(|i| {
            let mut v = vec![b'x'; 1 + i % 40];
            v[0] = b'a' + (i * 7 % 26) as u8;
            let last = v.len() - 1;
            v[last] = b'a' + (i / 40 % 26) as u8;
            v
        });
        let passed = others
            .filter(|v| !keys.iter().any(|k| k.as_bytes() == &v[..]) && f.may_hold(v))
            .count();
        assert!(passed < 100, "{passed} of 10,000 other values passed");
    }
}
