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

use nightjar_proto::text::{lossy_into, push_lossy};

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
    (!bytes.is_empty()).then(|| Cow::Borrowed(lossy_into(bytes, buf)))
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
            // Stamped by the publisher.
            captured_ns: 0,
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
                // The audit session, as eslogger and the Linux probe report it.
                session_id: Some(token.asid),
                executable: Cow::Borrowed(lossy_into(t.executable, executable)),
                args,
                cwd: self
                    .cwd
                    .filter(|_| v >= 3)
                    .map(|c| Cow::Borrowed(lossy_into(c, cwd))),
                signing_id: nonempty(t.signing_id, target_signing_id),
                team_id: nonempty(t.team_id, target_team_id),
                cdhash,
                platform_binary: Some(t.is_platform_binary),
                cs_flags: Some(t.codesigning_flags),
                tty: t
                    .tty
                    .filter(|_| v >= 2)
                    .map(|s| Cow::Borrowed(lossy_into(s, tty))),
                start_time_ns,
                session_leader_pid: Some(t.session_id),
                group_leader_pid: Some(t.group_id),
                container: None,
                env_vars: Args::default(),
            },
            caller: Caller {
                pid: Some(p.audit_token.pid),
                ppid: Some(p.ppid),
                executable: Some(Cow::Borrowed(lossy_into(p.executable, caller_executable))),
                signing_id: nonempty(p.signing_id, caller_signing_id),
                team_id: nonempty(p.team_id, caller_team_id),
                platform_binary: Some(p.is_platform_binary),
                cs_flags: Some(p.codesigning_flags),
            },
            responsible_pid: responsible.map(|r| r.pid),
        }
    }
}

#[cfg(test)]
mod tests {
    use nightjar_proto::event::TRUNC_ARGS;

    use super::*;

    const ZSH_CDHASH: [u8; 20] = [
        0xb1, 0xfd, 0x29, 0xae, 0xa4, 0xda, 0xd2, 0xaf, 0x84, 0xfa, 0xd3, 0x4e, 0x1f, 0x3c, 0x7f,
        0xc8, 0x00, 0x11, 0x22, 0x33,
    ];

    fn tok(pid: u32, pidversion: u32) -> EsAuditToken {
        EsAuditToken {
            auid: 501,
            euid: 501,
            egid: 20,
            ruid: 501,
            rgid: 20,
            pid,
            asid: 100_013,
            pidversion,
        }
    }

    /// `zsh` (pid 702, in Terminal) running `kcc copy_cred_cache`, as macOS fills an
    /// es_message_t of `version`, with every field set whatever the version: the mapping
    /// must ignore what the version does not carry.
    fn kcc_message(
        version: u32,
        args: Vec<&'static [u8]>,
    ) -> EsExecFields<'static, std::vec::IntoIter<&'static [u8]>> {
        let caller = EsProcessFields {
            audit_token: tok(702, 3001),
            ppid: 650,
            original_ppid: 650,
            group_id: 702,
            session_id: 650,
            codesigning_flags: 0x2200_0001,
            is_platform_binary: true,
            cdhash: ZSH_CDHASH,
            signing_id: b"com.apple.zsh",
            team_id: b"",
            executable: b"/bin/zsh",
            tty: Some(b"/dev/ttys001"),
            start_time: Some((1_795_000_000, 250_000)),
            parent_audit_token: Some(tok(650, 2999)),
            responsible_audit_token: Some(tok(410, 77)),
        };
        let target = EsProcessFields {
            audit_token: EsAuditToken {
                auid: AU_DEFAUDITID,
                ..tok(702, 3002)
            },
            // Stale on purpose: the parent audit token (v4+) is the exact parent.
            ppid: 1,
            cdhash: [0; 20],
            signing_id: b"com.apple.kcc",
            executable: b"/usr/bin/kcc",
            ..caller.clone()
        };
        EsExecFields {
            version,
            time_ns: 1_795_000_001_000_000_123,
            seq_num: Some(41),
            global_seq_num: Some(977),
            process: caller,
            target,
            args: args.into_iter(),
            cwd: Some(b"/Users/bob"),
        }
    }

    #[test]
    fn versions_4_to_8_carry_every_field_of_the_model() {
        for version in 4..=8 {
            let mut scratch = EsScratch::default();
            let ev = kcc_message(version, vec![b"kcc", b"copy_cred_cache"]).to_event(&mut scratch);
            let t = &ev.target;
            assert_eq!(
                (ev.source, ev.os),
                (Source::EndpointSecurity, OsType::Macos)
            );
            assert_eq!(ev.time_ns, 1_795_000_001_000_000_123);
            assert_eq!(
                (ev.es_seq_num, ev.es_global_seq_num),
                (Some(41), Some(977)),
                "v{version}"
            );
            assert_eq!((t.pid, t.pidversion), (702, Some(3002)));
            assert_eq!(
                t.ppid,
                Some(650),
                "v{version}: parent audit token wins over ppid"
            );
            assert_eq!(t.original_ppid, Some(650));
            assert_eq!(
                (t.uid, t.euid, t.gid, t.egid),
                (Some(501), Some(501), Some(20), Some(20))
            );
            assert_eq!(t.auid, None, "AU_DEFAUDITID means no login");
            assert_eq!(t.session_id, Some(100_013));
            assert_eq!(t.executable, "/usr/bin/kcc");
            assert_eq!(ev.process_name(), "kcc");
            assert_eq!(
                t.args.iter().collect::<Vec<_>>(),
                ["kcc", "copy_cred_cache"]
            );
            assert_eq!(t.cwd.as_deref(), Some("/Users/bob"));
            assert_eq!(t.tty.as_deref(), Some("/dev/ttys001"));
            assert_eq!(t.start_time_ns, Some(1_795_000_000_250_000_000));
            assert_eq!(t.signing_id.as_deref(), Some("com.apple.kcc"));
            assert_eq!(t.team_id, None, "an empty team id is absent, not empty");
            assert_eq!(t.cdhash, None, "an all-zero cdhash is absent");
            assert_eq!(
                (t.platform_binary, t.cs_flags),
                (Some(true), Some(0x2200_0001))
            );
            assert_eq!(ev.caller.pid, Some(702));
            assert_eq!(ev.caller.ppid, Some(650));
            assert_eq!(ev.caller.executable.as_deref(), Some("/bin/zsh"));
            assert_eq!(ev.caller.signing_id.as_deref(), Some("com.apple.zsh"));
            assert_eq!(ev.responsible_pid, Some(410));
            assert_eq!(ev.flags, 0);
            assert!(ev.validate().is_ok());
        }
    }

    #[test]
    fn older_versions_lose_exactly_the_fields_they_lack() {
        let mut scratch = EsScratch::default();
        let ev = kcc_message(3, vec![b"kcc"]).to_event(&mut scratch);
        assert_eq!((ev.es_seq_num, ev.es_global_seq_num), (Some(41), None));
        assert_eq!(ev.target.ppid, Some(1), "no parent audit token before v4");
        assert_eq!(ev.responsible_pid, None);
        assert!(ev.target.cwd.is_some() && ev.target.start_time_ns.is_some());
        let ev = kcc_message(2, vec![b"kcc"]).to_event(&mut scratch);
        assert_eq!(
            (ev.target.cwd.as_deref(), ev.target.start_time_ns),
            (None, None)
        );
        assert_eq!(ev.target.tty.as_deref(), Some("/dev/ttys001"));
        let ev = kcc_message(1, vec![b"kcc"]).to_event(&mut scratch);
        assert_eq!((ev.es_seq_num, ev.target.tty.as_deref()), (None, None));
    }

    #[test]
    fn cdhash_is_lowercase_hex_and_odd_bytes_are_replaced() {
        let mut msg = kcc_message(8, vec![b"kcc", b"\xffcopy_cred_cache", b""]);
        msg.target.cdhash = ZSH_CDHASH;
        msg.target.executable = b"/tmp/k\xc3cc";
        let mut scratch = EsScratch::default();
        let ev = msg.to_event(&mut scratch);
        assert_eq!(
            ev.target.cdhash.as_deref(),
            Some("b1fd29aea4dad2af84fad34e1f3c7fc800112233")
        );
        assert_eq!(ev.target.executable, "/tmp/k\u{FFFD}cc");
        assert_eq!(
            ev.target.args.iter().collect::<Vec<_>>(),
            ["kcc", "\u{FFFD}copy_cred_cache", ""]
        );
    }

    #[test]
    fn scratch_is_reused_across_messages() {
        let mut scratch = EsScratch::default();
        for round in 0..3 {
            let ev = kcc_message(7, vec![b"a", b"b"]).to_event(&mut scratch);
            assert_eq!(
                ev.target.args.iter().collect::<Vec<_>>(),
                ["a", "b"],
                "round {round}"
            );
        }
        let ev = kcc_message(7, vec![]).to_event(&mut scratch);
        assert!(ev.target.args.is_empty());
    }

    #[test]
    fn argv_over_the_bound_is_cut_and_flagged() {
        let many: Vec<&'static [u8]> = vec![b"x"; nightjar_proto::event::MAX_ARGS + 3];
        let mut scratch = EsScratch::default();
        let ev = kcc_message(6, many).to_event(&mut scratch);
        assert_eq!(ev.target.args.len(), nightjar_proto::event::MAX_ARGS);
        assert_eq!(ev.flags & TRUNC_ARGS, TRUNC_ARGS);
    }
}
