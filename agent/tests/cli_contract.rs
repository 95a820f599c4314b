//! The analyst commands of the real binary against a store at rest, and config errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nightjar_agent::config::Config;
use nightjar_agent::sign::{HostKey, Sealer, Unsealed};
use nightjar_agent::store::Store;
use serde_json::{Value, json};

mod log_support;

const AGENT: &str = env!("CARGO_BIN_EXE_nightjar-agent");

fn agent(args: &[&str], config: &Path) -> Output {
    Command::new(AGENT)
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("NIGHTJAR_CONFIG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A state directory with `n` stored alerts (rule "r-even" for even n, "r-odd" otherwise).
fn populated(n: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let config_path = tmp.path().join("nightjar.toml");
    std::fs::write(
        &config_path,
        format!(
            "state_dir = {:?}\nring_path = {:?}\nhost_id = \"host-cli\"\n",
            state.display().to_string(),
            tmp.path().join("ring").display().to_string()
        ),
    )
    .unwrap();
    let config = Config::from_file(&config_path).unwrap();
    let key = HostKey::load_or_create(&config).unwrap();
    let mut sealer = Sealer::new(key, "host-cli".into());
    let store = Store::open(&config.store_dir()).unwrap();
    for i in 1..=n {
        let rule = if i % 2 == 0 { "r-even" } else { "r-odd" };
        let alert = json!({
            "@timestamp": "2026-11-20T09:00:00Z",
            "kibana": {"alert": {"uuid": format!("u-{i}"), "rule": {"rule_id": rule, "name": rule}}},
            "host": {"hostname": "mac-1"},
            "process": {"pid": 700 + i, "executable": "/usr/bin/kcc", "args": ["kcc", "copy_cred_cache"]},
        });
        let unsealed = Unsealed {
            alert: alert.as_object().cloned().unwrap(),
            uuid: format!("u-{i}"),
            time_ns: 1_000 * i as i64,
            event_seq: i,
        };
        let sealed = sealer.seal(&store.head().unwrap(), unsealed).unwrap();
        store.append(&sealed).unwrap();
    }
    store.commit_marked(|h| sealer.mark(h)).unwrap();
    store.flush().unwrap();
    (tmp, config_path)
}

fn store_dir(config: &Path) -> PathBuf {
    Config::from_file(config).unwrap().store_dir()
}

#[test]
fn commands_read_the_store_when_no_agent_runs() {
    let (_tmp, cfg) = populated(4);
    let out = agent(&["alerts", "list", "--json"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[2]["nightjar"]["seq"], 3);
    assert_eq!(lines[2]["nightjar"]["host_id"], "host-cli");

    let out = agent(&["alerts", "list", "--json", "--rule", "r-even"], &cfg);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);

    // Alert times are in 1970: none is newer than an hour.
    let out = agent(&["alerts", "list", "--json", "--since", "1h"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 0);

    let out = agent(&["alerts", "list"], &cfg);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("SEQ"), "{table}");
    assert!(table.contains("/usr/bin/kcc [702]"), "{table}");
    assert!(table.contains("kcc copy_cred_cache"), "{table}");

    let out = agent(&["alerts", "show", "u-2"], &cfg);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["kibana"]["alert"]["uuid"], "u-2");
    let out = agent(&["alerts", "show", "u-99"], &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("u-99"), "{}", text(&out));

    let out = agent(&["alerts", "export"], &cfg);
    let envelopes: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(envelopes.len(), 4);
    assert_eq!(
        envelopes[0]["payloadType"],
        "application/vnd.nightjar.alert+json"
    );

    let out = agent(&["keys", "show", "--json"], &cfg);
    let key: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(key["algorithm"], "ed25519");
    assert_eq!(key["key_id"], envelopes[0]["signatures"][0]["keyid"]);

    let out = agent(&["status", "--json"], &cfg);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "events_received",
        "events_dropped",
        "alerts_stored",
        "alerts_suppressed",
        "alerts_pending_upload",
        "sensor_connected",
        "last_upload_ok",
        "last_upload_error",
    ] {
        assert!(
            status.get(field).is_some(),
            "status lacks {field}: {status}"
        );
    }
    assert_eq!(status["alerts_stored"], 4);
    assert_eq!(status["alerts_pending_upload"], 4);
    assert_eq!(status["agent_running"], false);

    let out = agent(&["verify"], &cfg);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn verify_names_the_first_tampered_seq() {
    let (_tmp, cfg) = populated(5);
    // One byte inside the stored envelope.
    log_support::flip_in_record(&store_dir(&cfg), 3, 40);
    let out = agent(&["verify"], &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("seq 3"), "{}", text(&out));
}

#[test]
fn verify_names_a_deleted_seq() {
    let (_tmp, cfg) = populated(5);
    log_support::cut_record(&store_dir(&cfg), 2);
    let out = agent(&["verify"], &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("seq 2"), "{}", text(&out));
}

#[test]
fn verify_names_a_reordered_seq() {
    let (_tmp, cfg) = populated(5);
    log_support::swap_records(&store_dir(&cfg), 4, 5);
    let out = agent(&["verify"], &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("seq 4"), "{}", text(&out));
    let status: Value = serde_json::from_slice(&agent(&["status", "--json"], &cfg).stdout).unwrap();
    assert_eq!(status["chain_ok"], false, "{status}");
}

#[test]
fn config_errors_exit_2_naming_file_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "state_dir = \"/tmp/x\"\n[upload]\nurll = \"https://x\"\n",
    )
    .unwrap();
    let out = agent(&["status"], &unknown);
    assert_eq!(out.status.code(), Some(2));
    let msg = text(&out);
    assert!(msg.contains("unknown.toml:3:1"), "{msg}");
    assert!(msg.contains("upload.urll"), "{msg}");

    let wrong = tmp.path().join("wrong.toml");
    std::fs::write(&wrong, "[rules]\nbuiltin = \"yes\"\n").unwrap();
    let out = agent(&["run"], &wrong);
    assert_eq!(out.status.code(), Some(2));
    let msg = text(&out);
    assert!(msg.contains("wrong.toml:2:"), "{msg}");
    assert!(msg.contains("rules.builtin"), "{msg}");

    let out = agent(&["verify"], &tmp.path().join("absent.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("absent.toml"));

    let out = Command::new(AGENT)
        .args(["keys", "show"])
        .env("NIGHTJAR_CONFIG", &wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "$NIGHTJAR_CONFIG is used");
}

#[test]
fn insecure_upload_url_is_a_configuration_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nring_path = {:?}\nhost_id = \"h\"\n[upload]\nurl = \"http://collector.invalid/v1/alerts\"\n",
            tmp.path().join("s").display().to_string(),
            tmp.path().join("r").display().to_string()
        ),
    )
    .unwrap();
    let out = agent(&["run"], &cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("upload.url"), "{}", text(&out));
}

/// The whole config is checked before `run` creates anything: a bad value anywhere is exit 2
/// naming file, line:column and key, and leaves no state directory or key behind.
#[test]
fn bad_values_are_found_before_anything_is_created() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    for (tail, key, line) in [
        ("ring_capacity_bytes = 1000\n", "ring_capacity_bytes", 4),
        ("[sensor]\nenv_vars = [\"A=B\"]\n", "sensor.env_vars", 5),
        ("[rules]\nblock = [\"x\", \"x\"]\n", "rules.block", 5),
        ("[fleet]\nheartbeat_interval_ms = 0\n", "fleet.server", 4),
        (
            "[upload]\nurl = \"https://c.example/\"\nca_file = \"/nonexistent/ca.pem\"\n",
            "ca.pem",
            0,
        ),
    ] {
        let cfg = tmp.path().join("n.toml");
        std::fs::write(
            &cfg,
            format!(
                "state_dir = {:?}\nring_path = {:?}\nhost_id = \"h\"\n{tail}",
                state.display().to_string(),
                tmp.path().join("r").display().to_string()
            ),
        )
        .unwrap();
        let out = agent(&["run"], &cfg);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(2), "{tail}: {msg}");
        if line > 0 {
            let at = format!("{}:{line}:1: key `{key}`", cfg.display());
            assert!(msg.contains(&at), "{tail}: {msg}");
        } else {
            assert!(msg.contains(key), "{tail}: {msg}");
        }
        assert!(!state.exists(), "{tail}: state_dir was created: {msg}");
    }
}

#[test]
fn commands_without_a_store_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("n.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nhost_id = \"h\"\n",
            tmp.path().join("never").display().to_string()
        ),
    )
    .unwrap();
    let out = agent(&["status"], &cfg);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("has not run yet"), "{}", text(&out));
    assert!(
        !tmp.path().join("never").exists(),
        "a query creates nothing"
    );
}

#[test]
fn alerts_list_filters_with_kql() {
    let (_tmp, config) = populated(4);
    let lines = |q: &str| {
        let out = agent(&["alerts", "list", "--json", "--query", q], &config);
        assert!(out.status.success(), "{q}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap().lines().count()
    };
    assert_eq!(lines("process.args:*cred*"), 4);
    assert_eq!(lines("process.pid > 702"), 2);
    assert_eq!(
        lines("process.args:copy_cred_cache and not process.pid:701"),
        3
    );
    assert_eq!(lines("process.args:nothing"), 0);
    let table = agent(&["alerts", "list", "--query", "process.pid:703"], &config);
    assert!(table.status.success());
    let table = String::from_utf8(table.stdout).unwrap();
    assert_eq!(table.lines().count(), 2, "header and one row: {table}");
    let bad = agent(&["alerts", "list", "--query", "process.args:("], &config);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("--query"), "{}", text(&bad));
}
