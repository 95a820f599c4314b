//! The parts of an eslogger JSON message Nightjar maps, as typed serde structs.
//!
//! Only the fields Nightjar maps are declared; serde skips every other key (`fds`, `stat`,
//! `parent_audit_token`, ...) without building values. Keys are matched by name in any order,
//! and fields that a message version does not have are simply `None`. The environment is kept
//! as raw JSON and read only when `[sensor] env_vars` names variables to capture.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::ndjson::{Argv, Text, Timestamp};

/// `es_event_type_t` values of the messages decoded (Apple's `ESTypes.h`).
pub mod event_type {
    pub const AUTH_EXEC: u32 = 0;
    pub const NOTIFY_EXEC: u32 = 9;
    pub const NOTIFY_OPEN: u32 = 10;
    pub const NOTIFY_FORK: u32 = 11;
    pub const NOTIFY_CLOSE: u32 = 12;
    pub const NOTIFY_CREATE: u32 = 13;
    pub const NOTIFY_EXIT: u32 = 15;
    pub const NOTIFY_RENAME: u32 = 25;
    pub const NOTIFY_UNLINK: u32 = 32;
    pub const NOTIFY_WRITE: u32 = 33;
    pub const NOTIFY_DELETEEXTATTR: u32 = 70;
    /// macOS 13+.
    pub const NOTIFY_BTM_LAUNCH_ITEM_ADD: u32 = 124;

    pub const NOTIFY_SETUID: u32 = 103;
    pub const NOTIFY_SETGID: u32 = 104;
    pub const NOTIFY_SETEUID: u32 = 105;
    pub const NOTIFY_SETEGID: u32 = 106;
    pub const NOTIFY_SETREUID: u32 = 107;
    pub const NOTIFY_SETREGID: u32 = 108;

    /// The types [`super::super::EsloggerDecoder`] turns into events.
    pub const DECODED: [u32; 17] = [
        NOTIFY_EXEC,
        NOTIFY_FORK,
        NOTIFY_CLOSE,
        NOTIFY_CREATE,
        NOTIFY_EXIT,
        NOTIFY_RENAME,
        NOTIFY_UNLINK,
        NOTIFY_WRITE,
        NOTIFY_OPEN,
        NOTIFY_DELETEEXTATTR,
        NOTIFY_BTM_LAUNCH_ITEM_ADD,
        NOTIFY_SETUID,
        NOTIFY_SETGID,
        NOTIFY_SETEUID,
        NOTIFY_SETEGID,
        NOTIFY_SETREUID,
        NOTIFY_SETREGID,
    ];
}

/// One eslogger line, reduced to what Nightjar maps.
#[derive(Debug, Default)]
pub(super) struct Message<'a> {
    pub version: Option<u32>,
    pub time: Option<i64>,
    pub seq_num: Option<u64>,
    pub global_seq_num: Option<u64>,
    pub event_type: Option<u32>,
    pub process: Option<EsProcess<'a>>,
    pub event: EventKind<'a>,
}

/// What the `event` object held.
// Lives on the stack for one line; boxing the body would allocate per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
pub(super) enum EventKind<'a> {
    /// No `event` key (yet).
    #[default]
    Absent,
    /// Another event type (`mmap`, `setextattr`, ...): the line is skipped.
    Other,
    Exec(ExecBody<'a>),
    Fork(ForkBody<'a>),
    Exit(ExitBody),
    Create(CreateBody<'a>),
    Close(CloseBody<'a>),
    Rename(RenameBody<'a>),
    Unlink(TargetBody<'a>),
    Write(TargetBody<'a>),
    Open(OpenBody<'a>),
    DeleteExtattr(DeleteExtattrBody<'a>),
    LaunchItemAdd(LaunchItemAddBody<'a>),
    /// `setuid`, `seteuid`, `setreuid`, `setgid`, `setegid`, `setregid`.
    SetId(crate::event::SetIdCall),
}

/// `es_process_t` as eslogger prints it (top-level `process`, `event.exec.target`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct EsProcess<'a> {
    pub audit_token: Option<AuditToken>,
    /// Message version 4 and later.
    pub parent_audit_token: Option<AuditToken>,
    pub responsible_audit_token: Option<AuditToken>,
    pub ppid: Option<u32>,
    pub original_ppid: Option<u32>,
    /// The POSIX process group id.
    pub group_id: Option<u32>,
    /// The POSIX session id.
    pub session_id: Option<u32>,
    pub codesigning_flags: Option<u32>,
    pub is_platform_binary: Option<bool>,
    #[serde(borrow)]
    pub signing_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub team_id: Option<Text<'a>>,
    #[serde(borrow)]
    pub cdhash: Option<Text<'a>>,
    #[serde(borrow)]
    pub executable: Option<EsFile<'a>>,
    /// Message version 2 and later.
    #[serde(borrow)]
    pub tty: Option<EsFile<'a>>,
    /// Message version 3 and later.
    pub start_time: Option<Timestamp>,
}

/// `es_file_t`: a path and whether Endpoint Security cut it.
#[derive(Debug, Deserialize)]
pub(super) struct EsFile<'a> {
    #[serde(borrow)]
    pub path: Text<'a>,
    #[serde(default)]
    pub path_truncated: Option<bool>,
}

/// `es_event_exec_t`.
#[derive(Debug, Deserialize)]
pub(super) struct ExecBody<'a> {
    #[serde(borrow)]
    pub target: EsProcess<'a>,
    #[serde(borrow, default)]
    pub args: Option<Argv<'a>>,
    /// The environment, read only when variables are to be captured.
    #[serde(borrow, default)]
    pub env: Option<&'a serde_json::value::RawValue>,
    /// Message version 3 and later.
    #[serde(borrow, default)]
    pub cwd: Option<EsFile<'a>>,
}

/// `es_event_fork_t`.
#[derive(Debug, Deserialize)]
pub(super) struct ForkBody<'a> {
    #[serde(borrow)]
    pub child: EsProcess<'a>,
}

/// `es_event_exit_t`: `stat` is the `wait(2)` status.
#[derive(Debug, Deserialize)]
pub(super) struct ExitBody {
    #[serde(default)]
    pub stat: Option<i32>,
}

/// `es_event_create_t`: an existing file (`destination_type` 0) or a new path (1).
#[derive(Debug, Deserialize)]
pub(super) struct CreateBody<'a> {
    #[serde(borrow, default)]
    pub destination: Option<Destination<'a>>,
}

/// The union `destination` of create and rename events, keyed by its member's name.
#[derive(Debug, Deserialize)]
pub(super) struct Destination<'a> {
    #[serde(borrow, default)]
    pub existing_file: Option<EsFile<'a>>,
    #[serde(borrow, default)]
    pub new_path: Option<NewPath<'a>>,
}

/// A file that does not exist yet: its directory and name.
#[derive(Debug, Deserialize)]
pub(super) struct NewPath<'a> {
    #[serde(borrow)]
    pub dir: EsFile<'a>,
    #[serde(borrow)]
    pub filename: Text<'a>,
}

/// `es_event_close_t`.
#[derive(Debug, Deserialize)]
pub(super) struct CloseBody<'a> {
    #[serde(default)]
    pub modified: Option<bool>,
    #[serde(borrow)]
    pub target: EsFile<'a>,
}

/// `es_event_rename_t`.
#[derive(Debug, Deserialize)]
pub(super) struct RenameBody<'a> {
    #[serde(borrow)]
    pub source: EsFile<'a>,
    #[serde(borrow, default)]
    pub destination: Option<Destination<'a>>,
}

/// `es_event_unlink_t`, `es_event_write_t`: one target file.
#[derive(Debug, Deserialize)]
pub(super) struct TargetBody<'a> {
    #[serde(borrow)]
    pub target: EsFile<'a>,
}

/// `es_event_open_t`: `fflag` is the open mode (`FREAD`, `FWRITE`, ...).
#[derive(Debug, Deserialize)]
pub(super) struct OpenBody<'a> {
    #[serde(borrow)]
    pub file: EsFile<'a>,
}

/// `es_event_deleteextattr_t`.
#[derive(Debug, Deserialize)]
pub(super) struct DeleteExtattrBody<'a> {
    #[serde(borrow)]
    pub target: EsFile<'a>,
    #[serde(borrow)]
    pub extattr: Text<'a>,
}

/// `es_event_btm_launch_item_add_t` (macOS 13+): who added the item (`instigator`, absent
/// when Background Task Management found it by itself), and the item.
#[derive(Debug, Deserialize)]
pub(super) struct LaunchItemAddBody<'a> {
    #[serde(borrow, default)]
    pub instigator: Option<EsProcess<'a>>,
    #[serde(borrow)]
    pub item: LaunchItem<'a>,
    #[serde(borrow, default)]
    pub executable_path: Option<Text<'a>>,
}

/// `es_btm_launch_item_t`: `item_type` is `es_btm_item_type_t` as its integer (0 user item,
/// 1 app, 2 login item, 3 agent, 4 daemon); `item_url` a `file://` URL, or one relative to
/// `app_url` for an item inside an app bundle.
#[derive(Debug, Deserialize)]
pub(super) struct LaunchItem<'a> {
    #[serde(default)]
    pub item_type: Option<u32>,
    #[serde(borrow)]
    pub item_url: Text<'a>,
    #[serde(borrow, default)]
    pub app_url: Option<Text<'a>>,
}

/// `es_event_set*id_t`: the call's arguments, by name (`uid`, `euid`, `ruid`, `gid`, `egid`,
/// `rgid`).
#[derive(Debug, Default, Deserialize)]
pub(super) struct SetIdBody {
    pub uid: Option<u32>,
    pub euid: Option<u32>,
    pub ruid: Option<u32>,
    pub gid: Option<u32>,
    pub egid: Option<u32>,
    pub rgid: Option<u32>,
}

/// An `audit_token_t`: an object keyed by name up to message version 9, an array of the
/// eight raw values `[auid, euid, egid, ruid, rgid, pid, asid, pidversion]` from version 10.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct AuditToken {
    pub auid: Option<u32>,
    pub euid: Option<u32>,
    pub egid: Option<u32>,
    pub ruid: Option<u32>,
    pub rgid: Option<u32>,
    pub pid: Option<u32>,
    pub asid: Option<u32>,
    pub pidversion: Option<u32>,
}

impl<'de> Deserialize<'de> for AuditToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AuditTokenVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TokenKey {
    Auid,
    Euid,
    Egid,
    Ruid,
    Rgid,
    Pid,
    Asid,
    Pidversion,
    #[serde(other)]
    Other,
}

struct AuditTokenVisitor;

impl<'de> Visitor<'de> for AuditTokenVisitor {
    type Value = AuditToken;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an audit token (object, or array of 8 integers)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut vals = [None; 8];
        for (i, slot) in vals.iter_mut().enumerate() {
            *slot = seq
                .next_element::<Option<TokenValue>>()?
                .ok_or_else(|| de::Error::invalid_length(i, &"8 audit token values"))?
                .map(|v| v.0);
        }
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(9, &"8 audit token values"));
        }
        let [auid, euid, egid, ruid, rgid, pid, asid, pidversion] = vals;
        Ok(AuditToken {
            auid,
            euid,
            egid,
            ruid,
            rgid,
            pid,
            asid,
            pidversion,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut t = AuditToken::default();
        while let Some(key) = map.next_key::<TokenKey>()? {
            let slot = match key {
                TokenKey::Auid => &mut t.auid,
                TokenKey::Euid => &mut t.euid,
                TokenKey::Egid => &mut t.egid,
                TokenKey::Ruid => &mut t.ruid,
                TokenKey::Rgid => &mut t.rgid,
                TokenKey::Pid => &mut t.pid,
                TokenKey::Asid => &mut t.asid,
                TokenKey::Pidversion => &mut t.pidversion,
                TokenKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Option<TokenValue>>()?.map(|v| v.0);
        }
        Ok(t)
    }
}

/// One audit token value. The C fields mix signed (`pid_t`, `au_asid_t`) and unsigned
/// (`uid_t`) 32-bit types, so both `-1` and `4294967295` mean the same bits.
struct TokenValue(u32);

impl<'de> Deserialize<'de> for TokenValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_i64(TokenValueVisitor)
    }
}

struct TokenValueVisitor;

impl Visitor<'_> for TokenValueVisitor {
    type Value = TokenValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a 32-bit integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        u32::try_from(v)
            .map(TokenValue)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        if let Ok(u) = u32::try_from(v) {
            return Ok(TokenValue(u));
        }
        i32::try_from(v)
            .map(|i| TokenValue(i.cast_unsigned()))
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }
}

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum MessageKey {
    Version,
    Time,
    SeqNum,
    GlobalSeqNum,
    EventType,
    Process,
    Event,
    #[serde(other)]
    Other,
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an eslogger message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut m = Message::default();
        while let Some(key) = map.next_key::<MessageKey>()? {
            match key {
                MessageKey::Version => m.version = map.next_value()?,
                MessageKey::Time => m.time = map.next_value::<Option<Timestamp>>()?.map(|t| t.0),
                MessageKey::SeqNum => m.seq_num = map.next_value()?,
                MessageKey::GlobalSeqNum => m.global_seq_num = map.next_value()?,
                MessageKey::EventType => {
                    m.event_type = map.next_value()?;
                    if m.event_type
                        .is_some_and(|t| !event_type::DECODED.contains(&t))
                    {
                        return skip_rest(map, m);
                    }
                }
                MessageKey::Process => m.process = map.next_value()?,
                MessageKey::Event => {
                    m.event = map.next_value::<EventKind<'de>>()?;
                    if matches!(m.event, EventKind::Other) {
                        return skip_rest(map, m);
                    }
                }
                MessageKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(m)
    }
}

/// Consumes the rest of a message of a type not decoded, without decoding it (its numbers,
/// read so far, still count for loss detection).
fn skip_rest<'de, A: MapAccess<'de>>(
    mut map: A,
    mut m: Message<'de>,
) -> Result<Message<'de>, A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    m.event = EventKind::Other;
    Ok(m)
}

impl<'de> Deserialize<'de> for EventKind<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EventKey {
    Exec,
    Fork,
    Exit,
    Create,
    Close,
    Rename,
    Unlink,
    Write,
    Open,
    Deleteextattr,
    BtmLaunchItemAdd,
    Setuid,
    Seteuid,
    Setreuid,
    Setgid,
    Setegid,
    Setregid,
    #[serde(other)]
    Other,
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = EventKind<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object keyed by event name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kind = EventKind::Absent;
        while let Some(key) = map.next_key::<EventKey>()? {
            match key {
                EventKey::Exec => kind = EventKind::Exec(map.next_value()?),
                EventKey::Fork => kind = EventKind::Fork(map.next_value()?),
                EventKey::Exit => kind = EventKind::Exit(map.next_value()?),
                EventKey::Create => kind = EventKind::Create(map.next_value()?),
                EventKey::Close => kind = EventKind::Close(map.next_value()?),
                EventKey::Rename => kind = EventKind::Rename(map.next_value()?),
                EventKey::Unlink => kind = EventKind::Unlink(map.next_value()?),
                EventKey::Write => kind = EventKind::Write(map.next_value()?),
                EventKey::Open => kind = EventKind::Open(map.next_value()?),
                EventKey::Deleteextattr => kind = EventKind::DeleteExtattr(map.next_value()?),
                EventKey::BtmLaunchItemAdd => kind = EventKind::LaunchItemAdd(map.next_value()?),
                EventKey::Setuid
                | EventKey::Seteuid
                | EventKey::Setreuid
                | EventKey::Setgid
                | EventKey::Setegid
                | EventKey::Setregid => {
                    let b: SetIdBody = map.next_value()?;
                    let missing = |field| de::Error::missing_field(field);
                    use crate::event::SetIdCall as C;
                    kind = EventKind::SetId(match key {
                        EventKey::Setuid => C::Setuid(b.uid.ok_or_else(|| missing("uid"))?),
                        EventKey::Seteuid => C::Seteuid(b.euid.ok_or_else(|| missing("euid"))?),
                        EventKey::Setreuid => C::Setreuid {
                            ruid: b.ruid.ok_or_else(|| missing("ruid"))?,
                            euid: b.euid.ok_or_else(|| missing("euid"))?,
                        },
                        EventKey::Setgid => C::Setgid(b.gid.ok_or_else(|| missing("gid"))?),
                        EventKey::Setegid => C::Setegid(b.egid.ok_or_else(|| missing("egid"))?),
                        _ => C::Setregid {
                            rgid: b.rgid.ok_or_else(|| missing("rgid"))?,
                            egid: b.egid.ok_or_else(|| missing("egid"))?,
                        },
                    });
                }
                EventKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                    if matches!(kind, EventKind::Absent) {
                        kind = EventKind::Other;
                    }
                }
            }
        }
        Ok(kind)
    }
}
