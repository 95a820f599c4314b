//! EQL samples: per join key, one event of each item in any order; once every item has
//! one, the sample is complete. As Elasticsearch returns at most one sample per key (its
//! default `max_samples_per_key`), a key that made a sample makes no other until the rule's
//! look-back has passed since its first event.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::Hit;
use super::key::{HeldKey, KeyField};
use crate::ecs::EventSnapshot;
use crate::query::ast::{Query, Sample};
use crate::query::typing::TypedPred;

const KEY_OVERHEAD: usize = 96;

#[derive(Debug)]
struct KeyState {
    events: Vec<Option<Arc<EventSnapshot>>>,
    /// A sample was made: nothing more until `first + horizon`.
    done: bool,
    bytes: usize,
}

#[derive(Debug)]
pub(super) struct SampleMachine {
    pub(super) rule: usize,
    pub(super) stage_keys: Vec<Vec<KeyField>>,
    horizon: i64,
    keys: HashMap<HeldKey, KeyState>,
    fifo: VecDeque<(i64, HeldKey)>,
    pub(super) held: usize,
    pub(super) bytes: usize,
}

impl SampleMachine {
    pub(super) fn new(rule: usize, s: &Sample<Query<TypedPred>>, lookback_ns: i64) -> Self {
        let by: Vec<KeyField> =
            s.by.iter()
                .map(|k| KeyField::new(&k.field, k.optional))
                .collect();
        SampleMachine {
            rule,
            stage_keys: s
                .stages
                .iter()
                .map(|st| {
                    by.iter()
                        .copied()
                        .chain(st.keys.iter().map(|k| KeyField::new(&k.field, k.optional)))
                        .collect()
                })
                .collect(),
            horizon: lookback_ns.max(0),
            keys: HashMap::new(),
            fifo: VecDeque::new(),
            held: 0,
            bytes: 0,
        }
    }

    /// An event of item `stage`; returns evictions.
    pub(super) fn hit(
        &mut self,
        stage: usize,
        hit: Hit<'_>,
        cap: usize,
        done: &mut Vec<Vec<Arc<EventSnapshot>>>,
    ) -> u64 {
        let Hit {
            key,
            at: (t, _),
            snap,
            bytes: snap_bytes,
        } = hit;
        let mut evicted = 0;
        if !self.keys.contains_key(key) {
            while self.held >= cap && self.evict_one() {
                evicted += 1;
            }
            let k: HeldKey = HeldKey::new(key);
            self.keys.insert(
                k.clone(),
                KeyState {
                    events: vec![None; self.stage_keys.len()],
                    done: false,
                    bytes: KEY_OVERHEAD,
                },
            );
            self.fifo.push_back((t, k));
            self.held += 1;
            self.bytes += KEY_OVERHEAD;
        }
        let Some(state) = self.keys.get_mut(key) else {
            return evicted;
        };
        if state.done || state.events[stage].is_some() {
            return evicted;
        }
        state.events[stage] = Some(snap.clone());
        state.bytes += snap_bytes;
        self.bytes += snap_bytes;
        if state.events.iter().all(Option::is_some) {
            let events: Vec<_> = state.events.iter_mut().filter_map(Option::take).collect();
            self.bytes -= state.bytes - KEY_OVERHEAD;
            state.bytes = KEY_OVERHEAD;
            state.done = true;
            done.push(events);
        }
        evicted
    }

    pub(super) fn evict_one(&mut self) -> bool {
        match self.fifo.pop_front() {
            Some((_, key)) => {
                if let Some(s) = self.keys.remove(&key) {
                    self.held -= 1;
                    self.bytes -= s.bytes;
                }
                true
            }
            None => false,
        }
    }

    /// Keys whose first event is past the look-back are forgotten.
    pub(super) fn expire(&mut self, now: i64) {
        while let Some((first, _)) = self.fifo.front() {
            if now.saturating_sub(*first) <= self.horizon {
                break;
            }
            self.evict_one();
        }
    }
}
