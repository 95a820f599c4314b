//! The agent's side of the central server (`[fleet]`): enrolment with the host key, signed
//! requests, heartbeats with the status counters and the chain head.
//!
//! - [`signer`]: the request signature headers (also on every upload);
//! - [`client`]: JSON requests to the server over the uploader's TLS settings;
//! - [`enrolment`]: `POST /v1/enroll` and the record of it in the state directory;
//! - [`worker`]: the thread that enrols (on first start, retrying) and then sends heartbeats
//!   and fetches the policy (handed to [`crate::policy`]).
//!
//! Without `[fleet]` none of this runs and upload works as before.

pub mod client;
pub mod enrolment;
pub mod signer;
pub mod worker;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;

pub use enrolment::{EnrolError, Enrolment, enroll};
pub use signer::RequestSigner;
pub use worker::{FleetStatus, spawn_fleet};

/// What the fleet side needs, from `[fleet]` (and `[upload]`'s TLS settings).
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// The server's origin, `https://host[:port]`.
    pub server: String,
    /// The enrolment token (config or managed preferences); never logged.
    pub token: Option<String>,
    pub heartbeat_interval: Duration,
    pub policy_interval: Duration,
    pub ca_file: Option<PathBuf>,
    pub allow_insecure_http: bool,
    pub host_id: String,
    pub state_dir: PathBuf,
}

impl FleetSettings {
    /// `None` when the config has no `[fleet]` section.
    pub fn from_config(config: &Config, host_id: &str) -> Option<FleetSettings> {
        let fleet = config.fleet.as_ref()?;
        Some(FleetSettings {
            server: config.fleet_server()?.trim_end_matches('/').to_string(),
            token: fleet.enroll_token.as_ref().map(|t| t.expose().to_string()),
            heartbeat_interval: Duration::from_millis(fleet.heartbeat_interval_ms),
            policy_interval: Duration::from_millis(fleet.policy_interval_ms),
            ca_file: config.upload.ca_file.clone(),
            allow_insecure_http: config.upload.allow_insecure_http,
            host_id: host_id.to_string(),
            state_dir: config.state_dir.clone(),
        })
    }

    /// `server` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server)
    }
}
