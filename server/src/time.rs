//! Times as the server shows them: RFC 3339 UTC, and unix seconds for the protocol.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RFC 3339 with microseconds (PostgreSQL's precision), UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let t = UNIX_EPOCH + Duration::from_micros(micros(t) as u64);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

/// Parses an RFC 3339 time (`Z` or an offset of `+00:00`), as alert payloads carry it.
/// Times outside 1970..9999 are `None`.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text
        .strip_suffix("+00:00")
        .map_or(text.to_string(), |t| format!("{t}Z"));
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let t = parse_rfc3339("2026-11-20T09:00:00.123456Z").unwrap();
        assert_eq!(rfc3339(t), "2026-11-20T09:00:00.123456Z");
        assert!(parse_rfc3339("2026-11-20T09:00:00+00:00").is_some());
        assert!(parse_rfc3339("yesterday").is_none());
    }
}
