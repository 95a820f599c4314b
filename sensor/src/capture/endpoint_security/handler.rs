//! What a NOTIFY client does with each message, whatever delivers it.
//!
//! For every message, in order: its sequence numbers go to the client's [`SeqGapDetector`]
//! (per event type, and across types by `global_seq_num`, before any filtering, so a message
//! left out on purpose still advances the count and losses before the first message are
//! counted); then it is mapped to an event; the [`Gate`] leaves out Nightjar's own and the
//! file events no rule can match; what remains is published and flushed. A panic while doing
//! so is caught here, counted as one [`LossSource::Unmapped`] loss and the handler goes on
//! (the `endpoint-sec` crate would otherwise swallow it, the event lost uncounted).
//!
//! The handler owns its state; the live client keeps it in a `Mutex`, so the compiler checks
//! what Endpoint Security's serial delivery only promises.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};

use nightjar_proto::LossSource;
use nightjar_proto::eslogger::SeqGapDetector;
use nightjar_proto::event::{EnvFilter, Event, EventKind};

use super::fields::{EsHeader, EsMessage, EsScratch};
use crate::gate::{Gate, Verdict};
use crate::publish::Publisher;

/// Filtered counts are reported at least this often (message time), and when this many are
/// pending.
const FILTER_REPORT_NS: i64 = 1_000_000_000;
const FILTER_REPORT_COUNT: u64 = 4096;

/// Where a handler's events go: the ring's [`Publisher`], or a test recorder.
pub trait Sink {
    fn publish(&mut self, ev: Event<'_>) -> bool;
    fn report_loss(&mut self, source: LossSource, kind: Option<EventKind>, count: u64);
    fn report_filtered(&mut self, kind: EventKind, count: u64);
    fn flush(&mut self);
}

impl Sink for Publisher {
    fn publish(&mut self, ev: Event<'_>) -> bool {
        Publisher::publish(self, ev)
    }
    fn report_loss(&mut self, source: LossSource, kind: Option<EventKind>, count: u64) {
        Publisher::report_loss(self, source, kind, count);
    }
    fn report_filtered(&mut self, kind: EventKind, count: u64) {
        Publisher::report_filtered(self, kind, count);
    }
    fn flush(&mut self) {
        Publisher::flush(self);
    }
}

/// A sink several handlers share (two Endpoint Security clients, one ring writer): each call
/// takes the lock, so the ring still has one writer at a time.
pub struct Shared<'m, S>(pub &'m Mutex<S>);

impl<S: Sink> Shared<'_, S> {
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        // A panic while the lock was held left the sink usable (every write is whole or
        // absent), so a poisoned lock is taken over.
        let mut sink = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut sink)
    }
}

impl<S: Sink> Sink for Shared<'_, S> {
    fn publish(&mut self, ev: Event<'_>) -> bool {
        self.with(|s| s.publish(ev))
    }
    fn report_loss(&mut self, source: LossSource, kind: Option<EventKind>, count: u64) {
        self.with(|s| s.report_loss(source, kind, count));
    }
    fn report_filtered(&mut self, kind: EventKind, count: u64) {
        self.with(|s| s.report_filtered(kind, count));
    }
    fn flush(&mut self) {
        self.with(|s| s.flush());
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn publish(&mut self, ev: Event<'_>) -> bool {
        (**self).publish(ev)
    }
    fn report_loss(&mut self, source: LossSource, kind: Option<EventKind>, count: u64) {
        (**self).report_loss(source, kind, count);
    }
    fn report_filtered(&mut self, kind: EventKind, count: u64) {
        (**self).report_filtered(kind, count);
    }
    fn flush(&mut self) {
        (**self).flush();
    }
}

/// Counters of one handler.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HandlerStats {
    pub messages: u64,
    pub published: u64,
    pub lost: u64,
    pub panics: u64,
}

/// The state one NOTIFY client's handler keeps between messages.
pub struct NotifyHandler<S> {
    sink: S,
    gate: Gate,
    env: EnvFilter,
    scratch: EsScratch,
    seq: SeqGapDetector,
    pending_filtered: u64,
    last_filter_report_ns: i64,
    stats: HandlerStats,
}

impl<S: Sink> NotifyHandler<S> {
    pub fn new(sink: S, gate: Gate, env: EnvFilter) -> NotifyHandler<S> {
        NotifyHandler {
            sink,
            gate,
            env,
            scratch: EsScratch::default(),
            seq: SeqGapDetector::new(),
            pending_filtered: 0,
            last_filter_report_ns: 0,
            stats: HandlerStats::default(),
        }
    }

    pub fn stats(&self) -> HandlerStats {
        self.stats
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// Handles one message; never panics.
    pub fn handle<'a, A, E>(&mut self, msg: EsMessage<'a, A, E>)
    where
        A: Iterator<Item = &'a [u8]>,
        E: Iterator<Item = &'a [u8]>,
    {
        let kind = msg.kind();
        let done = catch_unwind(AssertUnwindSafe(|| self.handle_inner(msg)));
        if done.is_err() {
            self.stats.panics += 1;
            self.stats.lost += 1;
            // The sink itself may be what panicked; a second panic here is contained too.
            let _ = catch_unwind(AssertUnwindSafe(|| {
                self.sink.report_loss(LossSource::Unmapped, Some(kind), 1);
                self.sink.flush();
            }));
        }
    }

    /// A message that maps to no event (a close that modified nothing, a type not mapped):
    /// it still counts for the sequence numbers. `unmapped` counts it as lost (a message the
    /// sensor should have mapped but could not read).
    pub fn skip(&mut self, header: EsHeader, unmapped: Option<EventKind>) {
        self.stats.messages += 1;
        self.observe(header);
        if let Some(kind) = unmapped {
            self.stats.lost += 1;
            self.sink.report_loss(LossSource::Unmapped, Some(kind), 1);
        }
        self.sink.flush();
    }

    fn observe(&mut self, header: EsHeader) {
        let (seq, global) = header.seq_nums();
        let lost = self.seq.observe(header.event_type, seq, global);
        if lost > 0 {
            self.stats.lost += lost;
            self.sink
                .report_loss(LossSource::EndpointSecurityGap, None, lost);
        }
    }

    fn handle_inner<'a, A, E>(&mut self, msg: EsMessage<'a, A, E>)
    where
        A: Iterator<Item = &'a [u8]>,
        E: Iterator<Item = &'a [u8]>,
    {
        self.stats.messages += 1;
        let header = msg.header();
        self.observe(header);
        let ev = msg.to_event(&mut self.scratch, &self.env);
        match self.gate.judge(&ev) {
            Verdict::Publish => {
                if self.sink.publish(ev) {
                    self.stats.published += 1;
                }
            }
            Verdict::Filtered => self.pending_filtered += 1,
            Verdict::Own => {}
        }
        if self.pending_filtered > 0
            && (self.pending_filtered >= FILTER_REPORT_COUNT
                || header.time_ns.saturating_sub(self.last_filter_report_ns) >= FILTER_REPORT_NS)
        {
            self.report_filtered(header.time_ns);
        }
        self.sink.flush();
    }

    fn report_filtered(&mut self, now_ns: i64) {
        for (kind, n) in self.gate.take_filtered() {
            self.sink.report_filtered(kind, n);
        }
        self.pending_filtered = 0;
        self.last_filter_report_ns = now_ns;
    }
}
