//! The server's policy key: the Ed25519 key that signs fleet policies, the only state the
//! server keeps outside PostgreSQL. Generated on first start in `state_dir/policy.key`
//! (PKCS#8, mode 0600, the directory 0700 and owned by the server's user); its public half
//! goes to hosts through MDM (`[fleet] policy_public_key`).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

/// Why the policy key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum PolicyKeyError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    #[error("{path}: not an Ed25519 PKCS#8 key: {reason}")]
    Rejected { path: PathBuf, reason: String },
    #[error("cannot generate a policy key: the system random source failed")]
    Random,
}

/// The loaded key.
pub struct PolicyKey {
    pair: Ed25519KeyPair,
    path: PathBuf,
}

impl std::fmt::Debug for PolicyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> PolicyKeyError + 'a {
    move |source| PolicyKeyError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// Creates `dir` 0700, or checks an existing one: owned by this user, no access for group or
/// others (tightened when only the mode is loose).
fn private_dir(dir: &Path) -> Result<(), PolicyKeyError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir, "create state directory"))?;
    let meta = std::fs::metadata(dir).map_err(io(dir, "stat state directory"))?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(PolicyKeyError::Unsafe {
            path: dir.to_path_buf(),
            reason: format!("owned by uid {}, not by this server (uid {me})", meta.uid()),
        });
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(dir, "tighten state directory to 0700"))?;
    }
    Ok(())
}

impl PolicyKey {
    /// `state_dir/policy.key`, generated when absent.
    pub fn load_or_create(state_dir: &Path) -> Result<PolicyKey, PolicyKeyError> {
        private_dir(state_dir)?;
        let path = state_dir.join("policy.key");
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| PolicyKeyError::Random)?;
                file.write_all(pkcs8.as_ref())
                    .and_then(|()| file.sync_all())
                    .map_err(io(&path, "write policy key"))?;
                tracing::info!(path = %path.display(), "generated the policy key");
                PolicyKey::load(&path)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => PolicyKey::load(&path),
            Err(e) => Err(io(&path, "create policy key")(e)),
        }
    }

    /// Reads a key that must be private to this user.
    pub fn load(path: &Path) -> Result<PolicyKey, PolicyKeyError> {
        let meta = std::fs::metadata(path).map_err(io(path, "stat policy key"))?;
        if meta.mode() & 0o077 != 0 {
            return Err(PolicyKeyError::Unsafe {
                path: path.to_path_buf(),
                reason: format!(
                    "mode {:04o}; it must not be readable by group or others",
                    meta.mode() & 0o7777
                ),
            });
        }
        let bytes = std::fs::read(path).map_err(io(path, "read policy key"))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes).map_err(|e| {
            PolicyKeyError::Rejected {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Ok(PolicyKey {
            pair,
            path: path.to_path_buf(),
        })
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// `policy key --json`: `{"key_id", "public_key", "algorithm"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "key_id": nightjar_proto::verify::key_id(self.public_key()),
            "public_key": STANDARD.encode(self.public_key()),
            "algorithm": "ed25519",
        })
    }

    /// Signs bytes (policy envelopes' PAE).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_private_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        let a = PolicyKey::load_or_create(&dir).unwrap();
        let b = PolicyKey::load_or_create(&dir).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let mode = std::fs::metadata(dir.join("policy.key")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(a.to_json()["algorithm"], "ed25519");
        std::fs::set_permissions(
            dir.join("policy.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = PolicyKey::load_or_create(&dir).unwrap_err().to_string();
        assert!(e.contains("policy.key") && e.contains("0644"), "{e}");
    }
}
