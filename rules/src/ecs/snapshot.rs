//! Owned copies of events, for rules that alert on events already gone (a sequence's
//! earlier stages): the event and the processes its view read (parent, responsible
//! process), so the same view can be made again later, with the same values.

use nightjar_proto::{Args, ExecEvent};

use super::{EcsEvent, HostInfo, Parent, Process, Processes};

/// A process as a snapshot keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedProcess {
    pub pid: u32,
    pub executable: String,
    pub args: Args<'static>,
    pub command_line: String,
    pub signing_id: Option<String>,
    pub team_id: Option<String>,
    pub cs_flags: Option<u32>,
}

impl OwnedProcess {
    fn of(p: &dyn Process) -> OwnedProcess {
        OwnedProcess {
            pid: p.pid(),
            executable: p.executable().to_owned(),
            args: Args::from_strs(p.args().iter()).0,
            command_line: p.command_line().to_owned(),
            signing_id: p.signing_id().map(str::to_owned),
            team_id: p.team_id().map(str::to_owned),
            cs_flags: p.cs_flags(),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.executable.capacity()
            + self.args.heap_bytes()
            + self.command_line.capacity()
            + self.signing_id.as_ref().map_or(0, String::capacity)
            + self.team_id.as_ref().map_or(0, String::capacity)
    }
}

impl Process for OwnedProcess {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn executable(&self) -> &str {
        &self.executable
    }
    fn name(&self) -> &str {
        nightjar_proto::event::basename(&self.executable)
    }
    fn args(&self) -> &Args<'_> {
        &self.args
    }
    fn command_line(&self) -> &str {
        &self.command_line
    }
    fn signing_id(&self) -> Option<&str> {
        self.signing_id.as_deref()
    }
    fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }
    fn cs_flags(&self) -> Option<u32> {
        self.cs_flags
    }
}

/// An event with the processes its view read, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSnapshot {
    event: ExecEvent<'static>,
    parent: Option<OwnedProcess>,
    effective: Option<OwnedProcess>,
}

impl EventSnapshot {
    /// The event.
    pub fn event(&self) -> &ExecEvent<'static> {
        &self.event
    }

    /// The view of the event as it was seen.
    pub fn view<'a>(&'a self, host: &'a HostInfo) -> EcsEvent<'a> {
        EcsEvent::new(&self.event, self, host)
    }

    /// Heap held, bytes (for the state budget).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.event.string_bytes()
            + self.parent.as_ref().map_or(0, OwnedProcess::heap_bytes)
            + self.effective.as_ref().map_or(0, OwnedProcess::heap_bytes)
    }
}

impl Processes for EventSnapshot {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        if let Some(p) = &self.parent
            && p.pid == pid
            && self.event.target.ppid == Some(pid)
        {
            return Some(p);
        }
        match &self.effective {
            Some(p) if p.pid == pid && self.event.responsible_pid == Some(pid) => Some(p),
            _ => None,
        }
    }
}

impl EcsEvent<'_> {
    /// An owned copy of the event and of the processes its view reads.
    pub fn snapshot(&self) -> EventSnapshot {
        let parent = match self.parent() {
            Parent::Known(_, p) => Some(OwnedProcess::of(*p)),
            _ => None,
        };
        EventSnapshot {
            event: self.ev.clone().into_owned(),
            parent,
            effective: self.effective().map(OwnedProcess::of),
        }
    }

    /// When the event happened, Unix nanoseconds (`@timestamp`).
    pub fn time_ns(&self) -> i64 {
        self.ev.time_ns
    }

    /// The order the sensor captured it in.
    pub fn sequence(&self) -> u64 {
        self.ev.sensor_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::{Field, Value};
    use std::borrow::Cow;

    struct Parents(OwnedProcess);

    impl Processes for Parents {
        fn get(&self, pid: u32) -> Option<&dyn Process> {
            (pid == self.0.pid).then_some(&self.0 as &dyn Process)
        }
    }

    #[test]
    fn a_snapshot_views_like_the_event() {
        let parent = OwnedProcess {
            pid: 5,
            executable: "/bin/zsh".into(),
            args: Args::from_strs(["zsh", "-c", "x"]).0,
            command_line: "zsh -c x".into(),
            signing_id: None,
            team_id: None,
            cs_flags: Some(1),
        };
        let table = Parents(parent);
        let host = HostInfo::new("h", "id");
        let mut ev = ExecEvent::default();
        ev.target.pid = 10;
        ev.target.ppid = Some(5);
        ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
        ev.target.args = Args::from_strs(["kcc", "list"]).0;
        ev.responsible_pid = Some(5);
        let live = EcsEvent::new(&ev, &table, &host);
        let snap = live.snapshot();
        let again = snap.view(&host);
        assert_eq!(live.document(), again.document());
        assert!(matches!(again.value(Field::ParentName), Value::Str("zsh")));
        assert!(snap.heap_bytes() > 40);
    }
}
