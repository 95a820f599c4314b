//! The macOS file actions end to end with the real binaries: `nightjar-sensor run --source
//! eslogger` runs a stand-in `eslogger` (`$NIGHTJAR_ESLOGGER`) that checks it was asked for
//! `open deleteextattr btm_launch_item_add` besides the rest and prints the realistic
//! stream of `tests/fixtures/eslogger/macos-file-actions.ndjson`; `nightjar-agent run` has Elastic's whole
//! macOS head folder loaded. Elastic's rules on opens, quarantine removal and launch items fire
//! on the behaviours (an unsigned binary reading Chrome's cookies, osascript reading Time
//! Machine's preferences, an unsigned installer stripping a quarantine, python adding a hidden
//! launch daemon then loading it with launchctl, as Kibana's building blocks and shell alert),
//! and their near misses (Chrome reading its own cookies, backupd, `/usr/bin/xattr`, a
//! temporary folder, a visible agent, a login item) raise nothing. The sensor's open filter
//! keeps the unrelated open out of the ring, counted as filtered.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_tests::agent_cli::{alerts, counter, status, verify};
use nightjar_tests::harness::{ChildGuard, TempState, bin, shared, wait_for, workspace_root};
use serde_json::Value;

const RULES: &str = "elastic-rules/macos-head-14cf530f";

/// Prints the stream once, then idles (a live eslogger does not exit).
const FAKE_ESLOGGER: &str = r#"#!/bin/sh
want="exec fork exit setuid setgid seteuid setegid setreuid setregid create close rename unlink open deleteextattr btm_launch_item_add"
[ "$*" = "$want" ] || { echo "fake eslogger: expected '$want', got '$*'" >&2; exit 64; }
dir=$(dirname "$0")
cat "$dir/stream.ndjson"
echo $$ > "$dir/idle.pid"
exec sleep 600
"#;

fn rule_id(file: &str) -> String {
    let path = shared(&format!("{RULES}/{file}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .find_map(|l| l.trim().strip_prefix("rule_id = "))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("{}: no rule_id", path.display()))
}

fn of_rule<'a>(all: &'a [Value], file: &str) -> Vec<&'a Value> {
    let id = rule_id(file);
    all.iter()
        .filter(|a| a["kibana"]["alert"]["rule"]["rule_id"] == id.as_str())
        .collect()
}

fn pid(a: &Value) -> Option<u64> {
    a["process"]["pid"].as_u64()
}

#[test]
fn elastic_rules_on_opens_quarantine_and_launch_items_fire_and_near_misses_do_not() {
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "[rules]\npaths = [{:?}]\n",
        shared(RULES).display().to_string()
    ));
    let dir = st.path().join("fake");
    std::fs::create_dir(&dir).unwrap();
    // The fixture is an excerpt (global 9001.., per type 101..); a live eslogger is a new
    // client numbered from 0, per type and globally, so the lines are renumbered.
    let fixture = std::fs::read_to_string(
        workspace_root().join("tests/fixtures/eslogger/macos-file-actions.ndjson"),
    )
    .unwrap();
    let mut per_type: std::collections::HashMap<u64, u64> = Default::default();
    let stream: Vec<String> = fixture
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            let seq = per_type
                .entry(v["event_type"].as_u64().unwrap())
                .or_default();
            v["seq_num"] = (*seq).into();
            *seq += 1;
            v["global_seq_num"] = i.into();
            v.to_string()
        })
        .collect();
    std::fs::write(dir.join("stream.ndjson"), stream.join("\n") + "\n").unwrap();
    let fake = dir.join("eslogger");
    std::fs::write(&fake, FAKE_ESLOGGER).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let agent_log = st.path().join("agent.log");
    let mut agent = ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(File::create(&agent_log).unwrap()),
    );
    let log = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let running = wait_for(Duration::from_secs(60), || {
        status(&cfg).filter(|s| s["agent_running"] == true)
    });
    assert!(
        running.is_some(),
        "agent did not start: {}",
        log(&agent_log)
    );

    let sensor_log = st.path().join("sensor.log");
    let mut sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "eslogger", "--config"])
            .arg(&cfg)
            .env("NIGHTJAR_ESLOGGER", &fake)
            .stderr(File::create(&sensor_log).unwrap()),
    );
    // 18 lines: 2 map to no event (another attribute, a login item), 1 open is filtered.
    let s = wait_for(Duration::from_secs(60), || {
        status(&cfg)
            .filter(|s| counter(s, "events_received") >= 15 && dir.join("idle.pid").exists())
    });
    let idle = std::fs::read_to_string(dir.join("idle.pid")).ok();
    sensor.kill9();
    if let Some(p) = idle.as_deref().and_then(|p| p.trim().parse::<i32>().ok()) {
        // SAFETY: signals the idle stand-in this test started (through the sensor).
        unsafe {
            libc::kill(p, libc::SIGKILL);
        }
    }
    let s = s.unwrap_or_else(|| {
        panic!(
            "events did not arrive: {:?}\nsensor: {}\nagent: {}",
            status(&cfg),
            log(&sensor_log),
            log(&agent_log)
        )
    });
    assert_eq!(counter(&s, "events_received"), 15, "{s}");
    assert_eq!(counter(&s, "events_dropped"), 0, "{s}");
    let filtered = wait_for(Duration::from_secs(10), || {
        status(&cfg).filter(|s| counter(s, "events_filtered") >= 1)
    });
    assert_eq!(
        filtered.map(|s| counter(&s, "events_filtered")),
        Some(1),
        "the open of libobjc is left out by the sensor"
    );
    // Let the sequence's shell alert follow its building blocks.
    let all = wait_for(Duration::from_secs(30), || {
        let a = alerts(&cfg);
        (!of_rule(&a, "persistence_creation_change_launch_agents_file.toml").is_empty())
            .then_some(a)
    })
    .unwrap_or_else(|| panic!("no sequence alert: {:?}\n{}", alerts(&cfg), log(&agent_log)));

    let browser = of_rule(
        &all,
        "credential_access_suspicious_web_browser_sensitive_file_access.toml",
    );
    assert_eq!(
        browser.iter().map(|a| pid(a)).collect::<Vec<_>>(),
        [Some(5200)]
    );
    assert_eq!(
        browser[0]["kibana"]["alert"]["original_event"]["action"],
        "open"
    );
    assert_eq!(
        browser[0]["file"]["path"],
        "/Users/bob/Library/Application Support/Google/Chrome/Default/Cookies"
    );
    let fda = of_rule(&all, "discovery_full_disk_access_check.toml");
    assert_eq!(
        fda.iter().map(|a| pid(a)).collect::<Vec<_>>(),
        [Some(5201)],
        "osascript, not backupd"
    );
    let quarantine = of_rule(&all, "defense_evasion_attempt_del_quarantine_attrib.toml");
    assert_eq!(
        quarantine.len(),
        1,
        "not xattr, not /private/var/folders: {quarantine:?}"
    );
    assert_eq!(
        quarantine[0]["kibana"]["alert"]["original_event"]["action"],
        "extended_attributes_delete"
    );
    assert_eq!(
        quarantine[0]["file"]["path"],
        "/Users/bob/Downloads/Invoice 2026.app"
    );
    assert_eq!(pid(quarantine[0]), Some(5210));

    let hidden = of_rule(
        &all,
        "persistence_evasion_hidden_launch_agent_deamon_creation.toml",
    );
    assert_eq!(
        hidden.len(),
        1,
        "the visible agent and the login item raise nothing"
    );
    assert_eq!(
        hidden[0]["kibana"]["alert"]["original_event"]["action"],
        "launch_daemon"
    );
    assert_eq!(
        hidden[0]["Persistence"]["name"],
        ".com.apple.softwareupdate helper.plist"
    );
    assert_eq!(
        hidden[0]["Persistence"]["executable"],
        "/Users/Shared/.local/.updater"
    );
    assert_eq!(pid(hidden[0]), Some(5300), "the instigator");

    // The sequence: the launch item by python's entity, then launchctl load by its child.
    let seq = of_rule(&all, "persistence_creation_change_launch_agents_file.toml");
    assert_eq!(
        seq.len(),
        3,
        "two building blocks and the shell alert: {seq:?}"
    );
    let group = &seq[0]["kibana"]["alert"]["group"]["id"];
    assert!(group.is_string());
    assert!(
        seq.iter()
            .all(|a| &a["kibana"]["alert"]["group"]["id"] == group)
    );
    assert_eq!(pid(seq[0]), Some(5300));
    assert_eq!(
        seq[0]["kibana"]["alert"]["original_event"]["action"],
        "launch_daemon"
    );
    assert_eq!(pid(seq[1]), Some(5301));
    assert_eq!(seq[1]["process"]["name"], "launchctl");
    assert_eq!(
        seq[0]["process"]["entity_id"], seq[1]["process"]["parent"]["entity_id"],
        "joined by entity id"
    );
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "{text}");
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_timeout(Duration::from_secs(20)).is_some());
}
