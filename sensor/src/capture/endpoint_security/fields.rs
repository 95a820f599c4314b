//! What one Endpoint Security message carries, and its mapping to an event.
//!
//! [`EsExecFields`] is a borrowed snapshot of an `es_message_t` holding an `es_event_exec_t`
//! (`NOTIFY_EXEC`, and `AUTH_EXEC` for blocking); [`EsMessage`] adds fork, exit and the file
//! events. On macOS they are filled from the live message inside the ES handler, elsewhere from
//! test data. The mapping applies Apple's version rules (a field introduced in message version
//! N must not be read from an older message) and converts byte strings without allocating,
//! using [`EsScratch`] buffers that live as long as the client.
//!
//! Fields by message version (Apple's `es_message_t` / `es_process_t` / `es_event_exec_t`
//! documentation): `seq_num`, `tty` since 2; `start_time`, exec `cwd` since 3;
//! `global_seq_num`, `parent_audit_token`, `responsible_audit_token` since 4. macOS 13's
//! messages are version 6-7, macOS 14's 7-8.

use std::borrow::Cow;

use nightjar_proto::event::{
    Actor, ArgsBuilder, EnvFilter, Event, EventKind, EventMeta, ExitEvent, FileAction, FileEvent,
    ForkEvent, SetIdCall, TRUNC_ARGS, TRUNC_CALLER_EXECUTABLE, TRUNC_CWD, TRUNC_ENV,
    TRUNC_EXECUTABLE, TRUNC_FILE_PATH, exit_code_from_wait_status, launch_item_path,
};
use nightjar_proto::{Caller, ExecEvent, OsType, Source, Target};

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
    /// Endpoint Security cut the executable's path (`path_truncated`).
    pub executable_truncated: bool,
    /// Version 2+; `None` also when the process has no controlling terminal.
    pub tty: Option<&'a [u8]>,
    /// Version 3+: Unix seconds and microseconds.
    pub start_time: Option<(i64, i64)>,
    /// Version 4+.
    pub parent_audit_token: Option<EsAuditToken>,
    /// Version 4+.
    pub responsible_audit_token: Option<EsAuditToken>,
}

/// An `es_message_t` with an `es_event_exec_t`, borrowed. `args` yields argv in order, `env`
/// the environment (only the configured names are kept).
#[derive(Debug, Clone)]
pub struct EsExecFields<'a, A, E = std::iter::Empty<&'a [u8]>> {
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
    pub env: E,
    /// Version 3+.
    pub cwd: Option<&'a [u8]>,
    /// Version 3+: the working directory's path was cut.
    pub cwd_truncated: bool,
}

/// Buffers reused across messages: argv, the environment, joined file paths, and lossy copies
/// of the rare non-UTF-8 strings.
#[derive(Debug, Default)]
pub struct EsScratch {
    args: ArgsBuilder,
    env: ArgsBuilder,
    arg: String,
    path: String,
    original: String,
    executable: String,
    cwd: String,
    tty: String,
    target_signing_id: String,
    target_team_id: String,
    caller_executable: String,
    caller_signing_id: String,
    caller_team_id: String,
    cdhash: String,
    launch_executable: String,
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

impl<'a, A, E> EsExecFields<'a, A, E>
where
    A: Iterator<Item = &'a [u8]>,
    E: Iterator<Item = &'a [u8]>,
{
    /// The sequence numbers this message carries, per its version.
    pub fn seq_nums(&self) -> (Option<u64>, Option<u64>) {
        (
            self.seq_num.filter(|_| self.version >= 2),
            self.global_seq_num.filter(|_| self.version >= 4),
        )
    }

    /// Maps the message to an event borrowing from the message and from `scratch`; no
    /// environment variable is kept.
    pub fn to_event<'s>(self, scratch: &'s mut EsScratch) -> ExecEvent<'s>
    where
        'a: 's,
    {
        self.to_event_with(scratch, &EnvFilter::default())
    }

    /// Maps the message, keeping the environment variables `env` names.
    pub fn to_event_with<'s>(
        self,
        scratch: &'s mut EsScratch,
        env_filter: &EnvFilter,
    ) -> ExecEvent<'s>
    where
        'a: 's,
    {
        let v = self.version;
        let (es_seq_num, es_global_seq_num) = self.seq_nums();
        let EsScratch {
            args,
            env,
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
            ..
        } = scratch;

        let mut flags = 0;
        args.clear();
        for a in self.args {
            match std::str::from_utf8(a) {
                Ok(s) => args.push(s),
                Err(_) => {
                    arg.clear();
                    push_lossy(a, arg);
                    args.push(arg)
                }
            }
        }
        if args.is_cut() {
            flags |= TRUNC_ARGS;
        }
        env.clear();
        if !env_filter.is_empty() {
            let entries = self.env.filter_map(|e| std::str::from_utf8(e).ok());
            if env_filter.collect(entries, env) {
                flags |= TRUNC_ENV;
            }
        }
        if self.target.executable_truncated {
            flags |= TRUNC_EXECUTABLE;
        }
        if self.cwd_truncated && v >= 3 {
            flags |= TRUNC_CWD;
        }
        if self.process.executable_truncated {
            flags |= TRUNC_CALLER_EXECUTABLE;
        }

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
                args: args.args(),
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
                env_vars: env.args(),
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

/// What every Endpoint Security message carries besides its event.
#[derive(Debug, Clone, Copy, Default)]
pub struct EsHeader {
    /// `es_event_type_t`.
    pub event_type: u32,
    pub version: u32,
    /// Message time, Unix nanoseconds.
    pub time_ns: i64,
    /// Version 2+.
    pub seq_num: Option<u64>,
    /// Version 4+.
    pub global_seq_num: Option<u64>,
}

impl EsHeader {
    /// The sequence numbers this message carries, per its version.
    pub fn seq_nums(&self) -> (Option<u64>, Option<u64>) {
        (
            self.seq_num.filter(|_| self.version >= 2),
            self.global_seq_num.filter(|_| self.version >= 4),
        )
    }

    fn meta(&self) -> EventMeta {
        let (es_seq_num, es_global_seq_num) = self.seq_nums();
        EventMeta {
            sensor_seq: 0,
            source: Source::EndpointSecurity,
            os: OsType::Macos,
            flags: 0,
            time_ns: self.time_ns,
            captured_ns: 0,
            es_seq_num,
            es_global_seq_num,
        }
    }
}

/// A file as Endpoint Security names it: an `es_file_t` (its path, maybe cut), or a file that
/// does not exist yet (`new_path`: a directory and a name).
#[derive(Debug, Clone, Copy)]
pub enum EsPath<'a> {
    File {
        path: &'a [u8],
        truncated: bool,
    },
    New {
        dir: &'a [u8],
        dir_truncated: bool,
        name: &'a [u8],
    },
}

impl EsPath<'_> {
    /// Writes the path into `buf`; returns whether it was cut.
    fn write(self, buf: &mut String) -> bool {
        buf.clear();
        match self {
            EsPath::File { path, truncated } => {
                push_lossy(path, buf);
                truncated
            }
            EsPath::New {
                dir,
                dir_truncated,
                name,
            } => {
                push_lossy(dir, buf);
                if !buf.ends_with('/') {
                    buf.push('/');
                }
                push_lossy(name, buf);
                dir_truncated
            }
        }
    }
}

/// One Endpoint Security message of a kind Nightjar maps, borrowed.
#[derive(Debug, Clone)]
pub enum EsMessage<'a, A, E> {
    Exec(EsExecFields<'a, A, E>),
    Fork {
        header: EsHeader,
        process: EsProcessFields<'a>,
        child: EsProcessFields<'a>,
    },
    Exit {
        header: EsHeader,
        process: EsProcessFields<'a>,
        /// The `wait(2)` status.
        stat: i32,
    },
    File {
        header: EsHeader,
        process: EsProcessFields<'a>,
        action: FileAction,
        path: EsPath<'a>,
        /// A rename's source.
        original: Option<EsPath<'a>>,
    },
    /// A launch agent or daemon added (`NOTIFY_BTM_LAUNCH_ITEM_ADD`, macOS 13+; the caller
    /// passes only item types 3 and 4): the process that added it (`instigator`, else the
    /// message's own process), the item's `item_url` and `app_url` as Endpoint Security gives
    /// them, and `executable_path`.
    LaunchItem {
        header: EsHeader,
        process: EsProcessFields<'a>,
        item_url: &'a [u8],
        app_url: &'a [u8],
        executable: &'a [u8],
    },
    /// `NOTIFY_SETUID` and relatives: the calling process and the call's arguments.
    SetId {
        header: EsHeader,
        process: EsProcessFields<'a>,
        call: SetIdCall,
    },
}

impl<'a, A, E> EsMessage<'a, A, E>
where
    A: Iterator<Item = &'a [u8]>,
    E: Iterator<Item = &'a [u8]>,
{
    /// `es_event_type_t`, version and numbers, for loss detection.
    pub fn header(&self) -> EsHeader {
        match self {
            EsMessage::Exec(e) => EsHeader {
                event_type: nightjar_proto::eslogger::event_type::NOTIFY_EXEC,
                version: e.version,
                time_ns: e.time_ns,
                seq_num: e.seq_num,
                global_seq_num: e.global_seq_num,
            },
            EsMessage::Fork { header, .. }
            | EsMessage::Exit { header, .. }
            | EsMessage::File { header, .. }
            | EsMessage::LaunchItem { header, .. } => *header,
            EsMessage::SetId { header, .. } => *header,
        }
    }

    /// The kind of event the message maps to.
    pub fn kind(&self) -> EventKind {
        match self {
            EsMessage::Exec(_) => EventKind::Exec,
            EsMessage::Fork { .. } => EventKind::Fork,
            EsMessage::Exit { .. } => EventKind::Exit,
            EsMessage::File { .. } | EsMessage::LaunchItem { .. } => EventKind::File,
            EsMessage::SetId { .. } => EventKind::Cred,
        }
    }

    /// The pid of the process the event is done by (the new image for an exec).
    pub fn pid(&self) -> u32 {
        match self {
            EsMessage::Exec(e) => e.target.audit_token.pid,
            EsMessage::Fork { process, .. }
            | EsMessage::Exit { process, .. }
            | EsMessage::File { process, .. }
            | EsMessage::LaunchItem { process, .. } => process.audit_token.pid,
            EsMessage::SetId { process, .. } => process.audit_token.pid,
        }
    }

    /// Maps the message to an event borrowing from it and from `scratch`.
    pub fn to_event<'s>(self, scratch: &'s mut EsScratch, env: &EnvFilter) -> Event<'s>
    where
        'a: 's,
    {
        match self {
            EsMessage::Exec(e) => Event::Exec(e.to_event_with(scratch, env)),
            EsMessage::Fork {
                header,
                process,
                child,
            } => {
                let mut meta = header.meta();
                let v = header.version;
                let parent = actor(&process, v, scratch, &mut meta.flags);
                Event::Fork(ForkEvent {
                    meta,
                    parent,
                    child_pid: child.audit_token.pid,
                    child_pidversion: Some(child.audit_token.pidversion),
                    child_start_time_ns: start_ns(&child, v),
                })
            }
            EsMessage::SetId {
                header,
                process,
                call,
            } => {
                let mut meta = header.meta();
                let actor = actor(&process, header.version, scratch, &mut meta.flags);
                Event::Cred(call.event(meta, actor))
            }
            EsMessage::Exit {
                header,
                process,
                stat,
            } => {
                let mut meta = header.meta();
                let actor = actor(&process, header.version, scratch, &mut meta.flags);
                Event::Exit(ExitEvent {
                    meta,
                    process: actor,
                    exit_code: Some(exit_code_from_wait_status(stat)),
                })
            }
            EsMessage::File {
                header,
                process,
                action,
                path,
                original,
            } => {
                let mut meta = header.meta();
                let EsScratch {
                    path: path_buf,
                    original: original_buf,
                    executable,
                    caller_signing_id,
                    caller_team_id,
                    ..
                } = scratch;
                let mut cut = path.write(path_buf);
                if let Some(o) = original {
                    cut |= o.write(original_buf);
                }
                if cut {
                    meta.flags |= TRUNC_FILE_PATH;
                }
                let actor = actor_in(
                    &process,
                    header.version,
                    executable,
                    caller_signing_id,
                    caller_team_id,
                    &mut meta.flags,
                );
                Event::File(FileEvent {
                    meta,
                    process: actor,
                    action,
                    path: Cow::Borrowed(path_buf.as_str()),
                    original_path: original.map(|_| Cow::Borrowed(original_buf.as_str())),
                    launch_executable: None,
                })
            }
            EsMessage::LaunchItem {
                header,
                process,
                item_url,
                app_url,
                executable,
            } => {
                let mut meta = header.meta();
                let EsScratch {
                    path: path_buf,
                    original: url_buf,
                    launch_executable,
                    executable: actor_executable,
                    caller_signing_id,
                    caller_team_id,
                    ..
                } = scratch;
                url_buf.clear();
                push_lossy(app_url, url_buf);
                let app = (!url_buf.is_empty()).then(|| url_buf.clone());
                url_buf.clear();
                push_lossy(item_url, url_buf);
                path_buf.clear();
                // An item URL that names no local path is kept as it is: the event is
                // still worth an alert, and the analyst sees what Endpoint Security said.
                match launch_item_path(url_buf, app.as_deref()) {
                    Some(p) => path_buf.push_str(&p),
                    None => path_buf.push_str(url_buf),
                }
                let actor = actor_in(
                    &process,
                    header.version,
                    actor_executable,
                    caller_signing_id,
                    caller_team_id,
                    &mut meta.flags,
                );
                Event::File(FileEvent {
                    meta,
                    process: actor,
                    action: FileAction::LaunchDaemon,
                    path: Cow::Borrowed(path_buf.as_str()),
                    original_path: None,
                    launch_executable: nonempty(executable, launch_executable),
                })
            }
        }
    }
}

fn start_ns(p: &EsProcessFields<'_>, version: u32) -> Option<i64> {
    p.start_time.filter(|_| version >= 3).map(|(sec, usec)| {
        sec.saturating_mul(1_000_000_000)
            .saturating_add(usec.saturating_mul(1000))
    })
}

/// The acting process of a non-exec message, as it carries it.
fn actor<'s>(
    p: &EsProcessFields<'s>,
    version: u32,
    scratch: &'s mut EsScratch,
    flags: &mut u32,
) -> Actor<'s> {
    let EsScratch {
        executable,
        caller_signing_id,
        caller_team_id,
        ..
    } = scratch;
    actor_in(
        p,
        version,
        executable,
        caller_signing_id,
        caller_team_id,
        flags,
    )
}

fn actor_in<'s>(
    p: &EsProcessFields<'s>,
    version: u32,
    executable: &'s mut String,
    signing_id: &'s mut String,
    team_id: &'s mut String,
    flags: &mut u32,
) -> Actor<'s> {
    if p.executable_truncated {
        *flags |= TRUNC_CALLER_EXECUTABLE;
    }
    let token = p.audit_token;
    let parent = p.parent_audit_token.filter(|_| version >= 4);
    Actor {
        pid: token.pid,
        pidversion: Some(token.pidversion),
        start_time_ns: start_ns(p, version),
        ppid: Some(parent.map_or(p.ppid, |t| t.pid)),
        uid: Some(token.ruid),
        euid: Some(token.euid),
        gid: Some(token.rgid),
        egid: Some(token.egid),
        executable: Some(Cow::Borrowed(lossy_into(p.executable, executable))),
        signing_id: nonempty(p.signing_id, signing_id),
        team_id: nonempty(p.team_id, team_id),
        platform_binary: Some(p.is_platform_binary),
        cs_flags: Some(p.codesigning_flags),
        responsible_pid: p
            .responsible_audit_token
            .filter(|_| version >= 4)
            .map(|t| t.pid),
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
            executable_truncated: false,
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
            env: std::iter::empty(),
            cwd: Some(b"/Users/bob"),
            cwd_truncated: false,
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

    fn header(event_type: u32) -> EsHeader {
        EsHeader {
            event_type,
            version: 7,
            time_ns: 5_000,
            seq_num: Some(3),
            global_seq_num: Some(9),
        }
    }

    #[test]
    fn environment_keeps_only_configured_names() {
        let m = kcc_message(7, vec![b"kcc"]);
        let env: Vec<&'static [u8]> = vec![b"PATH=/bin", b"DYLD_INSERT_LIBRARIES=/tmp/x.dylib"];
        let with_env = EsExecFields {
            version: m.version,
            time_ns: m.time_ns,
            seq_num: m.seq_num,
            global_seq_num: m.global_seq_num,
            process: m.process,
            target: m.target,
            args: m.args,
            env: env.into_iter(),
            cwd: m.cwd,
            cwd_truncated: m.cwd_truncated,
        };
        let mut scratch = EsScratch::default();
        let ev = with_env.to_event_with(&mut scratch, &EnvFilter::new(["DYLD_INSERT_LIBRARIES"]));
        assert_eq!(
            ev.target.env_vars.iter().collect::<Vec<_>>(),
            ["DYLD_INSERT_LIBRARIES=/tmp/x.dylib"]
        );
        let mut msg = kcc_message(7, vec![b"kcc"]);
        msg.target.executable_truncated = true;
        let ev = msg.to_event(&mut scratch);
        assert_eq!(
            ev.flags & TRUNC_EXECUTABLE,
            TRUNC_EXECUTABLE,
            "path_truncated is kept"
        );
    }

    /// A setuid-root program (`sudo`-like: real uid 501, effective 0, as exec left it)
    /// calling `setuid(0)`, then `setegid(0)`, as ES delivers NOTIFY_SETUID / NOTIFY_SETEGID:
    /// credential events with the ids after the call.
    #[test]
    fn setid_messages_map_to_credential_changes() {
        use nightjar_proto::event::CredChange;
        type Msg =
            EsMessage<'static, std::iter::Empty<&'static [u8]>, std::iter::Empty<&'static [u8]>>;
        let mut process = kcc_message(7, vec![]).target;
        process.audit_token.euid = 0;
        let mut scratch = EsScratch::default();
        let env = EnvFilter::default();
        let setuid: Msg = EsMessage::SetId {
            header: header(nightjar_proto::eslogger::event_type::NOTIFY_SETUID),
            process: process.clone(),
            call: SetIdCall::Setuid(0),
        };
        assert_eq!(setuid.kind(), EventKind::Cred);
        assert_eq!(setuid.pid(), 702);
        let Event::Cred(c) = setuid.to_event(&mut scratch, &env) else {
            panic!("not a credential change")
        };
        assert_eq!(c.change, CredChange::Uid);
        assert_eq!(c.process.executable.as_deref(), Some("/usr/bin/kcc"));
        assert_eq!(c.process.pidversion, Some(3002));
        assert_eq!((c.before.uid, c.before.euid), (Some(501), Some(0)));
        assert_eq!((c.process.uid, c.process.euid), (Some(0), Some(0)));
        assert_eq!(c.after.suid, Some(0));
        assert_eq!(c.meta.es_seq_num, Some(3));
        let setegid: Msg = EsMessage::SetId {
            header: header(nightjar_proto::eslogger::event_type::NOTIFY_SETEGID),
            process,
            call: SetIdCall::Setegid(0),
        };
        let Event::Cred(c) = setegid.to_event(&mut scratch, &env) else {
            panic!("not a credential change")
        };
        assert_eq!(c.change, CredChange::Gid);
        assert_eq!(
            (c.before.egid, c.process.egid, c.process.gid),
            (Some(20), Some(0), Some(20))
        );
    }

    #[test]
    fn fork_exit_and_file_messages_map_to_their_events() {
        type Msg =
            EsMessage<'static, std::iter::Empty<&'static [u8]>, std::iter::Empty<&'static [u8]>>;
        let shell = kcc_message(7, vec![]).process;
        let mut child = shell.clone();
        child.audit_token = tok(703, 3005);
        let mut scratch = EsScratch::default();
        let env = EnvFilter::default();
        let fork: Msg = EsMessage::Fork {
            header: header(11),
            process: shell.clone(),
            child,
        };
        let Event::Fork(f) = fork.to_event(&mut scratch, &env) else {
            panic!("not a fork")
        };
        assert_eq!(
            (f.parent.pid, f.child_pid, f.child_pidversion),
            (702, 703, Some(3005))
        );
        assert_eq!(f.parent.executable.as_deref(), Some("/bin/zsh"));
        assert_eq!(f.meta.es_seq_num, Some(3));

        let exit: Msg = EsMessage::Exit {
            header: header(15),
            process: shell.clone(),
            stat: 9,
        };
        let Event::Exit(x) = exit.to_event(&mut scratch, &env) else {
            panic!("not an exit")
        };
        assert_eq!(x.exit_code, Some(137));

        let create: Msg = EsMessage::File {
            header: header(13),
            process: shell.clone(),
            action: FileAction::Creation,
            path: EsPath::New {
                dir: b"/Users/bob/Library/LaunchAgents",
                dir_truncated: false,
                name: b"com.evil.plist",
            },
            original: None,
        };
        let Event::File(c) = create.to_event(&mut scratch, &env) else {
            panic!("not a file event")
        };
        assert_eq!(c.path, "/Users/bob/Library/LaunchAgents/com.evil.plist");
        assert_eq!(c.process.signing_id.as_deref(), Some("com.apple.zsh"));
        assert!(c.validate().is_ok());

        let rename: Msg = EsMessage::File {
            header: header(25),
            process: shell,
            action: FileAction::Rename,
            path: EsPath::File {
                path: b"/etc/b",
                truncated: true,
            },
            original: Some(EsPath::File {
                path: b"/tmp/a",
                truncated: false,
            }),
        };
        let Event::File(r) = rename.to_event(&mut scratch, &env) else {
            panic!("not a file event")
        };
        assert_eq!(
            (r.path.as_ref(), r.original_path.as_deref()),
            ("/etc/b", Some("/tmp/a"))
        );
        assert_eq!(r.meta.flags & TRUNC_FILE_PATH, TRUNC_FILE_PATH);
        assert!(r.validate().is_ok());
    }
}
