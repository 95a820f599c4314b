//! Driving `nightjar-agent` analyst commands from tests and reading their JSON output.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::{bin, run};

/// `nightjar-agent status --json`, parsed; `None` when the command failed or printed no JSON.
pub fn status(config: &Path) -> Option<Value> {
    let out = run(Command::new(bin("nightjar-agent"))
        .args(["status", "--json", "--config"])
        .arg(config));
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
}

/// A counter from `status --json` (0 when absent or not a number).
pub fn counter(status: &Value, key: &str) -> u64 {
    status.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// Every stored alert payload (`alerts list --json`), in the order printed.
pub fn alerts(config: &Path) -> Vec<Value> {
    json_lines(config, &["alerts", "list", "--json"])
}

/// `alerts export`: one DSSE envelope per line, in seq order.
pub fn export(config: &Path) -> Vec<Value> {
    json_lines(config, &["alerts", "export"])
}

/// Runs an analyst command that prints one JSON object per line; it must succeed.
fn json_lines(config: &Path, args: &[&str]) -> Vec<Value> {
    let out = run(Command::new(bin("nightjar-agent"))
        .args(args)
        .arg("--config")
        .arg(config));
    let what = args.join(" ");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: line {l:?}: {e}")))
        .collect()
}

/// Runs `nightjar-agent verify`; returns (exit code, stdout + stderr).
pub fn verify(config: &Path) -> (i32, String) {
    let out = run(Command::new(bin("nightjar-agent"))
        .args(["verify", "--config"])
        .arg(config));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Decodes a DSSE envelope's payload into the alert JSON.
pub fn envelope_payload(envelope: &Value) -> Value {
    use base64::Engine;
    let b64 = envelope["payload"]
        .as_str()
        .expect("envelope has a payload");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("payload is standard base64");
    serde_json::from_slice(&bytes).expect("payload is JSON")
}

/// `alerts export` exactly as printed: one line (without its newline) per envelope, for
/// byte-for-byte comparison with what a collector recorded.
pub fn export_lines(config: &Path) -> Vec<Vec<u8>> {
    let out = run(Command::new(bin("nightjar-agent"))
        .args(["alerts", "export", "--config"])
        .arg(config));
    assert!(
        out.status.success(),
        "alerts export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// `keys show --json`: the host's public key (base64 of the raw 32 bytes) and key id.
pub fn public_key(config: &Path) -> (String, String) {
    let out = run(Command::new(bin("nightjar-agent"))
        .args(["keys", "show", "--json", "--config"])
        .arg(config));
    assert!(
        out.status.success(),
        "keys show failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("keys show printed no JSON: {text}"));
    let key = v["public_key"].as_str().expect("public_key").to_owned();
    let id = v["key_id"].as_str().expect("key_id").to_owned();
    (key, id)
}
