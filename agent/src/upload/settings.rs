//! The `[upload]` configuration as the uploader needs it, and its validation.

use std::path::PathBuf;
use std::time::Duration;

use ureq::http::Uri;

use super::UploadError;
use super::redact::{Redactor, redact_url};
use super::tls;

/// Where and how to deliver alerts; built by the agent from its `[upload]` config section.
#[derive(Debug, Clone)]
pub struct UploadSettings {
    /// `upload.url`: the collector endpoint alerts are POSTed to.
    pub url: String,
    /// `upload.interval_ms`: how often the uploader looks for unsent alerts without a nudge.
    pub interval: Duration,
    /// `upload.batch_max`: envelopes per POST.
    pub batch_max: usize,
    /// `upload.ca_file`: extra trust anchors (PEM) on top of the system roots.
    pub ca_file: Option<PathBuf>,
    /// `upload.allow_insecure_http`: permit a plain `http://` URL (tests, lab setups).
    pub allow_insecure_http: bool,
    /// `host_id`, sent as `X-Nightjar-Host-Id`.
    pub host_id: String,
    /// The host key's id (hex SHA-256 of the public key), sent as `X-Nightjar-Key-Id`.
    pub key_id: String,
    /// Signs every upload (DESIGN "Protocol"); `None`: the identity headers alone.
    pub signer: Option<std::sync::Arc<crate::fleet::RequestSigner>>,
    /// With `[fleet]`: uploads wait until the host is enrolled (the server refuses a host it
    /// does not know).
    pub enrolled: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl UploadSettings {
    /// Checks everything that can be checked before the first request: the URL and its
    /// scheme, the batch and interval values, header values, and that `upload.ca_file` is
    /// readable PEM holding at least one valid certificate.
    pub fn validate(&self) -> Result<(), UploadError> {
        self.validate_config()?;
        check_header_value("key_id", &self.key_id)
    }

    /// [`UploadSettings::validate`] without the key id: what the configuration alone decides,
    /// checked before the agent creates its state directory or key.
    pub fn validate_config(&self) -> Result<(), UploadError> {
        self.check_url()?;
        if self.interval.is_zero() {
            return Err(UploadError::ZeroInterval);
        }
        if self.batch_max == 0 {
            return Err(UploadError::ZeroBatch);
        }
        check_header_value("host_id", &self.host_id)?;
        if let Some(path) = &self.ca_file {
            tls::ca_file_certs(path)?;
        }
        Ok(())
    }

    fn check_url(&self) -> Result<(), UploadError> {
        let shown = redact_url(&self.url).into_owned();
        let scrub = Redactor::new(&self.url);
        let bad = |reason: &str| UploadError::BadUrl {
            url: shown.clone(),
            reason: scrub.scrub(reason),
        };
        let uri: Uri = self.url.parse().map_err(|e| bad(&format!("{e}")))?;
        let scheme = uri.scheme_str().ok_or_else(|| bad("no scheme"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        match scheme {
            "https" => Ok(()),
            "http" if self.allow_insecure_http => Ok(()),
            "http" => Err(UploadError::InsecureHttp { url: shown }),
            other => Err(UploadError::UnsupportedScheme {
                url: shown,
                scheme: other.to_owned(),
            }),
        }
    }
}

fn check_header_value(key: &'static str, value: &str) -> Result<(), UploadError> {
    if value.is_empty() || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(UploadError::BadHeaderValue {
            key,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// Timeouts and retry pacing. [`Timing::default`] is what the agent runs with; tests shorten
/// it so that a fault is observed in seconds.
#[derive(Debug, Clone)]
pub struct Timing {
    /// TCP connect (and name resolution) timeout.
    pub connect_timeout: Duration,
    /// Whole-exchange timeout (connect, TLS, body, response): a slow or stalled collector
    /// cannot hold a batch longer than this.
    pub request_timeout: Duration,
    /// First backoff ceiling after a retryable failure.
    pub backoff_base: Duration,
    /// Largest backoff ceiling, and the bound on a server's `Retry-After`.
    pub backoff_cap: Duration,
    /// Wait before offering a refused (non-retryable) batch again.
    pub rejected_pause: Duration,
    /// While the pipeline nudges the uploader after each commit, an idle uploader looks
    /// for unsent alerts on its own only this often (at least `upload.interval_ms`): a
    /// safety net, and an idle agent then wakes no more than it must. `ZERO`: the interval.
    pub idle_check: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(60),
            rejected_pause: Duration::from_secs(300),
            idle_check: Duration::from_secs(60),
        }
    }
}
