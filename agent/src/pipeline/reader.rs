//! The reader: ring record -> decode -> rules -> alert -> chain -> sign -> sled -> release.
//!
//! Ordering is the durability contract: an alert is on the medium (the store's commit:
//! `fdatasync` of its log) before the ring position of the event behind it is committed, and
//! the counters are saved (and flushed) with the position they describe. Alerts found in one
//! pass over the ring share one commit (group commit), made at the end of the pass, before
//! the uploader hears of them and before any checkpoint releases ring space. After `kill -9`
//! or a power loss the agent re-reads what was not committed; alert uuids are deterministic,
//! so an alert already stored is recognised and skipped.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use nightjar_proto::Record;
use nightjar_proto::codec;
use nightjar_proto::event::{Event, FLAG_BLOCKED, FLAG_SNAPSHOT};
pub use nightjar_rules::engine::Detection;
use serde_json::{Map, Value};

use super::status::{LiveStatus, RuleState, now_ns};
use super::suppress::{RuleLimit, Suppressor, Verdict};
use crate::sign::{Sealer, Unsealed};
use crate::store::{Counters, Inserted, PRUNE_BATCH, RingSeen, Store, StoreError};

/// Records read between two checkpoints at most, so ring space is released steadily.
pub const CHECKPOINT_EVERY: u64 = 4096;

/// Alerts retention removes per checkpoint. Removing a whole batch at once held the events
/// behind it for milliseconds (p99 alert latency 8 ms against 0.7 ms without retention, at
/// 250 alerts/s); a step of 32 costs a fraction of that. At one checkpoint per 4,096 events or
/// per 100 ms, that removes 320 alerts/s or more: more than the alerts `max_signals` lets
/// through. A faster burst leaves the store briefly above `retain_alerts`, caught up later.
pub const PRUNE_STEP: u64 = 32;

/// What the reader learns from the ring besides records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingLoss {
    /// The header's counters (shared memory: they survive an agent restart).
    pub header: RingSeen,
    /// Records lost to corrupt regions, counted by this consumer since it opened.
    pub lost_in_resync: u64,
    /// Corrupt regions this consumer skipped since it opened.
    pub resyncs: u64,
    /// Whether the sensor process holding the ring is alive.
    pub producer_alive: bool,
}

/// Why the ring gave no record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingFault {
    /// A corrupt region, already skipped and counted in [`RingLoss::lost_in_resync`].
    #[error("{0}")]
    Corrupt(String),
    /// The ring cannot be read at all (e.g. a replaced ring file could not be mapped).
    #[error("{0}")]
    Broken(String),
}

/// The ring as the reader needs it; implemented over the shared-memory consumer.
pub trait EventRing {
    /// The next record and the ring position just past it.
    fn next_record(&mut self) -> Result<Option<(u64, &[u8])>, RingFault>;
    /// Releases the ring space up to `end`.
    fn commit(&mut self, end: u64);
    /// Goes back to the last committed position (to read again after a failure).
    fn rewind(&mut self);
    /// Generation, loss counters and sensor liveness.
    fn loss(&self) -> RingLoss;
}

/// Rules, process table and alert building as the reader needs them.
pub trait Detector {
    /// The cap of every rule, in rule order.
    fn limits(&self) -> Vec<RuleLimit>;
    /// Takes a newer rule set when one is waiting; true when the rules changed (rule
    /// indexes and [`Detector::limits`] then refer to the new set). Called between batches
    /// of records, never while an event is being handled.
    fn update(&mut self) -> bool {
        false
    }
    /// Indexes of the event-query rules `ev` matches.
    fn evaluate(&self, ev: &Event<'_>, out: &mut Vec<usize>);
    /// Everything `ev` makes alert: event-query matches, and what stateful rules make of it
    /// (correlations it completes, new terms, thresholds). By default, [`Detector::evaluate`].
    fn detect(&mut self, ev: &Event<'_>, out: &mut Vec<Detection>) {
        let mut rules = Vec::new();
        self.evaluate(ev, &mut rules);
        out.extend(rules.into_iter().map(|rule| Detection::Event { rule }));
    }
    /// Time passed without events (`now_ns`: the wall clock): correlations that were
    /// waiting for late events or for a trailing window complete.
    fn advance(&mut self, _now_ns: i64, _out: &mut Vec<Detection>) {}
    /// The uuids of a stateful detection's alerts, in the order they are stored (`ev`: the
    /// event being handled, for the detections about it).
    fn group_uuids(&self, _d: &Detection, _ev: Option<&Event<'_>>) -> Vec<String> {
        Vec::new()
    }
    /// The alert documents of a stateful detection, aligned with
    /// [`Detector::group_uuids`].
    fn group_alerts(
        &self,
        _d: &Detection,
        _ev: Option<&Event<'_>>,
        _time_ns: i64,
        _suppressed: u64,
    ) -> Vec<Map<String, Value>> {
        Vec::new()
    }
    /// Whether an exception item excepts a stateful detection: one of a correlation's
    /// events, or the event of a new term or threshold.
    fn detection_excepted(&self, _d: &Detection, _ev: Option<&Event<'_>>, _now_ns: i64) -> bool {
        false
    }
    /// Loads what earlier runs saved in the store (new_terms history), and keeps it there.
    fn open_history(&mut self, _store: &Store) {}
    /// Saves what must survive a restart (new_terms history); called at checkpoints.
    fn persist(&mut self) {}
    /// The stateful rules' state, when there are any.
    fn rule_state(&self) -> Option<RuleState> {
        None
    }
    /// Whether an exception item excepts the match of `rule` on `ev` at `now_ns`.
    fn excepted(&self, _rule: usize, _ev: &Event<'_>, _now_ns: i64) -> bool {
        false
    }
    /// The `rule_id` of rule `rule`.
    fn rule_id(&self, rule: usize) -> &str;
    /// The policy version the current rules came from (0: the local configuration).
    fn policy_version(&self) -> u64 {
        0
    }
    /// Records `ev` in the process table (after its rules were evaluated).
    fn observe(&mut self, ev: &Event<'_>);
    /// The deterministic alert id of `rule` matching `ev`.
    fn alert_uuid(&self, rule: usize, ev: &Event<'_>) -> String;
    /// The alert document (without its `nightjar` object).
    fn build_alert(
        &self,
        rule: usize,
        ev: &Event<'_>,
        time_ns: i64,
        suppressed: u64,
    ) -> Map<String, Value>;
}

/// Why the reader stopped short; nothing after the failing event was committed.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("ring: {0}")]
    Ring(String),
    #[error("alert of event sensor_seq {event_seq} does not serialise: {source}")]
    Seal {
        event_seq: u64,
        source: serde_json::Error,
    },
}

/// Everything that turns one event into stored alerts.
struct Alerter<D> {
    detector: D,
    store: Store,
    sealer: Sealer,
    suppressor: Suppressor,
    status: Arc<LiveStatus>,
    nudge: Option<Sender<()>>,
    found: Vec<Detection>,
    /// Alerts stored since retention last ran.
    stored_since_prune: u64,
    /// Alerts appended to the store and not yet committed (made durable).
    uncommitted: u64,
    /// The rule of each of those, and the suppressed count its alert reported: if the commit
    /// fails they are undone in the suppressor, since their events are read again.
    uncommitted_rules: Vec<(usize, u64)>,
}

/// How many alerts the store keeps (see [`Store::prune`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub retain: u64,
    /// Only alerts the collector has accepted may go (upload is on).
    pub uploaded_only: bool,
}

impl<D: Detector> Alerter<D> {
    fn on_event(&mut self, ev: &Event<'_>) -> Result<(), ReaderError> {
        if ev.meta().flags & FLAG_SNAPSHOT != 0 {
            // A process that predates the sensor: it is a parent to know, not a new exec.
            self.detector.observe(ev);
            return Ok(());
        }
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        self.detector.detect(ev, &mut found);
        let handled = found
            .iter()
            .try_for_each(|d| self.on_detection(d, Some(ev)));
        self.found = found;
        handled?;
        self.detector.observe(ev);
        Ok(())
    }

    /// Time passed: what stateful rules complete without a new event.
    fn advance(&mut self, now_ns: i64) -> Result<(), ReaderError> {
        let mut found = std::mem::take(&mut self.found);
        found.clear();
        self.detector.advance(now_ns, &mut found);
        let handled = found.iter().try_for_each(|d| self.on_detection(d, None));
        self.found = found;
        if let Some(state) = self.detector.rule_state() {
            self.status.set_rule_state(state);
        }
        handled
    }

    /// A stateful rule's alerts (a correlation's building blocks and shell, a new term, a
    /// threshold), stored together under one `max_signals` slot. An exception that excepts
    /// any event of a correlation suppresses it.
    fn on_detection(&mut self, d: &Detection, ev: Option<&Event<'_>>) -> Result<(), ReaderError> {
        if let Detection::Event { rule } = d {
            return match ev {
                Some(ev) => self.on_match(*rule, ev),
                None => Ok(()),
            };
        }
        let rule = d.rule();
        if self.detector.detection_excepted(d, ev, now_ns()) {
            self.status.add_excepted(self.detector.rule_id(rule));
            return Ok(());
        }
        let uuids = self.detector.group_uuids(d, ev);
        let mut stored = Vec::with_capacity(uuids.len());
        for u in &uuids {
            stored.push(self.store.seq_of(u)?.is_some());
        }
        if stored.iter().all(|s| *s) {
            tracing::debug!(rule, "alerts already stored (events read again)");
            return Ok(());
        }
        let Verdict::Alert { suppressed_before } = self.suppressor.judge(rule, Instant::now())
        else {
            self.status.add_suppressed(1);
            return Ok(());
        };
        let time_ns = now_ns();
        let alerts = self
            .detector
            .group_alerts(d, ev, time_ns, suppressed_before);
        let event_seq = match d {
            Detection::Correlated { events, .. } => {
                events.last().map_or(0, |e| e.event().meta().sensor_seq)
            }
            _ => ev.map_or(0, |e| e.meta().sensor_seq),
        };
        let policy_version = self.detector.policy_version();
        let mut result = Ok(());
        for ((uuid, mut alert), done) in uuids.into_iter().zip(alerts).zip(stored) {
            if done {
                continue;
            }
            stamp_policy(&mut alert, policy_version);
            result = self.seal_and_store(alert, uuid, time_ns, event_seq);
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                self.suppressor.stored(rule, suppressed_before);
                self.uncommitted_rules.push((rule, suppressed_before));
                Ok(())
            }
            Err(e) => {
                self.suppressor.unstored(rule);
                Err(e)
            }
        }
    }

    fn on_match(&mut self, rule: usize, ev: &Event<'_>) -> Result<(), ReaderError> {
        // Exceptions first: an excepted match is no alert at all, so it takes no
        // `max_signals` slot (as in Kibana, where exceptions filter the rule's query).
        if self.detector.excepted(rule, ev, now_ns()) {
            self.status.add_excepted(self.detector.rule_id(rule));
            return Ok(());
        }
        let uuid = self.detector.alert_uuid(rule, ev);
        if let Some(seq) = self.store.seq_of(&uuid)? {
            tracing::debug!(uuid, seq, "alert already stored (event read again)");
            return Ok(());
        }
        let Verdict::Alert { suppressed_before } = self.suppressor.judge(rule, Instant::now())
        else {
            self.status.add_suppressed(1);
            return Ok(());
        };
        let time_ns = now_ns();
        let mut alert = self
            .detector
            .build_alert(rule, ev, time_ns, suppressed_before);
        stamp_policy(&mut alert, self.detector.policy_version());
        let stored = self.seal_and_store(alert, uuid, time_ns, ev.meta().sensor_seq);
        match stored {
            Ok(()) => {
                self.suppressor.stored(rule, suppressed_before);
                self.uncommitted_rules.push((rule, suppressed_before));
                Ok(())
            }
            Err(e) => {
                self.suppressor.unstored(rule);
                Err(e)
            }
        }
    }

    fn seal_and_store(
        &mut self,
        alert: Map<String, Value>,
        uuid: String,
        time_ns: i64,
        event_seq: u64,
    ) -> Result<(), ReaderError> {
        let head = self.store.head()?;
        let unsealed = Unsealed {
            alert,
            uuid,
            time_ns,
            event_seq,
        };
        if let Some(note) = self.store.continuation() {
            self.sealer.note_next(note);
        }
        let sealed = self
            .sealer
            .seal(&head, unsealed)
            .map_err(|source| ReaderError::Seal { event_seq, source })?;
        match self.store.insert(&sealed)? {
            Inserted::Stored => {
                self.stored_since_prune += 1;
                self.uncommitted += 1;
                tracing::info!(
                    seq = sealed.seq,
                    uuid = sealed.uuid,
                    event_seq,
                    "alert stored"
                );
            }
            Inserted::Duplicate(seq) => {
                tracing::debug!(seq, uuid = sealed.uuid, "alert already stored");
            }
        }
        Ok(())
    }
}

impl<D> Alerter<D> {
    /// Makes the alerts stored since the last commit durable, with a new signed head mark,
    /// then tells the uploader. Also marks the head when it moved some other way (opening
    /// indexed alerts the log held, a migration).
    fn commit(&mut self) -> Result<(), StoreError> {
        let sealer = &self.sealer;
        match self.store.commit_marked(|head| sealer.mark(head)) {
            Ok(()) => self.uncommitted_rules.clear(),
            Err(e) => {
                // A failed sync: the store dropped those alerts, their events are read again.
                if matches!(e, StoreError::Log { .. }) {
                    for (rule, _) in self.uncommitted_rules.drain(..) {
                        self.suppressor.unstored(rule);
                    }
                    self.uncommitted = 0;
                }
                return Err(e);
            }
        }
        if self.uncommitted > 0 {
            self.uncommitted = 0;
            if let Some(n) = &self.nudge {
                let _ = n.try_send(());
            }
        }
        Ok(())
    }
}

/// The ring consumer side of the agent.
pub struct Reader<R, D> {
    ring: R,
    alerter: Alerter<D>,
    /// The counters saved with the last committed ring position.
    committed: Counters,
    /// Ring header loss counters already added to `events_dropped`.
    seen: RingSeen,
    /// This consumer's resync losses already added to `events_dropped`, now and at the
    /// last checkpoint.
    resync_seen: u64,
    resync_committed: u64,
    /// Position just past the last record handled, not yet committed.
    pending_end: Option<u64>,
    since_checkpoint: u64,
    retention: Option<Retention>,
    /// A retention pass is under way: more alerts are due than the last step removed.
    pruning: bool,
    /// Alerts removed by the pass under way (logged when it ends).
    pruned_in_pass: u64,
}

impl<R: EventRing, D: Detector> Reader<R, D> {
    /// `status` must have been resumed from `store.counters()`.
    pub fn new(
        ring: R,
        detector: D,
        store: Store,
        sealer: Sealer,
        status: Arc<LiveStatus>,
        nudge: Option<Sender<()>>,
    ) -> Result<Self, StoreError> {
        let committed = store.counters()?;
        let suppressor = Suppressor::new(detector.limits());
        let mut alerter = Alerter {
            detector,
            store,
            sealer,
            suppressor,
            status,
            nudge,
            found: Vec::new(),
            stored_since_prune: 0,
            uncommitted: 0,
            uncommitted_rules: Vec::new(),
        };
        // A head the mark does not name yet (after a crash, a migration) is marked now.
        alerter.commit()?;
        Ok(Reader {
            ring,
            alerter,
            retention: None,
            pruning: false,
            pruned_in_pass: 0,
            seen: committed.ring,
            resync_seen: 0,
            resync_committed: 0,
            committed,
            pending_end: None,
            since_checkpoint: 0,
        })
    }

    /// Keeps the store to about `retention.retain` alerts: once a batch is due, checkpoints
    /// remove the oldest, [`PRUNE_STEP`] at a time.
    pub fn set_retention(&mut self, retention: Retention) {
        self.retention = (retention.retain > 0).then_some(retention);
    }

    /// True while a retention pass is under way, so that the event loop keeps checkpointing
    /// at its usual pace even when no event comes.
    pub fn pruning(&self) -> bool {
        self.pruning
    }

    /// The ring, for the event loop's wake-up handling.
    pub fn ring_mut(&mut self) -> &mut R {
        &mut self.ring
    }

    /// Whether records were handled whose ring space is not released yet.
    pub fn has_unreleased(&self) -> bool {
        self.pending_end.is_some()
    }

    /// Handles up to `budget` records; returns how many there were (0 = the ring is empty).
    /// Checkpoints on its own every [`CHECKPOINT_EVERY`] records.
    pub fn drain(&mut self, budget: usize) -> Result<usize, ReaderError> {
        // Between two batches: the only place a new rule set is taken (see `swap`).
        if self.alerter.detector.update() {
            let limits = self.alerter.detector.limits();
            tracing::info!(
                rules = limits.len(),
                policy_version = self.alerter.detector.policy_version(),
                "rule set swapped"
            );
            self.alerter.suppressor.rebuild(limits);
        }
        let mut n = 0;
        while n < budget {
            let (end, bytes) = match self.ring.next_record() {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(RingFault::Corrupt(e)) => {
                    tracing::warn!("ring: corrupt region skipped: {e}");
                    n += 1;
                    continue;
                }
                Err(RingFault::Broken(e)) => return Err(ReaderError::Ring(e)),
            };
            match codec::decode(bytes).map(Record::into_event_or) {
                Ok(Ok(ev)) => {
                    if ev.meta().flags & FLAG_BLOCKED != 0 {
                        self.alerter.status.add_blocked(1);
                    }
                    // Counted once handled, so a `status` that shows an event received also
                    // shows its alerts stored; an event whose alert could not be stored is
                    // read again after recovery and counted then.
                    self.alerter.on_event(&ev)?;
                    self.alerter.status.add_received(1);
                }
                Ok(Err(other)) => on_report(other, &self.alerter.status),
                Err(e) => {
                    self.alerter.status.add_dropped(1);
                    tracing::warn!("ring: record at {end} refused: {e}");
                }
            }
            self.pending_end = Some(end);
            n += 1;
            self.since_checkpoint += 1;
            if self.since_checkpoint >= CHECKPOINT_EVERY {
                self.checkpoint()?;
            }
        }
        // Group commit: every alert of this pass made durable at once.
        if self.alerter.uncommitted > 0 {
            self.alerter.commit()?;
        }
        Ok(n)
    }

    /// Time passed (`now_ns`, the wall clock): stateful rules complete what waited for it,
    /// and save their history. Called before a checkpoint, which makes the alerts durable.
    pub fn advance(&mut self, now_ns: i64) -> Result<(), ReaderError> {
        self.alerter.advance(now_ns)?;
        self.alerter.detector.persist();
        Ok(())
    }

    /// Takes in the ring's loss counters, saves the counters, flushes, then releases the
    /// ring space of every record handled so far.
    pub fn checkpoint(&mut self) -> Result<(), StoreError> {
        // The alerts of every record about to be released must be on the medium first.
        self.alerter.commit()?;
        self.absorb_ring_counters();
        let mut counters = self.alerter.status.counters();
        counters.ring = self.seen;
        self.since_checkpoint = 0;
        if self.pending_end.is_none() && counters == self.committed {
            // Nothing to commit; a retention pass under way goes on (made durable by the
            // next flush: until then a crash only brings the removed alerts back).
            self.apply_retention();
            return Ok(());
        }
        self.alerter.store.save_counters(&counters)?;
        self.alerter.store.flush()?;
        if let Some(end) = self.pending_end.take() {
            self.ring.commit(end);
        }
        self.alerter.status.commit_excepted();
        self.committed = counters;
        self.resync_committed = self.resync_seen;
        self.apply_retention();
        Ok(())
    }

    /// Retention, one step per checkpoint: a pass starts once a batch of alerts has been
    /// stored since the last one, and removes [`PRUNE_STEP`] alerts per checkpoint until it
    /// has caught up. After a commit, so every alert it may remove belongs to an event that
    /// will not be read again. A failure is logged and retried a batch later: alerting goes on.
    fn apply_retention(&mut self) {
        let Some(r) = self.retention else {
            return;
        };
        let min_due = if self.pruning {
            1
        } else if self.alerter.stored_since_prune >= PRUNE_BATCH {
            self.alerter.stored_since_prune = 0;
            PRUNE_BATCH
        } else {
            return;
        };
        match self
            .alerter
            .store
            .prune_step(r.retain, r.uploaded_only, min_due, PRUNE_STEP)
        {
            Ok(n) => {
                self.pruned_in_pass += n;
                self.pruning = n == PRUNE_STEP;
                if !self.pruning && self.pruned_in_pass > 0 {
                    tracing::info!(
                        removed = self.pruned_in_pass,
                        retain = r.retain,
                        "retention: oldest alerts removed"
                    );
                    self.pruned_in_pass = 0;
                }
            }
            Err(e) => {
                self.pruning = false;
                self.pruned_in_pass = 0;
                tracing::warn!(error = %e, "retention: pruning failed; will retry");
            }
        }
    }

    /// After a failure: forget everything since the last checkpoint so it is read again.
    pub fn recover(&mut self) {
        self.ring.rewind();
        self.pending_end = None;
        self.since_checkpoint = 0;
        self.seen = self.committed.ring;
        self.alerter.status.restore(&self.committed);
        // Resync losses are the consumer's own count and are not undone by a rewind.
        self.alerter
            .status
            .add_dropped(self.resync_seen - self.resync_committed);
    }

    fn absorb_ring_counters(&mut self) {
        let loss = self.ring.loss();
        let now = loss.header;
        let status = &self.alerter.status;
        status.set_sensor_connected(loss.producer_alive);
        status.set_ring_generation(now.generation);
        status.set_ring_resyncs(loss.resyncs);
        if now.generation != self.seen.generation && self.seen.generation != 0 {
            tracing::warn!(
                from = self.seen.generation,
                to = now.generation,
                "new ring generation: the sensor restarted or rebuilt the ring"
            );
        }
        // A restarted sensor keeps the header's counters; a rebuilt ring starts them at
        // zero. A counter that went down therefore means a new ring: count it from zero.
        let delta = |now: u64, seen: u64| if now >= seen { now - seen } else { now };
        let lost = delta(now.drops, self.seen.drops)
            + delta(now.upstream_loss, self.seen.upstream_loss)
            + loss.lost_in_resync.saturating_sub(self.resync_seen);
        if lost > 0 {
            tracing::warn!(
                drops = now.drops,
                upstream_loss = now.upstream_loss,
                lost_in_resync = loss.lost_in_resync,
                "events lost: {lost} more"
            );
            status.add_dropped(lost);
        }
        self.seen = now;
        self.resync_seen = loss.lost_in_resync;
    }
}

/// A record that is no event: the sensor's reports of loss and of filtered events.
/// Adds the policy the rules came from, next to the alert's own `nightjar.{action, match}`.
fn stamp_policy(alert: &mut Map<String, Value>, policy_version: u64) {
    match alert.get_mut("nightjar") {
        Some(Value::Object(n)) => {
            n.insert("policy_version".into(), policy_version.into());
        }
        _ => {
            alert.insert(
                "nightjar".into(),
                serde_json::json!({ "policy_version": policy_version }),
            );
        }
    }
}

fn on_report(record: Record<'_>, status: &LiveStatus) {
    match record {
        Record::Loss(loss) => tracing::warn!(
            source = loss.source.as_str(),
            kind = loss.kind.map(|k| k.as_str()),
            count = loss.count,
            "sensor reports events lost before the ring"
        ),
        Record::Block(b) => {
            status.add_block_failed_open(b.failed_open);
            status.add_blocked(b.blocked_unrecorded);
            if b.failed_open > 0 {
                tracing::warn!(
                    count = b.failed_open,
                    "sensor let execs through that a blocking rule may have matched (fail open)"
                );
            }
        }
        Record::Filtered(f) => {
            status.add_filtered(f.count);
            tracing::debug!(
                kind = f.kind.as_str(),
                count = f.count,
                "sensor filters report events no rule can match"
            )
        }
        _ => {}
    }
}
