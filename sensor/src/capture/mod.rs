//! Live capture backends. Each turns the platform's notifications (exec, fork, exit, file)
//! into events and hands them to the [`Publisher`]; none returns except on failure.

#[cfg(target_os = "linux")]
pub mod ebpf;
pub mod endpoint_security;
pub mod eslogger;

use std::convert::Infallible;

use nightjar_proto::event::EnvFilter;
use nightjar_proto::filter::PathFilter;

use crate::block::Blocking;
use crate::kept_policy::PolicyWatch;
use crate::publish::Publisher;

/// What every backend captures besides the fixed event fields.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Environment variables captured into `process.env_vars`.
    pub env: EnvFilter,
    /// File events to publish: the paths and processes the loaded rules can match.
    pub files: PathFilter,
    /// File opens to publish (macOS): the paths the rules that match opens name.
    pub opens: PathFilter,
    /// A loaded rule can match a quarantine removal (macOS `NOTIFY_DELETEEXTATTR`).
    pub quarantine: bool,
    /// A loaded rule can match a launch agent or daemon added (macOS 13+
    /// `NOTIFY_BTM_LAUNCH_ITEM_ADD`).
    pub launch_items: bool,
    /// The blocking rules (`[rules] block`) that can block here.
    pub block: Blocking,
    /// A kept fleet policy is followed (a pinned policy key): its rules may come to read
    /// file events later, so a source that must decide at start (the eBPF file probes)
    /// captures them from the start, filtered by `files`.
    pub follow_policy: bool,
    /// Some loaded rule reads credential or session changes (`uid_change`, `gid_change`,
    /// `session_id_change`). On Linux their probes sit on every system call's entry and exit,
    /// which costs each system call of the host hundreds of nanoseconds: they are attached
    /// only then.
    pub creds: bool,
}

/// Which backend `run --source` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Endpoint Security on macOS, eBPF on Linux.
    Auto,
    EndpointSecurity,
    Eslogger,
    Ebpf,
}

/// A concrete backend (`Auto` resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    EndpointSecurity,
    Eslogger,
    Ebpf,
}

impl SourceKind {
    /// Resolves `Auto` for the platform this binary was built for.
    pub fn resolve(self) -> Backend {
        match self {
            SourceKind::Auto if cfg!(target_os = "macos") => Backend::EndpointSecurity,
            SourceKind::Auto | SourceKind::Ebpf => Backend::Ebpf,
            SourceKind::EndpointSecurity => Backend::EndpointSecurity,
            SourceKind::Eslogger => Backend::Eslogger,
        }
    }
}

/// Why live capture stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("missing privileges: {0}")]
    Privileges(String),
    #[error("eBPF: {0}")]
    Ebpf(String),
    #[error("Endpoint Security: {0}")]
    EndpointSecurity(String),
    /// The binary lacks the Endpoint Security entitlement (`--source auto` then uses
    /// eslogger).
    #[error("Endpoint Security: {0}")]
    NotEntitled(String),
    #[error("eslogger: {0}")]
    Eslogger(String),
    #[error("the {0} source is not available on this platform")]
    Unsupported(&'static str),
}

/// Runs the selected backend until it fails. The backends that block follow `watch` (the
/// kept policy) on their idle tick; eslogger cannot block.
pub fn run(
    kind: SourceKind,
    publisher: &mut Publisher,
    settings: &Settings,
    watch: Option<&mut PolicyWatch>,
) -> Result<Infallible, CaptureError> {
    match kind.resolve() {
        Backend::Eslogger => eslogger::run(publisher, &eslogger::program(), settings),
        #[cfg(target_os = "linux")]
        Backend::Ebpf => ebpf::run(publisher, settings, watch),
        #[cfg(not(target_os = "linux"))]
        Backend::Ebpf => Err(CaptureError::Unsupported("ebpf")),
        #[cfg(target_os = "macos")]
        Backend::EndpointSecurity => {
            match endpoint_security::client::run(publisher, settings, watch) {
                // Without the entitlement, `auto` falls back to Apple's own client instead of
                // failing (and being restarted by launchd) forever.
                Err(CaptureError::NotEntitled(why)) if kind == SourceKind::Auto => {
                    tracing::warn!("{why}; falling back to eslogger");
                    eslogger::run(publisher, &eslogger::program(), settings)
                }
                other => other,
            }
        }
        #[cfg(not(target_os = "macos"))]
        Backend::EndpointSecurity => Err(CaptureError::Unsupported("endpoint-security")),
    }
}
