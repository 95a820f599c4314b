//! A small seam over the Endpoint Security client API.
//!
//! [`EsApi`] is what Nightjar calls on an `es_client_t`: subscribe, mute, invert muting,
//! respond to AUTH messages, clear the cache. On macOS it is implemented by `endpoint-sec`'s
//! `Client`; in tests by [`super::mock::RecordingEs`], which records every call, so the
//! logic around it (which client subscribes to what, what is muted, gaps, filters, the
//! mapping, blocking decisions) is tested on every platform, as Santa tests its clients
//! against a mock ES API.

use std::fmt;
use std::path::Path;

use nightjar_proto::eslogger::event_type;

/// The Endpoint Security event types Nightjar subscribes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EsEvent {
    AuthExec,
    NotifyExec,
    NotifyFork,
    NotifyExit,
    NotifyCreate,
    NotifyClose,
    NotifyRename,
    NotifyUnlink,
    NotifyWrite,
    NotifyOpen,
    NotifyDeleteExtattr,
    /// macOS 13+.
    NotifyBtmLaunchItemAdd,
    NotifySetuid,
    NotifySetgid,
    NotifySeteuid,
    NotifySetegid,
    NotifySetreuid,
    NotifySetregid,
}

impl EsEvent {
    /// Apple's `es_event_type_t` value.
    pub fn raw(self) -> u32 {
        match self {
            EsEvent::AuthExec => event_type::AUTH_EXEC,
            EsEvent::NotifyExec => event_type::NOTIFY_EXEC,
            EsEvent::NotifyFork => event_type::NOTIFY_FORK,
            EsEvent::NotifyExit => event_type::NOTIFY_EXIT,
            EsEvent::NotifyCreate => event_type::NOTIFY_CREATE,
            EsEvent::NotifyClose => event_type::NOTIFY_CLOSE,
            EsEvent::NotifyRename => event_type::NOTIFY_RENAME,
            EsEvent::NotifyUnlink => event_type::NOTIFY_UNLINK,
            EsEvent::NotifyWrite => event_type::NOTIFY_WRITE,
            EsEvent::NotifyOpen => event_type::NOTIFY_OPEN,
            EsEvent::NotifyDeleteExtattr => event_type::NOTIFY_DELETEEXTATTR,
            EsEvent::NotifyBtmLaunchItemAdd => event_type::NOTIFY_BTM_LAUNCH_ITEM_ADD,
            EsEvent::NotifySetuid => event_type::NOTIFY_SETUID,
            EsEvent::NotifySetgid => event_type::NOTIFY_SETGID,
            EsEvent::NotifySeteuid => event_type::NOTIFY_SETEUID,
            EsEvent::NotifySetegid => event_type::NOTIFY_SETEGID,
            EsEvent::NotifySetreuid => event_type::NOTIFY_SETREUID,
            EsEvent::NotifySetregid => event_type::NOTIFY_SETREGID,
        }
    }
}

/// `es_mute_path_type_t`: by the acting process's executable (literal or prefix), or by the
/// event's target paths (macOS 13+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MutePath {
    Literal,
    Prefix,
    TargetLiteral,
    TargetPrefix,
}

/// `es_mute_inversion_type_t` (macOS 13+): inverting a dimension turns its mute set into the
/// set of what is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Inversion {
    Process,
    Path,
    TargetPath,
}

/// The answer to an AUTH message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthResult {
    Allow,
    Deny,
}

/// Why an Endpoint Security call failed, in words for the log and the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsCallError {
    pub call: &'static str,
    pub detail: String,
}

impl fmt::Display for EsCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.call, self.detail)
    }
}

impl std::error::Error for EsCallError {}

/// The calls Nightjar makes on one Endpoint Security client.
pub trait EsApi {
    /// The message an AUTH answer refers to.
    type Message;

    fn subscribe(&mut self, events: &[EsEvent]) -> Result<(), EsCallError>;
    fn unsubscribe(&mut self, events: &[EsEvent]) -> Result<(), EsCallError>;
    /// Mutes every event of the process `pid` (its current audit token).
    fn mute_process(&mut self, pid: u32) -> Result<(), EsCallError>;
    fn mute_path(&mut self, path: &Path, kind: MutePath) -> Result<(), EsCallError>;
    /// Toggles the inversion of one mute dimension.
    fn invert_muting(&mut self, what: Inversion) -> Result<(), EsCallError>;
    fn unmute_all_target_paths(&mut self) -> Result<(), EsCallError>;
    fn respond_auth(
        &mut self,
        message: &Self::Message,
        result: AuthResult,
        cache: bool,
    ) -> Result<(), EsCallError>;
    /// Clears the AUTH result cache (of every client). Apple may refuse it for a while
    /// (`ES_CLEAR_CACHE_RESULT_ERR_THROTTLE`): the caller then answers uncached until a later
    /// call succeeds.
    fn clear_cache(&mut self) -> Result<(), EsCallError>;
}
