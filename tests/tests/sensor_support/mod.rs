//! Reading what `nightjar-sensor` put in the ring, as the agent would.

// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use nightjar_proto::codec::{self, FilterReport, Record};
use nightjar_proto::event::Event;
use nightjar_proto::shm_ring::{Consumer, RingStats};
use nightjar_proto::{ExecEvent, LossReport, LossSource};

/// Everything read from the ring so far.
#[derive(Debug, Default)]
pub struct Seen {
    pub execs: Vec<ExecEvent<'static>>,
    /// Fork, exit and file events the reader's `keep_event` kept.
    pub events: Vec<Event<'static>>,
    pub losses: Vec<LossReport>,
    pub filtered: Vec<FilterReport>,
}

impl Seen {
    /// Total count reported by Loss records of one source.
    pub fn lost(&self, source: LossSource) -> u64 {
        self.losses
            .iter()
            .filter(|l| l.source == source)
            .map(|l| l.count)
            .sum()
    }
}

/// The consuming side of a test's ring.
pub struct RingReader {
    consumer: Consumer,
    pub seen: Seen,
    /// Which fork, exit and file events to keep (none unless set: a live host makes many).
    pub keep_event: Box<dyn FnMut(&Event<'_>) -> bool>,
}

impl RingReader {
    /// Attaches to (or creates) the ring; either side may come first.
    pub fn open(path: &Path, capacity: u64) -> RingReader {
        RingReader {
            consumer: Consumer::open(path, capacity).expect("open the ring as consumer"),
            seen: Seen::default(),
            keep_event: Box::new(|_| false),
        }
    }

    /// Reads and commits every record available now; `keep` decides which execs are kept
    /// (a live sensor sees every exec on the host). Returns how many execs were kept.
    pub fn drain(&mut self, keep: &mut impl FnMut(&ExecEvent<'_>) -> bool) -> usize {
        let mut kept = 0;
        loop {
            let entry = match self.consumer.next() {
                Ok(Some(entry)) => entry,
                Ok(None) => return kept,
                Err(err) => panic!("ring corrupt: {err}"),
            };
            let end = entry.end;
            match codec::decode(entry.bytes).expect("the sensor writes valid records") {
                Record::Exec(ev) => {
                    if keep(&ev) {
                        self.seen.execs.push(ev.into_owned());
                        kept += 1;
                    }
                }
                Record::Loss(loss) => self.seen.losses.push(loss),
                Record::Filtered(f) => self.seen.filtered.push(f),
                other => {
                    if let Some(event) = other.into_event()
                        && (self.keep_event)(&event)
                    {
                        self.seen.events.push(event.into_owned());
                    }
                }
            }
            self.consumer.commit(end);
        }
    }

    /// Drains until `done` holds or `timeout` passes (a generous bound, not a measurement).
    pub fn drain_until(
        &mut self,
        timeout: Duration,
        keep: &mut impl FnMut(&ExecEvent<'_>) -> bool,
        mut done: impl FnMut(&Seen) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain(keep);
            if done(&self.seen) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.consumer
                .wait((deadline - now).min(Duration::from_millis(50)))
                .expect("wait on the ring");
        }
    }

    pub fn stats(&self) -> RingStats {
        self.consumer.stats()
    }
}
