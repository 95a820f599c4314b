//! The agent configuration: TOML keys, defaults, `--config` / `$NIGHTJAR_CONFIG` / platform path.
//!
//! Keys (DESIGN.md, "Command-line contract"), with the embedded defaults:
//!
//! | key | default |
//! |---|---|
//! | `state_dir` | Linux `/var/lib/nightjar`, macOS `/var/db/nightjar` |
//! | `ring_path` | Linux `/run/nightjar/events.ring`, macOS `/var/run/nightjar/events.ring` |
//! | `ring_capacity_bytes` | 67108864 |
//! | `host_id` | Linux `/etc/machine-id`, macOS the IOPlatformUUID (else `kern.uuid`) |
//! | `key_file` | absent: the host key is `state_dir/host.key`, generated on first start; set it to a PKCS#8 Ed25519 key (DER or PEM, mode 0600) provisioned by MDM |
//! | `[rules] paths` | `[]` |
//! | `[rules] builtin` | `true` |
//! | `[rules] max_signals` | absent: each rule's own cap; `0` = no cap |
//! | `[upload] url` | absent: upload off |
//! | `[upload] interval_ms` | 1000 |
//! | `[upload] batch_max` | 500 |
//! | `[upload] ca_file` | absent: system roots only |
//! | `[upload] allow_insecure_http` | `false` |
//!
//! Which file: `--config F`, else `$NIGHTJAR_CONFIG`, else the platform path
//! ([`PLATFORM_CONFIG_PATH`]). On macOS, settings an MDM pushes as managed preferences
//! (`com.nightjar.agent`, see [`crate::managed_prefs`]) are applied on top of the file: the
//! fleet's policy wins over a local edit. A missing platform file means the embedded defaults; a missing
//! file that was named explicitly is an error. Unknown keys and wrong types are errors that
//! name the file, the key and its line:column (exit code 2).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the config lives when neither `--config` nor `$NIGHTJAR_CONFIG` names one.
#[cfg(target_os = "macos")]
pub const PLATFORM_CONFIG_PATH: &str = "/Library/Application Support/Nightjar/nightjar.toml";
/// Where the config lives when neither `--config` nor `$NIGHTJAR_CONFIG` names one.
#[cfg(not(target_os = "macos"))]
pub const PLATFORM_CONFIG_PATH: &str = "/etc/nightjar/nightjar.toml";

#[cfg(target_os = "macos")]
const DEFAULT_STATE_DIR: &str = "/var/db/nightjar";
#[cfg(not(target_os = "macos"))]
const DEFAULT_STATE_DIR: &str = "/var/lib/nightjar";
#[cfg(target_os = "macos")]
const DEFAULT_RING_PATH: &str = "/var/run/nightjar/events.ring";
#[cfg(not(target_os = "macos"))]
const DEFAULT_RING_PATH: &str = "/run/nightjar/events.ring";

/// The environment variable that names the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "NIGHTJAR_CONFIG";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    #[error("{path}: key `{key}`: {message}")]
    Value {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error("key `host_id` is not set in {path} and the machine id could not be read: {reason}")]
    HostId { path: String, reason: String },
    #[error(transparent)]
    Managed(#[from] crate::managed_prefs::ManagedPrefsError),
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
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            paths: Vec::new(),
            builtin: true,
            max_signals: None,
        }
    }
}

/// `[upload]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Collector endpoint; absent = upload off.
    pub url: Option<String>,
    /// Pause between upload attempts while nothing is pending, in milliseconds.
    pub interval_ms: u64,
    /// Most envelopes per POST.
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

/// About 360 MB of disk and 8 MB of memory (sled keeps ~80 bytes per stored alert in
/// memory): months of alerts on a typical host, and a bound on a noisy one.
pub const DEFAULT_RETAIN_ALERTS: u64 = 100_000;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            retain_alerts: DEFAULT_RETAIN_ALERTS,
        }
    }
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The sled store, host key and control socket live here (0700).
    pub state_dir: PathBuf,
    /// The shared-memory ring the sensor writes.
    pub ring_path: PathBuf,
    /// Ring size used when the agent creates the ring file.
    pub ring_capacity_bytes: u64,
    /// This machine's identity in alerts and upload headers; see [`Config::host_id`].
    pub host_id: Option<String>,
    /// An MDM-provisioned PKCS#8 Ed25519 key; absent = `state_dir/host.key`.
    pub key_file: Option<PathBuf>,
    pub rules: RulesConfig,
    pub upload: UploadConfig,
    pub store: StoreConfig,
    /// The file this was read from; `None` = embedded defaults.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            ring_path: PathBuf::from(DEFAULT_RING_PATH),
            ring_capacity_bytes: 64 * 1024 * 1024,
            host_id: None,
            key_file: None,
            rules: RulesConfig::default(),
            upload: UploadConfig::default(),
            store: StoreConfig::default(),
            source: None,
        }
    }
}

impl Config {
    /// Resolves the file (`explicit`, then `$NIGHTJAR_CONFIG`, then the platform path) and
    /// loads it.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = Config::load_file(explicit)?;
        if let Some(managed) = crate::managed_prefs::load()? {
            config.apply_managed(managed);
        }
        Ok(config)
    }

    fn load_file(explicit: Option<&Path>) -> Result<Config, ConfigError> {
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

    /// Applies MDM-managed settings over the file's values.
    pub fn apply_managed(&mut self, managed: crate::managed_prefs::ManagedSettings) {
        if let Some(url) = managed.upload_url {
            self.upload.url = Some(url);
        }
        if let Some(ca) = managed.upload_ca_file {
            self.upload.ca_file = Some(ca);
        }
        if let Some(id) = managed.host_id {
            self.host_id = Some(id);
        }
        if let Some(insecure) = managed.allow_insecure_http {
            self.upload.allow_insecure_http = insecure;
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

    /// Parses config text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| invalid(path, text, &e))?;
        config.source = Some(path.to_path_buf());
        config.check(path)?;
        Ok(config)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let value = |key, message: &str| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            message: message.to_string(),
        };
        if self.state_dir.as_os_str().is_empty() {
            return Err(value("state_dir", "must not be empty"));
        }
        if self.ring_path.as_os_str().is_empty() {
            return Err(value("ring_path", "must not be empty"));
        }
        if self.host_id.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err(value("host_id", "must not be empty"));
        }
        if self.upload.batch_max == 0 {
            return Err(value("upload.batch_max", "must be at least 1"));
        }
        if self.upload.interval_ms == 0 {
            return Err(value("upload.interval_ms", "must be at least 1"));
        }
        Ok(())
    }

    /// The host id: the configured `host_id`, else the machine's own id.
    pub fn host_id(&self) -> Result<String, ConfigError> {
        if let Some(id) = &self.host_id {
            return Ok(id.trim().to_string());
        }
        machine_id().map_err(|reason| ConfigError::HostId {
            path: self.source_name(),
            reason,
        })
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

/// Turns a toml error into one naming the file, the key and line:column.
fn invalid(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let (line, column) = line_col(text, offset);
    let message = e.message().trim().to_string();
    let key = unknown_field(&message)
        .map(|field| qualify(text, offset, field))
        .unwrap_or_else(|| key_at(text, offset));
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        column,
        key,
        message,
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// serde reports an unknown key as "unknown field `name`, expected ...".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The dotted key whose value or name sits at `offset`: the `[table]` header above it plus
/// the name left of `=` on its line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    match line.split_once('=') {
        Some((name, _)) => qualify(text, offset, name.trim()),
        None => table_at(text, offset).unwrap_or_else(|| line.trim().to_string()),
    }
}

fn qualify(text: &str, offset: usize, name: &str) -> String {
    match table_at(text, offset) {
        Some(table) if !name.starts_with(&format!("{table}.")) => format!("{table}.{name}"),
        _ => name.to_string(),
    }
}

/// The `[table]` header in force at `offset`, if any.
fn table_at(text: &str, offset: usize) -> Option<String> {
    let offset = floor_boundary(text, offset);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[..line_end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
}

/// The machine's stable id: `/etc/machine-id` (Linux), the IOPlatformUUID (macOS).
fn machine_id() -> Result<String, String> {
    #[cfg(target_os = "macos")]
    {
        macos_platform_uuid()
    }
    #[cfg(not(target_os = "macos"))]
    {
        let path = "/etc/machine-id";
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        let id = text.trim();
        if id.is_empty() {
            return Err(format!("{path} is empty"));
        }
        Ok(id.to_string())
    }
}

#[cfg(target_os = "macos")]
fn macos_platform_uuid() -> Result<String, String> {
    use std::process::Command;
    let ioreg = Command::new("/usr/sbin/ioreg")
        .args(["-rd1", "-c", "IOPlatformExpertDevice"])
        .output();
    if let Ok(out) = ioreg
        && out.status.success()
        && let Some(uuid) = parse_ioreg_uuid(&String::from_utf8_lossy(&out.stdout))
    {
        return Ok(uuid);
    }
    let out = Command::new("/usr/sbin/sysctl")
        .args(["-n", "kern.uuid"])
        .output()
        .map_err(|e| format!("ioreg gave no IOPlatformUUID and sysctl kern.uuid failed: {e}"))?;
    let uuid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || uuid.is_empty() {
        return Err("ioreg gave no IOPlatformUUID and sysctl kern.uuid is empty".into());
    }
    Ok(uuid)
}

/// Finds `"IOPlatformUUID" = "…"` in `ioreg -rd1 -c IOPlatformExpertDevice` output.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
fn parse_ioreg_uuid(output: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        if key.trim().trim_matches('"') != "IOPlatformUUID" {
            return None;
        }
        let uuid = value.trim().trim_matches('"').trim();
        (!uuid.is_empty()).then(|| uuid.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/nightjar/test.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.state_dir, Config::default().state_dir);
        assert!(c.rules.builtin);
        assert_eq!(c.upload.batch_max, 500);
        assert_eq!(
            c.source.as_deref(),
            Some(Path::new("/etc/nightjar/test.toml"))
        );
    }

    #[test]
    fn every_documented_key_is_read() {
        let c = parse(
            r#"
state_dir = "/tmp/s"
ring_path = "/tmp/r"
ring_capacity_bytes = 1048576
host_id = "h-1"
key_file = "/tmp/k"
[rules]
paths = ["/a", "/b"]
builtin = false
max_signals = 0
[upload]
url = "https://c.example/v1/alerts"
interval_ms = 250
batch_max = 10
ca_file = "/tmp/ca.pem"
allow_insecure_http = true
[store]
retain_alerts = 500
"#,
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/tmp/s"));
        assert_eq!(c.ring_capacity_bytes, 1 << 20);
        assert_eq!(c.host_id().unwrap(), "h-1");
        assert_eq!(c.key_file, Some(PathBuf::from("/tmp/k")));
        assert_eq!(c.rules.paths.len(), 2);
        assert!(!c.rules.builtin);
        assert_eq!(c.rules.max_signals, Some(0));
        assert_eq!(c.upload.url.as_deref(), Some("https://c.example/v1/alerts"));
        assert_eq!(c.upload.interval_ms, 250);
        assert!(c.upload.allow_insecure_http);
        assert_eq!(c.store.retain_alerts, 500);
        assert_eq!(
            parse("").unwrap().store.retain_alerts,
            DEFAULT_RETAIN_ALERTS
        );
        let err = parse("[store]\nretain_alerts = \"all\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`store.retain_alerts`"), "{err}");
    }

    #[test]
    fn unknown_key_names_file_key_and_position() {
        let err = parse("state_dir = \"/x\"\n[rules]\nbuiltin = true\nmax_signal = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/etc/nightjar/test.toml:4:1:"), "{err}");
        assert!(err.contains("`rules.max_signal`"), "{err}");
    }

    #[test]
    fn unknown_top_level_key_is_refused() {
        let err = parse("state_dri = \"/x\"\n").unwrap_err().to_string();
        assert!(err.contains("test.toml:1:1"), "{err}");
        assert!(err.contains("`state_dri`"), "{err}");
    }

    #[test]
    fn wrong_type_names_file_and_key() {
        let err = parse("[upload]\nurl = \"https://x\"\nbatch_max = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test.toml:3:"), "{err}");
        assert!(err.contains("`upload.batch_max`"), "{err}");
        let err = parse("ring_capacity_bytes = -5\n").unwrap_err().to_string();
        assert!(err.contains("`ring_capacity_bytes`"), "{err}");
    }

    #[test]
    fn syntax_error_is_positioned() {
        let err = parse("state_dir = \n").unwrap_err().to_string();
        assert!(err.contains("test.toml:1:"), "{err}");
    }

    #[test]
    fn bad_values_are_refused_by_key() {
        let err = parse("[upload]\nbatch_max = 0\n").unwrap_err().to_string();
        assert!(err.contains("`upload.batch_max`"), "{err}");
        let err = parse("host_id = \" \"\n").unwrap_err().to_string();
        assert!(err.contains("`host_id`"), "{err}");
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let err = Config::load(Some(&missing)).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }

    #[test]
    fn ioreg_output_is_parsed() {
        let out = "+-o J316sAP  <class IOPlatformExpertDevice>\n    {\n      \"IOPlatformSerialNumber\" = \"X\"\n      \"IOPlatformUUID\" = \"1A2B3C4D-0000-1111-2222-333344445555\"\n    }\n";
        assert_eq!(
            parse_ioreg_uuid(out).as_deref(),
            Some("1A2B3C4D-0000-1111-2222-333344445555")
        );
        assert_eq!(parse_ioreg_uuid("nothing"), None);
    }

    #[test]
    fn managed_settings_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let plist = dir.path().join("com.nightjar.agent.plist");
        std::fs::write(
            &plist,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>upload_url</key><string>https://collector.example.com/v1/alerts</string>
<key>host_id</key><string>C02XK0AAJG5H</string>
</dict></plist>"#,
        )
        .unwrap();
        let mut c =
            parse("host_id = \"local\"\n[upload]\nurl = \"https://old.example.com/\"\n").unwrap();
        let managed = crate::managed_prefs::load_from(&plist).unwrap().unwrap();
        c.apply_managed(managed);
        assert_eq!(c.host_id().unwrap(), "C02XK0AAJG5H");
        assert_eq!(
            c.upload.url.as_deref(),
            Some("https://collector.example.com/v1/alerts")
        );
        assert!(!c.upload.allow_insecure_http);
    }
}
