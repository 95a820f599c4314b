//! `scripts/live` against the real binaries: `--check` captures the demo exec with eBPF and
//! prints the Linux kcc rule's alert as JSON, and both daemons are gone when the script ends,
//! whether it finishes or is stopped with SIGTERM. Needs root (eBPF); under CI=true its
//! absence is a failure. Linux only: the live script runs the eBPF sensor.
#![cfg(target_os = "linux")]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_tests::harness::{ChildGuard, bin, in_ci, is_root, wait_for, workspace_root};

const LINUX_KCC_RULE_ID: &str = "c4ab5c12-3447-4aaf-891b-c474270fe4d9";

fn root_or_skip() -> bool {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: the live script test must run");
        eprintln!("scripts/live needs root (eBPF); not run");
        return false;
    }
    true
}

/// The directory holding the built nightjar-sensor and nightjar-agent.
fn bin_dir() -> PathBuf {
    bin("nightjar-sensor");
    bin("nightjar-agent")
        .parent()
        .expect("binary has a directory")
        .to_path_buf()
}

fn live(state: &Path) -> Command {
    let mut cmd = Command::new(workspace_root().join("scripts/live"));
    cmd.arg("--bin-dir").arg(bin_dir()).arg("--dir").arg(state);
    cmd
}

/// Pids of processes whose command line mentions `needle` (the per-test state directory).
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn check_mode_prints_the_linux_kcc_alert_and_stops_both_daemons() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("live");
    let out = live(&state)
        .arg("--check")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/live --check failed:\n{stderr}"
    );
    assert!(
        stderr.contains("the alert is on the server, verified"),
        "the central server did not get the alert:\n{stderr}"
    );

    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let kcc = alerts
        .iter()
        .find(|a| a["kibana"]["alert"]["rule"]["rule_id"] == LINUX_KCC_RULE_ID)
        .unwrap_or_else(|| panic!("no Linux kcc alert in:\n{stdout}"));
    assert_eq!(kcc["process"]["name"], "kcc");
    assert!(
        kcc["process"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "copy_cred_cache")
    );
    assert_eq!(kcc["host"]["os"]["type"], "linux");

    let mode = std::fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "state dir mode {mode:o}");
    let leftover = processes_mentioning(&state.display().to_string());
    assert!(
        leftover.is_empty(),
        "still running after --check: {leftover:?}"
    );
}

#[test]
fn sigterm_stops_both_daemons() {
    if !root_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("live");
    let needle = state.display().to_string();
    let mut script = ChildGuard::spawn(live(&state).stdout(Stdio::null()).stderr(Stdio::null()));

    // Running: the script itself and the two daemons it started (their --config is under
    // `state`).
    let started = wait_for(Duration::from_secs(60), || {
        (processes_mentioning(&needle).len() >= 3).then_some(())
    });
    assert!(
        started.is_some(),
        "the daemons did not start (see {needle}/*.log)"
    );

    script.signal(libc::SIGTERM);
    let status = script
        .wait_timeout(Duration::from_secs(60))
        .expect("scripts/live did not exit on SIGTERM");
    assert_eq!(status.code(), Some(143), "{status:?}");
    let leftover = processes_mentioning(&needle);
    assert!(
        leftover.is_empty(),
        "still running after SIGTERM: {leftover:?}"
    );
}
