//! The sleep/wake handshake between the consumer and the producer, on its own so that a
//! model checker can run exactly this code (`proto/tests/ring_handshake_loom.rs`, under
//! `--cfg loom`), over loom's atomics instead of the mapping's.
//!
//! The property: a consumer that decides to sleep is always woken by a producer that
//! publishes afterwards; no record waits for the next timeout. It is the Dekker pattern:
//!
//! ```text
//! consumer                                  producer
//! sleeping = 1                              write_pos = w        (Release)
//! fence(SeqCst)                             fence(SeqCst)
//! if write_pos != cursor: don't sleep       if sleeping != 0 and swap(sleeping, 0) != 0:
//! else sleep on the FIFO                        write one byte to the FIFO
//! ```
//!
//! The two SeqCst fences order each side's store before its load, so at least one side
//! sees the other's store: either the consumer sees the new position, or the producer sees
//! the flag and writes the wake-up byte. Without them both may read stale values (store
//! buffering) and the wake-up is lost: the model test checks that too.
//!
//! The producer takes the flag only when it published something since the last check: a
//! flush that published nothing new cannot leave the consumer behind (it saw everything the
//! producer published before setting its flag, or it was woken for it), and waking it anyway
//! would cost an idle agent a wake-up per sensor flush.

use std::sync::atomic::Ordering;

/// The atomic word operations the handshake needs.
pub trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
    fn swap(&self, value: u64, order: Ordering) -> u64;
}

impl Word for std::sync::atomic::AtomicU64 {
    fn load(&self, order: Ordering) -> u64 {
        std::sync::atomic::AtomicU64::load(self, order)
    }
    fn store(&self, value: u64, order: Ordering) {
        std::sync::atomic::AtomicU64::store(self, value, order);
    }
    fn swap(&self, value: u64, order: Ordering) -> u64 {
        std::sync::atomic::AtomicU64::swap(self, value, order)
    }
}

/// A sequentially consistent fence.
pub trait Fence {
    fn seq_cst();
}

/// The hardware's.
pub struct StdFence;

impl Fence for StdFence {
    fn seq_cst() {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// The consumer, about to sleep: announces it, then checks for data once more. Returns
/// true when it may sleep; false when data arrived meanwhile (the announcement is taken
/// back). `has_data` loads the published position (Acquire).
pub fn announce_sleep<W: Word, F: Fence>(sleeping: &W, has_data: impl FnOnce() -> bool) -> bool {
    sleeping.store(1, Ordering::SeqCst);
    // Pairs with the producer's fence between publishing and reading the flag.
    F::seq_cst();
    if has_data() {
        sleeping.store(0, Ordering::Relaxed);
        return false;
    }
    true
}

/// The producer, after publishing (`published_new`: the position moved since the last
/// check): whether to write the wake-up byte. Takes the flag, so one sleep costs one byte.
pub fn wake_needed<W: Word, F: Fence>(sleeping: &W, published_new: bool) -> bool {
    if !published_new {
        return false;
    }
    // Pairs with the consumer's fence between setting its flag and rechecking.
    F::seq_cst();
    sleeping.load(Ordering::Relaxed) != 0 && sleeping.swap(0, Ordering::AcqRel) != 0
}
