//! The ECS view of an event (exec, fork, exit, file, credential change): the field names Elastic rules read,
//! resolved without building a document.
//!
//! Rules name fields by their ECS path; [`Field::from_name`] turns a path into an id once, at
//! rule-compile time, and [`EcsEvent::value`] reads that field straight from the typed event,
//! the [`Processes`] lookup (parents, leaders, and for non-exec events the acting process's
//! last exec) and the [`HostInfo`]. Nothing is built per event. [`EcsEvent::document`] builds
//! the same view as JSON, for alerts and as the reference the compiled matcher is tested
//! against.
//!
//! Which process `process.*` is:
//! - exec: the new image (the event carries everything);
//! - fork: the child, which runs its parent's image (from the forking process's last exec);
//!   `process.parent` is the process that forked;
//! - exit, file and credential events: the acting process, from what the event carries (pid,
//!   start time, ids; on macOS its image and signature too) and its last exec in the lookup,
//!   when that is the same process instance (same start time). A credential event carries
//!   the ids after the change, and a session change makes the process its own session leader.
//!
//! The view does not own a process table: the agent's table, the sensor's view of one
//! Endpoint Security message, or [`NoProcesses`] answer [`Processes::get`].

use std::cell::OnceCell;

use nightjar_proto::event::{
    Actor, CredEvent, Event, ExitEvent, FileAction, FileEvent, ForkEvent, directory, extension,
};
use nightjar_proto::{Args, Caller, ExecEvent, OsType};

mod document;
mod host;
pub mod leaders;
pub mod schema;
pub mod shape;
mod snapshot;

pub use host::{EntityHasher, EntityId, HostInfo};
pub use leaders::{EntryFacts, EntryLeader, EntryType, entry_leader};
pub use schema::{Field, FieldKind, kind_of};
pub use shape::Shape;
pub use snapshot::{EventSnapshot, OwnedProcess};

/// The event categories (`event.category`) this host's events have: an EQL query for any
/// other category cannot match and loads as unsupported.
pub const CATEGORIES: &[&str] = &["process", "file"];

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
    /// A multi-valued keyword field (argv, `env_vars`).
    Args(&'e Args<'e>),
    /// argv joined by single spaces (`command_line`), which the event only holds NUL-joined.
    Joined(&'e Args<'e>),
    /// A keyword holding a decimal id (`user.id`, `group.id`).
    Id(u32),
    /// A keyword held by the host's shared cache (`user.name`).
    Shared(std::sync::Arc<str>),
    /// A keyword computed for this event (`process.entity_id`).
    Entity(EntityId),
    Long(i64),
    Bool(bool),
}

/// A process as other events see it (`process.parent.*`, the leaders, the acting process of
/// a file event), kept by whoever keeps processes (the agent's process table, the sensor's
/// view of one Endpoint Security message). What a keeper does not know is `None`.
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
    /// The true argument count (`args` may hold fewer).
    fn args_count(&self) -> usize {
        self.args().total()
    }
    /// Start time, Unix nanoseconds (what tells process instances of one pid apart).
    fn start_time_ns(&self) -> Option<i64> {
        None
    }
    fn ppid(&self) -> Option<u32> {
        None
    }
    fn working_directory(&self) -> Option<&str> {
        None
    }
    /// Real uid, effective uid, real gid, effective gid.
    fn ids(&self) -> Ids {
        Ids::default()
    }
    /// Whether it has a controlling terminal.
    fn interactive(&self) -> Option<bool> {
        None
    }
    fn session_leader_pid(&self) -> Option<u32> {
        None
    }
    fn group_leader_pid(&self) -> Option<u32> {
        None
    }
    fn container(&self) -> Option<bool> {
        None
    }
    fn entry_leader(&self) -> Option<EntryLeader> {
        None
    }
}

/// A process's credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ids {
    pub uid: Option<u32>,
    pub euid: Option<u32>,
    pub gid: Option<u32>,
    pub egid: Option<u32>,
}

/// Where the view finds a parent, a leader or an acting process by pid.
pub trait Processes {
    /// The last exec recorded for `pid` (or the fork it came from), if any.
    fn get(&self, pid: u32) -> Option<&dyn Process>;

    /// The same process as a shared, unchanging value, when the table keeps its entries
    /// that way (writing a new value where a shared one was, never changing one in
    /// place): a snapshot then holds the entry itself instead of a copy. `None` makes the
    /// snapshot copy what [`Processes::get`] answers.
    fn get_shared(&self, _pid: u32) -> Option<std::sync::Arc<OwnedProcess>> {
        None
    }
}

/// No process is known: parents come only from what the event itself carries.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProcesses;

impl Processes for NoProcesses {
    fn get(&self, _pid: u32) -> Option<&dyn Process> {
        None
    }
}

/// The event the view reads, by kind.
#[derive(Clone, Copy)]
enum Subject<'a> {
    Exec(&'a ExecEvent<'a>),
    Fork(&'a ForkEvent<'a>),
    Exit(&'a ExitEvent<'a>),
    File(&'a FileEvent<'a>),
    Cred(&'a CredEvent<'a>),
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

/// An event seen through ECS field names.
///
/// Processes are looked up on first use only: most events are decided on their own fields,
/// and a process-table probe is a likely cache miss.
#[derive(Clone)]
pub struct EcsEvent<'a> {
    subject: Subject<'a>,
    shape: Shape,
    os: OsType,
    processes: &'a dyn Processes,
    host: &'a HostInfo,
    /// The acting process's last exec (non-exec events), when it is the same instance.
    image: OnceCell<Option<&'a dyn Process>>,
    parent: OnceCell<Parent<'a>>,
    effective: OnceCell<Option<&'a dyn Process>>,
    /// `process.name` and `process.parent.name`, read by many rules of one event (each a
    /// search for the last `/`).
    name: OnceCell<Option<&'a str>>,
    parent_name: OnceCell<Option<&'a str>>,
}

impl std::fmt::Debug for EcsEvent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcsEvent")
            .field("shape", &self.shape)
            .field("pid", &self.pid())
            .field("host", &self.host.hostname)
            .finish_non_exhaustive()
    }
}

impl<'a> EcsEvent<'a> {
    /// The view of an exec event.
    #[inline]
    pub fn new(ev: &'a ExecEvent<'a>, processes: &'a dyn Processes, host: &'a HostInfo) -> Self {
        EcsEvent::with(Subject::Exec(ev), Shape::Exec, ev.os, processes, host)
    }

    /// The view of an event of any kind.
    pub fn of(ev: &'a Event<'a>, processes: &'a dyn Processes, host: &'a HostInfo) -> Self {
        let subject = match ev {
            Event::Exec(e) => Subject::Exec(e),
            Event::Fork(e) => Subject::Fork(e),
            Event::Exit(e) => Subject::Exit(e),
            Event::File(e) => Subject::File(e),
            Event::Cred(e) => Subject::Cred(e),
        };
        EcsEvent::with(subject, Shape::of(ev), ev.meta().os, processes, host)
    }

    fn with(
        subject: Subject<'a>,
        shape: Shape,
        os: OsType,
        processes: &'a dyn Processes,
        host: &'a HostInfo,
    ) -> Self {
        EcsEvent {
            subject,
            shape,
            os,
            processes,
            host,
            image: OnceCell::new(),
            parent: OnceCell::new(),
            effective: OnceCell::new(),
            name: OnceCell::new(),
            parent_name: OnceCell::new(),
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn os(&self) -> OsType {
        self.os
    }

    /// The exec this view reads, when it reads one.
    pub fn exec(&self) -> Option<&'a ExecEvent<'a>> {
        match self.subject {
            Subject::Exec(e) => Some(e),
            _ => None,
        }
    }

    /// The file event this view reads, when it reads one.
    pub fn file(&self) -> Option<&'a FileEvent<'a>> {
        match self.subject {
            Subject::File(e) => Some(e),
            _ => None,
        }
    }

    /// The exec, fork, exit, file or credential event itself.
    pub fn kind_str(&self) -> &'static str {
        match self.subject {
            Subject::Exec(_) => "exec",
            Subject::Fork(_) => "fork",
            Subject::Exit(_) => "exit",
            Subject::File(_) => "file",
            Subject::Cred(_) => "cred",
        }
    }

    /// `process.executable`, for naming the event.
    pub fn process_executable(&self) -> Option<&'a str> {
        self.executable()
    }

    /// The event's own sequence numbers and times.
    pub fn meta(&self) -> nightjar_proto::event::EventMeta {
        match self.subject {
            Subject::Exec(e) => e.meta(),
            Subject::Fork(e) => e.meta,
            Subject::Exit(e) => e.meta,
            Subject::File(e) => e.meta,
            Subject::Cred(e) => e.meta,
        }
    }

    /// The credential or session change this view reads, when it reads one.
    pub fn cred(&self) -> Option<&'a CredEvent<'a>> {
        match self.subject {
            Subject::Cred(e) => Some(e),
            _ => None,
        }
    }

    pub fn host(&self) -> &'a HostInfo {
        self.host
    }

    /// The process the event names besides its image: the actor of an exit, file or
    /// credential event, the forking process of a fork.
    fn actor(&self) -> Option<&'a Actor<'a>> {
        match self.subject {
            Subject::Exec(_) => None,
            Subject::Fork(e) => Some(&e.parent),
            Subject::Exit(e) => Some(&e.process),
            Subject::File(e) => Some(&e.process),
            Subject::Cred(e) => Some(&e.process),
        }
    }

    /// The last exec of the process whose image `process.*` shows (non-exec events): for a
    /// fork, the forking process; otherwise the actor, if the lookup has the same instance.
    fn image(&self) -> Option<&'a dyn Process> {
        *self.image.get_or_init(|| {
            let actor = self.actor()?;
            let p = self.processes.get(actor.pid)?;
            let same = match (p.start_time_ns(), actor.start_time_ns) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            same.then_some(p)
        })
    }

    /// `process.pid`.
    pub fn pid(&self) -> u32 {
        match self.subject {
            Subject::Exec(e) => e.target.pid,
            Subject::Fork(e) => e.child_pid,
            Subject::Exit(e) => e.process.pid,
            Subject::File(e) => e.process.pid,
            Subject::Cred(e) => e.process.pid,
        }
    }

    /// `process.start` (what `process.entity_id` is derived from).
    pub fn start_time_ns(&self) -> Option<i64> {
        match self.subject {
            Subject::Exec(e) => e.target.start_time_ns,
            Subject::Fork(e) => e.child_start_time_ns,
            Subject::Exit(e) => e.process.start_time_ns,
            Subject::File(e) => e.process.start_time_ns,
            Subject::Cred(e) => e.process.start_time_ns,
        }
    }

    fn executable(&self) -> Option<&'a str> {
        match self.subject {
            Subject::Exec(e) => Some(&e.target.executable),
            _ => self
                .actor()
                .and_then(|a| a.executable.as_deref())
                .or_else(|| self.image().map(|p| p.executable())),
        }
    }

    /// `process.name`: the basename of the executable (not argv[0]).
    fn name(&self) -> Option<&'a str> {
        *self
            .name
            .get_or_init(|| self.executable().map(nightjar_proto::event::basename))
    }

    /// `process.parent.name`: the known parent's, or the calling image's when it is the
    /// parent's fork child.
    fn parent_name(&self) -> Value<'a> {
        opt_str(*self.parent_name.get_or_init(|| match self.parent() {
            Parent::Known(_, e) => Some(e.name()),
            Parent::Caller(_, c) => c.executable.as_deref().map(nightjar_proto::event::basename),
            Parent::Unknown | Parent::PidOnly(_) => None,
        }))
    }

    fn process_args(&self) -> Option<&'a Args<'a>> {
        match self.subject {
            Subject::Exec(e) => Some(&e.target.args),
            _ => self.image().map(|p| p.args()),
        }
    }

    fn args(&self) -> Value<'a> {
        match self.process_args() {
            Some(args) if !args.is_empty() => Value::Args(args),
            _ => Value::Missing,
        }
    }

    fn command_line(&self) -> Value<'a> {
        match self.process_args() {
            Some(args) if !args.is_empty() => Value::Joined(args),
            _ => Value::Missing,
        }
    }

    fn args_count(&self) -> Value<'a> {
        match self.subject {
            Subject::Exec(e) => Value::Long(e.target.args.total() as i64),
            _ => self
                .image()
                .map_or(Value::Missing, |p| Value::Long(p.args_count() as i64)),
        }
    }

    fn args_truncated(&self) -> Value<'a> {
        match self.subject {
            Subject::Exec(e) => Value::Bool(e.args_truncated()),
            _ => match self.image() {
                Some(p) => Value::Bool(p.args_count() > p.args().len()),
                None => Value::Missing,
            },
        }
    }

    fn working_directory(&self) -> Option<&'a str> {
        match self.subject {
            Subject::Exec(e) => e.target.cwd.as_deref(),
            _ => self.image().and_then(|p| p.working_directory()),
        }
    }

    /// Signing id, team id and code-signing flags of the image.
    fn signature(&self) -> (Option<&'a str>, Option<&'a str>, Option<u32>) {
        match self.subject {
            Subject::Exec(e) => (
                e.target.signing_id.as_deref(),
                e.target.team_id.as_deref(),
                e.target.cs_flags,
            ),
            _ => {
                let actor = self.actor();
                if let Some(a) = actor
                    && (a.signing_id.is_some() || a.cs_flags.is_some())
                {
                    return (a.signing_id.as_deref(), a.team_id.as_deref(), a.cs_flags);
                }
                match self.image() {
                    Some(p) => (p.signing_id(), p.team_id(), p.cs_flags()),
                    None => (None, None, None),
                }
            }
        }
    }

    fn ids(&self) -> Ids {
        match self.subject {
            Subject::Exec(e) => Ids {
                uid: e.target.uid,
                euid: e.target.euid,
                gid: e.target.gid,
                egid: e.target.egid,
            },
            _ => {
                let a = self.actor();
                let from = Ids {
                    uid: a.and_then(|a| a.uid),
                    euid: a.and_then(|a| a.euid),
                    gid: a.and_then(|a| a.gid),
                    egid: a.and_then(|a| a.egid),
                };
                if from.euid.is_some() {
                    from
                } else {
                    self.image().map_or(from, |p| p.ids())
                }
            }
        }
    }

    fn ppid(&self) -> Option<u32> {
        match self.subject {
            Subject::Exec(e) => e.target.ppid,
            Subject::Fork(e) => Some(e.parent.pid),
            _ => self
                .actor()
                .and_then(|a| a.ppid)
                .or_else(|| self.image().and_then(|p| p.ppid())),
        }
    }

    fn parent(&self) -> &Parent<'a> {
        self.parent.get_or_init(|| {
            let Some(ppid) = self.ppid() else {
                return Parent::Unknown;
            };
            match self.processes.get(ppid) {
                Some(entry) => Parent::Known(ppid, entry),
                None => match self.subject {
                    Subject::Exec(ev)
                        if is_fork_child(ev, ppid)
                            && self.processes.get(ev.target.pid).is_none() =>
                    {
                        Parent::Caller(ppid, &ev.caller)
                    }
                    _ => Parent::PidOnly(ppid),
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

    /// The known parent process, if any.
    fn parent_process(&self) -> Option<&'a dyn Process> {
        match self.parent() {
            Parent::Known(_, e) => Some(*e),
            _ => None,
        }
    }

    fn responsible_pid(&self) -> Option<u32> {
        match self.subject {
            Subject::Exec(e) => e.responsible_pid,
            _ => self.actor().and_then(|a| a.responsible_pid),
        }
    }

    fn effective(&self) -> Option<&'a dyn Process> {
        *self.effective.get_or_init(|| {
            self.responsible_pid()
                .and_then(|pid| self.processes.get(pid))
        })
    }

    fn user_name(&self) -> Value<'a> {
        match self.ids().euid.and_then(|u| self.host.user_name(u)) {
            Some(n) => Value::Shared(n),
            None => Value::Missing,
        }
    }

    /// `process.interactive`: a controlling terminal, where the source says (absent for
    /// ECS input, which may not).
    fn interactive(&self) -> Option<bool> {
        match self.subject {
            Subject::Exec(e) => match e.source {
                nightjar_proto::Source::Ecs => None,
                _ => Some(e.target.tty.is_some()),
            },
            _ => self.image().and_then(|p| p.interactive()),
        }
    }

    fn session_leader_pid(&self) -> Option<u32> {
        match self.subject {
            Subject::Exec(e) => e.target.session_leader_pid,
            Subject::Cred(e) if e.after.sid.is_some() => e.after.sid,
            _ => self.image().and_then(|p| p.session_leader_pid()),
        }
    }

    fn group_leader_pid(&self) -> Option<u32> {
        match self.subject {
            Subject::Exec(e) => e.target.group_leader_pid,
            _ => self.image().and_then(|p| p.group_leader_pid()),
        }
    }

    /// This process's entry leader: computed for an exec (whose record the lookup does not
    /// hold yet), else kept by the lookup.
    fn entry_leader(&self) -> Option<EntryLeader> {
        match self.subject {
            Subject::Exec(e) => entry_leader(
                EntryFacts {
                    pid: e.target.pid,
                    start_time_ns: e.target.start_time_ns,
                    sid: e.target.session_leader_pid,
                    container: e.target.container,
                    interactive: self.interactive(),
                },
                self.parent_process(),
            ),
            Subject::Fork(_) => self.image().and_then(|p| p.entry_leader()),
            _ => self.image().and_then(|p| p.entry_leader()),
        }
    }

    /// The leader with `pid` as the lookup has it; the process itself when it leads.
    fn leader(&self, pid: Option<u32>) -> Option<Leader<'a>> {
        let pid = pid?;
        if pid == self.pid() {
            return Some(Leader::This);
        }
        self.processes.get(pid).map(Leader::Other)
    }

    fn leader_value(
        &self,
        pid: Option<u32>,
        this: impl FnOnce(&Self) -> Value<'a>,
        other: impl FnOnce(&'a dyn Process) -> Value<'a>,
    ) -> Value<'a> {
        match self.leader(pid) {
            Some(Leader::This) => this(self),
            Some(Leader::Other(p)) => other(p),
            None => Value::Missing,
        }
    }

    fn entity_id(&self, pid: u32, start_time_ns: Option<i64>) -> Value<'a> {
        match start_time_ns.and_then(|start| self.host.entity_id(pid, start)) {
            Some(id) => Value::Entity(id),
            None => Value::Missing,
        }
    }

    fn exit_code(&self) -> Value<'a> {
        match self.subject {
            Subject::Exit(e) => e
                .exit_code
                .map_or(Value::Missing, |c| Value::Long(c.into())),
            _ => Value::Missing,
        }
    }

    fn env_vars(&self) -> Value<'a> {
        match self.subject {
            Subject::Exec(e) if !e.target.env_vars.is_empty() => Value::Args(&e.target.env_vars),
            _ => Value::Missing,
        }
    }

    fn file_path(&self) -> Option<&'a str> {
        self.file().map(|f| f.path.as_ref())
    }

    fn launch_item(&self) -> Option<&'a FileEvent<'a>> {
        self.file().filter(|f| f.action == FileAction::LaunchDaemon)
    }

    fn original_path(&self) -> Option<&'a str> {
        self.file()
            .filter(|f| f.action == FileAction::Rename)
            .and_then(|f| f.original_path.as_deref())
    }
}

/// A session, group or entry leader: the process itself, or another the lookup knows.
#[derive(Clone, Copy)]
enum Leader<'a> {
    This,
    Other(&'a dyn Process),
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

fn opt_id(id: Option<u32>) -> Value<'static> {
    id.map_or(Value::Missing, Value::Id)
}

fn opt_long(n: Option<u32>) -> Value<'static> {
    n.map_or(Value::Missing, |n| Value::Long(n.into()))
}

/// `file.name` / `file.extension` / `file.directory` of a path.
fn name_of(path: Option<&str>) -> Value<'_> {
    opt_str(path.map(nightjar_proto::event::basename))
}

fn extension_of(path: Option<&str>) -> Value<'_> {
    opt_str(
        path.map(nightjar_proto::event::basename)
            .and_then(extension),
    )
}

fn directory_of(path: Option<&str>) -> Value<'_> {
    opt_str(path.and_then(directory))
}

#[cfg(test)]
mod tests;
