//! Tests shared across rules: leaves that test the same field the same way (same operator,
//! same values or pattern, same case sensitivity) in several trees of one matcher get one
//! slot of a per-event memo, so an exclusion list that many selected rules hold
//! (`not process.parent.name in (...)`, `not process.args : (...)`) is evaluated once per
//! event, whichever rule reaches it first.
//!
//! The memo lives in the evaluation's [`Scratch`]: a generation stamp per slot, so starting
//! an event is one increment and nothing is cleared or allocated per event. A leaf's outcome
//! depends only on the event, so a remembered outcome is the one evaluating would give.

use std::collections::HashMap;
use std::fmt::Write;

use super::eval::Scratch;
use super::tree::{CTest, Leaf, Node, leaf_cost};

/// Leaves cheaper than this ([`leaf_cost`]: a name compared with one string costs 2) are
/// evaluated every time: looking the memo up would cost about as much.
const MEMO_MIN_COST: u32 = 8;

/// Gives every leaf of `rules` that another leaf tests alike, and that costs enough, a memo
/// slot (the same for all of them); returns how many slots were given.
pub(super) fn share(rules: &mut [Node]) -> u32 {
    let mut count: HashMap<String, u32> = HashMap::new();
    let mut key = String::new();
    for node in rules.iter() {
        each_leaf(node, &mut |l| {
            if leaf_cost(l) >= MEMO_MIN_COST {
                leaf_key(l, &mut key);
                *count.entry(key.clone()).or_default() += 1;
            }
        });
    }
    let mut slots: HashMap<String, u32> = HashMap::new();
    for node in rules.iter_mut() {
        each_leaf_mut(node, &mut |l| {
            if leaf_cost(l) < MEMO_MIN_COST {
                return;
            }
            leaf_key(l, &mut key);
            if count.get(&key).is_some_and(|&n| n > 1) {
                let next = slots.len() as u32;
                l.memo = *slots.entry(key.clone()).or_insert(next);
            }
        });
    }
    slots.len() as u32
}

fn each_leaf<'n>(node: &'n Node, f: &mut impl FnMut(&'n Leaf)) {
    match node {
        Node::And(v) | Node::Or(v) => v.iter().for_each(|n| each_leaf(n, f)),
        Node::Not(n) => each_leaf(n, f),
        Node::Leaf(l) => f(l),
        Node::Check(_) | Node::Const(_) => {}
    }
}

fn each_leaf_mut(node: &mut Node, f: &mut impl FnMut(&mut Leaf)) {
    match node {
        Node::And(v) | Node::Or(v) => v.iter_mut().for_each(|n| each_leaf_mut(n, f)),
        Node::Not(n) => each_leaf_mut(n, f),
        Node::Leaf(l) => f(l),
        Node::Check(_) | Node::Const(_) => {}
    }
}

/// What decides a leaf's outcome, written out: equal keys, equal outcomes on every event.
fn leaf_key(l: &Leaf, out: &mut String) {
    out.clear();
    let _ = write!(out, "{:?} {} {} ", l.field, l.keyword, l.on_joined);
    test_key(&l.test, out);
}

fn test_key(t: &CTest, out: &mut String) {
    // Strings are written with `{:?}` (quoted and escaped): no value can pass for a
    // separator.
    let _ = match t {
        CTest::Exists => write!(out, "exists"),
        CTest::Str(cmp, v) => write!(out, "str {cmp:?} {v:?}"),
        // The compiled pattern: its literals, their case folding and its shape.
        CTest::Glob(g) => write!(out, "glob {g:?}"),
        CTest::Regex(r) => write!(out, "regex {} {:?}", r.ci, r.pattern),
        CTest::Num(cmp, n) => write!(out, "num {cmp:?} {:?}", n.to_bits()),
        CTest::Bool(b) => write!(out, "bool {b}"),
        CTest::AnyOf(tests) => {
            let _ = write!(out, "any [");
            for t in tests.iter() {
                test_key(t, out);
                out.push(',');
            }
            write!(out, "]")
        }
        CTest::OneOf(set) => {
            let _ = write!(out, "one {} [", set.is_folded());
            // Sorted and deduplicated by the set.
            for v in set.iter() {
                let _ = write!(out, "{v:?},");
            }
            write!(out, "]")
        }
        CTest::Contains(p) => {
            let _ = write!(out, "contains {} [", p.ci());
            for lit in p.iter() {
                let _ = write!(out, "{lit:?},");
            }
            write!(out, "]")
        }
    };
}

impl Scratch {
    /// Starts an event for a matcher with `slots` memo slots: every remembered outcome is
    /// forgotten (allocates only the first time a matcher needs more slots).
    pub(super) fn begin_event(&mut self, slots: u32) {
        self.ready = false;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            // Stamps from 2^64 events ago could pass for current ones: forget them.
            self.memo.iter_mut().for_each(|m| *m = (0, false));
            self.generation = 1;
        }
        if self.memo.len() < slots as usize {
            self.memo.resize(slots as usize, (0, false));
        }
    }

    /// The outcome `eval` gives on this event, remembered in memo slot `slot` (evaluated
    /// only the first time in an event).
    #[inline]
    pub(super) fn memoized(&mut self, slot: u32, eval: impl FnOnce(&mut Scratch) -> bool) -> bool {
        let generation = self.generation;
        match self.memo.get(slot as usize) {
            // No event begun here (a standalone evaluation): nothing to share with.
            _ if generation == 0 => eval(self),
            Some(&(g, b)) if g == generation => b,
            Some(_) => {
                let b = eval(self);
                self.memo[slot as usize] = (generation, b);
                b
            }
            None => eval(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::NO_MEMO;
    use super::*;
    use crate::ecs::Shape;
    use crate::query::kql;

    fn trees(queries: &[&str]) -> Vec<Node> {
        queries
            .iter()
            .map(|q| {
                let typed = kql::parse(q).expect("parses").typed().expect("types");
                super::super::tree::compile(&typed, Shape::Exec)
            })
            .collect()
    }

    fn slots(rules: &[Node]) -> Vec<u32> {
        let mut out = Vec::new();
        for r in rules {
            each_leaf(r, &mut |l| out.push(l.memo));
        }
        out
    }

    #[test]
    fn alike_costly_tests_share_a_slot_and_others_do_not() {
        let mut rules = trees(&[
            "process.name : bash and not process.parent.name : (make or cron or sshd)",
            "process.name : curl or not process.parent.name : (make or cron or sshd)",
            // Another value set, and another field with the same values.
            "process.name : git and not process.parent.name : (make or cron)",
            "process.name : git and not process.name : (make or cron or sshd)",
            "process.args : \"-c\" and process.name : sh",
            "process.args : \"-c\"",
        ]);
        assert_eq!(share(&mut rules), 2);
        let memo: Vec<u32> = slots(&rules)
            .into_iter()
            .filter(|&m| m != NO_MEMO)
            .collect();
        assert_eq!(memo.len(), 4, "{rules:?}");
        let mut distinct = memo;
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct, vec![0, 1], "{rules:?}");
    }

    #[test]
    fn the_memo_forgets_at_each_event() {
        let mut sc = Scratch::default();
        // No event begun: evaluated every time.
        assert!(sc.memoized(0, |_| true));
        assert!(!sc.memoized(0, |_| false));
        sc.begin_event(2);
        assert!(sc.memoized(1, |_| true));
        assert!(sc.memoized(1, |_| false), "remembered within the event");
        sc.begin_event(2);
        assert!(!sc.memoized(1, |_| false), "forgotten at the next");
        // A slot past those the event began with is evaluated every time.
        assert!(sc.memoized(5, |_| true) && !sc.memoized(5, |_| false));
    }
}
