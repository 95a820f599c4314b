//! The sensor's view of the shared `nightjar.toml`.
//!
//! The sensor and the agent read one file. The sensor needs only the ring's path and size;
//! every other key the agent knows is accepted and ignored here, and anything unknown is
//! refused (naming the file and the key) so that a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use nightjar_proto::shm_ring::{MAX_CAPACITY, MIN_CAPACITY};
use toml::{Table, Value};

/// Where the ring lives when the config does not say.
pub const DEFAULT_RING_PATH: &str = "/var/run/nightjar/events.ring";
/// The ring's size when the config does not say (64 MiB).
pub const DEFAULT_RING_CAPACITY: u64 = 64 * 1024 * 1024;
/// Environment variable naming the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "NIGHTJAR_CONFIG";

/// The platform's default config path.
#[cfg(target_os = "macos")]
pub const DEFAULT_CONFIG_PATH: &str = "/Library/Application Support/Nightjar/nightjar.toml";
/// The platform's default config path.
#[cfg(not(target_os = "macos"))]
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nightjar/nightjar.toml";

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "ring_path",
    "ring_capacity_bytes",
    "host_id",
    "key_file",
    "rules",
    "upload",
    "store",
];
const RULES_KEYS: &[&str] = &["paths", "builtin", "max_signals"];
const STORE_KEYS: &[&str] = &["retain_alerts"];
const UPLOAD_KEYS: &[&str] = &[
    "url",
    "interval_ms",
    "batch_max",
    "ca_file",
    "allow_insecure_http",
];

/// What the sensor takes from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorConfig {
    /// The file the values came from; `None` for the embedded defaults.
    pub source: Option<PathBuf>,
    pub ring_path: PathBuf,
    pub ring_capacity_bytes: u64,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            source: None,
            ring_path: PathBuf::from(DEFAULT_RING_PATH),
            ring_capacity_bytes: DEFAULT_RING_CAPACITY,
        }
    }
}

/// A config that cannot be used; always names the file and, where one is at fault, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not valid TOML: {reason}")]
    Parse { file: PathBuf, reason: String },
    #[error("{file}: unknown key `{key}`")]
    UnknownKey { file: PathBuf, key: String },
    #[error("{file}: key `{key}`: {reason}")]
    BadValue {
        file: PathBuf,
        key: String,
        reason: String,
    },
}

impl SensorConfig {
    /// Finds and loads the config: `explicit` (`--config`), else `$NIGHTJAR_CONFIG`, else the
    /// platform path. A missing file is an error when named explicitly; at the default path it
    /// means the embedded defaults.
    pub fn locate(explicit: Option<&Path>) -> Result<SensorConfig, ConfigError> {
        if let Some(path) = explicit {
            return SensorConfig::load(path);
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return SensorConfig::load(Path::new(&path));
        }
        let default = Path::new(DEFAULT_CONFIG_PATH);
        match std::fs::metadata(default) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(SensorConfig::default()),
            _ => SensorConfig::load(default),
        }
    }

    /// Loads one file.
    pub fn load(path: &Path) -> Result<SensorConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        SensorConfig::parse(&text, path)
    }

    /// Parses config text; `file` is only used to name errors.
    pub fn parse(text: &str, file: &Path) -> Result<SensorConfig, ConfigError> {
        let table: Table = text
            .parse()
            .map_err(|err: toml::de::Error| ConfigError::Parse {
                file: file.to_path_buf(),
                reason: err.to_string().trim_end().to_owned(),
            })?;
        check_keys(&table, TOP_KEYS, "", file)?;
        for (section, keys) in [
            ("rules", RULES_KEYS),
            ("upload", UPLOAD_KEYS),
            ("store", STORE_KEYS),
        ] {
            match table.get(section) {
                None => {}
                Some(Value::Table(sub)) => check_keys(sub, keys, section, file)?,
                Some(other) => {
                    return Err(bad(
                        file,
                        section,
                        format!("expected a table, found {}", other.type_str()),
                    ));
                }
            }
        }
        let mut config = SensorConfig {
            source: Some(file.to_path_buf()),
            ..SensorConfig::default()
        };
        match table.get("ring_path") {
            None => {}
            Some(Value::String(s)) if s.is_empty() => {
                return Err(bad(file, "ring_path", "must not be empty".into()));
            }
            Some(Value::String(s)) => config.ring_path = PathBuf::from(s),
            Some(other) => {
                return Err(bad(
                    file,
                    "ring_path",
                    format!("expected a string, found {}", other.type_str()),
                ));
            }
        }
        match table.get("ring_capacity_bytes") {
            None => {}
            Some(Value::Integer(n)) => {
                let n = u64::try_from(*n).unwrap_or(0);
                if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&n) || !n.is_power_of_two() {
                    return Err(bad(
                        file,
                        "ring_capacity_bytes",
                        format!(
                            "must be a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}, not {n}"
                        ),
                    ));
                }
                config.ring_capacity_bytes = n;
            }
            Some(other) => {
                return Err(bad(
                    file,
                    "ring_capacity_bytes",
                    format!("expected an integer, found {}", other.type_str()),
                ));
            }
        }
        Ok(config)
    }
}

fn check_keys(
    table: &Table,
    known: &[&str],
    section: &str,
    file: &Path,
) -> Result<(), ConfigError> {
    match table.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(ConfigError::UnknownKey {
            file: file.to_path_buf(),
            key: if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            },
        }),
    }
}

fn bad(file: &Path, key: &str, reason: String) -> ConfigError {
    ConfigError::BadValue {
        file: file.to_path_buf(),
        key: key.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SensorConfig, ConfigError> {
        SensorConfig::parse(text, Path::new("/etc/nightjar/nightjar.toml"))
    }

    #[test]
    fn full_agent_config_is_accepted_and_ring_keys_read() {
        let config = parse(
            r#"
state_dir = "/var/db/nightjar"
ring_path = "/tmp/x.ring"
ring_capacity_bytes = 1048576
host_id = "h"
[rules]
paths = ["/etc/nightjar/rules"]
builtin = true
max_signals = 100
[upload]
url = "https://collector.example.com/v1/alerts"
interval_ms = 1000
batch_max = 500
ca_file = "/etc/nightjar/ca.pem"
allow_insecure_http = false
[store]
retain_alerts = 100000
"#,
        )
        .unwrap();
        assert_eq!(config.ring_path, PathBuf::from("/tmp/x.ring"));
        assert_eq!(config.ring_capacity_bytes, 1_048_576);
    }

    #[test]
    fn empty_file_means_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config.ring_path, PathBuf::from(DEFAULT_RING_PATH));
        assert_eq!(config.ring_capacity_bytes, DEFAULT_RING_CAPACITY);
    }

    #[test]
    fn errors_name_file_and_key() {
        let err = parse("ring_pth = \"/x\"").unwrap_err().to_string();
        assert!(
            err.contains("/etc/nightjar/nightjar.toml") && err.contains("`ring_pth`"),
            "{err}"
        );
        let err = parse("[upload]\nurll = \"x\"").unwrap_err().to_string();
        assert!(err.contains("`upload.urll`"), "{err}");
        let err = parse("ring_capacity_bytes = \"big\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`ring_capacity_bytes`") && err.contains("integer"),
            "{err}"
        );
        for n in ["12", "1000000", "-1"] {
            let err = parse(&format!("ring_capacity_bytes = {n}"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("`ring_capacity_bytes`") && err.contains("power of two"),
                "{err}"
            );
        }
        let err = parse("ring_path = 3").unwrap_err().to_string();
        assert!(err.contains("`ring_path`"), "{err}");
        let err = parse("rules = 3").unwrap_err().to_string();
        assert!(err.contains("`rules`"), "{err}");
        let err = parse("ring_path = ").unwrap_err().to_string();
        assert!(err.contains("not valid TOML"), "{err}");
    }
}
