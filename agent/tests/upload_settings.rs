//! `[upload]` validation: every refusal names the config key and the reason.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nightjar_agent::upload::{
    Outbox, OutboxError, UploadError, UploadSettings, UploadStatus, spawn_uploader,
};

fn settings(url: &str) -> UploadSettings {
    UploadSettings {
        url: url.to_owned(),
        interval: Duration::from_secs(1),
        batch_max: 500,
        ca_file: None,
        allow_insecure_http: false,
        host_id: "host-1".to_owned(),
        key_id: "ab".repeat(32),
        signer: None,
        enrolled: None,
    }
}

fn message(s: &UploadSettings) -> String {
    s.validate().expect_err("must be refused").to_string()
}

#[test]
fn https_is_accepted_and_plain_http_needs_the_opt_in() {
    settings("https://collector.example.com/v1/alerts")
        .validate()
        .unwrap();
    let mut s = settings("http://127.0.0.1:8080/v1/alerts");
    let err = s.validate().unwrap_err();
    assert!(matches!(err, UploadError::InsecureHttp { .. }));
    let text = err.to_string();
    assert!(
        text.contains("upload.url") && text.contains("upload.allow_insecure_http"),
        "{text}"
    );
    s.allow_insecure_http = true;
    s.validate().unwrap();
}

#[test]
fn malformed_urls_name_upload_url() {
    for url in ["", "not a url", "https://", "/v1/alerts"] {
        let text = message(&settings(url));
        assert!(text.starts_with("upload.url:"), "{url:?}: {text}");
    }
    let text = message(&settings("ftp://collector.example.com/alerts"));
    assert!(
        text.contains("upload.url") && text.contains("\"ftp\""),
        "{text}"
    );
}

#[test]
fn zero_batch_or_interval_is_refused() {
    let mut s = settings("https://c.example/v1/alerts");
    s.batch_max = 0;
    assert!(message(&s).starts_with("upload.batch_max:"));
    let mut s = settings("https://c.example/v1/alerts");
    s.interval = Duration::ZERO;
    assert!(message(&s).starts_with("upload.interval_ms:"));
}

#[test]
fn header_values_must_be_printable() {
    let mut s = settings("https://c.example/v1/alerts");
    s.host_id = "evil\r\nX-Injected: 1".to_owned();
    assert!(message(&s).starts_with("host_id:"));
    let mut s = settings("https://c.example/v1/alerts");
    s.key_id = String::new();
    assert!(message(&s).starts_with("key_id:"));
}

#[test]
fn ca_file_must_be_readable_pem_with_a_valid_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings("https://c.example/v1/alerts");

    let missing = dir.path().join("missing.pem");
    s.ca_file = Some(missing.clone());
    let text = message(&s);
    assert!(
        text.starts_with("upload.ca_file:") && text.contains(&*missing.to_string_lossy()),
        "{text}"
    );

    let not_pem = write(&dir, "not.pem", "just some text\n");
    s.ca_file = Some(not_pem);
    let text = message(&s);
    assert!(text.contains("no PEM CERTIFICATE"), "{text}");

    // Well-formed PEM whose content is not a certificate.
    let junk = write(
        &dir,
        "junk.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    s.ca_file = Some(junk);
    let text = message(&s);
    assert!(
        text.starts_with("upload.ca_file:") && text.contains("certificate #1"),
        "{text}"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

struct Empty;

impl Outbox for Empty {
    fn pending(&self, _max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        Ok(Vec::new())
    }

    fn mark_sent(&self, through_seq: u64) -> Result<(), OutboxError> {
        Err(OutboxError::new(format!(
            "nothing to mark through {through_seq}"
        )))
    }
}

#[test]
fn spawn_refuses_bad_settings_and_stops_on_shutdown() {
    let (_nudge, nudge_rx) = crossbeam_channel::bounded(1);
    let (shutdown, shutdown_rx) = crossbeam_channel::bounded(1);
    let status = Arc::new(Mutex::new(UploadStatus::default()));
    let err = spawn_uploader(
        settings("http://127.0.0.1:9/v1/alerts"),
        Arc::new(Empty),
        Arc::clone(&status),
        nudge_rx.clone(),
        shutdown_rx.clone(),
    )
    .unwrap_err();
    assert!(err.to_string().starts_with("upload.url:"));

    // Valid settings, nothing to send: the thread idles and ends on shutdown.
    let handle = spawn_uploader(
        settings("https://127.0.0.1:9/v1/alerts"),
        Arc::new(Empty),
        Arc::clone(&status),
        nudge_rx,
        shutdown_rx,
    )
    .unwrap();
    shutdown.send(()).unwrap();
    handle.join().unwrap();
    let status = status.lock().unwrap();
    assert_eq!((status.batches_sent, status.consecutive_failures), (0, 0));
    assert_eq!(status.last_upload_error, None);
}
