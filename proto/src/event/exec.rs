//! The exec event: a process started a new image.

use std::borrow::Cow;

use bincode::{BorrowDecode, Encode};

use super::{
    Args, EventMeta, MAX_ENV_BYTES, MAX_ENV_VARS, MAX_ID_BYTES, MAX_PATH_BYTES, OsType, Source,
    TRUNC_ANY, TRUNC_ARGS, TRUNC_CALLER_EXECUTABLE, TRUNC_CWD, TRUNC_ENV, TRUNC_EXECUTABLE,
    TRUNC_IDS, basename, bound_cow, bound_opt, check, opt_len, own, own_opt,
};

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
    /// The controlling terminal (`/dev/ttys001`, Linux `pts/1`); absent without one.
    pub tty: Option<Cow<'a, str>>,
    /// Process start time, Unix nanoseconds. The same value in every event of the process:
    /// it is what `process.entity_id` is derived from.
    pub start_time_ns: Option<i64>,
    /// Linux: the POSIX session id, which is the session leader's pid.
    pub session_leader_pid: Option<u32>,
    /// Linux: the process group id, which is the group leader's pid.
    pub group_leader_pid: Option<u32>,
    /// The process runs in a container (Linux: a pid namespace other than the initial one, or
    /// a container runtime's cgroup). Absent where the source cannot tell.
    pub container: Option<bool>,
    /// `NAME=value` of the environment variables an admin configured (`[sensor] env_vars`)
    /// that the new image has; never the rest of the environment.
    pub env_vars: Args<'a>,
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
    #[error("environment entries break their bounds")]
    EnvInconsistent,
    #[error("rename without an original path, or an original path on another action")]
    RenameShape,
    #[error("a launch item's program on another action")]
    LaunchShape,
}

impl<'a> ExecEvent<'a> {
    /// The fields every event kind has.
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            sensor_seq: self.sensor_seq,
            source: self.source,
            os: self.os,
            flags: self.flags,
            time_ns: self.time_ns,
            captured_ns: self.captured_ns,
            es_seq_num: self.es_seq_num,
            es_global_seq_num: self.es_global_seq_num,
        }
    }

    /// Sets the fields every event kind has.
    pub fn set_meta(&mut self, m: EventMeta) {
        self.sensor_seq = m.sensor_seq;
        self.source = m.source;
        self.os = m.os;
        self.flags = m.flags;
        self.time_ns = m.time_ns;
        self.captured_ns = m.captured_ns;
        self.es_seq_num = m.es_seq_num;
        self.es_global_seq_num = m.es_global_seq_num;
    }

    /// Whether argv lost arguments or bytes (`process.Ext.args_truncated`).
    pub fn args_truncated(&self) -> bool {
        self.flags & TRUNC_ARGS != 0 || self.target.args.elided() > 0
    }

    /// An upper bound of the bytes this event's strings take.
    pub fn string_bytes(&self) -> usize {
        let t = &self.target;
        let c = &self.caller;
        t.executable.len()
            + t.args.joined().len()
            + t.env_vars.joined().len()
            + opt_len(&t.cwd)
            + opt_len(&t.signing_id)
            + opt_len(&t.team_id)
            + opt_len(&t.cdhash)
            + opt_len(&t.tty)
            + opt_len(&c.executable)
            + opt_len(&c.signing_id)
            + opt_len(&c.team_id)
    }

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
        if t.args.elided() > 0 {
            self.flags |= TRUNC_ARGS;
        }
        if !env_ok(&t.env_vars) {
            let (env, _) = Args::from_strs(
                t.env_vars
                    .iter()
                    .scan(0usize, |used, e| {
                        *used += e.len() + 1;
                        Some((*used, e))
                    })
                    .take_while(|(used, _)| *used <= MAX_ENV_BYTES)
                    .map(|(_, e)| e)
                    .take(MAX_ENV_VARS),
            );
            t.env_vars = env;
            self.flags |= TRUNC_ENV;
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
                count: t.args.len() as u32,
            });
        }
        if !env_ok(&t.env_vars) {
            return Err(BoundsError::EnvInconsistent);
        }
        Ok(())
    }

    /// Copies every borrowed string so the event can outlive the record it came from.
    pub fn into_owned(self) -> ExecEvent<'static> {
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
                session_leader_pid: t.session_leader_pid,
                group_leader_pid: t.group_leader_pid,
                container: t.container,
                env_vars: t.env_vars.into_owned(),
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

/// Environment entries within their bounds: consistent, no middle dropped, at most
/// [`MAX_ENV_VARS`] entries and [`MAX_ENV_BYTES`] bytes.
fn env_ok(env: &Args<'_>) -> bool {
    env.is_consistent()
        && env.elided() == 0
        && env.len() <= MAX_ENV_VARS
        && env.joined().len() <= MAX_ENV_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MAX_ENV_VARS, TRUNC_ENV};

    #[test]
    fn env_over_its_bounds_is_cut_and_flagged() {
        let mut ev = ExecEvent::default();
        let names: Vec<String> = (0..40).map(|i| format!("V{i}=x")).collect();
        ev.target.env_vars = Args::from_strs(&names).0;
        assert!(ev.validate().is_err());
        ev.enforce_bounds();
        assert_eq!(ev.target.env_vars.len(), MAX_ENV_VARS);
        assert_eq!(ev.flags & TRUNC_ENV, TRUNC_ENV);
        assert!(ev.validate().is_ok());
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
