//! The ECS view of an exec event: the field names Elastic rules read, resolved without building a document.
//!
//! Rules name fields by their ECS path; [`Field::from_name`] turns a path into an id once, at
//! rule-compile time, and [`EcsEvent::value`] reads that field straight from the typed
//! [`ExecEvent`], the [`ProcessTable`] (parents) and the [`HostInfo`]. Nothing is built per
//! event. [`EcsEvent::document`] builds the same view as JSON, for alerts and as the reference
//! the compiled matcher is tested against.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nightjar_proto::{Args, Caller, ExecEvent};
use serde_json::{Map, Value as Json, json};

use crate::process_table::{ProcessEntry, ProcessTable};

/// `CS_VALID`: the code signature was valid when the process started.
pub const CS_VALID: u32 = 0x1;
/// `CS_SIGNED`: the process has a code signature.
pub const CS_SIGNED: u32 = 0x2000_0000;

/// Elastic Defend's `ignore_above` for keyword fields: longer values are not indexed, so no
/// query ever matches them. Counted in UTF-16 code units, as Java does.
pub const IGNORE_ABOVE: usize = 1024;

/// How Elasticsearch maps a field in Elastic Defend's process index: it decides how values
/// compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `keyword` with `ignore_above: 1024`.
    Keyword,
    /// `wildcard` (e.g. `process.command_line`): no length limit.
    Wildcard,
    Long,
    Bool,
}

/// Every ECS field the view can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    EventCategory,
    EventType,
    EventAction,
    EventKind,
    HostOsType,
    HostHostname,
    HostId,
    Pid,
    Executable,
    Name,
    Args,
    ArgsCount,
    CommandLine,
    WorkingDirectory,
    SigningId,
    TeamId,
    SignatureExists,
    SignatureTrusted,
    ParentPid,
    ParentExecutable,
    ParentName,
    ParentArgs,
    ParentArgsCount,
    ParentCommandLine,
    ParentSigningId,
    ParentTeamId,
    ParentSignatureExists,
    ParentSignatureTrusted,
    EffectivePid,
    EffectiveExecutable,
    EffectiveName,
    UserId,
    UserName,
    GroupId,
}

const FIELDS: &[(&str, Field, FieldKind)] = &[
    ("event.category", Field::EventCategory, FieldKind::Keyword),
    ("event.type", Field::EventType, FieldKind::Keyword),
    ("event.action", Field::EventAction, FieldKind::Keyword),
    ("event.kind", Field::EventKind, FieldKind::Keyword),
    ("host.os.type", Field::HostOsType, FieldKind::Keyword),
    ("host.hostname", Field::HostHostname, FieldKind::Keyword),
    ("host.id", Field::HostId, FieldKind::Keyword),
    ("process.pid", Field::Pid, FieldKind::Long),
    ("process.executable", Field::Executable, FieldKind::Keyword),
    ("process.name", Field::Name, FieldKind::Keyword),
    ("process.args", Field::Args, FieldKind::Keyword),
    ("process.args_count", Field::ArgsCount, FieldKind::Long),
    (
        "process.command_line",
        Field::CommandLine,
        FieldKind::Wildcard,
    ),
    (
        "process.working_directory",
        Field::WorkingDirectory,
        FieldKind::Keyword,
    ),
    (
        "process.code_signature.signing_id",
        Field::SigningId,
        FieldKind::Keyword,
    ),
    (
        "process.code_signature.team_id",
        Field::TeamId,
        FieldKind::Keyword,
    ),
    (
        "process.code_signature.exists",
        Field::SignatureExists,
        FieldKind::Bool,
    ),
    (
        "process.code_signature.trusted",
        Field::SignatureTrusted,
        FieldKind::Bool,
    ),
    ("process.parent.pid", Field::ParentPid, FieldKind::Long),
    (
        "process.parent.executable",
        Field::ParentExecutable,
        FieldKind::Keyword,
    ),
    ("process.parent.name", Field::ParentName, FieldKind::Keyword),
    ("process.parent.args", Field::ParentArgs, FieldKind::Keyword),
    (
        "process.parent.args_count",
        Field::ParentArgsCount,
        FieldKind::Long,
    ),
    (
        "process.parent.command_line",
        Field::ParentCommandLine,
        FieldKind::Wildcard,
    ),
    (
        "process.parent.code_signature.signing_id",
        Field::ParentSigningId,
        FieldKind::Keyword,
    ),
    (
        "process.parent.code_signature.team_id",
        Field::ParentTeamId,
        FieldKind::Keyword,
    ),
    (
        "process.parent.code_signature.exists",
        Field::ParentSignatureExists,
        FieldKind::Bool,
    ),
    (
        "process.parent.code_signature.trusted",
        Field::ParentSignatureTrusted,
        FieldKind::Bool,
    ),
    (
        "process.Ext.effective_parent.pid",
        Field::EffectivePid,
        FieldKind::Long,
    ),
    (
        "process.Ext.effective_parent.executable",
        Field::EffectiveExecutable,
        FieldKind::Keyword,
    ),
    (
        "process.Ext.effective_parent.name",
        Field::EffectiveName,
        FieldKind::Keyword,
    ),
    ("user.id", Field::UserId, FieldKind::Keyword),
    ("user.name", Field::UserName, FieldKind::Keyword),
    ("group.id", Field::GroupId, FieldKind::Keyword),
];

impl Field {
    /// The id of an ECS path; `None` for a field the view never produces (always absent).
    pub fn from_name(name: &str) -> Option<Field> {
        FIELDS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, f, _)| *f)
    }

    /// The ECS path.
    pub fn name(self) -> &'static str {
        FIELDS[self as usize].0
    }

    pub fn kind(self) -> FieldKind {
        FIELDS[self as usize].2
    }

    /// Every field, in declaration order.
    pub fn all() -> impl Iterator<Item = Field> {
        FIELDS.iter().map(|(_, f, _)| *f)
    }
}

/// The mapping of a field by name; fields outside the view are treated as keywords (they are
/// always absent, so only parsing depends on it).
pub fn kind_of(name: &str) -> FieldKind {
    Field::from_name(name).map_or(FieldKind::Keyword, Field::kind)
}

/// The value(s) of one field of one event, borrowed from the event, the table or the host.
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
    Shared(Arc<str>),
    Long(i64),
    Bool(bool),
}

/// The machine the events come from, plus a cache of user names.
#[derive(Debug, Default)]
pub struct HostInfo {
    pub hostname: String,
    pub id: String,
    users: Mutex<HashMap<u32, Option<Arc<str>>>>,
}

/// Distinct uids remembered; past this the cache starts over (a hostile stream cannot grow it).
const USER_CACHE_MAX: usize = 4096;

impl HostInfo {
    pub fn new(hostname: impl Into<String>, id: impl Into<String>) -> Self {
        HostInfo {
            hostname: hostname.into(),
            id: id.into(),
            users: Mutex::default(),
        }
    }

    /// This machine: its hostname, and its id from `/etc/machine-id` (systemd, D-Bus), else the
    /// hostname. The agent passes the configured `host_id` instead; `scan` uses this.
    pub fn local() -> Self {
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_owned());
        let id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
            .iter()
            .find_map(|p| {
                let id = std::fs::read_to_string(p).ok()?;
                let id = id.trim();
                (!id.is_empty()).then(|| id.to_owned())
            })
            .unwrap_or_else(|| hostname.clone());
        HostInfo::new(hostname, id)
    }

    /// Fixes the name of a uid (for input recorded on another machine, and tests).
    pub fn set_user_name(&self, uid: u32, name: Option<&str>) {
        if let Ok(mut users) = self.users.lock() {
            users.insert(uid, name.map(Arc::from));
        }
    }

    /// `user.name` of a uid: the local account database (`getpwuid_r`), cached.
    pub fn user_name(&self, uid: u32) -> Option<Arc<str>> {
        let mut users = self.users.lock().ok()?;
        if let Some(hit) = users.get(&uid) {
            return hit.clone();
        }
        if users.len() >= USER_CACHE_MAX {
            users.clear();
        }
        let name = lookup_user(uid).map(Arc::from);
        users.insert(uid, name.clone());
        name
    }
}

fn lookup_user(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// Where the parent's image comes from.
#[derive(Debug, Clone, Copy)]
enum Parent<'a> {
    Unknown,
    /// Only the ppid is known.
    PidOnly(u32),
    Table(u32, &'a ProcessEntry),
    /// The calling image is the fork child of the parent: same image as the parent.
    Caller(u32, &'a Caller<'a>),
}

/// An exec event seen through ECS field names.
///
/// Parents are looked up in the process table on first use only: most events are decided on
/// their own fields, and a table probe is a likely cache miss.
#[derive(Debug, Clone)]
pub struct EcsEvent<'a> {
    ev: &'a ExecEvent<'a>,
    table: &'a ProcessTable,
    host: &'a HostInfo,
    name: &'a str,
    parent: Cell<Option<Parent<'a>>>,
    effective: Cell<Option<Option<&'a ProcessEntry>>>,
}

impl<'a> EcsEvent<'a> {
    pub fn new(ev: &'a ExecEvent<'a>, table: &'a ProcessTable, host: &'a HostInfo) -> Self {
        EcsEvent {
            ev,
            table,
            host,
            name: ev.process_name(),
            parent: Cell::new(None),
            effective: Cell::new(None),
        }
    }

    fn parent(&self) -> Parent<'a> {
        if let Some(p) = self.parent.get() {
            return p;
        }
        let (ev, table) = (self.ev, self.table);
        let t = &ev.target;
        let parent = match t.ppid {
            None => Parent::Unknown,
            Some(ppid) => match table.get(ppid) {
                Some(entry) => Parent::Table(ppid, entry),
                None if is_fork_child(ev, ppid) && table.get(t.pid).is_none() => {
                    Parent::Caller(ppid, &ev.caller)
                }
                None => Parent::PidOnly(ppid),
            },
        };
        self.parent.set(Some(parent));
        parent
    }

    fn effective(&self) -> Option<&'a ProcessEntry> {
        if let Some(e) = self.effective.get() {
            return e;
        }
        let e = self.ev.responsible_pid.and_then(|pid| self.table.get(pid));
        self.effective.set(Some(e));
        e
    }

    /// The event this view reads.
    pub fn event(&self) -> &'a ExecEvent<'a> {
        self.ev
    }

    pub fn host(&self) -> &'a HostInfo {
        self.host
    }

    /// The value(s) of `field` for this event.
    pub fn value(&self, field: Field) -> Value<'a> {
        let t = &self.ev.target;
        match field {
            Field::EventCategory => Value::Str("process"),
            Field::EventType => Value::Str("start"),
            Field::EventAction => Value::Str("exec"),
            Field::EventKind => Value::Str("event"),
            Field::HostOsType => Value::Str(self.ev.os.as_str()),
            Field::HostHostname => Value::Str(&self.host.hostname),
            Field::HostId => Value::Str(&self.host.id),
            Field::Pid => Value::Long(t.pid.into()),
            Field::Executable => Value::Str(&t.executable),
            Field::Name => Value::Str(self.name),
            Field::Args if t.args.is_empty() => Value::Missing,
            Field::Args => Value::Args(&t.args),
            Field::ArgsCount => Value::Long(t.args.len() as i64),
            Field::CommandLine if t.args.is_empty() => Value::Missing,
            Field::CommandLine => Value::Joined(&t.args),
            Field::WorkingDirectory => opt_str(t.cwd.as_deref()),
            Field::SigningId => opt_str(t.signing_id.as_deref()),
            Field::TeamId => opt_str(t.team_id.as_deref()),
            Field::SignatureExists => opt_bool(signed(t.signing_id.as_deref(), t.cs_flags)),
            Field::SignatureTrusted => opt_bool(t.cs_flags.map(|f| f & CS_VALID != 0)),
            Field::ParentPid => match self.parent() {
                Parent::Unknown => Value::Missing,
                Parent::PidOnly(p) | Parent::Table(p, _) | Parent::Caller(p, _) => {
                    Value::Long(p.into())
                }
            },
            Field::ParentExecutable => match self.parent() {
                Parent::Table(_, e) => Value::Str(e.executable()),
                Parent::Caller(_, c) => opt_str(c.executable.as_deref()),
                _ => Value::Missing,
            },
            Field::ParentName => match self.parent() {
                Parent::Table(_, e) => Value::Str(e.name()),
                Parent::Caller(_, c) => {
                    opt_str(c.executable.as_deref().map(nightjar_proto::event::basename))
                }
                _ => Value::Missing,
            },
            Field::ParentArgs => match self.parent() {
                Parent::Table(_, e) if !e.args().is_empty() => Value::Args(e.args()),
                _ => Value::Missing,
            },
            Field::ParentArgsCount => match self.parent() {
                Parent::Table(_, e) => Value::Long(e.args().len() as i64),
                _ => Value::Missing,
            },
            Field::ParentCommandLine => match self.parent() {
                Parent::Table(_, e) if !e.args().is_empty() => Value::Str(e.command_line()),
                _ => Value::Missing,
            },
            Field::ParentSigningId => match self.parent() {
                Parent::Table(_, e) => opt_str(e.signing_id()),
                Parent::Caller(_, c) => opt_str(c.signing_id.as_deref()),
                _ => Value::Missing,
            },
            Field::ParentTeamId => match self.parent() {
                Parent::Table(_, e) => opt_str(e.team_id()),
                Parent::Caller(_, c) => opt_str(c.team_id.as_deref()),
                _ => Value::Missing,
            },
            Field::ParentSignatureExists => match self.parent() {
                Parent::Table(_, e) => opt_bool(signed(e.signing_id(), e.cs_flags())),
                Parent::Caller(_, c) => opt_bool(signed(c.signing_id.as_deref(), c.cs_flags)),
                _ => Value::Missing,
            },
            Field::ParentSignatureTrusted => {
                let flags = match self.parent() {
                    Parent::Table(_, e) => e.cs_flags(),
                    Parent::Caller(_, c) => c.cs_flags,
                    _ => None,
                };
                opt_bool(flags.map(|f| f & CS_VALID != 0))
            }
            Field::EffectivePid => match self.effective() {
                Some(e) => Value::Long(e.pid().into()),
                None => Value::Missing,
            },
            Field::EffectiveExecutable => match self.effective() {
                Some(e) => Value::Str(e.executable()),
                None => Value::Missing,
            },
            Field::EffectiveName => match self.effective() {
                Some(e) => Value::Str(e.name()),
                None => Value::Missing,
            },
            Field::UserId => t.euid.map_or(Value::Missing, Value::Id),
            Field::UserName => match t.euid.and_then(|u| self.host.user_name(u)) {
                Some(n) => Value::Shared(n),
                None => Value::Missing,
            },
            Field::GroupId => t.egid.map_or(Value::Missing, Value::Id),
        }
    }

    /// The whole view as nested ECS JSON (`event`, `host`, `process`, `user`, `group`).
    /// Absent fields are left out.
    pub fn document(&self) -> Map<String, Json> {
        let mut doc = Map::new();
        for field in Field::all() {
            let value = match self.value(field) {
                Value::Missing => continue,
                Value::Str(s) => json!(s),
                Value::Args(a) => Json::Array(a.iter().map(|s| json!(s)).collect()),
                Value::Joined(a) => json!(a.iter().collect::<Vec<_>>().join(" ")),
                Value::Id(n) => json!(n.to_string()),
                Value::Shared(s) => json!(&*s),
                Value::Long(n) => json!(n),
                Value::Bool(b) => json!(b),
            };
            let value = match field {
                Field::EventCategory | Field::EventType => Json::Array(vec![value]),
                _ => value,
            };
            insert_path(&mut doc, field.name(), value);
        }
        doc
    }
}

fn insert_path(doc: &mut Map<String, Json>, path: &str, value: Json) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = doc
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(map) = child {
                insert_path(map, rest, value);
            }
        }
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

    #[test]
    fn field_table_is_in_declaration_order() {
        for (i, (name, field, _)) in FIELDS.iter().enumerate() {
            assert_eq!(*field as usize, i, "{name}");
            assert_eq!(Field::from_name(name), Some(*field));
        }
        assert_eq!(Field::from_name("file.path"), None);
    }

    #[test]
    fn parent_comes_from_the_table_else_from_the_fork_child() {
        let host = HostInfo::new("h", "id");
        let mut table = ProcessTable::new(64);
        let mut ev = ExecEvent::default();
        ev.target.pid = 10;
        ev.target.ppid = Some(5);
        ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
        ev.caller.pid = Some(10);
        ev.caller.ppid = Some(5);
        ev.caller.executable = Some(Cow::Borrowed("/bin/zsh"));
        ev.caller.cs_flags = Some(CS_VALID | CS_SIGNED);
        {
            let v = EcsEvent::new(&ev, &table, &host);
            assert!(matches!(v.value(Field::ParentName), Value::Str("zsh")));
            assert!(matches!(
                v.value(Field::ParentSignatureTrusted),
                Value::Bool(true)
            ));
            assert!(matches!(v.value(Field::ParentArgs), Value::Missing));
        }
        let mut parent = ExecEvent::default();
        parent.target.pid = 5;
        parent.target.executable = Cow::Borrowed("/bin/bash");
        parent.target.args = Args::from_strs(["bash", "-c", "kcc"]).0;
        table.observe(&parent);
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
        assert_eq!(doc["event"]["category"], json!(["process"]));
        assert!(doc["process"].get("args").is_none());
    }
}
