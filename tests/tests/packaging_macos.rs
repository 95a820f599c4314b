//! The macOS packaging: every property list parses, the MDM profiles are well formed and grant
//! what the daemons need, launchd starts what the package installs, and the filled agent
//! settings are accepted by the agent's own managed-preferences parser.

mod packaging_common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use plist::{Dictionary, Value};

use packaging_common::{files_with_extension, repo_root};

const SENSOR_ID: &str = "com.nightjar.sensor";
const MACOS_CONFIG: &str = "/Library/Application Support/Nightjar/nightjar.toml";

fn macos_dir() -> PathBuf {
    repo_root().join("packaging/macos")
}

fn load(path: &Path) -> Value {
    Value::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dict<'a>(v: &'a Value, what: &str) -> &'a Dictionary {
    v.as_dictionary()
        .unwrap_or_else(|| panic!("{what}: not a dictionary"))
}

fn string<'a>(d: &'a Dictionary, key: &str, what: &str) -> &'a str {
    d.get(key)
        .and_then(Value::as_string)
        .unwrap_or_else(|| panic!("{what}: no string `{key}`"))
}

fn profiles(dir: &Path) -> Vec<(PathBuf, Value)> {
    let found: Vec<_> = files_with_extension(dir, &["mobileconfig"])
        .into_iter()
        .map(|p| {
            let v = load(&p);
            (p, v)
        })
        .collect();
    assert!(
        found.len() >= 3,
        "expected the three Nightjar profiles in {}",
        dir.display()
    );
    found
}

/// The payloads (PayloadContent items) of every profile, with the file they came from.
fn payloads(profiles: &[(PathBuf, Value)]) -> Vec<(PathBuf, Dictionary)> {
    let mut out = Vec::new();
    for (path, v) in profiles {
        let top = dict(v, &path.display().to_string());
        let content = top
            .get("PayloadContent")
            .and_then(Value::as_array)
            .unwrap_or_else(|| panic!("{}: no PayloadContent array", path.display()));
        for item in content {
            out.push((path.clone(), dict(item, "payload").clone()));
        }
    }
    out
}

fn payload_of_type(profiles: &[(PathBuf, Value)], payload_type: &str) -> Dictionary {
    let matching: Vec<_> = payloads(profiles)
        .into_iter()
        .filter(|(_, p)| p.get("PayloadType").and_then(Value::as_string) == Some(payload_type))
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "exactly one {payload_type} payload expected"
    );
    matching.into_iter().next().unwrap().1
}

fn collect_uuids(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Dictionary(d) => {
            for (k, v) in d {
                if k == "PayloadUUID" {
                    out.push(v.as_string().expect("PayloadUUID is a string").to_owned());
                }
                collect_uuids(v, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_uuids(v, out)),
        _ => {}
    }
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        })
}

fn launchd_plists() -> BTreeMap<String, Dictionary> {
    let files = files_with_extension(&macos_dir().join("launchd"), &["plist"]);
    assert_eq!(files.len(), 2, "the sensor and agent launchd plists");
    files
        .iter()
        .map(|p| {
            let label = p.file_stem().unwrap().to_str().unwrap().to_owned();
            (label, dict(&load(p), &p.display().to_string()).clone())
        })
        .collect()
}

fn program_arguments(job: &Dictionary, label: &str) -> Vec<String> {
    job.get("ProgramArguments")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{label}: no ProgramArguments"))
        .iter()
        .map(|a| a.as_string().expect("arguments are strings").to_owned())
        .collect()
}

#[test]
fn every_property_list_under_packaging_parses() {
    let files = files_with_extension(
        &repo_root().join("packaging"),
        &["plist", "mobileconfig", "entitlements"],
    );
    // launchd x2, Info.plist, entitlements, three profiles.
    assert!(files.len() >= 7, "found only {files:?}");
    for f in &files {
        load(f);
    }
}

#[test]
fn payload_uuids_are_valid_and_unique_within_and_across_profiles() {
    let profiles = profiles(&macos_dir().join("profiles"));
    let mut uuids = Vec::new();
    for (_, v) in &profiles {
        collect_uuids(v, &mut uuids);
    }
    assert!(uuids.len() >= 2 * profiles.len(), "{uuids:?}");
    let unique: HashSet<_> = uuids.iter().collect();
    assert_eq!(
        unique.len(),
        uuids.len(),
        "duplicate PayloadUUID in {uuids:?}"
    );
    for u in &uuids {
        assert!(is_uuid(u), "not an upper-case UUID: {u}");
    }
}

#[test]
fn profiles_are_system_scoped_with_unique_identifiers() {
    let profiles = profiles(&macos_dir().join("profiles"));
    let mut identifiers = HashSet::new();
    for (path, v) in &profiles {
        let what = path.display().to_string();
        let top = dict(v, &what);
        assert_eq!(string(top, "PayloadType", &what), "Configuration");
        assert_eq!(string(top, "PayloadScope", &what), "System");
        assert!(identifiers.insert(string(top, "PayloadIdentifier", &what).to_owned()));
        assert_eq!(
            top.get("PayloadVersion").and_then(Value::as_signed_integer),
            Some(1)
        );
    }
    for (path, p) in payloads(&profiles) {
        let what = path.display().to_string();
        string(&p, "PayloadType", &what);
        assert!(identifiers.insert(string(&p, "PayloadIdentifier", &what).to_owned()));
        assert_eq!(
            p.get("PayloadVersion").and_then(Value::as_signed_integer),
            Some(1)
        );
    }
}

#[test]
fn full_disk_access_is_granted_to_the_sensor_with_a_code_requirement() {
    let profiles = profiles(&macos_dir().join("profiles"));
    let tcc = payload_of_type(&profiles, "com.apple.TCC.configuration-profile-policy");
    let services = tcc
        .get("Services")
        .and_then(Value::as_dictionary)
        .expect("Services");
    let entries = services
        .get("SystemPolicyAllFiles")
        .and_then(Value::as_array)
        .expect("SystemPolicyAllFiles");
    let sensor_path = program_arguments(&launchd_plists()[SENSOR_ID], SENSOR_ID)[0].clone();

    let mut by_type = BTreeMap::new();
    for e in entries {
        let e = dict(e, "SystemPolicyAllFiles entry");
        let requirement = string(e, "CodeRequirement", "SystemPolicyAllFiles entry");
        assert!(
            requirement.contains(&format!("identifier \"{SENSOR_ID}\"")),
            "{requirement}"
        );
        assert!(
            requirement.contains("anchor apple generic"),
            "{requirement}"
        );
        assert!(
            requirement.contains("certificate leaf[subject.OU] = \"__TEAM_ID__\""),
            "{requirement}"
        );
        let allowed = e.get("Authorization").and_then(Value::as_string) == Some("Allow")
            || e.get("Allowed").and_then(Value::as_boolean) == Some(true);
        assert!(allowed, "entry does not allow access: {e:?}");
        by_type.insert(
            string(e, "IdentifierType", "entry").to_owned(),
            string(e, "Identifier", "entry").to_owned(),
        );
    }
    assert_eq!(by_type.get("bundleID").map(String::as_str), Some(SENSOR_ID));
    // The path entry names exactly the executable launchd starts.
    assert_eq!(by_type.get("path"), Some(&sensor_path));
}

#[test]
fn managed_background_items_cover_the_team_and_both_daemons() {
    let profiles = profiles(&macos_dir().join("profiles"));
    let sm = payload_of_type(&profiles, "com.apple.servicemanagement");
    let rules: Vec<(String, String)> = sm
        .get("Rules")
        .and_then(Value::as_array)
        .expect("Rules")
        .iter()
        .map(|r| {
            let r = dict(r, "rule");
            (
                string(r, "RuleType", "rule").to_owned(),
                string(r, "RuleValue", "rule").to_owned(),
            )
        })
        .collect();
    assert!(
        rules.contains(&("TeamIdentifier".into(), "__TEAM_ID__".into())),
        "{rules:?}"
    );
    for label in launchd_plists().keys() {
        assert!(
            rules.contains(&("Label".into(), label.clone())),
            "{label} not managed"
        );
    }
}

#[test]
fn launchd_jobs_are_absolute_kept_alive_and_logged() {
    for (label, job) in launchd_plists() {
        assert_eq!(
            string(&job, "Label", &label),
            label,
            "file name must be the label"
        );
        let args = program_arguments(&job, &label);
        assert!(
            args[0].starts_with('/'),
            "{label}: {} is not absolute",
            args[0]
        );
        assert_eq!(args[1], "run", "{label}");
        let config = args.iter().position(|a| a == "--config").expect("--config");
        assert_eq!(args[config + 1], MACOS_CONFIG, "{label}");
        assert_eq!(job.get("KeepAlive").and_then(Value::as_boolean), Some(true));
        assert_eq!(job.get("RunAtLoad").and_then(Value::as_boolean), Some(true));
        assert!(
            job.get("ThrottleInterval")
                .and_then(Value::as_signed_integer)
                .is_some()
        );
        string(&job, "ProcessType", &label);
        for key in ["StandardOutPath", "StandardErrorPath"] {
            assert!(
                string(&job, key, &label).starts_with("/Library/Logs/Nightjar/"),
                "{label}: {key}"
            );
        }
        // Umask 077: whatever the daemons create is root-only.
        assert_eq!(
            job.get("Umask").and_then(Value::as_signed_integer),
            Some(0o077)
        );
    }
}

#[test]
fn the_sensor_runs_from_its_app_bundle_with_the_endpoint_security_entitlement() {
    let jobs = launchd_plists();
    let exe = program_arguments(&jobs[SENSOR_ID], SENSOR_ID)[0].clone();
    let (bundle, rest) = exe
        .split_once(".app/")
        .expect("sensor inside an .app bundle");
    assert!(
        bundle.starts_with("/Library/Application Support/Nightjar/"),
        "{exe}"
    );
    let info = load(&macos_dir().join("bundle/Info.plist"));
    let info = dict(&info, "Info.plist");
    assert_eq!(
        rest,
        format!(
            "Contents/MacOS/{}",
            string(info, "CFBundleExecutable", "Info")
        )
    );
    assert_eq!(string(info, "CFBundleIdentifier", "Info"), SENSOR_ID);
    assert_eq!(string(info, "CFBundlePackageType", "Info"), "APPL");

    let ent = load(&macos_dir().join("bundle/nightjar-sensor.entitlements"));
    let ent = dict(&ent, "entitlements");
    assert_eq!(
        ent.get("com.apple.developer.endpoint-security.client")
            .and_then(Value::as_boolean),
        Some(true)
    );
    assert_eq!(
        string(ent, "com.apple.application-identifier", "entitlements"),
        format!("__TEAM_ID__.{SENSOR_ID}")
    );
}

/// Runs fill-profiles.sh into a fresh directory and returns it.
fn fill(extra: &[&str]) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(macos_dir().join("fill-profiles.sh"))
        .args(["--team-id", "ABCDE12345", "--upload-url"])
        .arg("https://collector.example.com/v1/alerts?fleet=a&ring=1")
        .args(extra)
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "fill-profiles.sh failed");
    out
}

#[test]
fn filled_profiles_have_fresh_uuids_and_no_placeholders() {
    let templates = profiles(&macos_dir().join("profiles"));
    let out = fill(&["--organization", "Example & Co"]);
    let filled = profiles(out.path());
    assert_eq!(filled.len(), templates.len());

    let mut template_uuids = Vec::new();
    templates
        .iter()
        .for_each(|(_, v)| collect_uuids(v, &mut template_uuids));
    let mut filled_uuids = Vec::new();
    filled
        .iter()
        .for_each(|(_, v)| collect_uuids(v, &mut filled_uuids));
    assert_eq!(filled_uuids.len(), template_uuids.len());
    let unique: HashSet<_> = filled_uuids.iter().collect();
    assert_eq!(unique.len(), filled_uuids.len(), "{filled_uuids:?}");
    for u in &filled_uuids {
        assert!(is_uuid(u), "{u}");
        assert!(!template_uuids.contains(u), "{u} kept from the template");
    }

    for (path, _) in &filled {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains("__"), "{}: placeholder left", path.display());
    }
    let tcc = payload_of_type(&filled, "com.apple.TCC.configuration-profile-policy");
    let text = format!("{tcc:?}");
    assert!(
        text.contains("certificate leaf[subject.OU] = \\\"ABCDE12345\\\""),
        "{text}"
    );
    let top = dict(&filled[0].1, "filled");
    assert_eq!(string(top, "PayloadOrganization", "filled"), "Example & Co");
}

/// Writes the filled `com.nightjar.agent` payload as the managed preferences file macOS would
/// produce and reads it with the agent's parser.
fn agent_settings(out: &Path) -> Option<nightjar_agent::managed_prefs::ManagedSettings> {
    let filled = profiles(out);
    let payload = payload_of_type(&filled, "com.nightjar.agent");
    let prefs = out.join("com.nightjar.agent.plist");
    Value::Dictionary(payload).to_file_xml(&prefs).unwrap();
    nightjar_agent::managed_prefs::load_from(&prefs).unwrap()
}

#[test]
fn filled_agent_settings_are_accepted_by_the_agent() {
    let out = fill(&[
        "--ca-file",
        "/Library/Application Support/Nightjar/ca.pem",
        "--host-id",
        "$SERIALNUMBER",
    ]);
    let s = agent_settings(out.path()).expect("settings present");
    assert_eq!(
        s.upload_url.as_deref(),
        Some("https://collector.example.com/v1/alerts?fleet=a&ring=1")
    );
    assert_eq!(
        s.upload_ca_file.as_deref(),
        Some(Path::new("/Library/Application Support/Nightjar/ca.pem"))
    );
    assert_eq!(s.host_id.as_deref(), Some("$SERIALNUMBER"));
    assert_eq!(s.allow_insecure_http, Some(false));
}

#[test]
fn fleet_server_and_enrolment_token_reach_the_agent_config() {
    let out = fill(&[
        "--fleet-server",
        "https://nightjar.example.com",
        "--enroll-token",
        "nje_Abc-123_x",
    ]);
    let s = agent_settings(out.path()).expect("settings present");
    assert_eq!(
        s.fleet_server.as_deref(),
        Some("https://nightjar.example.com")
    );
    assert_eq!(s.enroll_token.as_deref(), Some("nje_Abc-123_x"));
    let mut config = nightjar_proto::config::Config::default();
    nightjar_agent::config::apply_managed(&mut config, s);
    let fleet = config
        .fleet
        .expect("managed fleet settings make a [fleet] section");
    assert_eq!(
        fleet.server.as_deref(),
        Some("https://nightjar.example.com")
    );
    assert_eq!(
        fleet
            .enroll_token
            .map(|t| t.expose().to_string())
            .as_deref(),
        Some("nje_Abc-123_x")
    );

    // A token without a server, or a token with markup in it, is refused.
    for args in [
        &["--enroll-token", "nje_x"][..],
        &[
            "--fleet-server",
            "https://n.example.com",
            "--enroll-token",
            "a<b",
        ][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("bash")
            .arg(macos_dir().join("fill-profiles.sh"))
            .args([
                "--team-id",
                "ABCDE12345",
                "--upload-url",
                "https://c.example.com/v1/alerts",
            ])
            .args(args)
            .arg("--out")
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn the_policy_key_reaches_the_agent_config_and_is_checked() {
    // A real key as `nightjar-server policy key --json` prints it (base64 of 32 bytes).
    let key = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let out = fill(&[
        "--fleet-server",
        "https://nightjar.example.com",
        "--policy-public-key",
        key,
    ]);
    let s = agent_settings(out.path()).expect("settings present");
    assert_eq!(s.policy_public_key.as_deref(), Some(key));
    let mut config = nightjar_proto::config::Config::default();
    nightjar_agent::config::apply_managed(&mut config, s);
    config.revalidate("managed preferences").unwrap();
    assert_eq!(
        config.fleet.unwrap().policy_public_key.as_deref(),
        Some(key)
    );
    for bad in [
        &[
            "--fleet-server",
            "https://n.example.com",
            "--policy-public-key",
            "c2hvcnQ=",
        ][..],
        &["--policy-public-key", key][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("bash")
            .arg(macos_dir().join("fill-profiles.sh"))
            .args([
                "--team-id",
                "ABCDE12345",
                "--upload-url",
                "https://c.example.com/v1/alerts",
            ])
            .args(bad)
            .arg("--out")
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{bad:?}");
    }
}

#[test]
fn optional_agent_settings_are_left_out_when_not_given() {
    let out = fill(&["--allow-insecure-http"]);
    let s = agent_settings(out.path()).expect("settings present");
    assert_eq!(s.fleet_server, None);
    assert_eq!(s.enroll_token, None);
    assert_eq!(s.policy_public_key, None);
    assert_eq!(s.upload_ca_file, None);
    assert_eq!(s.host_id, None);
    assert_eq!(s.allow_insecure_http, Some(true));
}

#[test]
fn fill_profiles_refuses_bad_input() {
    let script = macos_dir().join("fill-profiles.sh");
    let cases: &[&[&str]] = &[
        &["--team-id", "short", "--upload-url", "https://x.example"],
        &[
            "--team-id",
            "ABCDE12345",
            "--upload-url",
            "http://x.example",
        ],
        &["--team-id", "ABCDE12345", "--upload-url", "ftp://x.example"],
        &[
            "--team-id",
            "ABCDE12345",
            "--upload-url",
            "https://x.example",
            "--ca-file",
            "ca.pem",
        ],
    ];
    for args in cases {
        let out = tempfile::tempdir().unwrap();
        let o = Command::new("bash")
            .arg(&script)
            .args(*args)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?} accepted");
        assert!(!o.stderr.is_empty(), "{args:?}: no message");
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "{args:?} wrote files"
        );
    }
}
