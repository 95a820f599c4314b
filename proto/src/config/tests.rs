use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/nightjar/test.toml"))
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// Valid base64, but 16 bytes instead of 32.
const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

#[test]
fn empty_file_gives_the_defaults() {
    let c = parse("").unwrap();
    assert_eq!(
        Config {
            source: None,
            ..c.clone()
        },
        Config::default()
    );
    assert_eq!(c.ring_path, PathBuf::from(DEFAULT_RING_PATH));
    assert_eq!(c.ring_capacity_bytes, DEFAULT_RING_CAPACITY);
    assert!(c.rules.builtin);
    assert_eq!(c.upload.batch_max, 500);
    assert_eq!(c.store.retain_alerts, DEFAULT_RETAIN_ALERTS);
    assert!(c.fleet.is_none());
    assert_eq!(c.upload_url(), None);
    assert_eq!(
        c.source.as_deref(),
        Some(Path::new("/etc/nightjar/test.toml"))
    );
}

#[test]
fn every_documented_key_is_read() {
    let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 32]);
    let c = parse(&format!(
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
exceptions = ["/etc/nightjar/exceptions.ndjson"]
block = ["ad88231f-e2ab-491c-8fc6-64746da26cfe"]
state_max_per_rule = 500
state_max_bytes = 2097152
reorder_window_ms = 0
new_terms_max_per_rule = 1000
new_terms_per_host = true
[sensor]
env_vars = ["LD_PRELOAD", "DYLD_INSERT_LIBRARIES"]
[upload]
url = "https://c.example/v1/alerts"
interval_ms = 250
batch_max = 10
ca_file = "/tmp/ca.pem"
allow_insecure_http = true
[store]
retain_alerts = 500
[fleet]
server = "https://nightjar.example.com"
enroll_token = "tok-123"
policy_public_key = "{key}"
heartbeat_interval_ms = 5000
policy_interval_ms = 7000
"#
    ))
    .unwrap();
    assert_eq!(c.state_dir, PathBuf::from("/tmp/s"));
    assert_eq!(c.ring_path, PathBuf::from("/tmp/r"));
    assert_eq!(c.ring_capacity_bytes, 1 << 20);
    assert_eq!(c.host_id.as_deref(), Some("h-1"));
    assert_eq!(c.key_file, Some(PathBuf::from("/tmp/k")));
    assert_eq!(c.rules.paths.len(), 2);
    assert!(!c.rules.builtin);
    assert_eq!(c.rules.max_signals, Some(0));
    assert_eq!(c.rules.exceptions.len(), 1);
    assert_eq!(c.rules.block, ["ad88231f-e2ab-491c-8fc6-64746da26cfe"]);
    assert_eq!(c.rules.state_max_per_rule, 500);
    assert_eq!(c.rules.state_max_bytes, 2 << 20);
    assert_eq!(c.rules.reorder_window_ms, 0);
    assert_eq!(c.rules.new_terms_max_per_rule, 1000);
    assert!(c.rules.new_terms_per_host);
    assert_eq!(c.sensor.env_vars, ["LD_PRELOAD", "DYLD_INSERT_LIBRARIES"]);
    assert_eq!(c.upload.url.as_deref(), Some("https://c.example/v1/alerts"));
    assert_eq!(c.upload.interval_ms, 250);
    assert_eq!(c.upload.batch_max, 10);
    assert!(c.upload.allow_insecure_http);
    assert_eq!(c.store.retain_alerts, 500);
    let fleet = c.fleet.as_ref().unwrap();
    assert_eq!(fleet.enroll_token.as_ref().unwrap().expose(), "tok-123");
    assert_eq!(fleet.policy_public_key.as_deref(), Some(key.as_str()));
    assert_eq!(fleet.heartbeat_interval_ms, 5000);
    assert_eq!(fleet.policy_interval_ms, 7000);
    assert_eq!(
        c.fleet_server().as_deref(),
        Some("https://nightjar.example.com")
    );
    assert_eq!(
        c.upload_url().as_deref(),
        Some("https://c.example/v1/alerts")
    );
}

#[test]
fn secrets_are_not_in_debug_output() {
    let c = parse("[fleet]\nserver = \"https://s.example\"\nenroll_token = \"hunter2\"\n").unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn fleet_server_and_upload_url_default_from_each_other() {
    let c = parse("[fleet]\nserver = \"https://s.example:8443/\"\n").unwrap();
    assert_eq!(
        c.upload_url().as_deref(),
        Some("https://s.example:8443/v1/alerts")
    );
    let c = parse(
        "[upload]\nurl = \"https://user:pw@Up.example:9/v1/alerts?x=1\"\n[fleet]\nenroll_token = \"t\"\n",
    )
    .unwrap();
    assert_eq!(c.fleet_server().as_deref(), Some("https://Up.example:9"));
    assert_eq!(c.fleet.unwrap().heartbeat_interval_ms, 60_000);
    let e = err("[fleet]\nenroll_token = \"t\"\n");
    assert!(
        e.starts_with("/etc/nightjar/test.toml:1:1: key `fleet.server`"),
        "{e}"
    );
}

#[test]
fn unknown_key_names_file_key_and_position() {
    let e = err("state_dir = \"/x\"\n[rules]\nbuiltin = true\nmax_signal = 3\n");
    assert!(e.starts_with("/etc/nightjar/test.toml:4:1:"), "{e}");
    assert!(e.contains("`rules.max_signal`"), "{e}");
    let e = err("state_dri = \"/x\"\n");
    assert!(
        e.contains("test.toml:1:1") && e.contains("`state_dri`"),
        "{e}"
    );
    let e = err("[upload]\nurll = \"x\"");
    assert!(e.contains("`upload.urll`"), "{e}");
    let e = err("[fleet]\nserver = \"https://s\"\ntoken = \"x\"\n");
    assert!(
        e.contains("test.toml:3:1") && e.contains("`fleet.token`"),
        "{e}"
    );
    let e = err("[sensor]\nenv = []\n");
    assert!(e.contains("`sensor.env`"), "{e}");
}

#[test]
fn wrong_types_name_file_key_and_position() {
    let e = err("[upload]\nurl = \"https://x\"\nbatch_max = \"many\"\n");
    assert!(
        e.contains("test.toml:3:") && e.contains("`upload.batch_max`"),
        "{e}"
    );
    let e = err("ring_capacity_bytes = -5\n");
    assert!(
        e.contains("test.toml:1:") && e.contains("`ring_capacity_bytes`"),
        "{e}"
    );
    let e = err("ring_capacity_bytes = \"big\"");
    assert!(e.contains("`ring_capacity_bytes`"), "{e}");
    let e = err("ring_path = 3");
    assert!(e.contains("`ring_path`"), "{e}");
    let e = err("rules = 3");
    assert!(e.contains("`rules`"), "{e}");
    let e = err("[rules]\nblock = \"kcc\"\n");
    assert!(
        e.contains("test.toml:2:") && e.contains("`rules.block`"),
        "{e}"
    );
    let e = err("[store]\nretain_alerts = \"all\"\n");
    assert!(e.contains("`store.retain_alerts`"), "{e}");
    let e = err("state_dir = \n");
    assert!(e.contains("test.toml:1:"), "{e}");
}

#[test]
fn bad_values_name_file_key_and_position() {
    for (text, key, line) in [
        ("ring_capacity_bytes = 12\n", "ring_capacity_bytes", 1),
        (
            "host_id = 'h'\nring_capacity_bytes = 1000000\n",
            "ring_capacity_bytes",
            2,
        ),
        (
            "ring_capacity_bytes = 34359738368\n",
            "ring_capacity_bytes",
            1,
        ),
        ("host_id = \" \"\n", "host_id", 1),
        ("host_id = \"h\\u0007\"\n", "host_id", 1),
        ("state_dir = \"\"\n", "state_dir", 1),
        ("ring_path = ''\n", "ring_path", 1),
        ("[upload]\nbatch_max = 0\n", "upload.batch_max", 2),
        ("[upload]\n\ninterval_ms = 0\n", "upload.interval_ms", 3),
        ("[upload]\nurl = \"http://c.example/\"\n", "upload.url", 2),
        ("[upload]\nurl = \"ftp://c.example/\"\n", "upload.url", 2),
        ("[upload]\nurl = \"https:///v1\"\n", "upload.url", 2),
        (
            "[upload]\nurl = \"https://c.example:99999/\"\n",
            "upload.url",
            2,
        ),
        ("[upload]\nurl = \"collector\"\n", "upload.url", 2),
        ("[rules]\nblock = [\"a\", \"a\"]\n", "rules.block", 2),
        ("[rules]\nblock = [\"\"]\n", "rules.block", 2),
        ("[rules]\nexceptions = [\"\"]\n", "rules.exceptions", 2),
        (
            "[sensor]\nenv_vars = [\"LD PRELOAD\"]\n",
            "sensor.env_vars",
            2,
        ),
        ("[sensor]\nenv_vars = [\"1X\"]\n", "sensor.env_vars", 2),
        (
            "[sensor]\nenv_vars = [\"A\", \"A\"]\n",
            "sensor.env_vars",
            2,
        ),
        ("[fleet]\nserver = \"https://s/path\"\n", "fleet.server", 2),
        ("[fleet]\nserver = \"http://s\"\n", "fleet.server", 2),
        (
            "[fleet]\nserver = \"https://s\"\nenroll_token = \"\"\n",
            "fleet.enroll_token",
            3,
        ),
        (
            "[fleet]\nserver = \"https://s\"\npolicy_public_key = \"!!\"\n",
            "fleet.policy_public_key",
            3,
        ),
        (
            &format!("[fleet]\nserver = \"https://s\"\npolicy_public_key = \"{KEY}\"\n"),
            "fleet.policy_public_key",
            3,
        ),
        (
            "[fleet]\nserver = \"https://s\"\nheartbeat_interval_ms = 0\n",
            "fleet.heartbeat_interval_ms",
            3,
        ),
        (
            "[fleet]\nserver = \"https://s\"\npolicy_interval_ms = 0\n",
            "fleet.policy_interval_ms",
            3,
        ),
    ] {
        let e = err(text);
        let at = format!("/etc/nightjar/test.toml:{line}:1: key `{key}`: ");
        assert!(e.starts_with(&at), "{text:?}: {e}");
    }
    let many: Vec<String> = (0..=MAX_ENV_VARS).map(|i| format!("\"V{i}\"")).collect();
    let e = err(&format!("[sensor]\nenv_vars = [{}]\n", many.join(", ")));
    assert!(
        e.contains("`sensor.env_vars`") && e.contains("at most"),
        "{e}"
    );
    let long = "A".repeat(MAX_ENV_VAR_NAME + 1);
    let e = err(&format!("[sensor]\nenv_vars = [\"{long}\"]\n"));
    assert!(e.contains("longer than"), "{e}");
}

#[test]
fn http_is_accepted_when_allowed() {
    let c =
        parse("[upload]\nurl = \"http://127.0.0.1:8080/v1/alerts\"\nallow_insecure_http = true\n")
            .unwrap();
    assert_eq!(
        c.upload.url.as_deref(),
        Some("http://127.0.0.1:8080/v1/alerts")
    );
    parse("[upload]\nurl = \"https://[::1]:8443/v1/alerts\"\n").unwrap();
}

#[test]
fn dotted_keys_and_quoted_headers_are_located() {
    let e = err("rules.block = [\"x\", \"x\"]\n");
    assert!(
        e.starts_with("/etc/nightjar/test.toml:1:1: key `rules.block`"),
        "{e}"
    );
    let e = err("[ \"upload\" ]\n  batch_max = 0\n");
    assert!(
        e.starts_with("/etc/nightjar/test.toml:2:3: key `upload.batch_max`"),
        "{e}"
    );
}

#[test]
fn revalidate_names_the_overlay() {
    let mut c = parse("").unwrap();
    c.upload.url = Some("http://x.example/".into());
    let e = c.revalidate("managed preferences").unwrap_err().to_string();
    assert!(
        e.contains("test.toml (with managed preferences): key `upload.url`"),
        "{e}"
    );
}

#[test]
fn missing_explicit_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = Config::locate(Some(&missing)).unwrap_err().to_string();
    assert!(e.contains("nope.toml"), "{e}");
}

/// The configs shipped with the packages parse as they are.
#[test]
fn packaged_configs_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for file in [
        "packaging/linux/nightjar.toml",
        "packaging/macos/nightjar.toml",
    ] {
        Config::from_file(&root.join(file)).unwrap();
    }
}

#[test]
fn rule_state_bounds_are_checked() {
    for (text, key) in [
        (
            "[rules]\nstate_max_per_rule = 0\n",
            "rules.state_max_per_rule",
        ),
        ("[rules]\nstate_max_bytes = 1024\n", "rules.state_max_bytes"),
        (
            "[rules]\nreorder_window_ms = 600000\n",
            "rules.reorder_window_ms",
        ),
        (
            "[rules]\nnew_terms_max_per_rule = 0\n",
            "rules.new_terms_max_per_rule",
        ),
    ] {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}
