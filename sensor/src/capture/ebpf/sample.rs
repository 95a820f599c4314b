//! Decoding of one BPF ring-buffer sample written by `src/bpf/probes.bpf.c` (layout in
//! `src/bpf/events.h`).
//!
//! The sample is untrusted in the sense that every length in it is checked against the
//! sample's real size before use. Strings borrow from the sample when they are valid UTF-8
//! (the common case); otherwise they are converted lossily into buffers of [`SampleScratch`]
//! that are reused from one event to the next, so decoding allocates nothing in steady state.

use std::borrow::Cow;

use nightjar_proto::event::{
    Actor, Args, ArgsBuilder, CredChange, CredEvent, CredIds, EnvFilter, Event, EventMeta,
    ExitEvent, FLAG_BLOCKED, FileAction, FileEvent, ForkEvent, MAX_ARGV_BYTES, TRUNC_ARGS,
    TRUNC_CWD, TRUNC_ENV, TRUNC_EXECUTABLE, TRUNC_FILE_PATH, nul_count,
};
use nightjar_proto::filter::Marked;
use nightjar_proto::text::lossy_into;
use nightjar_proto::{Caller, ExecEvent, OsType, Source, Target};

/// Size of `struct sample_hdr`.
pub const HEADER_LEN: usize = 48;
/// Size of `struct exec_body`.
pub const EXEC_BODY_LEN: usize = 44;
/// Size of `struct fork_body`.
pub const FORK_BODY_LEN: usize = 16;
/// Size of `struct exit_body`.
pub const EXIT_BODY_LEN: usize = 8;
/// Size of `struct file_body`.
pub const FILE_BODY_LEN: usize = 24;
/// Size of `struct cred_body`.
pub const CRED_BODY_LEN: usize = 40;

pub const KIND_EXEC: u32 = 1;
pub const KIND_FORK: u32 = 2;
pub const KIND_EXIT: u32 = 3;
pub const KIND_FILE: u32 = 4;
pub const KIND_CRED: u32 = 5;

/// argv was longer than its head and tail: the middle is gone.
pub const F_ARGS_TRUNCATED: u32 = 0x1;
/// An executable or file path was cut.
pub const F_PATH_TRUNCATED: u32 = 0x2;
/// The argv pages could not be read; argv is empty (reported as [`TRUNC_ARGS`]).
pub const F_ARGS_UNREADABLE: u32 = 0x4;
/// The kernel has no audit login uid (no CONFIG_AUDIT).
pub const F_NO_LOGINUID: u32 = 0x8;
/// The executable is the image's canonical path.
pub const F_EXE_RESOLVED: u32 = 0x10;
/// The working directory is present.
pub const F_CWD: u32 = 0x20;
/// The environment was longer than the probe reads.
pub const F_ENV_TRUNCATED: u32 = 0x40;
/// The working directory was cut.
pub const F_CWD_TRUNCATED: u32 = 0x80;
/// A file event's process, or its parent, is marked (`events.h`).
pub const F_MARKED: u32 = 0x400;
/// A blocking rule matched the exec and SIGKILL was sent: the image never ran.
pub const F_BLOCKED: u32 = 0x100;
/// A blocking rule may have matched but the exec was let through (the signal failed, or an
/// argument it needs was in the part of argv not read): fail open.
pub const F_BLOCK_FAILED: u32 = 0x200;

/// The kernel's "unset" login uid and session id.
const UNSET_ID: u32 = u32::MAX;

/// A sample that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampleError {
    #[error("BPF sample of {len} bytes is shorter than its {need}-byte header")]
    Short { len: usize, need: usize },
    #[error("BPF sample of {len} bytes claims {claimed} bytes of strings")]
    Lengths { len: usize, claimed: usize },
    #[error("BPF sample of unknown kind {kind}")]
    Kind { kind: u32 },
    #[error("BPF file sample with unknown action {action}")]
    Action { action: u32 },
    #[error("BPF credential sample with unknown change {change}")]
    Change { change: u32 },
}

/// The acting process's name (`comm`, as the kernel keeps it: at most 15 bytes) of a file
/// sample, when it is valid UTF-8.
/// Whether the probes found a file event's process (or its parent) marked (`F_MARKED`).
pub fn file_marked(sample: &[u8]) -> Marked {
    if u32_at_checked(sample, 0) != Some(KIND_FILE) {
        return Marked::Unknown;
    }
    match u32_at_checked(sample, 4) {
        Some(flags) if flags & F_MARKED != 0 => Marked::Yes,
        Some(_) => Marked::No,
        None => Marked::Unknown,
    }
}

fn u32_at_checked(b: &[u8], off: usize) -> Option<u32> {
    let v: [u8; 4] = b.get(off..off + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(v))
}

pub fn file_comm(sample: &[u8]) -> Option<&str> {
    if u32_at(sample, 0) != KIND_FILE || sample.len() < HEADER_LEN + FILE_BODY_LEN {
        return None;
    }
    let comm = &sample[HEADER_LEN + 8..HEADER_LEN + 24];
    let n = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    std::str::from_utf8(&comm[..n])
        .ok()
        .filter(|s| !s.is_empty())
}

/// Reusable buffers: argv and environment builders, and lossy copies of the rare strings
/// that are not valid UTF-8.
#[derive(Debug, Default)]
pub struct SampleScratch {
    args: ArgsBuilder,
    env: ArgsBuilder,
    arg: String,
    joined: Vec<u8>,
    path: String,
    cwd: String,
    tty: String,
    file_path: String,
    original: String,
}

/// Converts kernel boot-clock nanoseconds into Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootClock {
    /// Unix time minus boot time, in nanoseconds (event times).
    pub offset_ns: i64,
    /// The boot time in whole Unix seconds as the kernel reports it (`btime` in
    /// `/proc/stat`), in nanoseconds: start times are derived from it, so they come out the
    /// same in every event of a process, across sensor restarts, and equal to what `/proc`
    /// gives for processes that predate the sensor.
    pub boot_unix_ns: i64,
    /// The clock tick of `/proc/PID/stat` start times (`1e9 / sysconf(_SC_CLK_TCK)`).
    pub tick_ns: i64,
}

impl BootClock {
    /// Unix nanoseconds of a boot-clock reading (an event's time).
    pub fn to_unix_ns(self, boot_ns: u64) -> i64 {
        i64::try_from(boot_ns)
            .unwrap_or(i64::MAX)
            .saturating_add(self.offset_ns)
    }

    /// The canonical Unix start time of a process started at boot-clock `start_boot_ns`:
    /// the kernel's boot second plus the start rounded down to a clock tick.
    pub fn start_unix_ns(self, start_boot_ns: u64) -> i64 {
        let ns = i64::try_from(start_boot_ns).unwrap_or(i64::MAX);
        let tick = self.tick_ns.max(1);
        self.boot_unix_ns.saturating_add(ns - ns % tick)
    }

    /// The same, from `/proc/PID/stat`'s start time in clock ticks.
    pub fn start_unix_ns_from_ticks(self, ticks: u64) -> i64 {
        let ns = i64::try_from(ticks)
            .unwrap_or(i64::MAX)
            .saturating_mul(self.tick_ns.max(1));
        self.boot_unix_ns.saturating_add(ns)
    }
}

/// What decoding needs besides the sample.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'c> {
    pub clock: BootClock,
    /// The environment variables to keep.
    pub env: &'c EnvFilter,
}

fn u16_at(b: &[u8], off: usize) -> usize {
    usize::from(u16::from_le_bytes([b[off], b[off + 1]]))
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

/// Splits `lens` consecutive strings off `body`, checking they fit.
fn split<const N: usize>(
    sample_len: usize,
    body: &[u8],
    lens: [usize; N],
) -> Result<[&[u8]; N], SampleError> {
    let claimed: usize = lens.iter().sum();
    if claimed > body.len() {
        return Err(SampleError::Lengths {
            len: sample_len,
            claimed,
        });
    }
    let mut out = [&body[..0]; N];
    let mut at = 0;
    for (slot, len) in out.iter_mut().zip(lens) {
        *slot = &body[at..at + len];
        at += len;
    }
    Ok(out)
}

/// Decodes one sample into an event borrowing from `sample` (or `scratch`).
pub fn decode_sample<'s>(
    sample: &'s [u8],
    scratch: &'s mut SampleScratch,
    ctx: DecodeContext<'_>,
) -> Result<Event<'s>, SampleError> {
    if sample.len() < HEADER_LEN {
        return Err(SampleError::Short {
            len: sample.len(),
            need: HEADER_LEN,
        });
    }
    let kind = u32_at(sample, 0);
    let need = HEADER_LEN
        + match kind {
            KIND_EXEC => EXEC_BODY_LEN,
            KIND_FORK => FORK_BODY_LEN,
            KIND_EXIT => EXIT_BODY_LEN,
            KIND_FILE => FILE_BODY_LEN,
            KIND_CRED => CRED_BODY_LEN,
            kind => return Err(SampleError::Kind { kind }),
        };
    if sample.len() < need {
        return Err(SampleError::Short {
            len: sample.len(),
            need,
        });
    }
    let clock = ctx.clock;
    let flags = u32_at(sample, 4);
    let meta = EventMeta {
        sensor_seq: 0,
        source: Source::Ebpf,
        os: OsType::Linux,
        flags: 0,
        time_ns: clock.to_unix_ns(u64_at(sample, 8)),
        // Stamped by the publisher.
        captured_ns: 0,
        es_seq_num: None,
        es_global_seq_num: None,
    };
    let actor = Actor {
        pid: u32_at(sample, 24),
        start_time_ns: Some(clock.start_unix_ns(u64_at(sample, 16))),
        ppid: Some(u32_at(sample, 28)),
        uid: Some(u32_at(sample, 32)),
        euid: Some(u32_at(sample, 36)),
        gid: Some(u32_at(sample, 40)),
        egid: Some(u32_at(sample, 44)),
        ..Actor::default()
    };
    let body = &sample[need..];
    match kind {
        KIND_EXEC => decode_exec(sample, body, flags, meta, actor, scratch, ctx),
        KIND_FORK => {
            let b = &sample[HEADER_LEN..];
            Ok(Event::Fork(ForkEvent {
                meta,
                parent: actor,
                child_pid: u32_at(b, 0),
                child_pidversion: None,
                child_start_time_ns: Some(clock.start_unix_ns(u64_at(b, 8))),
            }))
        }
        KIND_EXIT => {
            let status = u32_at(sample, HEADER_LEN).cast_signed();
            Ok(Event::Exit(ExitEvent {
                meta,
                process: actor,
                exit_code: Some(nightjar_proto::event::exit_code_from_wait_status(status)),
            }))
        }
        KIND_CRED => decode_cred(&sample[HEADER_LEN..], meta, actor).map(Event::Cred),
        _ => decode_file(sample, body, flags, meta, actor, scratch),
    }
}

/// A credential or session change: the header has the ids after it, the body those before
/// (none for a session change, whose probe runs after the fact) and the saved ids and session.
fn decode_cred(
    b: &[u8],
    meta: EventMeta,
    process: Actor<'static>,
) -> Result<CredEvent<'static>, SampleError> {
    let change = match u32_at(b, 0) {
        1 => CredChange::Uid,
        2 => CredChange::Gid,
        3 => CredChange::SessionId,
        change => return Err(SampleError::Change { change }),
    };
    let sid = Some(u32_at(b, 36));
    let (before, after) = if change == CredChange::SessionId {
        let ids = CredIds {
            uid: process.uid,
            euid: process.euid,
            gid: process.gid,
            egid: process.egid,
            ..CredIds::default()
        };
        (ids, CredIds { sid, ..ids })
    } else {
        let before = CredIds {
            uid: Some(u32_at(b, 4)),
            euid: Some(u32_at(b, 8)),
            suid: Some(u32_at(b, 12)),
            gid: Some(u32_at(b, 16)),
            egid: Some(u32_at(b, 20)),
            sgid: Some(u32_at(b, 24)),
            sid,
        };
        let after = CredIds {
            uid: process.uid,
            euid: process.euid,
            suid: Some(u32_at(b, 28)),
            gid: process.gid,
            egid: process.egid,
            sgid: Some(u32_at(b, 32)),
            sid,
        };
        (before, after)
    };
    Ok(CredEvent {
        meta,
        process,
        change,
        before,
        after,
    })
}

fn decode_file<'s>(
    sample: &'s [u8],
    body: &'s [u8],
    flags: u32,
    mut meta: EventMeta,
    process: Actor<'static>,
    scratch: &'s mut SampleScratch,
) -> Result<Event<'s>, SampleError> {
    let b = &sample[HEADER_LEN..];
    let action = match u32_at(b, 0) {
        1 => FileAction::Creation,
        2 => FileAction::Modification,
        3 => FileAction::Rename,
        4 => FileAction::Deletion,
        action => return Err(SampleError::Action { action }),
    };
    let [path, original] = split(sample.len(), body, [u16_at(b, 4), u16_at(b, 6)])?;
    if flags & F_PATH_TRUNCATED != 0 {
        meta.flags |= TRUNC_FILE_PATH;
    }
    let SampleScratch {
        file_path,
        original: original_buf,
        ..
    } = scratch;
    let original_path =
        (action == FileAction::Rename).then(|| Cow::Borrowed(lossy_into(original, original_buf)));
    Ok(Event::File(FileEvent {
        meta,
        process,
        action,
        path: Cow::Borrowed(lossy_into(path, file_path)),
        original_path,
        launch_executable: None,
    }))
}

/// Whether a cgroup's leaf name is a container's (Docker, containerd, CRI-O, Podman, LXC, or
/// the bare 64-hex id Docker's cgroupfs driver uses).
pub fn is_container_cgroup(leaf: &str) -> bool {
    is_container_cgroup_bytes(leaf.as_bytes())
}

/// [`is_container_cgroup`] of the leaf's bytes as the kernel gives them (the names compared
/// are ASCII, so no UTF-8 check is needed).
fn is_container_cgroup_bytes(leaf: &[u8]) -> bool {
    const PREFIXES: [&[u8]; 7] = [
        b"docker-",
        b"cri-containerd-",
        b"crio-",
        b"libpod-",
        b"containerd-",
        b"lxc.payload.",
        b"k8s_",
    ];
    PREFIXES.iter().any(|p| leaf.starts_with(p))
        || (leaf.len() == 64 && leaf.iter().all(u8::is_ascii_hexdigit))
}

/// Pushes the arguments of a NUL-separated argv `block` (whose last piece may be an argument
/// cut by the probe's bound); `skip_first` drops the first piece (a block that starts inside
/// an argument). Returns how many were pushed.
fn push_block(block: &[u8], skip_first: bool, args: &mut ArgsBuilder, buf: &mut String) -> u32 {
    if block.is_empty() {
        return 0;
    }
    let body = block.strip_suffix(b"\0").unwrap_or(block);
    let mut pieces = body.split(|&c| c == 0);
    if skip_first {
        pieces.next();
    }
    let mut pushed = 0;
    for piece in pieces {
        args.push(lossy_into(piece, buf));
        pushed += 1;
    }
    pushed
}

/// A whole NUL-separated argv block (every argument, the last one NUL-terminated or not) as
/// [`Args`] borrowing from it, when it is valid UTF-8 and within the model's bounds; `None`
/// sends it through the builder, which cuts and converts.
fn borrow_block(block: &[u8]) -> Option<Args<'_>> {
    if block.is_empty() {
        return Some(Args::default());
    }
    let body = block.strip_suffix(b"\0").unwrap_or(block);
    if body.len() > MAX_ARGV_BYTES {
        return None;
    }
    Args::from_separated(Cow::Borrowed(std::str::from_utf8(body).ok()?))
}

fn decode_exec<'s>(
    sample: &'s [u8],
    body: &'s [u8],
    flags: u32,
    meta: EventMeta,
    actor: Actor<'static>,
    scratch: &'s mut SampleScratch,
    ctx: DecodeContext<'_>,
) -> Result<Event<'s>, SampleError> {
    let b = &sample[HEADER_LEN..];
    let lens = [
        u16_at(b, 28), // exe
        u16_at(b, 30), // cwd
        u16_at(b, 32), // argv head
        u16_at(b, 34), // argv tail
        u16_at(b, 36), // env
        u16_at(b, 38), // tty
        u16_at(b, 40), // cgroup leaf
    ];
    let [exe, cwd, head, tail, env, tty, cgroup] = split(sample.len(), body, lens)?;
    let argc = u32_at(b, 24);

    let mut ev_flags = 0;
    if flags & F_PATH_TRUNCATED != 0 {
        ev_flags |= TRUNC_EXECUTABLE;
    }
    if flags & F_CWD_TRUNCATED != 0 {
        ev_flags |= TRUNC_CWD;
    }
    if flags & (F_ARGS_TRUNCATED | F_ARGS_UNREADABLE) != 0 {
        // Unreadable argv arrives empty: flagged as cut, never passed off as "no arguments".
        ev_flags |= TRUNC_ARGS;
    }
    if flags & F_BLOCKED != 0 {
        ev_flags |= FLAG_BLOCKED;
    }

    let SampleScratch {
        args: builder,
        env: env_builder,
        arg,
        joined,
        path,
        cwd: cwd_buf,
        tty: tty_buf,
        ..
    } = scratch;

    // argv: the whole block, or its head and its tail around a dropped middle. A whole
    // block that is valid UTF-8 and within the model's bounds (nearly every exec) is
    // borrowed as it is; the builder copies only what it must cut or convert.
    let whole = if flags & F_ARGS_TRUNCATED != 0 {
        None
    } else if !tail.is_empty() {
        // Head and tail meet (argv between the head bound and both bounds): one block.
        joined.clear();
        joined.extend_from_slice(head);
        joined.extend_from_slice(tail);
        let joined: &'s [u8] = joined;
        Some(joined)
    } else if flags & F_ARGS_UNREADABLE != 0 {
        // Empty, with argc saying how many are missing.
        None
    } else {
        Some(head)
    };
    let args = match whole.map(|block| (block, borrow_block(block))) {
        Some((_, Some(args))) => args,
        Some((block, None)) => {
            builder.clear();
            push_block(block, false, builder, arg);
            if builder.is_cut() {
                ev_flags |= TRUNC_ARGS;
            }
            builder.args()
        }
        None => {
            builder.clear();
            let held = push_block(head, false, builder, arg);
            if flags & F_ARGS_TRUNCATED != 0 {
                let tail_body = tail.strip_suffix(b"\0").unwrap_or(tail);
                let in_tail = if tail.is_empty() {
                    0
                } else {
                    nul_count(tail_body) as u32
                };
                builder.elide(argc.saturating_sub(held + in_tail));
                push_block(tail, true, builder, arg);
            } else if argc > held {
                builder.elide(argc - held);
            }
            if builder.is_cut() {
                ev_flags |= TRUNC_ARGS;
            }
            builder.args()
        }
    };

    // The entries' names are compared as bytes; only the wanted ones are checked as UTF-8.
    let env_vars = if !ctx.env.is_empty() && !env.is_empty() {
        env_builder.clear();
        let entries = env
            .strip_suffix(b"\0")
            .unwrap_or(env)
            .split(|&c| c == 0)
            .filter(|e| ctx.env.wants_bytes(e))
            .filter_map(|e| std::str::from_utf8(e).ok());
        if ctx.env.collect(entries, env_builder) || flags & F_ENV_TRUNCATED != 0 {
            ev_flags |= TRUNC_ENV;
        }
        env_builder.args()
    } else {
        Args::default()
    };

    let pid = actor.pid;
    let ppid = actor.ppid;
    let has_login = flags & F_NO_LOGINUID == 0;
    let auid = u32_at(b, 0);
    let session = u32_at(b, 4);
    let sid = u32_at(b, 8);
    let pgid = u32_at(b, 12);
    let pidns_level = u32_at(b, 20);
    let executable = Cow::Borrowed(lossy_into(exe, path));
    let cwd = (flags & F_CWD != 0).then(|| Cow::Borrowed(lossy_into(cwd, cwd_buf)));
    let tty = (!tty.is_empty()).then(|| Cow::Borrowed(lossy_into(tty, tty_buf)));
    // Built in place as the `Event` it is returned as: no copy of the whole event on the way.
    Ok(Event::Exec(ExecEvent {
        sensor_seq: 0,
        source: meta.source,
        os: meta.os,
        flags: ev_flags,
        time_ns: meta.time_ns,
        captured_ns: 0,
        es_seq_num: None,
        es_global_seq_num: None,
        target: Target {
            pid,
            ppid,
            uid: actor.uid,
            euid: actor.euid,
            gid: actor.gid,
            egid: actor.egid,
            auid: (has_login && auid != UNSET_ID).then_some(auid),
            session_id: (has_login && session != UNSET_ID).then_some(session),
            executable,
            args,
            cwd,
            tty,
            start_time_ns: actor.start_time_ns,
            session_leader_pid: (sid != 0).then_some(sid),
            group_leader_pid: (pgid != 0).then_some(pgid),
            container: Some(pidns_level > 0 || is_container_cgroup_bytes(cgroup)),
            env_vars,
            ..Target::default()
        },
        // exec keeps the pid: the image that called exec is the same process.
        caller: Caller {
            pid: Some(pid),
            ppid,
            ..Caller::default()
        },
        responsible_pid: None,
    }))
}

/// What an exec sample holds, for [`encode_exec_sample`] (tests and the bench).
#[derive(Debug, Clone, Default)]
pub struct ExecSample<'a> {
    pub time_boot_ns: u64,
    pub start_boot_ns: u64,
    pub pid: u32,
    pub ppid: u32,
    /// uid, euid, gid, egid.
    pub ids: [u32; 4],
    pub auid: u32,
    pub audit_session: u32,
    pub sid: u32,
    pub pgid: u32,
    pub pidns_level: u32,
    pub argc: u32,
    pub flags: u32,
    pub exe: &'a [u8],
    pub cwd: &'a [u8],
    pub head: &'a [u8],
    pub tail: &'a [u8],
    pub env: &'a [u8],
    pub tty: &'a [u8],
    pub cgroup: &'a [u8],
}

fn put_hdr(out: &mut Vec<u8>, kind: u32, flags: u32, time: u64, start: u64, ids: [u32; 6]) {
    out.clear();
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
}

fn len16(b: &[u8]) -> [u8; 2] {
    u16::try_from(b.len()).unwrap_or(u16::MAX).to_le_bytes()
}

/// Builds an exec sample the way the probe lays it out.
pub fn encode_exec_sample(out: &mut Vec<u8>, s: &ExecSample<'_>) {
    let [uid, euid, gid, egid] = s.ids;
    put_hdr(
        out,
        KIND_EXEC,
        s.flags,
        s.time_boot_ns,
        s.start_boot_ns,
        [s.pid, s.ppid, uid, euid, gid, egid],
    );
    for v in [
        s.auid,
        s.audit_session,
        s.sid,
        s.pgid,
        s.pid,
        s.pidns_level,
        s.argc,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for part in [s.exe, s.cwd, s.head, s.tail, s.env, s.tty, s.cgroup] {
        out.extend_from_slice(&len16(part));
    }
    out.extend_from_slice(&0u16.to_le_bytes());
    for part in [s.exe, s.cwd, s.head, s.tail, s.env, s.tty, s.cgroup] {
        out.extend_from_slice(part);
    }
}

/// Builds a file sample the way the probe lays it out.
#[allow(clippy::too_many_arguments)]
pub fn encode_file_sample(
    out: &mut Vec<u8>,
    time_boot_ns: u64,
    pid: u32,
    action: u32,
    flags: u32,
    path: &[u8],
    original: &[u8],
) {
    put_hdr(
        out,
        KIND_FILE,
        flags,
        time_boot_ns,
        time_boot_ns / 2,
        [pid, 1, 0, 0, 0, 0],
    );
    out.extend_from_slice(&action.to_le_bytes());
    out.extend_from_slice(&len16(path));
    out.extend_from_slice(&len16(original));
    out.extend_from_slice(b"touch\0\0\0\0\0\0\0\0\0\0\0");
    out.extend_from_slice(path);
    out.extend_from_slice(original);
}

/// Builds a fork or exit sample the way the probe lays it out.
pub fn encode_lifecycle_sample(out: &mut Vec<u8>, kind: u32, pid: u32, child_or_status: u32) {
    put_hdr(out, kind, 0, 100, 50, [pid, 1, 0, 0, 0, 0]);
    if kind == KIND_FORK {
        out.extend_from_slice(&child_or_status.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&99u64.to_le_bytes());
    } else {
        out.extend_from_slice(&child_or_status.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
}

/// Builds a credential or session change sample the way the probe lays it out: `old` and
/// `new` are `[uid, euid, suid, gid, egid, sgid]`.
pub fn encode_cred_sample(
    out: &mut Vec<u8>,
    pid: u32,
    change: u32,
    old: [u32; 6],
    new: [u32; 6],
    sid: u32,
) {
    let [uid, euid, suid, gid, egid, sgid] = new;
    put_hdr(out, KIND_CRED, 0, 100, 50, [pid, 1, uid, euid, gid, egid]);
    out.extend_from_slice(&change.to_le_bytes());
    for v in old.into_iter().chain([suid, sgid, sid]) {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests;
