//! Settings an MDM pushes to macOS hosts (the `com.nightjar.agent` payload of a configuration
//! profile), read from the managed preferences property list.
//!
//! Fleets configure the collector URL, its CA, the host id policy and the central server with
//! its enrolment token and policy key centrally, without editing
//! a file on every Mac: macOS materialises the payload as
//! `/Library/Managed Preferences/com.nightjar.agent.plist` (root-owned, not writable by users).
//! These values override the TOML config. The parser runs on every platform so it can be tested
//! anywhere; only [`load`] is tied to macOS. The agent and the sensor both apply it
//! ([`ManagedSettings::apply`]): the sensor needs the pinned policy key to verify the kept
//! policy whose `block` list it enforces.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use plist::Value;

/// Where macOS writes the device-scope managed preferences of the `com.nightjar.agent` domain.
pub const MACOS_MANAGED_PREFS_PATH: &str = "/Library/Managed Preferences/com.nightjar.agent.plist";

/// A managed preferences file is a few hundred bytes; anything beyond this is not one.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Overrides from the MDM: each `Some` replaces the corresponding config value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManagedSettings {
    /// `upload.url`: the collector endpoint.
    pub upload_url: Option<String>,
    /// `upload.ca_file`: an extra CA (PEM) trusted for the collector; must be absolute.
    pub upload_ca_file: Option<PathBuf>,
    /// `host_id`: the fleet's identifier for this Mac (e.g. the MDM's `$SERIALNUMBER`).
    pub host_id: Option<String>,
    /// `upload.allow_insecure_http`: permit a plain `http://` collector (test fleets only).
    pub allow_insecure_http: Option<bool>,
    /// `fleet.server`: the central server's origin; setting it turns the fleet side on.
    pub fleet_server: Option<String>,
    /// `fleet.enroll_token`: the enrolment token (limited in uses and lifetime).
    pub enroll_token: Option<String>,
    /// `fleet.policy_public_key`: the server's policy key (standard base64 of the raw
    /// 32-byte Ed25519 key, `nightjar-server policy key`); the agent accepts policies signed
    /// by it alone.
    pub policy_public_key: Option<String>,
}

impl ManagedSettings {
    /// Applies these settings over the file's values.
    pub fn apply(self, config: &mut crate::config::Config) {
        if let Some(url) = self.upload_url {
            config.upload.url = Some(url);
        }
        if let Some(ca) = self.upload_ca_file {
            config.upload.ca_file = Some(ca);
        }
        if let Some(id) = self.host_id {
            config.host_id = Some(id);
        }
        if let Some(insecure) = self.allow_insecure_http {
            config.upload.allow_insecure_http = insecure;
        }
        if self.fleet_server.is_some()
            || self.enroll_token.is_some()
            || self.policy_public_key.is_some()
        {
            let fleet = config.fleet.get_or_insert_with(Default::default);
            if let Some(server) = self.fleet_server {
                fleet.server = Some(server);
            }
            if let Some(token) = self.enroll_token {
                fleet.enroll_token = Some(crate::config::Secret::new(token));
            }
            if let Some(key) = self.policy_public_key {
                fleet.policy_public_key = Some(key);
            }
        }
    }
}

/// Why the managed preferences could not be used; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ManagedPrefsError {
    #[error("{}: cannot read managed preferences: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: managed preferences larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: not a property list: {source}", path.display())]
    Parse { path: PathBuf, source: plist::Error },
    #[error("{}: the top level must be a dictionary", path.display())]
    NotADictionary { path: PathBuf },
    #[error("{}: unknown key `{key}`", path.display())]
    UnknownKey { path: PathBuf, key: String },
    #[error("{}: key `{key}`: expected {expected}", path.display())]
    WrongType {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },
    #[error("{}: key `{key}`: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        reason: &'static str,
    },
}

/// Reads the managed preferences of this platform: the macOS path on macOS, nothing elsewhere
/// (Linux hosts are configured through the TOML file only).
pub fn load() -> Result<Option<ManagedSettings>, ManagedPrefsError> {
    if cfg!(target_os = "macos") {
        load_from(Path::new(MACOS_MANAGED_PREFS_PATH))
    } else {
        Ok(None)
    }
}

/// Parses a managed preferences property list (XML or binary). `Ok(None)` when the file does
/// not exist, i.e. no profile carries a `com.nightjar.agent` payload.
///
/// `Payload*` keys are profile bookkeeping some MDMs leave in the domain and are ignored; any
/// other unknown key is an error, so a misspelt setting is reported instead of silently lost.
pub fn load_from(path: &Path) -> Result<Option<ManagedSettings>, ManagedPrefsError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ManagedPrefsError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ManagedPrefsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ManagedPrefsError::TooLarge {
            path: path.to_owned(),
        });
    }
    let value =
        Value::from_reader(io::Cursor::new(bytes)).map_err(|source| ManagedPrefsError::Parse {
            path: path.to_owned(),
            source,
        })?;
    parse(path, value).map(Some)
}

fn parse(path: &Path, value: Value) -> Result<ManagedSettings, ManagedPrefsError> {
    let Value::Dictionary(dict) = value else {
        return Err(ManagedPrefsError::NotADictionary {
            path: path.to_owned(),
        });
    };
    let mut settings = ManagedSettings::default();
    for (key, value) in dict {
        match key.as_str() {
            "upload_url" => settings.upload_url = Some(non_empty_string(path, &key, value)?),
            "upload_ca_file" => {
                let file = PathBuf::from(non_empty_string(path, &key, value)?);
                if !file.is_absolute() {
                    return Err(invalid(path, &key, "must be an absolute path"));
                }
                settings.upload_ca_file = Some(file);
            }
            "host_id" => settings.host_id = Some(non_empty_string(path, &key, value)?),
            "fleet_server" => settings.fleet_server = Some(non_empty_string(path, &key, value)?),
            "enroll_token" => settings.enroll_token = Some(non_empty_string(path, &key, value)?),
            "policy_public_key" => {
                settings.policy_public_key = Some(non_empty_string(path, &key, value)?)
            }
            "allow_insecure_http" => match value {
                Value::Boolean(b) => settings.allow_insecure_http = Some(b),
                _ => return Err(wrong_type(path, &key, "a boolean")),
            },
            k if k.starts_with("Payload") => {}
            _ => {
                return Err(ManagedPrefsError::UnknownKey {
                    path: path.to_owned(),
                    key,
                });
            }
        }
    }
    Ok(settings)
}

fn non_empty_string(path: &Path, key: &str, value: Value) -> Result<String, ManagedPrefsError> {
    match value {
        Value::String(s) if s.trim().is_empty() => Err(invalid(path, key, "must not be empty")),
        Value::String(s) => Ok(s),
        _ => Err(wrong_type(path, key, "a string")),
    }
}

fn wrong_type(path: &Path, key: &str, expected: &'static str) -> ManagedPrefsError {
    ManagedPrefsError::WrongType {
        path: path.to_owned(),
        key: key.to_owned(),
        expected,
    }
}

fn invalid(path: &Path, key: &str, reason: &'static str) -> ManagedPrefsError {
    ManagedPrefsError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, body: &str) -> PathBuf {
        let path = dir.path().join("com.nightjar.agent.plist");
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
             \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\"><dict>{body}</dict></plist>\n"
        );
        std::fs::write(&path, xml).unwrap();
        path
    }

    #[test]
    fn absent_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_from(&dir.path().join("missing.plist")).unwrap(), None);
    }

    #[test]
    fn reads_every_key_from_xml() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "<key>upload_url</key><string>https://collector.example.com/v1/alerts</string>\
             <key>upload_ca_file</key><string>/Library/Application Support/Nightjar/ca.pem</string>\
             <key>host_id</key><string>C02XK0AAJGH6</string>\
             <key>allow_insecure_http</key><false/>\
             <key>fleet_server</key><string>https://nightjar.example.com</string>\
             <key>enroll_token</key><string>nje_secret</string>\
             <key>policy_public_key</key><string>c2VydmVyLXBvbGljeS1rZXktMzItYnl0ZXMtbG9uZyE=</string>\
             <key>PayloadUUID</key><string>2B1F0A4E-0000-4000-8000-000000000001</string>",
        );
        let s = load_from(&path).unwrap().unwrap();
        assert_eq!(
            s.upload_url.as_deref(),
            Some("https://collector.example.com/v1/alerts")
        );
        assert_eq!(
            s.upload_ca_file.as_deref(),
            Some(Path::new("/Library/Application Support/Nightjar/ca.pem"))
        );
        assert_eq!(s.host_id.as_deref(), Some("C02XK0AAJGH6"));
        assert_eq!(s.allow_insecure_http, Some(false));
        assert_eq!(
            s.fleet_server.as_deref(),
            Some("https://nightjar.example.com")
        );
        assert_eq!(s.enroll_token.as_deref(), Some("nje_secret"));
        assert_eq!(
            s.policy_public_key.as_deref(),
            Some("c2VydmVyLXBvbGljeS1rZXktMzItYnl0ZXMtbG9uZyE=")
        );
    }

    #[test]
    fn missing_keys_stay_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "<key>host_id</key><string>mac-1</string>");
        let s = load_from(&path).unwrap().unwrap();
        assert_eq!(
            s,
            ManagedSettings {
                host_id: Some("mac-1".into()),
                ..ManagedSettings::default()
            }
        );
    }

    #[test]
    fn reads_binary_plists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("binary.plist");
        let mut dict = plist::Dictionary::new();
        dict.insert("allow_insecure_http".into(), Value::Boolean(true));
        dict.insert(
            "upload_url".into(),
            Value::String("http://10.0.0.5/a".into()),
        );
        Value::Dictionary(dict).to_file_binary(&path).unwrap();
        let s = load_from(&path).unwrap().unwrap();
        assert_eq!(s.allow_insecure_http, Some(true));
        assert_eq!(s.upload_url.as_deref(), Some("http://10.0.0.5/a"));
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "<key>upload_uri</key><string>https://x</string>");
        let err = load_from(&path).unwrap_err();
        assert!(
            matches!(err, ManagedPrefsError::UnknownKey { ref key, .. } if key == "upload_uri")
        );
        let msg = err.to_string();
        assert!(msg.contains("upload_uri"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn wrong_types_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "<key>allow_insecure_http</key><string>yes</string>");
        let err = load_from(&path).unwrap_err();
        assert!(
            matches!(err, ManagedPrefsError::WrongType { ref key, expected: "a boolean", .. } if key == "allow_insecure_http")
        );
        let path = write(&dir, "<key>host_id</key><integer>7</integer>");
        assert!(matches!(
            load_from(&path).unwrap_err(),
            ManagedPrefsError::WrongType {
                expected: "a string",
                ..
            }
        ));
    }

    #[test]
    fn relative_ca_file_and_empty_values_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "<key>upload_ca_file</key><string>ca.pem</string>");
        let msg = load_from(&path).unwrap_err().to_string();
        assert!(
            msg.contains("upload_ca_file") && msg.contains("absolute"),
            "{msg}"
        );
        let path = write(&dir, "<key>upload_url</key><string>  </string>");
        assert!(matches!(
            load_from(&path).unwrap_err(),
            ManagedPrefsError::Invalid { .. }
        ));
    }

    #[test]
    fn malformed_and_non_dictionary_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.plist");
        std::fs::write(&path, "<?xml version=\"1.0\"?><plist><dict><key>a</key>").unwrap();
        let err = load_from(&path).unwrap_err();
        assert!(matches!(err, ManagedPrefsError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("broken.plist"));

        let path = dir.path().join("array.plist");
        Value::Array(vec![Value::Boolean(true)])
            .to_file_xml(&path)
            .unwrap();
        assert!(matches!(
            load_from(&path).unwrap_err(),
            ManagedPrefsError::NotADictionary { .. }
        ));
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.plist");
        std::fs::write(&path, vec![b' '; (MAX_FILE_BYTES + 10) as usize]).unwrap();
        assert!(matches!(
            load_from(&path).unwrap_err(),
            ManagedPrefsError::TooLarge { .. }
        ));
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn load_is_none_off_macos() {
        assert_eq!(load().unwrap(), None);
    }
}
