//! Running the real sensor and agent side by side for fault and load tests: spawning each
//! with its log in the state directory, waiting on `status --json`, and stopping cleanly.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::agent_cli::{counter, status};
use crate::harness::{ChildGuard, TempState, bin, wait_for};

/// Long enough for any wait on a loaded 2-core machine; only bounds a failing test.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Where a process's stderr goes: `<temp>/<name>.log`.
pub fn log_path(st: &TempState, name: &str) -> PathBuf {
    st.path().join(format!("{name}.log"))
}

/// The text of a process log (empty when absent), for failure messages.
pub fn log_text(st: &TempState, name: &str) -> String {
    std::fs::read_to_string(log_path(st, name)).unwrap_or_default()
}

/// `nightjar-agent run --config CFG`, stderr to `<name>.log`.
pub fn spawn_agent(st: &TempState, cfg: &Path, name: &str) -> ChildGuard {
    let log = File::create(log_path(st, name)).expect("agent log");
    ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log),
    )
}

/// `nightjar-sensor replay --format eslogger [--rate R] FILE`, stderr to `<name>.log`.
pub fn spawn_replay(
    st: &TempState,
    cfg: &Path,
    file: &Path,
    rate: Option<u32>,
    name: &str,
) -> ChildGuard {
    let log = File::create(log_path(st, name)).expect("sensor log");
    let mut cmd = Command::new(bin("nightjar-sensor"));
    cmd.args(["replay", "--config"])
        .arg(cfg)
        .args(["--format", "eslogger"]);
    if let Some(rate) = rate {
        cmd.args(["--rate", &rate.to_string()]);
    }
    cmd.arg(file).stdout(Stdio::null()).stderr(log);
    ChildGuard::spawn(&mut cmd)
}

/// Runs a replay to completion and asserts it succeeded.
pub fn replay_all(st: &TempState, cfg: &Path, file: &Path, rate: Option<u32>, name: &str) {
    let mut sensor = spawn_replay(st, cfg, file, rate, name);
    let done = sensor
        .wait_timeout(PATIENCE)
        .unwrap_or_else(|| panic!("replay {name} did not finish"));
    assert!(
        done.success(),
        "replay {name} failed ({done:?}): {}",
        log_text(st, name)
    );
}

/// Polls `status --json` until `pred` holds; panics with the last status and the agent log
/// otherwise.
pub fn wait_status(
    st: &TempState,
    cfg: &Path,
    agent_log: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(PATIENCE, || status(cfg).filter(|s| pred(s))).unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; last status: {:?}\nagent log:\n{}",
            status(cfg),
            log_text(st, agent_log)
        )
    })
}

/// Waits until the running agent answers `status` (its control socket is up).
pub fn wait_agent_ready(st: &TempState, cfg: &Path, agent_log: &str) -> Value {
    wait_status(st, cfg, agent_log, "the agent to answer status", |s| {
        s["agent_running"] != false
    })
}

/// Waits until the agent has accounted for `events` events (received + dropped).
pub fn wait_events(st: &TempState, cfg: &Path, agent_log: &str, events: u64) -> Value {
    wait_status(
        st,
        cfg,
        agent_log,
        &format!("{events} events accounted for"),
        |s| counter(s, "events_received") + counter(s, "events_dropped") >= events,
    )
}

/// SIGTERM, then waits for a clean exit (asserting it).
pub fn stop(agent: &mut ChildGuard, st: &TempState, name: &str) {
    agent.signal(libc::SIGTERM);
    let done = agent
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{name} did not stop on SIGTERM"));
    assert!(
        done.success(),
        "{name} exited with {done:?}: {}",
        log_text(st, name)
    );
}

/// Matches of the seed rule among the first `n` events of a stream written by
/// [`crate::streams::EsloggerGen::write_stream_at`] with `first_pid` (event `i` has pid
/// `first_pid + i`).
pub fn hits_before(hits: &[u32], first_pid: u32, n: u64) -> Vec<u32> {
    hits.iter()
        .copied()
        .filter(|&pid| u64::from(pid - first_pid) < n)
        .collect()
}

/// `process.pid` of every stored alert, in seq order.
pub fn alert_pids(cfg: &Path) -> Vec<u32> {
    crate::agent_cli::alerts(cfg)
        .iter()
        .map(|a| a["process"]["pid"].as_u64().expect("alert process.pid") as u32)
        .collect()
}
