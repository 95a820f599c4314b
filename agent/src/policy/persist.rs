//! The applied policy's envelope in the state directory (`policy.dsse.json`), so that after
//! a restart the agent runs it before the server is reachable.
//!
//! Written atomically (a fresh `policy.dsse.json.tmp`, created exclusively with
//! `O_NOFOLLOW`, mode 0600, synced, renamed over the old file, the directory synced), so a
//! crash leaves the old envelope or the new one, never half of one. Read with `O_NOFOLLOW`
//! and refused unless it is a regular file of this user, private (no group or other access)
//! and has one name: the state directory is checked to be 0700, and the envelope is verified
//! again on load anyway, but a planted link must not make the agent read (or write) another
//! file. Both sides name files relative to the state directory only, so moving to
//! descriptor-relative opens of a checked directory changes this file alone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The applied envelope.
pub const FILE: &str = "policy.dsse.json";
const TEMP: &str = "policy.dsse.json.tmp";
/// Largest envelope read back (base64 of the largest payload, with room).
pub const MAX_ENVELOPE_BYTES: u64 = 48 << 20;

/// Why the envelope could not be kept or read back.
#[derive(Debug, thiserror::Error)]
#[error("{}: {op}: {reason}", path.display())]
pub struct PersistError {
    pub path: PathBuf,
    pub op: &'static str,
    pub reason: String,
}

fn fail<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> PersistError + 'a {
    move |e| PersistError {
        path: path.to_path_buf(),
        op,
        reason: e.to_string(),
    }
}

/// Replaces the kept envelope with `envelope`, durably.
pub fn save(state_dir: &Path, envelope: &[u8]) -> Result<(), PersistError> {
    let temp = state_dir.join(TEMP);
    let target = state_dir.join(FILE);
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(&temp, "remove a stale temporary file")(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&temp)
        .map_err(fail(&temp, "create"))?;
    file.write_all(envelope)
        .and_then(|()| file.sync_all())
        .map_err(fail(&temp, "write"))?;
    drop(file);
    std::fs::rename(&temp, &target).map_err(fail(&target, "replace"))?;
    File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(fail(state_dir, "sync the state directory"))?;
    Ok(())
}

/// The kept envelope, if there is one.
pub fn load(state_dir: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    let path = state_dir.join(FILE);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(PersistError {
                path,
                op: "open",
                reason: "is a symbolic link; refusing to follow it".into(),
            });
        }
        Err(e) => return Err(fail(&path, "open")(e)),
    };
    let meta = file.metadata().map_err(fail(&path, "stat"))?;
    let unsafe_file = |reason: String| PersistError {
        path: path.clone(),
        op: "check",
        reason,
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() {
        return Err(unsafe_file("is not a regular file".into()));
    }
    if meta.uid() != me {
        return Err(unsafe_file(format!(
            "is owned by uid {}, not by this agent (uid {me})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_file(format!(
            "has mode {:04o}; it must not be accessible to group or others",
            meta.mode() & 0o7777
        )));
    }
    if meta.nlink() != 1 {
        return Err(unsafe_file(format!(
            "has {} names (hard links); refusing it",
            meta.nlink()
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENVELOPE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(fail(&path, "read"))?;
    if bytes.len() as u64 > MAX_ENVELOPE_BYTES {
        return Err(unsafe_file(format!("is over {MAX_ENVELOPE_BYTES} bytes")));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn saved_atomically_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        save(dir.path(), b"one").unwrap();
        save(dir.path(), b"two").unwrap();
        assert_eq!(load(dir.path()).unwrap().as_deref(), Some(&b"two"[..]));
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join(TEMP).exists());
    }

    #[test]
    fn links_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(FILE)).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // Saving replaces the link itself; the file it pointed to is untouched.
        save(dir.path(), b"mine").unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"x");
        std::fs::set_permissions(
            dir.path().join(FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("0644"), "{e}");
        std::fs::set_permissions(
            dir.path().join(FILE),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::hard_link(dir.path().join(FILE), dir.path().join("second")).unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("hard links"), "{e}");
    }
}
