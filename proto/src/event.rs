//! The exec event: what every capture backend produces and the rule engine consumes.
//!
//! One type serves both sides of the ring. Strings are `Cow<'a, str>` so a backend can
//! encode straight from the memory it already holds (an Endpoint Security message, a BPF
//! ring-buffer sample) and the agent can decode a record without copying or allocating:
//! every string of a decoded event borrows from the ring record.
//!
//! Every string and list is bounded. A backend calls [`ExecEvent::enforce_bounds`] before
//! encoding; over-long values are cut on a character boundary and the matching `TRUNC_*`
//! bit is set in [`ExecEvent::flags`], so truncation is visible, never silent. The decoder
//! checks the same bounds ([`ExecEvent::validate`]) because a record in shared memory is
//! untrusted.

use std::borrow::Cow;

use bincode::{BorrowDecode, Encode};

/// Longest executable path, working directory or parent path kept, in bytes
/// (Linux `PATH_MAX`; macOS's is smaller).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest signing id, team id, cdhash or tty kept, in bytes.
pub const MAX_ID_BYTES: usize = 512;
/// Most arguments kept for one exec (argv[0] included).
pub const MAX_ARGS: usize = 1024;
/// Most argv bytes kept for one exec, separators included.
pub const MAX_ARGV_BYTES: usize = 65536;

/// The executable path was cut to [`MAX_PATH_BYTES`].
pub const TRUNC_EXECUTABLE: u32 = 1 << 0;
/// argv was cut to [`MAX_ARGS`] arguments or [`MAX_ARGV_BYTES`] bytes.
pub const TRUNC_ARGS: u32 = 1 << 1;
/// The working directory was cut.
pub const TRUNC_CWD: u32 = 1 << 2;
/// An identity string (signing id, team id, cdhash, tty) was cut.
pub const TRUNC_IDS: u32 = 1 << 3;
/// The calling image's executable path was cut.
pub const TRUNC_CALLER_EXECUTABLE: u32 = 1 << 4;
/// The event was replayed from a file, not captured live.
pub const FLAG_REPLAYED: u32 = 1 << 16;
/// Every truncation bit.
pub const TRUNC_ANY: u32 =
    TRUNC_EXECUTABLE | TRUNC_ARGS | TRUNC_CWD | TRUNC_IDS | TRUNC_CALLER_EXECUTABLE;

/// Which capture path produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, bincode::Decode)]
#[repr(u8)]
pub enum Source {
    /// Apple Endpoint Security, in-process client.
    #[default]
    EndpointSecurity = 1,
    /// `eslogger exec` JSON, live or replayed.
    Eslogger = 2,
    /// Linux eBPF at `tp_btf/sched_process_exec`.
    Ebpf = 3,
    /// An ECS NDJSON document (replay).
    Ecs = 4,
}

impl Source {
    /// The name used in configs, logs and `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::EndpointSecurity => "endpoint-security",
            Source::Eslogger => "eslogger",
            Source::Ebpf => "ebpf",
            Source::Ecs => "ecs",
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

/// argv as one NUL-separated string plus a count.
///
/// Kept flat so that decoding an event needs no `Vec` (no allocation on the hot path) and so
/// a kernel argv block (already NUL-separated) can be used as is. argv never contains NUL.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct Args<'a> {
    joined: Cow<'a, str>,
    count: u32,
}

impl<'a> Args<'a> {
    /// Builds argv from a NUL-separated block holding exactly `count` arguments.
    /// Returns `None` when the block and the count disagree.
    pub fn from_joined(joined: Cow<'a, str>, count: u32) -> Option<Self> {
        let args = Args { joined, count };
        args.is_consistent().then_some(args)
    }

    /// Builds argv from separate strings, applying the bounds; the flag says whether
    /// anything was cut. NUL bytes inside an argument (impossible in a real argv, possible
    /// in hostile JSON) become U+FFFD.
    pub fn from_strs<I, S>(iter: I) -> (Args<'static>, bool)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut args = Args::default();
        let mut truncated = false;
        for arg in iter {
            if !args.push(arg.as_ref()) {
                truncated = true;
                break;
            }
        }
        (args, truncated)
    }

    /// Appends one argument; returns `false` (and appends nothing more) once a bound is hit.
    /// An argument that does not fit whole is cut to the space left.
    pub fn push(&mut self, arg: &str) -> bool {
        if self.count as usize >= MAX_ARGS {
            return false;
        }
        let sep = usize::from(self.count > 0);
        let room = MAX_ARGV_BYTES.saturating_sub(self.joined.len() + sep);
        if room == 0 && !arg.is_empty() {
            return false;
        }
        let joined = self.joined.to_mut();
        if sep == 1 {
            joined.push('\0');
        }
        let (cut, was_cut) = cut_str(arg, room);
        if cut.contains('\0') {
            joined.push_str(&cut.replace('\0', "\u{FFFD}"));
            if joined.len() > MAX_ARGV_BYTES {
                let end = floor_char_boundary(joined, MAX_ARGV_BYTES);
                joined.truncate(end);
            }
        } else {
            joined.push_str(cut);
        }
        self.count += 1;
        !was_cut
    }

    /// Removes every argument, keeping the buffer (for reuse without allocation).
    pub fn clear(&mut self) {
        match &mut self.joined {
            Cow::Owned(s) => s.clear(),
            Cow::Borrowed(_) => self.joined = Cow::Borrowed(""),
        }
        self.count = 0;
    }

    /// Number of arguments (`process.args_count`).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when argv is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone + '_ {
        let n = self.count as usize;
        self.joined.split('\0').take(n)
    }

    /// The NUL-separated block; `process.command_line` is this with NUL replaced by space.
    pub fn joined(&self) -> &str {
        &self.joined
    }

    /// Bytes of heap this value holds (its buffer's capacity; 0 when borrowed), so a table
    /// of many argvs can keep to a memory budget.
    pub fn heap_bytes(&self) -> usize {
        match &self.joined {
            Cow::Owned(s) => s.capacity(),
            Cow::Borrowed(_) => 0,
        }
    }

    /// Copies borrowed storage so the value can outlive its source.
    pub fn into_owned(self) -> Args<'static> {
        Args {
            joined: Cow::Owned(self.joined.into_owned()),
            count: self.count,
        }
    }

    fn is_consistent(&self) -> bool {
        if self.count == 0 {
            return self.joined.is_empty();
        }
        self.count as usize <= MAX_ARGS
            && self.joined.len() <= MAX_ARGV_BYTES
            && memchr::memchr_iter(0, self.joined.as_bytes()).count() + 1 == self.count as usize
    }
}

/// The image that exec started (ES `event.exec.target`): everything `process.*` reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct Target<'a> {
    pub pid: u32,
    pub pidversion: Option<u32>,
    pub ppid: Option<u32>,
    pub original_ppid: Option<u32>,
    pub uid: Option<u32>,
    pub euid: Option<u32>,
    pub gid: Option<u32>,
    pub egid: Option<u32>,
    pub auid: Option<u32>,
    pub session_id: Option<u32>,
    pub executable: Cow<'a, str>,
    pub args: Args<'a>,
    pub cwd: Option<Cow<'a, str>>,
    pub signing_id: Option<Cow<'a, str>>,
    pub team_id: Option<Cow<'a, str>>,
    /// Lowercase hex.
    pub cdhash: Option<Cow<'a, str>>,
    pub platform_binary: Option<bool>,
    /// Code-signing flags (`CS_*`), e.g. `CS_VALID` = 0x1, `CS_SIGNED` = 0x2000_0000.
    pub cs_flags: Option<u32>,
    pub tty: Option<Cow<'a, str>>,
    /// Process start time, Unix nanoseconds.
    pub start_time_ns: Option<i64>,
}

/// The image that called exec (ES/eslogger top-level `process`), before it was replaced.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct Caller<'a> {
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    pub executable: Option<Cow<'a, str>>,
    pub signing_id: Option<Cow<'a, str>>,
    pub team_id: Option<Cow<'a, str>>,
    pub platform_binary: Option<bool>,
    pub cs_flags: Option<u32>,
}

/// One process exec, as every backend reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct ExecEvent<'a> {
    /// The sensor's own sequence number: counts events it captured, from 1.
    pub sensor_seq: u64,
    pub source: Source,
    pub os: OsType,
    /// `TRUNC_*` and `FLAG_*` bits.
    pub flags: u32,
    /// Event time, Unix nanoseconds.
    pub time_ns: i64,
    /// When the sensor took the event in (Unix nanoseconds, its clock): replayed events keep
    /// their original `time_ns`, so capture-to-decision latency is measured from this.
    pub captured_ns: i64,
    /// Endpoint Security `seq_num` (per event type) when the source has it.
    pub es_seq_num: Option<u64>,
    /// Endpoint Security `global_seq_num` when the source has it.
    pub es_global_seq_num: Option<u64>,
    pub target: Target<'a>,
    pub caller: Caller<'a>,
    /// The responsible process (ES `responsible_audit_token`).
    pub responsible_pid: Option<u32>,
}

/// Why a decoded event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundsError {
    #[error("field {field} is {len} bytes, over the bound of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("argv block does not hold the {count} arguments it claims")]
    ArgsInconsistent { count: u32 },
}

impl<'a> ExecEvent<'a> {
    /// `process.name`: the basename of the executable (not argv[0]).
    pub fn process_name(&self) -> &str {
        basename(&self.target.executable)
    }

    /// True when any value was cut.
    pub fn truncated(&self) -> bool {
        self.flags & TRUNC_ANY != 0
    }

    /// Cuts every over-long value to its bound and records what was cut in `flags`.
    pub fn enforce_bounds(&mut self) {
        let t = &mut self.target;
        if bound_cow(&mut t.executable, MAX_PATH_BYTES) {
            self.flags |= TRUNC_EXECUTABLE;
        }
        if bound_opt(&mut t.cwd, MAX_PATH_BYTES) {
            self.flags |= TRUNC_CWD;
        }
        let mut ids = false;
        for s in [&mut t.signing_id, &mut t.team_id, &mut t.cdhash, &mut t.tty] {
            ids |= bound_opt(s, MAX_ID_BYTES);
        }
        for s in [&mut self.caller.signing_id, &mut self.caller.team_id] {
            ids |= bound_opt(s, MAX_ID_BYTES);
        }
        if ids {
            self.flags |= TRUNC_IDS;
        }
        if bound_opt(&mut self.caller.executable, MAX_PATH_BYTES) {
            self.flags |= TRUNC_CALLER_EXECUTABLE;
        }
        if !t.args.is_consistent() {
            let (args, _) = Args::from_strs(t.args.iter());
            t.args = args;
            self.flags |= TRUNC_ARGS;
        }
    }

    /// Checks the bounds a well-behaved sensor enforces; a record that breaks them is hostile
    /// or corrupt and must not reach the rules.
    pub fn validate(&self) -> Result<(), BoundsError> {
        let t = &self.target;
        check("target.executable", Some(&t.executable), MAX_PATH_BYTES)?;
        check("target.cwd", t.cwd.as_ref(), MAX_PATH_BYTES)?;
        check("target.signing_id", t.signing_id.as_ref(), MAX_ID_BYTES)?;
        check("target.team_id", t.team_id.as_ref(), MAX_ID_BYTES)?;
        check("target.cdhash", t.cdhash.as_ref(), MAX_ID_BYTES)?;
        check("target.tty", t.tty.as_ref(), MAX_ID_BYTES)?;
        check(
            "caller.executable",
            self.caller.executable.as_ref(),
            MAX_PATH_BYTES,
        )?;
        check(
            "caller.signing_id",
            self.caller.signing_id.as_ref(),
            MAX_ID_BYTES,
        )?;
        check("caller.team_id", self.caller.team_id.as_ref(), MAX_ID_BYTES)?;
        if !t.args.is_consistent() {
            return Err(BoundsError::ArgsInconsistent {
                count: t.args.count,
            });
        }
        Ok(())
    }

    /// Copies every borrowed string so the event can outlive the record it came from.
    pub fn into_owned(self) -> ExecEvent<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        fn own_opt(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(own)
        }
        let t = self.target;
        let c = self.caller;
        ExecEvent {
            sensor_seq: self.sensor_seq,
            source: self.source,
            os: self.os,
            flags: self.flags,
            time_ns: self.time_ns,
            captured_ns: self.captured_ns,
            es_seq_num: self.es_seq_num,
            es_global_seq_num: self.es_global_seq_num,
            target: Target {
                pid: t.pid,
                pidversion: t.pidversion,
                ppid: t.ppid,
                original_ppid: t.original_ppid,
                uid: t.uid,
                euid: t.euid,
                gid: t.gid,
                egid: t.egid,
                auid: t.auid,
                session_id: t.session_id,
                executable: own(t.executable),
                args: t.args.into_owned(),
                cwd: own_opt(t.cwd),
                signing_id: own_opt(t.signing_id),
                team_id: own_opt(t.team_id),
                cdhash: own_opt(t.cdhash),
                platform_binary: t.platform_binary,
                cs_flags: t.cs_flags,
                tty: own_opt(t.tty),
                start_time_ns: t.start_time_ns,
            },
            caller: Caller {
                pid: c.pid,
                ppid: c.ppid,
                executable: own_opt(c.executable),
                signing_id: own_opt(c.signing_id),
                team_id: own_opt(c.team_id),
                platform_binary: c.platform_binary,
                cs_flags: c.cs_flags,
            },
            responsible_pid: self.responsible_pid,
        }
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

fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut end = max.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    end
}

fn bound_cow(value: &mut Cow<'_, str>, max: usize) -> bool {
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

fn bound_opt(value: &mut Option<Cow<'_, str>>, max: usize) -> bool {
    value.as_mut().is_some_and(|v| bound_cow(v, max))
}

fn check(field: &'static str, value: Option<&Cow<'_, str>>, max: usize) -> Result<(), BoundsError> {
    match value {
        Some(v) if v.len() > max => Err(BoundsError::TooLong {
            field,
            len: v.len(),
            max,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip_including_empty_arguments() {
        let (args, cut) = Args::from_strs(["kcc", "", "copy_cred_cache"]);
        assert!(!cut);
        assert_eq!(args.len(), 3);
        assert_eq!(
            args.iter().collect::<Vec<_>>(),
            vec!["kcc", "", "copy_cred_cache"]
        );
        let (empty, _) = Args::from_strs(Vec::<String>::new());
        assert_eq!(empty.iter().count(), 0);
        let (one_empty, _) = Args::from_strs([""]);
        assert_eq!(one_empty.iter().collect::<Vec<_>>(), vec![""]);
    }

    #[test]
    fn args_bounds_are_flagged() {
        let many = (0..MAX_ARGS + 5).map(|i| i.to_string());
        let (args, cut) = Args::from_strs(many);
        assert!(cut);
        assert_eq!(args.len(), MAX_ARGS);
        let huge = "x".repeat(MAX_ARGV_BYTES * 2);
        let (args, cut) = Args::from_strs(["a", huge.as_str(), "b"]);
        assert!(cut);
        assert_eq!(args.joined().len(), MAX_ARGV_BYTES);
        assert!(args.is_consistent());
    }

    #[test]
    fn nul_inside_an_argument_cannot_split_it() {
        let (args, _) = Args::from_strs(["a\0b", "c"]);
        assert_eq!(args.len(), 2);
        assert_eq!(args.iter().collect::<Vec<_>>(), vec!["a\u{FFFD}b", "c"]);
    }

    #[test]
    fn enforce_bounds_cuts_on_char_boundaries_and_flags() {
        let mut ev = ExecEvent::default();
        ev.target.executable = Cow::Owned("é".repeat(MAX_PATH_BYTES));
        ev.target.team_id = Some(Cow::Borrowed("T"));
        ev.enforce_bounds();
        assert!(ev.target.executable.len() <= MAX_PATH_BYTES);
        assert_eq!(ev.flags & TRUNC_EXECUTABLE, TRUNC_EXECUTABLE);
        assert_eq!(ev.flags & TRUNC_IDS, 0);
        assert!(ev.validate().is_ok());
    }

    #[test]
    fn process_name_is_basename_of_executable() {
        let ev = ExecEvent {
            target: Target {
                executable: Cow::Borrowed("/usr/bin/kcc"),
                ..Target::default()
            },
            ..ExecEvent::default()
        };
        assert_eq!(ev.process_name(), "kcc");
        assert_eq!(basename("kcc"), "kcc");
        assert_eq!(basename("/a/b/"), "");
    }
}
