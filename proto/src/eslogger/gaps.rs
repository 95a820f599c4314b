//! Loss detection from Endpoint Security sequence numbers.
//!
//! Endpoint Security numbers every message it delivers to a client: `seq_num` per event type
//! and `global_seq_num` across types, both from 0 for a new client. A jump means the kernel
//! dropped messages for this client (it could not keep up); a step back means a new client
//! (eslogger restarted), which the caller reports on its own.

/// Tracks the exec messages of one eslogger (or Endpoint Security) stream and counts the
/// messages missing between them.
#[derive(Debug, Default, Clone)]
pub struct SeqGapDetector {
    last_seq: Option<u64>,
    last_global: Option<u64>,
}

impl SeqGapDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the next exec message's numbers and returns how many messages are missing
    /// before it (0 when none, on the first message, or after a restart).
    ///
    /// `seq_num` (per event type) is preferred: the decoder skips other event types, so the
    /// global sequence may legitimately jump over them. `global_seq_num` is used when the
    /// message has no `seq_num`.
    pub fn observe(&mut self, seq_num: Option<u64>, global_seq_num: Option<u64>) -> u64 {
        let lost = match (seq_num, self.last_seq) {
            (Some(now), Some(before)) => missing(before, now),
            (Some(_), None) => 0,
            (None, _) => match (global_seq_num, self.last_global) {
                (Some(now), Some(before)) => missing(before, now),
                _ => 0,
            },
        };
        if seq_num.is_some() {
            self.last_seq = seq_num;
        }
        if global_seq_num.is_some() {
            self.last_global = global_seq_num;
        }
        lost
    }
}

/// Messages missing between two consecutive sequence numbers; a step back or a repeat is a
/// restart, not a loss.
fn missing(before: u64, now: u64) -> u64 {
    now.saturating_sub(before).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_gaps_in_seq_num() {
        let mut d = SeqGapDetector::new();
        assert_eq!(d.observe(Some(10), Some(100)), 0);
        assert_eq!(
            d.observe(Some(11), Some(105)),
            0,
            "global jumps over other types"
        );
        assert_eq!(d.observe(Some(15), Some(110)), 3);
        assert_eq!(d.observe(Some(0), Some(0)), 0, "restart is not a loss");
        assert_eq!(d.observe(Some(1), Some(1)), 0);
    }

    #[test]
    fn falls_back_to_global_seq_num() {
        let mut d = SeqGapDetector::new();
        assert_eq!(d.observe(None, Some(7)), 0);
        assert_eq!(d.observe(None, Some(8)), 0);
        assert_eq!(d.observe(None, Some(18)), 9);
        assert_eq!(d.observe(None, None), 0);
        assert_eq!(d.observe(None, Some(u64::MAX)), u64::MAX - 19);
    }
}
