//! Evaluation of compiled trees on one event. Nothing here allocates: `process.command_line`
//! joined with spaces is built at most once per event, in a per-thread buffer, and only for
//! tests that cannot run on argv as the event holds it (NUL-joined).

use std::cell::RefCell;

use crate::ecs::{EcsEvent, Field, Value, within_ignore_above};
use crate::query::ast::Cmp;

use super::tree::{CTest, Leaf, NO_MEMO, Node};

/// Per-evaluation scratch space: `process.command_line`, joined on first use.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    command_line: String,
    /// `command_line` holds the current event's.
    pub(super) ready: bool,
    /// The current event's number ([`Scratch::begin_event`]); 0: no event begun, nothing
    /// remembered.
    pub(super) generation: u64,
    /// Per memo slot ([`super::share`]): the generation it was written in, and the outcome.
    pub(super) memo: Vec<(u64, bool)>,
}

thread_local! {
    pub(super) static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scratch {
    /// argv joined by single spaces, joined once per event (`cache`: the buffer may be kept
    /// for the rest of this event's evaluation).
    pub(super) fn command_line(&mut self, a: &nightjar_proto::Args<'_>, cache: bool) -> &str {
        if !self.ready {
            self.command_line.clear();
            for (i, arg) in args_iter(a).enumerate() {
                if i > 0 {
                    self.command_line.push(' ');
                }
                self.command_line.push_str(arg);
            }
            self.ready = cache;
        }
        &self.command_line
    }
}

impl Leaf {
    pub(super) fn test_value(
        &self,
        value: &Value<'_>,
        sc: &mut Scratch,
        ev: Option<&EcsEvent<'_>>,
    ) -> bool {
        match value {
            Value::Missing => false,
            Value::Str(s) => self.test_keyword(s),
            Value::Shared(s) => self.test_keyword(s),
            Value::Entity(id) => self.test_keyword(id.as_str()),
            Value::Args(a) => args_iter(a).any(|s| self.test_keyword(s)),
            Value::Joined(a) if self.on_joined => self.test.test_str(a.joined()),
            Value::Joined(a) => {
                let line = sc.command_line(a, ev.is_some());
                self.test_keyword(line)
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

    pub(super) fn test_keyword(&self, s: &str) -> bool {
        if self.keyword && !within_ignore_above(s) {
            return false;
        }
        self.test.test_str(s)
    }
}

impl CTest {
    pub(super) fn test_str(&self, s: &str) -> bool {
        match self {
            CTest::Exists => true,
            CTest::Str(Cmp::Eq, v) => **v == *s,
            CTest::Str(cmp, v) => cmp.holds(s.as_bytes().cmp(v.as_bytes())),
            CTest::Glob(g) => g.matches(s),
            CTest::Regex(r) => r.is_match(s),
            CTest::AnyOf(tests) => tests.iter().any(|t| t.test_str(s)),
            CTest::OneOf(vs) => vs.contains(s),
            CTest::Contains(p) => p.any_in(s.as_bytes()),
            CTest::Num(..) | CTest::Bool(_) => false,
        }
    }
}

impl Node {
    pub(super) fn eval(&self, ev: &EcsEvent<'_>, sc: &mut Scratch) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(ev, sc)),
            Node::Or(v) => v.iter().any(|n| n.eval(ev, sc)),
            Node::Not(n) => !n.eval(ev, sc),
            Node::Const(b) => *b,
            Node::Leaf(l) if l.memo == NO_MEMO => l.test_value(&ev.value(l.field), sc, Some(ev)),
            Node::Leaf(l) => {
                sc.memoized(l.memo, |sc| l.test_value(&ev.value(l.field), sc, Some(ev)))
            }
            Node::Check(c) => c.holds(ev, sc),
        }
    }
}

/// A test's outcome on an event whose argv lost arguments or bytes: `Unknown` when the
/// answer could depend on what was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tri {
    False,
    Unknown,
    True,
}

impl Tri {
    fn not(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::Unknown => Tri::Unknown,
            Tri::True => Tri::False,
        }
    }
}

impl Node {
    /// Kleene three-valued evaluation for an event whose own argv is cut
    /// (`process.Ext.args_truncated`): a test of `process.args` or `process.command_line`
    /// that does not hold on the arguments kept could hold on the dropped ones, so it is
    /// `Unknown`; every other test is exact.
    pub(super) fn eval3(&self, ev: &EcsEvent<'_>, sc: &mut Scratch) -> Tri {
        self.eval3_in(
            ev,
            sc,
            &|f| matches!(f, Field::Args | Field::CommandLine),
            false,
        )
    }

    /// Kleene three-valued evaluation where every test of a field `unknown` names is
    /// `Unknown`, whatever the event holds.
    pub(super) fn eval3_with(
        &self,
        ev: &EcsEvent<'_>,
        sc: &mut Scratch,
        unknown: &dyn Fn(Field) -> bool,
    ) -> Tri {
        self.eval3_in(ev, sc, unknown, true)
    }

    /// `unknown` fields: `Unknown` when their test fails, or always when `always`.
    fn eval3_in(
        &self,
        ev: &EcsEvent<'_>,
        sc: &mut Scratch,
        unknown: &dyn Fn(Field) -> bool,
        always: bool,
    ) -> Tri {
        match self {
            Node::And(v) => {
                let mut out = Tri::True;
                for n in v.iter() {
                    match n.eval3_in(ev, sc, unknown, always) {
                        Tri::False => return Tri::False,
                        Tri::Unknown => out = Tri::Unknown,
                        Tri::True => {}
                    }
                }
                out
            }
            Node::Or(v) => {
                let mut out = Tri::False;
                for n in v.iter() {
                    match n.eval3_in(ev, sc, unknown, always) {
                        Tri::True => return Tri::True,
                        Tri::Unknown => out = Tri::Unknown,
                        Tri::False => {}
                    }
                }
                out
            }
            Node::Not(n) => n.eval3_in(ev, sc, unknown, always).not(),
            Node::Const(b) => {
                if *b {
                    Tri::True
                } else {
                    Tri::False
                }
            }
            Node::Check(c) => {
                if c.holds(ev, sc) {
                    Tri::True
                } else if c.reads(Field::Args) || c.reads(Field::CommandLine) {
                    Tri::Unknown
                } else {
                    Tri::False
                }
            }
            Node::Leaf(l) => {
                if always && unknown(l.field) {
                    Tri::Unknown
                } else if l.test_value(&ev.value(l.field), sc, Some(ev)) {
                    Tri::True
                } else if unknown(l.field) {
                    Tri::Unknown
                } else {
                    Tri::False
                }
            }
        }
    }
}

/// The arguments of argv, split with `memchr` (faster than `str::split` on a char).
pub(super) fn args_iter<'s>(a: &'s nightjar_proto::Args<'_>) -> impl Iterator<Item = &'s str> + 's {
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
pub(super) fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &str {
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
