//! Sequence-gap accounting for sources that number their events (Endpoint Security and
//! eslogger `seq_num` / `global_seq_num`).
//!
//! Endpoint Security numbers the messages it sends each client: `seq_num` per event type,
//! `global_seq_num` across all types (message version 4+). A jump means the kernel dropped
//! messages for this client. This client subscribes to exec only, so both counters skip over
//! the same lost execs; the larger of the two gaps is counted, never their sum.

/// Tracks one monotonically increasing counter.
#[derive(Debug, Default, Clone)]
pub struct SeqGapTracker {
    last: Option<u64>,
}

impl SeqGapTracker {
    /// Records `seq` and returns how many numbers were skipped since the previous one.
    /// A counter that goes backwards (a new client, a restarted eslogger) starts over and
    /// counts nothing: the loss across a restart is reported by whoever restarts.
    pub fn observe(&mut self, seq: u64) -> u64 {
        let lost = match self.last {
            Some(last) if seq > last => seq - last - 1,
            _ => 0,
        };
        self.last = Some(seq);
        lost
    }

    /// Forgets the last number (after a restart of the numbering source).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Gap accounting for one exec-only Endpoint Security client (or one `eslogger exec` run).
#[derive(Debug, Default, Clone)]
pub struct EsSeqTracker {
    seq: SeqGapTracker,
    global: SeqGapTracker,
}

impl EsSeqTracker {
    /// Records one message's numbers; returns the execs lost just before it.
    pub fn observe(&mut self, seq_num: Option<u64>, global_seq_num: Option<u64>) -> u64 {
        let a = seq_num.map_or(0, |s| self.seq.observe(s));
        let b = global_seq_num.map_or(0, |s| self.global.observe(s));
        a.max(b)
    }

    /// Forgets both counters (a new client started numbering from scratch).
    pub fn reset(&mut self) {
        self.seq.reset();
        self.global.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_numbers_lose_nothing() {
        let mut t = SeqGapTracker::default();
        assert_eq!((1..=100).map(|s| t.observe(s)).sum::<u64>(), 0);
    }

    #[test]
    fn gaps_are_counted_exactly() {
        let mut t = SeqGapTracker::default();
        assert_eq!(t.observe(10), 0, "the first number has nothing before it");
        assert_eq!(t.observe(11), 0);
        assert_eq!(t.observe(15), 3);
        assert_eq!(t.observe(16), 0);
        assert_eq!(t.observe(1016), 999);
    }

    #[test]
    fn backwards_or_repeated_numbers_restart_without_counting() {
        let mut t = SeqGapTracker::default();
        t.observe(500);
        assert_eq!(t.observe(1), 0);
        assert_eq!(t.observe(3), 1);
        assert_eq!(t.observe(3), 0);
        t.reset();
        assert_eq!(t.observe(100), 0);
    }

    #[test]
    fn es_tracker_takes_the_larger_gap_not_the_sum() {
        let mut t = EsSeqTracker::default();
        assert_eq!(t.observe(Some(1), Some(101)), 0);
        assert_eq!(t.observe(Some(3), Some(103)), 1);
        assert_eq!(
            t.observe(Some(4), Some(110)),
            6,
            "other event types never interleave, yet the larger wins"
        );
        assert_eq!(
            t.observe(Some(9), None),
            4,
            "before version 4 only seq_num is there"
        );
        assert_eq!(t.observe(None, None), 0);
    }
}
