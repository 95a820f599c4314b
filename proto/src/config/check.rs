//! Value checks that types alone do not express: bounds, non-empty strings, URL schemes and
//! the shape of keys. Each failure names the dotted key it is about.

use std::collections::HashSet;

use base64::Engine as _;

use super::Config;
use crate::shm_ring::{MAX_CAPACITY, MIN_CAPACITY};

/// Most environment variable names `[sensor] env_vars` may list: each is copied out of every
/// new image's environment, so the list stays short.
pub const MAX_ENV_VARS: usize = 16;
/// Longest environment variable name `[sensor] env_vars` accepts, in bytes.
pub const MAX_ENV_VAR_NAME: usize = 64;

/// One value that failed its check.
#[derive(Debug)]
pub(super) struct Bad {
    pub key: String,
    pub message: String,
}

fn bad(key: impl Into<String>, message: impl Into<String>) -> Bad {
    Bad {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    pub(super) fn check(&self) -> Result<(), Bad> {
        if self.state_dir.as_os_str().is_empty() {
            return Err(bad("state_dir", "must not be empty"));
        }
        if self.ring_path.as_os_str().is_empty() {
            return Err(bad("ring_path", "must not be empty"));
        }
        // Root-only state is checked from `/` down (`trusted_dir`): a relative path would
        // depend on the working directory.
        for (key, path) in [
            ("state_dir", &self.state_dir),
            ("ring_path", &self.ring_path),
        ] {
            if !path.is_absolute() {
                return Err(bad(key, "must be an absolute path"));
            }
        }
        let cap = self.ring_capacity_bytes;
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&cap) || !cap.is_power_of_two() {
            return Err(bad(
                "ring_capacity_bytes",
                format!(
                    "must be a power of two between {MIN_CAPACITY} and {MAX_CAPACITY}, not {cap}"
                ),
            ));
        }
        if let Some(id) = &self.host_id {
            if id.trim().is_empty() {
                return Err(bad("host_id", "must not be empty"));
            }
            if !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err(bad(
                    "host_id",
                    "must be printable ASCII (it is sent as an HTTP header)",
                ));
            }
        }
        if self
            .key_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(bad("key_file", "must not be empty"));
        }
        self.check_rules()?;
        check_env_vars(&self.sensor.env_vars)?;
        self.check_upload()?;
        self.check_fleet()
    }

    fn check_rules(&self) -> Result<(), Bad> {
        if self.rules.paths.iter().any(|p| p.as_os_str().is_empty()) {
            return Err(bad("rules.paths", "paths must not be empty"));
        }
        if self
            .rules
            .exceptions
            .iter()
            .any(|p| p.as_os_str().is_empty())
        {
            return Err(bad("rules.exceptions", "paths must not be empty"));
        }
        let r = &self.rules;
        let within = |key: &str, v: u64, lo: u64, hi: u64| -> Result<(), Bad> {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(bad(key, format!("must be from {lo} to {hi}, found {v}")))
            }
        };
        let (lo, hi) = super::STATE_MAX_PER_RULE.into_inner();
        within(
            "rules.state_max_per_rule",
            r.state_max_per_rule.into(),
            lo.into(),
            hi.into(),
        )?;
        let (lo, hi) = super::STATE_MAX_BYTES.into_inner();
        within("rules.state_max_bytes", r.state_max_bytes, lo, hi)?;
        let (lo, hi) = super::REORDER_WINDOW_MS.into_inner();
        within(
            "rules.reorder_window_ms",
            r.reorder_window_ms.into(),
            lo.into(),
            hi.into(),
        )?;
        let (lo, hi) = super::NEW_TERMS_MAX_PER_RULE.into_inner();
        within(
            "rules.new_terms_max_per_rule",
            r.new_terms_max_per_rule.into(),
            lo.into(),
            hi.into(),
        )?;
        let mut seen = HashSet::new();
        for id in &self.rules.block {
            if id.trim().is_empty() {
                return Err(bad("rules.block", "rule ids must not be empty"));
            }
            if !seen.insert(id.as_str()) {
                return Err(bad(
                    "rules.block",
                    format!("rule id `{id}` is listed twice"),
                ));
            }
        }
        Ok(())
    }

    fn check_upload(&self) -> Result<(), Bad> {
        let upload = &self.upload;
        if let Some(url) = &upload.url {
            check_url(url, upload.allow_insecure_http).map_err(|m| bad("upload.url", m))?;
        }
        if upload.interval_ms == 0 {
            return Err(bad("upload.interval_ms", "must be at least 1"));
        }
        if upload.batch_max == 0 {
            return Err(bad("upload.batch_max", "must be at least 1"));
        }
        if upload
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(bad("upload.ca_file", "must not be empty"));
        }
        Ok(())
    }

    fn check_fleet(&self) -> Result<(), Bad> {
        let Some(fleet) = &self.fleet else {
            return Ok(());
        };
        match &fleet.server {
            Some(server) => {
                check_url(server, self.upload.allow_insecure_http)
                    .map_err(|m| bad("fleet.server", m))?;
                let origin = origin(server).map_err(|m| bad("fleet.server", m))?;
                if origin != server.trim_end_matches('/') {
                    return Err(bad(
                        "fleet.server",
                        format!(
                            "must be an origin (scheme://host[:port]) without a path, like `{origin}`"
                        ),
                    ));
                }
            }
            None if self.upload.url.is_none() => {
                return Err(bad(
                    "fleet.server",
                    "is required when upload.url is not set (the server is upload.url's origin otherwise)",
                ));
            }
            None => {}
        }
        if fleet
            .enroll_token
            .as_ref()
            .is_some_and(|t| t.expose().trim().is_empty())
        {
            return Err(bad("fleet.enroll_token", "must not be empty"));
        }
        if let Some(key) = &fleet.policy_public_key {
            match base64::engine::general_purpose::STANDARD.decode(key.trim()) {
                Ok(raw) if raw.len() == 32 => {}
                Ok(raw) => {
                    return Err(bad(
                        "fleet.policy_public_key",
                        format!(
                            "must decode to a 32-byte Ed25519 key, not {} bytes",
                            raw.len()
                        ),
                    ));
                }
                Err(e) => {
                    return Err(bad(
                        "fleet.policy_public_key",
                        format!("not standard base64: {e}"),
                    ));
                }
            }
        }
        if fleet.heartbeat_interval_ms == 0 {
            return Err(bad("fleet.heartbeat_interval_ms", "must be at least 1"));
        }
        if fleet.policy_interval_ms == 0 {
            return Err(bad("fleet.policy_interval_ms", "must be at least 1"));
        }
        Ok(())
    }
}

fn check_env_vars(names: &[String]) -> Result<(), Bad> {
    const KEY: &str = "sensor.env_vars";
    if names.len() > MAX_ENV_VARS {
        return Err(bad(
            KEY,
            format!("at most {MAX_ENV_VARS} names, not {}", names.len()),
        ));
    }
    let mut seen = HashSet::new();
    for name in names {
        let portable = name
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if name.is_empty() || !portable {
            return Err(bad(
                KEY,
                format!("`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            ));
        }
        if name.len() > MAX_ENV_VAR_NAME {
            return Err(bad(
                KEY,
                format!("`{name}` is longer than {MAX_ENV_VAR_NAME} bytes"),
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(bad(KEY, format!("`{name}` is listed twice")));
        }
    }
    Ok(())
}

/// The parts of an `http(s)://` URL the checks need.
struct Url<'a> {
    scheme: &'a str,
    /// `host[:port]`, without userinfo.
    host_port: &'a str,
}

fn split_url(url: &str) -> Result<Url<'_>, String> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("must not contain spaces or control characters".into());
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| "must be an absolute URL (https://host/...)".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    let port = match host_port.rsplit_once("]:") {
        Some((_, port)) => Some(port),
        None if !host_port.starts_with('[') => host_port.split_once(':').map(|(_, p)| p),
        None => None,
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("port `{port}` is not a number from 0 to 65535"));
    }
    Ok(Url { scheme, host_port })
}

/// An upload or server URL: `https://`, or `http://` only when allowed.
fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parts = split_url(url)?;
    match parts.scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if allow_insecure_http => Ok(()),
        "http" => Err("plain http:// is refused unless upload.allow_insecure_http = true".into()),
        other => Err(format!("scheme `{other}` is not https")),
    }
}

/// `scheme://host[:port]` of `url` (userinfo dropped: it is never part of an origin).
pub(super) fn origin(url: &str) -> Result<String, String> {
    let parts = split_url(url)?;
    Ok(format!(
        "{}://{}",
        parts.scheme.to_ascii_lowercase(),
        parts.host_port
    ))
}
