//! What one Endpoint Security exec message carries, and its mapping to an [`ExecEvent`].
//!
//! [`EsExecFields`] is a borrowed snapshot of an `es_message_t` holding an
//! `es_event_exec_t`: on macOS it is filled from the live message inside the ES handler,
//! elsewhere from test data. [`EsExecFields::to_event`] applies Apple's version rules (a field
//! introduced in message version N must not be read from an older message) and converts byte
//! strings without allocating, using [`EsScratch`] buffers that live as long as the client.
//!
//! Fields by message version (Apple's `es_message_t` / `es_process_t` / `es_event_exec_t`
//! documentation): `seq_num`, `tty` since 2; `start_time`, exec `cwd` since 3;
//! `global_seq_num`, `parent_audit_token`, `responsible_audit_token` since 4. macOS 13's
//! messages are version 6-7, macOS 14's 7-8.

use std::borrow::Cow;

use nightjar_proto::{Args, Caller, ExecEvent, OsType, Source, Target};

use crate::text::{lossy_into, push_lossy};

/// The audit id of a process that never logged in (`AU_DEFAUDITID`).
pub const AU_DEFAUDITID: u32 = u32::MAX;

/// An `audit_token_t`, decoded (`audit_token_to_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EsAuditToken {
    pub auid: u32,
    pub euid: u32,
    pub egid: u32,
    pub ruid: u32,
    pub rgid: u32,
    pub pid: u32,
    pub asid: u32,
    pub pidversion: u32,
}

/// An `es_process_t`, borrowed. Fields added after version 1 are `Option`: `None` when the
/// message is too old to carry them.
#[derive(Debug, Clone, Default)]
pub struct EsProcessFields<'a> {
    pub audit_token: EsAuditToken,
    pub ppid: u32,
    pub original_ppid: u32,
    pub group_id: u32,
    pub session_id: u32,
    pub codesigning_flags: u32,
    pub is_platform_binary: bool,
    pub cdhash: [u8; 20],
    /// Empty when unsigned.
    pub signing_id: &'a [u8],
    /// Empty when not signed by a team.
    pub team_id: &'a [u8],
    pub executable: &'a [u8],
    /// Version 2+; `None` also when the process has no controlling terminal.
    pub tty: Option<&'a [u8]>,
    /// Version 3+: Unix seconds and microseconds.
    pub start_time: Option<(i64, i64)>,
    /// Version 4+.
    pub parent_audit_token: Option<EsAuditToken>,
    /// Version 4+.
    pub responsible_audit_token: Option<EsAuditToken>,
}

/// An `es_message_t` with an `es_event_exec_t`, borrowed. `args` yields argv in order.
#[derive(Debug, Clone)]
pub struct EsExecFields<'a, A> {
    pub version: u32,
    /// Message time, Unix nanoseconds.
    pub time_ns: i64,
    /// Version 2+.
    pub seq_num: Option<u64>,
    /// Version 4+.
    pub global_seq_num: Option<u64>,
    /// The image that called exec (`message->process`).
    pub process: EsProcessFields<'a>,
    /// The new image (`event.exec.target`).
    pub target: EsProcessFields<'a>,
    pub args: A,
    /// Version 3+.
    pub cwd: Option<&'a [u8]>,
}

/// Buffers reused across messages: argv, and lossy copies of the rare non-UTF-8 strings.
#[derive(Debug, Default)]
pub struct EsScratch {
    args: Args<'static>,
    arg: String,
    executable: String,
    cwd: String,
    tty: String,
    target_signing_id: String,
    target_team_id: String,
    caller_executable: String,
    caller_signing_id: String,
    caller_team_id: String,
    cdhash: String,
}

fn nonempty<'s>(bytes: &'s [u8], buf: &'s mut String) -> Option<Cow<'s, str>> {
    (!bytes.is_empty()).then(|| lossy_into(bytes, buf))
}

fn hex_into(bytes: &[u8; 20], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

impl<'a, A> EsExecFields<'a, A>
where
    A: Iterator<Item = &'a [u8]>,
{
    /// The sequence numbers this message carries, per its version.
    pub fn seq_nums(&self) -> (Option<u64>, Option<u64>) {
        (
            self.seq_num.filter(|_| self.version >= 2),
            self.global_seq_num.filter(|_| self.version >= 4),
        )
    }

    /// Maps the message to an event borrowing from the message and from `scratch`.
    pub fn to_event<'s>(self, scratch: &'s mut EsScratch) -> ExecEvent<'s>
    where
        'a: 's,
    {
        let v = self.version;
        let (es_seq_num, es_global_seq_num) = self.seq_nums();
        let EsScratch {
            args,
            arg,
            executable,
            cwd,
            tty,
            target_signing_id,
            target_team_id,
            caller_executable,
            caller_signing_id,
            caller_team_id,
            cdhash,
        } = scratch;

        let mut flags = 0;
        args.clear();
        for a in self.args {
            let fits = match std::str::from_utf8(a) {
                Ok(s) => args.push(s),
                Err(_) => {
                    arg.clear();
                    push_lossy(a, arg);
                    args.push(arg)
                }
            };
            if !fits {
                flags |= nightjar_proto::event::TRUNC_ARGS;
                break;
            }
        }
        let args: &'s Args<'static> = args;
        let args =
            Args::from_joined(Cow::Borrowed(args.joined()), args.len() as u32).unwrap_or_default();

        let t = &self.target;
        let p = &self.process;
        let cdhash = if t.cdhash == [0; 20] {
            None
        } else {
            hex_into(&t.cdhash, cdhash);
            Some(Cow::Borrowed(cdhash.as_str()))
        };
        let start_time_ns = t.start_time.filter(|_| v >= 3).map(|(sec, usec)| {
            sec.saturating_mul(1_000_000_000)
                .saturating_add(usec.saturating_mul(1000))
        });
        let parent = t.parent_audit_token.filter(|_| v >= 4);
        let responsible = t.responsible_audit_token.filter(|_| v >= 4);
        let token = t.audit_token;
        ExecEvent {
            sensor_seq: 0,
            source: Source::EndpointSecurity,
            os: OsType::Macos,
            flags,
            time_ns: self.time_ns,
            es_seq_num,
            es_global_seq_num,
            target: Target {
                pid: token.pid,
                pidversion: Some(token.pidversion),
                // The parent audit token is exact; `ppid` alone can be stale.
                ppid: Some(parent.map_or(t.ppid, |p| p.pid)),
                original_ppid: Some(t.original_ppid),
                uid: Some(token.ruid),
                euid: Some(token.euid),
                gid: Some(token.rgid),
                egid: Some(token.egid),
                auid: (token.auid != AU_DEFAUDITID).then_some(token.auid),
                session_id: Some(t.session_id),
                executable: lossy_into(t.executable, executable),
                args,
                cwd: self.cwd.filter(|_| v >= 3).map(|c| lossy_into(c, cwd)),
                signing_id: nonempty(t.signing_id, target_signing_id),
                team_id: nonempty(t.team_id, target_team_id),
                cdhash,
                platform_binary: Some(t.is_platform_binary),
                cs_flags: Some(t.codesigning_flags),
                tty: t.tty.filter(|_| v >= 2).map(|s| lossy_into(s, tty)),
                start_time_ns,
            },
            caller: Caller {
                pid: Some(p.audit_token.pid),
                ppid: Some(p.ppid),
                executable: Some(lossy_into(p.executable, caller_executable)),
                signing_id: nonempty(p.signing_id, caller_signing_id),
                team_id: nonempty(p.team_id, caller_team_id),
                platform_binary: Some(p.is_platform_binary),
                cs_flags: Some(p.codesigning_flags),
            },
            responsible_pid: responsible.map(|r| r.pid),
        }
    }
}
