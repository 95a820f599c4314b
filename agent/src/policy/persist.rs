//! The applied policy's envelope in the state directory (`policy.dsse.json`), so that after
//! a restart the agent runs it before the server is reachable.
//!
//! Everything is opened relative to the checked state directory's descriptor with
//! `O_NOFOLLOW` ([`TrustedDir`]). Written atomically: a fresh `policy.dsse.json.tmp`, created
//! exclusively, mode 0600, synced, renamed over the old file, the directory synced — a crash
//! leaves the old envelope or the new one, never half of one. Read back only when it is a
//! regular file of a trusted owner, private (no group or other access) and with one name;
//! the envelope is verified again on load anyway, but a planted link or file must not make
//! the agent read (or write) anything else.

use std::io::Write;

use nightjar_proto::trusted_dir::TrustedDir;
use nix::fcntl::OFlag;

/// The applied envelope (the sensor reads it too: [`nightjar_rules::policy::KEPT_FILE`]).
pub const FILE: &str = nightjar_rules::policy::KEPT_FILE;
const TEMP: &str = "policy.dsse.json.tmp";
/// Largest envelope read back (base64 of the largest payload, with room).
pub const MAX_ENVELOPE_BYTES: u64 = nightjar_rules::policy::MAX_ENVELOPE_BYTES;

/// Why the envelope could not be kept or read back.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {op}: {reason}")]
pub struct PersistError {
    pub path: String,
    pub op: &'static str,
    pub reason: String,
}

fn fail<'a>(
    dir: &'a TrustedDir,
    name: &'a str,
    op: &'static str,
) -> impl FnOnce(std::io::Error) -> PersistError + 'a {
    move |e| PersistError {
        path: dir.display_name(name).display().to_string(),
        op,
        reason: e.to_string(),
    }
}

/// Replaces the kept envelope with `envelope`, durably.
pub fn save(dir: &TrustedDir, envelope: &[u8]) -> Result<(), PersistError> {
    dir.remove_file(TEMP)
        .map_err(fail(dir, TEMP, "remove a stale temporary file"))?;
    let mut file = dir
        .open_file(
            TEMP,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            0o600,
        )
        .map_err(fail(dir, TEMP, "create"))?;
    file.write_all(envelope)
        .and_then(|()| file.sync_all())
        .map_err(fail(dir, TEMP, "write"))?;
    drop(file);
    dir.rename(TEMP, FILE).map_err(fail(dir, FILE, "replace"))?;
    dir.sync()
        .map_err(fail(dir, FILE, "sync the directory of"))?;
    Ok(())
}

/// The kept envelope, if there is one (read as the sensor reads it:
/// [`TrustedDir::read_private`]).
pub fn load(dir: &TrustedDir) -> Result<Option<Vec<u8>>, PersistError> {
    match dir.read_private(FILE, MAX_ENVELOPE_BYTES) {
        Ok(found) => Ok(found.map(|(bytes, _)| bytes)),
        Err(e) => Err(PersistError {
            path: e.path,
            op: e.op,
            reason: e.reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use nightjar_proto::trusted_dir::Missing;

    use super::*;

    fn state() -> (tempfile::TempDir, TrustedDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TrustedDir::open(&tmp.path().join("state"), Missing::Create).unwrap();
        (tmp, dir)
    }

    #[test]
    fn saved_atomically_private_and_read_back() {
        let (_tmp, dir) = state();
        assert!(load(&dir).unwrap().is_none());
        save(&dir, b"one").unwrap();
        save(&dir, b"two").unwrap();
        assert_eq!(load(&dir).unwrap().as_deref(), Some(&b"two"[..]));
        let mode = std::fs::metadata(dir.path().join(FILE)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.path().join(TEMP).exists());
    }

    #[test]
    fn links_and_loose_modes_are_refused() {
        let (tmp, dir) = state();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::write(&elsewhere, b"x").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(FILE)).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // Saving replaces the link itself; the file it pointed to is untouched.
        save(&dir, b"mine").unwrap();
        assert_eq!(std::fs::read(&elsewhere).unwrap(), b"x");
        std::fs::set_permissions(
            dir.path().join(FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("0644"), "{e}");
        std::fs::set_permissions(
            dir.path().join(FILE),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::hard_link(dir.path().join(FILE), dir.path().join("second")).unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("hard links"), "{e}");
    }
}
