//! The ring record codec: a 4-byte versioned header, then a bincode 2 body.
//!
//! bincode is used only here, so moving to a wire-compatible successor touches one module.
//! Decoding is zero-copy (strings borrow from the record), allocation-free, bounded by
//! [`MAX_RECORD_BYTES`], and rejects trailing bytes: a record from shared memory is untrusted.

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use bincode::{BorrowDecode, Encode};

use crate::event::{BoundsError, ExecEvent};

/// First two bytes of every record.
pub const RECORD_MAGIC: [u8; 2] = *b"NJ";
/// Wire version of the record body; bump on any incompatible change to [`ExecEvent`] or
/// [`LossReport`].
pub const RECORD_VERSION: u8 = 1;
/// Header length in bytes: magic (2), version (1), kind (1).
pub const HEADER_LEN: usize = 4;
/// No record is larger; the decoder refuses anything bigger before looking inside.
pub const MAX_RECORD_BYTES: usize = 128 * 1024;

type Config = Configuration<LittleEndian, Varint, Limit<MAX_RECORD_BYTES>>;

const CONFIG: Config = bincode::config::standard().with_limit::<MAX_RECORD_BYTES>();

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    Exec = 1,
    Loss = 2,
}

/// Where upstream loss was detected, before a record could reach the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, bincode::Decode)]
#[repr(u8)]
pub enum LossSource {
    /// A gap in Endpoint Security `seq_num` / `global_seq_num`.
    EndpointSecurityGap = 1,
    /// A gap in the `seq_num` / `global_seq_num` of `eslogger` output.
    EsloggerGap = 2,
    /// `eslogger` exited and was restarted; events in between are unknown (counted as 1).
    EsloggerRestart = 3,
    /// The kernel's BPF ring buffer was full.
    BpfRingbuf = 4,
    /// An event could not be encoded (should not happen; counted, not hidden).
    Encode = 5,
}

impl LossSource {
    /// The name used in logs and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            LossSource::EndpointSecurityGap => "endpoint_security_gap",
            LossSource::EsloggerGap => "eslogger_gap",
            LossSource::EsloggerRestart => "eslogger_restart",
            LossSource::BpfRingbuf => "bpf_ringbuf",
            LossSource::Encode => "encode",
        }
    }
}

/// Events lost upstream of the ring, reported by the sensor so `status` can show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, bincode::Decode)]
pub struct LossReport {
    pub source: LossSource,
    pub count: u64,
    /// When the loss was detected, Unix nanoseconds.
    pub time_ns: i64,
}

/// One ring record.
// Records live on the stack for one decode; boxing the event would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Exec(ExecEvent<'a>),
    Loss(LossReport),
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error("record of {len} bytes is over the {MAX_RECORD_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("bad record magic {found:02x?}")]
    Magic { found: [u8; 2] },
    #[error("record version {found}, this build reads {RECORD_VERSION}")]
    Version { found: u8 },
    #[error("unknown record kind {found}")]
    Kind { found: u8 },
    #[error("record body does not decode: {0}")]
    Body(#[from] bincode::error::DecodeError),
    #[error("record body has {extra} trailing bytes")]
    Trailing { extra: usize },
    #[error("record breaks a bound: {0}")]
    Bounds(#[from] BoundsError),
    #[error("record does not encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

/// Encodes `record` into `buf`, returning the bytes written. Allocates nothing; fails with
/// [`CodecError::Encode`] when `buf` is too small.
pub fn encode_into(record: &Record<'_>, buf: &mut [u8]) -> Result<usize, CodecError> {
    if buf.len() < HEADER_LEN {
        return Err(CodecError::Short { len: buf.len() });
    }
    let kind = match record {
        Record::Exec(_) => RecordKind::Exec,
        Record::Loss(_) => RecordKind::Loss,
    };
    buf[..2].copy_from_slice(&RECORD_MAGIC);
    buf[2] = RECORD_VERSION;
    buf[3] = kind as u8;
    let body = &mut buf[HEADER_LEN..];
    let n = match record {
        Record::Exec(ev) => bincode::encode_into_slice(ev, body, CONFIG)?,
        Record::Loss(loss) => bincode::encode_into_slice(loss, body, CONFIG)?,
    };
    Ok(HEADER_LEN + n)
}

/// Encodes `record` into a new vector (tests, replay tools; not the hot path).
pub fn encode_to_vec(record: &Record<'_>) -> Result<Vec<u8>, CodecError> {
    let mut buf = vec![0u8; MAX_RECORD_BYTES];
    let n = encode_into(record, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Decodes one record; strings in the result borrow from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, CodecError> {
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Short { len: bytes.len() });
    }
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge { len: bytes.len() });
    }
    if bytes[..2] != RECORD_MAGIC {
        return Err(CodecError::Magic {
            found: [bytes[0], bytes[1]],
        });
    }
    if bytes[2] != RECORD_VERSION {
        return Err(CodecError::Version { found: bytes[2] });
    }
    let body = &bytes[HEADER_LEN..];
    match bytes[3] {
        k if k == RecordKind::Exec as u8 => {
            let ev: ExecEvent<'_> = decode_body(body)?;
            ev.validate()?;
            Ok(Record::Exec(ev))
        }
        k if k == RecordKind::Loss as u8 => Ok(Record::Loss(decode_body(body)?)),
        found => Err(CodecError::Kind { found }),
    }
}

fn decode_body<'a, T: BorrowDecode<'a, ()>>(body: &'a [u8]) -> Result<T, CodecError> {
    let (value, used) = bincode::borrow_decode_from_slice(body, CONFIG)?;
    if used != body.len() {
        return Err(CodecError::Trailing {
            extra: body.len() - used,
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::event::{Args, Caller, OsType, Source, Target};

    fn sample() -> ExecEvent<'static> {
        let (args, _) = Args::from_strs(["kcc", "copy_cred_cache"]);
        ExecEvent {
            sensor_seq: 7,
            source: Source::Eslogger,
            os: OsType::Macos,
            flags: 0,
            time_ns: 1_700_000_000_123_456_789,
            captured_ns: 1_700_000_001_000_000_000,
            es_seq_num: Some(3),
            es_global_seq_num: Some(99),
            target: Target {
                pid: 702,
                pidversion: Some(1234),
                ppid: Some(1),
                executable: Cow::Borrowed("/usr/bin/kcc"),
                args,
                cwd: Some(Cow::Borrowed("/")),
                signing_id: Some(Cow::Borrowed("com.apple.kcc")),
                platform_binary: Some(true),
                cs_flags: Some(0x2000_0001),
                ..Target::default()
            },
            caller: Caller {
                pid: Some(702),
                executable: Some(Cow::Borrowed("/bin/zsh")),
                ..Caller::default()
            },
            responsible_pid: Some(500),
        }
    }

    #[test]
    fn exec_round_trip_borrows_from_the_record() {
        let ev = sample();
        let bytes = encode_to_vec(&Record::Exec(ev.clone())).unwrap();
        let Record::Exec(back) = decode(&bytes).unwrap() else {
            panic!("wrong kind")
        };
        assert_eq!(back, ev);
        assert!(matches!(back.target.executable, Cow::Borrowed(_)));
    }

    #[test]
    fn loss_round_trip() {
        let loss = LossReport {
            source: LossSource::BpfRingbuf,
            count: 12,
            time_ns: 5,
        };
        let bytes = encode_to_vec(&Record::Loss(loss)).unwrap();
        assert_eq!(decode(&bytes).unwrap(), Record::Loss(loss));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let good = encode_to_vec(&Record::Exec(sample())).unwrap();
        assert!(matches!(decode(&good[..2]), Err(CodecError::Short { .. })));
        let mut bad = good.clone();
        bad[2] = 9;
        assert!(matches!(
            decode(&bad),
            Err(CodecError::Version { found: 9 })
        ));
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(decode(&extra), Err(CodecError::Trailing { .. })));
        for cut in HEADER_LEN..good.len() {
            assert!(decode(&good[..cut]).is_err(), "prefix {cut} decoded");
        }
    }

    #[test]
    fn huge_claimed_lengths_are_refused_without_allocating() {
        let mut rec = vec![b'N', b'J', RECORD_VERSION, RecordKind::Exec as u8];
        // sensor_seq, source, os, flags, time, captured, two None, pid, ..., then an executable
        // length of u64::MAX (varint 253 prefix + 8 bytes).
        rec.extend_from_slice(&[1, 1, 1, 0, 0, 0, 0, 0, 1]);
        rec.extend_from_slice(&[0; 10]);
        rec.push(253);
        rec.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&rec).is_err());
    }
}
