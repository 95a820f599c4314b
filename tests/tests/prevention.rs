//! Prevention on Linux, live: a blocking rule (`[rules] block`) compiled into the eBPF exec
//! probe kills the new image before it runs an instruction, and the agent records one signed
//! alert that says so; a fleet policy's `block` list takes effect, and stops, without a
//! sensor restart. Needs root (or CAP_BPF + CAP_PERFMON); under CI=true their absence is a
//! failure.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nightjar_tests::agent_cli::{alerts, counter, status, verify};
use nightjar_tests::harness::{
    ChildGuard, TempState, bin, in_ci, is_root, wait_for, workspace_root,
};
use nightjar_tests::pipeline::{spawn_agent, stop, wait_agent_ready, wait_status};
use nightjar_tests::policy::{PolicySigner, StandIn, policy_doc};

const KCC_RULE: &str = "c4ab5c12-3447-4aaf-891b-c474270fe4d9";

/// The live tests each run a sensor whose probe kills every matching `kcc` on the host, not
/// only their own: they take turns.
static LIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn live_turn() -> std::sync::MutexGuard<'static, ()> {
    LIVE.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn may_run() -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "CI runs as root: the live eBPF tests must run");
    eprintln!("live eBPF test needs root; not run");
    false
}

fn wait_log(path: &Path, needle: &str) {
    let found = wait_for(Duration::from_secs(90), || {
        std::fs::read_to_string(path)
            .ok()
            .filter(|t| t.contains(needle))
    });
    assert!(
        found.is_some(),
        "no `{needle}` in {}:\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

/// `kcc copy_cred_cache`, with `kcc` a copy of `touch` (it leaves a file named after its
/// argument, so whether it ran is plain), is killed before it runs: no file, killed by
/// SIGKILL, one `blocked` alert that verifies; `kcc list` runs as usual and alerts nothing.
#[test]
fn a_blocking_rule_stops_kcc_copy_cred_cache_before_it_runs() {
    if !may_run() {
        return;
    }
    let _turn = live_turn();
    let st = TempState::new();
    let rule = workspace_root().join("packaging/linux/rules/kcc-linux.toml");
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = false\nmax_signals = 0\npaths = [{:?}]\nblock = [\"{KCC_RULE}\"]\n",
        rule.display().to_string()
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let log = st.path().join("sensor.log");
    let _sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stderr(File::create(&log).unwrap()),
    );
    wait_log(&log, "blocking rules loaded into the exec probe");
    wait_log(&log, "eBPF probes attached");

    let work = st.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let kcc = work.join("kcc");
    std::fs::copy("/usr/bin/touch", &kcc).unwrap();
    std::fs::set_permissions(&kcc, std::fs::Permissions::from_mode(0o755)).unwrap();

    let blocked = Command::new(&kcc)
        .arg("copy_cred_cache")
        .current_dir(&work)
        .status()
        .unwrap();
    assert!(!blocked.success(), "kcc copy_cred_cache must not succeed");
    assert_eq!(blocked.signal(), Some(libc::SIGKILL), "{blocked:?}");
    assert!(
        !work.join("copy_cred_cache").exists(),
        "kcc ran: it left its file"
    );

    let allowed = Command::new(&kcc)
        .arg("list")
        .current_dir(&work)
        .status()
        .unwrap();
    assert!(allowed.success(), "kcc list must run: {allowed:?}");
    assert!(work.join("list").exists());

    let s = wait_status(&st, &cfg, "agent", "the blocked alert", |s| {
        counter(s, "alerts_stored") >= 1 && counter(s, "exec_blocked") >= 1
    });
    assert_eq!(counter(&s, "block_failed_open"), 0, "{s}");
    // Let the `kcc list` exec be read too before counting alerts.
    std::thread::sleep(Duration::from_secs(2));
    let ours: Vec<_> = alerts(&cfg)
        .into_iter()
        .filter(|a| a["process"]["executable"] == kcc.display().to_string())
        .collect();
    assert_eq!(ours.len(), 1, "one alert, for the blocked exec: {ours:?}");
    let a = &ours[0];
    assert_eq!(a["nightjar"]["action"], "blocked", "{a}");
    assert_eq!(a["kibana"]["alert"]["rule"]["rule_id"], KCC_RULE);
    assert_eq!(a["process"]["args"][1], "copy_cred_cache");
    let s = status(&cfg).unwrap();
    assert_eq!(counter(&s, "exec_blocked"), 1, "{s}");
    stop(&mut agent, &st, "agent");
    let (code, out) = verify(&cfg);
    assert_eq!(code, 0, "{out}");
}

/// The running sensor follows the policy the agent applies: a version whose `block` list
/// names the kcc rule kills `kcc copy_cred_cache` without a sensor restart, and the next
/// version, without it, lets it run again. A forged policy planted as the kept file is
/// refused by the sensor (it verifies the kept envelope itself) and changes nothing.
#[test]
fn a_policy_block_list_takes_effect_and_stops_without_a_sensor_restart() {
    if !may_run() {
        return;
    }
    let _turn = live_turn();
    let stand = StandIn::start();
    let key = PolicySigner::generate();
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = false\nmax_signals = 0\n\
         [upload]\ninterval_ms = 100\nallow_insecure_http = true\n\
         [fleet]\nserver = {:?}\nenroll_token = \"nje_standin\"\npolicy_public_key = {:?}\n\
         heartbeat_interval_ms = 300\npolicy_interval_ms = 400\n",
        stand.url(),
        key.public_b64()
    ));
    let rule =
        std::fs::read_to_string(workspace_root().join("packaging/linux/rules/kcc-linux.toml"))
            .unwrap();
    let doc = |version: u64, block: &[&str]| {
        let mut d = policy_doc(version, false, &[("kcc-linux.toml", &rule)], &[]);
        d["block"] = serde_json::json!(block);
        d
    };
    stand.offer(key.envelope(&doc(1, &[])), 1);
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_status(&st, &cfg, "agent", "policy version 1 applied", |s| {
        s["policy_version"] == 1
    });
    let log = st.path().join("sensor.log");
    let _sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stderr(File::create(&log).unwrap()),
    );
    wait_log(&log, "eBPF probes attached");

    let work = st.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let kcc = work.join("kcc");
    std::fs::copy("/usr/bin/touch", &kcc).unwrap();
    std::fs::set_permissions(&kcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = work.join("copy_cred_cache");
    let run_kcc = || {
        let _ = std::fs::remove_file(&copy);
        let status = Command::new(&kcc)
            .arg("copy_cred_cache")
            .current_dir(&work)
            .status()
            .unwrap();
        (status, copy.exists())
    };
    let (status, ran) = run_kcc();
    assert!(
        status.success() && ran,
        "version 1 blocks nothing: {status:?}"
    );

    // Version 2 blocks it: the sensor swaps its kernel set on its next tick.
    stand.offer(key.envelope(&doc(2, &[KCC_RULE])), 2);
    wait_status(&st, &cfg, "agent", "policy version 2 applied", |s| {
        s["policy_version"] == 2
    });
    wait_log(&log, "epoch=2");
    let (status, ran) = run_kcc();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(!ran, "kcc ran under version 2: it left its file");

    // A forged envelope planted as the kept file is refused by the sensor itself.
    let kept = st.state_dir().join("policy.dsse.json");
    let forged = PolicySigner::generate().envelope(&doc(9, &[]));
    let planted = st.state_dir().join("planted");
    std::fs::write(&planted, &forged).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    let genuine = std::fs::read(&kept).unwrap();
    std::fs::rename(&planted, &kept).unwrap();
    wait_log(&log, "not signed by the pinned policy key");
    let (status, ran) = run_kcc();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the forgery changed nothing: {status:?}"
    );
    assert!(!ran);
    std::fs::write(&planted, &genuine).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&planted, &kept).unwrap();
    // The genuine version 2 put back is no newer than what runs: refused, nothing changes.
    wait_log(&log, "policy version 2 is not newer than version 2");

    // Version 3 drops it from the block list: kcc runs again (and still detects).
    stand.offer(key.envelope(&doc(3, &[])), 3);
    wait_status(&st, &cfg, "agent", "policy version 3 applied", |s| {
        s["policy_version"] == 3
    });
    wait_log(&log, "epoch=3");
    let (status, ran) = run_kcc();
    assert!(
        status.success() && ran,
        "version 3 blocks nothing: {status:?}"
    );

    let s = wait_status(&st, &cfg, "agent", "the blocked exec counted", |s| {
        counter(s, "exec_blocked") >= 2
    });
    assert_eq!(counter(&s, "block_failed_open"), 0, "{s}");
    stop(&mut agent, &st, "agent");
}

/// A rule that would block Nightjar itself, or init, is refused for blocking (it still
/// detects), and the sensor says why.
#[test]
fn blocking_nightjar_or_init_is_refused() {
    let st = TempState::new();
    let rules = st.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for (id, name) in [("block-agent", "nightjar-agent"), ("block-init", "systemd")] {
        std::fs::write(
            rules.join(format!("{id}.toml")),
            format!(
                "[metadata]\ncreation_date = \"2026/01/01\"\n[rule]\nrule_id = \"{id}\"\n\
                 name = \"{id}\"\nseverity = \"low\"\nrisk_score = 1\ndescription = \"d\"\n\
                 type = \"eql\"\nlanguage = \"eql\"\n\
                 query = 'process where process.name == \"{name}\"'\n"
            ),
        )
        .unwrap();
    }
    let out = nightjar_tests::harness::run(
        Command::new(bin("nightjar-agent"))
            .args([
                "rules",
                "check",
                "--no-builtin",
                "--block",
                "block-agent",
                "--block",
                "block-init",
            ])
            .arg(&rules),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for name in ["nightjar-agent", "systemd"] {
        assert!(
            text.contains(&format!(
                "could block `{name}`, which Nightjar never blocks"
            )),
            "{text}"
        );
    }
    assert!(!text.contains("] blocks"), "{text}");
}

/// The sensor's file filter follows the policy the agent applies, live: version 1's rule
/// reads file creations in one directory, so the kernel filters those in another; version 2's
/// rule on that other directory makes the running sensor rebuild its filter maps, and a
/// creation there then reaches the agent and alerts.
#[test]
fn the_file_filter_follows_the_policy_rules_without_a_sensor_restart() {
    if !may_run() {
        return;
    }
    let _turn = live_turn();
    let stand = StandIn::start();
    let key = PolicySigner::generate();
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = false\nmax_signals = 0\n\
         [upload]\ninterval_ms = 100\nallow_insecure_http = true\n\
         [fleet]\nserver = {:?}\nenroll_token = \"nje_standin\"\npolicy_public_key = {:?}\n\
         heartbeat_interval_ms = 300\npolicy_interval_ms = 400\n",
        stand.url(),
        key.public_b64()
    ));
    let work = st.path().join("work");
    let (dir_a, dir_b) = (work.join("a"), work.join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let rule = |id: &str, dir: &Path| {
        format!(
            "[metadata]\ncreation_date = \"2026/01/01\"\n[rule]\nrule_id = \"{id}\"\n\
             name = \"{id}\"\ndescription = \"d\"\nseverity = \"low\"\nrisk_score = 21\n\
             type = \"eql\"\nlanguage = \"eql\"\n\
             query = 'file where event.type == \"creation\" and file.path : \"{}/*\"'\n",
            dir.display()
        )
    };
    let (rule_a, rule_b) = (rule("files-a", &dir_a), rule("files-b", &dir_b));
    stand.offer(
        key.envelope(&policy_doc(1, false, &[("a.toml", &rule_a)], &[])),
        1,
    );
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_status(&st, &cfg, "agent", "policy version 1 applied", |s| {
        s["policy_version"] == 1
    });
    let log = st.path().join("sensor.log");
    let _sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stderr(File::create(&log).unwrap()),
    );
    wait_log(&log, "eBPF probes attached");
    let alerted = |rule: &str, path: &Path| {
        alerts(&cfg).into_iter().any(|a| {
            a["kibana"]["alert"]["rule"]["rule_id"] == rule
                && a["file"]["path"] == path.display().to_string()
        })
    };
    let touch = |p: &Path| std::fs::write(p, b"x").unwrap();
    let one = dir_a.join("one");
    touch(&one);
    assert!(
        wait_for(Duration::from_secs(30), || alerted("files-a", &one)
            .then_some(()))
        .is_some(),
        "version 1's rule alerts on its directory"
    );

    stand.offer(
        key.envelope(&policy_doc(2, false, &[("b.toml", &rule_b)], &[])),
        2,
    );
    wait_status(&st, &cfg, "agent", "policy version 2 applied", |s| {
        s["policy_version"] == 2
    });
    wait_log(&log, "rules of the kept policy loaded version=2");
    let after = dir_b.join("after");
    touch(&after);
    assert!(
        wait_for(Duration::from_secs(30), || alerted("files-b", &after)
            .then_some(()))
        .is_some(),
        "the rebuilt filter publishes version 2's directory: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        text.matches("file events the rules can match").count(),
        3,
        "the local rules' filter and version 1's at start, version 2's later: {text}"
    );
    stop(&mut agent, &st, "agent");
}
