//! Loss detection from Endpoint Security sequence numbers.
//!
//! Endpoint Security numbers every message it delivers to a client: `seq_num` per event type
//! and `global_seq_num` across the client's types, both from 0 for a new client. A jump means
//! the kernel dropped messages for this client (it could not keep up); a step back means a
//! new client (eslogger restarted), which the caller reports on its own.
//!
//! A detector is per client, and it must see every message the client receives, before any
//! filtering: a message the sensor then drops on purpose still advances the numbering.

/// Event types tracked one by one; Apple's `es_event_type_t` has fewer.
const TYPES: usize = 256;

/// Tracks the messages of one Endpoint Security client (or one eslogger run) and counts the
/// messages missing between them, per event type and across types.
#[derive(Debug, Clone)]
pub struct SeqGapDetector {
    /// Next expected `seq_num` per event type (0 for a new client).
    next_seq: Box<[u64; TYPES]>,
    /// Next expected `global_seq_num`.
    next_global: u64,
}

impl Default for SeqGapDetector {
    fn default() -> Self {
        SeqGapDetector {
            next_seq: Box::new([0; TYPES]),
            next_global: 0,
        }
    }
}

impl SeqGapDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one message of `event_type` (`es_event_type_t`) and returns how many messages
    /// are missing before it, counting from the client's first (numbered 0).
    ///
    /// `global_seq_num` (message version 4+) counts every type the client receives, so its
    /// gap is the whole loss; without it the type's own `seq_num` gap is used. A number lower
    /// than expected is a new client (a restart), not a loss.
    pub fn observe(
        &mut self,
        event_type: u32,
        seq_num: Option<u64>,
        global_seq_num: Option<u64>,
    ) -> u64 {
        let slot = self.next_seq.get_mut(event_type as usize);
        let type_lost = match (seq_num, slot) {
            (Some(now), Some(next)) => advance(next, now),
            _ => 0,
        };
        match global_seq_num {
            Some(now) => advance(&mut self.next_global, now),
            None => type_lost,
        }
    }
}

/// Moves `next` past `now` and returns the numbers skipped; a step back restarts the count.
fn advance(next: &mut u64, now: u64) -> u64 {
    let lost = now.saturating_sub(*next);
    *next = now.saturating_add(1);
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: u32 = 9;
    const CLOSE: u32 = 12;

    #[test]
    fn counts_gaps_per_type_without_global() {
        let mut d = SeqGapDetector::new();
        assert_eq!(d.observe(EXEC, Some(0), None), 0);
        assert_eq!(
            d.observe(CLOSE, Some(0), None),
            0,
            "types are numbered apart"
        );
        assert_eq!(d.observe(EXEC, Some(1), None), 0);
        assert_eq!(d.observe(EXEC, Some(5), None), 3);
        assert_eq!(d.observe(CLOSE, Some(1), None), 0);
        assert_eq!(d.observe(EXEC, Some(0), None), 0, "restart is not a loss");
        assert_eq!(d.observe(EXEC, Some(1), None), 0);
    }

    #[test]
    fn global_gaps_are_the_whole_loss() {
        let mut d = SeqGapDetector::new();
        assert_eq!(d.observe(EXEC, Some(0), Some(0)), 0);
        assert_eq!(d.observe(CLOSE, Some(0), Some(1)), 0);
        assert_eq!(
            d.observe(CLOSE, Some(3), Some(6)),
            4,
            "types lost in between count"
        );
        assert_eq!(d.observe(EXEC, Some(1), Some(7)), 0);
    }

    #[test]
    fn loss_before_the_first_message_counts() {
        let mut d = SeqGapDetector::new();
        assert_eq!(d.observe(EXEC, Some(4), Some(9)), 9);
        let mut d = SeqGapDetector::new();
        assert_eq!(d.observe(EXEC, Some(4), None), 4);
        assert_eq!(d.observe(EXEC, None, None), 0);
        assert_eq!(
            d.observe(9999, Some(7), None),
            0,
            "unknown types are not tracked"
        );
    }
}
