//! The Ed25519 host key: every alert this host stores is signed with it, so the collector can
//! tell where an alert came from and that nobody edited it on the way.
//!
//! The key is a PKCS#8 document. Without `key_file` in the config it is generated on first
//! start with `ring`'s `SystemRandom` and written to `state_dir/host.key` (mode 0600, in the
//! checked state directory, see [`crate::state_dir`]). With `key_file` the agent reads an
//! MDM-provisioned key (DER or PEM, v1 or v2 PKCS#8). Either way a key is used only when its
//! directory passes the same checks as the state directory and the file itself is a regular
//! file with one name, owned by root and readable by root alone: a key someone else planted
//! would let them sign this host's alerts.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::dsse::{ALERT_PAYLOAD_TYPE, Envelope, Signature, pae_into};
use nightjar_proto::trusted_dir::{Missing, TrustedDir, check_private_file, mode_bits};
use nix::fcntl::OFlag;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use crate::config::Config;
use crate::state_dir::{KEY_FILE, StateDirError};

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
    #[error("{path}: refusing this key file: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{0}")]
    StateDir(#[from] StateDirError),
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
        let dir = crate::state_dir::open(config, Missing::Create)?;
        HostKey::load_or_create_in(&dir)
    }

    /// `host.key` in the state directory `dir`, generated when absent.
    pub fn load_or_create_in(dir: &TrustedDir) -> Result<HostKey, KeyError> {
        match HostKey::create_in(dir, KEY_FILE) {
            Ok(key) => Ok(key),
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                HostKey::load_in(dir, KEY_FILE)
            }
            Err(e) => Err(e),
        }
    }

    /// The configured key, without creating one (for the CLI when no agent runs).
    pub fn load_existing(config: &Config) -> Result<HostKey, KeyError> {
        if let Some(path) = &config.key_file {
            return HostKey::load(path);
        }
        let missing = || KeyError::Missing {
            path: config.state_dir.join(KEY_FILE),
            config: config.source_name(),
        };
        let dir = match crate::state_dir::open(config, Missing::Fail) {
            Ok(dir) => dir,
            Err(e) if e.is_not_found() => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        match dir.stat(KEY_FILE) {
            Ok(None) => Err(missing()),
            _ => HostKey::load_in(&dir, KEY_FILE),
        }
    }

    /// Reads a PKCS#8 key (DER or PEM) from `path`, whose directory must pass the state
    /// directory's checks and which only root may read.
    pub fn load(path: &Path) -> Result<HostKey, KeyError> {
        let untrusted = |reason: String| KeyError::Untrusted {
            path: path.to_path_buf(),
            reason,
        };
        let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return Err(untrusted("not a path to a file".into()));
        };
        let dir = TrustedDir::open_as_is(parent).map_err(|e| match e {
            nightjar_proto::trusted_dir::TrustError::Io { op, source, .. } => KeyError::Io {
                path: path.to_path_buf(),
                op,
                source,
            },
            e => untrusted(format!("its directory cannot be trusted: {e}")),
        })?;
        HostKey::load_in(&dir, name)
    }

    /// Reads the key `name` in the checked directory `dir`.
    fn load_in(dir: &TrustedDir, name: &str) -> Result<HostKey, KeyError> {
        let path = dir.display_name(name);
        let io = |op| {
            let path = path.clone();
            move |source| KeyError::Io { path, op, source }
        };
        let mut file = dir
            .open_file(name, OFlag::O_RDONLY, 0)
            .map_err(io("open"))?;
        let st = nix::sys::stat::fstat(&file).map_err(|e| KeyError::Io {
            path: path.clone(),
            op: "stat",
            source: e.into(),
        })?;
        let mode = mode_bits(&st);
        if mode & 0o077 != 0 {
            return Err(KeyError::Exposed { path, mode });
        }
        if let Some(reason) = check_private_file(&st, true) {
            return Err(KeyError::Untrusted { path, reason });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io("read"))?;
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
        Ok(HostKey::from_pair(pair, &path))
    }

    /// Generates a key and writes it to a new file `path` (mode 0600; its directory is
    /// created 0700 when missing and checked like the state directory); fails with
    /// `AlreadyExists` when the file is there, so two starting processes never overwrite each
    /// other's key.
    pub fn create(path: &Path) -> Result<HostKey, KeyError> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            return Err(KeyError::Untrusted {
                path: path.to_path_buf(),
                reason: "not a path to a file".into(),
            });
        };
        let dir = TrustedDir::open(parent, Missing::Create).map_err(|e| KeyError::Untrusted {
            path: path.to_path_buf(),
            reason: format!("its directory cannot be trusted: {e}"),
        })?;
        HostKey::create_in(&dir, name)
    }

    fn create_in(dir: &TrustedDir, name: &str) -> Result<HostKey, KeyError> {
        let path = dir.display_name(name);
        let io = |op| {
            let path = path.clone();
            move |source| KeyError::Io { path, op, source }
        };
        // The key is written whole under a name of this process's own, made durable, and
        // only then given its name with link(2), which fails when the name exists: a power
        // cut leaves no key or the whole key under `name`, never a torn one (which would keep
        // the agent from ever starting again), and two starting processes never replace
        // each other's key.
        if dir.stat(name).map_err(io("stat"))?.is_some() {
            return Err(KeyError::Io {
                path,
                op: "create",
                source: std::io::ErrorKind::AlreadyExists.into(),
            });
        }
        remove_unfinished(dir, name);
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        let temp = format!("{name}{UNFINISHED}{}", std::process::id());
        dir.remove_file(&temp)
            .map_err(io("remove an unfinished copy of"))?;
        let mut file = dir
            .open_file(
                &temp,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            )
            .map_err(io("create"))?;
        file.write_all(pkcs8.as_ref()).map_err(io("write"))?;
        file.sync_all().map_err(io("sync"))?;
        drop(file);
        let linked = dir.link(&temp, name);
        let _ = dir.remove_file(&temp);
        linked.map_err(io("create"))?;
        dir.sync().map_err(io("sync directory of"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| KeyError::Rejected {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        tracing::info!(path = %path.display(), "generated a new host key");
        Ok(HostKey::from_pair(pair, &path))
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
        self.sign_dsse(ALERT_PAYLOAD_TYPE, payload, pae_buf)
    }

    /// Signs `payload` as `payload_type` (DSSE); `pae_buf` is reused scratch.
    pub fn sign_dsse(&self, payload_type: &str, payload: &[u8], pae_buf: &mut Vec<u8>) -> Envelope {
        pae_into(payload_type, payload, pae_buf);
        let sig = self.pair.sign(pae_buf);
        Envelope {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                keyid: self.key_id.clone(),
                sig: STANDARD.encode(sig.as_ref()),
            }],
        }
    }
}

pub use nightjar_proto::verify::key_id;

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

/// Marks a key being written: `host.key.unfinished-PID`.
const UNFINISHED: &str = ".unfinished-";

/// Removes what a creation cut short (by a crash or power loss) left of key `name`: copies
/// whose process is gone. A copy of a live process is its creation in progress.
fn remove_unfinished(dir: &TrustedDir, name: &str) {
    let prefix = format!("{name}{UNFINISHED}");
    let Ok(entries) = dir.entries() else {
        return;
    };
    for entry in entries {
        let Some(pid) = entry
            .to_str()
            .and_then(|e| e.strip_prefix(&prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if gone || pid == std::process::id() as i32 {
            let _ = dir.remove_file(&format!("{prefix}{pid}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use ring::signature::{ED25519, UnparsedPublicKey};

    use super::*;

    /// What a creation cut short leaves (a copy under its unfinished name, whole or torn) is
    /// removed once its process is gone, and never taken for the key; the key has one name.
    #[test]
    fn an_unfinished_key_is_removed_not_used() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = TrustedDir::open(&tmp.path().join("state"), Missing::Create).unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead = gone.id();
        gone.wait().unwrap();
        let torn = format!("{KEY_FILE}{UNFINISHED}{dead}");
        std::fs::write(dir.path().join(&torn), b"\x30\x51\x02").unwrap();
        let key = HostKey::load_or_create_in(&dir).unwrap();
        let names: Vec<_> = dir.entries().unwrap();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)], "{names:?}");
        let st = dir.stat(KEY_FILE).unwrap().unwrap();
        assert_eq!(st.st_nlink, 1);
        let again = HostKey::load_or_create_in(&dir).unwrap();
        assert_eq!(again.public_key(), key.public_key());
    }

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
        let file_mode = std::fs::metadata(config.state_dir.join(KEY_FILE))
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
    fn loose_state_dir_is_tightened_and_a_writable_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let config = Config {
            state_dir: tmp.path().join("s"),
            ..Config::default()
        };
        std::fs::create_dir(&config.state_dir).unwrap();
        std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
        HostKey::load_or_create(&config).unwrap();
        let mode = std::fs::metadata(&config.state_dir)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let err = HostKey::load_or_create(&config).unwrap_err().to_string();
        assert!(err.contains("key `state_dir`"), "{err}");
        assert!(err.contains("writable by its group or by others"), "{err}");
    }

    #[test]
    fn a_linked_or_symlinked_key_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("mdm.key");
        HostKey::create(&path).unwrap();
        let link = tmp.path().join("link.key");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let err = HostKey::load(&link).unwrap_err().to_string();
        assert!(err.contains("link.key"), "{err}");
        std::fs::hard_link(&path, tmp.path().join("second-name")).unwrap();
        let err = HostKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("2 names"), "{err}");
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
