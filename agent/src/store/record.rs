//! One alert as a record of the envelope log: a fixed header, the alert uuid, the envelope.
//!
//! ```text
//!  0  magic      "NJA1"
//!  4  flags      u16 (0)
//!  6  uuid_len   u16
//!  8  env_len    u32
//! 12  reserved   u32 (0)
//! 16  seq        u64
//! 24  time_ns    i64   alert time, for `alerts list --since` without parsing the envelope
//! 32  hash       [32]  SHA-256 of the payload: the chain link the next alert names
//! 64  check      [8]   SHA-256(header[0..64] ++ uuid ++ envelope), first 8 bytes
//! 72  uuid, then the envelope JSON exactly as signed and uploaded
//! ```
//!
//! Integers are little-endian. The check word tells a record written whole from a torn or
//! flipped one (power loss, a bad sector, an edit). It is no signature: anyone who can write
//! the file can also write a record that checks; the envelope's signature is what proves who
//! made an alert.

use crate::sign::payload_hash;

pub const MAGIC: [u8; 4] = *b"NJA1";
/// Fixed header bytes.
pub const HEADER: usize = 72;
/// Longest uuid kept (alert uuids are 36 characters).
pub const MAX_UUID: usize = 128;
/// Longest envelope accepted: far above any alert (a bounded argv and paths), far below
/// anything that would strain memory when one record is read.
pub const MAX_ENVELOPE: usize = 8 * 1024 * 1024;

/// A record header as read from the log, bounds checked but not yet the check word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub time_ns: i64,
    pub hash: [u8; 32],
    pub uuid_len: u16,
    pub env_len: u32,
    check: [u8; 8],
}

impl Header {
    /// Bytes of the whole record.
    pub fn total(&self) -> u64 {
        HEADER as u64 + u64::from(self.uuid_len) + u64::from(self.env_len)
    }

    /// Parses the fixed header; `None` when it cannot be one (wrong magic, flags, lengths).
    pub fn parse(bytes: &[u8; HEADER]) -> Option<Header> {
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap_or([0; 4]));
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        if bytes[..4] != MAGIC || u16_at(4) != 0 || u32_at(12) != 0 {
            return None;
        }
        let uuid_len = u16_at(6);
        let env_len = u32_at(8);
        if usize::from(uuid_len) > MAX_UUID || env_len as usize > MAX_ENVELOPE || env_len == 0 {
            return None;
        }
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[32..64]);
        let mut check = [0u8; 8];
        check.copy_from_slice(&bytes[64..72]);
        Some(Header {
            seq: u64_at(16),
            time_ns: u64_at(24) as i64,
            hash,
            uuid_len,
            env_len,
            check,
        })
    }

    /// Whether `body` (uuid then envelope, as read after `raw`) is what was written.
    pub fn checks(&self, raw: &[u8; HEADER], body: &[u8]) -> bool {
        check_word(&[&raw[..64], body]) == self.check
    }
}

fn check_word(parts: &[&[u8]]) -> [u8; 8] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let digest = ctx.finish();
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

/// What one record holds.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    pub seq: u64,
    pub time_ns: i64,
    /// SHA-256 of the payload inside `envelope`.
    pub hash: [u8; 32],
    pub uuid: &'a str,
    pub envelope: &'a [u8],
}

/// Appends the encoded record to `out`. `None` when a length is beyond the format's bounds.
pub fn encode(f: &Fields<'_>, out: &mut Vec<u8>) -> Option<()> {
    if f.uuid.len() > MAX_UUID || f.envelope.len() > MAX_ENVELOPE || f.envelope.is_empty() {
        return None;
    }
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(f.uuid.len() as u16).to_le_bytes());
    out.extend_from_slice(&(f.envelope.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&f.seq.to_le_bytes());
    out.extend_from_slice(&f.time_ns.to_le_bytes());
    out.extend_from_slice(&f.hash);
    let check = check_word(&[&out[start..start + 64], f.uuid.as_bytes(), f.envelope]);
    out.extend_from_slice(&check);
    out.extend_from_slice(f.uuid.as_bytes());
    out.extend_from_slice(f.envelope);
    Some(())
}

/// The chain hash of an envelope's payload (for records migrated from an older store).
pub fn hash_of_envelope(envelope: &[u8]) -> Option<[u8; 32]> {
    let (_, payload) = crate::sign::chain::open_envelope(envelope).ok()?;
    Some(payload_hash(&payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_any_flip_is_seen() {
        let mut out = Vec::new();
        let f = Fields {
            seq: 42,
            time_ns: -5,
            hash: [7; 32],
            uuid: "u-42",
            envelope: b"{\"payload\":\"x\"}",
        };
        encode(&f, &mut out).unwrap();
        let raw: [u8; HEADER] = out[..HEADER].try_into().unwrap();
        let h = Header::parse(&raw).unwrap();
        assert_eq!((h.seq, h.time_ns, h.hash, h.uuid_len), (42, -5, [7; 32], 4));
        assert_eq!(h.total() as usize, out.len());
        assert!(h.checks(&raw, &out[HEADER..]));
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            let raw: [u8; HEADER] = bad[..HEADER].try_into().unwrap();
            let ok = Header::parse(&raw).is_some_and(|h| h.checks(&raw, &bad[HEADER..]));
            assert!(!ok, "a flip at byte {i} went unnoticed");
        }
    }
}
