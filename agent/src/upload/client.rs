//! One POST of one batch, classified into what the uploader should do next.

use std::time::Duration;

use ureq::Agent;
use ureq::http::{Response, StatusCode};

use super::redact::Redactor;
use super::settings::{Timing, UploadSettings};
use super::{UploadError, tls};

/// Bytes of an error response kept for the status report.
const EXCERPT_CHARS: usize = 200;
/// Largest response body read (the collector's answers are small).
const BODY_LIMIT: u64 = 64 * 1024;

/// What one POST came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// 2xx: the collector has the batch.
    Delivered,
    /// Transient: network error, timeout, 5xx, 408, 429. `retry_after` is the server's hint.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The collector refused the batch; sending it again unchanged will not help soon.
    Rejected { reason: String },
}

/// An HTTP client bound to one collector URL and one identity.
pub(crate) struct Client {
    agent: Agent,
    url: String,
    /// Every reason this client gives passes through it: the URL may carry credentials.
    redactor: Redactor,
    /// What the request signature covers: the URL's path and query.
    path_and_query: String,
    host_id: String,
    key_id: String,
    signer: Option<std::sync::Arc<crate::fleet::RequestSigner>>,
    enrolled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Client {
    pub(crate) fn new(settings: &UploadSettings, timing: &Timing) -> Result<Self, UploadError> {
        let tls = tls::tls_config(settings.ca_file.as_deref())?;
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(timing.connect_timeout))
            .timeout_global(Some(timing.request_timeout))
            .user_agent(concat!("nightjar-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Client {
            agent,
            url: settings.url.clone(),
            redactor: Redactor::new(&settings.url),
            path_and_query: crate::fleet::signer::path_and_query(&settings.url),
            host_id: settings.host_id.clone(),
            key_id: settings.key_id.clone(),
            signer: settings.signer.clone(),
            enrolled: settings.enrolled.clone(),
        })
    }

    /// POSTs one NDJSON body. Never logs or returns the body: only status and reasons, with
    /// the URL's credentials taken out (a server's answer may quote the URL too).
    pub(crate) fn post(&self, body: &[u8]) -> Outcome {
        if let Some(enrolled) = &self.enrolled
            && !enrolled.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Outcome::Retry {
                reason: "not enrolled with the fleet server yet".into(),
                retry_after: None,
            };
        }
        let mut request = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-ndjson");
        match &self.signer {
            Some(signer) => {
                for (name, value) in signer.headers("POST", &self.path_and_query, body) {
                    request = request.header(name, value);
                }
            }
            None => {
                request = request
                    .header("X-Nightjar-Host-Id", &self.host_id)
                    .header("X-Nightjar-Key-Id", &self.key_id);
            }
        }
        let sent = request.send(body);
        let outcome = match sent {
            Ok(response) => classify(response),
            Err(e) => Outcome::Retry {
                reason: format!("POST {}: {e}", self.redactor.url()),
                retry_after: None,
            },
        };
        match outcome {
            Outcome::Delivered => Outcome::Delivered,
            Outcome::Retry {
                reason,
                retry_after,
            } => Outcome::Retry {
                reason: self.redactor.scrub(&reason),
                retry_after,
            },
            Outcome::Rejected { reason } => Outcome::Rejected {
                reason: self.redactor.scrub(&reason),
            },
        }
    }
}

fn classify(mut response: Response<ureq::Body>) -> Outcome {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_vec();
    if status.is_success() {
        // A 2xx whose body broke off may or may not have been processed; sending it again is
        // safe (the collector de-duplicates by seq), treating it as delivered is not.
        return match body {
            Ok(_) => Outcome::Delivered,
            Err(e) => Outcome::Retry {
                reason: format!("HTTP {status}: response cut short: {e}"),
                retry_after: None,
            },
        };
    }
    let reason = format!(
        "HTTP {}: {}",
        status,
        excerpt(body.as_deref().unwrap_or_default())
    );
    if is_retryable(status) {
        Outcome::Retry {
            reason,
            retry_after,
        }
    } else {
        Outcome::Rejected { reason }
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

/// `Retry-After` as delta-seconds; an HTTP-date falls back to the computed backoff.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The start of a response body, on one line, for a status report.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    let trimmed = out.trim();
    if trimmed.is_empty() {
        "(empty body)".to_owned()
    } else {
        trimmed.to_owned()
    }
}
