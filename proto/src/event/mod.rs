//! The event model: what every capture backend produces and the rule engine consumes.
//!
//! One set of types serves both sides of the ring. Strings are `Cow<'a, str>` so a backend
//! can encode straight from the memory it already holds (an Endpoint Security message, a BPF
//! ring-buffer sample) and the agent can decode a record without copying or allocating:
//! every string of a decoded event borrows from the ring record.
//!
//! Kinds ([`Event`]): [`ExecEvent`] (a process started a new image), [`ForkEvent`] (a new
//! process), [`ExitEvent`], [`FileEvent`] (creation, modification, rename, deletion) and
//! [`CredEvent`] (new user or group ids, a new session).
//! Every kind names its process by pid plus pidversion (macOS) and start time, so the agent
//! can join it to the last exec of that process instance.
//!
//! Every string and list is bounded. A backend calls `enforce_bounds` before encoding;
//! over-long values are cut on a character boundary and a `TRUNC_*` bit is set in the
//! event's flags, so truncation is visible, never silent. The decoder checks the same bounds
//! (`validate`) because a record in shared memory is untrusted.

mod actor;
mod args;
mod cred;
mod env;
mod exec;
mod file;
mod lifecycle;

use std::borrow::Cow;

use bincode::Encode;

pub use actor::Actor;
pub use args::{
    Args, ArgsBuilder, HEAD_ARGS, HEAD_ARGV_BYTES, TAIL_ARGS, TAIL_ARGV_BYTES, nul_count,
};
pub use cred::{CredChange, CredEvent, CredIds, SetIdCall};
pub use env::EnvFilter;
pub use exec::{BoundsError, Caller, ExecEvent, Target};
pub use file::{
    FileAction, FileEvent, QUARANTINE_XATTR, directory, extension, is_launch_daemon_type,
    launch_item_path,
};
pub use lifecycle::{ExitEvent, ForkEvent, exit_code_from_wait_status};

/// Longest executable path, working directory, file path or parent path kept, in bytes
/// (Linux `PATH_MAX`; macOS's is smaller).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest signing id, team id, cdhash or tty kept, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Most arguments kept for one exec (argv[0] included): the first [`HEAD_ARGS`] and the last
/// [`TAIL_ARGS`] when argv is longer. `process.args_count` is always the true count.
pub const MAX_ARGS: usize = HEAD_ARGS + TAIL_ARGS;
/// Most argv bytes kept for one exec, separators included (head and tail together).
pub const MAX_ARGV_BYTES: usize = HEAD_ARGV_BYTES + TAIL_ARGV_BYTES;
/// Most environment variables kept (`process.env_vars`, configured names only).
pub const MAX_ENV_VARS: usize = 16;
/// Most bytes of `NAME=value` environment entries kept.
pub const MAX_ENV_BYTES: usize = 8192;

/// The executable path was cut to [`MAX_PATH_BYTES`].
pub const TRUNC_EXECUTABLE: u32 = 1 << 0;
/// argv lost arguments (the middle of a long argv) or bytes of an argument.
pub const TRUNC_ARGS: u32 = 1 << 1;
/// The working directory was cut.
pub const TRUNC_CWD: u32 = 1 << 2;
/// An identity string (signing id, team id, cdhash, tty) was cut.
pub const TRUNC_IDS: u32 = 1 << 3;
/// The calling image's (or the acting process's) executable path was cut.
pub const TRUNC_CALLER_EXECUTABLE: u32 = 1 << 4;
/// A file path (or a rename's original path) was cut.
pub const TRUNC_FILE_PATH: u32 = 1 << 5;
/// Environment entries were cut or left out.
pub const TRUNC_ENV: u32 = 1 << 6;
/// The event was replayed from a file, not captured live.
pub const FLAG_REPLAYED: u32 = 1 << 16;
/// A process that was already running when the sensor started, described from `/proc` (or
/// the platform's process list): it feeds the agent's process table, it is no new exec and
/// no rule is evaluated on it.
pub const FLAG_SNAPSHOT: u32 = 1 << 17;
/// The exec was denied by a blocking rule: the new image never ran.
pub const FLAG_BLOCKED: u32 = 1 << 18;
/// Every truncation bit.
pub const TRUNC_ANY: u32 = TRUNC_EXECUTABLE
    | TRUNC_ARGS
    | TRUNC_CWD
    | TRUNC_IDS
    | TRUNC_CALLER_EXECUTABLE
    | TRUNC_FILE_PATH
    | TRUNC_ENV;

/// Which capture path produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, bincode::Decode)]
#[repr(u8)]
pub enum Source {
    /// Apple Endpoint Security, in-process client.
    #[default]
    EndpointSecurity = 1,
    /// `eslogger` JSON, live or replayed.
    Eslogger = 2,
    /// Linux eBPF.
    Ebpf = 3,
    /// An ECS NDJSON document (replay).
    Ecs = 4,
    /// `/proc` (or the platform's process list) read when the sensor started.
    ProcessList = 5,
}

impl Source {
    /// The name used in configs, logs and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::EndpointSecurity => "endpoint-security",
            Source::Eslogger => "eslogger",
            Source::Ebpf => "ebpf",
            Source::Ecs => "ecs",
            Source::ProcessList => "process-list",
        }
    }
}

/// The operating system the event happened on (`host.os.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, bincode::Decode)]
#[repr(u8)]
pub enum OsType {
    #[default]
    Macos = 1,
    Linux = 2,
}

impl OsType {
    /// The ECS `host.os.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            OsType::Macos => "macos",
            OsType::Linux => "linux",
        }
    }
}

/// The kinds of event, for per-kind counters and filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, bincode::Decode)]
#[repr(u8)]
pub enum EventKind {
    Exec = 1,
    Fork = 2,
    Exit = 3,
    File = 4,
    Cred = 5,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 5] = [
        EventKind::Exec,
        EventKind::Fork,
        EventKind::Exit,
        EventKind::File,
        EventKind::Cred,
    ];

    /// The name used in logs and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
            EventKind::File => "file",
            EventKind::Cred => "cred",
        }
    }
}

/// What every event carries besides its kind's own fields.
///
/// [`ExecEvent`] has these fields at its top level (it was the first kind and every consumer
/// reads them there); the other kinds hold them as `meta`. [`Event::meta`] gives them for any
/// kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, bincode::Decode)]
pub struct EventMeta {
    /// The sensor's own sequence number: counts records it published, from 1.
    pub sensor_seq: u64,
    pub source: Source,
    pub os: OsType,
    /// `TRUNC_*` and `FLAG_*` bits.
    pub flags: u32,
    /// Event time, Unix nanoseconds.
    pub time_ns: i64,
    /// When the sensor took the event in (Unix nanoseconds, its clock).
    pub captured_ns: i64,
    /// Endpoint Security `seq_num` (per event type) when the source has it.
    pub es_seq_num: Option<u64>,
    /// Endpoint Security `global_seq_num` when the source has it.
    pub es_global_seq_num: Option<u64>,
}

/// One event of any kind.
// Events live on the stack for one decode; boxing would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    Exec(ExecEvent<'a>),
    Fork(ForkEvent<'a>),
    Exit(ExitEvent<'a>),
    File(FileEvent<'a>),
    Cred(CredEvent<'a>),
}

impl<'a> Event<'a> {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Exec(_) => EventKind::Exec,
            Event::Fork(_) => EventKind::Fork,
            Event::Exit(_) => EventKind::Exit,
            Event::File(_) => EventKind::File,
            Event::Cred(_) => EventKind::Cred,
        }
    }

    /// The exec this is, if it is one.
    pub fn exec(&self) -> Option<&ExecEvent<'a>> {
        match self {
            Event::Exec(e) => Some(e),
            _ => None,
        }
    }

    /// The exec this is, if it is one.
    pub fn into_exec(self) -> Option<ExecEvent<'a>> {
        match self {
            Event::Exec(e) => Some(e),
            _ => None,
        }
    }

    /// The fields every kind has.
    pub fn meta(&self) -> EventMeta {
        match self {
            Event::Exec(e) => e.meta(),
            Event::Fork(e) => e.meta,
            Event::Exit(e) => e.meta,
            Event::File(e) => e.meta,
            Event::Cred(e) => e.meta,
        }
    }

    /// Sets the fields every kind has.
    pub fn set_meta(&mut self, meta: EventMeta) {
        match self {
            Event::Exec(e) => e.set_meta(meta),
            Event::Fork(e) => e.meta = meta,
            Event::Exit(e) => e.meta = meta,
            Event::File(e) => e.meta = meta,
            Event::Cred(e) => e.meta = meta,
        }
    }

    /// The `FLAG_*` / `TRUNC_*` bits.
    pub fn flags_mut(&mut self) -> &mut u32 {
        match self {
            Event::Exec(e) => &mut e.flags,
            Event::Fork(e) => &mut e.meta.flags,
            Event::Exit(e) => &mut e.meta.flags,
            Event::File(e) => &mut e.meta.flags,
            Event::Cred(e) => &mut e.meta.flags,
        }
    }

    /// Cuts every over-long value to its bound and records what was cut in the flags.
    pub fn enforce_bounds(&mut self) {
        match self {
            Event::Exec(e) => e.enforce_bounds(),
            Event::Fork(e) => e.enforce_bounds(),
            Event::Exit(e) => e.enforce_bounds(),
            Event::File(e) => e.enforce_bounds(),
            Event::Cred(e) => e.enforce_bounds(),
        }
    }

    /// Checks the bounds a well-behaved sensor enforces.
    pub fn validate(&self) -> Result<(), BoundsError> {
        match self {
            Event::Exec(e) => e.validate(),
            Event::Fork(e) => e.validate(),
            Event::Exit(e) => e.validate(),
            Event::File(e) => e.validate(),
            Event::Cred(e) => e.validate(),
        }
    }

    /// An upper bound of the bytes this event's strings take, for sizing its record.
    pub fn string_bytes(&self) -> usize {
        match self {
            Event::Exec(e) => e.string_bytes(),
            Event::Fork(e) => e.parent.string_bytes(),
            Event::Exit(e) => e.process.string_bytes(),
            Event::File(e) => e.string_bytes(),
            Event::Cred(e) => e.process.string_bytes(),
        }
    }

    /// Copies every borrowed string so the event can outlive the record it came from.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Exec(e) => Event::Exec(e.into_owned()),
            Event::Fork(e) => Event::Fork(e.into_owned()),
            Event::Exit(e) => Event::Exit(e.into_owned()),
            Event::File(e) => Event::File(e.into_owned()),
            Event::Cred(e) => Event::Cred(e.into_owned()),
        }
    }
}

impl<'a> From<ExecEvent<'a>> for Event<'a> {
    fn from(e: ExecEvent<'a>) -> Self {
        Event::Exec(e)
    }
}

impl<'a> From<ForkEvent<'a>> for Event<'a> {
    fn from(e: ForkEvent<'a>) -> Self {
        Event::Fork(e)
    }
}

impl<'a> From<ExitEvent<'a>> for Event<'a> {
    fn from(e: ExitEvent<'a>) -> Self {
        Event::Exit(e)
    }
}

impl<'a> From<FileEvent<'a>> for Event<'a> {
    fn from(e: FileEvent<'a>) -> Self {
        Event::File(e)
    }
}

impl<'a> From<CredEvent<'a>> for Event<'a> {
    fn from(e: CredEvent<'a>) -> Self {
        Event::Cred(e)
    }
}

/// The last path component (`/usr/bin/kcc` -> `kcc`); the whole string when there is no `/`.
pub fn basename(path: &str) -> &str {
    match memchr::memrchr(b'/', path.as_bytes()) {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary,
/// and whether anything was cut.
pub fn cut_str(s: &str, max: usize) -> (&str, bool) {
    if s.len() <= max {
        (s, false)
    } else {
        (&s[..floor_char_boundary(s, max)], true)
    }
}

pub(crate) fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut end = max.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

pub(crate) fn bound_cow(value: &mut Cow<'_, str>, max: usize) -> bool {
    if value.len() <= max {
        return false;
    }
    let end = floor_char_boundary(value, max);
    match value {
        Cow::Borrowed(s) => *s = &s[..end],
        Cow::Owned(s) => s.truncate(end),
    }
    true
}

pub(crate) fn bound_opt(value: &mut Option<Cow<'_, str>>, max: usize) -> bool {
    value.as_mut().is_some_and(|v| bound_cow(v, max))
}

pub(crate) fn check(
    field: &'static str,
    value: Option<&Cow<'_, str>>,
    max: usize,
) -> Result<(), BoundsError> {
    match value {
        Some(v) if v.len() > max => Err(BoundsError::TooLong {
            field,
            len: v.len(),
            max,
        }),
        _ => Ok(()),
    }
}

pub(crate) fn own(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

pub(crate) fn own_opt(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    c.map(own)
}

pub(crate) fn opt_len(s: &Option<Cow<'_, str>>) -> usize {
    s.as_ref().map_or(0, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_and_cut() {
        assert_eq!(basename("/usr/bin/kcc"), "kcc");
        assert_eq!(basename("kcc"), "kcc");
        assert_eq!(basename("/a/b/"), "");
        assert_eq!(cut_str("héllo", 2), ("h", true));
        assert_eq!(cut_str("abc", 3), ("abc", false));
    }
}
