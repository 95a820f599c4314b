//! Decoding of one BPF ring-buffer sample written by `src/bpf/exec.bpf.c`.
//!
//! The sample is untrusted in the sense that every length in it is checked against the
//! sample's real size before use. Strings borrow from the sample when they are valid UTF-8
//! (the common case); otherwise they are converted lossily into buffers of [`SampleScratch`]
//! that are reused from one event to the next, so decoding allocates nothing in steady state.

use std::borrow::Cow;

use nightjar_proto::event::{TRUNC_ARGS, TRUNC_EXECUTABLE};
use nightjar_proto::{Args, Caller, ExecEvent, OsType, Source, Target};

use nightjar_proto::text::lossy_into;

/// Size of `struct exec_hdr`.
pub const HEADER_LEN: usize = 64;
/// argv was longer than the probe's bound and was cut.
pub const FLAG_ARGS_TRUNCATED: u32 = 1;
/// The path was longer than the probe's bound and was cut.
pub const FLAG_PATH_TRUNCATED: u32 = 2;
/// The argv pages could not be read; argv is empty (reported as [`TRUNC_ARGS`]).
pub const FLAG_ARGS_UNREADABLE: u32 = 4;
/// The kernel has no audit login uid (no CONFIG_AUDIT).
pub const FLAG_NO_LOGINUID: u32 = 8;

/// The kernel's "unset" login uid and session id.
const UNSET_ID: u32 = u32::MAX;

/// A sample that cannot be an exec record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("BPF sample of {len} bytes is shorter than its {HEADER_LEN}-byte header")]
    Short { len: usize },
    #[error("BPF sample of {len} bytes claims {path_len} path bytes and {args_len} argv bytes")]
    Lengths {
        len: usize,
        path_len: usize,
        args_len: usize,
    },
}

/// Reusable buffers for the rare samples that are not valid UTF-8.
#[derive(Debug, Default)]
pub struct SampleScratch {
    path: String,
    args: String,
}

/// Converts kernel boot-clock nanoseconds into Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootClock {
    /// Unix time minus boot time, in nanoseconds.
    pub offset_ns: i64,
}

impl BootClock {
    /// Unix nanoseconds of a boot-clock reading.
    pub fn to_unix_ns(self, boot_ns: u64) -> i64 {
        i64::try_from(boot_ns)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_ns)
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(v)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(v)
}

/// Decodes one sample into an event borrowing from `sample` (or `scratch`).
pub fn decode_sample<'s>(
    sample: &'s [u8],
    scratch: &'s mut SampleScratch,
    clock: BootClock,
) -> Result<ExecEvent<'s>, SampleError> {
    if sample.len() < HEADER_LEN {
        return Err(SampleError::Short { len: sample.len() });
    }
    let flags = u32_at(sample, 48);
    let path_len = u32_at(sample, 52) as usize;
    let args_len = u32_at(sample, 56) as usize;
    let body = &sample[HEADER_LEN..];
    if path_len
        .checked_add(args_len)
        .is_none_or(|n| n > body.len())
    {
        return Err(SampleError::Lengths {
            len: sample.len(),
            path_len,
            args_len,
        });
    }
    let (path, rest) = body.split_at(path_len);
    let argv = &rest[..args_len];

    let mut ev_flags = 0;
    if flags & FLAG_PATH_TRUNCATED != 0 {
        ev_flags |= TRUNC_EXECUTABLE;
    }
    if flags & (FLAG_ARGS_TRUNCATED | FLAG_ARGS_UNREADABLE) != 0 {
        // Unreadable argv arrives empty: flagged as cut, never passed off as "no arguments".
        ev_flags |= TRUNC_ARGS;
    }
    // The block is "arg\0arg\0...arg\0"; when cut, its last argument has no NUL.
    let argv = argv.strip_suffix(b"\0").unwrap_or(argv);
    let count = if args_len == 0 {
        0
    } else {
        nul_count(argv) + 1
    };
    let SampleScratch {
        path: path_buf,
        args: args_buf,
    } = scratch;
    let joined = Cow::Borrowed(lossy_into(argv, args_buf));
    let args = match u32::try_from(count)
        .ok()
        .and_then(|count| Args::from_joined(joined.clone(), count))
    {
        Some(args) => args,
        None => {
            // More arguments than the model keeps: cut (allocates; rare by construction).
            ev_flags |= TRUNC_ARGS;
            Args::from_strs(joined.split('\0')).0
        }
    };
    let executable = Cow::Borrowed(lossy_into(path, path_buf));

    let pid = u32_at(sample, 16);
    let ppid = u32_at(sample, 20);
    let has_login = flags & FLAG_NO_LOGINUID == 0;
    let auid = u32_at(sample, 40);
    let session = u32_at(sample, 44);
    Ok(ExecEvent {
        sensor_seq: 0,
        source: Source::Ebpf,
        os: OsType::Linux,
        flags: ev_flags,
        time_ns: clock.to_unix_ns(u64_at(sample, 0)),
        // Stamped by the publisher.
        captured_ns: 0,
        es_seq_num: None,
        es_global_seq_num: None,
        target: Target {
            pid,
            ppid: Some(ppid),
            uid: Some(u32_at(sample, 24)),
            euid: Some(u32_at(sample, 28)),
            gid: Some(u32_at(sample, 32)),
            egid: Some(u32_at(sample, 36)),
            auid: (has_login && auid != UNSET_ID).then_some(auid),
            session_id: (has_login && session != UNSET_ID).then_some(session),
            executable,
            args,
            start_time_ns: Some(clock.to_unix_ns(u64_at(sample, 8))),
            ..Target::default()
        },
        // exec keeps the pid: the image that called exec is the same process.
        caller: Caller {
            pid: Some(pid),
            ppid: Some(ppid),
            ..Caller::default()
        },
        responsible_pid: None,
    })
}

fn nul_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == 0).count()
}

/// Builds a sample the way the probe lays it out (tests and the bench).
#[allow(clippy::too_many_arguments)]
pub fn encode_sample(
    out: &mut Vec<u8>,
    time_boot_ns: u64,
    pid: u32,
    ppid: u32,
    ids: [u32; 6],
    flags: u32,
    path: &[u8],
    argv_block: &[u8],
) {
    out.clear();
    out.extend_from_slice(&time_boot_ns.to_le_bytes());
    out.extend_from_slice(&(time_boot_ns / 2).to_le_bytes());
    out.extend_from_slice(&pid.to_le_bytes());
    out.extend_from_slice(&ppid.to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(&(argv_block.len() as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(path);
    out.extend_from_slice(argv_block);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOCK: BootClock = BootClock { offset_ns: 1_000 };

    fn sample(path: &[u8], argv: &[u8], flags: u32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_sample(
            &mut out,
            50,
            42,
            7,
            [1, 2, 3, 4, 1000, 5],
            flags,
            path,
            argv,
        );
        out
    }

    #[test]
    fn decodes_every_field_borrowing_from_the_sample() {
        let s = sample(b"/usr/bin/kcc", b"kcc\0copy_cred_cache\0", 0);
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!(ev.target.pid, 42);
        assert_eq!(ev.target.ppid, Some(7));
        assert_eq!(
            (ev.target.uid, ev.target.euid, ev.target.gid, ev.target.egid),
            (Some(1), Some(2), Some(3), Some(4))
        );
        assert_eq!(
            (ev.target.auid, ev.target.session_id),
            (Some(1000), Some(5))
        );
        assert_eq!(ev.target.executable, "/usr/bin/kcc");
        assert!(matches!(ev.target.executable, Cow::Borrowed(_)));
        assert_eq!(
            ev.target.args.iter().collect::<Vec<_>>(),
            ["kcc", "copy_cred_cache"]
        );
        assert_eq!(ev.time_ns, 1_050);
        assert_eq!(ev.target.start_time_ns, Some(1_025));
        assert_eq!(
            (ev.source, ev.os, ev.flags),
            (Source::Ebpf, OsType::Linux, 0)
        );
        assert!(ev.validate().is_ok());
    }

    #[test]
    fn empty_arguments_and_empty_argv_survive() {
        let s = sample(b"/bin/x", b"x\0\0last\0", 0);
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!(ev.target.args.iter().collect::<Vec<_>>(), ["x", "", "last"]);
        let s = sample(b"/bin/x", b"", 0);
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!(ev.target.args.len(), 0);
    }

    #[test]
    fn truncation_is_flagged_and_the_partial_argument_kept() {
        let s = sample(
            b"/bin/x",
            b"x\0abc",
            FLAG_ARGS_TRUNCATED | FLAG_PATH_TRUNCATED,
        );
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!(ev.target.args.iter().collect::<Vec<_>>(), ["x", "abc"]);
        assert_eq!(ev.flags, TRUNC_ARGS | TRUNC_EXECUTABLE);
    }

    #[test]
    fn unreadable_argv_is_flagged_as_cut() {
        let s = sample(b"/bin/x", b"", FLAG_ARGS_UNREADABLE);
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert!(ev.target.args.is_empty());
        assert_eq!(ev.flags, TRUNC_ARGS);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_refused() {
        let s = sample(b"/bin/\xff", b"a\xfe\0b\0", 0);
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!(ev.target.executable, "/bin/\u{FFFD}");
        assert_eq!(
            ev.target.args.iter().collect::<Vec<_>>(),
            ["a\u{FFFD}", "b"]
        );
    }

    #[test]
    fn unset_login_ids_are_absent() {
        let mut s = Vec::new();
        encode_sample(
            &mut s,
            1,
            1,
            0,
            [0, 0, 0, 0, u32::MAX, u32::MAX],
            0,
            b"/x",
            b"x\0",
        );
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!((ev.target.auid, ev.target.session_id), (None, None));
        encode_sample(
            &mut s,
            1,
            1,
            0,
            [0, 0, 0, 0, 0, 0],
            FLAG_NO_LOGINUID,
            b"/x",
            b"x\0",
        );
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!((ev.target.auid, ev.target.session_id), (None, None));
    }

    #[test]
    fn more_arguments_than_the_model_keeps_are_cut_and_flagged() {
        let block: Vec<u8> = (0..2000).flat_map(|_| *b"a\0").collect();
        let s = sample(b"/x", &block, 0);
        let mut scratch = SampleScratch::default();
        let ev = decode_sample(&s, &mut scratch, CLOCK).unwrap();
        assert_eq!(ev.target.args.len(), nightjar_proto::event::MAX_ARGS);
        assert_eq!(ev.flags & TRUNC_ARGS, TRUNC_ARGS);
    }

    #[test]
    fn lying_lengths_are_errors() {
        let mut s = sample(b"/x", b"x\0", 0);
        s[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut scratch = SampleScratch::default();
        assert!(matches!(
            decode_sample(&s, &mut scratch, CLOCK),
            Err(SampleError::Lengths { .. })
        ));
        assert!(matches!(
            decode_sample(&s[..10], &mut scratch, CLOCK),
            Err(SampleError::Short { len: 10 })
        ));
    }
}
