//! The compiled matcher: many typed queries evaluated on one event at once.
//!
//! - [`tree`]: a typed query compiled into a tree that reads event fields directly;
//! - [`index`]: which rules an event must be tested against, from values their matches hold;
//! - [`eval`]: evaluation of a tree on one event, allocation-free;
//! - [`check`]: leaves that compute values (EQL functions, field-to-field comparisons);
//! - this module: the driver, [`Matcher`], over the rules and their indexes.
//!
//! [`CompiledRule::new`] cannot fail: everything that can (syntax, types, regular
//! expressions) was settled when the query was built ([`crate::query::build`]).

pub mod block;
mod check;
mod eval;
mod index;
mod one_of;
mod pieces;
mod share;
mod tree;

use crate::ecs::{EcsEvent, Field, Shape, Value};
use crate::query::ast::Query;
use crate::query::typing::TypedPred;

use eval::{SCRATCH, Scratch, args_iter, decimal};
use index::{FieldIndex, IndexChoice};
use pieces::Pieces;
use tree::Node;

/// One rule's compiled trees, one per event shape.
#[derive(Debug)]
pub struct CompiledRule([Node; Shape::COUNT]);

impl CompiledRule {
    pub fn new(query: &Query<TypedPred>) -> CompiledRule {
        CompiledRule(Shape::ALL.map(|shape| tree::compile(query, shape)))
    }

    /// Whether no event the view can produce ever matches (the query needs fields or values
    /// this host's events do not have).
    pub fn never_matches(&self) -> bool {
        self.0.iter().all(Node::never)
    }

    /// Whether events of `shape` can match.
    pub fn can_match(&self, shape: Shape) -> bool {
        !self.0[shape as usize].never()
    }

    /// Whether `ev` matches this one tree (exception items are evaluated this way, once a
    /// rule has matched). Allocation-free, like [`Matcher::evaluate`].
    pub fn matches(&self, ev: &EcsEvent<'_>) -> bool {
        let node = &self.0[ev.shape() as usize];
        if !node.needs_scratch() {
            return node.eval(ev, &mut Scratch::default());
        }
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut sc) => {
                sc.ready = false;
                node.eval(ev, &mut sc)
            }
            Err(_) => node.eval(ev, &mut Scratch::default()),
        })
    }
}

/// Many compiled rules with their indexes, one matcher per event shape: an event is tested
/// only against the rules its shape can match, on trees with its shape's constants folded.
///
/// Consecutive slots with one query (a sequence's `runs=N` stages, [`Matcher::from_runs`])
/// are compiled, indexed and tested once; a match reports every slot of the run.
#[derive(Debug, Default)]
pub struct Matcher {
    shapes: [ShapeMatcher; Shape::COUNT],
    /// Slots reported (`len` ≥ the number of compiled trees).
    len: usize,
    /// Per compiled tree: its first slot and how many consecutive slots it stands for
    /// (empty when every tree is one slot).
    runs: Vec<(u32, u32)>,
    /// Per slot: its compiled tree (empty when every tree is one slot).
    tree_of: Vec<u32>,
}

/// The rules of one shape with their indexes.
///
/// Rules that require one `host.os.type` (nearly every Elastic rule names its platform)
/// are indexed apart, per platform: an event is never tested against the other platform's
/// rules, however common its process name is there.
#[derive(Debug, Default)]
struct ShapeMatcher {
    rules: Vec<Node>,
    /// Rules for any platform (what an event of another platform, or of none, is tested
    /// against).
    any: Index,
    /// Rules that require `host.os.type` to be [`OS_NAMES`]`[i]`, and the rules for any
    /// platform too: an event of a known platform is looked up in one index, not two.
    per_os: [Index; 2],
    /// [`Matcher::index_summary`]: `any`, then each platform's own rules.
    summary: [IndexSummary; 3],
    /// Memo slots of the leaves several trees share ([`share`]).
    shared: u32,
}

/// The platforms rules are indexed by (`host.os.type` values the view produces).
const OS_NAMES: [&str; 2] = ["macos", "linux"];

/// Rules per way of indexing them (see [`Matcher::index_summary`]).
pub type IndexSummary = (usize, usize, usize, usize, usize, usize, usize, usize);

/// The index of a group of rules: which of them an event must be tested against.
#[derive(Debug)]
struct Index {
    /// Rules tested on every event.
    always: Vec<u32>,
    by_name: FieldIndex,
    by_parent_name: FieldIndex,
    /// Rules that need one of some `process.args` elements.
    by_arg: FieldIndex,
    by_executable: FieldIndex,
    /// Literals `process.command_line` must hold (ASCII case folded) for some rules: one
    /// pass over argv finds those it holds.
    pieces: Pieces,
    /// `piece_rules[i]`: the rules needing literal `i` of `pieces`.
    piece_rules: Vec<Vec<u32>>,
    /// Rules that need `process.env_vars` to hold a value.
    with_env_vars: Vec<u32>,
    /// Rules that need a value of another field (ids, the user's name: see
    /// [`index::OTHER_FIELDS`]), per field.
    by_other: Vec<(Field, FieldIndex)>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            always: Vec::new(),
            by_name: FieldIndex::default(),
            by_parent_name: FieldIndex::default(),
            by_arg: FieldIndex::default(),
            by_executable: FieldIndex::default(),
            pieces: Pieces::new(true),
            piece_rules: Vec::new(),
            with_env_vars: Vec::new(),
            by_other: Vec::new(),
        }
    }
}

impl Index {
    fn add(&mut self, node: &Node, i: u32) {
        let Some(c) = IndexChoice::best(node) else {
            self.always.push(i);
            return;
        };
        self.by_name.add(c.name, i);
        self.by_parent_name.add(c.parent_name, i);
        self.by_arg.add(c.arg, i);
        self.by_executable.add(c.executable, i);
        if c.env_vars {
            self.with_env_vars.push(i);
        }
        for (f, k) in c.other {
            let at = match self.by_other.iter().position(|(g, _)| *g == f) {
                Some(at) => at,
                None => {
                    self.by_other.push((f, FieldIndex::default()));
                    self.by_other.len() - 1
                }
            };
            self.by_other[at].1.add(vec![k], i);
        }
        for p in c.pieces {
            let at = self.pieces.add(&p);
            if at == self.piece_rules.len() {
                self.piece_rules.push(Vec::new());
            }
            if self.piece_rules[at].last() != Some(&i) {
                self.piece_rules[at].push(i);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.always.is_empty()
            && self.by_name.is_empty()
            && self.by_parent_name.is_empty()
            && self.by_arg.is_empty()
            && self.by_executable.is_empty()
            && self.pieces.is_empty()
            && self.with_env_vars.is_empty()
            && self.by_other.is_empty()
    }

    /// Rule ids in this index (for reports): (always, name, parent name, argument,
    /// executable, piece, environment variables, other fields).
    fn summary(&self) -> IndexSummary {
        let count = |f: &FieldIndex| {
            let mut ids: Vec<u32> = f.ids().collect();
            ids.sort_unstable();
            ids.dedup();
            ids.len()
        };
        let mut pieces: Vec<u32> = self.piece_rules.iter().flatten().copied().collect();
        pieces.sort_unstable();
        pieces.dedup();
        (
            self.always.len(),
            count(&self.by_name),
            count(&self.by_parent_name),
            count(&self.by_arg),
            count(&self.by_executable),
            pieces.len(),
            self.with_env_vars.len(),
            {
                let mut ids: Vec<u32> = self.by_other.iter().flat_map(|(_, f)| f.ids()).collect();
                ids.sort_unstable();
                ids.dedup();
                ids.len()
            },
        )
    }

    /// Tests the rules `ev` selects; returns how many lists were looked at (more than one:
    /// `out` needs sorting and deduplicating).
    fn run(
        &self,
        rules: &[Node],
        ev: &EcsEvent<'_>,
        sc: &mut Scratch,
        out: &mut Vec<usize>,
    ) -> usize {
        let test = |i: u32, sc: &mut Scratch, out: &mut Vec<usize>| {
            if rules[i as usize].eval(ev, sc) {
                out.push(i as usize);
            }
        };
        let before = out.len();
        for &i in &self.always {
            test(i, sc, out);
        }
        let mut lists = usize::from(out.len() > before);
        let mut hit = |ids: &[u32]| ids.iter().for_each(|&i| test(i, sc, out));
        if !self.by_name.is_empty()
            && let Value::Str(name) = ev.value(Field::Name)
        {
            lists += self.by_name.lookup(name, &mut hit);
        }
        if !self.by_executable.is_empty()
            && let Value::Str(exe) = ev.value(Field::Executable)
        {
            lists += self.by_executable.lookup(exe, &mut hit);
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
        for (field, index) in &self.by_other {
            lists += match ev.value(*field) {
                Value::Str(s) => index.lookup(s, &mut hit),
                Value::Shared(s) => index.lookup(&s, &mut hit),
                Value::Id(n) => index.lookup(decimal(n, &mut [0u8; 10]), &mut hit),
                _ => 0,
            };
        }
        if !self.with_env_vars.is_empty() && !matches!(ev.value(Field::EnvVars), Value::Missing) {
            lists += 2;
            hit(&self.with_env_vars);
        }
        if !self.pieces.is_empty()
            && let Value::Joined(args) = ev.value(Field::CommandLine)
        {
            // A literal found twice selects its rules once (for the first 256 literals).
            let mut seen = [0u64; 4];
            self.pieces.each_in(args.joined().as_bytes(), |p| {
                if let Some(word) = seen.get_mut(p / 64) {
                    if *word & (1 << (p % 64)) != 0 {
                        return;
                    }
                    *word |= 1 << (p % 64);
                }
                lists += 2;
                hit(&self.piece_rules[p]);
            });
        }
        lists
    }
}

impl Matcher {
    /// Compiles every query; a query's index here is what [`Matcher::evaluate`] reports.
    pub fn new(queries: &[&Query<TypedPred>]) -> Matcher {
        Matcher::from_rules(queries.iter().map(|q| CompiledRule::new(q)).collect())
    }

    /// Indexes compiled rules; a rule's index here is what [`Matcher::evaluate`] reports.
    pub fn from_rules(rules: Vec<CompiledRule>) -> Matcher {
        Matcher::from_runs(rules.into_iter().map(|r| (r, 1)).collect())
    }

    /// Indexes compiled rules, each standing for `n` consecutive slots (`n` ≥ 1): slots
    /// are numbered in order, and a match of a rule reports all of its slots.
    pub fn from_runs(rules: Vec<(CompiledRule, u32)>) -> Matcher {
        let mut per_shape: [Vec<Node>; Shape::COUNT] = Default::default();
        let mut runs = Vec::with_capacity(rules.len());
        let mut tree_of = Vec::with_capacity(rules.len());
        let mut len = 0u32;
        for (tree, (rule, n)) in rules.into_iter().enumerate() {
            let n = n.max(1);
            runs.push((len, n));
            tree_of.extend(std::iter::repeat_n(tree as u32, n as usize));
            len += n;
            for (shape, node) in rule.0.into_iter().enumerate() {
                per_shape[shape].push(node);
            }
        }
        let has_runs = runs.iter().any(|&(_, n)| n > 1);
        Matcher {
            shapes: per_shape.map(ShapeMatcher::from_nodes),
            len: len as usize,
            runs: if has_runs { runs } else { Vec::new() },
            tree_of: if has_runs { tree_of } else { Vec::new() },
        }
    }

    /// Rewrites the compiled trees in `out` (ascending) as the slots they stand for
    /// (ascending), in place: no allocation once `out` has the capacity.
    fn expand_runs(&self, out: &mut Vec<usize>) {
        if self.runs.is_empty() {
            return;
        }
        let n = out.len();
        let extra: usize = out.iter().map(|&t| self.runs[t].1 as usize - 1).sum();
        out.resize(n + extra, 0);
        // Filled from the back: position `w` never falls below the one being read.
        let mut w = n + extra;
        for r in (0..n).rev() {
            let (first, count) = self.runs[out[r]];
            for k in (0..count).rev() {
                w -= 1;
                out[w] = (first + k) as usize;
            }
        }
    }

    /// The compiled tree of slot `slot`.
    fn tree(&self, slot: usize) -> usize {
        match self.tree_of.get(slot) {
            Some(&t) => t as usize,
            None if self.tree_of.is_empty() => slot,
            None => usize::MAX,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How the rules of `shape` are indexed, for reports: per group (any platform, then
    /// each of [`OS_NAMES`]), (tested on every event, by name, by parent name, by an
    /// argument, by executable, by a command-line literal, by holding environment
    /// variables, by another field's value).
    pub fn index_summary(&self, shape: Shape) -> Vec<IndexSummary> {
        self.shapes[shape as usize].summary.to_vec()
    }

    /// Appends the indices of matching rules to `out` (cleared first), ascending.
    ///
    /// When the event's argv was cut (`process.Ext.args_truncated`: arguments dropped from
    /// the middle, or an argument cut short), a rule whose outcome could depend on what was
    /// dropped counts as matching too: evasion by padding argv must not silence a rule. See
    /// [`Matcher::is_certain`] to tell such matches apart.
    pub fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        let shape = &self.shapes[ev.shape() as usize];
        shape.evaluate(ev, out);
        if matches!(ev.value(Field::ArgsTruncated), Value::Bool(true)) {
            shape.add_uncertain(ev, out);
        }
        self.expand_runs(out);
    }

    /// Rule `rule` alone on `ev` (see [`crate::RuleSet::outcome`]).
    pub fn outcome(&self, rule: usize, ev: &EcsEvent<'_>) -> Option<bool> {
        let shape = &self.shapes[ev.shape() as usize];
        let node = shape.rules.get(self.tree(rule))?;
        let mut sc = Scratch::default();
        if matches!(ev.value(Field::ArgsTruncated), Value::Bool(true)) {
            match node.eval3(ev, &mut sc) {
                eval::Tri::True => Some(true),
                eval::Tri::False => Some(false),
                eval::Tri::Unknown => None,
            }
        } else {
            Some(node.eval(ev, &mut sc))
        }
    }

    /// Whether rule `rule` matches `ev` whatever arguments its cut argv lost (on an event
    /// whose argv is whole: whether it matches). A match that is not certain is one that
    /// [`Matcher::evaluate`] reported because the dropped arguments could decide it.
    pub fn is_certain(&self, rule: usize, ev: &EcsEvent<'_>) -> bool {
        let shape = &self.shapes[ev.shape() as usize];
        let Some(node) = shape.rules.get(self.tree(rule)) else {
            return false;
        };
        let mut sc = Scratch::default();
        if matches!(ev.value(Field::ArgsTruncated), Value::Bool(true)) {
            node.eval3(ev, &mut sc) == eval::Tri::True
        } else {
            node.eval(ev, &mut sc)
        }
    }

    /// Whether some rule can match events of `shape` (a source can leave the rest out).
    pub fn wants(&self, shape: Shape) -> bool {
        self.shapes[shape as usize].rules.iter().any(|n| !n.never())
    }
}

impl ShapeMatcher {
    fn from_nodes(rules: Vec<Node>) -> ShapeMatcher {
        let mut rules = rules;
        let shared = share::share(&mut rules);
        let mut m = ShapeMatcher {
            rules,
            shared,
            ..ShapeMatcher::default()
        };
        let platform = |node: &Node| {
            node.required_value(Field::HostOsType)
                .and_then(|os| OS_NAMES.iter().position(|n| *n == os))
        };
        for (i, node) in m.rules.iter().enumerate() {
            if node.never() {
                continue;
            }
            match platform(node) {
                Some(os) => m.per_os[os].add(node, i as u32),
                None => m.any.add(node, i as u32),
            }
        }
        m.summary = [
            m.any.summary(),
            m.per_os[0].summary(),
            m.per_os[1].summary(),
        ];
        // Ids are added in ascending order, so every list of an index stays sorted.
        let mut per_os: [Index; 2] = Default::default();
        for (i, node) in m.rules.iter().enumerate() {
            if node.never() {
                continue;
            }
            match platform(node) {
                Some(os) => per_os[os].add(node, i as u32),
                None => per_os
                    .iter_mut()
                    .for_each(|index| index.add(node, i as u32)),
            }
        }
        m.per_os = per_os;
        m
    }

    fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        out.clear();
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut sc) => {
                sc.begin_event(self.shared);
                self.run(ev, &mut sc, out);
            }
            // Evaluated from within an evaluation (nothing does so today): a scratch of its
            // own, no memo.
            Err(_) => self.run(ev, &mut Scratch::default(), out),
        });
    }

    /// Adds the rules not in `out` whose outcome is unknown on a cut argv (every rule of
    /// the shape is tried: the index may have missed one whose argument was dropped).
    fn add_uncertain(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        let before = out.len();
        let mut sc = Scratch::default();
        for (i, node) in self.rules.iter().enumerate() {
            if node.never() || out[..before].binary_search(&i).is_ok() {
                continue;
            }
            if node.eval3(ev, &mut sc) == eval::Tri::Unknown {
                out.push(i);
            }
        }
        if out.len() > before {
            out.sort_unstable();
        }
    }

    fn run(&self, ev: &EcsEvent<'_>, sc: &mut Scratch, out: &mut Vec<usize>) {
        let os = match ev.value(Field::HostOsType) {
            Value::Str(os) => OS_NAMES.iter().position(|n| *n == os),
            _ => None,
        };
        let index = match os {
            Some(i) => &self.per_os[i],
            None => &self.any,
        };
        let mut lists = 0;
        if !index.is_empty() {
            lists += index.run(&self.rules, ev, sc, out);
        }
        if lists > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}
