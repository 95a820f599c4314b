//! Delivery of signed alerts to the collector over HTTPS, in seq order, with bounded retries.
//!
//! The uploader is one thread that reads unsent DSSE envelopes from the store (the [`Outbox`]),
//! posts them as NDJSON batches and advances the store's upload cursor only after a 2xx, so an
//! alert is never lost and never reordered: while the collector is unreachable alerts simply
//! wait in sled. A second thread performs the HTTP exchange so that shutdown stays prompt even
//! while a request is in flight (an abandoned request may still reach the collector; it then
//! sees that batch again after restart, which the collector treats as an idempotent
//! re-delivery keyed by `nightjar.seq`).
//!
//! Outcomes of one POST:
//! - 2xx: the batch is delivered, the cursor advances, the next batch follows at once;
//! - network error, timeout, 5xx, 408, 429: the same batch is retried after a capped
//!   exponential backoff with full jitter ([`Backoff`]); `Retry-After` (delta-seconds) is
//!   honoured, capped by the same ceiling;
//! - any other status (4xx, unexpected 1xx/3xx): the batch is *blocked*: reported in
//!   [`UploadStatus::blocked_batch`] and [`UploadStatus::last_upload_error`], and retried only
//!   after [`Timing::rejected_pause`] (5 minutes by default) or when the uploader is restarted
//!   with a new configuration, so a collector that refuses a batch is not hammered.

mod backoff;
mod client;
pub mod redact;
mod settings;
pub(crate) mod tls;
mod worker;

use std::error::Error as StdError;

pub use backoff::{Backoff, full_jitter};
pub use settings::{Timing, UploadSettings};
pub use worker::{spawn_uploader, spawn_uploader_with};

/// What the store offers the uploader; implemented by the sled store.
pub trait Outbox: Send + Sync {
    /// Up to `max` envelopes (DSSE JSON bytes, no trailing newline) after the upload cursor,
    /// in seq order.
    fn pending(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError>;
    /// Advance the upload cursor through `through_seq` (called only after a 2xx).
    fn mark_sent(&self, through_seq: u64) -> Result<(), OutboxError>;
}

/// A store failure seen by the uploader; the store says what it was doing in `context`.
#[derive(Debug, thiserror::Error)]
#[error("{context}{}", source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
pub struct OutboxError {
    context: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl OutboxError {
    /// An error described by its context alone (e.g. "upload cursor beyond last seq 41").
    pub fn new(context: impl Into<String>) -> Self {
        OutboxError {
            context: context.into(),
            source: None,
        }
    }

    /// An error with its underlying cause (e.g. the sled error).
    pub fn with_source(
        context: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        OutboxError {
            context: context.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// Why the uploader cannot be configured or started. Messages name the config key; a URL in
/// them is redacted ([`redact::redact_url`]).
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload.url: {url:?} is not a valid URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "upload.url: {url:?} has scheme {scheme:?}; only https (or http with upload.allow_insecure_http) is supported"
    )]
    UnsupportedScheme { url: String, scheme: String },
    #[error(
        "upload.url: {url:?} is plain http; alerts are only sent over https unless upload.allow_insecure_http = true"
    )]
    InsecureHttp { url: String },
    #[error("upload.interval_ms: must be greater than 0")]
    ZeroInterval,
    #[error("upload.batch_max: must be at least 1")]
    ZeroBatch,
    #[error("{key}: {value:?} cannot be sent as an HTTP header value (printable ASCII only)")]
    BadHeaderValue { key: &'static str, value: String },
    #[error("upload.ca_file: {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("starting the upload thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// The uploader's view for `nightjar-agent status`, shared with the control socket.
///
/// `last_upload_ok` is the RFC 3339 time of the last accepted batch; `last_upload_error`
/// describes the current problem and is cleared by the next accepted batch;
/// `blocked_batch` names the seq range a collector refused with a non-retryable status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UploadStatus {
    pub last_upload_ok: Option<String>,
    pub last_upload_error: Option<String>,
    pub batches_sent: u64,
    pub alerts_sent: u64,
    pub consecutive_failures: u32,
    pub blocked_batch: Option<String>,
}
