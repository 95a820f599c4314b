//! Capped exponential backoff with full jitter, so that a fleet of agents that lost the
//! collector at the same moment does not come back in lock-step.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

/// Retry delays for one failing batch: attempt `n` waits a uniformly random time in
/// `[0, min(cap, base * 2^n)]` ("full jitter").
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    rng: SystemRandom,
}

impl Backoff {
    /// A backoff starting at `base` whose ceiling never exceeds `cap`.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
            rng: SystemRandom::new(),
        }
    }

    /// The upper bound of the delay drawn at `attempt` (0-based): `min(cap, base * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next retry; advances the attempt count.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let mut bytes = [0u8; 8];
        match self.rng.fill(&mut bytes) {
            Ok(()) => full_jitter(ceiling, u64::from_le_bytes(bytes)),
            // The OS random source failing is not a reason to stop retrying: wait the
            // ceiling, which is still bounded.
            Err(_) => ceiling,
        }
    }

    /// A server-given `Retry-After`, bounded by the cap so a hostile or confused server
    /// cannot park the uploader for days. Counts as an attempt.
    pub fn retry_after(&mut self, hint: Duration) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        hint.min(self.cap)
    }

    /// Attempts made since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Maps a uniformly random `u64` onto `[0, ceiling]`.
pub fn full_jitter(ceiling: Duration, random: u64) -> Duration {
    let nanos = ceiling.as_nanos() * u128::from(random) / u128::from(u64::MAX);
    // nanos <= ceiling, which came from a Duration, so it fits.
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}
