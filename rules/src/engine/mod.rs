//! The detection engine: a [`RuleSet`] run over a stream of events, stateful rules
//! included.
//!
//! - event-query rules alert on the event itself;
//! - [`sequence`], [`sample`]: EQL correlations, state machines per join key;
//! - [`threshold`]: counts and cardinalities per group over the rule's look-back;
//! - [`new_terms`]: first-seen history per rule, kept by a [`TermStore`].
//!
//! Every event query of every rule is one slot of the rule set's matcher, so an event that
//! matches no stage costs stateful rules nothing. An event that matches a stage is copied
//! ([`EventSnapshot`]) and waits in a reorder buffer for `reorder_window` (events from
//! several sources arrive slightly out of order); stage hits are then taken in timestamp
//! order, as Elasticsearch sorts them. State is bounded per rule and in total
//! ([`Limits`]); what is evicted to keep to the bounds is counted ([`Stats`]).

mod key;
pub mod new_terms;
mod recycle;
mod reorder;
mod sample;
mod sequence;
mod threshold;

use std::sync::Arc;
use std::time::Duration;

use crate::ecs::{EcsEvent, EventSnapshot, Field, Value};
use crate::program::RuleProgram;
use crate::{RuleSet, Slot};
use key::{KeyField, key_of};
use new_terms::{NewTermsMachine, TERM_HASH_OFFSET, hash_part};
pub use new_terms::{NoTermStore, TermStore};
use recycle::Recycler;
use reorder::ReorderBuffer;
use sample::SampleMachine;
use sequence::SequenceMachine;
use threshold::ThresholdMachine;

/// Bounds on the engine's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Partial matches (sequences), keys (samples) or groups (thresholds) one rule may
    /// hold; past it the oldest is evicted.
    pub per_rule: usize,
    /// Bytes all stateful rules' state may hold together (events kept for partial matches
    /// included); past it the oldest state of the largest rule is evicted.
    pub total_bytes: usize,
    /// Terms one new_terms rule remembers.
    pub new_terms_per_rule: usize,
    /// How long a stage match waits for earlier events that arrive late.
    pub reorder_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_rule: 10_000,
            total_bytes: 64 << 20,
            new_terms_per_rule: 100_000,
            reorder_window: Duration::from_secs(2),
        }
    }
}

/// What the engine has done, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Partial matches, keys, groups and terms dropped to keep to the bounds.
    pub evicted: u64,
    /// Stage matches that arrived later than the reorder window (taken as they came).
    pub late: u64,
    /// Partial matches, keys and groups held now.
    pub held: u64,
    /// Bytes of state held now (reorder buffer included).
    pub bytes: u64,
    /// new_terms rules still learning their history window.
    pub learning: u64,
}

/// What made an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Detection {
    /// An event-query rule matched the event being handled.
    Event { rule: usize },
    /// A sequence or sample completed: its events, in stage order.
    Correlated {
        rule: usize,
        events: Vec<Arc<EventSnapshot>>,
    },
    /// The event being handled carries a combination of values new on this host.
    NewTerms { rule: usize, terms: Vec<String> },
    /// The event being handled took its group to the threshold.
    Threshold {
        rule: usize,
        /// `(field, value)` of the group.
        group: Vec<(String, String)>,
        count: u64,
        /// Distinct values of the cardinality field, when the rule has one.
        cardinality: Option<u64>,
    },
}

impl Detection {
    pub fn rule(&self) -> usize {
        match self {
            Detection::Event { rule }
            | Detection::Correlated { rule, .. }
            | Detection::NewTerms { rule, .. }
            | Detection::Threshold { rule, .. } => *rule,
        }
    }
}

#[derive(Debug)]
enum Machine {
    Sequence(SequenceMachine),
    Sample(SampleMachine),
    Threshold(ThresholdMachine),
    NewTerms(NewTermsMachine),
}

impl Machine {
    fn held(&self) -> usize {
        match self {
            Machine::Sequence(m) => m.held,
            Machine::Sample(m) => m.held,
            Machine::Threshold(m) => m.held,
            Machine::NewTerms(m) => m.held(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Machine::Sequence(m) => m.bytes,
            Machine::Sample(m) => m.bytes,
            Machine::Threshold(m) => m.bytes,
            Machine::NewTerms(m) => m.bytes,
        }
    }
}

/// A stage hit waiting in the reorder buffer.
#[derive(Debug)]
struct Pending {
    at: (i64, u64),
    snap: Arc<EventSnapshot>,
    bytes: usize,
    hits: Vec<StageHit>,
    /// The hits' join keys, one after the other.
    keys: Vec<u8>,
    /// Join keys of the exiting process (per machine and stage) when the event is a
    /// process's end.
    exits: Vec<(usize, usize, Box<[u8]>)>,
}

/// (machine, stage; `usize::MAX` for `until`, key: a range of [`Pending::keys`]).
type StageHit = (usize, usize, std::ops::Range<usize>);

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

const UNTIL: usize = usize::MAX;

/// One event's match of one stage, as the machines take it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hit<'a> {
    pub(super) key: &'a [u8],
    /// (time, capture order).
    pub(super) at: (i64, u64),
    pub(super) snap: &'a Arc<EventSnapshot>,
    /// The snapshot's heap bytes.
    pub(super) bytes: usize,
}

/// A rule set with the state of its stateful rules.
#[derive(Debug)]
pub struct Engine {
    /// Shared with whoever else reads the rules (the agent's rule slot).
    set: Arc<RuleSet>,
    limits: Limits,
    /// `machines[rule - set.event_rules()]`.
    machines: Vec<Machine>,
    reorder: ReorderBuffer<Pending>,
    /// Storage of stage hits taken, for the next ones.
    recycler: Recycler,
    reorder_bytes: usize,
    /// The latest event time seen.
    watermark: i64,
    /// The time of the last stage hit taken from the buffer.
    released: (i64, u64),
    stats: Stats,
    slots: Vec<usize>,
    key: Vec<u8>,
    done: Vec<Vec<Arc<EventSnapshot>>>,
    /// A new_terms hit's combinations (hashes).
    combos: Vec<u128>,
    /// A threshold hit's cardinality value.
    distinct: Vec<u8>,
    /// Stage hits taken since state was last swept.
    since_sweep: u32,
}

impl Engine {
    pub fn new(set: impl Into<Arc<RuleSet>>, limits: Limits) -> Engine {
        let set: Arc<RuleSet> = set.into();
        let mut machines = Vec::new();
        for (i, p) in set.programs().iter().enumerate().skip(set.event_rules()) {
            let meta = &set.rules()[i];
            let lookback = nanos(meta.lookback);
            machines.push(match p {
                RuleProgram::Sequence(s) => Machine::Sequence(SequenceMachine::new(i, s, lookback)),
                RuleProgram::Sample(s) => Machine::Sample(SampleMachine::new(i, s, lookback)),
                RuleProgram::Threshold {
                    group_by,
                    value,
                    cardinality,
                    window,
                    ..
                } => Machine::Threshold(ThresholdMachine::new(
                    group_by,
                    *value,
                    cardinality.as_ref(),
                    nanos(*window),
                )),
                RuleProgram::NewTerms {
                    fields, history, ..
                } => {
                    Machine::NewTerms(NewTermsMachine::new(&meta.rule_id, fields, nanos(*history)))
                }
                // Event-query rules come first in a set: none is here.
                RuleProgram::Event(_) => continue,
            });
        }
        Engine {
            set,
            limits,
            machines,
            reorder: ReorderBuffer::default(),
            recycler: Recycler::default(),
            reorder_bytes: 0,
            watermark: i64::MIN,
            released: (i64::MIN, 0),
            stats: Stats::default(),
            slots: Vec::new(),
            key: Vec::new(),
            done: Vec::new(),
            combos: Vec::new(),
            distinct: Vec::new(),
            since_sweep: 0,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &RuleSet {
        &self.set
    }

    /// Loads the new_terms rules' history.
    pub fn load_terms(&mut self, store: &mut dyn TermStore) {
        for m in &mut self.machines {
            if let Machine::NewTerms(nt) = m {
                nt.load(store);
            }
        }
    }

    /// Writes the new_terms rules' history seen since the last save.
    pub fn save_terms(&mut self, store: &mut dyn TermStore) {
        for m in &mut self.machines {
            if let Machine::NewTerms(nt) = m {
                nt.save(store);
            }
        }
    }

    /// Whether any rule keeps state (the caller need not call [`Engine::advance`] when
    /// none does).
    pub fn is_stateful(&self) -> bool {
        !self.machines.is_empty()
    }

    /// Handles one event: appends what it makes alert to `out` (not cleared). Event-query
    /// matches, new terms and thresholds come at once; correlations when their last stage
    /// hit leaves the reorder buffer (at this event or a later one, or at
    /// [`Engine::advance`] / [`Engine::finish`]). No allocation unless a stateful rule is
    /// involved.
    pub fn on_event(&mut self, ev: &EcsEvent<'_>, out: &mut Vec<Detection>) {
        let mut slots = std::mem::take(&mut self.slots);
        self.set.evaluate_slots(ev, &mut slots);
        let event_rules = self.set.event_rules();
        let mut pending: Option<Pending> = None;
        let at = (ev.time_ns(), ev.sequence());
        for &s in &slots {
            if s < event_rules {
                out.push(Detection::Event { rule: s });
                continue;
            }
            match self.set.slot(s) {
                Slot::Event(rule) => out.push(Detection::Event { rule }),
                Slot::Filter(rule) => self.filter_hit(rule, ev, at.0, out),
                Slot::Stage { rule, stage } => {
                    let m = rule - event_rules;
                    let fields = match &self.machines[m] {
                        Machine::Sequence(sm) => &sm.stage_keys[stage],
                        Machine::Sample(sm) => &sm.stage_keys[stage],
                        _ => continue,
                    };
                    if key_of(ev, fields, &mut self.key) {
                        let p = pending.get_or_insert_with(|| self.recycler.pending(ev, at));
                        p.push_hit(m, stage, &self.key);
                    }
                }
                Slot::Until(rule) => {
                    let m = rule - event_rules;
                    if let Machine::Sequence(sm) = &self.machines[m]
                        && let Some(fields) = &sm.until_keys
                        && key_of(ev, fields, &mut self.key)
                    {
                        let p = pending.get_or_insert_with(|| self.recycler.pending(ev, at));
                        p.push_hit(m, UNTIL, &self.key);
                    }
                }
            }
        }
        self.slots = slots;
        if self.machines.is_empty() {
            return;
        }
        if is_process_end(ev) {
            let exits = self.exit_keys(ev);
            if !exits.is_empty() {
                let p = pending.get_or_insert_with(|| self.recycler.pending(ev, at));
                p.exits = exits;
            }
        }
        if let Some(p) = pending {
            self.reorder_bytes += p.bytes;
            if at < self.released {
                // Later than the window: taken as it comes.
                self.stats.late += 1;
                self.reorder_bytes -= p.bytes;
                self.take(p, out);
            } else {
                self.reorder.push(p);
                // The window holds at most half the state budget: past it its oldest hits
                // are taken early (a hit older than them arriving later counts as late),
                // so a flood of hits within one window cannot grow it without bound.
                while self.reorder_bytes > self.limits.total_bytes / 2 {
                    let Some(p) = self.reorder.pop() else {
                        break;
                    };
                    self.reorder_bytes -= p.bytes;
                    self.released = self.released.max(p.at);
                    self.take(p, out);
                }
            }
        }
        self.watermark = self.watermark.max(at.0);
        self.release(
            self.watermark
                .saturating_sub(nanos(self.limits.reorder_window)),
            out,
        );
    }

    /// Time has passed without events (`now_ns`: the current time, as event times are
    /// read): stage hits older than the reorder window are taken, expired state dropped.
    pub fn advance(&mut self, now_ns: i64, out: &mut Vec<Detection>) {
        if self.machines.is_empty() {
            return;
        }
        self.watermark = self.watermark.max(now_ns);
        self.release(
            self.watermark
                .saturating_sub(nanos(self.limits.reorder_window)),
            out,
        );
        self.sweep(
            self.watermark
                .saturating_sub(nanos(self.limits.reorder_window)),
            out,
        );
    }

    /// The input ended: every stage hit is taken, and matches held for a trailing missing
    /// event are complete.
    pub fn finish(&mut self, out: &mut Vec<Detection>) {
        self.release(i64::MAX, out);
        for m in &mut self.machines {
            if let Machine::Sequence(sm) = m {
                let rule = sm.rule;
                let mut done = Vec::new();
                sm.finish(&mut done);
                out.extend(
                    done.into_iter()
                        .map(|events| Detection::Correlated { rule, events }),
                );
            }
        }
    }

    /// The exception item that excepts detection `d` at `now_ns`, if one does: for an
    /// event-query match, new term or threshold, one that excepts the event being handled
    /// (`ev`); for a sequence or sample, one that excepts any event of the match.
    pub fn excepted<'s>(
        &'s self,
        d: &Detection,
        ev: Option<&EcsEvent<'_>>,
        host: &crate::ecs::HostInfo,
        now_ns: i64,
    ) -> Option<&'s str> {
        let rule = d.rule();
        match d {
            Detection::Correlated { events, .. } => events
                .iter()
                .find_map(|e| self.set.excepted(rule, &e.view(host), now_ns)),
            _ => self.set.excepted(rule, ev?, now_ns),
        }
    }

    /// The latest event time seen, if any event was.
    pub fn watermark(&self) -> Option<i64> {
        (self.watermark != i64::MIN).then_some(self.watermark)
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.held = self.machines.iter().map(|m| m.held() as u64).sum();
        s.bytes =
            (self.machines.iter().map(Machine::bytes).sum::<usize>() + self.reorder_bytes) as u64;
        s.learning = self
            .machines
            .iter()
            .filter(|m| matches!(m, Machine::NewTerms(nt) if nt.learning(self.watermark)))
            .count() as u64;
        s
    }

    fn release(&mut self, upto: i64, out: &mut Vec<Detection>) {
        while let Some(p) = self.reorder.peek() {
            if p.at.0 > upto {
                break;
            }
            let Some(p) = self.reorder.pop() else {
                break;
            };
            self.reorder_bytes -= p.bytes;
            self.released = self.released.max(p.at);
            self.take(p, out);
        }
    }

    /// Feeds one buffered event's stage hits to the machines, in timestamp order.
    fn take(&mut self, mut p: Pending, out: &mut Vec<Detection>) {
        // Later stages first, so an event never advances a partial it started itself.
        p.hits.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let cap = self.limits.per_rule;
        for (m, stage, range) in &p.hits {
            let key = &p.keys[range.clone()];
            let machine = &mut self.machines[*m];
            match machine {
                Machine::Sequence(sm) => {
                    sm.expire(p.at.0, &mut self.done);
                    if *stage == UNTIL {
                        sm.until(key, p.at);
                    } else {
                        let hit = Hit {
                            key,
                            at: p.at,
                            snap: &p.snap,
                            bytes: p.bytes,
                        };
                        let o = sm.hit(*stage, hit, cap, &mut self.done);
                        self.stats.evicted += o.evicted;
                    }
                    self.recycler.snapshots(&mut sm.spent);
                    let rule = sm.rule;
                    out.extend(
                        self.done
                            .drain(..)
                            .map(|events| Detection::Correlated { rule, events }),
                    );
                }
                Machine::Sample(sm) => {
                    sm.expire(p.at.0);
                    let hit = Hit {
                        key,
                        at: p.at,
                        snap: &p.snap,
                        bytes: p.bytes,
                    };
                    let ev = sm.hit(*stage, hit, cap, &mut self.done);
                    self.stats.evicted += ev;
                    let rule = sm.rule;
                    out.extend(
                        self.done
                            .drain(..)
                            .map(|events| Detection::Correlated { rule, events }),
                    );
                }
                _ => {}
            }
        }
        for (m, stage, key) in &p.exits {
            if let Machine::Sequence(sm) = &mut self.machines[*m] {
                let (stage, key) = (*stage, key.clone());
                sm.process_exited(|s| (s == stage).then(|| key.to_vec()));
                self.recycler.snapshots(&mut sm.spent);
            }
        }
        let at = p.at.0;
        self.recycler.put(p);
        self.since_sweep += 1;
        if self.since_sweep >= 1024 {
            self.sweep(at, out);
        }
        self.keep_to_budget();
    }

    /// Drops state past its horizon everywhere.
    fn sweep(&mut self, now: i64, out: &mut Vec<Detection>) {
        self.since_sweep = 0;
        for m in &mut self.machines {
            match m {
                Machine::Sequence(sm) => {
                    sm.expire(now, &mut self.done);
                    self.recycler.snapshots(&mut sm.spent);
                    let rule = sm.rule;
                    out.extend(
                        self.done
                            .drain(..)
                            .map(|events| Detection::Correlated { rule, events }),
                    );
                }
                Machine::Sample(sm) => sm.expire(now),
                Machine::Threshold(tm) => tm.expire(now),
                Machine::NewTerms(_) => {}
            }
        }
    }

    /// Evicts the oldest state of the largest rule until the total fits the budget.
    fn keep_to_budget(&mut self) {
        let budget = self.limits.total_bytes;
        loop {
            let total: usize =
                self.machines.iter().map(Machine::bytes).sum::<usize>() + self.reorder_bytes;
            if total <= budget {
                return;
            }
            let Some(largest) = self
                .machines
                .iter_mut()
                .filter(|m| !matches!(m, Machine::NewTerms(_)))
                .max_by_key(|m| m.bytes())
            else {
                return;
            };
            let evicted = match largest {
                Machine::Sequence(sm) => {
                    let evicted = sm.evict_oldest();
                    self.recycler.snapshots(&mut sm.spent);
                    evicted
                }
                Machine::Sample(sm) => sm.evict_one(),
                Machine::Threshold(tm) => tm.evict_one(),
                Machine::NewTerms(_) => false,
            };
            if !evicted {
                return;
            }
            self.stats.evicted += 1;
        }
    }

    /// A new_terms or threshold rule's query matched.
    fn filter_hit(&mut self, rule: usize, ev: &EcsEvent<'_>, t: i64, out: &mut Vec<Detection>) {
        let m = rule - self.set.event_rules();
        match &mut self.machines[m] {
            Machine::NewTerms(nt) => {
                if !combinations(ev, &nt.fields, &mut self.combos) {
                    return;
                }
                let (new, evicted) = nt.observe(&self.combos, t, self.limits.new_terms_per_rule);
                self.stats.evicted += evicted;
                if new {
                    let terms = nt
                        .fields
                        .iter()
                        .map(|f| values_text(ev, f.field).swap_remove(0))
                        .collect();
                    out.push(Detection::NewTerms { rule, terms });
                }
            }
            Machine::Threshold(tm) => {
                if !key_of(ev, &tm.group_by, &mut self.key) {
                    return;
                }
                let distinct = match tm.cardinality {
                    Some((field, _)) => {
                        if !key_of(ev, &[field], &mut self.distinct) {
                            return;
                        }
                        Some(self.distinct.as_slice())
                    }
                    None => None,
                };
                let (crossed, evicted) = tm.hit(&self.key, distinct, t, self.limits.per_rule);
                self.stats.evicted += evicted;
                if let Some(c) = crossed {
                    let group = tm
                        .group_by
                        .iter()
                        .zip(self.set.programs()[rule].key_fields())
                        .map(|(f, (name, _))| (name.to_owned(), text_of(ev, f.field)))
                        .collect();
                    out.push(Detection::Threshold {
                        rule,
                        group,
                        count: c.count,
                        cardinality: c.distinct,
                    });
                }
                self.keep_to_budget();
            }
            _ => {}
        }
    }

    /// For each sequence whose stage joins on `process.entity_id`: that stage's key of the
    /// exiting process.
    fn exit_keys(&self, ev: &EcsEvent<'_>) -> Vec<(usize, usize, Box<[u8]>)> {
        let mut out = Vec::new();
        let entity = Field::from_name("process.entity_id");
        if entity.is_none() {
            return out;
        }
        let mut buf = Vec::new();
        for (m, machine) in self.machines.iter().enumerate() {
            let Machine::Sequence(sm) = machine else {
                continue;
            };
            for (stage, fields) in sm.stage_keys.iter().enumerate() {
                if fields.iter().any(|f| f.field == entity) && key_of(ev, fields, &mut buf) {
                    out.push((m, stage, buf.as_slice().into()));
                }
            }
        }
        out
    }
}

impl Pending {
    fn push_hit(&mut self, machine: usize, stage: usize, key: &[u8]) {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.hits.push((machine, stage, start..self.keys.len()));
    }
}

/// Whether the event is a process's end (after which no event of it comes).
fn is_process_end(ev: &EcsEvent<'_>) -> bool {
    ev.shape() == crate::ecs::Shape::Exit
}

fn nanos(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// Writes to `out` (cleared first) the hashes of the combinations of the fields' values in
/// `ev` (array fields give one per element; the first [`new_terms::MAX_COMBINATIONS`] in
/// order, the first field varying slowest), hashing the values where they are, without
/// copying them; false when a field is missing.
fn combinations(ev: &EcsEvent<'_>, fields: &[KeyField], out: &mut Vec<u128>) -> bool {
    out.clear();
    let present = |f: &KeyField| match f.field.map_or(Value::Missing, |id| ev.value(id)) {
        Value::Missing => false,
        Value::Args(a) => !a.is_empty(),
        _ => true,
    };
    if !fields.iter().all(present) {
        return false;
    }
    combine(ev, fields, TERM_HASH_OFFSET, out);
    true
}

/// Appends the hashes of every combination of `fields` after the parts hashed into `h`.
fn combine(ev: &EcsEvent<'_>, fields: &[KeyField], h: u128, out: &mut Vec<u128>) {
    let Some((first, rest)) = fields.split_first() else {
        out.push(h);
        return;
    };
    let next = |part: u128, out: &mut Vec<u128>| {
        if out.len() < new_terms::MAX_COMBINATIONS {
            combine(ev, rest, part, out);
        }
    };
    let text = |h: u128, s: &str| hash_part(h, s.len(), s.bytes());
    let mut digits = [0u8; 20];
    match first.field.map_or(Value::Missing, |id| ev.value(id)) {
        Value::Missing => {}
        Value::Str(s) => next(text(h, s), out),
        Value::Shared(s) => next(text(h, &s), out),
        Value::Entity(e) => next(text(h, e.as_str()), out),
        Value::Args(a) => {
            for arg in a.iter() {
                next(text(h, arg), out);
            }
        }
        Value::Joined(a) => {
            let joined = a.joined();
            let spaced = joined.bytes().map(|b| if b == 0 { b' ' } else { b });
            next(hash_part(h, joined.len(), spaced), out);
        }
        Value::Id(n) => next(text(h, decimal(i64::from(n), &mut digits)), out),
        Value::Long(n) => next(text(h, decimal(n, &mut digits)), out),
        Value::Bool(b) => next(text(h, if b { "true" } else { "false" }), out),
    }
}

/// `n` in decimal, as `to_string` writes it, in `buf`.
fn decimal(n: i64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// A field's values as text (one per element of an array field).
fn values_text(ev: &EcsEvent<'_>, field: Option<Field>) -> Vec<String> {
    let Some(f) = field else {
        return Vec::new();
    };
    match ev.value(f) {
        Value::Missing => Vec::new(),
        Value::Str(s) => vec![s.to_owned()],
        Value::Shared(s) => vec![s.to_string()],
        Value::Entity(e) => vec![e.as_str().to_owned()],
        Value::Args(a) => a.iter().map(str::to_owned).collect(),
        Value::Joined(a) => vec![a.iter().collect::<Vec<_>>().join(" ")],
        Value::Id(n) => vec![n.to_string()],
        Value::Long(n) => vec![n.to_string()],
        Value::Bool(b) => vec![b.to_string()],
    }
}

fn text_of(ev: &EcsEvent<'_>, field: Option<Field>) -> String {
    values_text(ev, field).join(" ")
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use nightjar_proto::event::Event;
    use nightjar_proto::{Args, ExecEvent};

    use super::key::KeyField;
    use super::new_terms::{MAX_COMBINATIONS, term_hash};
    use super::{combinations, values_text};
    use crate::ecs::{EcsEvent, HostInfo, NoProcesses};

    /// The hashes as the history in the store was written: every field's values as text,
    /// their combinations in order (the first field varying slowest), cut at
    /// [`MAX_COMBINATIONS`].
    fn reference(ev: &EcsEvent<'_>, fields: &[KeyField]) -> Option<Vec<u128>> {
        let per_field: Vec<Vec<String>> = fields.iter().map(|f| values_text(ev, f.field)).collect();
        if per_field.iter().any(Vec::is_empty) {
            return None;
        }
        let mut combos: Vec<Vec<&[u8]>> = vec![Vec::new()];
        for vals in &per_field {
            combos = combos
                .iter()
                .flat_map(|c| {
                    vals.iter().map(move |v| {
                        let mut c = c.clone();
                        c.push(v.as_bytes());
                        c
                    })
                })
                .take(MAX_COMBINATIONS)
                .collect();
        }
        Some(combos.iter().map(|c| term_hash(c)).collect())
    }

    /// Hashing values where they are gives the very hashes of their text.
    #[test]
    fn combinations_hash_as_the_stored_history_does() {
        let host = HostInfo::new("h", "host-1");
        let mut exec = ExecEvent::default();
        exec.target.pid = 4242;
        exec.target.euid = Some(501);
        exec.target.executable = Cow::Borrowed("/usr/bin/curl");
        exec.target.args = Args::from_strs(["curl", "-s", "", "http://x/é"]).0;
        let many: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        let mut wide = exec.clone();
        wide.target.args = Args::from_strs(many.iter().map(String::as_str)).0;
        let mut bare = exec.clone();
        bare.target.args = Args::default();
        let field_sets: &[&[&str]] = &[
            &["host.id", "process.executable"],
            &["process.args"],
            &["user.id", "process.args", "process.command_line"],
            &["process.args", "process.args"],
            &["process.pid", "process.name"],
            &["process.executable", "process.parent.name"],
        ];
        for exec in [exec, wide, bare] {
            let ev = Event::Exec(exec);
            let view = EcsEvent::of(&ev, &NoProcesses, &host);
            for names in field_sets {
                let fields: Vec<KeyField> = names.iter().map(|n| KeyField::new(n, false)).collect();
                let mut got = Vec::new();
                let present = combinations(&view, &fields, &mut got);
                let want = reference(&view, &fields);
                assert_eq!(present.then_some(got), want, "{names:?}");
            }
        }
    }
}
