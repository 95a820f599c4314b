//! new_terms on the host: a combination of the rule's field values is new when this host
//! did not see it during the history window before the event. History survives restarts
//! through a [`TermStore`] (the agent's store); until a whole window has been observed the
//! rule is *learning* and raises nothing, so an install does not flood.

use std::collections::HashMap;

use super::key::KeyField;

/// Most value combinations one event is checked for (array fields multiply).
pub const MAX_COMBINATIONS: usize = 64;

/// Where first-seen history is kept between runs.
pub trait TermStore {
    /// The history of a rule: when it was first observed (event time, ns) and each term's
    /// hash with the time it was last seen.
    fn load(&mut self, rule: &str) -> (Option<i64>, Vec<(u128, i64)>);
    /// Records terms seen (new or seen again) and that the rule was first observed at
    /// `observed_since`; `removed` are terms forgotten.
    fn save(&mut self, rule: &str, observed_since: i64, seen: &[(u128, i64)], removed: &[u128]);
}

/// A store that keeps nothing (scans of recorded events, tests).
#[derive(Debug, Default)]
pub struct NoTermStore;

impl TermStore for NoTermStore {
    fn load(&mut self, _rule: &str) -> (Option<i64>, Vec<(u128, i64)>) {
        (None, Vec::new())
    }
    fn save(&mut self, _: &str, _: i64, _: &[(u128, i64)], _: &[u128]) {}
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    last: i64,
    /// `last` as last written to the store.
    saved: i64,
}

#[derive(Debug)]
pub(super) struct NewTermsMachine {
    /// The store's name for this rule's history: rule id and fields, so a new version with
    /// other fields starts afresh.
    pub(super) store_key: String,
    pub(super) fields: Vec<KeyField>,
    history: i64,
    terms: HashMap<u128, Seen>,
    observed_since: Option<i64>,
    removed: Vec<u128>,
    dirty: bool,
    pub(super) bytes: usize,
}

/// Bytes one remembered term costs.
const TERM_BYTES: usize = 48;

impl NewTermsMachine {
    pub(super) fn new(rule_id: &str, fields: &[String], history_ns: i64) -> Self {
        NewTermsMachine {
            store_key: format!("{rule_id}\u{1f}{}", fields.join("\u{1f}")),
            fields: fields.iter().map(|f| KeyField::new(f, false)).collect(),
            history: history_ns.max(1),
            terms: HashMap::new(),
            observed_since: None,
            removed: Vec::new(),
            dirty: false,
            bytes: 0,
        }
    }

    pub(super) fn held(&self) -> usize {
        self.terms.len()
    }

    pub(super) fn load(&mut self, store: &mut dyn TermStore) {
        let (since, terms) = store.load(&self.store_key);
        self.observed_since = since;
        self.terms = terms
            .into_iter()
            .map(|(h, last)| (h, Seen { last, saved: last }))
            .collect();
        self.bytes = self.terms.len() * TERM_BYTES;
    }

    pub(super) fn save(&mut self, store: &mut dyn TermStore) {
        let Some(since) = self.observed_since else {
            return;
        };
        if !self.dirty && self.removed.is_empty() {
            return;
        }
        // A term seen again is rewritten only once its time moved a sixteenth of the
        // window: the store is not written on every event.
        let step = self.history / 16;
        let mut seen = Vec::new();
        for (h, s) in self.terms.iter_mut() {
            if s.last.saturating_sub(s.saved) >= step || s.saved == i64::MIN {
                s.saved = s.last;
                seen.push((*h, s.last));
            }
        }
        store.save(&self.store_key, since, &seen, &self.removed);
        self.removed.clear();
        self.dirty = false;
    }

    /// Whether the rule is still learning at `t`: it has not observed a whole window yet.
    pub(super) fn learning(&self, t: i64) -> bool {
        self.observed_since
            .is_none_or(|since| t.saturating_sub(since) < self.history)
    }

    /// The event at `t` carries the combinations `hashes`; true when one is new (and the
    /// rule is not learning). Past `cap` terms the least recently seen are forgotten
    /// (counted in the return's second value).
    pub(super) fn observe(&mut self, hashes: &[u128], t: i64, cap: usize) -> (bool, u64) {
        if self.observed_since.is_none() {
            self.observed_since = Some(t);
            self.dirty = true;
        }
        let learning = self.learning(t);
        let mut new = false;
        for h in hashes {
            match self.terms.get_mut(h) {
                Some(s) if t.saturating_sub(s.last) <= self.history => {
                    s.last = s.last.max(t);
                }
                Some(s) => {
                    new = true;
                    s.last = t;
                }
                None => {
                    new = true;
                    self.terms.insert(
                        *h,
                        Seen {
                            last: t,
                            saved: i64::MIN,
                        },
                    );
                    self.bytes += TERM_BYTES;
                }
            }
            self.dirty = true;
        }
        let mut evicted = 0;
        if self.terms.len() > cap {
            evicted = self.forget(t, cap);
        }
        (new && !learning, evicted)
    }

    /// Drops terms outside the window, then the least recently seen down to 90% of `cap`.
    fn forget(&mut self, now: i64, cap: usize) -> u64 {
        let before = self.terms.len();
        let history = self.history;
        let mut removed = Vec::new();
        self.terms.retain(|h, s| {
            let keep = now.saturating_sub(s.last) <= history;
            if !keep {
                removed.push(*h);
            }
            keep
        });
        let aged_out = before - self.terms.len();
        let target = cap - cap / 10;
        let mut evicted = 0;
        if self.terms.len() > target {
            let mut by_age: Vec<(i64, u128)> =
                self.terms.iter().map(|(h, s)| (s.last, *h)).collect();
            by_age.sort_unstable();
            for (_, h) in by_age.into_iter().take(self.terms.len() - target) {
                self.terms.remove(&h);
                removed.push(h);
                evicted += 1;
            }
        }
        let _ = aged_out;
        self.removed.extend(removed);
        self.bytes = self.terms.len() * TERM_BYTES;
        evicted
    }
}

/// 128-bit FNV-1a: a fixed hash, so stored history means the same after an upgrade.
#[cfg(test)]
pub(super) fn term_hash(parts: &[&[u8]]) -> u128 {
    parts.iter().fold(TERM_HASH_OFFSET, |h, p| {
        hash_part(h, p.len(), p.iter().copied())
    })
}

/// [`term_hash`]'s start.
pub(super) const TERM_HASH_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;

/// [`term_hash`] of the parts so far (`h`) and one more part of `len` bytes: the history
/// in the store holds these hashes, so the function never changes.
pub(super) fn hash_part(mut h: u128, len: usize, bytes: impl Iterator<Item = u8>) -> u128 {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    for b in (len as u32).to_le_bytes().into_iter().chain(bytes) {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    h
}
