//! The state directory (`state_dir`): the host key, the alert store and the control socket,
//! root's alone.
//!
//! It is a [`TrustedDir`]: the agent refuses to start unless the directory and each one above
//! it are owned by root and writable by root alone (sticky directories such as `/tmp` on the
//! way excepted; see `nightjar_proto::trusted_dir` for the exact rule), and it is created
//! 0700 when missing. Everything in it is opened relative to the checked directory's
//! descriptor with `O_NOFOLLOW`; sled, which opens paths itself, is only given a database
//! directory whose every entry was checked first (see [`check_store_entries`]).

use std::path::PathBuf;

use nightjar_proto::trusted_dir::{
    Missing, TrustError, TrustedDir, check_private_file, describe_type, trusted_owner,
};

use crate::config::Config;

/// The generated host key (when `key_file` is not set).
pub const KEY_FILE: &str = "host.key";
/// The sled database directory.
pub const STORE_DIR: &str = "alerts.sled";
/// The control socket.
pub const SOCKET: &str = "control.sock";

/// Why the state directory cannot be used. The message names the config key, the
/// component at fault and why it matters.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error(
        "{config}: key `state_dir`: {reason}; the state directory and every directory above it \
         must be owned by root and writable by root alone (see docs/security.md)"
    )]
    Untrusted { config: String, reason: String },
    #[error("{config}: key `state_dir`: {path}: {op}: {source}")]
    Io {
        config: String,
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

impl StateDirError {
    /// True when the directory does not exist (the agent has not run yet).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StateDirError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// Opens the configured state directory, checked; `missing` says whether to create it.
pub fn open(config: &Config, missing: Missing) -> Result<TrustedDir, StateDirError> {
    TrustedDir::open(&config.state_dir, missing).map_err(|e| match e {
        TrustError::Untrusted { path, reason } => StateDirError::Untrusted {
            config: config.source_name(),
            reason: format!("{:?} cannot be used: {reason}", path.display().to_string()),
        },
        TrustError::Io { path, op, source } => StateDirError::Io {
            config: config.source_name(),
            path,
            op,
            source,
        },
    })
}

/// Why sled must not be given the database directory `dir`, if it must not: sled opens
/// `db`, `conf`, `blobs/…` and `snap.*` by path and follows whatever it finds there, so a
/// symbolic link, a FIFO or a hard-linked file planted before the directory was root's
/// would make the agent write where someone else chose. Each entry (and each in `blobs/`)
/// must be a regular file with one name or a directory, owned by root. The directory is
/// root's alone (0700 in a checked state directory), so nobody can add an entry after this
/// check.
pub fn check_store_entries(dir: &TrustedDir) -> Result<(), String> {
    check_entries(dir, true)
}

fn check_entries(dir: &TrustedDir, descend: bool) -> Result<(), String> {
    let entries = dir
        .entries()
        .map_err(|e| format!("{}: cannot list: {e}", dir.path().display()))?;
    for name in entries {
        let Some(name) = name.to_str() else {
            return Err(format!(
                "{}: an entry's name is not UTF-8 ({name:?}): not one sled makes",
                dir.path().display()
            ));
        };
        let shown = dir.display_name(name);
        let st = dir
            .stat(name)
            .map_err(|e| format!("{}: cannot stat: {e}", shown.display()))?
            .ok_or_else(|| format!("{}: vanished while being checked", shown.display()))?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFDIR && descend {
            if !trusted_owner(st.st_uid) {
                return Err(format!(
                    "{} is owned by uid {}, not root",
                    shown.display(),
                    st.st_uid
                ));
            }
            let sub = dir
                .private_subdir(name, Missing::Fail)
                .map_err(|e| e.to_string())?;
            check_entries(&sub, false)?;
        } else if let Some(why) = check_private_file(&st, false) {
            return Err(format!(
                "{} {why}{}",
                shown.display(),
                if kind == libc::S_IFLNK {
                    "; refusing to let the store follow it (it would write to wherever it points)"
                } else {
                    ""
                }
            ));
        } else if kind != libc::S_IFREG {
            return Err(format!("{} is {}", shown.display(), describe_type(&st)));
        }
    }
    Ok(())
}

/// Held by the running agent (an exclusive `flock`) from before it opens the store until it
/// exits. The CLI reads the store itself only when nobody holds it, holding it shared
/// meanwhile; when the agent holds it (running, or starting and not answering yet) the CLI
/// waits for the control socket instead. Without it, a script polling `status` while the
/// agent starts kept taking sled's lock before the agent could.
pub const AGENT_LOCK: &str = "agent.lock";

/// The agent's hold on [`AGENT_LOCK`]; released when dropped.
pub struct AgentLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

fn open_lock_file(dir: &TrustedDir) -> std::io::Result<std::fs::File> {
    use nix::fcntl::OFlag;
    dir.open_file(AGENT_LOCK, OFlag::O_RDWR | OFlag::O_CREAT, 0o600)
}

/// Takes [`AGENT_LOCK`] for the agent, waiting up to `patience` for CLI readers (or another
/// agent) to let go; `Ok(None)` when `stop` was raised meanwhile.
pub fn lock_as_agent(
    dir: &TrustedDir,
    patience: std::time::Duration,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<Option<AgentLock>, String> {
    use nix::fcntl::{Flock, FlockArg};
    let shown = dir.display_name(AGENT_LOCK);
    let deadline = std::time::Instant::now() + patience;
    let mut file = open_lock_file(dir).map_err(|e| format!("{}: open: {e}", shown.display()))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Some(AgentLock { _lock: lock })),
            Err((f, nix::errno::Errno::EWOULDBLOCK)) => {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(None);
                }
                if std::time::Instant::now() >= deadline {
                    return Err(format!(
                        "{}: held by another process for {} s (is another agent running on this state directory?)",
                        shown.display(),
                        patience.as_secs()
                    ));
                }
                file = f;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err((_, e)) => return Err(format!("{}: flock: {e}", shown.display())),
        }
    }
}

/// A CLI reader's shared hold on [`AGENT_LOCK`]: `Ok(None)` when an agent holds it (ask the
/// agent instead).
pub fn lock_for_reading(
    dir: &TrustedDir,
) -> std::io::Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    let file = match dir.open_file(AGENT_LOCK, nix::fcntl::OFlag::O_RDONLY, 0) {
        Ok(f) => f,
        // No agent has run here; the store, if any, is free.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => open_lock_file(dir)?,
        Err(e) => return Err(e),
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}
