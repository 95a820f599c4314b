//! The server configuration (`server.toml`): keys, defaults and the errors that name them.
//!
//! | key | default |
//! |---|---|
//! | `listen` | `0.0.0.0:8443` |
//! | `database_url` | `postgresql://nightjar@localhost/nightjar` |
//! | `tls_cert`, `tls_key` | `/etc/nightjar-server/tls.{crt,key}`; required unless `allow_insecure_http` |
//! | `allow_insecure_http` | `false`; `true` serves plain HTTP, and only on a loopback address |
//! | `state_dir` | `/var/lib/nightjar-server` (the policy key) |
//! | `silent_after` | `15m` |
//! | `max_body_bytes` | 8388608 |
//! | `db_pool_size` | 16 (connections per server process) |
//! | `session_lifetime` | `8h` (console sign-in) |
//!
//! Which file: `--config F`, else `$NIGHTJAR_SERVER_CONFIG`, else [`DEFAULT_CONFIG_PATH`].
//! Unknown keys and wrong types are errors naming the file, line:column and key (exit 2).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the config lives when neither `--config` nor `$NIGHTJAR_SERVER_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/nightjar-server/server.toml";
/// The environment variable that names the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "NIGHTJAR_SERVER_CONFIG";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {}{message}", key.as_ref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        /// The key on that line, when there is one (a wrong type, a bad value).
        key: Option<String>,
        message: String,
    },
    #[error("{path}: key `{key}`: {message}")]
    Value {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    database_url: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allow_insecure_http: Option<bool>,
    state_dir: Option<PathBuf>,
    silent_after: Option<String>,
    max_body_bytes: Option<u64>,
    db_pool_size: Option<u32>,
    session_lifetime: Option<String>,
}

/// How the server is reached: TLS with a certificate, or plain HTTP on loopback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tls { cert: PathBuf, key: PathBuf },
    InsecureHttp,
}

/// The validated configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// May carry a password: never logged or printed (see the `Debug` impl).
    pub database_url: String,
    pub transport: Transport,
    pub state_dir: PathBuf,
    pub silent_after: Duration,
    pub max_body_bytes: usize,
    pub db_pool_size: usize,
    pub session_lifetime: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("path", &self.path)
            .field("listen", &self.listen)
            .field("database_url", &"<redacted>")
            .field("transport", &self.transport)
            .field("state_dir", &self.state_dir)
            .field("silent_after", &self.silent_after)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// Loads `explicit`, else `$NIGHTJAR_SERVER_CONFIG`, else the default path. Every file
    /// must exist: a server with no configuration would listen on defaults nobody chose.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None => std::env::var_os(CONFIG_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Config::parse(&path, &text)
    }

    /// Parses and validates `text` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            let (line, column) = line_col(text, offset);
            ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                key: key_on_line(text, line),
                message: e.message().trim().to_string(),
            }
        })?;
        let bad = |key: &'static str, message: String| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            message,
        };
        let listen_text = raw.listen.as_deref().unwrap_or("0.0.0.0:8443");
        let listen: SocketAddr = listen_text.parse().map_err(|e| {
            bad(
                "listen",
                format!("{listen_text:?} is not ADDRESS:PORT: {e}"),
            )
        })?;
        let database_url = raw
            .database_url
            .unwrap_or_else(|| "postgresql://nightjar@localhost/nightjar".into());
        database_url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| bad("database_url", format!("not a PostgreSQL URL: {e}")))?;
        let insecure = raw.allow_insecure_http.unwrap_or(false);
        let transport = if insecure {
            if raw.tls_cert.is_some() || raw.tls_key.is_some() {
                return Err(bad(
                    "allow_insecure_http",
                    "is true while tls_cert/tls_key are set; choose one".into(),
                ));
            }
            if !listen.ip().is_loopback() {
                return Err(bad(
                    "allow_insecure_http",
                    format!("plain HTTP is served on loopback only, and listen is {listen}"),
                ));
            }
            Transport::InsecureHttp
        } else {
            Transport::Tls {
                cert: raw
                    .tls_cert
                    .unwrap_or_else(|| "/etc/nightjar-server/tls.crt".into()),
                key: raw
                    .tls_key
                    .unwrap_or_else(|| "/etc/nightjar-server/tls.key".into()),
            }
        };
        let silent_after = duration(raw.silent_after.as_deref().unwrap_or("15m"))
            .map_err(|m| bad("silent_after", m))?;
        let session_lifetime = duration(raw.session_lifetime.as_deref().unwrap_or("8h"))
            .map_err(|m| bad("session_lifetime", m))?;
        let max_body_bytes = raw.max_body_bytes.unwrap_or(8 * 1024 * 1024);
        if !(1024..=1 << 30).contains(&max_body_bytes) {
            return Err(bad(
                "max_body_bytes",
                format!("{max_body_bytes} is outside 1024..=1073741824"),
            ));
        }
        let db_pool_size = raw.db_pool_size.unwrap_or(16);
        if !(1..=512).contains(&db_pool_size) {
            return Err(bad(
                "db_pool_size",
                format!("{db_pool_size} is outside 1..=512"),
            ));
        }
        Ok(Config {
            path: path.to_path_buf(),
            listen,
            database_url,
            transport,
            state_dir: raw
                .state_dir
                .unwrap_or_else(|| "/var/lib/nightjar-server".into()),
            silent_after,
            max_body_bytes: max_body_bytes as usize,
            db_pool_size: db_pool_size as usize,
            session_lifetime,
        })
    }
}

/// `30s`, `15m`, `2h`, `7d` (a positive number and one unit).
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?}: missing unit (s, m, h or d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number followed by s, m, h or d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{text:?}: unknown unit {other:?} (s, m, h or d)")),
    };
    match n.checked_mul(secs) {
        Some(0) => Err(format!("{text:?}: must be more than zero")),
        Some(s) if s <= 100 * 365 * 86_400 => Ok(Duration::from_secs(s)),
        _ => Err(format!("{text:?}: longer than 100 years")),
    }
}

/// The key a `key = value` line (1-based) assigns, if it is one.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (key, _) = l.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('#')).then(|| key.to_string())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("server.toml"), text)
    }

    #[test]
    fn defaults_fill_every_key() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "0.0.0.0:8443".parse().unwrap());
        assert_eq!(c.silent_after, Duration::from_secs(900));
        assert_eq!(c.max_body_bytes, 8_388_608);
        assert!(matches!(c.transport, Transport::Tls { .. }));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("listen = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("server.toml") && e.contains("`listen`"), "{e}");
        let e = parse("\nbogus = 1\n").unwrap_err().to_string();
        assert!(
            e.starts_with("server.toml:2:1:") && e.contains("bogus"),
            "{e}"
        );
        let e = parse("silent_after = \"5 weeks\"").unwrap_err().to_string();
        assert!(e.contains("silent_after"), "{e}");
        let e = parse("max_body_bytes = \"big\"").unwrap_err().to_string();
        assert!(
            e.contains("server.toml:1:") && e.contains("`max_body_bytes`"),
            "{e}"
        );
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let e = parse("allow_insecure_http = true").unwrap_err().to_string();
        assert!(e.contains("loopback"), "{e}");
        let c = parse("allow_insecure_http = true\nlisten = \"127.0.0.1:0\"").unwrap();
        assert_eq!(c.transport, Transport::InsecureHttp);
    }

    #[test]
    fn the_database_password_is_not_in_debug_output() {
        let c = parse("database_url = \"postgresql://u:hunter2@db/x\"").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
