//! The ring's sleep/wake handshake (`shm_ring::handshake`, the code the consumer and the
//! producer run) under the loom model checker, which explores every interleaving and every
//! value the C11 memory model lets each load see: a consumer that decides to sleep is always
//! woken by a producer that publishes; and, as a check that the model can fail, the same
//! handshake without its two fences loses a wake-up.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p nightjar-proto --test ring_handshake_loom
//! --release` (scripts/test does, in its own target directory); without `--cfg loom` this
//! file is empty.
#![cfg(loom)]

use std::sync::atomic::Ordering;

use loom::sync::Arc;
use loom::sync::atomic::AtomicU64;
use loom::thread;
use nightjar_proto::shm_ring::handshake::{Fence, Word, announce_sleep, wake_needed};

struct LoomWord(AtomicU64);

impl Word for LoomWord {
    fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }
    fn store(&self, value: u64, order: Ordering) {
        self.0.store(value, order);
    }
    fn swap(&self, value: u64, order: Ordering) -> u64 {
        self.0.swap(value, order)
    }
}

struct LoomFence;
impl Fence for LoomFence {
    fn seq_cst() {
        loom::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// The broken variant: no fences at all.
struct NoFence;
impl Fence for NoFence {
    fn seq_cst() {}
}

struct Shared {
    write_pos: AtomicU64,
    sleeping: LoomWord,
    /// Bytes written to the wake FIFO.
    wakes: AtomicU64,
}

/// One consumer about to sleep at cursor 0, one producer publishing position 16.
/// Returns (the consumer slept, wake-ups written).
fn round<F: Fence>() -> (bool, u64) {
    let s = Arc::new(Shared {
        write_pos: AtomicU64::new(0),
        sleeping: LoomWord(AtomicU64::new(0)),
        wakes: AtomicU64::new(0),
    });
    let p = Arc::clone(&s);
    let producer = thread::spawn(move || {
        p.write_pos.store(16, Ordering::Release);
        if wake_needed::<_, F>(&p.sleeping, true) {
            p.wakes.fetch_add(1, Ordering::Relaxed);
        }
    });
    let cursor = 0;
    let slept = announce_sleep::<_, F>(&s.sleeping, || {
        s.write_pos.load(Ordering::Acquire) != cursor
    });
    producer.join().unwrap();
    (slept, s.wakes.load(Ordering::Relaxed))
}

#[test]
fn a_sleeping_consumer_is_always_woken() {
    loom::model(|| {
        let (slept, wakes) = round::<LoomFence>();
        assert!(
            !slept || wakes == 1,
            "the consumer slept and no wake-up came"
        );
        assert!(wakes <= 1);
    });
}

#[test]
fn a_flush_with_nothing_new_wakes_nobody() {
    loom::model(|| {
        let sleeping = LoomWord(AtomicU64::new(1));
        assert!(!wake_needed::<_, LoomFence>(&sleeping, false));
        assert_eq!(
            sleeping.load(Ordering::Relaxed),
            1,
            "the flag stays for the next publish"
        );
    });
}

#[test]
fn without_the_fences_a_wake_up_is_lost() {
    let lost = std::panic::catch_unwind(|| {
        loom::model(|| {
            let (slept, wakes) = round::<NoFence>();
            assert!(!slept || wakes == 1, "lost wake-up");
        });
    });
    assert!(
        lost.is_err(),
        "the model must find the lost wake-up of the unfenced handshake"
    );
}
