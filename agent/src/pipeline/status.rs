//! Live counters of the running agent, shared by its threads and read by `status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::store::Counters;
use crate::upload::UploadStatus;

/// What the reader and uploader threads report while the agent runs. Lock-free except the
/// uploader's status, which changes at most once per upload attempt.
#[derive(Debug, Default)]
pub struct LiveStatus {
    events_received: AtomicU64,
    events_dropped: AtomicU64,
    alerts_suppressed: AtomicU64,
    events_filtered: AtomicU64,
    exec_blocked: AtomicU64,
    block_failed_open: AtomicU64,
    alerts_excepted: AtomicU64,
    /// Excepted matches per rule_id since the agent started: as counted, and as of the last
    /// checkpoint (a rewind goes back to it, as the other counters do).
    excepted_by_rule: Mutex<ExceptedByRule>,
    sensor_connected: AtomicBool,
    ring_generation: AtomicU64,
    ring_resyncs: AtomicU64,
    stalled: Mutex<Option<String>>,
    upload: Arc<Mutex<UploadStatus>>,
    /// The stateful rules' state (sequences, samples, thresholds, new_terms).
    rule_state: Mutex<RuleState>,
}

/// What the stateful rules hold and have given up, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleState {
    /// Partial matches, keys, groups and terms evicted to keep to the `[rules]` bounds
    /// since the agent started.
    pub evicted: u64,
    /// Partial matches, keys and groups held now.
    pub held: u64,
    /// Bytes of state held now.
    pub bytes: u64,
    /// Sequence stage matches that came later than the reorder window.
    pub late: u64,
    /// new_terms rules still learning their history window.
    pub learning: u64,
}

impl LiveStatus {
    /// Starts from the counters the previous run saved.
    pub fn resume(saved: Counters) -> LiveStatus {
        LiveStatus {
            events_received: AtomicU64::new(saved.events_received),
            events_dropped: AtomicU64::new(saved.events_dropped),
            alerts_suppressed: AtomicU64::new(saved.alerts_suppressed),
            events_filtered: AtomicU64::new(saved.events_filtered),
            exec_blocked: AtomicU64::new(saved.exec_blocked),
            block_failed_open: AtomicU64::new(saved.block_failed_open),
            alerts_excepted: AtomicU64::new(saved.alerts_excepted),
            ..LiveStatus::default()
        }
    }

    /// An exec record was read from the ring.
    pub fn add_received(&self, n: u64) {
        self.events_received.fetch_add(n, Ordering::Relaxed);
    }

    /// Events lost: ring drops, upstream loss, corrupt or refused records.
    pub fn add_dropped(&self, n: u64) {
        self.events_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// A match over its rule's `max_signals` was not stored.
    pub fn add_suppressed(&self, n: u64) {
        self.alerts_suppressed.fetch_add(n, Ordering::Relaxed);
    }

    /// The sensor's filters left out `n` events (reported in the ring).
    pub fn add_filtered(&self, n: u64) {
        self.events_filtered.fetch_add(n, Ordering::Relaxed);
    }

    /// An exec the sensor blocked was read.
    pub fn add_blocked(&self, n: u64) {
        self.exec_blocked.fetch_add(n, Ordering::Relaxed);
    }

    /// The sensor let `n` execs through that a blocking rule might have stopped.
    pub fn add_block_failed_open(&self, n: u64) {
        self.block_failed_open.fetch_add(n, Ordering::Relaxed);
    }

    /// An exception excepted a match of `rule_id`: no alert was made.
    pub fn add_excepted(&self, rule_id: &str) {
        self.alerts_excepted.fetch_add(1, Ordering::Relaxed);
        let mut by = self
            .excepted_by_rule
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match by.current.get_mut(rule_id) {
            Some(n) => *n += 1,
            None => {
                by.current.insert(rule_id.to_owned(), 1);
            }
        }
    }

    /// Excepted matches per rule_id since the agent started.
    pub fn excepted_by_rule(&self) -> BTreeMap<String, u64> {
        self.excepted_by_rule
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    /// The per-rule counts are those of the checkpoint just taken.
    pub fn commit_excepted(&self) {
        let mut by = self
            .excepted_by_rule
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if by.current != by.committed {
            by.committed = by.current.clone();
        }
    }

    /// Whether the process holding the ring's producer side is alive.
    pub fn set_sensor_connected(&self, connected: bool) {
        self.sensor_connected.store(connected, Ordering::Relaxed);
    }

    /// The ring generation being read (it changes when the sensor rebuilds the ring).
    pub fn set_ring_generation(&self, generation: u64) {
        self.ring_generation.store(generation, Ordering::Relaxed);
    }

    /// Corrupt ring regions skipped since the agent started: each one is a sign of a
    /// damaged or tampered mapping, and the events in it are counted as dropped.
    pub fn set_ring_resyncs(&self, resyncs: u64) {
        self.ring_resyncs.store(resyncs, Ordering::Relaxed);
    }

    /// See [`LiveStatus::set_ring_resyncs`].
    pub fn ring_resyncs(&self) -> u64 {
        self.ring_resyncs.load(Ordering::Relaxed)
    }

    /// Why alerting is stalled (the store or ring keeps failing), or `None` when it flows.
    pub fn set_stalled(&self, reason: Option<String>) {
        if let Ok(mut s) = self.stalled.lock() {
            *s = reason;
        }
    }

    /// The stateful rules' state now.
    pub fn set_rule_state(&self, state: RuleState) {
        if let Ok(mut s) = self.rule_state.lock() {
            *s = state;
        }
    }

    /// See [`LiveStatus::set_rule_state`].
    pub fn rule_state(&self) -> RuleState {
        self.rule_state.lock().map(|s| *s).unwrap_or_default()
    }

    /// See [`LiveStatus::set_stalled`].
    pub fn stalled(&self) -> Option<String> {
        self.stalled.lock().ok().and_then(|s| s.clone())
    }

    /// See [`LiveStatus::set_sensor_connected`].
    pub fn sensor_connected(&self) -> bool {
        self.sensor_connected.load(Ordering::Relaxed)
    }

    /// See [`LiveStatus::set_ring_generation`].
    pub fn ring_generation(&self) -> u64 {
        self.ring_generation.load(Ordering::Relaxed)
    }

    /// The handle the uploader thread keeps current.
    pub fn upload_handle(&self) -> Arc<Mutex<UploadStatus>> {
        Arc::clone(&self.upload)
    }

    /// A copy of the uploader's status.
    pub fn upload(&self) -> UploadStatus {
        self.upload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The event and alert counters (`ring` is the reader's to fill in).
    pub fn counters(&self) -> Counters {
        Counters {
            events_received: self.events_received.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            alerts_suppressed: self.alerts_suppressed.load(Ordering::Relaxed),
            events_filtered: self.events_filtered.load(Ordering::Relaxed),
            exec_blocked: self.exec_blocked.load(Ordering::Relaxed),
            block_failed_open: self.block_failed_open.load(Ordering::Relaxed),
            alerts_excepted: self.alerts_excepted.load(Ordering::Relaxed),
            ..Counters::default()
        }
    }

    /// Goes back to counters saved at a checkpoint, when the events after it will be read
    /// again.
    pub fn restore(&self, saved: &Counters) {
        self.events_received
            .store(saved.events_received, Ordering::Relaxed);
        self.events_dropped
            .store(saved.events_dropped, Ordering::Relaxed);
        self.alerts_suppressed
            .store(saved.alerts_suppressed, Ordering::Relaxed);
        self.events_filtered
            .store(saved.events_filtered, Ordering::Relaxed);
        self.exec_blocked
            .store(saved.exec_blocked, Ordering::Relaxed);
        self.block_failed_open
            .store(saved.block_failed_open, Ordering::Relaxed);
        self.alerts_excepted
            .store(saved.alerts_excepted, Ordering::Relaxed);
        let mut by = self
            .excepted_by_rule
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        by.current = by.committed.clone();
    }
}

/// Per-rule excepted counts (see [`LiveStatus::add_excepted`]).
#[derive(Debug, Default)]
struct ExceptedByRule {
    current: BTreeMap<String, u64>,
    committed: BTreeMap<String, u64>,
}

/// Now, Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_resume_and_accumulate() {
        let s = LiveStatus::resume(Counters {
            events_received: 5,
            events_dropped: 1,
            alerts_suppressed: 0,
            ..Counters::default()
        });
        s.add_received(2);
        s.add_dropped(3);
        s.add_suppressed(4);
        assert_eq!(
            s.counters(),
            Counters {
                events_received: 7,
                events_dropped: 4,
                alerts_suppressed: 4,
                ..Counters::default()
            }
        );
    }
}
