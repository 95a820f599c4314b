//! The Linux packaging: the systemd units verify and keep their hardening, the default config
//! documents every key and stays valid TOML, and the Linux demo rule is the seed rule's query
//! for Linux hosts under its own rule_id.

mod packaging_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use packaging_common::repo_root;

const SEED_RULE_ID: &str = "ad88231f-e2ab-491c-8fc6-64746da26cfe";

fn linux_dir() -> PathBuf {
    repo_root().join("packaging/linux")
}

fn unit(name: &str) -> String {
    std::fs::read_to_string(linux_dir().join(name)).unwrap()
}

/// The values of `key=` lines in a unit (last one wins in systemd; all are returned here).
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

fn one(unit: &str, key: &str) -> String {
    let v = values(unit, key);
    assert_eq!(v.len(), 1, "{key}: {v:?}");
    v.into_iter().next().unwrap()
}

// systemd exists only on Linux; elsewhere (the macOS CI job) there is nothing to verify with.
#[cfg(target_os = "linux")]
#[test]
fn units_pass_systemd_analyze_verify() {
    if !packaging_common::tool_available("systemd-analyze", "--version") {
        return;
    }
    // verify checks that ExecStart's program exists, so the units are verified with their
    // binaries pointed at executables of the same name in a scratch directory.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let mut units = Vec::new();
    for name in ["nightjar-sensor", "nightjar-agent"] {
        std::os::unix::fs::symlink("/bin/true", bin.join(name)).unwrap();
        let text =
            unit(&format!("{name}.service")).replace("/usr/bin/", &format!("{}/", bin.display()));
        let path = dir.path().join(format!("{name}.service"));
        std::fs::write(&path, text).unwrap();
        units.push(path);
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap();
    // verify exits 0 on ignored (misspelt, unparsable) settings and only prints them: any
    // output is a finding.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(target_os = "linux")]
#[test]
fn systemd_analyze_verify_reports_a_broken_setting() {
    if !packaging_common::tool_available("systemd-analyze", "--version") {
        return;
    }
    // The check above relies on verify printing ignored settings; make sure it does here.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.service");
    std::fs::write(
        &path,
        "[Service]\nExecStart=/bin/true\nProtectSystem=everything\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.stderr.is_empty() || !out.status.success());
}

#[test]
fn sensor_unit_holds_only_the_ebpf_capabilities() {
    let u = unit("nightjar-sensor.service");
    assert_eq!(
        one(&u, "ExecStart"),
        "/usr/bin/nightjar-sensor run --config /etc/nightjar/nightjar.toml --source ebpf"
    );
    let caps = one(&u, "CapabilityBoundingSet");
    let caps: Vec<&str> = caps.split_whitespace().collect();
    assert!(
        caps.contains(&"CAP_BPF") && caps.contains(&"CAP_PERFMON"),
        "{caps:?}"
    );
    assert!(!caps.contains(&"CAP_SYS_ADMIN"), "{caps:?}");
    assert_eq!(one(&u, "RuntimeDirectory"), "nightjar");
    assert_eq!(one(&u, "RuntimeDirectoryMode"), "0700");
    assert_eq!(one(&u, "RuntimeDirectoryPreserve"), "yes");
    assert_eq!(one(&u, "NoNewPrivileges"), "yes");
    assert_eq!(one(&u, "ProtectSystem"), "strict");
    assert_eq!(one(&u, "Restart"), "always");
}

#[test]
fn agent_unit_is_sandboxed() {
    let u = unit("nightjar-agent.service");
    assert_eq!(
        one(&u, "ExecStart"),
        "/usr/bin/nightjar-agent run --config /etc/nightjar/nightjar.toml"
    );
    assert_eq!(one(&u, "CapabilityBoundingSet"), "");
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ReadWritePaths", "/var/lib/nightjar /run/nightjar"),
        ("StateDirectory", "nightjar"),
        ("StateDirectoryMode", "0700"),
        ("RuntimeDirectoryMode", "0700"),
        ("RuntimeDirectoryPreserve", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallFilter", "@system-service"),
        ("UMask", "0077"),
        ("Restart", "always"),
    ] {
        assert_eq!(one(&u, key), value, "{key}");
    }
    assert!(!one(&u, "MemoryMax").is_empty());
}

/// Uncomments `#key = value` lines, so the documented defaults are checked as real TOML.
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_default_config(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let all: toml::Table = uncommented(&text)
        .parse()
        .unwrap_or_else(|e| panic!("{} with every key uncommented: {e}", path.display()));
    for key in ["state_dir", "ring_path", "ring_capacity_bytes", "host_id"] {
        assert!(
            all.contains_key(key),
            "{}: {key} undocumented",
            path.display()
        );
    }
    nightjar_proto::config::Config::parse(&uncommented(&text), path)
        .unwrap_or_else(|e| panic!("with every key uncommented: {e}"));
    let rules = all["rules"].as_table().unwrap();
    for key in ["paths", "builtin", "max_signals", "exceptions", "block"] {
        assert!(
            rules.contains_key(key),
            "{}: rules.{key} undocumented",
            path.display()
        );
    }
    assert!(
        all["sensor"].as_table().unwrap().contains_key("env_vars"),
        "{}: sensor.env_vars undocumented",
        path.display()
    );
    for key in [
        "server",
        "enroll_token",
        "policy_public_key",
        "heartbeat_interval_ms",
        "policy_interval_ms",
    ] {
        assert!(
            text.contains(&format!("# {key} = ")),
            "{}: fleet.{key} undocumented",
            path.display()
        );
    }
    let upload = all["upload"].as_table().unwrap();
    for key in [
        "url",
        "interval_ms",
        "batch_max",
        "ca_file",
        "allow_insecure_http",
    ] {
        assert!(
            upload.contains_key(key),
            "{}: upload.{key} undocumented",
            path.display()
        );
    }
}

#[test]
fn default_configs_document_every_key() {
    check_default_config(&linux_dir().join("nightjar.toml"));
    check_default_config(&repo_root().join("packaging/macos/nightjar.toml"));
}

#[test]
fn linux_demo_rule_is_the_seed_query_for_linux() {
    let path = linux_dir().join("rules/kcc-linux.toml");
    let rule: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let r = rule["rule"].as_table().unwrap();
    let rule_id = r["rule_id"].as_str().unwrap();
    assert_ne!(rule_id, SEED_RULE_ID);
    assert_eq!(r["type"].as_str(), Some("query"));
    assert_eq!(r["language"].as_str(), Some("kuery"));
    let query = r["query"].as_str().unwrap();
    assert!(
        query.contains("host.os.type:linux") && !query.contains("macos"),
        "{query}"
    );

    let seed_path = nightjar_tests::harness::shared(
        "elastic-rules/credential_access_kerberosdump_kcc.v107.toml",
    );
    let seed: toml::Table = std::fs::read_to_string(&seed_path)
        .unwrap_or_else(|e| panic!("{}: {e}", seed_path.display()))
        .parse()
        .unwrap();
    let seed_query = seed["rule"]["query"].as_str().unwrap();
    assert_eq!(
        query,
        seed_query.replace("host.os.type:macos", "host.os.type:linux")
    );
    assert_eq!(
        r["risk_score"].as_integer(),
        seed["rule"]["risk_score"].as_integer()
    );
    assert_eq!(r["severity"].as_str(), seed["rule"]["severity"].as_str());
    // scripts/live waits for this rule id.
    let live = std::fs::read_to_string(repo_root().join("scripts/live")).unwrap();
    assert!(live.contains(rule_id));
}

/// One ECS process-start document on a host of the given OS type, running `kcc ARG`.
fn kcc_event(os: &str, arg: &str, pid: u32) -> String {
    serde_json::json!({
        "@timestamp": "2026-11-28T03:00:00Z",
        "event": {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event"},
        "host": {"os": {"type": os}, "hostname": "demo", "id": "demo-host"},
        "process": {
            "pid": pid,
            "executable": "/tmp/kcc",
            "name": "kcc",
            "args": ["/tmp/kcc", arg],
            "args_count": 2,
            "command_line": format!("/tmp/kcc {arg}"),
        },
    })
    .to_string()
}

#[test]
fn the_agent_loads_the_linux_demo_rule_and_it_fires_only_on_linux() {
    let rules = linux_dir().join("rules");
    let agent = nightjar_tests::harness::bin("nightjar-agent");
    let check = Command::new(&agent)
        .args(["rules", "check"])
        .arg(&rules)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "rules check: {report}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let rule_id = "c4ab5c12-3447-4aaf-891b-c474270fe4d9";
    assert!(report.contains(rule_id), "{report}");

    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.ndjson");
    let lines = [
        kcc_event("linux", "copy_cred_cache", 10),
        kcc_event("macos", "copy_cred_cache", 11),
        kcc_event("linux", "list", 12),
    ];
    std::fs::write(&events, lines.join("\n") + "\n").unwrap();
    let scan = Command::new(&agent)
        .args(["scan", "--format", "ecs", "--no-builtin", "--rules"])
        .arg(&rules)
        .arg(&events)
        .output()
        .unwrap();
    assert!(
        scan.status.success(),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let alerts: Vec<serde_json::Value> = String::from_utf8_lossy(&scan.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kibana"]["alert"]["rule"]["rule_id"], rule_id);
    assert_eq!(alerts[0]["process"]["pid"], 10);
}

/// The default config with every documented key uncommented and every path moved under `dir`.
fn full_config_under(default: &Path, dir: &Path) -> PathBuf {
    let mut table: toml::Table = uncommented(&std::fs::read_to_string(default).unwrap())
        .parse()
        .unwrap();
    let at = |name: &str| toml::Value::String(dir.join(name).display().to_string());
    table.insert("state_dir".into(), at("state"));
    table.insert("ring_path".into(), at("run/events.ring"));
    table.insert("ring_capacity_bytes".into(), toml::Value::Integer(4 << 20));
    table.insert("key_file".into(), at("host.key"));
    let rules = table["rules"].as_table_mut().unwrap();
    rules.insert(
        "paths".into(),
        toml::Value::Array(vec![toml::Value::String(
            linux_dir().join("rules").display().to_string(),
        )]),
    );
    let upload = table["upload"].as_table_mut().unwrap();
    upload.insert("ca_file".into(), at("ca.pem"));
    let path = dir.join("nightjar.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    path
}

#[test]
fn default_configs_with_every_key_set_are_accepted_by_both_binaries() {
    for default in [
        linux_dir().join("nightjar.toml"),
        repo_root().join("packaging/macos/nightjar.toml"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = full_config_under(&default, dir.path());

        // Exit 2 is the contract's "usage or configuration error".
        let agent = Command::new(nightjar_tests::harness::bin("nightjar-agent"))
            .args(["status", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_ne!(
            agent.status.code(),
            Some(2),
            "agent rejects {} (as {}): {}",
            default.display(),
            config.display(),
            String::from_utf8_lossy(&agent.stderr)
        );

        let sensor = Command::new(nightjar_tests::harness::bin("nightjar-sensor"))
            .args(["replay", "--format", "eslogger", "--config"])
            .arg(&config)
            .arg("/dev/null")
            .output()
            .unwrap();
        assert!(
            sensor.status.success(),
            "sensor rejects {} (as {}): {}",
            default.display(),
            config.display(),
            String::from_utf8_lossy(&sensor.stderr)
        );
    }
}
