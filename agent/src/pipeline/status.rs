//! Live counters of the running agent, shared by its threads and read by `status`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::store::Counters;

/// What the reader and uploader threads report while the agent runs. Lock-free except the
/// upload outcome, which changes at most once per upload attempt.
#[derive(Debug, Default)]
pub struct LiveStatus {
    events_received: AtomicU64,
    events_dropped: AtomicU64,
    alerts_suppressed: AtomicU64,
    sensor_connected: AtomicBool,
    ring_generation: AtomicU64,
    upload: Mutex<UploadOutcome>,
}

/// The last upload attempts' outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOutcome {
    /// When a batch was last accepted (RFC 3339, UTC).
    pub last_ok: Option<String>,
    /// Why the last attempt failed; cleared by the next success.
    pub last_error: Option<String>,
}

impl LiveStatus {
    /// Starts from the counters the previous run saved.
    pub fn resume(saved: Counters) -> LiveStatus {
        LiveStatus {
            events_received: AtomicU64::new(saved.events_received),
            events_dropped: AtomicU64::new(saved.events_dropped),
            alerts_suppressed: AtomicU64::new(saved.alerts_suppressed),
            ..LiveStatus::default()
        }
    }

    pub fn add_received(&self, n: u64) {
        self.events_received.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_dropped(&self, n: u64) {
        self.events_dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_suppressed(&self, n: u64) {
        self.alerts_suppressed.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set_sensor_connected(&self, connected: bool) {
        self.sensor_connected.store(connected, Ordering::Relaxed);
    }

    pub fn set_ring_generation(&self, generation: u64) {
        self.ring_generation.store(generation, Ordering::Relaxed);
    }

    pub fn sensor_connected(&self) -> bool {
        self.sensor_connected.load(Ordering::Relaxed)
    }

    pub fn ring_generation(&self) -> u64 {
        self.ring_generation.load(Ordering::Relaxed)
    }

    /// A batch was accepted by the collector.
    pub fn upload_ok(&self, now_ns: i64) {
        let mut u = self.upload.lock().unwrap_or_else(|p| p.into_inner());
        u.last_ok = Some(rfc3339(now_ns));
        u.last_error = None;
    }

    /// An upload attempt failed.
    pub fn upload_failed(&self, error: String) {
        let mut u = self.upload.lock().unwrap_or_else(|p| p.into_inner());
        u.last_error = Some(error);
    }

    pub fn upload(&self) -> UploadOutcome {
        self.upload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counters worth keeping across a restart.
    pub fn counters(&self) -> Counters {
        Counters {
            events_received: self.events_received.load(Ordering::Relaxed),
            events_dropped: self.events_dropped.load(Ordering::Relaxed),
            alerts_suppressed: self.alerts_suppressed.load(Ordering::Relaxed),
        }
    }
}

/// Unix nanoseconds as RFC 3339 UTC with nanoseconds (`2026-11-20T09:00:00.122000123Z`).
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Now, Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_795_165_200_122_000_123),
            "2026-11-20T09:00:00.122000123Z"
        );
        assert_eq!(
            rfc3339(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }

    #[test]
    fn counters_resume_and_accumulate() {
        let s = LiveStatus::resume(Counters {
            events_received: 5,
            events_dropped: 1,
            alerts_suppressed: 0,
        });
        s.add_received(2);
        s.add_dropped(3);
        s.add_suppressed(4);
        assert_eq!(
            s.counters(),
            Counters {
                events_received: 7,
                events_dropped: 4,
                alerts_suppressed: 4
            }
        );
        s.upload_failed("503".into());
        s.upload_ok(0);
        assert_eq!(s.upload().last_error, None);
    }
}
