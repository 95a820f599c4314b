//! The blocking set follows the fleet policy the agent applied, live.
//!
//! The agent verifies every policy and keeps the one it runs in its state directory
//! ([`KEPT_FILE`]). The sensor reads that file at start and then looks at it on the tick its
//! capture loop already has (no wake-up of its own): an `lstat` relative to the checked state
//! directory, compared with the last one seen (inode, size, change and modification times;
//! the agent replaces the file by a rename, so every new policy is a new inode). Only when it
//! changed is the file read — `O_NOFOLLOW`, a regular root-owned private file with one name,
//! bounded ([`TrustedDir::read_private`]) — and verified against the pinned
//! `[fleet] policy_public_key` exactly as the agent verifies it ([`AlertKey::open_verified`]).
//! The sensor shares the state directory with the agent but trusts nothing in it unverified.
//!
//! A policy that does not verify, does not compile, or is not newer than the one the sensor
//! runs is refused with the reason in the log, and the current blocking set stays. A policy
//! replaces the local `[rules]` set as a whole, as on the agent: its `block` list, not
//! `[rules] block`, says what blocks, and its rules, not `[rules] paths`, say which file
//! events are published (the file filter is rebuilt from them, [`Applied::files`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nightjar_proto::config::Config;
use nightjar_proto::trusted_dir::{Missing, TrustedDir};
use nightjar_proto::verify::AlertKey;
use nightjar_rules::policy::{KEPT_FILE, MAX_ENVELOPE_BYTES, PAYLOAD_TYPE, Policy};

use nightjar_proto::filter::PathFilter;
use nightjar_rules::RuleSet;

use crate::block::Blocking;

/// What a new kept policy makes the sensor run.
#[derive(Debug, Clone)]
pub struct Applied {
    pub block: Blocking,
    /// The file events its rules can match.
    pub files: PathFilter,
}

impl Applied {
    /// The blocking set and the file filter of `rules`; the rule parts that keep file events
    /// open are logged.
    pub fn of(rules: RuleSet) -> Applied {
        let (files, open) = rules.file_filter_explained();
        log_filter(&files, &open);
        Applied {
            block: Blocking::of(rules),
            files,
        }
    }
}

/// Logs what the file filter admits, and which rule keeps which part open.
pub fn log_filter(files: &PathFilter, open: &[String]) {
    for why in open {
        tracing::warn!("file events left open by rule {why}");
    }
    let marks = files.marks();
    tracing::info!(
        files = !files.is_none(),
        every_file = files.is_all(),
        in_kernel = files.kernel_can_filter(),
        prefixes = files.prefixes().len(),
        names = files.names().len(),
        extensions = files.extensions().len(),
        processes = files.processes().len(),
        marked_names = marks.names.len(),
        marked_parents = marks.parents.len(),
        marked_executables = marks.exe_prefixes.len() + marks.exe_prefixes_after_one.len(),
        "file events the rules can match"
    );
}

/// The kept file is looked at no more often than this, however often the capture loop ticks
/// (under load its poll returns after every batch of events).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What tells one kept file from the next: device, inode, size, mtime, ctime (seconds and
/// nanoseconds).
type Stamp = [i64; 7];

/// The watcher of the kept policy.
pub struct PolicyWatch {
    key: AlertKey,
    state_dir: PathBuf,
    /// Opened on first use (the agent may create the directory after the sensor starts).
    dir: Option<TrustedDir>,
    max_signals: Option<u32>,
    /// The version whose blocking set runs (0: the local configuration's).
    version: u64,
    /// The kept file last looked at, applied or refused: it is not read again until it
    /// changes.
    seen: Option<Stamp>,
    /// The last reason the state directory could not be looked at, logged once.
    dir_error: Option<String>,
    /// When the kept file was last looked at.
    checked: Option<Instant>,
}

impl PolicyWatch {
    /// The watcher for `config`; `None` when no policy key is pinned (no policy is ever
    /// accepted then, as on the agent). A pinned key that does not parse is a configuration
    /// error.
    pub fn new(config: &Config) -> Result<Option<PolicyWatch>, String> {
        let Some(b64) = config
            .fleet
            .as_ref()
            .and_then(|f| f.policy_public_key.as_deref())
        else {
            return Ok(None);
        };
        let key = AlertKey::from_base64(b64.trim()).map_err(|e| {
            format!(
                "{}: key `fleet.policy_public_key`: {e}",
                config.source_name()
            )
        })?;
        Ok(Some(PolicyWatch {
            key,
            state_dir: config.state_dir.clone(),
            dir: None,
            max_signals: config.rules.max_signals,
            version: 0,
            seen: None,
            dir_error: None,
            checked: None,
        }))
    }

    /// The version whose blocking set runs (0: the local configuration's).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The new blocking set, when a new kept policy verified and compiled since the last
    /// call; `None` otherwise (nothing new, or refused: logged with the reason).
    pub fn poll(&mut self) -> Option<Blocking> {
        self.poll_applied().map(|a| a.block)
    }

    /// As [`PolicyWatch::poll`], with the new policy's file filter.
    pub fn poll_applied(&mut self) -> Option<Applied> {
        let now = Instant::now();
        if self
            .checked
            .is_some_and(|at| now.duration_since(at) < CHECK_EVERY)
        {
            return None;
        }
        self.checked = Some(now);
        if !self.open_dir() {
            return None;
        }
        let dir = self.dir.as_ref()?;
        let stamp = match dir.stat(KEPT_FILE) {
            Ok(Some(st)) => stamp(&st),
            Ok(None) => return None,
            Err(e) => {
                let why = format!("{}: {e}", dir.display_name(KEPT_FILE).display());
                self.note_dir_error(why);
                return None;
            }
        };
        if self.seen == Some(stamp) {
            return None;
        }
        self.seen = Some(stamp);
        let bytes = match dir.read_private(KEPT_FILE, MAX_ENVELOPE_BYTES) {
            Ok(Some((bytes, st))) => {
                // What was read is the file checked: remember its own stamp.
                self.seen = Some(self::stamp(&st));
                bytes
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::error!("kept policy refused, the blocking set stays: {e}");
                return None;
            }
        };
        match self.open(&bytes) {
            Ok((version, rules)) => {
                let applied = Applied::of(rules);
                tracing::info!(
                    version,
                    blocking = applied.block.indices.len(),
                    "rules of the kept policy loaded"
                );
                self.version = version;
                Some(applied)
            }
            Err(why) => {
                tracing::error!(
                    "kept policy refused, the blocking set of version {} stays: {why}",
                    self.version
                );
                None
            }
        }
    }

    fn open(&self, envelope: &[u8]) -> Result<(u64, RuleSet), String> {
        let payload = self
            .key
            .open_verified(envelope, PAYLOAD_TYPE)
            .map_err(|e| e.to_string())?;
        let policy = Policy::from_payload(&payload).map_err(|e| format!("not a policy: {e}"))?;
        if policy.version <= self.version {
            return Err(format!(
                "policy version {} is not newer than version {}",
                policy.version, self.version
            ));
        }
        let prefix = format!("policy v{}: ", policy.version);
        let (rules, report) = policy
            .compile(&prefix, self.max_signals)
            .map_err(|problems| {
                format!(
                    "policy version {} does not compile: {}",
                    policy.version,
                    problems.join("; ")
                )
            })?;
        for r in &report.block_refused {
            tracing::warn!("{r}");
        }
        Ok((policy.version, rules))
    }

    /// Whether the state directory is open (it is opened, checked, on first use).
    fn open_dir(&mut self) -> bool {
        if self.dir.is_some() {
            return true;
        }
        match TrustedDir::open(&self.state_dir, Missing::Fail) {
            Ok(d) => {
                self.dir = Some(d);
                self.dir_error = None;
                true
            }
            Err(e) if e.is_not_found() => false,
            Err(e) => {
                self.note_dir_error(e.to_string());
                false
            }
        }
    }

    fn note_dir_error(&mut self, why: String) {
        if self.dir_error.as_deref() != Some(why.as_str()) {
            tracing::error!("cannot look for a kept policy: {why}");
            self.dir_error = Some(why);
        }
    }
}

fn stamp(st: &libc::stat) -> Stamp {
    [
        st.st_dev as i64,
        st.st_ino as i64,
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
    ]
}
