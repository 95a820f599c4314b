//! The process an event is about or done by, as the source reports it.

use std::borrow::Cow;

use bincode::{BorrowDecode, Encode};

use super::{
    BoundsError, MAX_ID_BYTES, MAX_PATH_BYTES, TRUNC_CALLER_EXECUTABLE, TRUNC_IDS, bound_opt,
    check, opt_len, own_opt,
};

/// A process named by an event that is not an exec (the one that forked, exited or touched a
/// file). What the source does not carry is `None`: the agent fills `process.*` from the last
/// exec of this process instance (pid and start time) in its process table.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct Actor<'a> {
    pub pid: u32,
    /// macOS: the audit token's pidversion (a pid reused by a new process gets a new one).
    pub pidversion: Option<u32>,
    /// Process start time, Unix nanoseconds, as in [`super::Target::start_time_ns`].
    pub start_time_ns: Option<i64>,
    pub ppid: Option<u32>,
    pub uid: Option<u32>,
    pub euid: Option<u32>,
    pub gid: Option<u32>,
    pub egid: Option<u32>,
    pub executable: Option<Cow<'a, str>>,
    pub signing_id: Option<Cow<'a, str>>,
    pub team_id: Option<Cow<'a, str>>,
    pub platform_binary: Option<bool>,
    pub cs_flags: Option<u32>,
    /// The responsible process (macOS responsible audit token).
    pub responsible_pid: Option<u32>,
}

impl<'a> Actor<'a> {
    /// Cuts over-long strings; returns the `TRUNC_*` bits of what was cut.
    pub fn enforce_bounds(&mut self) -> u32 {
        let mut flags = 0;
        if bound_opt(&mut self.executable, MAX_PATH_BYTES) {
            flags |= TRUNC_CALLER_EXECUTABLE;
        }
        let ids = bound_opt(&mut self.signing_id, MAX_ID_BYTES)
            | bound_opt(&mut self.team_id, MAX_ID_BYTES);
        if ids {
            flags |= TRUNC_IDS;
        }
        flags
    }

    pub fn validate(&self) -> Result<(), BoundsError> {
        check(
            "process.executable",
            self.executable.as_ref(),
            MAX_PATH_BYTES,
        )?;
        check("process.signing_id", self.signing_id.as_ref(), MAX_ID_BYTES)?;
        check("process.team_id", self.team_id.as_ref(), MAX_ID_BYTES)
    }

    pub fn string_bytes(&self) -> usize {
        opt_len(&self.executable) + opt_len(&self.signing_id) + opt_len(&self.team_id)
    }

    pub fn into_owned(self) -> Actor<'static> {
        Actor {
            pid: self.pid,
            pidversion: self.pidversion,
            start_time_ns: self.start_time_ns,
            ppid: self.ppid,
            uid: self.uid,
            euid: self.euid,
            gid: self.gid,
            egid: self.egid,
            executable: own_opt(self.executable),
            signing_id: own_opt(self.signing_id),
            team_id: own_opt(self.team_id),
            platform_binary: self.platform_binary,
            cs_flags: self.cs_flags,
            responsible_pid: self.responsible_pid,
        }
    }
}
