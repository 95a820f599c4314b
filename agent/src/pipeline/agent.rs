//! `nightjar-agent run`: wires the store, key, control socket, uploader and ring reader, and
//! drives the reader with `mio` (ring wake-ups, signals, the periodic tick) until SIGTERM or
//! SIGINT.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nightjar_proto::shm_ring::{Consumer, RingError};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use super::reader::{Detector, Reader, ReaderError, Retention};
use super::status::{LiveStatus, now_ns};
use crate::config::{AgentConfigError, Config};
use crate::control::{Backend, ControlServer, KeyInfo, ServerError};
use crate::fleet::{FleetSettings, FleetStatus, RequestSigner, spawn_fleet};
use crate::policy::Policies;
use crate::sign::{HostKey, KeyError, Sealer};
use crate::state_dir::{SOCKET, StateDirError};
use crate::store::{Store, StoreError};
use crate::upload::{UploadError, UploadSettings, spawn_uploader};
use nightjar_proto::trusted_dir::Missing;

/// Records handled before the loop looks at signals and the clock again.
const BUDGET: usize = 1024;
/// Longest sleep while the ring is empty and nothing is due: an idle agent wakes for work
/// (a ring wake-up, a checkpoint due after records were handled, a retention step), and
/// besides only this often, to refresh `sensor_connected` and the sensor's loss counters
/// (a laptop's battery pays for every wake-up; measured by `scripts/bench idle`).
const TICK: Duration = Duration::from_secs(5);
/// Checkpoint (save counters, flush, release ring space) at most this often, and at least
/// this long after the first unreleased record.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);
/// Pause after a store or ring failure, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A store that has failed without a break for this long is not coming back in this process
/// (sled keeps returning the error it latched, e.g. after the disk filled, even once space is
/// freed): the agent exits non-zero so launchd/systemd restart it with a fresh store handle.
/// Nothing is lost: the ring position of every unstored event was never released.
const STALL_EXIT_AFTER: Duration = Duration::from_secs(60);
/// How long start-up waits for a CLI that holds the store to let go.
const STORE_OPEN_PATIENCE: Duration = Duration::from_secs(15);

const RING: Token = Token(0);
const SIGNALS: Token = Token(1);

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Config(#[from] AgentConfigError),
    #[error("{0}")]
    Upload(#[from] UploadError),
    #[error("host key: {0}")]
    Key(#[from] KeyError),
    #[error("{0}")]
    StateDir(#[from] StateDirError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("ring: {0}")]
    Ring(#[from] RingError),
    #[error("{0}")]
    Control(#[from] ServerError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
}

impl AgentError {
    /// Configuration problems exit 2, everything else 1. An untrusted state or ring
    /// directory, or a key file someone else could have written, is a configuration problem:
    /// the operator must fix the deployment.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AgentError::Config(_)
                | AgentError::Upload(_)
                | AgentError::StateDir(_)
                | AgentError::Key(
                    KeyError::Exposed { .. } | KeyError::Untrusted { .. } | KeyError::StateDir(_)
                )
                | AgentError::Ring(RingError::Untrusted { .. })
                | AgentError::Store(StoreError::Untrusted { .. })
        )
    }
}

/// Runs the agent until SIGTERM/SIGINT; `detector` holds the loaded rules, and `policies`
/// (with `[fleet] policy_public_key`) replaces them with the kept policy at start and with
/// each newer policy the server sends.
pub fn run<D: Detector>(
    config: &Config,
    mut detector: D,
    mut policies: Option<Policies>,
) -> Result<(), AgentError> {
    let io = |what| move |source| AgentError::Io { what, source };
    // From the first moment, SIGTERM and SIGINT stop the agent cleanly: a supervisor that
    // stops an agent still waiting for the store must not kill it half-way.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(io("signal handlers"))?;
    }
    let host_id = crate::config::host_id(config)?;
    // Everything the configuration decides is checked before anything is created (state
    // directory, key, store): a bad value is a usage error with nothing left behind.
    let mut upload = config.upload_url().map(|url| UploadSettings {
        url,
        interval: Duration::from_millis(config.upload.interval_ms),
        batch_max: config.upload.batch_max,
        ca_file: config.upload.ca_file.clone(),
        allow_insecure_http: config.upload.allow_insecure_http,
        host_id: host_id.clone(),
        key_id: String::new(),
        signer: None,
        enrolled: None,
    });
    let fleet = FleetSettings::from_config(config, &host_id);
    if let Some(settings) = &upload {
        settings.validate_config()?;
    }
    let state = crate::state_dir::open(config, Missing::Create)?;
    let key = match &config.key_file {
        Some(path) => HostKey::load(path)?,
        None => HostKey::load_or_create_in(&state)?,
    };
    if let Some(p) = &mut policies {
        // Before the first event: the reader takes the kept policy's rules at its first batch.
        p.restore();
    }
    let key_info = KeyInfo {
        key_id: key.key_id().to_string(),
        public_key: key.public_key().to_vec(),
    };
    // The same key again, for request signatures (the sealer owns the first).
    let signer = Arc::new(RequestSigner::new(
        HostKey::load_or_create(config)?,
        host_id.clone(),
    ));
    let enrolled = fleet.as_ref().map(|_| Arc::new(AtomicBool::new(false)));
    if let Some(settings) = &mut upload {
        settings.key_id.clone_from(&key_info.key_id);
        settings.signer = Some(Arc::clone(&signer));
        settings.enrolled.clone_from(&enrolled);
        settings.validate()?;
    }

    let upload_on = upload.is_some();
    // Before the store: CLI readers now wait for the control socket instead of taking
    // sled's lock (see `state_dir::AGENT_LOCK`).
    let Some(_agent_lock) = crate::state_dir::lock_as_agent(&state, STORE_OPEN_PATIENCE, &stop)
        .map_err(|e| AgentError::Io {
            what: "the agent lock",
            source: std::io::Error::other(e),
        })?
    else {
        tracing::info!("stopped before the store was open");
        return Ok(());
    };
    let Some(store) = open_store(config, &stop)? else {
        tracing::info!("stopped before the store was open");
        return Ok(());
    };
    let status = Arc::new(LiveStatus::resume(store.counters()?));
    let mut backend = Backend::new(
        store.clone(),
        Ok(key_info.clone()),
        Some(Arc::clone(&status)),
        upload.is_some(),
    );
    let fleet_status = Arc::new(Mutex::new(FleetStatus::default()));
    if fleet.is_some() {
        backend = backend.with_fleet(Arc::clone(&fleet_status));
    }
    if let Some(p) = &policies {
        backend = backend.with_policy(p.status());
    }
    let control = ControlServer::start(&state.real_path().join(SOCKET), backend.clone())?;

    let (nudge_tx, nudge_rx) = crossbeam_channel::bounded::<()>(1);
    let (stop_fleet, fleet_stopped) = crossbeam_channel::bounded::<()>(1);
    let fleet_thread = match (fleet, &enrolled) {
        (Some(settings), Some(gate)) => Some(spawn_fleet(
            settings,
            Arc::clone(&signer),
            backend,
            Arc::clone(gate),
            fleet_status,
            upload.as_ref().map(|_| nudge_tx.clone()),
            policies.take(),
            fleet_stopped,
        )?),
        _ => None,
    };
    if policies.is_some() {
        tracing::warn!(
            "[fleet] policy_public_key is set but no fleet server is configured: only the kept \
             policy (if any) runs"
        );
    }
    let (stop_upload, upload_stopped) = crossbeam_channel::bounded::<()>(1);
    let uploader = match upload {
        Some(settings) => Some(spawn_uploader(
            settings,
            Arc::new(store.clone()),
            status.upload_handle(),
            nudge_rx,
            upload_stopped,
        )?),
        None => None,
    };

    let ring = Consumer::open(&config.ring_path, config.ring_capacity_bytes)?;
    let wake_fd = ring.wake_fd();
    let sealer = Sealer::new(key, host_id.clone());
    let nudge = uploader.as_ref().map(|_| nudge_tx);
    detector.open_history(&store);
    let mut reader = Reader::new(
        ring,
        detector,
        store.clone(),
        sealer,
        Arc::clone(&status),
        nudge,
    )?;
    reader.set_retention(Retention {
        retain: config.store.retain_alerts,
        uploaded_only: upload_on,
    });
    tracing::info!(
        host_id,
        key_id = key_info.key_id,
        ring = %config.ring_path.display(),
        store = %store.path().display(),
        "agent running"
    );

    let result = event_loop(reader, wake_fd, &status, stop).map_err(io("event loop"));

    drop(stop_upload);
    drop(stop_fleet);
    if let Some(handle) = uploader
        && handle.join().is_err()
    {
        tracing::error!("upload thread panicked");
    }
    if let Some(handle) = fleet_thread
        && handle.join().is_err()
    {
        tracing::error!("fleet thread panicked");
    }
    control.stop();
    store.flush()?;
    result?;
    tracing::info!("agent stopped");
    Ok(())
}

/// Opens the store, waiting a little for a CLI that has it open (sled's lock) to finish;
/// `None` when asked to stop meanwhile.
fn open_store(config: &Config, stop: &AtomicBool) -> Result<Option<Store>, StoreError> {
    let deadline = Instant::now() + STORE_OPEN_PATIENCE;
    loop {
        match Store::open(&config.store_dir()) {
            Err(e) if crate::store::recovery::is_busy(&e) && Instant::now() < deadline => {
                tracing::debug!("{e}; retrying");
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other.map(Some),
        }
    }
}

fn event_loop<D: Detector>(
    mut reader: Reader<Consumer, D>,
    wake_fd: RawFd,
    status: &LiveStatus,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut SourceFd(&wake_fd), RING, Interest::READABLE)?;
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    let mut events = Events::with_capacity(16);
    let mut last_checkpoint = Instant::now();
    let mut backoff: Option<Duration> = None;
    let mut stalled_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        // Checkpoints (flush + release) are paced: at most one per interval, so a trickle of
        // events does not cost a flush each; alerts are flushed as they are stored anyway.
        let outcome = reader.drain(BUDGET).and_then(|n| {
            if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
                reader.advance(now_ns())?;
                reader.checkpoint()?;
                last_checkpoint = Instant::now();
            }
            Ok(n)
        });
        if outcome.is_ok() && stalled_since.take().is_some() {
            status.set_stalled(None);
            tracing::info!("alerting resumed");
        }
        let timeout = match outcome {
            Ok(n) if n > 0 => {
                backoff = None;
                continue;
            }
            Ok(_) => {
                backoff = None;
                if !reader.ring_mut().prepare_sleep() {
                    continue;
                }
                if reader.has_unreleased() || reader.pruning() {
                    CHECKPOINT_INTERVAL.saturating_sub(last_checkpoint.elapsed())
                } else {
                    TICK
                }
            }
            Err(e) => {
                let since = *stalled_since.get_or_insert_with(Instant::now);
                status.set_stalled(Some(e.to_string()));
                if since.elapsed() >= STALL_EXIT_AFTER {
                    tracing::error!(
                        "alerting stalled for {} s: exiting so the supervisor restarts the agent \
                         (unstored events stay in the ring): {e}",
                        STALL_EXIT_AFTER.as_secs()
                    );
                    return Err(std::io::Error::other(format!("alerting stalled: {e}")));
                }
                let pause = backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                backoff = Some(pause);
                report(&e, pause);
                reader.recover();
                pause
            }
        };
        let polled = poll.poll(&mut events, Some(timeout));
        reader.ring_mut().after_wake();
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for event in &events {
            if event.token() == SIGNALS {
                for sig in signals.pending() {
                    tracing::info!(signal = sig, "stopping");
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
    if let Err(e) = reader.checkpoint() {
        tracing::error!(
            "final checkpoint failed (the unreleased events are read again at the next start): {e}"
        );
    }
    Ok(())
}

fn report(e: &ReaderError, pause: Duration) {
    tracing::error!(
        retry_in_ms = pause.as_millis() as u64,
        "alerting stalled, ring position not released: {e}"
    );
}
