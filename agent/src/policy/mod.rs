//! Fleet policy on the agent: a policy envelope arrives (from the server, or from the state
//! directory at start), is verified against the pinned `policy_public_key`, refused unless
//! its version is above the one running, compiled with the agent's own engine (every rule,
//! every exception, the `block` list), kept in the state directory, and only then handed to
//! the reader, which swaps rule sets between two batches of events (see
//! [`crate::pipeline::swap`]). Anything refused leaves the running set as it is and is
//! reported in `status` (`policy_error`).
//!
//! A policy replaces the local `[rules]` set as a whole (`paths`, `builtin`, `exceptions`,
//! `block`); `[rules] max_signals` still caps every rule, since it bounds this host's
//! alert rate. Without `[fleet] policy_public_key` no policy is ever accepted.
//!
//! - [`persist`]: the applied envelope in the state directory.

pub mod persist;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use nightjar_proto::dsse::POLICY_PAYLOAD_TYPE;
use nightjar_proto::trusted_dir::{Missing, TrustedDir};
use nightjar_proto::verify::{AlertKey, OpenError};
use nightjar_rules::policy::Policy;

use crate::pipeline::swap::{ActiveRules, RulesSlot};

/// What `status` shows of the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    /// The version running (`None`: the local `[rules]` configuration).
    pub version: Option<u64>,
    /// When it was applied (RFC 3339).
    pub applied_at: Option<String>,
    /// The last policy refused, and why.
    pub error: Option<String>,
    /// The last failure to fetch a policy (the server unreachable, an HTTP error).
    pub fetch_error: Option<String>,
}

/// Why a policy was refused. The running rules stay as they are.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("not signed by the pinned policy key {key_id}: {reason}")]
    Signature { key_id: String, reason: String },
    #[error("not a policy: {0}")]
    Malformed(String),
    #[error("policy version {offered} is not newer than version {current}, which runs")]
    NotNewer { offered: u64, current: u64 },
    #[error("policy version {version} does not compile: {}", summary(.problems))]
    Compile { version: u64, problems: Vec<String> },
    #[error("policy version {version} could not be kept in the state directory: {reason}")]
    Persist { version: u64, reason: String },
}

fn summary(problems: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        s.push_str(&format!(" (and {} more)", problems.len() - SHOWN));
    }
    s
}

/// The policy side of one agent.
pub struct Policies {
    key: AlertKey,
    state_dir: PathBuf,
    /// The state directory, checked, once opened (at [`Policies::restore`]).
    state: Option<TrustedDir>,
    max_signals: Option<u32>,
    /// The version running (0: none yet).
    current: u64,
    /// The last version refused, so a server offering it again is not asked for it again.
    refused: Option<u64>,
    slot: Arc<RulesSlot>,
    status: Arc<Mutex<PolicyStatus>>,
}

impl Policies {
    /// `key` is the pinned policy key; new rules go to `slot`.
    pub fn new(
        key: AlertKey,
        state_dir: PathBuf,
        max_signals: Option<u32>,
        slot: Arc<RulesSlot>,
    ) -> Policies {
        Policies {
            key,
            state_dir,
            state: None,
            max_signals,
            current: 0,
            refused: None,
            slot,
            status: Arc::new(Mutex::new(PolicyStatus::default())),
        }
    }

    /// The status `status` reports, kept current by this side.
    pub fn status(&self) -> Arc<Mutex<PolicyStatus>> {
        Arc::clone(&self.status)
    }

    /// The version running (0: the local configuration).
    pub fn version(&self) -> u64 {
        self.current
    }

    /// The last version refused.
    pub fn refused(&self) -> Option<u64> {
        self.refused
    }

    fn set(&self, f: impl FnOnce(&mut PolicyStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Records a failed fetch (or clears it with `None`).
    pub fn fetch_failed(&self, error: Option<String>) {
        self.set(|s| s.fetch_error = error);
    }

    /// At start: runs the kept policy, verified and compiled again, if there is one. A kept
    /// policy that no longer verifies (the pinned key changed) or compiles (an older agent)
    /// is reported and the local configuration runs until the server sends a policy.
    pub fn restore(&mut self) {
        let loaded = self
            .dir()
            .and_then(|d| persist::load(d).map_err(|e| e.to_string()));
        let bytes = match loaded {
            Ok(Some(b)) => b,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("kept policy not used: {e}");
                self.set(|s| s.error = Some(format!("kept policy not used: {e}")));
                return;
            }
        };
        match self.apply(&bytes, false) {
            Ok(v) => tracing::info!(version = v, "running the kept policy"),
            Err(e) => {
                tracing::error!("kept policy not used: {e}");
                self.set(|s| s.error = Some(format!("kept policy not used: {e}")));
            }
        }
    }

    /// A policy envelope from the server: verified, compiled, kept and swapped in, or
    /// refused (with the reason in `status`). Returns the version now running.
    pub fn offer(&mut self, envelope: &[u8]) -> Result<u64, Refusal> {
        match self.apply(envelope, true) {
            Ok(v) => {
                tracing::info!(version = v, "policy applied");
                Ok(v)
            }
            Err(e) => {
                tracing::warn!(
                    "policy refused, version {} keeps running: {e}",
                    self.current
                );
                if let Refusal::NotNewer { offered, .. }
                | Refusal::Compile {
                    version: offered, ..
                } = &e
                {
                    self.refused = Some(*offered);
                }
                let text = e.to_string();
                self.set(|s| s.error = Some(text));
                Err(e)
            }
        }
    }

    /// The state directory, checked (opened on first use).
    fn dir(&mut self) -> Result<&TrustedDir, String> {
        if self.state.is_none() {
            let dir =
                TrustedDir::open(&self.state_dir, Missing::Fail).map_err(|e| e.to_string())?;
            self.state = Some(dir);
        }
        self.state
            .as_ref()
            .ok_or_else(|| "the state directory is not open".to_owned())
    }

    fn apply(&mut self, envelope: &[u8], keep: bool) -> Result<u64, Refusal> {
        let policy = verify(&self.key, envelope)?;
        if policy.version <= self.current {
            return Err(Refusal::NotNewer {
                offered: policy.version,
                current: self.current,
            });
        }
        let prefix = format!("policy v{}: ", policy.version);
        let (rules, report) = policy
            .compile(&prefix, self.max_signals)
            .map_err(|problems| Refusal::Compile {
                version: policy.version,
                problems,
            })?;
        for w in report
            .entries
            .iter()
            .flat_map(|e| &e.warnings)
            .chain(&report.exception_warnings)
        {
            tracing::warn!("{w}");
        }
        if keep {
            let version = policy.version;
            let persist = |reason| Refusal::Persist { version, reason };
            let dir = self.dir().map_err(persist)?;
            persist::save(dir, envelope).map_err(|e| persist(e.to_string()))?;
        }
        tracing::info!(
            version = policy.version,
            rules = rules.rules().len(),
            unsupported = report.unsupported(),
            exception_items = report.exception_items,
            blocking = rules.blocking_rules().count(),
            "policy compiled"
        );
        self.current = policy.version;
        self.refused = None;
        self.slot.publish(ActiveRules {
            rules: Arc::new(rules),
            policy_version: policy.version,
        });
        let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        self.set(|s| {
            s.version = Some(policy.version);
            s.applied_at = Some(now);
            s.error = None;
        });
        Ok(policy.version)
    }
}

/// Opens a policy envelope signed by `key` ([`AlertKey::open_verified`]).
pub fn verify(key: &AlertKey, envelope: &[u8]) -> Result<Policy, Refusal> {
    let payload = key
        .open_verified(envelope, POLICY_PAYLOAD_TYPE)
        .map_err(|e| match e {
            OpenError::Signature { key_id, reason } => Refusal::Signature { key_id, reason },
            OpenError::Malformed(m) => Refusal::Malformed(m),
        })?;
    Policy::from_payload(&payload).map_err(|e| Refusal::Malformed(e.to_string()))
}
