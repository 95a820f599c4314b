//! The fleet thread: enrols when the host is not enrolled yet (on first start, retrying with
//! backoff while the server is unreachable), then sends a heartbeat every
//! `heartbeat_interval_ms` (the `status` counters, the chain head and the policy version) and
//! asks for the policy every `policy_interval_ms` (`GET /v1/policy?have=N`), and at once when
//! a heartbeat's answer names a newer version. A server that no longer knows the host (an
//! admin reset it) sends the agent back to enrolment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use nightjar_proto::fleet::{
    Heartbeat, HeartbeatChainHead, HeartbeatResponse, PATH_HEARTBEAT, PATH_POLICY,
};
use nightjar_proto::verify::hex;

use super::FleetSettings;
use super::client::{FleetClient, POLICY_LIMIT};
use super::enrolment::{self, EnrolError};
use super::signer::RequestSigner;
use crate::control::Backend;
use crate::policy::Policies;
use crate::upload::{Backoff, UploadError};

/// What `status` shows of the fleet side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetStatus {
    pub enrolled: bool,
    /// When the server last accepted a heartbeat (RFC 3339).
    pub last_heartbeat_ok: Option<String>,
    pub last_heartbeat_error: Option<String>,
    /// Why the host is not enrolled, while it is not.
    pub enrol_error: Option<String>,
    /// The policy version the server says this host should run.
    pub policy_version_wanted: Option<u64>,
}

/// Pause after a refused enrolment (a bad token needs an admin, not a retry storm).
const REFUSED_PAUSE: Duration = Duration::from_secs(300);
/// Least time between two policy requests: the server refuses a repeated request signature
/// (same path and second) as a replay.
const POLICY_MIN_GAP: Duration = Duration::from_millis(1100);

/// Starts the fleet thread. `enrolled` gates the uploader; `nudge` wakes it once enrolled.
#[allow(clippy::too_many_arguments)]
pub fn spawn_fleet(
    settings: FleetSettings,
    signer: Arc<RequestSigner>,
    backend: Backend,
    enrolled: Arc<AtomicBool>,
    status: Arc<Mutex<FleetStatus>>,
    nudge: Option<Sender<()>>,
    policies: Option<Policies>,
    shutdown: Receiver<()>,
) -> Result<JoinHandle<()>, UploadError> {
    let client = FleetClient::new(&settings)?;
    if enrolment::recorded(&settings, signer.key().key_id()).is_some() {
        enrolled.store(true, Ordering::SeqCst);
    }
    set(&status, |s| s.enrolled = enrolled.load(Ordering::SeqCst));
    std::thread::Builder::new()
        .name("nightjar-fleet".into())
        .spawn(move || {
            let worker = Worker {
                settings,
                signer,
                backend,
                enrolled,
                status,
                nudge,
                shutdown,
                client,
                backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
                policies,
                next_heartbeat: Instant::now(),
                next_policy: Instant::now(),
                last_policy_request: None,
            };
            worker.run();
        })
        .map_err(UploadError::Spawn)
}

fn set(status: &Mutex<FleetStatus>, f: impl FnOnce(&mut FleetStatus)) {
    f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

struct Worker {
    settings: FleetSettings,
    signer: Arc<RequestSigner>,
    backend: Backend,
    enrolled: Arc<AtomicBool>,
    status: Arc<Mutex<FleetStatus>>,
    nudge: Option<Sender<()>>,
    shutdown: Receiver<()>,
    client: FleetClient,
    backoff: Backoff,
    /// `None` without `[fleet] policy_public_key`: no policy is asked for or accepted.
    policies: Option<Policies>,
    next_heartbeat: Instant,
    next_policy: Instant,
    last_policy_request: Option<Instant>,
}

impl Worker {
    /// Sleeps `d`; false when shutdown came first.
    fn pause(&self, d: Duration) -> bool {
        !matches!(
            self.shutdown.recv_timeout(d),
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        )
    }

    fn run(mut self) {
        loop {
            if !self.enrolled.load(Ordering::SeqCst) {
                let wait = self.try_enrol();
                if !self.pause(wait) {
                    return;
                }
                continue;
            }
            let now = Instant::now();
            if now >= self.next_heartbeat {
                self.heartbeat();
                self.next_heartbeat = Instant::now() + self.settings.heartbeat_interval;
            }
            if self.policies.is_some() && Instant::now() >= self.next_policy {
                self.check_policy();
                self.next_policy = Instant::now() + self.settings.policy_interval;
            }
            let next = if self.policies.is_some() {
                self.next_heartbeat.min(self.next_policy)
            } else {
                self.next_heartbeat
            };
            if !self.pause(next.saturating_duration_since(Instant::now())) {
                return;
            }
        }
    }

    /// Asks the server for a policy newer than the one running, and offers it to the
    /// policy side (which verifies, compiles, keeps and swaps it in, or refuses it).
    fn check_policy(&mut self) {
        if let Some(last) = self.last_policy_request
            && last.elapsed() < POLICY_MIN_GAP
        {
            std::thread::sleep(POLICY_MIN_GAP - last.elapsed());
        }
        self.last_policy_request = Some(Instant::now());
        let Some(policies) = self.policies.as_mut() else {
            return;
        };
        let url = self
            .settings
            .url(&format!("{PATH_POLICY}?have={}", policies.version()));
        let answer = match self.client.get_signed(&url, &self.signer, POLICY_LIMIT) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("policy: {e}");
                policies.fetch_failed(Some(e));
                return;
            }
        };
        match answer.status {
            200 => {
                policies.fetch_failed(None);
                // Refusals are reported by the policy side (status `policy_error`).
                let _ = policies.offer(&answer.body);
            }
            204 | 404 => policies.fetch_failed(None),
            status => {
                let e = format!("GET {url}: HTTP {status}: {}", answer.error());
                tracing::warn!("policy: {e}");
                policies.fetch_failed(Some(e));
            }
        }
    }

    /// One enrolment attempt; returns how long to wait before the next step.
    fn try_enrol(&mut self) -> Duration {
        match enrolment::enroll(&self.client, &self.settings, &self.signer) {
            Ok(e) => {
                tracing::info!(server = %e.server, key_id = %e.key_id, "enrolled with the fleet server");
                self.enrolled.store(true, Ordering::SeqCst);
                set(&self.status, |s| {
                    s.enrolled = true;
                    s.enrol_error = None;
                });
                self.backoff.reset();
                if let Some(n) = &self.nudge {
                    let _ = n.try_send(());
                }
                Duration::ZERO
            }
            Err(e) => {
                tracing::warn!("{e}");
                set(&self.status, |s| s.enrol_error = Some(e.to_string()));
                match e {
                    EnrolError::Transient(_) => self.backoff.next_delay(),
                    _ => REFUSED_PAUSE,
                }
            }
        }
    }

    fn heartbeat(&mut self) {
        let result = self.send_heartbeat();
        match result {
            Ok(reply) => {
                set(&self.status, |s| {
                    s.last_heartbeat_ok = Some(now());
                    s.last_heartbeat_error = None;
                    s.policy_version_wanted = Some(reply.policy_version);
                });
                // A newer version than the one running, and not one already refused: ask
                // for it now rather than at the next policy check.
                if let Some(p) = &self.policies
                    && reply.policy_version > p.version()
                    && p.refused() != Some(reply.policy_version)
                {
                    self.next_policy = Instant::now();
                }
            }
            Err(e) => {
                tracing::warn!("heartbeat: {e}");
                set(&self.status, |s| s.last_heartbeat_error = Some(e));
            }
        }
    }

    fn send_heartbeat(&mut self) -> Result<HeartbeatResponse, String> {
        let report = self.backend.status().map_err(|e| e.to_string())?;
        // The head mark signed with the host key (what the store made durable last), so
        // the server can tell a rolled-back store; the unsigned head before the first mark.
        let chain_head = match report.chain_head.clone() {
            Some(mark) => mark,
            None => {
                let head = self.backend.chain_head().map_err(|e| e.to_string())?;
                HeartbeatChainHead {
                    seq: head.seq,
                    hash: hex(&head.hash),
                    signature: None,
                }
            }
        };
        let mut status = match serde_json::to_value(&report) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        // The heartbeat carries its own chain head and policy version.
        status.remove("policy_version");
        status.remove("chain_head");
        let body = Heartbeat {
            chain_head,
            policy_version: self.policies.as_ref().map(Policies::version),
            status,
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let answer = self.client.post_json(
            &self.settings.url(PATH_HEARTBEAT),
            &bytes,
            Some(&self.signer),
        )?;
        match answer.status {
            200..=299 => serde_json::from_slice(&answer.body)
                .map_err(|e| format!("the server's answer: {e}")),
            401 if answer.error().contains("unknown host or key")
                || answer.error().contains("reset") =>
            {
                // An admin reset this host (or the server lost it): enrol again.
                enrolment::forget(&self.settings);
                self.enrolled.store(false, Ordering::SeqCst);
                set(&self.status, |s| s.enrolled = false);
                Err(format!("HTTP 401: {}; enrolling again", answer.error()))
            }
            status => Err(format!("HTTP {status}: {}", answer.error())),
        }
    }
}
