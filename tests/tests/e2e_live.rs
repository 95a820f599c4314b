//! The whole pipeline live on this host: `nightjar-sensor run --source ebpf` and
//! `nightjar-agent run` with a Linux variant of the seed rule store exactly one verified alert
//! for `kcc copy_cred_cache` and none for `kcc list`. Needs root; under CI=true its absence
//! is a failure.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_tests::agent_cli::{alerts, counter, status, verify};
use nightjar_tests::harness::{
    ChildGuard, TempState, bin, in_ci, is_root, run, wait_for, workspace_root,
};

#[test]
fn live_ebpf_pipeline_alerts_once_for_kcc_copy_cred_cache() {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: the live pipeline test must run");
        eprintln!("live pipeline test needs root; not run");
        return;
    }
    let st = TempState::new();
    // The Linux variant of the seed rule that packaging ships and `scripts/live` uses.
    let rules = workspace_root().join("packaging/linux/rules/kcc-linux.toml");
    let rule_id = linux_rule_id(&rules);
    let cfg = st.write_config(&format!(
        "[rules]\npaths = [{:?}]\nbuiltin = true\n",
        rules.display().to_string()
    ));

    let kcc = st.path().join("bin/kcc");
    std::fs::create_dir(st.path().join("bin")).expect("bin dir");
    std::fs::copy("/bin/true", &kcc).expect("copy /bin/true");
    std::fs::set_permissions(&kcc, std::fs::Permissions::from_mode(0o755)).expect("chmod kcc");
    // The temp dir is 0700 and we are root: exec works.

    let agent_log = File::create(st.path().join("agent.log")).expect("agent log");
    let _agent = ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(agent_log),
    );
    let sensor_log = File::create(st.path().join("sensor.log")).expect("sensor log");
    let mut sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stderr(sensor_log),
    );

    // Ready when the agent sees the sensor and events flow (any exec on the host counts).
    let ready = wait_for(Duration::from_secs(30), || {
        assert!(
            sensor.child.try_wait().ok().flatten().is_none(),
            "sensor exited: {}",
            std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
        );
        run(Command::new(&kcc).arg("warmup"));
        let s = status(&cfg)?;
        (s["sensor_connected"] == true && counter(&s, "events_received") > 0).then_some(())
    });
    assert!(
        ready.is_some(),
        "pipeline not ready; status {:?}; sensor log: {}",
        status(&cfg),
        std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
    );

    assert!(
        run(Command::new(&kcc).arg("copy_cred_cache"))
            .status
            .success()
    );
    assert!(run(Command::new(&kcc).arg("list")).status.success());

    let exe = kcc.display().to_string();
    let mine = |a: &serde_json::Value| a["process"]["executable"] == exe.as_str();
    let got = wait_for(Duration::from_secs(10), || {
        let n = alerts(&cfg).iter().filter(|a| mine(a)).count();
        (n >= 1).then_some(n)
    });
    assert!(got.is_some(), "no alert for kcc copy_cred_cache");
    // Give a wrong second alert (kcc list) time to show up before counting.
    std::thread::sleep(Duration::from_secs(1));
    let ours: Vec<_> = alerts(&cfg).into_iter().filter(|a| mine(a)).collect();
    assert_eq!(ours.len(), 1, "exactly one alert: {ours:#?}");
    let args: Vec<&str> = ours[0]["process"]["args"]
        .as_array()
        .expect("process.args")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(args, vec![exe.as_str(), "copy_cred_cache"]);
    assert_eq!(
        ours[0]["kibana"]["alert"]["rule"]["rule_id"],
        rule_id.as_str()
    );

    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify: {text}");
}

/// The `rule_id` of a rule file, read with a plain line scan (the agent's loader is what is
/// under test).
fn linux_rule_id(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).expect("read the Linux kcc rule");
    text.lines()
        .find_map(|l| l.trim().strip_prefix("rule_id = "))
        .map(|v| v.trim_matches('"').to_owned())
        .expect("rule file has a rule_id")
}
