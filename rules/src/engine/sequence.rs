//! EQL sequences as Elasticsearch runs them: a state machine per join key, events taken in
//! timestamp order.
//!
//! Each positive stage is a state. A partial match that has completed stage `p` waits in
//! slot `p` of its key until an event of stage `p + 1` with the same key comes, strictly
//! after its last event and within `maxspan` of its first; only one partial waits per
//! state and key, so a newer one replaces the older (what Elasticsearch's "only one pending
//! sequence per state" means). An `until` event of the key drops every partial of the key.
//! A missing event (`![...]`) between positive stages `p` and `q` drops the partial waiting
//! in slot `p`; a leading one (before the first positive stage) forbids starting a partial
//! within `maxspan` after it; a trailing one holds a completed match until `maxspan` after
//! its first event has passed, and drops it if the missing event comes before.
//!
//! State is bounded: partials older than `maxspan` (or the rule's look-back without one)
//! are dropped as time passes, and past the per-rule cap the oldest is evicted (counted).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::Hit;
use super::key::{HeldKey, KeyField};
use crate::ecs::EventSnapshot;
use crate::query::ast::Sequence;
use crate::query::typing::TypedPred;

/// Bytes a partial costs besides its events' snapshots.
const PARTIAL_OVERHEAD: usize = 96;

/// Event lists of dropped partials kept for reuse.
const SPARE_LISTS: usize = 64;

/// A partial match.
#[derive(Debug)]
struct Partial {
    id: u64,
    start: i64,
    /// (time, capture order) of its last event.
    last: (i64, u64),
    events: Vec<Arc<EventSnapshot>>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct KeyState {
    /// `slots[p]`: the partial that completed positive stage `p`, waiting for `p + 1`.
    slots: Vec<Option<Partial>>,
    /// The last leading missing event: (time, marker id).
    leading: Option<(i64, u64)>,
}

impl KeyState {
    fn is_empty(&self) -> bool {
        self.leading.is_none() && self.slots.iter().all(Option::is_none)
    }
}

/// What a stage hit did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Partials evicted to keep to the per-rule cap.
    pub(super) evicted: u64,
}

/// One sequence rule's state.
#[derive(Debug)]
pub(super) struct SequenceMachine {
    pub(super) rule: usize,
    /// Join fields of each stage (the sequence's `by`, then the stage's own).
    pub(super) stage_keys: Vec<Vec<KeyField>>,
    pub(super) until_keys: Option<Vec<KeyField>>,
    missing: Vec<bool>,
    /// Stage number of each positive stage.
    positive: Vec<usize>,
    /// Positive index of each stage (`None` for a missing stage).
    pos_of: Vec<Option<usize>>,
    maxspan: Option<i64>,
    /// How old a partial may get: `maxspan`, else the rule's look-back.
    horizon: i64,
    /// The last stages are missing events.
    trailing_missing: bool,
    keys: HashMap<HeldKey, KeyState>,
    /// Partials and leading markers in the order they were made (their start times only
    /// grow): the oldest is at the front. Entries whose partial is gone are skipped.
    fifo: VecDeque<(i64, HeldKey, u64)>,
    /// Completed matches waiting for their trailing missing window: (deadline, key, match).
    trailing: VecDeque<(i64, HeldKey, Partial)>,
    next_id: u64,
    /// Events of dropped partials, for the engine to recycle (it drains this after every
    /// call that can drop one).
    pub(super) spent: Vec<Arc<EventSnapshot>>,
    /// Emptied event lists of dropped partials, reused by new ones (at most
    /// [`SPARE_LISTS`]).
    spare_lists: Vec<Vec<Arc<EventSnapshot>>>,
    /// Partials and markers held.
    pub(super) held: usize,
    pub(super) bytes: usize,
}

impl SequenceMachine {
    pub(super) fn new(
        rule: usize,
        seq: &Sequence<crate::query::ast::Query<TypedPred>>,
        lookback_ns: i64,
    ) -> SequenceMachine {
        let by: Vec<KeyField> = seq
            .by
            .iter()
            .map(|k| KeyField::new(&k.field, k.optional))
            .collect();
        let keys_of = |st: &crate::query::ast::Stage<_>| -> Vec<KeyField> {
            by.iter()
                .copied()
                .chain(st.keys.iter().map(|k| KeyField::new(&k.field, k.optional)))
                .collect()
        };
        let stage_keys: Vec<Vec<KeyField>> = seq.stages.iter().map(keys_of).collect();
        let until_keys = seq.until.as_ref().map(keys_of);
        let missing: Vec<bool> = seq.stages.iter().map(|s| s.missing).collect();
        let positive: Vec<usize> = (0..missing.len()).filter(|&i| !missing[i]).collect();
        let mut pos_of = vec![None; missing.len()];
        for (p, &s) in positive.iter().enumerate() {
            pos_of[s] = Some(p);
        }
        let maxspan = seq
            .maxspan
            .map(|d| d.as_nanos().min(i64::MAX as u128) as i64);
        let last_positive = positive.last().copied().unwrap_or(0);
        SequenceMachine {
            rule,
            stage_keys,
            until_keys,
            trailing_missing: missing.len() > last_positive + 1,
            missing,
            positive,
            pos_of,
            maxspan,
            horizon: maxspan.unwrap_or(lookback_ns).max(0),
            keys: HashMap::new(),
            fifo: VecDeque::new(),
            trailing: VecDeque::new(),
            next_id: 0,
            spent: Vec::new(),
            spare_lists: Vec::new(),
            held: 0,
            bytes: 0,
        }
    }

    fn within_maxspan(&self, start: i64, t: i64) -> bool {
        self.maxspan.is_none_or(|m| t.saturating_sub(start) <= m)
    }

    fn slots_len(&self) -> usize {
        self.positive.len().saturating_sub(1)
    }

    /// An event of stage `stage`; completed matches go to `done`.
    pub(super) fn hit(
        &mut self,
        stage: usize,
        hit: Hit<'_>,
        cap: usize,
        done: &mut Vec<Vec<Arc<EventSnapshot>>>,
    ) -> Outcome {
        let Hit {
            key,
            at,
            snap,
            bytes: snap_bytes,
        } = hit;
        let mut outcome = Outcome::default();
        let (t, _) = at;
        match self.pos_of.get(stage).copied().flatten() {
            None => self.missing_hit(stage, key, at),
            Some(0) => {
                if let Some(state) = self.keys.get(key)
                    && let Some((lt, _)) = state.leading
                    && lt <= t
                    && self.within_maxspan(lt, t)
                {
                    // A leading missing event came within maxspan before: no match here.
                    return outcome;
                }
                let partial = Partial {
                    id: self.take_id(),
                    start: t,
                    last: at,
                    events: self.event_list(snap),
                    bytes: snap_bytes + PARTIAL_OVERHEAD,
                };
                if self.positive.len() == 1 {
                    self.complete(key, partial, done);
                    return outcome;
                }
                while self.held >= cap && self.evict_oldest() {
                    outcome.evicted += 1;
                }
                self.place(key, 0, partial, true);
            }
            Some(p) => {
                let Some(state) = self.keys.get_mut(key) else {
                    return outcome;
                };
                let Some(prev) = state.slots.get_mut(p - 1) else {
                    return outcome;
                };
                let Some(partial) = prev.take_if(|q| q.last < at) else {
                    return outcome;
                };
                if !self.within_maxspan(partial.start, t) {
                    self.discard(partial);
                    self.drop_key_if_empty(key);
                    return outcome;
                }
                let mut partial = partial;
                partial.events.push(snap.clone());
                partial.last = at;
                partial.bytes += snap_bytes;
                self.bytes += snap_bytes;
                if p + 1 == self.positive.len() {
                    self.held -= 1;
                    self.bytes -= partial.bytes;
                    self.drop_key_if_empty(key);
                    self.complete(key, partial, done);
                } else {
                    self.place(key, p, partial, false);
                }
            }
        }
        outcome
    }

    /// An `until` event: every partial of the key is dropped.
    pub(super) fn until(&mut self, key: &[u8], at: (i64, u64)) {
        let Some(state) = self.keys.get_mut(key) else {
            return;
        };
        let mut gone = Vec::new();
        for slot in state.slots.iter_mut() {
            if let Some(p) = slot.take_if(|p| p.last < at) {
                gone.push(p);
            }
        }
        for p in gone {
            self.discard(p);
        }
        self.drop_key_if_empty(key);
    }

    fn missing_hit(&mut self, stage: usize, key: &[u8], at: (i64, u64)) {
        let (t, _) = at;
        let before = (0..stage).rev().find(|&s| !self.missing[s]);
        match before {
            None => {
                // A leading missing event: remembered for maxspan.
                let id = self.take_id();
                let key: HeldKey = match self.keys.get_key_value(key) {
                    Some((k, _)) => k.clone(),
                    None => HeldKey::new(key),
                };
                let state = self.keys.entry(key.clone()).or_default();
                if state.leading.is_none() {
                    self.held += 1;
                    self.bytes += PARTIAL_OVERHEAD;
                }
                state.leading = Some((t, id));
                self.fifo.push_back((t, key, id));
            }
            Some(s) if s == *self.positive.last().unwrap_or(&0) && self.trailing_missing => {
                // Trailing: a held match whose window this event falls in is dropped.
                let maxspan = self.maxspan.unwrap_or(i64::MAX);
                self.trailing.retain(|(_, k, p)| {
                    !(k.as_bytes() == key && p.last < at && t.saturating_sub(p.start) <= maxspan)
                });
            }
            Some(s) => {
                let Some(p) = self.pos_of[s] else { return };
                let Some(state) = self.keys.get_mut(key) else {
                    return;
                };
                if let Some(slot) = state.slots.get_mut(p)
                    && let Some(gone) = slot.take_if(|q| q.last < at)
                {
                    self.discard(gone);
                    self.drop_key_if_empty(key);
                }
            }
        }
    }

    fn complete(&mut self, key: &[u8], partial: Partial, done: &mut Vec<Vec<Arc<EventSnapshot>>>) {
        if self.trailing_missing {
            let deadline = partial.start.saturating_add(self.maxspan.unwrap_or(0));
            let key: HeldKey = HeldKey::new(key);
            self.held += 1;
            self.bytes += partial.bytes;
            self.trailing.push_back((deadline, key, partial));
        } else {
            done.push(partial.events);
        }
    }

    /// Puts `partial` in slot `p` of `key`, replacing (and forgetting) the one there.
    fn place(&mut self, key: &[u8], p: usize, partial: Partial, new: bool) {
        let slots_len = self.slots_len();
        let key_arc: HeldKey = match self.keys.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => HeldKey::new(key),
        };
        if new {
            self.held += 1;
            self.bytes += partial.bytes;
            self.fifo
                .push_back((partial.start, key_arc.clone(), partial.id));
        }
        let state = self.keys.entry(key_arc).or_default();
        if state.slots.len() < slots_len {
            state.slots.resize_with(slots_len, || None);
        }
        if let Some(old) = state.slots[p].replace(partial) {
            self.discard(old);
        }
    }

    fn forget(&mut self, p: &Partial) {
        self.held -= 1;
        self.bytes -= p.bytes;
    }

    /// A partial is dropped: forgotten, its events handed to the engine for recycling.
    fn discard(&mut self, p: Partial) {
        self.forget(&p);
        let mut events = p.events;
        self.spent.append(&mut events);
        if self.spare_lists.len() < SPARE_LISTS {
            self.spare_lists.push(events);
        }
    }

    /// A new partial's event list, holding `first`.
    fn event_list(&mut self, first: &Arc<EventSnapshot>) -> Vec<Arc<EventSnapshot>> {
        let mut events = self.spare_lists.pop().unwrap_or_default();
        events.push(first.clone());
        events
    }

    fn drop_key_if_empty(&mut self, key: &[u8]) {
        if self.keys.get(key).is_some_and(KeyState::is_empty) {
            self.keys.remove(key);
        }
    }

    fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Drops the oldest partial or marker; false when none is left.
    pub(super) fn evict_oldest(&mut self) -> bool {
        while let Some((_, key, id)) = self.fifo.pop_front() {
            if self.remove_id(key.as_bytes(), id) {
                return true;
            }
        }
        // Only held trailing matches are left: the oldest goes.
        if let Some((_, _, p)) = self.trailing.pop_front() {
            self.discard(p);
            return true;
        }
        false
    }

    /// Removes the partial or marker `id` of `key`; false if it is already gone.
    fn remove_id(&mut self, key: &[u8], id: u64) -> bool {
        let Some(state) = self.keys.get_mut(key) else {
            return false;
        };
        if state.leading.is_some_and(|(_, i)| i == id) {
            state.leading = None;
            self.held -= 1;
            self.bytes -= PARTIAL_OVERHEAD;
        } else {
            let Some(p) = state
                .slots
                .iter_mut()
                .find_map(|slot| slot.take_if(|p| p.id == id))
            else {
                return false;
            };
            self.discard(p);
        }
        self.drop_key_if_empty(key);
        true
    }

    /// Time has reached `now`: partials past their horizon are dropped, and held matches
    /// whose trailing window has passed are complete.
    pub(super) fn expire(&mut self, now: i64, done: &mut Vec<Vec<Arc<EventSnapshot>>>) {
        while let Some((start, _, _)) = self.fifo.front() {
            if now.saturating_sub(*start) <= self.horizon {
                break;
            }
            if let Some((_, key, id)) = self.fifo.pop_front() {
                self.remove_id(key.as_bytes(), id);
            }
        }
        while let Some((deadline, _, _)) = self.trailing.front() {
            if *deadline >= now {
                break;
            }
            if let Some((_, _, p)) = self.trailing.pop_front() {
                self.forget(&p);
                done.push(p.events);
            }
        }
    }

    /// Every held match is complete (the end of the input: no trailing missing event can
    /// come any more).
    pub(super) fn finish(&mut self, done: &mut Vec<Vec<Arc<EventSnapshot>>>) {
        while let Some((_, _, p)) = self.trailing.pop_front() {
            self.forget(&p);
            done.push(p.events);
        }
    }

    /// Drops the partials of `key` waiting for a stage whose join is on the exiting
    /// process: no event of it can come any more.
    pub(super) fn process_exited(&mut self, key_for_stage: impl Fn(usize) -> Option<Vec<u8>>) {
        for p in 0..self.slots_len() {
            let next = self.positive[p + 1];
            let Some(key) = key_for_stage(next) else {
                continue;
            };
            if let Some(state) = self.keys.get_mut(key.as_slice())
                && let Some(gone) = state.slots.get_mut(p).and_then(Option::take)
            {
                self.discard(gone);
                self.drop_key_if_empty(&key);
            }
        }
    }
}
