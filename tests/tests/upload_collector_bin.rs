//! The `nightjar-test-collector` binary as end-to-end tests use it: banner on stdout, HTTPS
//! with the CA it writes, scripted faults from flags, accepted envelopes recorded to a file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nightjar_agent::upload::{Outbox, OutboxError, Timing, UploadSettings, UploadStatus};
use nightjar_tests::collector::ChainSigner;
use nightjar_tests::harness::{ChildGuard, run, wait_for};
use serde_json::Value;

const COLLECTOR: &str = env!("CARGO_BIN_EXE_nightjar-test-collector");

struct Fixed {
    envelopes: Vec<(u64, Vec<u8>)>,
    cursor: Mutex<u64>,
}

impl Outbox for Fixed {
    fn pending(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        let cursor = *self.cursor.lock().unwrap();
        Ok(self
            .envelopes
            .iter()
            .filter(|(seq, _)| *seq > cursor)
            .take(max)
            .cloned()
            .collect())
    }

    fn mark_sent(&self, through_seq: u64) -> Result<(), OutboxError> {
        *self.cursor.lock().unwrap() = through_seq;
        Ok(())
    }
}

#[test]
fn binary_serves_https_records_accepted_envelopes_and_injects_faults() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("accepted.ndjson");
    let mut signer = ChainSigner::generate("host-bin");
    let public_key = STANDARD.encode(signer.public_key());
    let mut child = ChildGuard::spawn(
        Command::new(COLLECTOR)
            .args(["--public-key", &public_key, "--tls-dir"])
            .arg(dir.path())
            .arg("--record")
            .arg(&record)
            .args(["--fault", "503:1", "--fault", "cut-body:1"])
            .stdout(Stdio::piped()),
    );
    let mut banner = String::new();
    BufReader::new(child.child.stdout.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    let banner: Value = serde_json::from_str(&banner).unwrap();
    let url = banner["url"].as_str().unwrap();
    assert!(url.starts_with("https://127.0.0.1:"), "{banner}");
    assert!(banner["stats_url"].as_str().unwrap().ends_with("/stats"));
    let ca_file = banner["ca_file"].as_str().unwrap();
    assert_eq!(ca_file, dir.path().join("ca.pem").to_str().unwrap());

    let envelopes: Vec<_> = (0..9).map(|_| signer.next_envelope()).collect();
    let outbox = Arc::new(Fixed {
        envelopes: envelopes.clone(),
        cursor: Mutex::new(0),
    });
    let (_nudge, nudge_rx) = crossbeam_channel::bounded(1);
    let (shutdown, shutdown_rx) = crossbeam_channel::bounded(1);
    let handle = nightjar_agent::upload::spawn_uploader_with(
        UploadSettings {
            url: url.to_owned(),
            interval: Duration::from_millis(100),
            batch_max: 4,
            ca_file: Some(ca_file.into()),
            allow_insecure_http: false,
            host_id: signer.host_id().to_owned(),
            key_id: signer.key_id(),
            signer: None,
            enrolled: None,
        },
        Timing {
            backoff_base: Duration::from_millis(10),
            backoff_cap: Duration::from_millis(200),
            idle_check: Duration::ZERO,
            ..Timing::default()
        },
        outbox.clone(),
        Arc::new(Mutex::new(UploadStatus::default())),
        nudge_rx,
        shutdown_rx,
    )
    .unwrap();

    let recorded = wait_for(Duration::from_secs(90), || {
        let text = std::fs::read_to_string(&record).ok()?;
        (text.lines().count() == envelopes.len() && *outbox.cursor.lock().unwrap() == 9)
            .then_some(text)
    })
    .expect("all envelopes recorded and marked sent");
    let expected: Vec<String> = envelopes
        .iter()
        .map(|(_, e)| String::from_utf8(e.clone()).unwrap())
        .collect();
    assert_eq!(recorded.lines().collect::<Vec<_>>(), expected);
    shutdown.send(()).unwrap();
    handle.join().unwrap();
}

#[test]
fn binary_rejects_a_bad_key_or_fault_spec() {
    let out = run(Command::new(COLLECTOR).args(["--public-key", "c2hvcnQ="]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--public-key") && stderr.contains("expected 32"),
        "{stderr}"
    );

    let key = STANDARD.encode([7u8; 32]);
    let out = run(Command::new(COLLECTOR).args(["--public-key", &key, "--fault", "teapot:1"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown fault kind"), "{stderr}");
}
