//! JSON requests to the central server: one ureq agent with the uploader's TLS settings
//! (system roots plus `upload.ca_file`, certificates verified), bounded answers.

use std::time::Duration;

use ureq::Agent;

use super::FleetSettings;
use super::signer::{RequestSigner, path_and_query};
use crate::upload::UploadError;
use crate::upload::redact::{Redactor, redact_url};

/// Largest answer read (enrolment, heartbeat).
const BODY_LIMIT: u64 = 64 * 1024;
/// Largest policy envelope read.
pub const POLICY_LIMIT: u64 = crate::policy::persist::MAX_ENVELOPE_BYTES;

/// An answer: the status and the body (JSON when the server sent JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    /// The server's `error` message, or the start of the body.
    pub fn error(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(200)
                    .collect()
            })
    }
}

/// A client of one server.
pub struct FleetClient {
    agent: Agent,
}

impl FleetClient {
    pub fn new(settings: &FleetSettings) -> Result<FleetClient, UploadError> {
        if settings.server.starts_with("http://") && !settings.allow_insecure_http {
            return Err(UploadError::InsecureHttp {
                url: redact_url(&settings.server).into_owned(),
            });
        }
        let tls = crate::upload::tls::tls_config(settings.ca_file.as_deref())?;
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(concat!("nightjar-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(FleetClient { agent })
    }

    /// POSTs JSON to `url`, signed by `signer` when given (every request but enrolment).
    /// `Err` is a transport failure (no answer).
    pub fn post_json(
        &self,
        url: &str,
        body: &[u8],
        signer: Option<&RequestSigner>,
    ) -> Result<Answer, String> {
        let mut request = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(signer) = signer {
            for (name, value) in signer.headers("POST", &path_and_query(url), body) {
                request = request.header(name, value);
            }
        }
        // The server URL may carry credentials: never in a message.
        let redactor = Redactor::new(url);
        let shown = redactor.url();
        let mut response = request
            .send(body)
            .map_err(|e| redactor.scrub(&format!("POST {shown}: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(BODY_LIMIT)
            .read_to_vec()
            .map_err(|e| {
                redactor.scrub(&format!(
                    "POST {shown}: HTTP {status}: answer cut short: {e}"
                ))
            })?;
        Ok(Answer { status, body })
    }

    /// A signed GET of `url`, reading at most `limit` bytes of answer. `Err` is a transport
    /// failure (no answer, or one over the limit).
    pub fn get_signed(
        &self,
        url: &str,
        signer: &RequestSigner,
        limit: u64,
    ) -> Result<Answer, String> {
        let mut request = self.agent.get(url);
        for (name, value) in signer.headers("GET", &path_and_query(url), b"") {
            request = request.header(name, value);
        }
        let mut response = request.call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: HTTP {status}: answer cut short: {e}"))?;
        Ok(Answer { status, body })
    }
}
