//! Threshold rules on the host: per combination of `group_by` values, the events matching
//! the query within the rule's look-back; an alert when there are `value` of them (and, with
//! `cardinality`, at least that many distinct values of its field among them), at most one
//! per group per window.

use std::collections::{HashMap, VecDeque};

use super::key::{HeldKey, KeyField};

const GROUP_OVERHEAD: usize = 128;

#[derive(Debug, Default)]
struct Group {
    /// Times of the last events, at most `value` of them (only whether `value` fall in the
    /// window matters).
    times: VecDeque<i64>,
    /// Distinct values of the cardinality field and when each was last seen, at most the
    /// cardinality threshold of them.
    distinct: HashMap<Box<[u8]>, i64>,
    /// When the group last alerted.
    alerted: Option<i64>,
    first: i64,
    bytes: usize,
}

/// What crossed a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Crossed {
    pub(super) count: u64,
    pub(super) distinct: Option<u64>,
}

#[derive(Debug)]
pub(super) struct ThresholdMachine {
    pub(super) group_by: Vec<KeyField>,
    pub(super) cardinality: Option<(KeyField, u64)>,
    value: u64,
    window: i64,
    groups: HashMap<HeldKey, Group>,
    fifo: VecDeque<(i64, HeldKey)>,
    pub(super) held: usize,
    pub(super) bytes: usize,
}

impl ThresholdMachine {
    pub(super) fn new(
        group_by: &[String],
        value: u64,
        cardinality: Option<&(String, u64)>,
        window_ns: i64,
    ) -> Self {
        ThresholdMachine {
            group_by: group_by.iter().map(|f| KeyField::new(f, false)).collect(),
            cardinality: cardinality.map(|(f, n)| (KeyField::new(f, false), *n)),
            value,
            window: window_ns.max(0),
            groups: HashMap::new(),
            fifo: VecDeque::new(),
            held: 0,
            bytes: 0,
        }
    }

    /// An event of group `key` (with `distinct` the cardinality field's value, when the rule
    /// has one) at `t`; returns what crossed the threshold, if this event did, and
    /// evictions.
    pub(super) fn hit(
        &mut self,
        key: &[u8],
        distinct: Option<&[u8]>,
        t: i64,
        cap: usize,
    ) -> (Option<Crossed>, u64) {
        let mut evicted = 0;
        if !self.groups.contains_key(key) {
            while self.held >= cap && self.evict_one() {
                evicted += 1;
            }
            let k: HeldKey = HeldKey::new(key);
            self.groups.insert(
                k.clone(),
                Group {
                    first: t,
                    bytes: GROUP_OVERHEAD + key.len(),
                    ..Group::default()
                },
            );
            self.fifo.push_back((t, k));
            self.held += 1;
            self.bytes += GROUP_OVERHEAD + key.len();
        }
        let Some(g) = self.groups.get_mut(key) else {
            return (None, evicted);
        };
        let from = t.saturating_sub(self.window);
        g.times.push_back(t);
        while g.times.len() as u64 > self.value || g.times.front().is_some_and(|&x| x < from) {
            g.times.pop_front();
        }
        let mut distinct_now = None;
        if let (Some((_, want)), Some(v)) = (self.cardinality, distinct) {
            match g.distinct.get_mut(v) {
                Some(seen) => *seen = t,
                None => {
                    g.distinct.insert(v.into(), t);
                }
            }
            g.distinct.retain(|_, seen| *seen >= from);
            while g.distinct.len() as u64 > want {
                let oldest = g
                    .distinct
                    .iter()
                    .min_by_key(|(_, s)| **s)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => g.distinct.remove(&k),
                    None => break,
                };
            }
            let now_bytes =
                GROUP_OVERHEAD + key.len() + g.distinct.keys().map(|k| k.len() + 32).sum::<usize>();
            self.bytes = self.bytes - g.bytes + now_bytes;
            g.bytes = now_bytes;
            distinct_now = Some(g.distinct.len() as u64);
        }
        let count_ok = g.times.len() as u64 >= self.value;
        let card_ok = match (self.cardinality, distinct_now) {
            (Some((_, want)), Some(n)) => n >= want,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let quiet = g.alerted.is_none_or(|a| t.saturating_sub(a) > self.window);
        if count_ok && card_ok && quiet {
            g.alerted = Some(t);
            return (
                Some(Crossed {
                    count: g.times.len() as u64,
                    distinct: distinct_now,
                }),
                evicted,
            );
        }
        (None, evicted)
    }

    pub(super) fn evict_one(&mut self) -> bool {
        match self.fifo.pop_front() {
            Some((_, key)) => {
                if let Some(g) = self.groups.remove(&key) {
                    self.held -= 1;
                    self.bytes -= g.bytes;
                }
                true
            }
            None => false,
        }
    }

    /// Groups that saw no event within the window, and did not alert within it, go.
    pub(super) fn expire(&mut self, now: i64) {
        let window = self.window;
        while let Some((first, key)) = self.fifo.front() {
            if now.saturating_sub(*first) <= window {
                break;
            }
            let live = self.groups.get(key).is_some_and(|g| {
                g.times
                    .back()
                    .is_some_and(|&t| now.saturating_sub(t) <= window)
                    || g.alerted.is_some_and(|a| now.saturating_sub(a) <= window)
            });
            let Some((_, key)) = self.fifo.pop_front() else {
                break;
            };
            if live {
                // Still in use: to the back, with a fresh age.
                if let Some(g) = self.groups.get_mut(&key) {
                    g.first = now;
                }
                self.fifo.push_back((now, key));
            } else if let Some(g) = self.groups.remove(&key) {
                self.held -= 1;
                self.bytes -= g.bytes;
            }
        }
    }
}
