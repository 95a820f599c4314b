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
