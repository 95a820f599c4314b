//! Storage of stage hits the engine has taken, reused by the next ones: a stage hit copies
//! its event ([`EventSnapshot`]: the event and the processes its view reads, a score of
//! strings) and waits in the reorder buffer, so without reuse every hit would allocate and
//! later free all of that. Snapshots nothing holds any more (no partial match, no pending
//! hit) come back here and are refilled in place; the pool is small and keeps only
//! ordinary-sized snapshots, so it holds at most [`MAX_SNAPSHOTS`] × [`MAX_SNAPSHOT_BYTES`]
//! besides the state the engine counts. A pooled snapshot holds none of the process
//! table's shared entries (only its own copies).

use std::sync::Arc;

use super::{Pending, StageHit};
use crate::ecs::{EcsEvent, EventSnapshot};

/// Snapshots kept for reuse.
pub(super) const MAX_SNAPSHOTS: usize = 64;
/// A larger snapshot (a huge argv) is freed rather than kept.
pub(super) const MAX_SNAPSHOT_BYTES: usize = 16 << 10;

/// Hit lists and key buffers of taken pending hits kept for reuse.
const MAX_LISTS: usize = 64;

#[derive(Debug, Default)]
pub(super) struct Recycler {
    /// Each held here alone (no other reference), so it can be refilled.
    snapshots: Vec<Arc<EventSnapshot>>,
    lists: Vec<(Vec<StageHit>, Vec<u8>)>,
}

impl Recycler {
    /// A pending stage hit of `ev`, in recycled storage when there is some.
    pub(super) fn pending(&mut self, ev: &EcsEvent<'_>, at: (i64, u64)) -> Pending {
        let snap = match self.snapshots.pop() {
            Some(mut snap) => match Arc::get_mut(&mut snap) {
                Some(s) => {
                    ev.snapshot_into(s);
                    snap
                }
                None => Arc::new(ev.snapshot()),
            },
            None => Arc::new(ev.snapshot()),
        };
        let bytes = snap.heap_bytes();
        let (hits, keys) = self.lists.pop().unwrap_or_default();
        Pending {
            at,
            snap,
            bytes,
            hits,
            keys,
            exits: Vec::new(),
        }
    }

    /// A pending hit has been taken: its storage comes back.
    pub(super) fn put(&mut self, p: Pending) {
        let Pending {
            snap,
            mut hits,
            mut keys,
            ..
        } = p;
        self.snapshot(snap);
        if self.lists.len() < MAX_LISTS {
            hits.clear();
            keys.clear();
            self.lists.push((hits, keys));
        }
    }

    /// Events of dropped partial matches: each one nothing else holds is kept.
    pub(super) fn snapshots(&mut self, spent: &mut Vec<Arc<EventSnapshot>>) {
        for snap in spent.drain(..) {
            self.snapshot(snap);
        }
    }

    fn snapshot(&mut self, mut snap: Arc<EventSnapshot>) {
        if self.snapshots.len() >= MAX_SNAPSHOTS || snap.heap_bytes() > MAX_SNAPSHOT_BYTES {
            return;
        }
        if let Some(s) = Arc::get_mut(&mut snap) {
            s.release_shared();
            self.snapshots.push(snap);
        }
    }
}
