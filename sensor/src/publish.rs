//! Event -> record codec -> shared-memory ring.
//!
//! Every capture backend hands its events (exec, fork, exit, file) to one [`Publisher`], the
//! ring's single writer, which numbers them
//! (`sensor_seq`, from 1 per run), enforces the model's bounds and encodes each straight into
//! the ring's free space (`try_push_with`): no intermediate buffer, no allocation, no lock.
//! When the ring is full the record is dropped and the ring counts it; the agent sees the
//! drop in the ring header and as a gap in `sensor_seq`.
//!
//! Upstream loss (Endpoint Security or eslogger sequence gaps, eslogger restarts, BPF ring
//! buffer drops) is added to the ring header's upstream-loss counter, which is what the
//! agent's `events_dropped` totals, and is also sent as a [`Record::Loss`] so the agent can
//! say where it happened. The Loss record is informational: it may itself be dropped when the
//! ring is full, the header counter never is.

use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::codec::{self, BlockReport, FilterReport, HEADER_LEN, MAX_RECORD_BYTES};
use nightjar_proto::event::{Event, EventKind};
use nightjar_proto::shm_ring::Producer;
use nightjar_proto::{LossReport, LossSource, Record};

/// Bytes an encoded event takes besides its strings: every integer and length prefix at its
/// fixed width (at most 8 bytes), every option tag included, with room to spare.
const FIXED_ENCODED_BOUND: usize = 640;

/// Counters of one publisher, for logs and the bench.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishStats {
    /// Event records written to the ring.
    pub published: u64,
    /// Event records the ring refused because it was full.
    pub ring_full: u64,
    /// Upstream loss reported, all sources together.
    pub upstream_lost: u64,
    /// Events the filters left out, reported so far.
    pub filtered: u64,
}

/// The single writer of the ring.
pub struct Publisher {
    ring: Producer,
    next_seq: u64,
    stats: PublishStats,
}

impl Publisher {
    /// Wraps an open ring producer; numbering starts at 1.
    pub fn new(ring: Producer) -> Publisher {
        Publisher {
            ring,
            next_seq: 1,
            stats: PublishStats::default(),
        }
    }

    /// Stamps (`captured_ns`), numbers, bounds, encodes and pushes one event. Returns `false`
    /// when the ring was full (the ring counted the drop). Does not publish to the consumer:
    /// call [`Self::flush`] after a batch.
    pub fn publish<'e>(&mut self, ev: impl Into<Event<'e>>) -> bool {
        self.publish_event(&mut ev.into())
    }

    /// [`Self::publish`] of an event the caller holds: an exec event is hundreds of bytes,
    /// and the per-event path (a BPF sample decoded in place) does not copy it to hand it
    /// over. The event is left stamped and bounded.
    pub fn publish_event(&mut self, ev: &mut Event<'_>) -> bool {
        let mut meta = ev.meta();
        meta.captured_ns = now_ns();
        meta.sensor_seq = self.next_seq;
        ev.set_meta(meta);
        self.next_seq += 1;
        ev.enforce_bounds();
        let max_len = encoded_len_bound(ev).min(MAX_RECORD_BYTES);
        let mut encode_failed = false;
        let pushed =
            self.ring
                .try_push_with(max_len, |buf| match codec::encode_event_into(ev, buf) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        encode_failed = true;
                        None
                    }
                });
        if encode_failed {
            // Cannot happen within the bounds enforced above; counted rather than hidden.
            self.report_loss(LossSource::Encode, None, 1);
            return false;
        }
        if pushed {
            self.stats.published += 1;
        } else {
            self.stats.ring_full += 1;
        }
        pushed
    }

    /// Reports `count` events lost before they reached the sensor (of `kind`, when known).
    pub fn report_loss(&mut self, source: LossSource, kind: Option<EventKind>, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.upstream_lost += count;
        self.ring.add_upstream_loss(count);
        let record = Record::Loss(LossReport {
            source,
            kind,
            count,
            time_ns: now_ns(),
        });
        // A Loss record is small and fixed-size; when the ring is full it is dropped and
        // counted like any record, and the header counter above still carries the loss.
        self.ring
            .try_push_with(HEADER_LEN + 64, |buf| codec::encode_into(&record, buf).ok());
    }

    /// Reports `count` events of `kind` left out by the filters since the last report (not a
    /// loss: no loaded rule could match them).
    pub fn report_filtered(&mut self, kind: EventKind, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.filtered += count;
        let record = Record::Filtered(FilterReport {
            kind,
            count,
            time_ns: now_ns(),
        });
        self.ring
            .try_push_with(HEADER_LEN + 64, |buf| codec::encode_into(&record, buf).ok());
    }

    /// Reports what blocking let through (fail open) and blocked execs whose record was lost,
    /// since the last report.
    pub fn report_block(&mut self, failed_open: u64, blocked_unrecorded: u64) {
        if failed_open == 0 && blocked_unrecorded == 0 {
            return;
        }
        let record = Record::Block(BlockReport {
            failed_open,
            blocked_unrecorded,
            time_ns: now_ns(),
        });
        self.ring
            .try_push_with(HEADER_LEN + 64, |buf| codec::encode_into(&record, buf).ok());
    }

    /// Makes everything pushed so far visible to the agent and wakes it if it sleeps.
    pub fn flush(&mut self) {
        self.ring.flush();
    }

    /// Counters so far.
    pub fn stats(&self) -> PublishStats {
        self.stats
    }
}

/// An upper bound of the encoded size of `ev`, so the ring reserves no more than it needs.
pub fn encoded_len_bound(ev: &Event<'_>) -> usize {
    HEADER_LEN + FIXED_ENCODED_BOUND + ev.string_bytes()
}

/// Wall-clock time, Unix nanoseconds.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use nightjar_proto::event::{MAX_ARGV_BYTES, MAX_ID_BYTES, MAX_PATH_BYTES};
    use nightjar_proto::shm_ring::{Consumer, MIN_CAPACITY};
    use nightjar_proto::{Args, Caller, ExecEvent, Target};

    use super::*;

    fn read_all(consumer: &mut Consumer) -> Vec<Record<'static>> {
        let mut out = Vec::new();
        while let Some(entry) = consumer.next().unwrap() {
            let end = entry.end;
            out.push(codec::decode(entry.bytes).unwrap().into_owned());
            consumer.commit(end);
        }
        out
    }

    fn kcc() -> ExecEvent<'static> {
        let (args, _) = Args::from_strs(["kcc", "copy_cred_cache"]);
        ExecEvent {
            target: Target {
                pid: 42,
                executable: Cow::Borrowed("/usr/bin/kcc"),
                args,
                ..Target::default()
            },
            ..ExecEvent::default()
        }
    }

    #[test]
    fn events_are_numbered_from_one_stamped_and_published_on_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let mut publisher = Publisher::new(Producer::open(&path, MIN_CAPACITY).unwrap());
        let mut consumer = Consumer::open(&path, MIN_CAPACITY).unwrap();
        assert!(publisher.publish(kcc()));
        assert!(publisher.publish(kcc()));
        publisher.report_loss(LossSource::BpfRingbuf, Some(EventKind::Exec), 3);
        publisher.report_loss(LossSource::BpfRingbuf, None, 0);
        publisher.flush();
        let records = read_all(&mut consumer);
        assert_eq!(records.len(), 3, "{records:?}");
        let Record::Exec(first) = &records[0] else {
            panic!("{records:?}")
        };
        assert_eq!(first.sensor_seq, 1);
        assert!(first.captured_ns > 0);
        assert!(matches!(&records[1], Record::Exec(e) if e.sensor_seq == 2));
        assert!(matches!(
            &records[2],
            Record::Loss(LossReport {
                source: LossSource::BpfRingbuf,
                count: 3,
                ..
            })
        ));
        assert_eq!(
            consumer.stats().upstream_loss,
            3,
            "the header carries loss too"
        );
        assert_eq!(
            publisher.stats(),
            PublishStats {
                published: 2,
                ring_full: 0,
                upstream_lost: 3,
                filtered: 0,
            }
        );
    }

    #[test]
    fn a_full_ring_drops_and_counts_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.ring");
        let mut publisher = Publisher::new(Producer::open(&path, MIN_CAPACITY).unwrap());
        let mut pushed = 0u64;
        while publisher.publish(kcc()) {
            pushed += 1;
        }
        assert!(!publisher.publish(kcc()), "still full: nobody consumed");
        assert_eq!(publisher.stats().ring_full, 2);
        publisher.flush();
        let consumer = Consumer::open(&path, MIN_CAPACITY).unwrap();
        assert_eq!(publisher.stats().published, pushed);
        assert_eq!(consumer.stats().drops, publisher.stats().ring_full);
    }

    #[test]
    fn the_reserved_size_always_holds_the_encoded_event() {
        let long_path = "p".repeat(MAX_PATH_BYTES);
        let long_id = "i".repeat(MAX_ID_BYTES);
        let big_arg = "a".repeat(MAX_ARGV_BYTES / 4);
        let (args, _) = Args::from_strs([big_arg.as_str(); 3]);
        let some = |s: &str| Some(Cow::Owned(s.to_owned()));
        let ev = ExecEvent {
            sensor_seq: u64::MAX,
            flags: u32::MAX,
            time_ns: i64::MIN,
            captured_ns: i64::MIN,
            es_seq_num: Some(u64::MAX),
            es_global_seq_num: Some(u64::MAX),
            target: Target {
                pid: u32::MAX,
                pidversion: Some(u32::MAX),
                ppid: Some(u32::MAX),
                original_ppid: Some(u32::MAX),
                uid: Some(u32::MAX),
                euid: Some(u32::MAX),
                gid: Some(u32::MAX),
                egid: Some(u32::MAX),
                auid: Some(u32::MAX),
                session_id: Some(u32::MAX),
                executable: Cow::Owned(long_path.clone()),
                args,
                cwd: some(&long_path),
                signing_id: some(&long_id),
                team_id: some(&long_id),
                cdhash: some(&long_id),
                platform_binary: Some(true),
                cs_flags: Some(u32::MAX),
                tty: some(&long_id),
                start_time_ns: Some(i64::MIN),
                session_leader_pid: Some(u32::MAX),
                group_leader_pid: Some(u32::MAX),
                container: Some(true),
                env_vars: Args::from_strs(
                    (0..nightjar_proto::event::MAX_ENV_VARS)
                        .map(|i| format!("V{i}={}", "v".repeat(400))),
                )
                .0,
            },
            caller: Caller {
                pid: Some(u32::MAX),
                ppid: Some(u32::MAX),
                executable: some(&long_path),
                signing_id: some(&long_id),
                team_id: some(&long_id),
                platform_binary: Some(false),
                cs_flags: Some(u32::MAX),
            },
            responsible_pid: Some(u32::MAX),
            ..ExecEvent::default()
        };
        let ev = Event::Exec(ev);
        let bound = encoded_len_bound(&ev);
        let bytes = codec::encode_to_vec(&Record::from(ev)).unwrap();
        assert!(bytes.len() <= bound, "{} > {bound}", bytes.len());
        assert!(bound <= MAX_RECORD_BYTES);
    }
}
