//! ExecEvent -> record codec -> shared-memory ring.
//!
//! Every capture backend hands its events to one [`Publisher`], which numbers them
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

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::codec::{self, HEADER_LEN, MAX_RECORD_BYTES};
use nightjar_proto::shm_ring::Producer;
use nightjar_proto::{ExecEvent, LossReport, LossSource, Record};

/// Bytes an encoded [`ExecEvent`] takes besides its strings: every integer as a 9-byte
/// varint at worst, every option and length prefix included, with room to spare.
const FIXED_ENCODED_BOUND: usize = 512;

/// Counters of one publisher, for logs and the bench.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PublishStats {
    /// Exec records written to the ring.
    pub published: u64,
    /// Exec records the ring refused because it was full.
    pub ring_full: u64,
    /// Upstream loss reported, all sources together.
    pub upstream_lost: u64,
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

    /// Stamps (`captured_ns`), numbers, bounds, encodes and pushes one event. Returns `false` when the ring was full
    /// (the ring counted the drop). Does not publish to the consumer: call [`Self::flush`]
    /// after a batch.
    pub fn publish(&mut self, mut ev: ExecEvent<'_>) -> bool {
        ev.captured_ns = now_ns();
        ev.sensor_seq = self.next_seq;
        self.next_seq += 1;
        ev.enforce_bounds();
        let max_len = encoded_len_bound(&ev).min(MAX_RECORD_BYTES);
        let record = Record::Exec(ev);
        let mut encode_failed = false;
        let pushed =
            self.ring
                .try_push_with(max_len, |buf| match codec::encode_into(&record, buf) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        encode_failed = true;
                        None
                    }
                });
        if encode_failed {
            // Cannot happen within the bounds enforced above; counted rather than hidden.
            self.report_loss(LossSource::Encode, 1);
            return false;
        }
        if pushed {
            self.stats.published += 1;
        } else {
            self.stats.ring_full += 1;
        }
        pushed
    }

    /// Reports `count` events lost before they reached the sensor.
    pub fn report_loss(&mut self, source: LossSource, count: u64) {
        if count == 0 {
            return;
        }
        self.stats.upstream_lost += count;
        self.ring.add_upstream_loss(count);
        let record = Record::Loss(LossReport {
            source,
            count,
            time_ns: now_ns(),
        });
        // A Loss record is small and fixed-size; when the ring is full it is dropped and
        // counted like any record, and the header counter above still carries the loss.
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

    /// The next `sensor_seq` to be assigned.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// An upper bound of the encoded size of `ev`, so the ring reserves no more than it needs.
pub fn encoded_len_bound(ev: &ExecEvent<'_>) -> usize {
    fn opt(s: &Option<Cow<'_, str>>) -> usize {
        s.as_ref().map_or(0, |s| s.len())
    }
    let t = &ev.target;
    let c = &ev.caller;
    HEADER_LEN
        + FIXED_ENCODED_BOUND
        + t.executable.len()
        + t.args.joined().len()
        + opt(&t.cwd)
        + opt(&t.signing_id)
        + opt(&t.team_id)
        + opt(&t.cdhash)
        + opt(&t.tty)
        + opt(&c.executable)
        + opt(&c.signing_id)
        + opt(&c.team_id)
}

/// Wall-clock time, Unix nanoseconds.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
