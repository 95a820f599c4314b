//! The ring record codec: a 4-byte versioned header, then a bincode 2 body.
//!
//! One codec for every record kind the ring carries: the events (exec, fork, exit, file,
//! credential and session changes),
//! loss reports and filter counts. The header's kind byte says which; the version byte says
//! which wire layout, and a reader refuses a version it does not know by name (an old agent
//! meeting a newer sensor's records says so, rather than misreading them).
//!
//! bincode is used only here, so moving to a wire-compatible successor touches one module.
//! Decoding is zero-copy (strings borrow from the record), allocation-free, bounded by
//! [`MAX_RECORD_BYTES`], and rejects trailing bytes: a record from shared memory is untrusted.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian};
use bincode::{BorrowDecode, Encode};

use crate::event::{
    BoundsError, CredEvent, Event, EventKind, ExecEvent, ExitEvent, FileEvent, ForkEvent,
};

/// First two bytes of every record.
pub const RECORD_MAGIC: [u8; 2] = *b"NJ";
/// Wire version of the record body; bump on any incompatible change to an event type,
/// [`LossReport`] or [`FilterReport`]. Version 2: typed records beyond exec, argv head and
/// tail with the true count, Linux session fields, `env_vars`. Version 3: credential and
/// session change records ([`RecordKind::Cred`]). Version 4: the macOS file actions open,
/// quarantine removal and launch item added, with the launch item's program. Version 5: integers
/// and lengths at fixed width (bincode's fixed-int encoding): larger records, but encoding and
/// decoding copy words instead of branching per byte, which the exec path's latency needs.
pub const RECORD_VERSION: u8 = 5;
/// Header length in bytes: magic (2), version (1), kind (1).
pub const HEADER_LEN: usize = 4;
/// No record is larger; the decoder refuses anything bigger before looking inside.
pub const MAX_RECORD_BYTES: usize = 128 * 1024;

type Config = Configuration<LittleEndian, Fixint, Limit<MAX_RECORD_BYTES>>;

const CONFIG: Config = bincode::config::standard()
    .with_fixed_int_encoding()
    .with_limit::<MAX_RECORD_BYTES>();

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    Exec = 1,
    Loss = 2,
    Fork = 3,
    Exit = 4,
    File = 5,
    Filtered = 6,
    Block = 7,
    Cred = 8,
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
    /// Endpoint Security or eslogger gave a message the sensor could not map (an unreadable
    /// field); counted, not hidden.
    Unmapped = 6,
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
            LossSource::Unmapped => "unmapped",
        }
    }
}

/// Events lost upstream of the ring, reported by the sensor so `status` can show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, bincode::Decode)]
pub struct LossReport {
    pub source: LossSource,
    /// Which kind of event was lost, where the source can tell (BPF ring drops are counted
    /// per kind).
    pub kind: Option<EventKind>,
    pub count: u64,
    /// When the loss was detected, Unix nanoseconds.
    pub time_ns: i64,
}

/// Events the sensor left out on purpose (a path or process no loaded rule can match):
/// not loss, reported so `status` can show how much the filters keep away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, bincode::Decode)]
pub struct FilterReport {
    pub kind: EventKind,
    pub count: u64,
    /// When the count was taken, Unix nanoseconds.
    pub time_ns: i64,
}

/// What the sensor's blocking did since its last report: execs a blocking rule may have
/// matched but that were let through (fail open: the Endpoint Security deadline was too close,
/// an argument the rule needs was in the part of argv not read, the signal failed, the blocked
/// record could not be handed over). Blocked execs themselves arrive as exec records with
/// `FLAG_BLOCKED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, bincode::Decode)]
pub struct BlockReport {
    pub failed_open: u64,
    /// Blocked execs whose record was lost (the ring or the hand-off was full).
    pub blocked_unrecorded: u64,
    /// When the count was taken, Unix nanoseconds.
    pub time_ns: i64,
}

/// One ring record.
// Records live on the stack for one decode; boxing the event would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    Exec(ExecEvent<'a>),
    Fork(ForkEvent<'a>),
    Exit(ExitEvent<'a>),
    File(FileEvent<'a>),
    Cred(CredEvent<'a>),
    Loss(LossReport),
    Filtered(FilterReport),
    Block(BlockReport),
}

impl<'a> From<Event<'a>> for Record<'a> {
    fn from(e: Event<'a>) -> Self {
        match e {
            Event::Exec(e) => Record::Exec(e),
            Event::Fork(e) => Record::Fork(e),
            Event::Exit(e) => Record::Exit(e),
            Event::File(e) => Record::File(e),
            Event::Cred(e) => Record::Cred(e),
        }
    }
}

impl<'a> Record<'a> {
    /// The event this record carries, or the record itself when it is a report.
    // Both sides live on the stack for one decode; boxing would allocate per event.
    #[allow(clippy::result_large_err)]
    pub fn into_event_or(self) -> Result<Event<'a>, Record<'a>> {
        match self {
            Record::Exec(e) => Ok(Event::Exec(e)),
            Record::Fork(e) => Ok(Event::Fork(e)),
            Record::Exit(e) => Ok(Event::Exit(e)),
            Record::File(e) => Ok(Event::File(e)),
            Record::Cred(e) => Ok(Event::Cred(e)),
            other => Err(other),
        }
    }

    /// The event this record carries, if it is one.
    pub fn into_event(self) -> Option<Event<'a>> {
        Some(match self {
            Record::Exec(e) => Event::Exec(e),
            Record::Fork(e) => Event::Fork(e),
            Record::Exit(e) => Event::Exit(e),
            Record::File(e) => Event::File(e),
            Record::Cred(e) => Event::Cred(e),
            Record::Loss(_) | Record::Filtered(_) | Record::Block(_) => return None,
        })
    }

    /// Copies every borrowed string so the record can outlive its bytes.
    pub fn into_owned(self) -> Record<'static> {
        match self {
            Record::Loss(l) => Record::Loss(l),
            Record::Filtered(f) => Record::Filtered(f),
            Record::Block(b) => Record::Block(b),
            other => match other.into_event() {
                Some(e) => Record::from(e.into_owned()),
                None => unreachable!("loss and filter records are handled above"),
            },
        }
    }
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
    #[error(
        "record version {found}, this build reads {RECORD_VERSION}{}",
        if *found > RECORD_VERSION { " (the sensor is newer: upgrade the agent)" } else { " (the sensor is older: upgrade the sensor)" }
    )]
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
    match record {
        Record::Exec(ev) => encode_kind(RecordKind::Exec, ev, buf),
        Record::Fork(ev) => encode_kind(RecordKind::Fork, ev, buf),
        Record::Exit(ev) => encode_kind(RecordKind::Exit, ev, buf),
        Record::File(ev) => encode_kind(RecordKind::File, ev, buf),
        Record::Cred(ev) => encode_kind(RecordKind::Cred, ev, buf),
        Record::Loss(loss) => encode_kind(RecordKind::Loss, loss, buf),
        Record::Filtered(f) => encode_kind(RecordKind::Filtered, f, buf),
        Record::Block(b) => encode_kind(RecordKind::Block, b, buf),
    }
}

/// [`encode_into`] of the record an event makes, without moving the event into a
/// [`Record`] first (the sensor's publish path).
pub fn encode_event_into(event: &Event<'_>, buf: &mut [u8]) -> Result<usize, CodecError> {
    match event {
        Event::Exec(ev) => encode_kind(RecordKind::Exec, ev, buf),
        Event::Fork(ev) => encode_kind(RecordKind::Fork, ev, buf),
        Event::Exit(ev) => encode_kind(RecordKind::Exit, ev, buf),
        Event::File(ev) => encode_kind(RecordKind::File, ev, buf),
        Event::Cred(ev) => encode_kind(RecordKind::Cred, ev, buf),
    }
}

/// The header of a `kind` record, then `body`.
fn encode_kind<T: Encode>(kind: RecordKind, body: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
    if buf.len() < HEADER_LEN {
        return Err(CodecError::Short { len: buf.len() });
    }
    buf[..2].copy_from_slice(&RECORD_MAGIC);
    buf[2] = RECORD_VERSION;
    buf[3] = kind as u8;
    let n = bincode::encode_into_slice(body, &mut buf[HEADER_LEN..], CONFIG)?;
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
        k if k == RecordKind::Fork as u8 => {
            let ev: ForkEvent<'_> = decode_body(body)?;
            ev.validate()?;
            Ok(Record::Fork(ev))
        }
        k if k == RecordKind::Exit as u8 => {
            let ev: ExitEvent<'_> = decode_body(body)?;
            ev.validate()?;
            Ok(Record::Exit(ev))
        }
        k if k == RecordKind::File as u8 => {
            let ev: FileEvent<'_> = decode_body(body)?;
            ev.validate()?;
            Ok(Record::File(ev))
        }
        k if k == RecordKind::Cred as u8 => {
            let ev: CredEvent<'_> = decode_body(body)?;
            ev.validate()?;
            Ok(Record::Cred(ev))
        }
        k if k == RecordKind::Loss as u8 => Ok(Record::Loss(decode_body(body)?)),
        k if k == RecordKind::Filtered as u8 => Ok(Record::Filtered(decode_body(body)?)),
        k if k == RecordKind::Block as u8 => Ok(Record::Block(decode_body(body)?)),
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

    fn actor() -> crate::event::Actor<'static> {
        crate::event::Actor {
            pid: 4101,
            pidversion: Some(7),
            start_time_ns: Some(1_700_000_000_000_000_000),
            ppid: Some(4000),
            euid: Some(501),
            executable: Some(Cow::Borrowed("/bin/zsh")),
            signing_id: Some(Cow::Borrowed("com.apple.zsh")),
            ..crate::event::Actor::default()
        }
    }

    #[test]
    fn every_event_kind_round_trips_borrowing_from_the_record() {
        use crate::event::{EventMeta, ExitEvent, FileAction, FileEvent, ForkEvent};
        let meta = EventMeta {
            sensor_seq: 9,
            time_ns: 5,
            es_seq_num: Some(1),
            ..EventMeta::default()
        };
        let records = [
            Record::Fork(ForkEvent {
                meta,
                parent: actor(),
                child_pid: 4102,
                child_pidversion: Some(1),
                child_start_time_ns: Some(6),
            }),
            Record::Exit(ExitEvent {
                meta,
                process: actor(),
                exit_code: Some(137),
            }),
            Record::File(FileEvent {
                meta,
                process: actor(),
                action: FileAction::Rename,
                path: Cow::Borrowed("/Users/bob/Library/LaunchAgents/x.plist"),
                original_path: Some(Cow::Borrowed("/tmp/x.plist")),
                launch_executable: None,
            }),
            Record::File(FileEvent {
                meta,
                process: actor(),
                action: FileAction::LaunchDaemon,
                path: Cow::Borrowed("/Library/LaunchDaemons/com.apple.softwareupdated.plist"),
                original_path: None,
                launch_executable: Some(Cow::Borrowed("/Users/Shared/.local/updater")),
            }),
            Record::File(FileEvent {
                meta,
                process: actor(),
                action: FileAction::Open,
                path: Cow::Borrowed("/Users/bob/Library/Cookies/Cookies.binarycookies"),
                original_path: None,
                launch_executable: None,
            }),
            Record::Cred(crate::event::CredEvent {
                meta,
                process: crate::event::Actor {
                    uid: Some(0),
                    euid: Some(0),
                    ..actor()
                },
                change: crate::event::CredChange::Uid,
                before: crate::event::CredIds {
                    uid: Some(1000),
                    euid: Some(1000),
                    suid: Some(1000),
                    ..crate::event::CredIds::default()
                },
                after: crate::event::CredIds {
                    uid: Some(0),
                    euid: Some(0),
                    suid: Some(0),
                    sid: Some(4101),
                    ..crate::event::CredIds::default()
                },
            }),
            Record::Filtered(FilterReport {
                kind: EventKind::File,
                count: 1000,
                time_ns: 3,
            }),
        ];
        for record in records {
            let bytes = encode_to_vec(&record).unwrap();
            let back = decode(&bytes).unwrap();
            assert_eq!(back, record);
            if let Record::File(f) = &back {
                assert!(matches!(f.path, Cow::Borrowed(_)));
            }
            if let Record::Cred(c) = back {
                assert!(matches!(c.process.executable, Some(Cow::Borrowed(_))));
            }
        }
    }

    #[test]
    fn a_record_breaking_an_event_invariant_is_refused() {
        use crate::event::{FileAction, FileEvent};
        let rename_without_origin = Record::File(FileEvent {
            action: FileAction::Rename,
            path: Cow::Borrowed("/b"),
            ..FileEvent::default()
        });
        let bytes = encode_to_vec(&rename_without_origin).unwrap();
        assert!(matches!(decode(&bytes), Err(CodecError::Bounds(_))));
    }

    #[test]
    fn a_newer_record_version_says_which_side_to_upgrade() {
        let mut bytes = encode_to_vec(&Record::Exec(sample())).unwrap();
        bytes[2] = RECORD_VERSION + 1;
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("upgrade the agent"), "{err}");
        bytes[2] = RECORD_VERSION - 1;
        let err = decode(&bytes).unwrap_err().to_string();
        assert!(err.contains("upgrade the sensor"), "{err}");
    }

    #[test]
    fn loss_round_trip() {
        let loss = LossReport {
            source: LossSource::BpfRingbuf,
            kind: Some(EventKind::File),
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
        // The executable's length prefix (the eight bytes before its text, at fixed width)
        // claims u64::MAX bytes.
        let mut rec = encode_to_vec(&Record::Exec(sample())).unwrap();
        let text = b"/usr/bin/kcc";
        let at = rec
            .windows(text.len())
            .position(|w| w == text)
            .expect("the executable is in the record");
        assert_eq!(rec[at - 8..at], (text.len() as u64).to_le_bytes());
        rec[at - 8..at].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&rec).is_err());
    }
}
