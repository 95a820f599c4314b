//! `nightjar-agent scan` and `rules check`, run as real processes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

fn agent(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightjar-agent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nightjar-agent");
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn alerts(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON alert per line"))
        .collect()
}

fn pids(alerts: &[serde_json::Value]) -> Vec<u64> {
    alerts
        .iter()
        .map(|a| a["process"]["pid"].as_u64().unwrap())
        .collect()
}

#[test]
fn seed_rule_alerts_on_702_and_704() {
    let sample = shared("fixtures/eslogger/kcc-sample.ndjson");
    let out = agent(
        &["scan", "--format", "eslogger", sample.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = alerts(&out);
    assert_eq!(pids(&a), vec![702, 704]);
    let first = &a[0];
    assert_eq!(first["event"]["kind"], "signal");
    let k = &first["kibana"]["alert"];
    assert_eq!(k["rule"]["rule_id"], "ad88231f-e2ab-491c-8fc6-64746da26cfe");
    assert_eq!(k["rule"]["version"], 107);
    assert_eq!(k["rule"]["type"], "query");
    assert_eq!(k["rule"]["language"], "kuery");
    assert_eq!(k["severity"], "high");
    assert_eq!(k["risk_score"], 73);
    assert_eq!(k["rule"]["threat"][0]["tactic"]["id"], "TA0006");
    assert_eq!(k["uuid"].as_str().unwrap().len(), 36);
    assert!(
        k["original_time"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-20T09:00:00")
    );
    assert_eq!(first["process"]["name"], "kcc");
    assert_eq!(first["host"]["os"]["type"], "macos");
    assert!(
        first["process"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "copy_cred_cache")
    );
    assert!(k.get("suppression").is_none());
    // Deterministic ids: the same input gives the same uuids.
    let again = alerts(&agent(
        &["scan", "--format", "eslogger", sample.to_str().unwrap()],
        None,
    ));
    assert_eq!(again[0]["kibana"]["alert"]["uuid"], k["uuid"]);
}

#[test]
fn stdin_no_builtin_and_extra_rules() {
    let sample = std::fs::read(shared("fixtures/eslogger/kcc-sample.ndjson")).unwrap();
    let out = agent(
        &["scan", "--format", "eslogger", "--no-builtin", "-"],
        Some(&sample),
    );
    assert!(out.status.success());
    assert!(alerts(&out).is_empty());
    let head = shared("elastic-rules/macos-head-14cf530f/credential_access_kerberosdump_kcc.toml");
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--no-builtin",
            "--rules",
            head.to_str().unwrap(),
            "-",
        ],
        Some(&sample),
    );
    assert!(out.status.success());
    let a = alerts(&out);
    assert_eq!(pids(&a), vec![702, 704]);
    assert_eq!(a[0]["kibana"]["alert"]["rule"]["language"], "eql");
}

#[test]
fn the_builtin_rule_and_a_folder_holding_it_alert_once_per_event() {
    let macos = shared("elastic-rules/macos-head-14cf530f");
    let sample = shared("fixtures/eslogger/kcc-sample.ndjson");
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--rules",
            macos.to_str().unwrap(),
            sample.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = alerts(&out);
    let kcc: Vec<_> = a
        .iter()
        .filter(|x| {
            x["kibana"]["alert"]["rule"]["rule_id"] == "ad88231f-e2ab-491c-8fc6-64746da26cfe"
        })
        .collect();
    assert_eq!(
        kcc.len(),
        2,
        "one alert per event, not one per copy of the rule"
    );
    // The folder's rule (EQL, v109+) replaced the built-in one (KQL, v107).
    assert!(
        kcc.iter()
            .all(|x| x["kibana"]["alert"]["rule"]["language"] == "eql")
    );
}

#[test]
fn scan_applies_kibana_exception_exports() {
    let dir = tempfile::tempdir().unwrap();
    let exceptions = dir.path().join("endpoint.ndjson");
    // As Kibana exports the Endpoint Security exception list: the list, one item, the
    // summary line. The item excepts kcc run by its full path (pid 704's argv[0]).
    std::fs::write(
        &exceptions,
        concat!(
            r#"{"_version":"WzEsMV0=","created_at":"2026-01-05T10:00:00.000Z","created_by":"elastic","description":"Endpoint Security Exception List","id":"endpoint_list","immutable":false,"list_id":"endpoint_list","name":"Endpoint Security Exception List","namespace_type":"agnostic","os_types":[],"tags":[],"tie_breaker_id":"t","type":"endpoint","updated_at":"2026-01-05T10:00:00.000Z","updated_by":"elastic","version":1}"#,
            "\n",
            r#"{"comments":[],"created_at":"2026-01-05T10:00:00.000Z","created_by":"elastic","description":"IT's kcc wrapper","entries":[{"field":"process.executable.caseless","operator":"included","type":"match","value":"/USR/BIN/KCC"},{"field":"process.args","operator":"included","type":"match","value":"/usr/bin/kcc"}],"id":"x1","item_id":"it-kcc-wrapper","list_id":"endpoint_list","name":"IT kcc wrapper","namespace_type":"agnostic","os_types":["macos"],"tags":[],"tie_breaker_id":"t2","type":"simple","updated_at":"2026-01-05T10:00:00.000Z","updated_by":"elastic"}"#,
            "\n",
            r#"{"exported_exception_list_count":1,"exported_exception_list_item_count":1,"missing_exception_list_item_count":0,"missing_exception_list_items":[],"missing_exception_lists":[],"missing_exception_lists_count":0}"#,
            "\n"
        ),
    )
    .unwrap();
    let sample = shared("fixtures/eslogger/kcc-sample.ndjson");
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--exceptions",
            exceptions.to_str().unwrap(),
            sample.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pids(&alerts(&out)), vec![702]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 match(es) of rule ad88231f-e2ab-491c-8fc6-64746da26cfe excepted"),
        "{err}"
    );

    // A hostile exception file is a usage error naming the file and line.
    std::fs::write(
        &exceptions,
        "{\"list_id\":\"x\",\"type\":\"detection\"}\n{\"item_id\":7}\n",
    )
    .unwrap();
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--exceptions",
            exceptions.to_str().unwrap(),
            sample.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}:2: item_id: expected a string",
            exceptions.display()
        )),
        "{err}"
    );
}

/// Like `nightjar-sensor replay`: a bad line is reported and skipped, the scan goes on, and
/// the exit code says that some lines did not decode (1, with a summary).
#[test]
fn malformed_lines_are_reported_skipped_and_exit_1() {
    let sample = std::fs::read_to_string(shared("fixtures/eslogger/kcc-sample.ndjson")).unwrap();
    let mut lines: Vec<&str> = sample.lines().collect();
    lines.insert(1, "{not json");
    lines.insert(3, "");
    let input = lines.join("\n");
    let out = agent(
        &["scan", "--format", "eslogger", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("<stdin>:2: "), "{err}");
    assert!(err.contains("1 lines did not decode"), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert_eq!(pids(&alerts(&out)), vec![702, 704]);
}

#[test]
fn unreadable_input_and_bad_rules_exit_2() {
    let sample = shared("fixtures/eslogger/kcc-sample.ndjson");
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "/nonexistent/events.ndjson",
            sample.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/events.ndjson"));
    // The readable file was still scanned.
    assert_eq!(pids(&alerts(&out)), vec![702, 704]);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rule]\nrule_id = \"x\"\nname = \"n\"\nseverity = \"low\"\nrisk_score = 1\ntype = \"query\"\nquery = \"a:(b\"\n").unwrap();
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--rules",
            bad.to_str().unwrap(),
            sample.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:7:", bad.display())), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn rules_check_reports_each_rule() {
    // Today's macOS and Linux rules: every one loads or is unsupported with its reason, and
    // the macOS folder's kcc rule replaces the built-in one.
    let macos = shared("elastic-rules/macos-head-14cf530f");
    let linux = shared("elastic-rules/linux-head-14cf530f");
    let out = agent(
        &[
            "rules",
            "check",
            macos.to_str().unwrap(),
            linux.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().last(),
        Some("461 rules: 339 ok, 121 unsupported, 0 errors, 1 shadowed")
    );
    // Fleet-wide new_terms rules run on the host's own history only when asked.
    assert!(
        text.lines()
            .any(|l| l.starts_with("unsupported (fleet-wide new_terms rule"))
    );
    let out = agent(
        &[
            "rules",
            "check",
            "--new-terms-per-host",
            macos.to_str().unwrap(),
            linux.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success());
    let per_host = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        per_host.lines().last(),
        Some("461 rules: 359 ok, 101 unsupported, 0 errors, 1 shadowed")
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("unsupported (event category `network`"))
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("ok: ") && l.contains("credential_access_high_volume_of_pbpaste")
        )
    );
    // Credential changes are events this host has: Elastic's uid_change rules run.
    assert!(text.lines().any(|l| l.starts_with("ok: ")
        && l.contains("privilege_escalation_potential_privesc_via_general_sequence_child")));
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok: ")
                && l.contains("privilege_escalation_kworker_uid_elevation"))
    );
    assert!(text.lines().any(|l| l.starts_with(&format!(
        "shadowed (replaced by {}/credential_access_kerberosdump_kcc.toml): <builtin>/",
        macos.display()
    ))));

    // The whole shared tree holds two commits of the macOS rules: every rule_id of the older
    // one is also in the newer, and each duplicate is an error naming both files.
    let all = shared("elastic-rules");
    let out = agent(&["rules", "check", all.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().last(),
        Some("494 rules: 339 ok, 121 unsupported, 33 errors, 1 shadowed")
    );
    let kuery = shared("elastic-rules/macos-kuery-c58d59ee");
    let head_file = macos.join("privilege_escalation_root_crontab_filemod.toml");
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "error ({}/privilege_escalation_root_crontab_filemod.toml:23:1: duplicate rule_id \
             `0ff84c42-873d-41a2-a4ed-08d74d352d01`: {}:23:1 also defines it",
            kuery.display(),
            head_file.display()
        ))),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[rule]\nrule_id = \"x\"\nname = \"n\"\nseverity = \"low\"\nrisk_score = 1\ntype = \"eql\"\nquery = \"process where a ==\"\n").unwrap();
    let out = agent(&["rules", "check", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("error ({}:7:", bad.display())),
        "{text}"
    );
    assert!(
        text.ends_with("1 rules: 0 ok, 0 unsupported, 1 errors\n"),
        "{text}"
    );
}

#[test]
fn ecs_input_is_scanned_too() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/ecs/defend-process.ndjson");
    let out = agent(
        &["scan", "--format", "ecs", fixture.to_str().unwrap()],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = alerts(&out);
    assert!(pids(&a).contains(&8004), "{:?}", pids(&a));
    // Only the kcc executions match the seed rule (not security, curl, zsh...).
    assert!(a.iter().all(|x| x["process"]["name"] == "kcc"));
}

/// `scan` and `nightjar-sensor replay` read NDJSON with one reader: an argument with invalid
/// UTF-8 keeps its event (U+FFFD in place of the bytes), so the odd line is still evaluated.
#[test]
fn invalid_utf8_keeps_the_event() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/eslogger/invalid-utf8.ndjson");
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("prefix.toml");
    std::fs::write(
        &rule,
        "[rule]\nrule_id = \"prefix\"\nname = \"kcc copy_cred_cache prefix\"\nseverity = \"low\"\n\
         risk_score = 21\ntype = \"query\"\nlanguage = \"kuery\"\n\
         query = \"process.name:kcc and process.args:copy_cred_cache*\"\n",
    )
    .unwrap();
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--no-builtin",
            "--rules",
            rule.to_str().unwrap(),
            fixture.to_str().unwrap(),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{err}");
    let a = alerts(&out);
    assert_eq!(a.len(), 3, "every line is an event, the odd one included");
    assert_eq!(
        a[1]["process"]["args"][1],
        "copy_cred_cache\u{FFFD}\u{FFFD}"
    );
}

/// A file rule from Elastic's macOS folder over eslogger file events: the hidden plists are
/// created, modified or renamed into place (4 alerts), the visible one, the deletion and the
/// unrelated write are not.
#[test]
fn file_rules_alert_on_eslogger_file_events() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/eslogger/file-events.ndjson");
    let rule = shared("elastic-rules/macos-head-14cf530f/persistence_hidden_plist_filename.toml");
    let out = agent(
        &[
            "scan",
            "--format",
            "eslogger",
            "--no-builtin",
            "--rules",
            rule.to_str().unwrap(),
            fixture.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = alerts(&out);
    let paths: Vec<&str> = a
        .iter()
        .map(|x| x["file"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/Users/bob/Library/LaunchAgents/.com.apple.updater.plist",
            "/Users/bob/Library/LaunchAgents/.com.apple.updater.plist",
            "/Library/LaunchDaemons/.y.plist",
            "/Users/bob/Library/LaunchAgents/.again.plist",
        ]
    );
    let actions: Vec<&str> = a
        .iter()
        .map(|x| {
            x["kibana"]["alert"]["original_event"]["action"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(actions, ["creation", "modification", "rename", "creation"]);
    assert_eq!(
        a[0]["kibana"]["alert"]["original_event"]["category"][0],
        "file"
    );
    assert_eq!(a[0]["process"]["name"], "cp");
    assert_eq!(a[0]["file"]["name"], ".com.apple.updater.plist");
    assert_eq!(a[0]["file"]["extension"], "plist");
    assert_eq!(a[2]["file"]["Ext"]["original"]["path"], "/tmp/.y.plist");
    // One process instance, one entity id, in every alert it causes.
    let cp = a[0]["process"]["entity_id"].as_str().unwrap();
    assert_eq!(a[1]["process"]["entity_id"], cp);
    assert_eq!(a[3]["process"]["entity_id"], cp);
    assert_ne!(a[2]["process"]["entity_id"], cp);
    // Two alerts on one file by one process are two alerts (distinct uuids).
    assert_ne!(
        a[0]["kibana"]["alert"]["uuid"],
        a[1]["kibana"]["alert"]["uuid"]
    );
}

/// An ECS exec of `pbpaste` at `minute:second`.
fn pbpaste(pid: u32, minute: u32, second: u32) -> String {
    format!(
        r#"{{"@timestamp":"2026-11-20T10:{minute:02}:{second:02}Z","event":{{"category":["process"],"type":["start"],"action":"exec","kind":"event"}},"host":{{"os":{{"type":"macos"}}}},"process":{{"pid":{pid},"executable":"/usr/bin/pbpaste","name":"pbpaste","args":["pbpaste"],"parent":{{"pid":400}}}},"user":{{"id":"501"}}}}"#
    )
}

fn scan_with(rule: &Path, input: &str) -> Vec<serde_json::Value> {
    let out = agent(
        &[
            "scan",
            "--format",
            "ecs",
            "--no-builtin",
            "--rules",
            rule.to_str().unwrap(),
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    alerts(&out)
}

#[test]
fn a_sequence_match_is_building_blocks_and_a_shell_sharing_a_group() {
    // Elastic's "High Volume of Pbpaste": five pbpaste within a minute on one host.
    let rule =
        shared("elastic-rules/macos-head-14cf530f/credential_access_high_volume_of_pbpaste.toml");
    let five: String = (0..5)
        .map(|i| pbpaste(9000 + i, 1, 10 + i * 5) + "\n")
        .collect();
    let a = scan_with(&rule, &five);
    assert_eq!(a.len(), 6, "five building blocks and a shell: {a:?}");
    let group = a[0]["kibana"]["alert"]["group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (i, b) in a[..5].iter().enumerate() {
        assert_eq!(b["kibana"]["alert"]["building_block_type"], "default");
        assert_eq!(b["kibana"]["alert"]["group"]["id"], group.as_str());
        assert_eq!(b["kibana"]["alert"]["group"]["index"], i);
        assert_eq!(b["process"]["pid"], 9000 + i as u64);
    }
    let shell = &a[5];
    assert!(
        shell["kibana"]["alert"]
            .get("building_block_type")
            .is_none()
    );
    assert_eq!(shell["kibana"]["alert"]["group"]["id"], group.as_str());
    // Fields every event shares stay in the shell; those that differ go.
    assert_eq!(shell["process"]["name"], "pbpaste");
    assert!(shell["process"].get("pid").is_none(), "{shell}");
    let uuids: std::collections::HashSet<_> = a
        .iter()
        .map(|x| x["kibana"]["alert"]["uuid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(uuids.len(), 6);
    // The same input again: the same ids.
    assert_eq!(
        scan_with(&rule, &five)[5]["kibana"]["alert"]["uuid"],
        a[5]["kibana"]["alert"]["uuid"]
    );

    // Four are not enough; five spread over more than a minute neither.
    let four: String = (0..4)
        .map(|i| pbpaste(9000 + i, 1, 10 + i * 5) + "\n")
        .collect();
    assert!(scan_with(&rule, &four).is_empty());
    let spread: String = (0..5).map(|i| pbpaste(9000 + i, 1 + i, 0) + "\n").collect();
    assert!(scan_with(&rule, &spread).is_empty());
}
