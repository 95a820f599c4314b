//! Decoder for `eslogger` JSON lines (macOS 13+) into [`Event`]s.
//!
//! `eslogger` prints one JSON object per Endpoint Security message. Its layout follows the
//! message version (fields appear from a given version on; `audit_token` is an object up to
//! version 9 and an 8-integer array from version 10), so the decoder matches keys by name, in
//! any order, and leaves what a version lacks as `None`. Strings without escapes borrow from
//! the input line; only a multi-argument argv, a joined new path and a cdhash in upper case
//! are copied.
//!
//! Messages decoded (`eslogger exec fork exit create close rename unlink [write] setuid
//! seteuid setreuid setgid setegid setregid [open] [deleteextattr] [btm_launch_item_add]`):
//! - `exec` -> [`ExecEvent`]: `event.exec.target` is the new image: pid, pidversion,
//!   ruid/euid/rgid/egid, auid and the audit session id (`asid`, as `session_id`) from its audit
//!   token; `ppid` (the parent audit token's pid when there is one), `original_ppid`,
//!   `group_id` / `session_id` (the POSIX process group and session), `executable.path`,
//!   `signing_id`, `team_id`, `cdhash` (lowercased; all zeros = none), `is_platform_binary`,
//!   `codesigning_flags`, `tty.path`, `start_time`; `event.exec.args` (`argv[0]` included),
//!   `event.exec.env` (only the configured names), `event.exec.cwd.path`; top-level `process`
//!   is the image that called exec; its `responsible_audit_token` pid is the responsible pid;
//! - `fork` -> [`ForkEvent`] (`event.fork.child`), `exit` -> [`ExitEvent`] (`stat`);
//! - `setuid`, `seteuid`, `setreuid`, `setgid`, `setegid`, `setregid` -> [`crate::event::CredEvent`]
//!   (`uid_change` / `gid_change`): the call's arguments applied to the calling process's
//!   audit-token ids ([`crate::event::SetIdCall`]);
//! - `create` (`destination.existing_file`, or `destination.new_path` dir + filename),
//!   `close` with `modified: true`, `write`, `rename` (`source` -> `destination`) and
//!   `unlink` (`target`) -> [`FileEvent`], the acting process from top-level `process`;
//! - `open` (`file`) -> an open [`FileEvent`]; `deleteextattr` of `com.apple.quarantine`
//!   (`target`) -> a quarantine removal, other attributes are skipped;
//!   `btm_launch_item_add` of an agent or daemon (`item.item_type` 3 or 4) -> a launch item
//!   [`FileEvent`]: its property list from `item.item_url` (a `file://` URL, or relative to
//!   `item.app_url`), its program from `executable_path`, the acting process `instigator`
//!   (top-level `process`, Background Task Management's daemon, when there is none); login
//!   items and apps are skipped;
//! - `time`, `seq_num`, `global_seq_num`, `event_type`; `path_truncated` sets the matching
//!   `TRUNC_*` flag.
//!
//! Every message's numbers are returned ([`EsSeq`]), also for a message that yields no event
//! (a close without modification), so loss detection sees the whole stream.

mod gaps;
mod message;

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::{SeqAccess, Visitor};

use crate::event::{
    Actor, Caller, EnvFilter, Event, EventMeta, ExecEvent, ExitEvent, FileAction, FileEvent,
    ForkEvent, OsType, QUARANTINE_XATTR, Source, TRUNC_ARGS, TRUNC_CALLER_EXECUTABLE, TRUNC_CWD,
    TRUNC_ENV, TRUNC_EXECUTABLE, TRUNC_FILE_PATH, Target, exit_code_from_wait_status,
    is_launch_daemon_type, launch_item_path,
};
pub use crate::ndjson::DecodeError;
use crate::ndjson::{Text, check_line_len};
pub use gaps::SeqGapDetector;
pub use message::event_type;
use message::{AuditToken, Destination, EsFile, EsProcess, EventKind, Message};

/// The numbers of one Endpoint Security message, for loss detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EsSeq {
    /// `es_event_type_t`.
    pub event_type: u32,
    pub seq_num: Option<u64>,
    pub global_seq_num: Option<u64>,
}

/// One decoded line: its numbers (when it has an event type) and its event, if it maps to one.
#[derive(Debug)]
pub struct Decoded<'a> {
    pub seq: Option<EsSeq>,
    pub event: Option<Event<'a>>,
}

/// Decodes `eslogger` lines one at a time.
///
/// Holds no per-line state: a line's event borrows only from that line, and the decoder can
/// be reused for every line of a stream or file.
#[derive(Debug, Default)]
pub struct EsloggerDecoder {
    env: EnvFilter,
}

impl EsloggerDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder that keeps the environment variables `env` names (`process.env_vars`).
    pub fn with_env(env: EnvFilter) -> Self {
        EsloggerDecoder { env }
    }

    /// Decodes one input line (without its newline). `Ok(None)`: a well-formed message of a
    /// kind that maps to no event (`mmap`, a `close` without modification, a login item),
    /// skipped.
    /// Strings in the event borrow from `line` where they need no unescaping.
    /// `sensor_seq` and `captured_ns` are left 0 for the side that takes the event in.
    pub fn decode_line<'a>(&mut self, line: &'a str) -> Result<Option<Event<'a>>, DecodeError> {
        self.decode(line).map(|d| d.event)
    }

    /// [`EsloggerDecoder::decode_line`], with the message's numbers.
    pub fn decode<'a>(&mut self, line: &'a str) -> Result<Decoded<'a>, DecodeError> {
        check_line_len(line)?;
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = Message::deserialize(&mut de).and_then(|m| de.end().map(|()| m));
        let message = match parsed {
            Ok(m) => m,
            Err(e) => return Err(locate_error(line, e)),
        };
        let seq = message.event_type.map(|event_type| EsSeq {
            event_type,
            seq_num: message.seq_num,
            global_seq_num: message.global_seq_num,
        });
        let event = to_event(message, &self.env)?;
        Ok(Decoded { seq, event })
    }
}

/// Re-decodes a line that failed, this time tracking the key path, so the error can say
/// where it is. Only the error path pays for the tracking.
fn locate_error(line: &str, first: serde_json::Error) -> DecodeError {
    let mut de = serde_json::Deserializer::from_str(line);
    match serde_path_to_error::deserialize::<_, Message<'_>>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            DecodeError::json(path, e.into_inner())
        }
        Ok(_) => DecodeError::json(String::new(), first),
    }
}

fn to_event<'a>(mut m: Message<'a>, env: &EnvFilter) -> Result<Option<Event<'a>>, DecodeError> {
    let body = std::mem::take(&mut m.event);
    if matches!(body, EventKind::Other) {
        return Ok(None);
    }
    if matches!(body, EventKind::Absent) {
        return Err(DecodeError::Missing { field: "event" });
    }
    let time_ns = m.time.ok_or(DecodeError::Missing { field: "time" })?;
    let mut meta = EventMeta {
        sensor_seq: 0,
        source: Source::Eslogger,
        os: OsType::Macos,
        flags: 0,
        time_ns,
        // Stamped by whoever takes the event in (the sensor); decoding is pure.
        captured_ns: 0,
        es_seq_num: m.seq_num,
        es_global_seq_num: m.global_seq_num,
    };
    let mut event = match body {
        EventKind::Exec(exec) => Event::Exec(exec_event(meta, m.process, exec, env)?),
        EventKind::Fork(fork) => {
            let parent = actor(m.process, "process", &mut meta.flags)?;
            let token = fork.child.audit_token.ok_or(DecodeError::Missing {
                field: "event.fork.child.audit_token",
            })?;
            Event::Fork(ForkEvent {
                meta,
                parent,
                child_pid: token.pid.ok_or(DecodeError::Missing {
                    field: "event.fork.child.audit_token.pid",
                })?,
                child_pidversion: token.pidversion,
                child_start_time_ns: fork.child.start_time.map(|t| t.0),
            })
        }
        EventKind::Exit(exit) => Event::Exit(ExitEvent {
            process: actor(m.process, "process", &mut meta.flags)?,
            meta,
            exit_code: exit.stat.map(exit_code_from_wait_status),
        }),
        EventKind::Create(create) => {
            let process = actor(m.process, "process", &mut meta.flags)?;
            let path =
                destination(create.destination, &mut meta.flags).ok_or(DecodeError::Missing {
                    field: "event.create.destination",
                })?;
            file(meta, process, FileAction::Creation, path, None)
        }
        EventKind::Close(close) => {
            if close.modified != Some(true) {
                return Ok(None);
            }
            let process = actor(m.process, "process", &mut meta.flags)?;
            let path = file_path(close.target, &mut meta.flags);
            file(meta, process, FileAction::Modification, path, None)
        }
        EventKind::Write(write) => {
            let process = actor(m.process, "process", &mut meta.flags)?;
            let path = file_path(write.target, &mut meta.flags);
            file(meta, process, FileAction::Modification, path, None)
        }
        EventKind::Unlink(unlink) => {
            let process = actor(m.process, "process", &mut meta.flags)?;
            let path = file_path(unlink.target, &mut meta.flags);
            file(meta, process, FileAction::Deletion, path, None)
        }
        EventKind::Rename(rename) => {
            let process = actor(m.process, "process", &mut meta.flags)?;
            let original = file_path(rename.source, &mut meta.flags);
            let path =
                destination(rename.destination, &mut meta.flags).ok_or(DecodeError::Missing {
                    field: "event.rename.destination",
                })?;
            file(meta, process, FileAction::Rename, path, Some(original))
        }
        EventKind::Open(open) => {
            let process = actor(m.process, "process", &mut meta.flags)?;
            let path = file_path(open.file, &mut meta.flags);
            file(meta, process, FileAction::Open, path, None)
        }
        EventKind::DeleteExtattr(del) => {
            if del.extattr.0 != QUARANTINE_XATTR {
                return Ok(None);
            }
            let process = actor(m.process, "process", &mut meta.flags)?;
            let path = file_path(del.target, &mut meta.flags);
            file(
                meta,
                process,
                FileAction::ExtendedAttributesDelete,
                path,
                None,
            )
        }
        EventKind::LaunchItemAdd(add) => {
            if !add.item.item_type.is_some_and(is_launch_daemon_type) {
                return Ok(None);
            }
            let Some(path) = launch_item_path(
                &add.item.item_url.0,
                add.item.app_url.as_ref().map(|u| u.0.as_ref()),
            ) else {
                return Err(DecodeError::Missing {
                    field: "event.btm_launch_item_add.item.item_url",
                });
            };
            let process = match add.instigator {
                Some(instigator) => actor(Some(instigator), "instigator", &mut meta.flags)?,
                None => actor(m.process, "process", &mut meta.flags)?,
            };
            Event::File(FileEvent {
                meta,
                process,
                action: FileAction::LaunchDaemon,
                path: Cow::Owned(path),
                original_path: None,
                launch_executable: add.executable_path.and_then(Text::non_empty),
            })
        }
        EventKind::SetId(call) => {
            let process = actor(m.process, "process", &mut meta.flags)?;
            Event::Cred(call.event(meta, process))
        }
        EventKind::Other | EventKind::Absent => return Ok(None),
    };
    event.enforce_bounds();
    Ok(Some(event))
}

fn file<'a>(
    meta: EventMeta,
    process: Actor<'a>,
    action: FileAction,
    path: Cow<'a, str>,
    original_path: Option<Cow<'a, str>>,
) -> Event<'a> {
    Event::File(FileEvent {
        meta,
        process,
        action,
        path,
        original_path,
        launch_executable: None,
    })
}

fn file_path<'a>(f: EsFile<'a>, flags: &mut u32) -> Cow<'a, str> {
    if f.path_truncated == Some(true) {
        *flags |= TRUNC_FILE_PATH;
    }
    f.path.0
}

/// The path a create or rename names: an existing file, or a new path (directory + name).
fn destination<'a>(d: Option<Destination<'a>>, flags: &mut u32) -> Option<Cow<'a, str>> {
    let d = d?;
    if let Some(existing) = d.existing_file {
        return Some(file_path(existing, flags));
    }
    let new = d.new_path?;
    let dir = file_path(new.dir, flags);
    let name = new.filename.0;
    let mut joined = String::with_capacity(dir.len() + 1 + name.len());
    joined.push_str(&dir);
    if !joined.ends_with('/') {
        joined.push('/');
    }
    joined.push_str(&name);
    Some(Cow::Owned(joined))
}

/// The acting process of a non-exec message (top-level `process`).
fn actor<'a>(
    p: Option<EsProcess<'a>>,
    field: &'static str,
    flags: &mut u32,
) -> Result<Actor<'a>, DecodeError> {
    let p = p.ok_or(DecodeError::Missing { field })?;
    let token = p.audit_token.ok_or(DecodeError::Missing {
        field: "process.audit_token",
    })?;
    let pid = token.pid.ok_or(DecodeError::Missing {
        field: "process.audit_token.pid",
    })?;
    let executable = p.executable.map(|f| {
        if f.path_truncated == Some(true) {
            *flags |= TRUNC_CALLER_EXECUTABLE;
        }
        f.path.0
    });
    Ok(Actor {
        pid,
        pidversion: token.pidversion,
        start_time_ns: p.start_time.map(|t| t.0),
        ppid: p.parent_audit_token.and_then(|t| t.pid).or(p.ppid),
        uid: token.ruid,
        euid: token.euid,
        gid: token.rgid,
        egid: token.egid,
        executable,
        signing_id: p.signing_id.and_then(Text::non_empty),
        team_id: p.team_id.and_then(Text::non_empty),
        platform_binary: p.is_platform_binary,
        cs_flags: p.codesigning_flags,
        responsible_pid: p.responsible_audit_token.and_then(|t| t.pid),
    })
}

fn exec_event<'a>(
    meta: EventMeta,
    process: Option<EsProcess<'a>>,
    exec: message::ExecBody<'a>,
    env: &EnvFilter,
) -> Result<ExecEvent<'a>, DecodeError> {
    let mut flags = 0;
    let t = exec.target;
    let token = t.audit_token.ok_or(DecodeError::Missing {
        field: "event.exec.target.audit_token",
    })?;
    let pid = token.pid.ok_or(DecodeError::Missing {
        field: "event.exec.target.audit_token.pid",
    })?;
    let executable = t.executable.ok_or(DecodeError::Missing {
        field: "event.exec.target.executable",
    })?;
    if executable.path_truncated == Some(true) {
        flags |= TRUNC_EXECUTABLE;
    }
    let (args, args_cut) = exec.args.map(|a| (a.args, a.truncated)).unwrap_or_default();
    if args_cut {
        flags |= TRUNC_ARGS;
    }
    let cwd = exec.cwd.map(|f| {
        if f.path_truncated == Some(true) {
            flags |= TRUNC_CWD;
        }
        f.path.0
    });
    let env_vars = match exec.env {
        Some(raw) if !env.is_empty() => {
            let (vars, cut) = env_entries(raw, env)?;
            if cut {
                flags |= TRUNC_ENV;
            }
            vars
        }
        _ => Default::default(),
    };
    let target = Target {
        pid,
        pidversion: token.pidversion,
        // The parent audit token (v4+) is exact; `ppid` alone can be stale.
        ppid: t.parent_audit_token.and_then(|p| p.pid).or(t.ppid),
        original_ppid: t.original_ppid,
        uid: token.ruid,
        euid: token.euid,
        gid: token.rgid,
        egid: token.egid,
        auid: token.auid,
        session_id: token.asid,
        executable: executable.path.0,
        args,
        cwd,
        signing_id: t.signing_id.and_then(Text::non_empty),
        team_id: t.team_id.and_then(Text::non_empty),
        cdhash: t.cdhash.and_then(cdhash),
        platform_binary: t.is_platform_binary,
        cs_flags: t.codesigning_flags,
        tty: t.tty.and_then(|f| f.path.non_empty()),
        start_time_ns: t.start_time.map(|s| s.0),
        session_leader_pid: t.session_id,
        group_leader_pid: t.group_id,
        container: None,
        env_vars,
    };
    let target_responsible = t.responsible_audit_token.and_then(|r| r.pid);
    let (caller, caller_responsible) = match process {
        Some(p) => caller(p, &mut flags),
        None => (Caller::default(), None),
    };
    let mut event = ExecEvent {
        sensor_seq: meta.sensor_seq,
        source: meta.source,
        os: meta.os,
        flags,
        time_ns: meta.time_ns,
        captured_ns: meta.captured_ns,
        es_seq_num: meta.es_seq_num,
        es_global_seq_num: meta.es_global_seq_num,
        target,
        caller,
        responsible_pid: caller_responsible.or(target_responsible),
    };
    event.enforce_bounds();
    Ok(event)
}

/// The wanted entries of a raw `env` array.
fn env_entries(
    raw: &serde_json::value::RawValue,
    filter: &EnvFilter,
) -> Result<(crate::event::Args<'static>, bool), DecodeError> {
    struct Entries<'f>(&'f EnvFilter);
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = (crate::event::Args<'static>, bool);
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of NAME=value strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut builder = crate::event::ArgsBuilder::default();
            let mut cut = false;
            while let Some(Text(entry)) = seq.next_element::<Text<'de>>()? {
                if !cut && self.0.wants(&entry) {
                    cut = self
                        .0
                        .collect(std::iter::once(entry.as_ref()), &mut builder);
                }
            }
            Ok((builder.into_args(), cut))
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw.get());
    serde::Deserializer::deserialize_seq(&mut de, Entries(filter))
        .map_err(|e| DecodeError::json("event.exec.env".into(), e))
}

/// The calling image and its responsible pid.
fn caller<'a>(p: EsProcess<'a>, flags: &mut u32) -> (Caller<'a>, Option<u32>) {
    let executable = p.executable.map(
        |EsFile {
             path,
             path_truncated,
         }| {
            if path_truncated == Some(true) {
                *flags |= TRUNC_CALLER_EXECUTABLE;
            }
            path.0
        },
    );
    let caller = Caller {
        pid: p.audit_token.and_then(|t| t.pid),
        ppid: p.ppid,
        executable,
        signing_id: p.signing_id.and_then(Text::non_empty),
        team_id: p.team_id.and_then(Text::non_empty),
        platform_binary: p.is_platform_binary,
        cs_flags: p.codesigning_flags,
    };
    let responsible = p.responsible_audit_token.and_then(|t: AuditToken| t.pid);
    (caller, responsible)
}

/// Lowercase hex, borrowed when it already is. Endpoint Security reports an unsigned image's
/// cdhash as all zeros: that is "no cdhash", so `None`.
fn cdhash(Text(hex): Text<'_>) -> Option<Cow<'_, str>> {
    if hex.bytes().all(|b| b == b'0') {
        return None;
    }
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(Cow::Owned(hex.to_ascii_lowercase()));
    }
    Some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V9: &str = r#"{"version":9,"time":"2026-11-20T09:00:00.705000123Z","global_seq_num":1003,"seq_num":503,"event_type":9,"process":{"audit_token":{"auid":501,"euid":501,"egid":20,"ruid":501,"rgid":20,"pid":702,"asid":100013,"pidversion":2113},"responsible_audit_token":{"pid":700},"ppid":700,"codesigning_flags":0,"is_platform_binary":true,"signing_id":null,"team_id":null,"executable":{"path":"/bin/bash","path_truncated":false}},"event":{"exec":{"target":{"audit_token":{"auid":501,"euid":501,"egid":20,"ruid":501,"rgid":20,"pid":702,"asid":100013,"pidversion":2113},"ppid":700,"original_ppid":700,"codesigning_flags":536870913,"is_platform_binary":true,"signing_id":"com.apple.kcc","team_id":null,"cdhash":"00000000E4229C32EA112A2F39B44780345009CD","executable":{"path":"/usr/bin/kcc","path_truncated":false},"tty":{"path":"\/dev\/ttys001"},"start_time":"2026-11-20T09:00:00.705000Z"},"args":["kcc","copy_cred_cache"],"cwd":{"path":"/Users/bob"}}}}"#;

    #[test]
    fn maps_every_field() {
        let ev = EsloggerDecoder::new()
            .decode_line(V9)
            .unwrap()
            .unwrap()
            .into_exec()
            .unwrap();
        let t = &ev.target;
        assert_eq!((t.pid, t.pidversion, t.ppid), (702, Some(2113), Some(700)));
        assert_eq!(
            (t.uid, t.euid, t.gid, t.egid),
            (Some(501), Some(501), Some(20), Some(20))
        );
        assert_eq!((t.auid, t.session_id), (Some(501), Some(100013)));
        assert_eq!(t.executable, "/usr/bin/kcc");
        assert_eq!(
            t.args.iter().collect::<Vec<_>>(),
            ["kcc", "copy_cred_cache"]
        );
        assert_eq!(t.cwd.as_deref(), Some("/Users/bob"));
        assert_eq!(t.signing_id.as_deref(), Some("com.apple.kcc"));
        assert_eq!(t.team_id, None);
        assert_eq!(
            t.cdhash.as_deref(),
            Some("00000000e4229c32ea112a2f39b44780345009cd")
        );
        assert_eq!(t.tty.as_deref(), Some("/dev/ttys001"));
        assert_eq!(t.start_time_ns, Some(1_795_165_200_705_000_000));
        assert_eq!(t.cs_flags, Some(0x2000_0001));
        assert_eq!(ev.caller.pid, Some(702));
        assert_eq!(ev.caller.executable.as_deref(), Some("/bin/bash"));
        assert_eq!(ev.responsible_pid, Some(700));
        assert_eq!(ev.time_ns, 1_795_165_200_705_000_123);
        assert_eq!(
            (ev.es_seq_num, ev.es_global_seq_num),
            (Some(503), Some(1003))
        );
        assert_eq!((ev.source, ev.os), (Source::Eslogger, OsType::Macos));
        assert!(matches!(t.executable, Cow::Borrowed(_)));
    }

    #[test]
    fn audit_token_forms_and_values() {
        let line = |token: &str| {
            format!(
                r#"{{"time":"2026-11-20T09:00:00Z","event":{{"exec":{{"target":{{"audit_token":{token},"executable":{{"path":"/bin/ls"}}}}}}}}}}"#
            )
        };
        let mut d = EsloggerDecoder::new();
        let array = line("[501,502,20,503,21,42,100013,7]");
        let object = line(
            r#"{"pidversion":7,"asid":100013,"pid":42,"rgid":21,"ruid":503,"egid":20,"euid":502,"auid":501,"extra":[1]}"#,
        );
        let a = d.decode_line(&array).unwrap().unwrap().into_exec().unwrap();
        let o = d
            .decode_line(&object)
            .unwrap()
            .unwrap()
            .into_exec()
            .unwrap();
        assert_eq!(a, o);
        let t = &a.target;
        assert_eq!(
            (
                t.auid,
                t.euid,
                t.egid,
                t.uid,
                t.gid,
                t.pid,
                t.session_id,
                t.pidversion
            ),
            (
                Some(501),
                Some(502),
                Some(20),
                Some(503),
                Some(21),
                42,
                Some(100013),
                Some(7)
            )
        );
        let nulls = line("[null,-1,4294967295,0,0,42,null,null]");
        let with_nulls = d.decode_line(&nulls).unwrap().unwrap().into_exec().unwrap();
        assert_eq!(with_nulls.target.auid, None);
        assert_eq!(with_nulls.target.euid, Some(u32::MAX));
        assert_eq!(with_nulls.target.egid, Some(u32::MAX));
        for bad in [
            "[1,2,3,4,5,6,7]",
            "[1,2,3,4,5,6,7,8,9]",
            "[1,2,3,4,5,6,7,4294967296]",
            "[1,2,3,4,5,6,7,-2147483649]",
            "[1,2,3,4,5,6.5,7,8]",
            r#"{"pid":"42"}"#,
            "42",
        ] {
            assert!(d.decode_line(&line(bad)).is_err(), "{bad}");
        }
        let no_pid = d.decode_line(&line(r#"{"euid":0}"#)).unwrap_err();
        assert!(no_pid.to_string().contains("audit_token.pid"), "{no_pid}");
    }

    /// `eslogger setuid seteuid setreuid` (message version 8, audit token as an array): a
    /// setuid(0) by a process whose effective uid is already 0 (a setuid-root image), and a
    /// setreuid(-1, 0).
    #[test]
    fn setuid_calls_are_credential_changes() {
        use crate::event::CredChange;
        const SETUID: &str = r#"{"schema_version":1,"mach_time":9046323590,"event_type":103,"thread":{"thread_id":88432},"version":8,"seq_num":2,"event":{"setuid":{"uid":0}},"time":"2026-11-20T09:00:01.100000000Z","action":{"result":{"result":{"auth":0},"result_type":0}},"action_type":1,"process":{"signing_id":"a.out","session_id":700,"cdhash":"5C7FA5D80E8E3C5AE1A49E4B7A9E6D70B2C59C20","group_id":4101,"team_id":null,"original_ppid":4100,"ppid":4100,"is_es_client":false,"start_time":"2026-11-20T09:00:01.050000Z","tty":{"path":"/dev/ttys002","path_truncated":false},"codesigning_flags":570522113,"responsible_audit_token":[501,501,20,501,20,700,100014,2990],"audit_token":[501,0,20,501,20,4101,100014,3112],"is_platform_binary":false,"executable":{"path":"/Users/bob/Downloads/escalate","path_truncated":false},"parent_audit_token":[501,501,20,501,20,4100,100014,3111]},"global_seq_num":12}"#;
        let mut d = EsloggerDecoder::new();
        let Some(Event::Cred(c)) = d.decode_line(SETUID).unwrap() else {
            panic!("not a credential change")
        };
        assert_eq!(c.change, CredChange::Uid);
        assert_eq!((c.process.pid, c.process.pidversion), (4101, Some(3112)));
        assert_eq!(c.process.ppid, Some(4100));
        assert_eq!(
            c.process.executable.as_deref(),
            Some("/Users/bob/Downloads/escalate")
        );
        assert_eq!((c.before.uid, c.before.euid), (Some(501), Some(0)));
        assert_eq!((c.process.uid, c.process.euid), (Some(0), Some(0)));
        assert_eq!(
            (c.after.uid, c.after.euid, c.after.suid),
            (Some(0), Some(0), Some(0))
        );
        assert_eq!(c.meta.es_seq_num, Some(2));
        assert_eq!(c.meta.es_global_seq_num, Some(12));
        let decoded = d.decode(SETUID).unwrap();
        assert_eq!(decoded.seq.map(|s| s.event_type), Some(103));

        let setreuid = SETUID
            .replace(r#""event_type":103"#, r#""event_type":107"#)
            .replace(
                r#"{"setuid":{"uid":0}}"#,
                r#"{"setreuid":{"ruid":4294967295,"euid":0}}"#,
            )
            .replace("[501,0,20,501,20,4101", "[501,501,20,501,20,4101");
        let Some(Event::Cred(c)) = d.decode_line(&setreuid).unwrap() else {
            panic!("not a credential change")
        };
        assert_eq!((c.process.uid, c.process.euid), (Some(501), Some(0)));
        let setegid = SETUID.replace(r#"{"setuid":{"uid":0}}"#, r#"{"setegid":{"egid":0}}"#);
        let Some(Event::Cred(c)) = d.decode_line(&setegid).unwrap() else {
            panic!("not a credential change")
        };
        assert_eq!(c.change, CredChange::Gid);
        assert_eq!((c.before.egid, c.process.egid), (Some(20), Some(0)));
        let broken = SETUID.replace(r#"{"uid":0}"#, r#"{"gid":0}"#);
        let err = d.decode_line(&broken).unwrap_err().to_string();
        assert!(err.contains("uid"), "{err}");
    }
}
