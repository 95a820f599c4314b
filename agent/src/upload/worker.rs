//! The uploader thread: finds unsent alerts, sends them batch by batch in seq order, paces
//! retries, keeps [`UploadStatus`] current and stops promptly on shutdown.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, never, select};

use super::backoff::Backoff;
use super::client::{Client, Outcome};
use super::settings::{Timing, UploadSettings};
use super::{Outbox, UploadError, UploadStatus};

/// Runs until `shutdown` fires (a message or its sender dropped): wakes every `interval` or
/// on `nudge`, sends batches in seq order. Validates `settings` first, so a bad `[upload]`
/// section fails agent start-up with a message naming the key.
pub fn spawn_uploader(
    settings: UploadSettings,
    outbox: Arc<dyn Outbox>,
    status: Arc<Mutex<UploadStatus>>,
    nudge: Receiver<()>,
    shutdown: Receiver<()>,
) -> Result<JoinHandle<()>, UploadError> {
    spawn_uploader_with(settings, Timing::default(), outbox, status, nudge, shutdown)
}

/// [`spawn_uploader`] with explicit timeouts and retry pacing.
pub fn spawn_uploader_with(
    settings: UploadSettings,
    timing: Timing,
    outbox: Arc<dyn Outbox>,
    status: Arc<Mutex<UploadStatus>>,
    nudge: Receiver<()>,
    shutdown: Receiver<()>,
) -> Result<JoinHandle<()>, UploadError> {
    settings.validate()?;
    let client = Client::new(&settings, &timing)?;
    let (requests, request_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let (outcome_tx, outcomes) = crossbeam_channel::bounded::<Outcome>(1);
    // The HTTP exchange runs here so the uploader can answer shutdown mid-request; this
    // thread ends once the uploader drops `requests` and the current exchange (bounded by
    // the request timeout) is over.
    std::thread::Builder::new()
        .name("nightjar-upload-http".to_owned())
        .spawn(move || {
            for body in request_rx {
                if outcome_tx.send(client.post(&body)).is_err() {
                    break;
                }
            }
        })
        .map_err(UploadError::Spawn)?;
    let worker = Worker {
        backoff: Backoff::new(timing.backoff_base, timing.backoff_cap),
        settings,
        timing,
        outbox,
        status,
        nudge,
        shutdown,
        requests,
        outcomes,
        nudged: true,
    };
    std::thread::Builder::new()
        .name("nightjar-upload".to_owned())
        .spawn(move || worker.run())
        .map_err(UploadError::Spawn)
}

struct Worker {
    settings: UploadSettings,
    timing: Timing,
    outbox: Arc<dyn Outbox>,
    status: Arc<Mutex<UploadStatus>>,
    nudge: Receiver<()>,
    shutdown: Receiver<()>,
    requests: Sender<Vec<u8>>,
    outcomes: Receiver<Outcome>,
    backoff: Backoff,
    /// The pipeline still holds the nudge sender.
    nudged: bool,
}

/// What to do after a pass over the outbox.
enum Next {
    /// Nothing left: sleep until the interval passes or a nudge arrives.
    Idle,
    /// A failure: wait this long (nudges do not shorten it), then offer the batch again.
    Pause(Duration),
    /// Shutdown was requested.
    Stop,
}

impl Worker {
    fn run(mut self) {
        loop {
            let keep_going = match self.drain() {
                Next::Idle => self.idle(self.settings.interval),
                Next::Pause(d) => self.pause(d),
                Next::Stop => false,
            };
            if !keep_going {
                return;
            }
        }
    }

    /// Sends batches until the outbox is empty, a batch fails, or shutdown.
    fn drain(&mut self) -> Next {
        loop {
            if self.shutdown_requested() {
                return Next::Stop;
            }
            let batch = match self.outbox.pending(self.settings.batch_max) {
                Ok(batch) => batch,
                Err(e) => {
                    let delay = self.backoff.next_delay();
                    self.record_failure(format!("reading unsent alerts: {e}"), None, delay);
                    return Next::Pause(delay);
                }
            };
            let (Some(&(first, _)), Some(&(last, _))) = (batch.first(), batch.last()) else {
                return Next::Idle;
            };
            let body = ndjson(&batch);
            if self.requests.send(body).is_err() {
                return self.http_thread_gone();
            }
            let outcome = select! {
                recv(self.outcomes) -> outcome => match outcome {
                    Ok(outcome) => outcome,
                    Err(_) => return self.http_thread_gone(),
                },
                recv(self.shutdown) -> _ => return Next::Stop,
            };
            let range = format!("seq {first}..={last}");
            match outcome {
                Outcome::Delivered => {
                    if let Err(e) = self.outbox.mark_sent(last) {
                        // The collector has the batch; re-sending it later is harmless.
                        let delay = self.backoff.next_delay();
                        self.record_failure(
                            format!("{range} delivered but not marked sent: {e}"),
                            None,
                            delay,
                        );
                        return Next::Pause(delay);
                    }
                    self.backoff.reset();
                    self.record_success(batch.len());
                }
                Outcome::Retry {
                    reason,
                    retry_after,
                } => {
                    let delay = match retry_after {
                        Some(hint) => self.backoff.retry_after(hint),
                        None => self.backoff.next_delay(),
                    };
                    self.record_failure(format!("{range}: {reason}"), None, delay);
                    return Next::Pause(delay);
                }
                Outcome::Rejected { reason } => {
                    let delay = self.timing.rejected_pause;
                    self.record_failure(format!("{range}: {reason}"), Some(range), delay);
                    return Next::Pause(delay);
                }
            }
        }
    }

    fn http_thread_gone(&self) -> Next {
        let mut status = self.lock_status();
        status.last_upload_error = Some("upload stopped: the HTTP thread ended".to_owned());
        tracing::error!("upload stopped: the HTTP thread ended");
        Next::Stop
    }

    /// Waits for the interval, a nudge or shutdown; false on shutdown. While the pipeline
    /// can nudge (it does after each commit of new alerts) the interval is only a safety
    /// net, stretched to [`Timing::idle_check`] so that an idle agent does not wake every
    /// second.
    fn idle(&mut self, interval: Duration) -> bool {
        let interval = if self.nudged {
            interval.max(self.timing.idle_check)
        } else {
            interval
        };
        let deadline = Instant::now() + interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            select! {
                recv(self.nudge) -> msg => match msg {
                    Ok(()) => return true,
                    // The pipeline dropped its sender: fall back to the interval alone.
                    Err(_) => {
                        self.nudge = never();
                        self.nudged = false;
                    }
                },
                recv(self.shutdown) -> _ => return false,
                default(left) => return true,
            }
        }
    }

    /// Waits out a retry delay; only shutdown cuts it short. False on shutdown.
    fn pause(&self, delay: Duration) -> bool {
        select! {
            recv(self.shutdown) -> _ => false,
            default(delay) => true,
        }
    }

    fn shutdown_requested(&self) -> bool {
        !matches!(
            self.shutdown.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        )
    }

    fn record_success(&self, alerts: usize) {
        let mut status = self.lock_status();
        status.last_upload_ok =
            Some(humantime::format_rfc3339_seconds(SystemTime::now()).to_string());
        status.last_upload_error = None;
        status.blocked_batch = None;
        status.consecutive_failures = 0;
        status.batches_sent += 1;
        status.alerts_sent += alerts as u64;
    }

    fn record_failure(&self, error: String, blocked: Option<String>, retry_in: Duration) {
        tracing::warn!(error = %error, retry_in_ms = retry_in.as_millis() as u64, "alert upload failed");
        let mut status = self.lock_status();
        status.consecutive_failures = status.consecutive_failures.saturating_add(1);
        status.last_upload_error = Some(error);
        status.blocked_batch = blocked;
    }

    fn lock_status(&self) -> MutexGuard<'_, UploadStatus> {
        // A panic elsewhere while holding the lock leaves plain counters behind; keep going.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One envelope per line, each line newline-terminated, in the order given.
fn ndjson(batch: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let len = batch.iter().map(|(_, e)| e.len() + 1).sum();
    let mut body = Vec::with_capacity(len);
    for (_, envelope) in batch {
        body.extend_from_slice(envelope);
        body.push(b'\n');
    }
    body
}
