//! Process lifecycle events: fork (a new process) and exit.

use bincode::{BorrowDecode, Encode};

use super::{Actor, BoundsError, EventMeta};

/// A process created a new process (`fork`, `vfork`, `clone` without `CLONE_THREAD`). The
/// child runs the parent's image until it execs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct ForkEvent<'a> {
    pub meta: EventMeta,
    /// The process that forked.
    pub parent: Actor<'a>,
    pub child_pid: u32,
    /// macOS: the child's pidversion.
    pub child_pidversion: Option<u32>,
    /// The child's start time, Unix nanoseconds.
    pub child_start_time_ns: Option<i64>,
}

impl ForkEvent<'_> {
    pub fn enforce_bounds(&mut self) {
        self.meta.flags |= self.parent.enforce_bounds();
    }

    pub fn validate(&self) -> Result<(), BoundsError> {
        self.parent.validate()
    }

    pub fn into_owned(self) -> ForkEvent<'static> {
        ForkEvent {
            meta: self.meta,
            parent: self.parent.into_owned(),
            child_pid: self.child_pid,
            child_pidversion: self.child_pidversion,
            child_start_time_ns: self.child_start_time_ns,
        }
    }
}

/// A process ended (its last thread exited).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct ExitEvent<'a> {
    pub meta: EventMeta,
    pub process: Actor<'a>,
    /// `process.exit_code`: the exit status, or 128 + the signal number for a process killed
    /// by a signal (as a shell reports it). Absent when the source does not say.
    pub exit_code: Option<i32>,
}

impl ExitEvent<'_> {
    pub fn enforce_bounds(&mut self) {
        self.meta.flags |= self.process.enforce_bounds();
    }

    pub fn validate(&self) -> Result<(), BoundsError> {
        self.process.validate()
    }

    pub fn into_owned(self) -> ExitEvent<'static> {
        ExitEvent {
            meta: self.meta,
            process: self.process.into_owned(),
            exit_code: self.exit_code,
        }
    }
}

/// `process.exit_code` from a `wait(2)` status word: the exit status, or 128 + the signal.
pub fn exit_code_from_wait_status(status: i32) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        (status >> 8) & 0xff
    } else {
        128 + signal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_is_decoded_as_a_shell_does() {
        assert_eq!(exit_code_from_wait_status(0), 0);
        assert_eq!(exit_code_from_wait_status(3 << 8), 3);
        assert_eq!(exit_code_from_wait_status(9), 137);
        assert_eq!(
            exit_code_from_wait_status(15 | 0x80),
            143,
            "core dump bit ignored"
        );
    }
}
