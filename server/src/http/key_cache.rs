//! Pinned host keys, cached for a few seconds so a request does not cost a database round
//! trip to find its key.
//!
//! Safe across replicas and resets: a cached key only ever admits a request whose key id it
//! matches (another key id goes to the database), and everything a request changes is
//! checked again inside its transaction against the host's current epoch, so a key unpinned
//! by `hosts reset` on another replica changes nothing even while it is still cached here.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nightjar_proto::verify::AlertKey;

/// How long a key is trusted from memory.
const TTL: Duration = Duration::from_secs(10);
/// Entries kept; past this the cache starts over (a fleet larger than this costs a round trip
/// per request for the overflow, not memory).
const MAX_ENTRIES: usize = 200_000;

/// A pinned key and the epoch it was pinned in.
#[derive(Debug, Clone)]
pub struct Pinned {
    pub key: AlertKey,
    pub epoch: i32,
}

#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Pinned, Instant)>>,
}

impl KeyCache {
    /// The cached key of `host_id` when it is fresh and has `key_id`.
    pub fn get(&self, host_id: &str, key_id: &str) -> Option<Pinned> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (pinned, at) = entries.get(host_id)?;
        (at.elapsed() < TTL && pinned.key.key_id() == key_id).then(|| pinned.clone())
    }

    pub fn put(&self, host_id: &str, pinned: Pinned) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(host_id.to_string(), (pinned, Instant::now()));
    }

    /// Forgets a host (this replica reset it, or its key stopped working).
    pub fn forget(&self, host_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(host_id);
    }
}
