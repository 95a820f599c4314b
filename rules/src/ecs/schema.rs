//! The ECS field schema: every field the view produces, its Elasticsearch mapping and how it
//! is read from an event, one line per field; and the mapping of ECS fields the view does not
//! produce, so that rules testing them type-check as Elasticsearch would type them.
//!
//! Adding a field is one line in [`schema!`]'s invocation below: its id, its ECS path, its
//! mapping and the expression that reads it (`v` is the [`EcsEvent`]). Field ids are the
//! line's position, so tables indexed by [`Field`] never need a lookup.

use super::{
    CS_VALID, EcsEvent, Value, directory_of, extension_of, name_of, opt_bool, opt_id, opt_long,
    opt_str, signed,
};

/// How Elasticsearch maps a field in Elastic Defend's indices: it decides how values compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// `keyword` with `ignore_above: 1024`.
    Keyword,
    /// `wildcard` (e.g. `process.command_line`): no length limit.
    Wildcard,
    Long,
    Bool,
}

macro_rules! schema {
    ($( $(#[$doc:meta])* $var:ident = $name:literal, $kind:ident, |$v:ident| $read:expr; )*) => {
        /// Every ECS field the view can produce. The discriminant is the field's line in the
        /// schema (see [`FIELDS`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Field {
            $( $(#[$doc])* $var, )*
        }

        /// `(path, id, mapping)`, in [`Field`] order.
        const FIELDS: &[(&str, Field, FieldKind)] = &[
            $( ($name, Field::$var, FieldKind::$kind), )*
        ];

        impl<'a> EcsEvent<'a> {
            /// The value(s) of `field` for this event, borrowed from the event, the process
            /// lookup or the host. Inlined: the matcher reads fixed fields (the name, argv)
            /// through it, which then fold to one arm.
            #[inline]
            pub fn value(&self, field: Field) -> Value<'a> {
                match field {
                    $( Field::$var => {
                        #[allow(unused_variables)]
                        let $v = self;
                        $read
                    } )*
                }
            }
        }
    };
}

schema! {
    EventCategory = "event.category", Keyword, |v| Value::Str(v.shape.category());
    EventType = "event.type", Keyword, |v| Value::Str(v.shape.event_type());
    EventAction = "event.action", Keyword, |v| Value::Str(v.shape.action());
    EventKind = "event.kind", Keyword, |v| Value::Str("event");
    HostOsType = "host.os.type", Keyword, |v| Value::Str(v.os.as_str());
    HostHostname = "host.hostname", Keyword, |v| Value::Str(&v.host.hostname);
    HostId = "host.id", Keyword, |v| Value::Str(&v.host.id);
    Pid = "process.pid", Long, |v| Value::Long(v.pid().into());
    Executable = "process.executable", Keyword, |v| opt_str(v.executable());
    Name = "process.name", Keyword, |v| opt_str(v.name());
    Args = "process.args", Keyword, |v| v.args();
    /// The true argument count, also when the middle of a long argv was not kept.
    ArgsCount = "process.args_count", Long, |v| v.args_count();
    /// argv joined by single spaces, which the event holds NUL-joined.
    CommandLine = "process.command_line", Wildcard, |v| v.command_line();
    WorkingDirectory = "process.working_directory", Keyword, |v| opt_str(v.working_directory());
    SigningId = "process.code_signature.signing_id", Keyword, |v| opt_str(v.signature().0);
    TeamId = "process.code_signature.team_id", Keyword, |v| opt_str(v.signature().1);
    SignatureExists = "process.code_signature.exists", Bool, |v| { let (id, _, flags) = v.signature(); opt_bool(signed(id, flags)) };
    SignatureTrusted = "process.code_signature.trusted", Bool, |v| opt_bool(v.signature().2.map(|f| f & CS_VALID != 0));
    ParentPid = "process.parent.pid", Long, |v| v.parent_pid();
    ParentExecutable = "process.parent.executable", Keyword, |v| v.parent_image(|e| Value::Str(e.executable()), |c| opt_str(c.executable.as_deref()));
    ParentName = "process.parent.name", Keyword, |v| v.parent_name();
    ParentArgs = "process.parent.args", Keyword, |v| v.parent_image(|e| if e.args().is_empty() { Value::Missing } else { Value::Args(e.args()) }, |_| Value::Missing);
    ParentArgsCount = "process.parent.args_count", Long, |v| v.parent_image(|e| Value::Long(e.args_count() as i64), |_| Value::Missing);
    ParentCommandLine = "process.parent.command_line", Wildcard, |v| v.parent_image(|e| if e.args().is_empty() { Value::Missing } else { Value::Str(e.command_line()) }, |_| Value::Missing);
    ParentSigningId = "process.parent.code_signature.signing_id", Keyword, |v| v.parent_image(|e| opt_str(e.signing_id()), |c| opt_str(c.signing_id.as_deref()));
    ParentTeamId = "process.parent.code_signature.team_id", Keyword, |v| v.parent_image(|e| opt_str(e.team_id()), |c| opt_str(c.team_id.as_deref()));
    ParentSignatureExists = "process.parent.code_signature.exists", Bool, |v| v.parent_image(|e| opt_bool(signed(e.signing_id(), e.cs_flags())), |c| opt_bool(signed(c.signing_id.as_deref(), c.cs_flags)));
    ParentSignatureTrusted = "process.parent.code_signature.trusted", Bool, |v| v.parent_image(|e| opt_bool(e.cs_flags().map(|f| f & CS_VALID != 0)), |c| opt_bool(c.cs_flags.map(|f| f & CS_VALID != 0)));
    EffectivePid = "process.Ext.effective_parent.pid", Long, |v| v.effective().map_or(Value::Missing, |e| Value::Long(e.pid().into()));
    EffectiveExecutable = "process.Ext.effective_parent.executable", Keyword, |v| v.effective().map_or(Value::Missing, |e| Value::Str(e.executable()));
    EffectiveName = "process.Ext.effective_parent.name", Keyword, |v| v.effective().map_or(Value::Missing, |e| Value::Str(e.name()));
    UserId = "user.id", Keyword, |v| opt_id(v.ids().euid);
    UserName = "user.name", Keyword, |v| v.user_name();
    GroupId = "group.id", Keyword, |v| opt_id(v.ids().egid);
    /// The effective ids again under `process.*`, and the real ones (Elastic Defend, Linux).
    ProcessUserId = "process.user.id", Keyword, |v| opt_id(v.ids().euid);
    ProcessGroupId = "process.group.id", Keyword, |v| opt_id(v.ids().egid);
    RealUserId = "process.real_user.id", Keyword, |v| opt_id(v.ids().uid);
    RealGroupId = "process.real_group.id", Keyword, |v| opt_id(v.ids().gid);
    UserRealId = "user.Ext.real.id", Keyword, |v| opt_id(v.ids().uid);
    GroupRealId = "group.Ext.real.id", Keyword, |v| opt_id(v.ids().gid);
    ParentUserId = "process.parent.user.id", Keyword, |v| v.parent_image(|e| opt_id(e.ids().euid), |_| Value::Missing);
    ParentGroupId = "process.parent.group.id", Keyword, |v| v.parent_image(|e| opt_id(e.ids().egid), |_| Value::Missing);
    ParentWorkingDirectory = "process.parent.working_directory", Keyword, |v| v.parent_image(|e| opt_str(e.working_directory()), |_| Value::Missing);
    /// A controlling terminal.
    Interactive = "process.interactive", Bool, |v| opt_bool(v.interactive());
    ParentInteractive = "process.parent.interactive", Bool, |v| v.parent_image(|e| opt_bool(e.interactive()), |_| Value::Missing);
    /// Some of argv was not kept (the middle of a long argv, or bytes of an argument).
    ArgsTruncated = "process.Ext.args_truncated", Bool, |v| v.args_truncated();
    /// `NAME=value` of the environment variables `[sensor] env_vars` names.
    EnvVars = "process.env_vars", Keyword, |v| v.env_vars();
    EntityId = "process.entity_id", Keyword, |v| v.entity_id(v.pid(), v.start_time_ns());
    ParentEntityId = "process.parent.entity_id", Keyword, |v| v.parent_image(|e| v.entity_id(e.pid(), e.start_time_ns()), |_| Value::Missing);
    SessionLeaderPid = "process.session_leader.pid", Long, |v| opt_long(v.session_leader_pid());
    SessionLeaderName = "process.session_leader.name", Keyword, |v| v.leader_value(v.session_leader_pid(), |t| opt_str(t.name()), |p| Value::Str(p.name()));
    SessionLeaderExecutable = "process.session_leader.executable", Keyword, |v| v.leader_value(v.session_leader_pid(), |t| opt_str(t.executable()), |p| Value::Str(p.executable()));
    SessionLeaderEntityId = "process.session_leader.entity_id", Keyword, |v| v.leader_value(v.session_leader_pid(), |t| t.entity_id(t.pid(), t.start_time_ns()), |p| v.entity_id(p.pid(), p.start_time_ns()));
    GroupLeaderPid = "process.group_leader.pid", Long, |v| opt_long(v.group_leader_pid());
    GroupLeaderName = "process.group_leader.name", Keyword, |v| v.leader_value(v.group_leader_pid(), |t| opt_str(t.name()), |p| Value::Str(p.name()));
    GroupLeaderExecutable = "process.group_leader.executable", Keyword, |v| v.leader_value(v.group_leader_pid(), |t| opt_str(t.executable()), |p| Value::Str(p.executable()));
    GroupLeaderEntityId = "process.group_leader.entity_id", Keyword, |v| v.leader_value(v.group_leader_pid(), |t| t.entity_id(t.pid(), t.start_time_ns()), |p| v.entity_id(p.pid(), p.start_time_ns()));
    EntryLeaderPid = "process.entry_leader.pid", Long, |v| opt_long(v.entry_leader().map(|e| e.pid));
    EntryLeaderName = "process.entry_leader.name", Keyword, |v| v.leader_value(v.entry_leader().map(|e| e.pid), |t| opt_str(t.name()), |p| Value::Str(p.name()));
    EntryLeaderExecutable = "process.entry_leader.executable", Keyword, |v| v.leader_value(v.entry_leader().map(|e| e.pid), |t| opt_str(t.executable()), |p| Value::Str(p.executable()));
    EntryLeaderArgs = "process.entry_leader.args", Keyword, |v| v.leader_value(v.entry_leader().map(|e| e.pid), |t| t.args(), |p| if p.args().is_empty() { Value::Missing } else { Value::Args(p.args()) });
    EntryLeaderEntityId = "process.entry_leader.entity_id", Keyword, |v| match v.entry_leader() { Some(e) => v.entity_id(e.pid, e.start_time_ns), None => Value::Missing };
    EntryMetaType = "process.entry_leader.entry_meta.type", Keyword, |v| opt_str(v.entry_leader().map(|e| e.kind.as_str()));
    ExitCode = "process.exit_code", Long, |v| v.exit_code();
    FilePath = "file.path", Keyword, |v| opt_str(v.file_path());
    FileName = "file.name", Keyword, |v| name_of(v.file_path());
    FileExtension = "file.extension", Keyword, |v| extension_of(v.file_path());
    FileDirectory = "file.directory", Keyword, |v| directory_of(v.file_path());
    FileOriginalPath = "file.Ext.original.path", Keyword, |v| opt_str(v.original_path());
    FileOriginalName = "file.Ext.original.name", Keyword, |v| name_of(v.original_path());
    FileOriginalExtension = "file.Ext.original.extension", Keyword, |v| extension_of(v.original_path());
    /// Elastic Defend's name on macOS for the responsible process (as
    /// `process.Ext.effective_parent.*`).
    EffectiveProcessPid = "Effective_process.pid", Long, |v| v.effective().map_or(Value::Missing, |e| Value::Long(e.pid().into()));
    EffectiveProcessExecutable = "Effective_process.executable", Keyword, |v| v.effective().map_or(Value::Missing, |e| Value::Str(e.executable()));
    EffectiveProcessName = "Effective_process.name", Keyword, |v| v.effective().map_or(Value::Missing, |e| Value::Str(e.name()));
    EffectiveProcessEntityId = "Effective_process.entity_id", Keyword, |v| v.effective().map_or(Value::Missing, |e| v.entity_id(e.pid(), e.start_time_ns()));
    /// A launch agent or daemon added (`launch_daemon`): its property list's file name and
    /// path, and the program it runs.
    PersistenceName = "Persistence.name", Keyword, |v| name_of(v.launch_item().map(|f| f.path.as_ref()));
    PersistencePath = "Persistence.path", Keyword, |v| opt_str(v.launch_item().map(|f| f.path.as_ref()));
    PersistenceExecutable = "Persistence.executable", Keyword, |v| opt_str(v.launch_item().and_then(|f| f.launch_executable.as_deref()));
}

/// Mappings of ECS and Elastic Defend fields the view does not produce. A rule testing them
/// loads (its literals typed as Elasticsearch types them) and its tests on them are false;
/// fields neither here nor in the schema are keywords, and `rules check` warns about them.
const NOT_PRODUCED: &[(&str, FieldKind)] = &[
    ("process.parent.exit_code", FieldKind::Long),
    ("process.parent.group_leader.pid", FieldKind::Long),
    ("process.parent.session_leader.pid", FieldKind::Long),
    ("process.parent.entry_leader.pid", FieldKind::Long),
    ("process.session_leader.parent.pid", FieldKind::Long),
    ("process.entry_leader.parent.pid", FieldKind::Long),
    ("process.thread.id", FieldKind::Long),
    ("process.uptime", FieldKind::Long),
    ("process.parent.uptime", FieldKind::Long),
    ("process.Ext.relative_file_creation_time", FieldKind::Long),
    (
        "process.Ext.relative_file_name_modify_time",
        FieldKind::Long,
    ),
    ("process.parent.Ext.real.pid", FieldKind::Long),
    ("file.size", FieldKind::Long),
    // Read from the property list by Elastic Defend; Endpoint Security does not carry them.
    ("Persistence.runatload", FieldKind::Bool),
    ("Persistence.keepalive", FieldKind::Bool),
    ("Persistence.args", FieldKind::Keyword),
    ("file.Ext.header_bytes", FieldKind::Keyword),
    ("file.code_signature.exists", FieldKind::Bool),
    ("file.code_signature.trusted", FieldKind::Bool),
    ("dll.code_signature.exists", FieldKind::Bool),
    ("dll.code_signature.trusted", FieldKind::Bool),
    ("dll.Ext.relative_file_creation_time", FieldKind::Long),
    ("destination.port", FieldKind::Long),
    ("source.port", FieldKind::Long),
    ("network.bytes", FieldKind::Long),
    ("event.sequence", FieldKind::Long),
    ("event.risk_score", FieldKind::Long),
    ("event.severity", FieldKind::Long),
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

    /// Every field, in schema order.
    pub fn all() -> impl Iterator<Item = Field> {
        FIELDS.iter().map(|(_, f, _)| *f)
    }

    /// How many fields the view produces.
    pub const COUNT: usize = FIELDS.len();
}

/// The mapping of a field by name: the schema's, else that of a known ECS field the view does
/// not produce, else keyword (only parsing depends on it then: the field is always absent).
pub fn kind_of(name: &str) -> FieldKind {
    match Field::from_name(name) {
        Some(f) => f.kind(),
        None => not_produced(name).unwrap_or(FieldKind::Keyword),
    }
}

/// The mapping of a known ECS field the view does not produce.
fn not_produced(name: &str) -> Option<FieldKind> {
    NOT_PRODUCED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, k)| *k)
}

/// A produced field whose name is within two edits of `name`, when `name` is no field this
/// module knows: the field a misspelt name most likely meant.
pub fn suggest(name: &str) -> Option<&'static str> {
    if Field::from_name(name).is_some() || not_produced(name).is_some() {
        return None;
    }
    FIELDS
        .iter()
        .map(|(n, _, _)| (*n, edit_distance(n, name)))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(n, _)| n)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), on bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > 2 {
        return 3;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let sub = d[(i - 1) * w + j - 1] + usize::from(a[i - 1] != b[j - 1]);
                let mut best = sub.min(d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * w + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_ids_are_schema_lines() {
        for (i, (name, field, _)) in FIELDS.iter().enumerate() {
            assert_eq!(*field as usize, i, "{name}");
            assert_eq!(Field::from_name(name), Some(*field));
        }
        assert_eq!(Field::from_name("file.path"), Some(Field::FilePath));
        for (name, _) in NOT_PRODUCED {
            assert_eq!(Field::from_name(name), None, "{name} is produced");
        }
        assert_eq!(kind_of("process.interactive"), FieldKind::Bool);
        assert_eq!(kind_of("process.thread.id"), FieldKind::Long);
        assert_eq!(kind_of("process.no_such_field"), FieldKind::Keyword);
    }

    #[test]
    fn misspelt_names_meet_their_field() {
        assert_eq!(suggest("process.nmae"), Some("process.name"));
        assert_eq!(
            suggest("process.parent.executabel"),
            Some("process.parent.executable")
        );
        assert_eq!(suggest("process.name"), None);
        assert_eq!(suggest("process.interactive"), None);
        assert_eq!(suggest("file.path"), None);
        assert_eq!(suggest("file.pth"), Some("file.path"));
    }
}
