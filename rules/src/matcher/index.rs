//! The rule index: which rules an event must be tested against, chosen from values every
//! match of a rule holds.
//!
//! Rules are indexed by the first of these they require: a `process.name`,
//! `process.parent.name` or `process.args` element from a fixed set of values or literal
//! prefixes (ASCII case folded), or a literal `process.command_line` must hold, whichever is
//! expected to cost least (see [`IndexChoice::cost`]); an event is tested only against the
//! rules its values select.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::ecs::Field;
use crate::pattern::{CharTok, Glob};

use super::pieces::Pieces;
use crate::query::ast::Cmp;

use super::tree::{CTest, Node};

/// A 4096-bit filter over the length, first and last byte (ASCII case folded) of a set of
/// keys. Nearly every value an event carries is not a key; the filter turns most of them away
/// with one bit test, before they are folded and hashed. With a few dozen keys, about 1% of
/// other values pass it.
#[derive(Debug, Clone)]
pub(super) struct KeyFilter(Box<[u64; 64]>);

impl Default for KeyFilter {
    fn default() -> Self {
        KeyFilter(Box::new([0; 64]))
    }
}

impl KeyFilter {
    #[inline]
    pub(super) fn bit(value: &[u8]) -> usize {
        let first = value.first().map_or(0, u8::to_ascii_lowercase);
        let last = value.last().map_or(0, u8::to_ascii_lowercase);
        let h = (value.len().min(0xffff) as u32) << 16 | u32::from(first) << 8 | u32::from(last);
        // Fibonacci hashing: the top 12 bits of the product.
        (h.wrapping_mul(0x9e37_79b1) >> 20) as usize
    }
    pub(super) fn insert(&mut self, key: &[u8]) {
        let b = Self::bit(key);
        self.0[b / 64] |= 1 << (b % 64);
    }
    #[inline]
    pub(super) fn may_hold(&self, value: &[u8]) -> bool {
        let b = Self::bit(value);
        self.0[b / 64] & (1 << (b % 64)) != 0
    }
}

/// A set of bytes: the first bytes (ASCII case folded) of the literal prefixes of an index.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ByteSet([u64; 4]);

impl ByteSet {
    pub(super) fn insert(&mut self, b: u8) {
        let b = b.to_ascii_lowercase();
        self.0[usize::from(b / 64)] |= 1 << (b % 64);
    }
    #[inline]
    pub(super) fn holds(&self, b: u8) -> bool {
        let b = b.to_ascii_lowercase();
        self.0[usize::from(b / 64)] & (1 << (b % 64)) != 0
    }
}

pub(super) type FastMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<WordHash>>;

/// A word-at-a-time multiplicative hash (as in rustc's FxHash): keys are short and trusted
/// (built from the rules), so a simple hash beats SipHash by a wide margin.
#[derive(Default)]
pub(super) struct WordHash(u64);

impl WordHash {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    pub(super) fn add(&mut self, word: u64) {
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

/// An index key: an exact (ASCII-folded) value, a prefix or a suffix of it, or a literal
/// it holds somewhere (what a pattern with `?` keeps: the ASCII runs between wildcards).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key {
    Exact(String),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Contains(Vec<u8>),
}

/// Rules indexed by the values of one field.
#[derive(Debug)]
pub(super) struct FieldIndex {
    pub(super) exact: FastMap<Vec<u32>>,
    /// The keys of `exact` (see [`KeyFilter`]).
    filter: KeyFilter,
    /// Literal prefixes of patterns (ASCII-lowercased), tested one by one: there are few.
    pub(super) prefixes: Vec<(Box<[u8]>, Vec<u32>)>,
    /// The first bytes of `prefixes`.
    prefix_starts: ByteSet,
    /// Literal suffixes of patterns (`*.cgi`), tested one by one.
    pub(super) suffixes: Vec<(Box<[u8]>, Vec<u32>)>,
    /// The last bytes of `suffixes`.
    suffix_ends: ByteSet,
    /// Literals (ASCII-lowercased) values must hold anywhere (`*literal*` patterns, and
    /// patterns with `?`), for the rules in `contains_rules` (same positions).
    contains: Pieces,
    contains_rules: Vec<Vec<u32>>,
}

impl Default for FieldIndex {
    fn default() -> Self {
        FieldIndex {
            exact: FastMap::default(),
            filter: KeyFilter::default(),
            prefixes: Vec::new(),
            prefix_starts: ByteSet::default(),
            suffixes: Vec::new(),
            suffix_ends: ByteSet::default(),
            contains: Pieces::new(true),
            contains_rules: Vec::new(),
        }
    }
}

/// The list of `key` in `lists`, made if missing.
fn list_of(lists: &mut Vec<(Box<[u8]>, Vec<u32>)>, key: Vec<u8>) -> &mut Vec<u32> {
    let i = match lists.iter().position(|(q, _)| **q == key[..]) {
        Some(i) => i,
        None => {
            lists.push((key.into(), Vec::new()));
            lists.len() - 1
        }
    };
    &mut lists[i].1
}

impl FieldIndex {
    pub(super) fn add(&mut self, keys: Vec<Key>, rule: u32) {
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
                    list_of(&mut self.prefixes, p)
                }
                Key::Suffix(p) => {
                    if let Some(&b) = p.last() {
                        self.suffix_ends.insert(b);
                    }
                    list_of(&mut self.suffixes, p)
                }
                Key::Contains(p) => {
                    let at = self.contains.add(&p);
                    if at == self.contains_rules.len() {
                        self.contains_rules.push(Vec::new());
                    }
                    &mut self.contains_rules[at]
                }
            };
            if list.last() != Some(&rule) {
                list.push(rule);
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.exact.is_empty()
            && self.prefixes.is_empty()
            && self.suffixes.is_empty()
            && self.contains.is_empty()
    }

    /// Every rule id of the index (for reports).
    pub(super) fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.exact
            .values()
            .flatten()
            .chain(
                [&self.prefixes, &self.suffixes]
                    .into_iter()
                    .flat_map(|l| l.iter().flat_map(|(_, v)| v.iter())),
            )
            .chain(self.contains_rules.iter().flatten())
            .copied()
    }

    /// Calls `hit` with each list of rules `value` selects; returns how many lists.
    /// Inlined: most values stop at the two filters, before any call.
    #[inline]
    pub(super) fn lookup(&self, value: &str, hit: impl FnMut(&[u32])) -> usize {
        let exact = self.filter.may_hold(value.as_bytes());
        let prefix = value
            .as_bytes()
            .first()
            .is_some_and(|&b| self.prefix_starts.holds(b));
        let suffix = value
            .as_bytes()
            .last()
            .is_some_and(|&b| self.suffix_ends.holds(b));
        if exact || prefix || suffix || !self.contains.is_empty() {
            self.lookup_past_filters(value, exact, prefix, suffix, hit)
        } else {
            0
        }
    }

    /// [`FieldIndex::lookup`] for a value one of the filters let through.
    #[inline(never)]
    pub(super) fn lookup_past_filters(
        &self,
        value: &str,
        exact: bool,
        prefix: bool,
        suffix: bool,
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
        if suffix {
            let v = value.as_bytes();
            for (p, ids) in &self.suffixes {
                if v.len() >= p.len() && v[v.len() - p.len()..].eq_ignore_ascii_case(p) {
                    lists += 1;
                    hit(ids);
                }
            }
        }
        if !self.contains.is_empty() {
            // A literal found twice selects its rules once (for the first 64 literals).
            let mut seen = 0u64;
            self.contains.each_in(value.as_bytes(), |p| {
                if p < 64 {
                    if seen & (1 << p) != 0 {
                        return;
                    }
                    seen |= 1 << p;
                }
                lists += 1;
                hit(&self.contains_rules[p]);
            });
        }
        lists
    }
}

impl CTest {
    /// Index keys every value passing this test has one of (see `Node::required_values`).
    pub(super) fn keys(&self, fold: bool) -> Option<Vec<Key>> {
        let key = |v: &str| -> Option<Key> {
            if !fold {
                return Some(Key::Exact(v.to_owned()));
            }
            (v.len() <= FOLD_MAX).then(|| Key::Exact(v.to_ascii_lowercase()))
        };
        match self {
            CTest::Str(Cmp::Eq, v) => Some(vec![key(v)?]),
            CTest::Glob(Glob::Bytes(g)) if fold => match (g.literal_prefix(), g.literal_suffix()) {
                (Some(p), _) => Some(vec![Key::Prefix(p.to_ascii_lowercase())]),
                (None, Some(s)) => Some(vec![Key::Suffix(s.to_ascii_lowercase())]),
                (None, None) => {
                    let lit = g.longest_literal();
                    (!lit.is_empty()).then(|| vec![Key::Contains(lit.to_ascii_lowercase())])
                }
            },
            CTest::Glob(Glob::Chars { toks, .. }) if fold => Some(vec![chars_key(toks)?]),
            CTest::Regex(r) if fold => {
                // A case-insensitive expression's `k` and `s` also match non-ASCII letters.
                let p = crate::pattern::lucene_literal_prefix(&r.pattern)
                    .filter(|p| !r.ci || !p.contains(['k', 'K', 's', 'S']))?;
                Some(vec![Key::Prefix(p.to_ascii_lowercase().into_bytes())])
            }
            CTest::Glob(Glob::Exact {
                text,
                ci: true,
                ascii: true,
            }) if fold => Some(vec![key(text)?]),
            CTest::OneOf(vs) if !vs.is_folded() || fold => vs.iter().map(|v| key(v)).collect(),
            CTest::Contains(p) if fold => Some(
                p.iter()
                    .map(|v| Key::Contains(v.to_ascii_lowercase()))
                    .collect(),
            ),
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
    pub(super) fn pieces(&self) -> Option<Vec<Vec<u8>>> {
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
            CTest::Glob(Glob::Chars { toks, .. }) => Some(vec![piece(&longest_ascii_run(toks))?]),
            CTest::OneOf(vs) => vs.iter().map(|v| piece(v.as_bytes())).collect(),
            CTest::Contains(p) => p.iter().map(piece).collect(),
            CTest::Regex(r) => Some(vec![piece(
                crate::pattern::lucene_required_literal(&r.pattern, r.ci)?.as_bytes(),
            )?]),
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

impl Node {
    /// The one value (ASCII-lowercased) `field` has in every match, if there is one.
    pub(super) fn required_value(&self, field: Field) -> Option<String> {
        match self.required_values(field, true)?.as_slice() {
            [Key::Exact(v)] => Some(v.clone()),
            _ => None,
        }
    }

    /// Values of `field` of which every match has at least one: from an `and` child, or the
    /// union over the branches of an `or`. With `fold`, keys are ASCII-lowercased and
    /// case-insensitive exact matches (ASCII only) and patterns starting with a literal count too.
    pub(super) fn required_values(&self, field: Field, fold: bool) -> Option<Vec<Key>> {
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

/// Where a rule is indexed: per indexed field, values one of which every match of it holds
/// (a match holds at least one of all the keys listed, whatever their field). An `and`
/// takes the cheapest of its children's; an `or` the union of all its branches', so a rule
/// whose branches test different fields is still indexed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct IndexChoice {
    pub(super) name: Vec<Key>,
    pub(super) parent_name: Vec<Key>,
    pub(super) arg: Vec<Key>,
    pub(super) executable: Vec<Key>,
    /// Literals of `process.command_line`.
    pub(super) pieces: Vec<Vec<u8>>,
    /// `process.env_vars` holds a value: the sensor reports only the variables
    /// `[sensor] env_vars` names, so most execs have none.
    pub(super) env_vars: bool,
    /// Values of the other indexed fields ([`OTHER_FIELDS`]: user and group ids, the
    /// user's name), sorted.
    pub(super) other: Vec<(Field, Key)>,
}

/// Fields besides the name, parent name, arguments, executable and command line that rules
/// can be indexed by, with what reading one costs (see [`IndexChoice::cost`]): ids the event
/// carries, the parent's (and its executable) from the process table, the user's name from
/// the host's cache.
/// Rules whose only required values are ids (`process.user.id == "0" and not
/// process.real_user.id == "0"`) or a user name are then tested only on events with them.
pub(super) const OTHER_FIELDS: &[(Field, u32)] = &[
    (Field::UserId, 0),
    (Field::GroupId, 0),
    (Field::ProcessUserId, 0),
    (Field::ProcessGroupId, 0),
    (Field::RealUserId, 0),
    (Field::RealGroupId, 0),
    (Field::UserRealId, 0),
    (Field::GroupRealId, 0),
    (Field::ParentUserId, 1),
    (Field::ParentGroupId, 1),
    (Field::UserName, 2),
    (Field::ParentExecutable, 1),
];

/// Fields of [`OTHER_FIELDS`] indexed by patterns too (prefixes, suffixes, literals), not
/// only whole values.
fn patterned(f: Field) -> bool {
    f == Field::ParentExecutable
}

impl IndexChoice {
    /// Where `node` is best indexed; `None`: nothing is required (tested on every event).
    pub(super) fn best(node: &Node) -> Option<IndexChoice> {
        match node {
            Node::Leaf(l) => {
                let mut c = IndexChoice::default();
                match l.field {
                    Field::Name => c.name = l.test.keys(true)?,
                    Field::ParentName => c.parent_name = l.test.keys(true)?,
                    Field::Args => c.arg = l.test.keys(true)?,
                    Field::Executable => c.executable = l.test.keys(true)?,
                    Field::CommandLine => c.pieces = l.test.pieces()?,
                    // A leaf is false on a field the event does not have.
                    Field::EnvVars => c.env_vars = true,
                    f if OTHER_FIELDS.iter().any(|(o, _)| *o == f) => {
                        // Exact values only for ids and names: they are compared whole.
                        let keys = l.test.keys(true)?;
                        if !patterned(f) && !keys.iter().all(|k| matches!(k, Key::Exact(_))) {
                            return None;
                        }
                        c.other = keys.into_iter().map(|k| (f, k)).collect();
                        c.other.sort_unstable();
                        c.other.dedup();
                    }
                    _ => return None,
                }
                Some(c)
            }
            Node::And(kids) => kids
                .iter()
                .filter_map(IndexChoice::best)
                .min_by_key(IndexChoice::cost),
            Node::Or(kids) => {
                let mut all = IndexChoice::default();
                for k in kids.iter() {
                    all.absorb(IndexChoice::best(k)?);
                }
                Some(all)
            }
            _ => None,
        }
    }

    fn absorb(&mut self, other: IndexChoice) {
        fn merge<T: Ord>(a: &mut Vec<T>, b: Vec<T>) {
            a.extend(b);
            a.sort_unstable();
            a.dedup();
        }
        merge(&mut self.name, other.name);
        merge(&mut self.parent_name, other.parent_name);
        merge(&mut self.arg, other.arg);
        merge(&mut self.executable, other.executable);
        merge(&mut self.pieces, other.pieces);
        merge(&mut self.other, other.other);
        self.env_vars |= other.env_vars;
    }

    /// What indexing by these keys is expected to cost, in arbitrary units: the events they
    /// select, plus the lookup every event pays. There are no statistics at compile time, so
    /// length stands in for rarity: "sh", "-e" or "-c" occur in many execs, `emond` or
    /// `add-trusted-cert` in few. A prefix selects more than the same exact value. The name
    /// is one lookup, the parent's name a process-table probe besides, the arguments one
    /// lookup each, the executable one lookup (its prefixes are long and rare: `/dev/shm/`),
    /// and each command-line literal a search of the whole command line.
    pub(super) fn cost(&self) -> u32 {
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
                    Key::Prefix(p) | Key::Suffix(p) => 2 * by_len(p.len()),
                    Key::Contains(p) => 3 * by_len(p.len()),
                })
                .sum()
        };
        // Per other field: what reading it costs, once, and its keys.
        let mut other = 0;
        for (i, (f, k)) in self.other.iter().enumerate() {
            if i == 0 || self.other[i - 1].0 != *f {
                other += 1 + OTHER_FIELDS
                    .iter()
                    .find(|(o, _)| o == f)
                    .map_or(0, |(_, c)| *c);
            }
            other += keys(std::slice::from_ref(k));
        }
        let field = |base: u32, k: &[Key]| if k.is_empty() { 0 } else { base + keys(k) };
        field(0, &self.name)
            + field(1, &self.parent_name)
            + field(2, &self.arg)
            + field(1, &self.executable)
            + self.pieces.iter().map(|p| 3 * by_len(p.len())).sum::<u32>()
            + u32::from(self.env_vars)
            + other
    }
}

/// The longest run of ASCII characters between wildcards of a character-wise pattern. Every
/// match holds it, ignoring ASCII case: a pattern's ASCII character matches only ASCII
/// characters, itself or its other case (see `pattern::ci_char_eq`).
fn longest_ascii_run(toks: &[CharTok]) -> Vec<u8> {
    let mut best: &[CharTok] = &[];
    for run in toks.split(|t| !matches!(t, CharTok::Char(c) if c.is_ascii())) {
        if run.len() > best.len() {
            best = run;
        }
    }
    best.iter()
        .filter_map(|t| match t {
            CharTok::Char(c) => Some(c.to_ascii_lowercase() as u8),
            _ => None,
        })
        .collect()
}

/// The index key of a character-wise pattern (one with `?`, or case-insensitive with
/// non-ASCII letters): the ASCII run it starts with, else its longest ASCII run anywhere.
fn chars_key(toks: &[CharTok]) -> Option<Key> {
    let lead: Vec<u8> = toks
        .iter()
        .map_while(|t| match t {
            CharTok::Char(c) if c.is_ascii() => Some(c.to_ascii_lowercase() as u8),
            _ => None,
        })
        .collect();
    if !lead.is_empty() {
        return Some(Key::Prefix(lead));
    }
    let run = longest_ascii_run(toks);
    (!run.is_empty()).then_some(Key::Contains(run))
}

/// Longest name looked up (ASCII-lowercased on the stack) in the name indexes.
const FOLD_MAX: usize = 256;

/// `s` ASCII-lowercased into `buf`; `None` when longer than the buffer.
pub(super) fn fold<'b>(s: &str, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..s.len())?;
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::super::tree::{Leaf, simplify_and, simplify_or};
    use super::*;
    use crate::query::ast::Tok;

    fn is(field: Field, value: &str) -> Node {
        Node::Leaf(Leaf {
            field,
            keyword: true,
            test: CTest::Str(Cmp::Eq, value.into()),
            on_joined: false,
            memo: super::super::tree::NO_MEMO,
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
        let c = IndexChoice::best(&emond_child).unwrap();
        assert_eq!(c.parent_name, exact(&["emond"]));
        assert!(c.name.is_empty(), "{c:?}");
    }

    #[test]
    fn the_name_wins_a_near_tie_because_it_is_one_lookup() {
        let seed = simplify_and(vec![
            is(Field::Name, "kcc"),
            is(Field::Args, "copy_cred_cache"),
        ]);
        let c = IndexChoice::best(&seed).unwrap();
        assert_eq!(c.name, exact(&["kcc"]));
        assert!(c.arg.is_empty(), "{c:?}");
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
                memo: super::super::tree::NO_MEMO,
            }),
        ]);
        let c = IndexChoice::best(&electron).unwrap();
        assert_eq!(c.pieces, vec![b"child_process".to_vec()]);
        assert!(c.arg.is_empty(), "{c:?}");
    }

    #[test]
    fn branches_on_different_fields_index_by_each() {
        // (name ctr and ...) or (parent name containerd and ...): selected by either.
        let rule = simplify_or(vec![
            simplify_and(vec![is(Field::Name, "crictl"), is(Field::Args, "exec")]),
            simplify_and(vec![
                is(Field::ParentName, "containerd"),
                is(Field::Args, "-it"),
            ]),
        ]);
        let c = IndexChoice::best(&rule).unwrap();
        assert_eq!(c.name, exact(&["crictl"]));
        assert_eq!(c.parent_name, exact(&["containerd"]));
        // A branch with nothing to index makes the whole `or` unindexable.
        let open = simplify_or(vec![
            is(Field::Name, "crictl"),
            is(Field::WorkingDirectory, "/"),
        ]);
        assert_eq!(IndexChoice::best(&open), None);
    }

    #[test]
    fn rules_requiring_only_ids_or_a_user_name_index_by_them() {
        // (uid 0 and not ruid 0) or (gid 0 and not rgid 0): by either id.
        let setuid = simplify_or(vec![
            simplify_and(vec![
                is(Field::ProcessUserId, "0"),
                Node::Not(Box::new(is(Field::RealUserId, "0"))),
            ]),
            simplify_and(vec![
                is(Field::ProcessGroupId, "0"),
                Node::Not(Box::new(is(Field::RealGroupId, "0"))),
            ]),
        ]);
        let c = IndexChoice::best(&setuid).unwrap();
        assert_eq!(
            c.other,
            vec![
                (Field::ProcessUserId, Key::Exact("0".into())),
                (Field::ProcessGroupId, Key::Exact("0".into())),
            ]
        );
        let postgres = simplify_and(vec![
            is(Field::UserName, "postgres"),
            is(Field::HostOsType, "linux"),
        ]);
        let c = IndexChoice::best(&postgres).unwrap();
        assert_eq!(
            c.other,
            vec![(Field::UserName, Key::Exact("postgres".into()))]
        );
        // A rare name still beats a common id.
        let named = simplify_and(vec![is(Field::Name, "pkexec"), is(Field::UserId, "0")]);
        let c = IndexChoice::best(&named).unwrap();
        assert_eq!(c.name, exact(&["pkexec"]));
        assert!(c.other.is_empty(), "{c:?}");
    }

    #[test]
    fn patterns_with_question_marks_index_by_their_literal_runs() {
        let glob = |field, pat: &str, ci| {
            let toks: Vec<Tok> = pat
                .chars()
                .map(|c| match c {
                    '*' => Tok::Star,
                    '?' => Tok::One,
                    c => Tok::Lit(c.to_string()),
                })
                .collect();
            Node::Leaf(Leaf {
                field,
                keyword: true,
                test: CTest::Glob(Glob::new(&toks, ci)),
                on_joined: true,
                memo: super::super::tree::NO_MEMO,
            })
        };
        let memfd = glob(Field::Executable, "?memfd:*", false);
        let c = IndexChoice::best(&memfd).unwrap();
        assert_eq!(c.executable, vec![Key::Contains(b"memfd:".to_vec())]);
        let lead = glob(Field::Name, "Key?.db", true);
        let c = IndexChoice::best(&lead).unwrap();
        assert_eq!(c.name, vec![Key::Prefix(b"key".to_vec())]);
        // Non-ASCII characters end a run (case-insensitively they may match other bytes).
        let mixed = glob(Field::Name, "?é*abc?", true);
        let c = IndexChoice::best(&mixed).unwrap();
        assert_eq!(c.name, vec![Key::Contains(b"abc".to_vec())]);
        // Nothing literal: not indexable.
        assert_eq!(IndexChoice::best(&glob(Field::Name, "?*?", false)), None);
    }

    #[test]
    fn a_test_on_environment_variables_indexes_by_their_presence() {
        let rule = simplify_and(vec![
            is(Field::UserId, "0"),
            simplify_or(vec![
                is(Field::EnvVars, "HISTSIZE=0"),
                is(Field::EnvVars, "HISTFILE=/dev/null"),
            ]),
        ]);
        let c = IndexChoice::best(&rule).unwrap();
        assert!(c.env_vars && c.name.is_empty(), "{c:?}");
        // An `or` with a branch on a name is selected by either.
        let either = simplify_or(vec![is(Field::EnvVars, "A=1"), is(Field::Name, "bash")]);
        let c = IndexChoice::best(&either).unwrap();
        assert!(c.env_vars);
        assert_eq!(c.name, exact(&["bash"]));
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
