//! Decoder for ECS NDJSON documents (`--format ecs`) into [`Event`]s: process starts as
//! [`ExecEvent`]s, file events (`event.category: file`) as [`FileEvent`]s.
//!
//! The inverse of the agent's ECS view: Elastic Defend field names, as nested objects or as
//! dotted keys (`"process.parent.pid"`), or any mix of the two (`{"process":
//! {"code_signature.trusted": true}}`). The document is walked once; each key is appended to
//! a reusable path buffer and the full dotted path decides what the value is, so nesting and
//! dotting are equivalent and unknown fields are skipped without being built.
//!
//! Mapping (ECS -> [`ExecEvent`]):
//! - `@timestamp` -> time; `host.os.type` `macos` / `linux` -> `os` (absent: macOS);
//! - `process.{pid, executable, args, working_directory, start}` -> the new image;
//!   `process.name` stands in for the executable when there is no `process.executable`;
//! - `process.code_signature.{signing_id, team_id}`; `exists` -> `CS_SIGNED`,
//!   `trusted` -> `CS_VALID` in the code-signing flags;
//! - `user.id` (or `process.user.id`) -> euid, `group.id` (or `process.group.id`) -> egid,
//!   `process.real_user.id` / `process.real_group.id` -> uid / gid;
//! - `process.parent.pid` -> ppid; `process.parent.{executable (or name), code_signature.*}`
//!   -> the calling image: a freshly forked child that calls exec still runs its parent's
//!   image, which is what the agent's ECS view shows as `process.parent.*` when its process
//!   table has nothing better;
//! - `process.Ext.effective_parent.pid` -> the responsible pid.
//!
//! - file documents: `event.category` `file`, `event.action` `creation` / `modification` /
//!   `rename` / `deletion`, `file.path`, `file.Ext.original.path` (rename); the acting process
//!   from `process.{pid, executable, start, code_signature.*}`.
//!
//! Other documents are skipped (`Ok(None)`): `event.category` with neither `process` nor
//! `file`, process documents whose `event.type` lacks `start`/`process_started` or whose
//! `event.action` is `fork` or `end`, file documents with another action, `event.kind` other
//! than `event` (alerts), hosts other than macOS and Linux, and documents with neither
//! `event.category` nor any `process` field.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::event::{
    Actor, Caller, Event, EventMeta, ExecEvent, FileAction, FileEvent, OsType, Source, TRUNC_ARGS,
    Target,
};
pub use crate::ndjson::DecodeError;
use crate::ndjson::{Argv, Text, check_line_len};

/// `CS_VALID`: the code signature was valid when checked (ECS `trusted`).
const CS_VALID: u32 = 0x0000_0001;
/// `CS_SIGNED`: the image has a code signature (ECS `exists`).
const CS_SIGNED: u32 = 0x2000_0000;

/// Decodes ECS documents one line at a time, reusing its key-path buffer between lines.
#[derive(Debug, Default)]
pub struct EcsDecoder {
    path: String,
}

impl EcsDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one document (one line, without its newline). `Ok(None)`: a well-formed
    /// document that is not a process start, skipped. Strings borrow from `line` where they
    /// need no unescaping.
    /// `sensor_seq` and `captured_ns` are left 0 for the side that takes the event in.
    pub fn decode_line<'a>(&mut self, line: &'a str) -> Result<Option<Event<'a>>, DecodeError> {
        check_line_len(line)?;
        self.path.clear();
        let mut fields = Fields::default();
        let mut failed_at = None;
        let mut de = serde_json::Deserializer::from_str(line);
        let walked = Node {
            path: &mut self.path,
            fields: &mut fields,
            failed_at: &mut failed_at,
        }
        .deserialize(&mut de)
        .and_then(|()| de.end());
        if let Err(e) = walked {
            return Err(DecodeError::json(failed_at.unwrap_or_default(), e));
        }
        fields.into_event()
    }
}

/// Every ECS field the decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Timestamp,
    Category,
    EventType,
    Action,
    Kind,
    Os,
    Pid,
    Executable,
    Name,
    Args,
    Cwd,
    Start,
    SigningId,
    TeamId,
    Trusted,
    Exists,
    Ppid,
    ParentExecutable,
    ParentName,
    ParentSigningId,
    ParentTeamId,
    ParentTrusted,
    ParentExists,
    ResponsiblePid,
    Euid,
    Egid,
    Uid,
    Gid,
    FilePath,
    OriginalPath,
    PersistenceExecutable,
}

/// What a dotted path is: a field, an object that holds fields, or neither.
enum PathKind {
    Leaf(Field),
    Branch,
    Other,
}

fn classify(path: &str) -> PathKind {
    use Field::*;
    PathKind::Leaf(match path {
        "@timestamp" => Timestamp,
        "event.category" => Category,
        "event.type" => EventType,
        "event.action" => Action,
        "event.kind" => Kind,
        "host.os.type" => Os,
        "process.pid" => Pid,
        "process.executable" => Executable,
        "process.name" => Name,
        "process.args" => Args,
        "process.working_directory" => Cwd,
        "process.start" => Start,
        "process.code_signature.signing_id" => SigningId,
        "process.code_signature.team_id" => TeamId,
        "process.code_signature.trusted" => Trusted,
        "process.code_signature.exists" => Exists,
        "process.parent.pid" => Ppid,
        "process.parent.executable" => ParentExecutable,
        "process.parent.name" => ParentName,
        "process.parent.code_signature.signing_id" => ParentSigningId,
        "process.parent.code_signature.team_id" => ParentTeamId,
        "process.parent.code_signature.trusted" => ParentTrusted,
        "process.parent.code_signature.exists" => ParentExists,
        "process.Ext.effective_parent.pid" => ResponsiblePid,
        "user.id" | "process.user.id" => Euid,
        "group.id" | "process.group.id" => Egid,
        "process.real_user.id" => Uid,
        "process.real_group.id" => Gid,
        "file.path" => FilePath,
        "file.Ext.original.path" => OriginalPath,
        "Persistence.executable" => PersistenceExecutable,
        "file" | "file.Ext" | "file.Ext.original" | "Persistence" => return PathKind::Branch,
        "event"
        | "host"
        | "host.os"
        | "process"
        | "process.code_signature"
        | "process.parent"
        | "process.parent.code_signature"
        | "process.Ext"
        | "process.Ext.effective_parent"
        | "user"
        | "group"
        | "process.user"
        | "process.group"
        | "process.real_user"
        | "process.real_group" => return PathKind::Branch,
        _ => return PathKind::Other,
    })
}

/// The fields collected from one document.
#[derive(Debug, Default)]
struct Fields<'a> {
    time_ns: Option<i64>,
    /// `Some(true)`: `event.category` includes `process`.
    category_process: Option<bool>,
    /// `Some(true)`: `event.category` includes `file`.
    category_file: Option<bool>,
    file_path: Option<Cow<'a, str>>,
    original_path: Option<Cow<'a, str>>,
    launch_executable: Option<Cow<'a, str>>,
    /// `Some(true)`: `event.type` includes `start` or `process_started`.
    type_start: Option<bool>,
    action: Option<Cow<'a, str>>,
    kind: Option<Cow<'a, str>>,
    os: Option<Cow<'a, str>>,
    any_process_field: bool,
    pid: Option<u32>,
    executable: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    args: Option<Argv<'a>>,
    cwd: Option<Cow<'a, str>>,
    start_ns: Option<i64>,
    signing_id: Option<Cow<'a, str>>,
    team_id: Option<Cow<'a, str>>,
    trusted: Option<bool>,
    exists: Option<bool>,
    ppid: Option<u32>,
    parent_executable: Option<Cow<'a, str>>,
    parent_name: Option<Cow<'a, str>>,
    parent_signing_id: Option<Cow<'a, str>>,
    parent_team_id: Option<Cow<'a, str>>,
    parent_trusted: Option<bool>,
    parent_exists: Option<bool>,
    responsible_pid: Option<u32>,
    euid: Option<u32>,
    egid: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl<'a> Fields<'a> {
    fn read<'de: 'a, A: MapAccess<'de>>(
        &mut self,
        field: Field,
        map: &mut A,
    ) -> Result<(), A::Error> {
        fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<Cow<'de, str>>, A::Error> {
            Ok(map
                .next_value::<Option<Text<'de>>>()?
                .and_then(Text::non_empty))
        }
        fn id<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<u32>, A::Error> {
            Ok(map.next_value::<Option<Id>>()?.map(|i| i.0))
        }
        use Field::*;
        if !matches!(
            field,
            Timestamp | Category | EventType | Action | Kind | Os | Euid | Egid
        ) {
            self.any_process_field = true;
        }
        match field {
            Timestamp => self.time_ns = map.next_value::<Option<EcsTime>>()?.map(|t| t.0),
            Category => {
                let seen = map.next_value_seed(Categories)?;
                self.category_process = seen.map(|(process, _)| process);
                self.category_file = seen.map(|(_, file)| file);
            }
            EventType => {
                self.type_start = map.next_value_seed(Keywords(&["start", "process_started"]))?
            }
            Action => self.action = text(map)?,
            Kind => self.kind = text(map)?,
            Os => self.os = text(map)?,
            Pid => self.pid = id(map)?,
            Executable => self.executable = text(map)?,
            Name => self.name = text(map)?,
            Args => self.args = map.next_value()?,
            Cwd => self.cwd = text(map)?,
            Start => self.start_ns = map.next_value::<Option<EcsTime>>()?.map(|t| t.0),
            SigningId => self.signing_id = text(map)?,
            TeamId => self.team_id = text(map)?,
            Trusted => self.trusted = map.next_value()?,
            Exists => self.exists = map.next_value()?,
            Ppid => self.ppid = id(map)?,
            ParentExecutable => self.parent_executable = text(map)?,
            ParentName => self.parent_name = text(map)?,
            ParentSigningId => self.parent_signing_id = text(map)?,
            ParentTeamId => self.parent_team_id = text(map)?,
            ParentTrusted => self.parent_trusted = map.next_value()?,
            ParentExists => self.parent_exists = map.next_value()?,
            ResponsiblePid => self.responsible_pid = id(map)?,
            Euid => self.euid = id(map)?,
            Egid => self.egid = id(map)?,
            Uid => self.uid = id(map)?,
            Gid => self.gid = id(map)?,
            FilePath => self.file_path = text(map)?,
            OriginalPath => self.original_path = text(map)?,
            PersistenceExecutable => self.launch_executable = text(map)?,
        }
        Ok(())
    }

    fn is_process_start(&self) -> bool {
        let process_doc = self.category_process.unwrap_or(self.any_process_field);
        process_doc
            && self.type_start != Some(false)
            && !matches!(self.action.as_deref(), Some("fork" | "end"))
            && self.kind.as_deref().is_none_or(|k| k == "event")
    }

    fn os(&self) -> Option<OsType> {
        match self.os.as_deref() {
            None | Some("macos") => Some(OsType::Macos),
            Some("linux") => Some(OsType::Linux),
            Some(_) => None,
        }
    }

    fn into_event(self) -> Result<Option<Event<'a>>, DecodeError> {
        if self.category_file == Some(true) && self.category_process != Some(true) {
            return self.into_file_event();
        }
        if !self.is_process_start() {
            return Ok(None);
        }
        let Some(os) = self.os() else {
            return Ok(None);
        };
        let time_ns = self.time_ns.ok_or(DecodeError::Missing {
            field: "@timestamp",
        })?;
        let pid = self.pid.ok_or(DecodeError::Missing {
            field: "process.pid",
        })?;
        let executable = self.executable.or(self.name).ok_or(DecodeError::Missing {
            field: "process.executable",
        })?;
        let (args, args_cut) = self.args.map(|a| (a.args, a.truncated)).unwrap_or_default();
        let has_parent_image = self.parent_executable.is_some()
            || self.parent_name.is_some()
            || self.parent_signing_id.is_some();
        let caller = if has_parent_image {
            Caller {
                pid: Some(pid),
                ppid: self.ppid,
                executable: self.parent_executable.or(self.parent_name),
                signing_id: self.parent_signing_id,
                team_id: self.parent_team_id,
                platform_binary: None,
                cs_flags: cs_flags(self.parent_trusted, self.parent_exists),
            }
        } else {
            Caller::default()
        };
        let mut event = ExecEvent {
            sensor_seq: 0,
            source: Source::Ecs,
            os,
            flags: if args_cut { TRUNC_ARGS } else { 0 },
            time_ns,
            // Stamped by whoever takes the event in (the sensor); decoding is pure.
            captured_ns: 0,
            es_seq_num: None,
            es_global_seq_num: None,
            target: Target {
                pid,
                ppid: self.ppid,
                uid: self.uid,
                euid: self.euid,
                gid: self.gid,
                egid: self.egid,
                executable,
                args,
                cwd: self.cwd,
                signing_id: self.signing_id,
                team_id: self.team_id,
                cs_flags: cs_flags(self.trusted, self.exists),
                start_time_ns: self.start_ns,
                ..Target::default()
            },
            caller,
            responsible_pid: self.responsible_pid,
        };
        event.enforce_bounds();
        Ok(Some(Event::Exec(event)))
    }

    fn into_file_event(self) -> Result<Option<Event<'a>>, DecodeError> {
        let action = match self.action.as_deref() {
            Some("creation") => FileAction::Creation,
            Some("modification") => FileAction::Modification,
            Some("rename") => FileAction::Rename,
            Some("deletion") => FileAction::Deletion,
            Some("open") => FileAction::Open,
            Some("extended_attributes_delete") => FileAction::ExtendedAttributesDelete,
            Some("launch_daemon") => FileAction::LaunchDaemon,
            _ => return Ok(None),
        };
        let Some(os) = self.os() else {
            return Ok(None);
        };
        if self.kind.as_deref().is_some_and(|k| k != "event") {
            return Ok(None);
        }
        let time_ns = self.time_ns.ok_or(DecodeError::Missing {
            field: "@timestamp",
        })?;
        let pid = self.pid.ok_or(DecodeError::Missing {
            field: "process.pid",
        })?;
        let path = self
            .file_path
            .ok_or(DecodeError::Missing { field: "file.path" })?;
        let original_path = match action {
            FileAction::Rename => Some(self.original_path.ok_or(DecodeError::Missing {
                field: "file.Ext.original.path",
            })?),
            _ => None,
        };
        let mut event = FileEvent {
            meta: EventMeta {
                source: Source::Ecs,
                os,
                time_ns,
                ..EventMeta::default()
            },
            process: Actor {
                pid,
                start_time_ns: self.start_ns,
                ppid: self.ppid,
                uid: self.uid,
                euid: self.euid,
                gid: self.gid,
                egid: self.egid,
                executable: self.executable.or(self.name),
                signing_id: self.signing_id,
                team_id: self.team_id,
                cs_flags: cs_flags(self.trusted, self.exists),
                responsible_pid: self.responsible_pid,
                ..Actor::default()
            },
            launch_executable: self
                .launch_executable
                .filter(|_| action == FileAction::LaunchDaemon),
            action,
            path,
            original_path,
        };
        event.enforce_bounds();
        Ok(Some(Event::File(event)))
    }
}

/// The code-signing flags ECS's `trusted` / `exists` imply; `None` when neither is given.
fn cs_flags(trusted: Option<bool>, exists: Option<bool>) -> Option<u32> {
    if trusted.is_none() && exists.is_none() {
        return None;
    }
    let mut flags = 0;
    if trusted == Some(true) {
        flags |= CS_VALID;
    }
    if exists == Some(true) || trusted == Some(true) {
        flags |= CS_SIGNED;
    }
    Some(flags)
}

/// One object of the document, at the dotted path held in `path`.
struct Node<'s, 'a> {
    path: &'s mut String,
    fields: &'s mut Fields<'a>,
    /// The path of the first value that failed to decode.
    failed_at: &'s mut Option<String>,
}

impl Node<'_, '_> {
    fn note_failure(&mut self) {
        if self.failed_at.is_none() {
            *self.failed_at = Some(self.path.clone());
        }
    }
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Node<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Node<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ECS document object")
    }

    /// `"process": null` is an absent object.
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        loop {
            let key = match map.next_key::<Text<'de>>() {
                Ok(Some(Text(key))) => key,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.note_failure();
                    return Err(e);
                }
            };
            let parent_len = self.path.len();
            if parent_len > 0 {
                self.path.push('.');
            }
            self.path.push_str(&key);
            let read = match classify(self.path) {
                PathKind::Leaf(field) => self.fields.read(field, &mut map),
                PathKind::Branch => map.next_value_seed(Node {
                    path: &mut *self.path,
                    fields: &mut *self.fields,
                    failed_at: &mut *self.failed_at,
                }),
                PathKind::Other => map.next_value::<IgnoredAny>().map(drop),
            };
            if let Err(e) = read {
                self.note_failure();
                return Err(e);
            }
            self.path.truncate(parent_len);
        }
    }
}

/// An ECS keyword field that may be one string or an array of strings; the value is
/// whether any of them is one of the given words (`None` for `null`).
struct Keywords(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Keywords {
    type Value = Option<bool>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keywords {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(self.0.contains(&v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut hit = false;
        while let Some(Text(v)) = seq.next_element::<Text<'de>>()? {
            hit |= self.0.contains(&v.as_ref());
        }
        Ok(Some(hit))
    }
}

/// `event.category` (a string or an array): whether it includes `process`, and `file`.
struct Categories;

impl<'de> DeserializeSeed<'de> for Categories {
    type Value = Option<(bool, bool)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Categories {
    type Value = Option<(bool, bool)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of strings")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some((v == "process", v == "file")))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (mut process, mut file) = (false, false);
        while let Some(Text(v)) = seq.next_element::<Text<'de>>()? {
            process |= v == "process";
            file |= v == "file";
        }
        Ok(Some((process, file)))
    }
}

/// A pid, uid or gid: a number, or a string of digits (ECS keeps `user.id` as a keyword).
struct Id(u32);

impl<'de> de::Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = Id;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 32-bit unsigned id, as a number or a string of digits")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Id, E> {
        u32::try_from(v)
            .map(Id)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Id, E> {
        u32::try_from(v)
            .map(Id)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Id, E> {
        v.parse::<u32>()
            .map(Id)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// `@timestamp` / `process.start`: ISO-8601 text, or Unix epoch milliseconds as a number.
struct EcsTime(i64);

impl<'de> de::Deserialize<'de> for EcsTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EcsTimeVisitor)
    }
}

struct EcsTimeVisitor;

impl EcsTimeVisitor {
    fn millis<E: de::Error>(ms: i64) -> Result<EcsTime, E> {
        ms.checked_mul(1_000_000)
            .map(EcsTime)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(ms), &EcsTimeVisitor))
    }
}

impl Visitor<'_> for EcsTimeVisitor {
    type Value = EcsTime;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ISO-8601 time or epoch milliseconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<EcsTime, E> {
        let ms =
            i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))?;
        Self::millis(ms)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<EcsTime, E> {
        Self::millis(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<EcsTime, E> {
        crate::ndjson::parse_rfc3339_ns(v)
            .map(EcsTime)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_dotted_keys_are_the_same_field() {
        let nested = r#"{"@timestamp":"2026-11-20T10:00:01Z","event":{"category":["process"],"type":["start"]},"host":{"os":{"type":"macos"}},"process":{"pid":7,"executable":"/usr/bin/kcc","args":["kcc","copy_cred_cache"],"parent":{"pid":1,"executable":"/bin/zsh"},"code_signature":{"signing_id":"com.apple.kcc","trusted":true,"exists":true}},"user":{"id":"501"},"group":{"id":20}}"#;
        let dotted = r#"{"@timestamp":"2026-11-20T10:00:01Z","event.category":"process","event.type":"start","host.os.type":"macos","process.pid":7,"process.executable":"/usr/bin/kcc","process.args":["kcc","copy_cred_cache"],"process.parent.pid":1,"process":{"parent.executable":"/bin/zsh","code_signature.signing_id":"com.apple.kcc"},"process.code_signature":{"trusted":true,"exists":true},"user.id":501,"group.id":"20"}"#;
        let mut d = EcsDecoder::new();
        let a = d.decode_line(nested).unwrap().unwrap().into_exec().unwrap();
        let b = d.decode_line(dotted).unwrap().unwrap().into_exec().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.target.cs_flags, Some(CS_VALID | CS_SIGNED));
        assert_eq!((a.target.euid, a.target.egid), (Some(501), Some(20)));
        assert_eq!(a.caller.executable.as_deref(), Some("/bin/zsh"));
        assert_eq!(a.source, Source::Ecs);
        assert!(matches!(a.target.executable, Cow::Borrowed(_)));
    }

    #[test]
    fn epoch_millis_timestamps_are_accepted() {
        let doc = r#"{"@timestamp":1795165200123,"process":{"pid":7,"name":"kcc"}}"#;
        let ev = EcsDecoder::new()
            .decode_line(doc)
            .unwrap()
            .unwrap()
            .into_exec()
            .unwrap();
        assert_eq!(ev.time_ns, 1_795_165_200_123_000_000);
        assert_eq!(ev.target.executable, "kcc");
    }
}
