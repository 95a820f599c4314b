//! `nightjar.toml`: the one configuration schema the sensor and the agent both read.
//!
//! Both binaries parse the same file with this module, so a key means the same thing, has the
//! same default and is refused the same way in both. Keys (DESIGN.md, "Command-line
//! contract"), with the embedded defaults:
//!
//! | key | default |
//! |---|---|
//! | `state_dir` | Linux `/var/lib/nightjar`, macOS `/var/db/nightjar` |
//! | `ring_path` | Linux `/run/nightjar/events.ring`, macOS `/var/run/nightjar/events.ring` |
//! | `ring_capacity_bytes` | 67108864 (a power of two, 512 KiB to 16 GiB) |
//! | `host_id` | Linux `/etc/machine-id`, macOS the IOPlatformUUID (resolved by the agent) |
//! | `key_file` | absent: the host key is `state_dir/host.key`, generated on first start |
//! | `[rules] paths` | `[]` |
//! | `[rules] builtin` | `true` |
//! | `[rules] max_signals` | absent: each rule's own cap; `0` = no cap |
//! | `[rules] exceptions` | `[]`: Kibana exception-list exports (NDJSON) |
//! | `[rules] block` | `[]`: rule ids that block (prevention); empty = detect only |
//! | `[rules] state_max_per_rule` | 10000: partial matches / keys / groups one stateful rule holds |
//! | `[rules] state_max_bytes` | 67108864: bytes all stateful rules' state holds together |
//! | `[rules] reorder_window_ms` | 2000: how long a sequence stage waits for late events |
//! | `[rules] new_terms_max_per_rule` | 100000: terms one new_terms rule remembers |
//! | `[rules] new_terms_per_host` | `false`: fleet-wide new_terms rules run on this host's history |
//! | `[sensor] env_vars` | `[]`: environment names captured into `process.env_vars` |
//! | `[upload] url` | absent: upload off (or `[fleet] server` + `/v1/alerts`) |
//! | `[upload] interval_ms` | 1000 |
//! | `[upload] batch_max` | 500 |
//! | `[upload] ca_file` | absent: system roots only |
//! | `[upload] allow_insecure_http` | `false` |
//! | `[store] retain_alerts` | 100000; `0` keeps every alert |
//! | `[fleet] server` | the origin of `upload.url` |
//! | `[fleet] enroll_token` | absent (MDM may provide it) |
//! | `[fleet] policy_public_key` | absent: no policy is accepted |
//! | `[fleet] heartbeat_interval_ms` | 60000 |
//! | `[fleet] policy_interval_ms` | 60000 |
//!
//! Which file: `--config F`, else `$NIGHTJAR_CONFIG`, else [`PLATFORM_CONFIG_PATH`]. A missing
//! platform file means the embedded defaults; a missing file that was named is an error.
//!
//! The whole file is checked before either binary creates anything: unknown keys, wrong types
//! and bad values are errors naming the file, line:column and the dotted key (both binaries
//! exit 2 on them).

mod check;
mod position;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use check::{MAX_ENV_VAR_NAME, MAX_ENV_VARS};

/// Where the config lives when neither `--config` nor `$NIGHTJAR_CONFIG` names one.
#[cfg(target_os = "macos")]
pub const PLATFORM_CONFIG_PATH: &str = "/Library/Application Support/Nightjar/nightjar.toml";
/// Where the config lives when neither `--config` nor `$NIGHTJAR_CONFIG` names one.
#[cfg(not(target_os = "macos"))]
pub const PLATFORM_CONFIG_PATH: &str = "/etc/nightjar/nightjar.toml";

/// The environment variable that names the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "NIGHTJAR_CONFIG";

#[cfg(target_os = "macos")]
const DEFAULT_STATE_DIR: &str = "/var/db/nightjar";
#[cfg(not(target_os = "macos"))]
const DEFAULT_STATE_DIR: &str = "/var/lib/nightjar";
/// The ring's default path. On Linux it sits on the `/run` tmpfs itself, not behind the
/// `/var/run` symlink, so the ring directory's ownership check sees real directories.
#[cfg(target_os = "macos")]
pub const DEFAULT_RING_PATH: &str = "/var/run/nightjar/events.ring";
/// The ring's default path. On Linux it sits on the `/run` tmpfs itself, not behind the
/// `/var/run` symlink, so the ring directory's ownership check sees real directories.
#[cfg(not(target_os = "macos"))]
pub const DEFAULT_RING_PATH: &str = "/run/nightjar/events.ring";
/// The ring's default size (64 MiB).
pub const DEFAULT_RING_CAPACITY: u64 = 64 * 1024 * 1024;
/// About 360 MB of disk and 8 MB of memory (sled keeps ~80 bytes per stored alert in
/// memory): months of alerts on a typical host, and a bound on a noisy one.
pub const DEFAULT_RETAIN_ALERTS: u64 = 100_000;
/// Default pause between heartbeats and between policy checks.
pub const DEFAULT_FLEET_INTERVAL_MS: u64 = 60_000;

/// Why the configuration cannot be used. Every variant names the file; value problems name
/// the dotted key and, when the key is in the file, its line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: key `{key}`: {message}", path.display(), Position(*at))]
    Invalid {
        path: PathBuf,
        /// Line and column (1-based) of the key or value at fault; `None` when the value did
        /// not come from the file text (defaults, managed preferences).
        at: Option<(usize, usize)>,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The dotted key at fault, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Read { .. } => None,
        }
    }
}

struct Position(Option<(usize, usize)>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

/// A value that must never be printed (tokens). `Debug` shows only that it is set.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[rules]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Rule TOML files or directories, in addition to the built-in seed rule.
    pub paths: Vec<PathBuf>,
    /// Whether the built-in seed rule is loaded.
    pub builtin: bool,
    /// Overrides every rule's `max_signals`; `0` = no cap.
    pub max_signals: Option<u32>,
    /// Kibana exception-list exports (NDJSON of `exception_list` / `exception_list_item`).
    pub exceptions: Vec<PathBuf>,
    /// Rule ids whose matching execs are blocked; no duplicates, none empty.
    pub block: Vec<String>,
    /// Partial matches (sequences), keys (samples) or groups (thresholds) one stateful rule
    /// may hold; past it the oldest is evicted (counted in `status`).
    pub state_max_per_rule: u32,
    /// Bytes all stateful rules' state may hold together (events kept for partial
    /// matches included).
    pub state_max_bytes: u64,
    /// How long a sequence stage match waits for earlier events that arrive late, ms.
    pub reorder_window_ms: u32,
    /// Terms one new_terms rule remembers (its history in the store).
    pub new_terms_max_per_rule: u32,
    /// Fleet-wide new_terms rules (whose fields do not include `host.id`) run on this
    /// host's own history; otherwise they are not run (reported by `rules check`).
    pub new_terms_per_host: bool,
}

/// Limits on `[rules]` state keys: a typo cannot switch bounds off or starve the agent.
pub const STATE_MAX_PER_RULE: std::ops::RangeInclusive<u32> = 1..=1_000_000;
pub const STATE_MAX_BYTES: std::ops::RangeInclusive<u64> = (1 << 20)..=(4 << 30);
pub const REORDER_WINDOW_MS: std::ops::RangeInclusive<u32> = 0..=60_000;
pub const NEW_TERMS_MAX_PER_RULE: std::ops::RangeInclusive<u32> = 1..=10_000_000;

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            paths: Vec::new(),
            builtin: true,
            max_signals: None,
            exceptions: Vec::new(),
            block: Vec::new(),
            state_max_per_rule: 10_000,
            state_max_bytes: 64 << 20,
            reorder_window_ms: 2_000,
            new_terms_max_per_rule: 100_000,
            new_terms_per_host: false,
        }
    }
}

/// `[sensor]`: what capture collects beyond the fixed event fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSection {
    /// Environment variable names captured into `process.env_vars` (never the whole
    /// environment): at most [`MAX_ENV_VARS`] portable names (`[A-Za-z_][A-Za-z0-9_]*`) of at
    /// most [`MAX_ENV_VAR_NAME`] bytes, no duplicates.
    pub env_vars: Vec<String>,
}

/// `[upload]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Collector endpoint; absent = upload off (unless `[fleet] server` gives one). Use
    /// [`Config::upload_url`] for the effective value.
    pub url: Option<String>,
    /// Pause between upload attempts while nothing is pending, in milliseconds (≥ 1).
    pub interval_ms: u64,
    /// Most envelopes per POST (≥ 1).
    pub batch_max: usize,
    /// Extra trust anchors (PEM) next to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Permits a plain `http://` url (tests, lab setups).
    pub allow_insecure_http: bool,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            url: None,
            interval_ms: 1000,
            batch_max: 500,
            ca_file: None,
            allow_insecure_http: false,
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Alerts kept in the store; the oldest beyond it are removed (only once the collector
    /// has accepted them, when upload is on). 0 keeps every alert.
    pub retain_alerts: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retain_alerts: DEFAULT_RETAIN_ALERTS,
        }
    }
}

/// `[fleet]`: enrolment, heartbeat and signed policy from the central server. Absent: none of
/// them (upload alone works as before).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// The server's origin (`https://host[:port]`); absent = the origin of `upload.url`. Use
    /// [`Config::fleet_server`] for the effective value.
    pub server: Option<String>,
    /// Used once to enrol; MDM may provide it instead.
    pub enroll_token: Option<Secret>,
    /// Standard base64 of the server's raw 32-byte Ed25519 policy key.
    pub policy_public_key: Option<String>,
    /// Pause between heartbeats (≥ 1).
    pub heartbeat_interval_ms: u64,
    /// Pause between policy checks (≥ 1).
    pub policy_interval_ms: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            server: None,
            enroll_token: None,
            policy_public_key: None,
            heartbeat_interval_ms: DEFAULT_FLEET_INTERVAL_MS,
            policy_interval_ms: DEFAULT_FLEET_INTERVAL_MS,
        }
    }
}

/// The whole configuration, defaults filled in, every value checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The sled store, host key and control socket live here (0700).
    pub state_dir: PathBuf,
    /// The shared-memory ring file (0600).
    pub ring_path: PathBuf,
    /// The ring's data size: a power of two within the ring's bounds.
    pub ring_capacity_bytes: u64,
    /// The machine's identity in alerts, entity ids and upload headers: printable ASCII.
    /// Absent: the machine id (the agent resolves it).
    pub host_id: Option<String>,
    /// An MDM-provisioned PKCS#8 Ed25519 key; absent = `state_dir/host.key`.
    pub key_file: Option<PathBuf>,
    pub rules: RulesConfig,
    pub sensor: SensorSection,
    pub upload: UploadConfig,
    pub store: StoreConfig,
    pub fleet: Option<FleetConfig>,
    /// The file this was read from; `None` = embedded defaults.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            ring_path: PathBuf::from(DEFAULT_RING_PATH),
            ring_capacity_bytes: DEFAULT_RING_CAPACITY,
            host_id: None,
            key_file: None,
            rules: RulesConfig::default(),
            sensor: SensorSection::default(),
            upload: UploadConfig::default(),
            store: StoreConfig::default(),
            fleet: None,
            source: None,
        }
    }
}

impl Config {
    /// Resolves the file (`explicit`, then `$NIGHTJAR_CONFIG`, then the platform path) and
    /// loads it.
    pub fn locate(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        if let Some(path) = explicit {
            return Config::from_file(path);
        }
        if let Some(env) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
            return Config::from_file(Path::new(&env));
        }
        let platform = Path::new(PLATFORM_CONFIG_PATH);
        match std::fs::read_to_string(platform) {
            Ok(text) => Config::parse(&text, platform),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: platform.to_path_buf(),
                source,
            }),
        }
    }

    /// Loads a file that must exist.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| position::from_toml(path, text, &e))?;
        config.source = Some(path.to_path_buf());
        config.check().map_err(|bad| ConfigError::Invalid {
            path: path.to_path_buf(),
            at: position::of_key(text, &bad.key),
            key: bad.key,
            message: bad.message,
        })?;
        Ok(config)
    }

    /// Checks every value again, after something other than the file changed them (the
    /// agent's managed preferences); `origin` names what did in the error.
    pub fn revalidate(&self, origin: &str) -> Result<(), ConfigError> {
        self.check().map_err(|bad| ConfigError::Invalid {
            path: PathBuf::from(format!("{} (with {origin})", self.source_name())),
            at: None,
            key: bad.key,
            message: bad.message,
        })
    }

    /// The effective upload endpoint: `upload.url`, else `[fleet] server` + `/v1/alerts`.
    pub fn upload_url(&self) -> Option<String> {
        if let Some(url) = &self.upload.url {
            return Some(url.clone());
        }
        let server = self.fleet.as_ref()?.server.as_deref()?;
        Some(format!("{}/v1/alerts", server.trim_end_matches('/')))
    }

    /// The effective fleet server origin: `[fleet] server`, else the origin of `upload.url`;
    /// `None` when there is no `[fleet]` section.
    pub fn fleet_server(&self) -> Option<String> {
        let fleet = self.fleet.as_ref()?;
        if let Some(server) = &fleet.server {
            return Some(server.trim_end_matches('/').to_owned());
        }
        check::origin(self.upload.url.as_deref()?).ok()
    }

    /// The config file's name for messages ("embedded defaults" when there was none).
    pub fn source_name(&self) -> String {
        match &self.source {
            Some(p) => p.display().to_string(),
            None => format!("embedded defaults ({PLATFORM_CONFIG_PATH} absent)"),
        }
    }

    /// The control socket the CLI talks to.
    pub fn control_socket(&self) -> PathBuf {
        self.state_dir.join("control.sock")
    }

    /// The sled database directory.
    pub fn store_dir(&self) -> PathBuf {
        self.state_dir.join("alerts.sled")
    }

    /// The generated host key, when `key_file` is not set.
    pub fn generated_key_path(&self) -> PathBuf {
        self.state_dir.join("host.key")
    }
}

#[cfg(test)]
mod tests;
