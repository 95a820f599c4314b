//! The whole pipeline live on this host: `nightjar-sensor run --source ebpf` and
//! `nightjar-agent run` with a Linux variant of the seed rule store exactly one verified alert
//! for `kcc copy_cred_cache` and none for `kcc list`; Elastic's uid_change sequence rules fire
//! for a staged privilege escalation. Needs root; under CI=true its absence is a failure.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_tests::agent_cli::{alerts, counter, status, verify};
use nightjar_tests::harness::{
    ChildGuard, TempState, bin, in_ci, is_root, run, shared, wait_for, workspace_root,
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

    let _pipeline = start_pipeline(&st, &cfg, &kcc);

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

/// `nightjar-agent run` and `nightjar-sensor run --source ebpf` on `cfg`, once the agent sees
/// the sensor and events flow (`warm` is exec'd until they do). Dropping them stops both.
fn start_pipeline(st: &TempState, cfg: &Path, warm: &Path) -> (ChildGuard, ChildGuard) {
    let agent_log = File::create(st.path().join("agent.log")).expect("agent log");
    let agent = ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(agent_log),
    );
    let sensor_log = File::create(st.path().join("sensor.log")).expect("sensor log");
    let mut sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(cfg)
            .stderr(sensor_log),
    );

    // Ready when the agent sees the sensor and events flow (any exec on the host counts).
    let ready = wait_for(Duration::from_secs(30), || {
        assert!(
            sensor.child.try_wait().ok().flatten().is_none(),
            "sensor exited: {}",
            std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
        );
        run(Command::new(warm).arg("warmup"));
        let s = status(cfg)?;
        (s["sensor_connected"] == true && counter(&s, "events_received") > 0).then_some(())
    });
    assert!(
        ready.is_some(),
        "pipeline not ready; status {:?}; sensor log: {}",
        status(cfg),
        std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
    );
    (agent, sensor)
}

/// Elastic's uid_change sequence rules, live: an ordinary user's program under /tmp (with CAP_SETUID and
/// CAP_SETGID file capabilities) execs from an unprivileged parent and becomes root. Elastic's
/// own sequence rules `privilege_escalation_potential_privesc_via_general_sequence_child`
/// (joined by `process.entity_id`) and `..._parent` (by `process.parent.entity_id`) fire
/// through sensor, ring and agent, their building blocks naming the exec and the uid_change.
#[test]
fn live_ebpf_uid_change_fires_elastics_privilege_escalation_sequences() {
    use nightjar_tests::escalation::Escalation;
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: the live pipeline test must run");
        eprintln!("live pipeline test needs root; not run");
        return;
    }
    let Some(esc) = Escalation::stage() else {
        return;
    };
    let st = TempState::new();
    let dir = shared("elastic-rules/linux-head-14cf530f");
    let rules: Vec<PathBuf> = [
        "privilege_escalation_potential_privesc_via_general_sequence_child.toml",
        "privilege_escalation_potential_privesc_via_general_sequence_parent.toml",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    let ids: Vec<String> = rules.iter().map(|r| linux_rule_id(r)).collect();
    let cfg = st.write_config(&format!(
        "[rules]\npaths = {:?}\nbuiltin = false\n",
        rules
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
    ));
    let _pipeline = start_pipeline(&st, &cfg, Path::new("/bin/true"));

    let run = esc.run();
    let exe = esc.executable();
    let ours = |a: &serde_json::Value, rule: &str| {
        a["kibana"]["alert"]["rule"]["rule_id"] == rule
            && a["process"]["executable"] == exe.as_str()
    };
    let action = |a: &serde_json::Value| a["kibana"]["alert"]["original_event"]["action"].clone();
    let got = wait_for(Duration::from_secs(20), || {
        let all = alerts(&cfg);
        let fired = ids
            .iter()
            .all(|id| all.iter().any(|a| ours(a, id) && action(a) == "uid_change"));
        fired.then_some(all)
    });
    let all = got.unwrap_or_else(|| {
        panic!(
            "no alert for {run:?} from {ids:?}: {:#?}\nagent log: {}",
            alerts(&cfg),
            std::fs::read_to_string(st.path().join("agent.log")).unwrap_or_default()
        )
    });
    for id in &ids {
        let mine: Vec<_> = all.iter().filter(|a| ours(a, id)).collect();
        let exec = mine
            .iter()
            .find(|a| action(a) == "exec")
            .unwrap_or_else(|| panic!("{id}: no building block for the exec: {mine:#?}"));
        let change = mine
            .iter()
            .find(|a| action(a) == "uid_change")
            .unwrap_or_else(|| panic!("{id}: no building block for the uid_change: {mine:#?}"));
        assert_eq!(exec["process"]["pid"], run.child_pid, "{exec:#}");
        assert_eq!(change["process"]["pid"], run.child_pid, "{change:#}");
        assert_eq!(change["user"]["id"], "0", "{change:#}");
        let original = &change["kibana"]["alert"]["original_event"];
        assert_eq!(original["type"][0], "change", "{change:#}");
        assert_eq!(original["category"][0], "process", "{change:#}");
        assert_eq!(
            change["process"]["parent"]["user"]["id"],
            esc.user.uid.to_string(),
            "{change:#}"
        );
        assert_eq!(exec["user"]["id"], esc.user.uid.to_string(), "{exec:#}");
        assert_eq!(
            exec["process"]["entity_id"], change["process"]["entity_id"],
            "one process instance"
        );
        assert_eq!(
            exec["kibana"]["alert"]["group"]["id"], change["kibana"]["alert"]["group"]["id"],
            "one match"
        );
    }
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
