//! The Ed25519 host key: every alert this host stores is signed with it, so the collector can
//! tell where an alert came from and that nobody edited it on the way.
//!
//! The key is a PKCS#8 document. Without `key_file` in the config it is generated on first
//! start with `ring`'s `SystemRandom` and written to `state_dir/host.key` (mode 0600, the
//! directory 0700). With `key_file` the agent reads an MDM-provisioned key (DER or PEM, v1 or
//! v2 PKCS#8) and refuses one that group or others can read.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::dsse::{ALERT_PAYLOAD_TYPE, Envelope, Signature, pae_into};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::config::Config;

/// Why the host key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("{path}: not a usable Ed25519 PKCS#8 key: {reason}")]
    Rejected { path: PathBuf, reason: String },
    #[error("{path}: key file has mode {mode:04o}; it must not be readable by group or others")]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "{path}: no host key yet (the agent creates it on first start, or set `key_file` in {config})"
    )]
    Missing { path: PathBuf, config: String },
    #[error("cannot generate a host key: the system random source failed")]
    Random,
}

/// The host's Ed25519 signing key and its DSSE key id.
pub struct HostKey {
    pair: Ed25519KeyPair,
    key_id: String,
    path: PathBuf,
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostKey")
            .field("key_id", &self.key_id)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HostKey {
    /// The key the running agent signs with: `key_file` when configured, else
    /// `state_dir/host.key`, generated when absent.
    pub fn load_or_create(config: &Config) -> Result<HostKey, KeyError> {
        if let Some(path) = &config.key_file {
            return HostKey::load(path);
        }
        private_dir(&config.state_dir)?;
        let path = config.generated_key_path();
        match HostKey::create(&path) {
            Ok(key) => Ok(key),
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                HostKey::load(&path)
            }
            Err(e) => Err(e),
        }
    }

    /// The configured key, without creating one (for the CLI when no agent runs).
    pub fn load_existing(config: &Config) -> Result<HostKey, KeyError> {
        let path = config
            .key_file
            .clone()
            .unwrap_or_else(|| config.generated_key_path());
        if !path.exists() {
            return Err(KeyError::Missing {
                path,
                config: config.source_name(),
            });
        }
        HostKey::load(&path)
    }

    /// Reads a PKCS#8 key (DER or PEM) that only its owner can read.
    pub fn load(path: &Path) -> Result<HostKey, KeyError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, op, source }
        };
        let meta = std::fs::metadata(path).map_err(io("stat"))?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed {
                path: path.to_path_buf(),
                mode,
            });
        }
        let bytes = std::fs::read(path).map_err(io("read"))?;
        let der = if bytes.starts_with(b"-----BEGIN") {
            pem_pkcs8(&bytes).map_err(|reason| KeyError::Rejected {
                path: path.to_path_buf(),
                reason,
            })?
        } else {
            bytes
        };
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| KeyError::Rejected {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(HostKey::from_pair(pair, path))
    }

    /// Generates a key and writes it to a new file (mode 0600); fails with `AlreadyExists`
    /// when the file is there, so two starting processes never overwrite each other's key.
    pub fn create(path: &Path) -> Result<HostKey, KeyError> {
        let io = |op| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, op, source }
        };
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("create"))?;
        file.write_all(pkcs8.as_ref()).map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync directory of"))?;
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| KeyError::Rejected {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        tracing::info!(path = %path.display(), "generated a new host key");
        Ok(HostKey::from_pair(pair, path))
    }

    fn from_pair(pair: Ed25519KeyPair, path: &Path) -> HostKey {
        let key_id = key_id(pair.public_key().as_ref());
        HostKey {
            pair,
            key_id,
            path: path.to_path_buf(),
        }
    }

    /// Lowercase hex SHA-256 of the raw public key (the DSSE `keyid`).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// Where the key was read from or written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signs fleet-protocol bytes (request, enrolment and chain-head signatures).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }

    /// Signs `payload` as an alert and returns the DSSE envelope; `pae_buf` is reused scratch.
    pub fn sign_alert(&self, payload: &[u8], pae_buf: &mut Vec<u8>) -> Envelope {
        pae_into(ALERT_PAYLOAD_TYPE, payload, pae_buf);
        let sig = self.pair.sign(pae_buf);
        Envelope {
            payload: STANDARD.encode(payload),
            payload_type: ALERT_PAYLOAD_TYPE.to_string(),
            signatures: vec![Signature {
                keyid: self.key_id.clone(),
                sig: STANDARD.encode(sig.as_ref()),
            }],
        }
    }
}

pub use nightjar_proto::verify::key_id;

/// Creates `dir` (and parents) as 0700, or tightens an existing one to 0700: the store, key
/// and control socket inside are root's alone.
pub fn private_dir(dir: &Path) -> Result<(), KeyError> {
    let io = |op| {
        let path = dir.to_path_buf();
        move |source| KeyError::Io { path, op, source }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create directory"))?;
    let mode = std::fs::metadata(dir)
        .map_err(io("stat"))?
        .permissions()
        .mode()
        & 0o7777;
    if mode != 0o700 {
        tracing::warn!(dir = %dir.display(), mode = format!("{mode:04o}"), "tightening state directory to 0700");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("chmod"))?;
    }
    Ok(())
}

fn pem_pkcs8(bytes: &[u8]) -> Result<Vec<u8>, String> {
    use rustls::pki_types::PrivateKeyDer;
    let mut reader = bytes;
    match rustls_pemfile::private_key(&mut reader) {
        Ok(Some(PrivateKeyDer::Pkcs8(der))) => Ok(der.secret_pkcs8_der().to_vec()),
        Ok(Some(_)) => Err("PEM key is not PKCS#8 (\"BEGIN PRIVATE KEY\")".into()),
        Ok(None) => Err("no private key in the PEM file".into()),
        Err(e) => Err(format!("PEM: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use ring::signature::{ED25519, UnparsedPublicKey};

    use super::*;

    #[test]
    fn generated_key_is_0600_in_a_0700_dir_and_reloads() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: tmp.path().join("state"),
            ..Config::default()
        };
        let key = HostKey::load_or_create(&config).unwrap();
        let dir_mode = std::fs::metadata(&config.state_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let file_mode = std::fs::metadata(config.generated_key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file_mode & 0o777, 0o600);
        let again = HostKey::load_or_create(&config).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(
            HostKey::load_existing(&config).unwrap().key_id(),
            key.key_id()
        );
    }

    #[test]
    fn loose_state_dir_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn key_id_is_sha256_of_the_raw_public_key() {
        let id = key_id(&[0u8; 32]);
        assert_eq!(
            id,
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
    }

    #[test]
    fn signature_verifies_over_the_pae() {
        let tmp = tempfile::tempdir().unwrap();
        let key = HostKey::create(&tmp.path().join("k")).unwrap();
        let mut buf = Vec::new();
        let env = key.sign_alert(b"{\"a\":1}", &mut buf);
        assert_eq!(env.signatures[0].keyid, key.key_id());
        let sig = STANDARD.decode(&env.signatures[0].sig).unwrap();
        let pae = nightjar_proto::dsse::pae(ALERT_PAYLOAD_TYPE, b"{\"a\":1}");
        UnparsedPublicKey::new(&ED25519, key.public_key())
            .verify(&pae, &sig)
            .unwrap();
        assert!(
            UnparsedPublicKey::new(&ED25519, key.public_key())
                .verify(b"{\"a\":1}", &sig)
                .is_err()
        );
    }

    #[test]
    fn provisioned_key_must_be_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mdm.key");
        let key = HostKey::create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            HostKey::load(&path),
            Err(KeyError::Exposed { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(HostKey::load(&path).unwrap().key_id(), key.key_id());
    }

    #[test]
    fn pem_provisioned_key_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let der_path = tmp.path().join("k.der");
        let key = HostKey::create(&der_path).unwrap();
        let der = std::fs::read(&der_path).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der)
        );
        let pem_path = tmp.path().join("k.pem");
        std::fs::write(&pem_path, pem).unwrap();
        std::fs::set_permissions(&pem_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(HostKey::load(&pem_path).unwrap().key_id(), key.key_id());
    }

    #[test]
    fn garbage_key_file_is_rejected_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("bad.key");
        std::fs::write(&path, b"not a key").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = HostKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("bad.key"), "{err}");
    }
}
