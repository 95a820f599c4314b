//! The ECS view of an exec event: the field names Elastic rules read, resolved without
//! building a document.
//!
//! Rules name fields by their ECS path; [`Field::from_name`] turns a path into an id once, at
//! rule-compile time, and [`EcsEvent::value`] reads that field straight from the typed
//! [`ExecEvent`], the [`Processes`] lookup (parents) and the [`HostInfo`]. Nothing is built
//! per event. [`EcsEvent::document`] builds the same view as JSON, for alerts and as the
//! reference the compiled matcher is tested against.
//!
//! The view does not own a process table: the agent's table, the sensor's view of one
//! Endpoint Security message, or [`NoProcesses`] answer [`Processes::get`].

use std::cell::OnceCell;

use nightjar_proto::{Args, Caller, ExecEvent};

mod document;
mod host;
pub mod schema;

pub use host::HostInfo;
pub use schema::{Field, FieldKind, kind_of};

/// `CS_VALID`: the code signature was valid when the process started.
pub const CS_VALID: u32 = 0x1;
/// `CS_SIGNED`: the process has a code signature.
pub const CS_SIGNED: u32 = 0x2000_0000;

/// Elastic Defend's `ignore_above` for keyword fields: longer values are not indexed, so no
/// query ever matches them. Counted in UTF-16 code units, as Java does.
pub const IGNORE_ABOVE: usize = 1024;

/// Whether a keyword value is indexed at all (`ignore_above`, counted in UTF-16 units).
pub fn within_ignore_above(s: &str) -> bool {
    s.len() <= IGNORE_ABOVE || s.encode_utf16().count() <= IGNORE_ABOVE
}

/// The value(s) of one field of one event, borrowed from the event, the process lookup or
/// the host.
#[derive(Debug, Clone)]
pub enum Value<'e> {
    Missing,
    Str(&'e str),
    /// A multi-valued keyword field (argv).
    Args(&'e Args<'e>),
    /// argv joined by single spaces (`command_line`), which the event only holds NUL-joined.
    Joined(&'e Args<'e>),
    /// A keyword holding a decimal id (`user.id`, `group.id`).
    Id(u32),
    /// A keyword held by the host's shared cache (`user.name`).
    Shared(std::sync::Arc<str>),
    Long(i64),
    Bool(bool),
}

/// A process as its children see it (`process.parent.*`, `process.Ext.effective_parent.*`),
/// kept by whoever keeps processes (the agent's process table, the sensor's view of one
/// Endpoint Security message).
///
/// Read through a trait object: the view holds one pointer per looked-up process, so making
/// a view costs the same however much a process record carries.
pub trait Process {
    fn pid(&self) -> u32;
    fn executable(&self) -> &str;
    /// Basename of `executable`.
    fn name(&self) -> &str;
    fn args(&self) -> &Args<'_>;
    /// `args` joined by single spaces.
    fn command_line(&self) -> &str;
    fn signing_id(&self) -> Option<&str>;
    fn team_id(&self) -> Option<&str>;
    fn cs_flags(&self) -> Option<u32>;
}

/// Where the view finds a parent or responsible process by pid.
pub trait Processes {
    /// The last exec recorded for `pid`, if any.
    fn get(&self, pid: u32) -> Option<&dyn Process>;
}

/// No process is known: parents come only from what the event itself carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProcesses;

impl Processes for NoProcesses {
    fn get(&self, _pid: u32) -> Option<&dyn Process> {
        None
    }
}

/// Where the parent's image comes from.
#[derive(Clone, Copy)]
enum Parent<'a> {
    Unknown,
    /// Only the ppid is known.
    PidOnly(u32),
    Known(u32, &'a dyn Process),
    /// The calling image is the fork child of the parent: same image as the parent.
    Caller(u32, &'a Caller<'a>),
}

/// An exec event seen through ECS field names.
///
/// Parents are looked up on first use only: most events are decided on their own fields, and
/// a process-table probe is a likely cache miss.
#[derive(Clone)]
pub struct EcsEvent<'a> {
    ev: &'a ExecEvent<'a>,
    processes: &'a dyn Processes,
    host: &'a HostInfo,
    name: &'a str,
    parent: OnceCell<Parent<'a>>,
    effective: OnceCell<Option<&'a dyn Process>>,
}

impl std::fmt::Debug for EcsEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsEvent")
            .field("ev", self.ev)
            .field("host", &self.host.hostname)
            .finish_non_exhaustive()
    }
}

impl<'a> EcsEvent<'a> {
    #[inline]
    pub fn new(ev: &'a ExecEvent<'a>, processes: &'a dyn Processes, host: &'a HostInfo) -> Self {
        EcsEvent {
            ev,
            processes,
            host,
            name: ev.process_name(),
            parent: OnceCell::new(),
            effective: OnceCell::new(),
        }
    }

    fn parent(&self) -> &Parent<'a> {
        self.parent.get_or_init(|| {
            let (ev, processes) = (self.ev, self.processes);
            let t = &ev.target;
            match t.ppid {
                None => Parent::Unknown,
                Some(ppid) => match processes.get(ppid) {
                    Some(entry) => Parent::Known(ppid, entry),
                    None if is_fork_child(ev, ppid) && processes.get(t.pid).is_none() => {
                        Parent::Caller(ppid, &ev.caller)
                    }
                    None => Parent::PidOnly(ppid),
                },
            }
        })
    }

    fn parent_pid(&self) -> Value<'a> {
        match self.parent() {
            Parent::Unknown => Value::Missing,
            Parent::PidOnly(p) | Parent::Known(p, _) | Parent::Caller(p, _) => {
                Value::Long((*p).into())
            }
        }
    }

    /// A parent field: read from the known parent, or from the calling image when it is the
    /// parent's fork child.
    fn parent_image(
        &self,
        known: impl FnOnce(&'a dyn Process) -> Value<'a>,
        caller: impl FnOnce(&'a Caller<'a>) -> Value<'a>,
    ) -> Value<'a> {
        match self.parent() {
            Parent::Known(_, e) => known(*e),
            Parent::Caller(_, c) => caller(c),
            Parent::Unknown | Parent::PidOnly(_) => Value::Missing,
        }
    }

    fn effective(&self) -> Option<&'a dyn Process> {
        *self.effective.get_or_init(|| {
            self.ev
                .responsible_pid
                .and_then(|pid| self.processes.get(pid))
        })
    }

    fn args(&self) -> Value<'a> {
        let args = &self.ev.target.args;
        if args.is_empty() {
            Value::Missing
        } else {
            Value::Args(args)
        }
    }

    fn command_line(&self) -> Value<'a> {
        let args = &self.ev.target.args;
        if args.is_empty() {
            Value::Missing
        } else {
            Value::Joined(args)
        }
    }

    fn user_name(&self) -> Value<'a> {
        match self.ev.target.euid.and_then(|u| self.host.user_name(u)) {
            Some(n) => Value::Shared(n),
            None => Value::Missing,
        }
    }

    /// The event this view reads.
    pub fn event(&self) -> &'a ExecEvent<'a> {
        self.ev
    }

    pub fn host(&self) -> &'a HostInfo {
        self.host
    }
}

fn is_fork_child(ev: &ExecEvent<'_>, ppid: u32) -> bool {
    let c = &ev.caller;
    c.executable.is_some() && c.pid.is_none_or(|p| p == ev.target.pid) && c.ppid == Some(ppid)
}

fn signed(signing_id: Option<&str>, flags: Option<u32>) -> Option<bool> {
    match (signing_id, flags) {
        (None, None) => None,
        (id, f) => Some(id.is_some() || f.is_some_and(|f| f & CS_SIGNED != 0)),
    }
}

fn opt_str(s: Option<&str>) -> Value<'_> {
    s.map_or(Value::Missing, Value::Str)
}

fn opt_bool(b: Option<bool>) -> Value<'static> {
    b.map_or(Value::Missing, Value::Bool)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    /// One known process.
    struct One(u32, &'static str, Args<'static>, String);

    impl Process for One {
        fn pid(&self) -> u32 {
            self.0
        }
        fn executable(&self) -> &str {
            self.1
        }
        fn name(&self) -> &str {
            nightjar_proto::event::basename(self.1)
        }
        fn args(&self) -> &Args<'_> {
            &self.2
        }
        fn command_line(&self) -> &str {
            &self.3
        }
        fn signing_id(&self) -> Option<&str> {
            None
        }
        fn team_id(&self) -> Option<&str> {
            None
        }
        fn cs_flags(&self) -> Option<u32> {
            None
        }
    }

    impl Processes for One {
        fn get(&self, pid: u32) -> Option<&dyn Process> {
            (pid == self.0).then_some(self as &dyn Process)
        }
    }

    #[test]
    fn parent_comes_from_the_lookup_else_from_the_fork_child() {
        let host = HostInfo::new("h", "id");
        let mut ev = ExecEvent::default();
        ev.target.pid = 10;
        ev.target.ppid = Some(5);
        ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
        ev.caller.pid = Some(10);
        ev.caller.ppid = Some(5);
        ev.caller.executable = Some(Cow::Borrowed("/bin/zsh"));
        ev.caller.cs_flags = Some(CS_VALID | CS_SIGNED);
        {
            let v = EcsEvent::new(&ev, &NoProcesses, &host);
            assert!(matches!(v.value(Field::ParentName), Value::Str("zsh")));
            assert!(matches!(
                v.value(Field::ParentSignatureTrusted),
                Value::Bool(true)
            ));
            assert!(matches!(v.value(Field::ParentArgs), Value::Missing));
        }
        let table = One(
            5,
            "/bin/bash",
            Args::from_strs(["bash", "-c", "kcc"]).0,
            "bash -c kcc".into(),
        );
        let v = EcsEvent::new(&ev, &table, &host);
        assert!(matches!(v.value(Field::ParentName), Value::Str("bash")));
        assert!(matches!(
            v.value(Field::ParentCommandLine),
            Value::Str("bash -c kcc")
        ));
        assert!(matches!(
            v.value(Field::ParentSignatureExists),
            Value::Missing
        ));
        let doc = v.document();
        assert_eq!(doc["process"]["parent"]["name"], "bash");
        assert_eq!(doc["event"]["category"], serde_json::json!(["process"]));
        assert!(doc["process"].get("args").is_none());
    }
}
