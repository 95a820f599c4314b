//! The rule set the reader runs, and how a new one reaches it.
//!
//! A new policy is verified and compiled on the fleet thread, then published here: the
//! slot's epoch counter moves on. The reader looks at the epoch once per batch of records,
//! before the first of them, and takes the new set only there: every event is evaluated,
//! excepted and turned into alerts under one set, never half under the old and half under
//! the new one. In steady state the reader pays one relaxed atomic load per batch (up to
//! 1,024 events), nothing per event: between swaps it reads its own `Arc` without touching
//! the reference count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use nightjar_rules::RuleSet;

/// A compiled rule set and the policy it came from.
#[derive(Debug)]
pub struct ActiveRules {
    /// Shared with the rule engine, which keeps the stateful rules' state for this set.
    pub rules: Arc<RuleSet>,
    /// The policy version the rules came from; 0 for the local `[rules]` configuration.
    pub policy_version: u64,
}

/// Where the fleet thread leaves a new rule set for the reader.
#[derive(Debug)]
pub struct RulesSlot {
    /// Moves on with every publication (after `next` holds the new set).
    epoch: AtomicU64,
    next: Mutex<Arc<ActiveRules>>,
}

impl RulesSlot {
    pub fn new(initial: ActiveRules) -> RulesSlot {
        RulesSlot {
            epoch: AtomicU64::new(0),
            next: Mutex::new(Arc::new(initial)),
        }
    }

    /// Hands `rules` to the reader, which takes them before its next batch.
    pub fn publish(&self, rules: ActiveRules) {
        *self.next.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// The publication count; cheap enough to read once per batch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The newest set and the epoch it belongs to.
    pub fn latest(&self) -> (u64, Arc<ActiveRules>) {
        let guard = self.next.lock().unwrap_or_else(|p| p.into_inner());
        // Read under the lock: `publish` bumps the epoch after replacing the set, so this
        // epoch is at most the set's (a later look sees the bump and takes the same set
        // again, harmlessly).
        (self.epoch.load(Ordering::Acquire), Arc::clone(&guard))
    }
}
