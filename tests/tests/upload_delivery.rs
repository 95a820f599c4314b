//! The agent's uploader against the real loopback collector: ordered batches, retries through
//! 503/500/429/cut connections/slow answers without loss or duplicates accepted, refused
//! batches reported and not spun on, HTTPS with and without the collector's CA.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use nightjar_agent::upload::{
    Outbox, OutboxError, Timing, UploadError, UploadSettings, UploadStatus, spawn_uploader,
    spawn_uploader_with,
};
use nightjar_tests::collector::{ChainSigner, Collector, CollectorOptions, FaultPhase, Stats};

/// Long enough for any of these exchanges on a loaded machine; only bounds a failing test.
const PATIENCE: Duration = Duration::from_secs(90);

/// The store's side, in memory: signed envelopes by seq and the upload cursor.
#[derive(Default)]
struct MemOutbox {
    envelopes: Mutex<Vec<(u64, Vec<u8>)>>,
    cursor: Mutex<u64>,
    /// The next this many `pending` calls fail, as a broken store would.
    failing_reads: Mutex<u32>,
}

impl MemOutbox {
    fn push(&self, entry: (u64, Vec<u8>)) {
        self.envelopes.lock().unwrap().push(entry);
    }

    fn cursor(&self) -> u64 {
        *self.cursor.lock().unwrap()
    }

    fn all(&self) -> Vec<Vec<u8>> {
        let envelopes = self.envelopes.lock().unwrap();
        envelopes.iter().map(|(_, e)| e.clone()).collect()
    }
}

impl Outbox for MemOutbox {
    fn pending(&self, max: usize) -> Result<Vec<(u64, Vec<u8>)>, OutboxError> {
        {
            let mut failing = self.failing_reads.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Err(OutboxError::with_source(
                    "reading the alert tree",
                    std::io::Error::other("disk on fire"),
                ));
            }
        }
        let cursor = self.cursor();
        let envelopes = self.envelopes.lock().unwrap();
        Ok(envelopes
            .iter()
            .filter(|(seq, _)| *seq > cursor)
            .take(max)
            .cloned()
            .collect())
    }

    fn mark_sent(&self, through_seq: u64) -> Result<(), OutboxError> {
        let mut cursor = self.cursor.lock().unwrap();
        if through_seq <= *cursor {
            return Err(OutboxError::new(format!(
                "cursor moved backwards: {} -> {through_seq}",
                *cursor
            )));
        }
        *cursor = through_seq;
        Ok(())
    }
}

fn fast_timing() -> Timing {
    Timing {
        // Generous: a spurious timeout on a loaded machine would add a re-delivery.
        connect_timeout: Duration::from_secs(20),
        request_timeout: Duration::from_secs(20),
        backoff_base: Duration::from_millis(10),
        backoff_cap: Duration::from_millis(200),
        rejected_pause: Duration::from_secs(3600),
        idle_check: Duration::ZERO,
    }
}

/// A running uploader with its channels.
struct Running {
    status: Arc<Mutex<UploadStatus>>,
    nudge: Sender<()>,
    shutdown: Sender<()>,
    handle: JoinHandle<()>,
}

impl Running {
    fn status(&self) -> UploadStatus {
        self.status.lock().unwrap().clone()
    }

    fn wait_status(&self, pred: impl Fn(&UploadStatus) -> bool) -> UploadStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.status();
            if pred(&status) || Instant::now() > deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the uploader and waits for its thread (a hang here fails the test by timeout).
    fn stop(self) {
        self.shutdown.send(()).unwrap();
        self.handle.join().unwrap();
    }
}

fn settings(signer: &ChainSigner, collector: &Collector, batch_max: usize) -> UploadSettings {
    UploadSettings {
        url: collector.url().to_owned(),
        interval: Duration::from_millis(100),
        batch_max,
        ca_file: collector.ca_file().map(ToOwned::to_owned),
        allow_insecure_http: true,
        host_id: signer.host_id().to_owned(),
        key_id: signer.key_id(),
        signer: None,
        enrolled: None,
    }
}

fn start(settings: UploadSettings, timing: Timing, outbox: &Arc<MemOutbox>) -> Running {
    let status = Arc::new(Mutex::new(UploadStatus::default()));
    let (nudge, nudge_rx) = bounded(1);
    let (shutdown, shutdown_rx) = bounded(1);
    let outbox: Arc<dyn Outbox> = outbox.clone();
    let handle = spawn_uploader_with(
        settings,
        timing,
        outbox,
        Arc::clone(&status),
        nudge_rx,
        shutdown_rx,
    )
    .expect("uploader starts");
    Running {
        status,
        nudge,
        shutdown,
        handle,
    }
}

fn outbox_with(signer: &mut ChainSigner, n: usize) -> Arc<MemOutbox> {
    let outbox = Arc::new(MemOutbox::default());
    for _ in 0..n {
        outbox.push(signer.next_envelope());
    }
    outbox
}

fn collector(signer: &ChainSigner, faults: &[&str]) -> Collector {
    let mut options = CollectorOptions::new(signer.public_key());
    options.faults = faults
        .iter()
        .map(|f| f.parse::<FaultPhase>().expect("fault spec"))
        .collect();
    Collector::start(options).expect("collector starts")
}

fn wait_accepted(collector: &Collector, n: u64) -> Stats {
    collector.wait_until(PATIENCE, |s| s.accepted >= n)
}

/// Everything the outbox holds reached the collector, in order, each exactly once.
fn assert_all_delivered(collector: &Collector, outbox: &MemOutbox, stats: &Stats) {
    let expected = outbox.all();
    assert_eq!(stats.accepted, expected.len() as u64, "{stats:?}");
    assert_eq!(stats.last_seq, expected.len() as u64, "{stats:?}");
    assert!(stats.rejected.is_empty(), "{stats:?}");
    assert_eq!(collector.accepted(), expected);
    // The cursor moves once the uploader has read the 2xx, just after the collector counted.
    let deadline = Instant::now() + PATIENCE;
    while outbox.cursor() < expected.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(outbox.cursor(), expected.len() as u64);
}

#[test]
fn delivers_everything_in_order_in_batches_of_batch_max() {
    let mut signer = ChainSigner::generate("host-order");
    let outbox = outbox_with(&mut signer, 23);
    let collector = collector(&signer, &[]);
    let up = start(settings(&signer, &collector, 5), fast_timing(), &outbox);
    let stats = wait_accepted(&collector, 23);
    let status = up.wait_status(|s| s.alerts_sent == 23);
    assert_all_delivered(&collector, &outbox, &stats);
    assert_eq!(stats.posts, 5, "23 alerts in batches of 5");
    assert_eq!(stats.duplicates, 0);
    assert_eq!(status.batches_sent, 5);
    assert!(status.last_upload_ok.is_some());
    assert_eq!(status.last_upload_error, None);
    assert_eq!(status.consecutive_failures, 0);

    // New alerts after a nudge follow on the same chain.
    for _ in 0..4 {
        outbox.push(signer.next_envelope());
    }
    up.nudge.send(()).unwrap();
    let stats = wait_accepted(&collector, 27);
    assert_all_delivered(&collector, &outbox, &stats);
    up.stop();
}

#[test]
fn unavailable_collector_loses_and_reorders_nothing() {
    let mut signer = ChainSigner::generate("host-503");
    let outbox = outbox_with(&mut signer, 5);
    let collector = collector(&signer, &["503:2", "500:1", "503"]);
    let up = start(settings(&signer, &collector, 4), fast_timing(), &outbox);
    // While the collector fails, more alerts pile up in the store.
    let failing = up.wait_status(|s| s.consecutive_failures >= 4);
    for _ in 0..6 {
        outbox.push(signer.next_envelope());
    }
    collector.clear_faults();
    let stats = wait_accepted(&collector, 11);
    assert_all_delivered(&collector, &outbox, &stats);
    // Every failed POST was the first batch; then 1..=4, 5..=8, 9..=11 went through once.
    assert!(stats.faults_injected >= 4, "{stats:?}");
    assert_eq!(stats.posts, stats.faults_injected + 3, "{stats:?}");
    assert_eq!(stats.duplicates, 0);
    assert!(failing.consecutive_failures >= 1, "{failing:?}");
    assert!(
        failing
            .last_upload_error
            .as_deref()
            .is_some_and(|e| e.contains("seq 1..=4: HTTP 50")),
        "{failing:?}"
    );
    let status = up.wait_status(|s| s.alerts_sent == 11);
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.last_upload_error, None);
    up.stop();
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let mut signer = ChainSigner::generate("host-429");
    let outbox = outbox_with(&mut signer, 3);
    let collector = collector(&signer, &["429=1:1"]);
    let timing = Timing {
        backoff_base: Duration::from_millis(1),
        backoff_cap: Duration::from_secs(30),
        ..fast_timing()
    };
    let started = Instant::now();
    let up = start(settings(&signer, &collector, 10), timing, &outbox);
    let stats = wait_accepted(&collector, 3);
    // With a 1 ms backoff the retry would come at once; the server asked for 1 s.
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!((stats.posts, stats.faults_injected), (2, 1));
    assert_all_delivered(&collector, &outbox, &stats);
    up.stop();

    // A Retry-After of an hour is capped by the backoff cap (200 ms here).
    let mut signer = ChainSigner::generate("host-429-cap");
    let outbox = outbox_with(&mut signer, 2);
    let collector = self::collector(&signer, &["429=3600:2"]);
    let up = start(settings(&signer, &collector, 10), fast_timing(), &outbox);
    let stats = wait_accepted(&collector, 2);
    assert_eq!((stats.posts, stats.faults_injected), (3, 2));
    assert_all_delivered(&collector, &outbox, &stats);
    up.stop();
}

#[test]
fn refused_batch_is_reported_and_not_spun_on() {
    let mut signer = ChainSigner::generate("host-400");
    let outbox = outbox_with(&mut signer, 3);
    let collector = collector(&signer, &["400"]);
    let up = start(settings(&signer, &collector, 10), fast_timing(), &outbox);
    let status = up.wait_status(|s| s.blocked_batch.is_some());
    assert_eq!(status.blocked_batch.as_deref(), Some("seq 1..=3"));
    let error = status.last_upload_error.unwrap_or_default();
    assert!(error.contains("HTTP 400"), "{error}");
    assert!(error.contains("scripted fault"), "body excerpt in {error}");
    // Nudges and intervals pass; the refused batch is not offered again.
    for _ in 0..5 {
        let _ = up.nudge.try_send(());
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = collector.stats();
    assert_eq!(stats.posts, 1, "{stats:?}");
    assert_eq!(stats.accepted, 0);
    assert_eq!(outbox.cursor(), 0);
    // Shutdown is answered in the middle of the long pause.
    up.stop();
}

#[test]
fn connection_cut_mid_body_is_retried_without_duplicates() {
    let mut signer = ChainSigner::generate("host-cut-body");
    let outbox = outbox_with(&mut signer, 6);
    let collector = collector(&signer, &["cut-body:2"]);
    let up = start(settings(&signer, &collector, 3), fast_timing(), &outbox);
    let stats = wait_accepted(&collector, 6);
    assert_all_delivered(&collector, &outbox, &stats);
    assert_eq!(stats.posts, 4);
    assert_eq!(stats.duplicates, 0);
    up.stop();
}

#[test]
fn connection_cut_mid_response_redelivers_idempotently() {
    let mut signer = ChainSigner::generate("host-cut-resp");
    let outbox = outbox_with(&mut signer, 6);
    let collector = collector(&signer, &["cut-response:1"]);
    let up = start(settings(&signer, &collector, 3), fast_timing(), &outbox);
    let stats = collector.wait_until(PATIENCE, |s| s.accepted >= 6 && s.posts >= 3);
    assert_all_delivered(&collector, &outbox, &stats);
    // The first batch was processed, its answer lost, and it was sent again.
    assert_eq!(stats.duplicates, 3, "{stats:?}");
    assert_eq!(stats.posts, 3);
    up.stop();
}

#[test]
fn slow_collector_times_out_and_is_retried() {
    let mut signer = ChainSigner::generate("host-slow");
    let outbox = outbox_with(&mut signer, 4);
    let collector = collector(&signer, &["slow=3"]);
    let timing = Timing {
        request_timeout: Duration::from_secs(1),
        ..fast_timing()
    };
    let up = start(settings(&signer, &collector, 10), timing, &outbox);
    let failing = up.wait_status(|s| s.consecutive_failures >= 1);
    assert!(
        failing
            .last_upload_error
            .as_deref()
            .is_some_and(|e| e.contains("seq 1..=4") && e.contains("timeout")),
        "{failing:?}"
    );
    collector.clear_faults();
    let stats = collector.wait_until(PATIENCE, |s| s.accepted >= 4 && s.posts >= 2);
    let status = up.wait_status(|s| s.alerts_sent == 4);
    assert_all_delivered(&collector, &outbox, &stats);
    assert_eq!(status.batches_sent, 1);
    up.stop();
}

#[test]
fn https_with_the_collectors_ca_file_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = ChainSigner::generate("host-tls");
    let outbox = outbox_with(&mut signer, 7);
    let mut options = CollectorOptions::new(signer.public_key());
    options.tls_dir = Some(dir.path().to_owned());
    let collector = Collector::start(options).unwrap();
    assert!(collector.url().starts_with("https://"));
    let mut settings = settings(&signer, &collector, 3);
    settings.allow_insecure_http = false;
    assert!(settings.ca_file.is_some());
    let up = start(settings, fast_timing(), &outbox);
    let stats = wait_accepted(&collector, 7);
    assert_all_delivered(&collector, &outbox, &stats);
    up.stop();
}

#[test]
fn https_to_an_untrusted_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut signer = ChainSigner::generate("host-untrusted");
    let outbox = outbox_with(&mut signer, 2);
    let mut options = CollectorOptions::new(signer.public_key());
    options.tls_dir = Some(dir.path().to_owned());
    let collector = Collector::start(options).unwrap();
    let mut settings = settings(&signer, &collector, 10);
    settings.ca_file = None;
    settings.allow_insecure_http = false;
    let up = start(settings, fast_timing(), &outbox);
    let status = up.wait_status(|s| s.consecutive_failures >= 2);
    let error = status.last_upload_error.unwrap_or_default();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "{error}"
    );
    let stats = collector.stats();
    assert_eq!((stats.requests, stats.accepted), (0, 0));
    assert_eq!(outbox.cursor(), 0);
    up.stop();
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let signer = ChainSigner::generate("host-http");
    let collector = collector(&signer, &[]);
    let mut settings = settings(&signer, &collector, 10);
    settings.allow_insecure_http = false;
    let (_nudge, nudge_rx) = bounded(1);
    let (_shutdown, shutdown_rx) = bounded(1);
    let outbox: Arc<dyn Outbox> = Arc::new(MemOutbox::default());
    let err = spawn_uploader(
        settings,
        outbox,
        Arc::new(Mutex::new(UploadStatus::default())),
        nudge_rx,
        shutdown_rx,
    )
    .expect_err("http:// must be refused");
    assert!(matches!(err, UploadError::InsecureHttp { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("upload.url") && message.contains("allow_insecure_http"),
        "{message}"
    );
    assert_eq!(collector.stats().requests, 0);
}

#[test]
fn store_read_errors_are_reported_and_retried() {
    let mut signer = ChainSigner::generate("host-store");
    let outbox = outbox_with(&mut signer, 3);
    *outbox.failing_reads.lock().unwrap() = u32::MAX;
    let collector = collector(&signer, &[]);
    let up = start(settings(&signer, &collector, 10), fast_timing(), &outbox);
    let failing = up.wait_status(|s| s.consecutive_failures >= 1);
    let error = failing.last_upload_error.unwrap_or_default();
    assert!(
        error.contains("reading unsent alerts") && error.contains("disk on fire"),
        "{error}"
    );
    // The store recovers: nothing was lost meanwhile.
    *outbox.failing_reads.lock().unwrap() = 0;
    let stats = wait_accepted(&collector, 3);
    assert_all_delivered(&collector, &outbox, &stats);
    assert_eq!(stats.posts, 1);
    up.stop();
}
