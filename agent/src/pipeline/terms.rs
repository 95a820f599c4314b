//! new_terms history in the store: a sled tree of its own (`new_terms`), beside the alert
//! index, so the history survives restarts without touching the alerts' bookkeeping.
//!
//! Keys: `s\0<rule>` -> when the rule was first observed, `t\0<rule>\0<term hash>` -> when
//! the term was last seen (big-endian i64 nanoseconds; the hash is 16 bytes). The tree is
//! outside data like any file in the state directory: an entry that does not parse is
//! skipped and logged, never trusted.

use nightjar_rules::engine::TermStore;

use crate::store::{Store, StoreError};

/// The tree's name in the store's database.
pub const TREE: &str = "new_terms";

pub struct SledTerms {
    tree: sled::Tree,
}

impl SledTerms {
    pub fn open(store: &Store) -> Result<SledTerms, StoreError> {
        Ok(SledTerms {
            tree: store.aux_tree(TREE)?,
        })
    }
}

fn since_key(rule: &str) -> Vec<u8> {
    let mut k = b"s\0".to_vec();
    k.extend_from_slice(rule.as_bytes());
    k
}

fn term_prefix(rule: &str) -> Vec<u8> {
    let mut k = b"t\0".to_vec();
    k.extend_from_slice(rule.as_bytes());
    k.push(0);
    k
}

fn time_of(v: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(v.try_into().ok()?))
}

impl TermStore for SledTerms {
    fn load(&mut self, rule: &str) -> (Option<i64>, Vec<(u128, i64)>) {
        let since = match self.tree.get(since_key(rule)) {
            Ok(v) => v.and_then(|v| time_of(&v)),
            Err(e) => {
                tracing::warn!(rule, "new_terms history unreadable (starting afresh): {e}");
                return (None, Vec::new());
            }
        };
        let prefix = term_prefix(rule);
        let mut terms = Vec::new();
        let mut bad = 0u64;
        for item in self.tree.scan_prefix(&prefix) {
            let Ok((k, v)) = item else {
                bad += 1;
                continue;
            };
            let parsed = (k.len() == prefix.len() + 16)
                .then(|| k[prefix.len()..].try_into().ok())
                .flatten()
                .map(u128::from_be_bytes)
                .zip(time_of(&v));
            match parsed {
                Some(t) => terms.push(t),
                None if k.len() != prefix.len() + 16 => {}
                None => bad += 1,
            }
        }
        if bad > 0 {
            tracing::warn!(rule, bad, "new_terms history: entries skipped");
        }
        (since, terms)
    }

    fn save(&mut self, rule: &str, since: i64, seen: &[(u128, i64)], removed: &[u128]) {
        let mut batch = sled::Batch::default();
        batch.insert(since_key(rule), &since.to_be_bytes());
        let prefix = term_prefix(rule);
        let key = |h: &u128| {
            let mut k = prefix.clone();
            k.extend_from_slice(&h.to_be_bytes());
            k
        };
        for (h, t) in seen {
            batch.insert(key(h), &t.to_be_bytes());
        }
        for h in removed {
            batch.remove(key(h));
        }
        if let Err(e) = self.tree.apply_batch(batch) {
            tracing::warn!(rule, "new_terms history not saved (kept in memory): {e}");
        }
    }
}
