//! `process.entity_id`: a stable id for one process instance on one host, the same string in
//! every event of that instance.
//!
//! Standard base64 of SHA-256 over the host id, a NUL, the pid (4 bytes, little-endian) and
//! the start time (Unix nanoseconds, 8 bytes, little-endian), truncated to 16 bytes: 24
//! characters. The start time is the one every source reports the same way for one instance
//! (on Linux the kernel's boot second plus the start in clock ticks, see the sensor's probes;
//! on macOS Endpoint Security's), so the id survives sensor and agent restarts.

use base64::Engine as _;
use ring::digest::{SHA256, digest};

/// The entity id of process `pid`, started at `start_time_ns`, on host `host_id`, as ASCII.
pub fn entity_id(host_id: &str, pid: u32, start_time_ns: i64) -> [u8; 24] {
    let mut input = Vec::with_capacity(host_id.len() + 13);
    input.extend_from_slice(host_id.as_bytes());
    input.push(0);
    input.extend_from_slice(&pid.to_le_bytes());
    input.extend_from_slice(&start_time_ns.to_le_bytes());
    let hash = digest(&SHA256, &input);
    let mut out = [0u8; 24];
    // 16 bytes encode to exactly 24 characters with padding.
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(&hash.as_ref()[..16], &mut out)
        .unwrap_or(0);
    debug_assert_eq!(n, 24);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_distinct_and_base64() {
        let a = entity_id("host-1", 42, 1_700_000_000_000_000_000);
        assert_eq!(a, entity_id("host-1", 42, 1_700_000_000_000_000_000));
        assert_ne!(a, entity_id("host-1", 42, 1_700_000_000_010_000_000));
        assert_ne!(a, entity_id("host-1", 43, 1_700_000_000_000_000_000));
        assert_ne!(a, entity_id("host-2", 42, 1_700_000_000_000_000_000));
        let s = std::str::from_utf8(&a).unwrap();
        assert!(s.ends_with("=="), "{s}");
        let raw = base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        assert_eq!(raw.len(), 16);
    }
}
