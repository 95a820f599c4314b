//! The agent's side of the configuration: the schema itself is shared with the sensor
//! ([`nightjar_proto::config`], where every key and default is listed); the agent adds what only
//! it does — the macOS managed-preferences overlay and the machine's host id.
//!
//! On macOS, settings an MDM pushes as managed preferences (`com.nightjar.agent`, see
//! [`crate::managed_prefs`]) are applied on top of the file: the fleet's policy wins over a
//! local edit. The result is checked again as a whole, so a managed value is held to the same
//! rules as one in the file.

pub use nightjar_proto::config::*;

/// Why the agent's configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    #[error(transparent)]
    File(#[from] ConfigError),
    #[error("key `host_id` is not set in {path} and the machine id could not be read: {reason}")]
    HostId { path: String, reason: String },
    #[error(transparent)]
    Managed(#[from] crate::managed_prefs::ManagedPrefsError),
}

/// Resolves the file (`explicit`, then `$NIGHTJAR_CONFIG`, then the platform path), loads
/// it and applies the managed preferences over it.
pub fn load(explicit: Option<&std::path::Path>) -> Result<Config, AgentConfigError> {
    let mut config = Config::locate(explicit)?;
    if let Some(managed) = crate::managed_prefs::load()? {
        apply_managed(&mut config, managed);
        config.revalidate("managed preferences")?;
    }
    Ok(config)
}

/// Applies MDM-managed settings over the file's values.
pub fn apply_managed(config: &mut Config, managed: crate::managed_prefs::ManagedSettings) {
    managed.apply(config);
}

/// The host id: the configured `host_id`, else the machine's own id.
pub fn host_id(config: &Config) -> Result<String, AgentConfigError> {
    if let Some(id) = &config.host_id {
        return Ok(id.trim().to_string());
    }
    machine_id().map_err(|reason| AgentConfigError::HostId {
        path: config.source_name(),
        reason,
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
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/nightjar/test.toml")).unwrap()
    }

    #[test]
    fn configured_host_id_wins() {
        assert_eq!(host_id(&parse("host_id = \" h-1 \"\n")).unwrap(), "h-1");
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
    fn managed_settings_override_the_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let plist = dir.path().join("com.nightjar.agent.plist");
        let write = |url: &str| {
            std::fs::write(
                &plist,
                format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0"><dict>
<key>upload_url</key><string>{url}</string>
<key>host_id</key><string>C02XK0AAJG5H</string>
</dict></plist>"#
                ),
            )
            .unwrap();
        };
        write("https://collector.example.com/v1/alerts");
        let mut c = parse("host_id = \"local\"\n[upload]\nurl = \"https://old.example.com/\"\n");
        apply_managed(
            &mut c,
            crate::managed_prefs::load_from(&plist).unwrap().unwrap(),
        );
        c.revalidate("managed preferences").unwrap();
        assert_eq!(host_id(&c).unwrap(), "C02XK0AAJG5H");
        assert_eq!(
            c.upload.url.as_deref(),
            Some("https://collector.example.com/v1/alerts")
        );
        assert!(!c.upload.allow_insecure_http);

        write("http://collector.example.com/v1/alerts");
        apply_managed(
            &mut c,
            crate::managed_prefs::load_from(&plist).unwrap().unwrap(),
        );
        let err = c.revalidate("managed preferences").unwrap_err().to_string();
        assert!(
            err.contains("managed preferences") && err.contains("`upload.url`"),
            "{err}"
        );
    }
}
