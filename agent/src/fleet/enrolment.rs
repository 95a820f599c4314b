//! Enrolment: `POST /v1/enroll` with the token and a proof that this host holds its key, and
//! the record of a successful enrolment in `state_dir/fleet.json` (server, host id, key id),
//! so the agent enrols once, not at every start. A record for another server, host id or key
//! is stale: the agent enrols again.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::fleet::{EnrollRequest, EnrollResponse, PATH_ENROLL, enroll_signing_bytes};
use serde::{Deserialize, Serialize};

use super::FleetSettings;
use super::client::FleetClient;
use super::signer::RequestSigner;

/// The record of an enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    pub server: String,
    pub host_id: String,
    pub key_id: String,
    pub enrolled_at: String,
}

/// Why enrolment did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    #[error(
        "no enrolment token: set [fleet] enroll_token (or the managed preference enroll_token)"
    )]
    NoToken,
    /// The server answered and refused (401 token or signature, 409 pinned to another key,
    /// 400): retrying the same request will not help.
    #[error("the server refused enrolment: HTTP {status}: {reason}")]
    Refused { status: u16, reason: String },
    /// No answer, or a 5xx/408/429: retry later.
    #[error("enrolment: {0}")]
    Transient(String),
    #[error("{path}: {reason}")]
    Record { path: PathBuf, reason: String },
}

impl EnrolError {
    pub fn is_transient(&self) -> bool {
        matches!(self, EnrolError::Transient(_))
    }
}

/// Where the enrolment record lives.
pub fn record_path(state_dir: &Path) -> PathBuf {
    state_dir.join("fleet.json")
}

/// The enrolment record, when it matches this server, host id and key.
pub fn recorded(settings: &FleetSettings, key_id: &str) -> Option<Enrolment> {
    let bytes = std::fs::read(record_path(&settings.state_dir)).ok()?;
    let e: Enrolment = serde_json::from_slice(&bytes).ok()?;
    (e.server == settings.server && e.host_id == settings.host_id && e.key_id == key_id)
        .then_some(e)
}

/// Forgets the enrolment (the server no longer knows this host or key).
pub fn forget(settings: &FleetSettings) {
    let _ = std::fs::remove_file(record_path(&settings.state_dir));
}

fn save(settings: &FleetSettings, e: &Enrolment) -> Result<(), EnrolError> {
    let path = record_path(&settings.state_dir);
    let tmp = path.with_extension("json.tmp");
    let fail = |reason: String| EnrolError::Record {
        path: path.clone(),
        reason,
    };
    let bytes = serde_json::to_vec(e).map_err(|e| fail(e.to_string()))?;
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail(format!("create: {e}")))?;
    f.write_all(&bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| fail(format!("write: {e}")))?;
    std::fs::rename(&tmp, &path).map_err(|e| fail(format!("rename: {e}")))
}

/// Enrols `signer`'s key for its host id and records it.
pub fn enroll(
    client: &FleetClient,
    settings: &FleetSettings,
    signer: &RequestSigner,
) -> Result<Enrolment, EnrolError> {
    let token = settings.token.as_deref().ok_or(EnrolError::NoToken)?;
    let key = signer.key();
    let public_key = STANDARD.encode(key.public_key());
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let signature = key.sign(&enroll_signing_bytes(
        token,
        signer.host_id(),
        &public_key,
        time,
    ));
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let request = EnrollRequest {
        token: token.to_string(),
        host_id: signer.host_id().to_string(),
        hostname,
        os: std::env::consts::OS.to_string(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        public_key,
        time,
        signature: STANDARD.encode(signature),
    };
    let body = serde_json::to_vec(&request).map_err(|e| EnrolError::Transient(e.to_string()))?;
    let answer = client
        .post_json(&settings.url(PATH_ENROLL), &body, None)
        .map_err(EnrolError::Transient)?;
    match answer.status {
        200..=299 => {}
        408 | 429 | 500..=599 => {
            return Err(EnrolError::Transient(format!(
                "HTTP {}: {}",
                answer.status,
                answer.error()
            )));
        }
        status => {
            return Err(EnrolError::Refused {
                status,
                reason: answer.error(),
            });
        }
    }
    let reply: EnrollResponse = serde_json::from_slice(&answer.body)
        .map_err(|e| EnrolError::Transient(format!("the server's answer: {e}")))?;
    let record = Enrolment {
        server: settings.server.clone(),
        host_id: reply.host_id,
        key_id: reply.key_id,
        enrolled_at: reply.enrolled_at,
    };
    save(settings, &record)?;
    Ok(record)
}
