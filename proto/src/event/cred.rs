//! Credential and session changes: a running process took new user or group ids (`setuid`
//! and its relatives, a setuid image, or a kernel exploit's `commit_creds`) or became the
//! leader of a new session (`setsid`).
//!
//! Elastic Defend reports these on Linux as process events with `event.type: change` and
//! `event.action` `uid_change`, `gid_change` or `session_id_change`, carrying the process's
//! ids after the change; one credential commit that changes both user and group ids is two
//! events, one per action, as Elastic Defend makes them.

use bincode::{BorrowDecode, Encode};

use super::{Actor, BoundsError, EventMeta};

/// What changed (`event.action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Encode, BorrowDecode)]
#[repr(u8)]
pub enum CredChange {
    /// A user id: real, effective, saved or file-system (`uid_change`).
    #[default]
    Uid = 1,
    /// A group id: real, effective, saved or file-system (`gid_change`).
    Gid = 2,
    /// The process made a new session and leads it (`session_id_change`).
    SessionId = 3,
}

impl CredChange {
    /// Every change, in discriminant order.
    pub const ALL: [CredChange; 3] = [CredChange::Uid, CredChange::Gid, CredChange::SessionId];

    /// ECS `event.action`, as Elastic Defend spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CredChange::Uid => "uid_change",
            CredChange::Gid => "gid_change",
            CredChange::SessionId => "session_id_change",
        }
    }
}

/// A process's ids as one credential change leaves (or found) them; what the source does not
/// report is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct CredIds {
    pub uid: Option<u32>,
    pub euid: Option<u32>,
    /// Saved set-user-id.
    pub suid: Option<u32>,
    pub gid: Option<u32>,
    pub egid: Option<u32>,
    /// Saved set-group-id.
    pub sgid: Option<u32>,
    /// The POSIX session id (the session leader's pid).
    pub sid: Option<u32>,
}

/// A process's user ids, group ids or session changed.
///
/// Invariant: `process` holds the ids after the change (`uid`, `euid`, `gid`, `egid`), as
/// every later event of the process does; `after` repeats them with the saved ids and the
/// session, and `before` is what the process had (as far as the source tells).
#[derive(Debug, Clone, PartialEq, Eq, Default, Encode, BorrowDecode)]
pub struct CredEvent<'a> {
    pub meta: EventMeta,
    pub process: Actor<'a>,
    pub change: CredChange,
    pub before: CredIds,
    pub after: CredIds,
}

impl CredEvent<'_> {
    pub fn enforce_bounds(&mut self) {
        self.meta.flags |= self.process.enforce_bounds();
    }

    pub fn validate(&self) -> Result<(), BoundsError> {
        self.process.validate()
    }

    pub fn into_owned(self) -> CredEvent<'static> {
        CredEvent {
            meta: self.meta,
            process: self.process.into_owned(),
            change: self.change,
            before: self.before,
            after: self.after,
        }
    }
}

/// A `set*id` call as Endpoint Security reports it on macOS (`NOTIFY_SETUID` and relatives,
/// or eslogger's `setuid`, `seteuid`, `setreuid`, `setgid`, `setegid`, `setregid`): the call's
/// arguments, not the ids it left. [`SetIdCall::apply`] works those out with setuid(2)'s
/// rules from the ids the message's process has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetIdCall {
    Setuid(u32),
    Seteuid(u32),
    /// `u32::MAX` (-1) leaves an id as it is.
    Setreuid {
        ruid: u32,
        euid: u32,
    },
    Setgid(u32),
    Setegid(u32),
    Setregid {
        rgid: u32,
        egid: u32,
    },
}

impl SetIdCall {
    pub fn change(self) -> CredChange {
        match self {
            SetIdCall::Setuid(_) | SetIdCall::Seteuid(_) | SetIdCall::Setreuid { .. } => {
                CredChange::Uid
            }
            _ => CredChange::Gid,
        }
    }

    /// The ids after the call, given those the process had (`before`): `setuid` and `setgid`
    /// by a process whose effective uid is 0 set the real, effective and saved ids, otherwise
    /// only the effective one; `seteuid` and `setegid` the effective one; `setreuid` and
    /// `setregid` the real and effective ones they name. Endpoint Security reports the call
    /// once it succeeded, so this is what the process then has.
    pub fn apply(self, before: CredIds) -> CredIds {
        const KEEP: u32 = u32::MAX;
        let privileged = before.euid == Some(0);
        let mut after = before;
        match self {
            SetIdCall::Setuid(uid) if privileged => {
                (after.uid, after.euid, after.suid) = (Some(uid), Some(uid), Some(uid));
            }
            SetIdCall::Setuid(uid) | SetIdCall::Seteuid(uid) => after.euid = Some(uid),
            SetIdCall::Setreuid { ruid, euid } => {
                if ruid != KEEP {
                    after.uid = Some(ruid);
                }
                if euid != KEEP {
                    after.euid = Some(euid);
                }
            }
            SetIdCall::Setgid(gid) if privileged => {
                (after.gid, after.egid, after.sgid) = (Some(gid), Some(gid), Some(gid));
            }
            SetIdCall::Setgid(gid) | SetIdCall::Setegid(gid) => after.egid = Some(gid),
            SetIdCall::Setregid { rgid, egid } => {
                if rgid != KEEP {
                    after.gid = Some(rgid);
                }
                if egid != KEEP {
                    after.egid = Some(egid);
                }
            }
        }
        after
    }

    /// The credential event of this call by `process` (whose ids are those it had; they
    /// become the ids after the call, as the event's invariant says).
    pub fn event<'a>(self, meta: EventMeta, mut process: Actor<'a>) -> CredEvent<'a> {
        let before = CredIds {
            uid: process.uid,
            euid: process.euid,
            gid: process.gid,
            egid: process.egid,
            ..CredIds::default()
        };
        let after = self.apply(before);
        (process.uid, process.euid, process.gid, process.egid) =
            (after.uid, after.euid, after.gid, after.egid);
        CredEvent {
            meta,
            process,
            change: self.change(),
            before,
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_id_calls_follow_setuid_2() {
        let user = CredIds {
            uid: Some(501),
            euid: Some(501),
            gid: Some(20),
            egid: Some(20),
            ..CredIds::default()
        };
        let root = CredIds {
            euid: Some(0),
            ..user
        };
        let a = SetIdCall::Setuid(0).apply(root);
        assert_eq!((a.uid, a.euid, a.suid), (Some(0), Some(0), Some(0)));
        let a = SetIdCall::Setuid(501).apply(user);
        assert_eq!((a.uid, a.euid, a.suid), (Some(501), Some(501), None));
        let a = SetIdCall::Seteuid(0).apply(user);
        assert_eq!((a.uid, a.euid), (Some(501), Some(0)));
        let a = SetIdCall::Setreuid {
            ruid: u32::MAX,
            euid: 0,
        }
        .apply(user);
        assert_eq!((a.uid, a.euid), (Some(501), Some(0)));
        let a = SetIdCall::Setgid(0).apply(root);
        assert_eq!((a.gid, a.egid, a.sgid), (Some(0), Some(0), Some(0)));
        let a = SetIdCall::Setregid { rgid: 0, egid: 0 }.apply(user);
        assert_eq!((a.gid, a.egid), (Some(0), Some(0)));
        assert_eq!(SetIdCall::Setegid(0).change(), CredChange::Gid);
        let ev = SetIdCall::Setuid(0).event(
            EventMeta::default(),
            Actor {
                pid: 7,
                uid: Some(501),
                euid: Some(0),
                ..Actor::default()
            },
        );
        assert_eq!(ev.change, CredChange::Uid);
        assert_eq!((ev.process.uid, ev.process.euid), (Some(0), Some(0)));
        assert_eq!((ev.before.uid, ev.before.euid), (Some(501), Some(0)));
    }

    #[test]
    fn actions_are_elastic_defends() {
        let names: Vec<&str> = CredChange::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["uid_change", "gid_change", "session_id_change"]);
    }
}
