//! The retry pacing: ceilings double from the base up to the cap and stay there, every drawn
//! delay lies within its ceiling, and `Retry-After` is bounded by the cap.

use std::time::Duration;

use nightjar_agent::upload::{Backoff, full_jitter};

const BASE: Duration = Duration::from_millis(250);
const CAP: Duration = Duration::from_secs(60);

#[test]
fn ceilings_double_then_stay_at_the_cap() {
    let backoff = Backoff::new(BASE, CAP);
    let ceilings: Vec<u64> = (0..12)
        .map(|n| backoff.ceiling(n).as_millis() as u64)
        .collect();
    assert_eq!(
        ceilings,
        [
            250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000
        ]
    );
    // No overflow however long the outage.
    assert_eq!(backoff.ceiling(31), CAP);
    assert_eq!(backoff.ceiling(32), CAP);
    assert_eq!(backoff.ceiling(u32::MAX), CAP);
}

#[test]
fn drawn_delays_stay_within_their_ceiling_and_are_jittered() {
    let mut backoff = Backoff::new(BASE, CAP);
    let mut delays = Vec::new();
    for attempt in 0..200u32 {
        assert_eq!(backoff.attempts(), attempt);
        let delay = backoff.next_delay();
        assert!(
            delay <= backoff.ceiling(attempt),
            "attempt {attempt}: {delay:?}"
        );
        delays.push(delay);
    }
    // Full jitter: the capped tail is not one repeated value.
    let tail = &delays[20..];
    assert!(tail.iter().any(|d| *d != tail[0]), "{tail:?}");
    assert!(tail.iter().all(|d| *d <= CAP));

    backoff.reset();
    assert_eq!(backoff.attempts(), 0);
    assert!(backoff.next_delay() <= BASE);
}

#[test]
fn full_jitter_spans_zero_to_the_ceiling() {
    let ceiling = Duration::from_secs(8);
    assert_eq!(full_jitter(ceiling, 0), Duration::ZERO);
    assert_eq!(full_jitter(ceiling, u64::MAX), ceiling);
    let half = full_jitter(ceiling, u64::MAX / 2);
    assert!(half > Duration::from_millis(3_999) && half <= Duration::from_secs(4));
    assert_eq!(full_jitter(Duration::ZERO, u64::MAX), Duration::ZERO);
}

#[test]
fn retry_after_is_capped_and_counts_as_an_attempt() {
    let mut backoff = Backoff::new(BASE, CAP);
    assert_eq!(
        backoff.retry_after(Duration::from_secs(5)),
        Duration::from_secs(5)
    );
    assert_eq!(backoff.retry_after(Duration::from_secs(86_400)), CAP);
    assert_eq!(backoff.attempts(), 2);
}
