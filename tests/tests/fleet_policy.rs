//! Fleet policies end to end, with real processes: a real `nightjar-server` on a real
//! PostgreSQL publishes signed policies and a real agent (fed by the real sensor's replay)
//! applies them live; forged, older and non-compiling policies are refused with the running
//! one kept, across agent restarts and while the server is down; a stand-in server offers
//! what the real one never would (forged envelopes, genuine older versions).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nightjar_tests::agent_cli::{alerts, counter};
use nightjar_tests::fleet::Server;
use nightjar_tests::harness::TempState;
use nightjar_tests::pipeline::{
    replay_all, spawn_agent, stop, wait_agent_ready, wait_events, wait_status,
};
use nightjar_tests::policy::{PolicySigner, StandIn, kql_rule, policy_doc};
use nightjar_tests::postgres::Cluster;
use nightjar_tests::streams::{EsloggerGen, Exec};
use serde_json::Value;

const BUILTIN: &str = "ad88231f-e2ab-491c-8fc6-64746da26cfe";
const DEMO: &str = "0b6d8f0e-policy-demo";
const OTHER: &str = "4c1a2e77-policy-other";
/// An Endpoint Security exception list export (as Kibana writes it): kcc run with the
/// `--nightjar-safe` argument is excepted on macOS, for every rule.
const EXCEPTIONS: &str = concat!(
    r#"{"_version":"WzEsMV0=","created_at":"2026-01-05T10:00:00.000Z","created_by":"elastic","description":"Endpoint Security Exception List","id":"endpoint_list","immutable":false,"list_id":"endpoint_list","name":"Endpoint Security Exception List","namespace_type":"agnostic","os_types":[],"tags":[],"tie_breaker_id":"a1","type":"endpoint","updated_at":"2026-01-05T10:00:00.000Z","updated_by":"elastic","version":1}"#,
    "\n",
    r#"{"comments":[],"created_at":"2026-01-05T10:00:00.000Z","created_by":"elastic","description":"backup job","entries":[{"field":"process.name","operator":"included","type":"match","value":"kcc"},{"field":"process.args","operator":"included","type":"match_any","value":["--nightjar-safe"]}],"id":"b2","item_id":"kcc-backup-job","list_id":"endpoint_list","name":"kcc backup job","namespace_type":"agnostic","os_types":["macos"],"tags":[],"tie_breaker_id":"b3","type":"simple","updated_at":"2026-01-05T10:00:00.000Z","updated_by":"elastic"}"#,
    "\n",
    r#"{"exported_exception_list_count":1,"exported_exception_list_item_count":1,"missing_exception_list_item_count":0,"missing_exception_list_items":[],"missing_exception_lists":[],"missing_exception_lists_count":0}"#,
    "\n"
);

/// Writes `execs` (pid, executable, argv) as an eslogger stream.
fn stream(st: &TempState, name: &str, execs: &[(u32, &str, &[&str])]) -> PathBuf {
    let mut generator = EsloggerGen::new();
    let text: String = execs
        .iter()
        .map(|(pid, exe, args)| {
            generator.line(&Exec {
                pid: *pid,
                ppid: 1,
                executable: exe,
                args,
            }) + "\n"
        })
        .collect();
    let path = st.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `(pid, rule_id, policy_version)` of every stored alert, in seq order.
fn stored(cfg: &Path) -> Vec<(u64, String, u64)> {
    alerts(cfg)
        .iter()
        .map(|a| {
            (
                a["process"]["pid"].as_u64().unwrap(),
                a["kibana"]["alert"]["rule"]["rule_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                a["nightjar"]["policy_version"]
                    .as_u64()
                    .expect("every alert names its policy version"),
            )
        })
        .collect()
}

fn error_has(s: &Value, text: &str) -> bool {
    s["policy_error"].as_str().is_some_and(|e| e.contains(text))
}

/// Stores an envelope as a published version, as a compromised or newer server might.
fn insert_policy(server: &Server, version: u64, envelope: &[u8]) {
    let hex: String = envelope.iter().map(|b| format!("{b:02x}")).collect();
    Cluster::shared().psql(
        &server.db_name(),
        &format!(
            "INSERT INTO policies (version, rules, exceptions, envelope) \
             VALUES ({version}, 1, 0, decode('{hex}', 'hex'))"
        ),
    );
}

#[test]
fn published_policies_run_live_and_bad_ones_are_refused_across_restarts() {
    let mut server = Server::start_restartable("");
    let token = server.token(1, "1h");
    let key = server.cli_json(&["policy", "key", "--json"])[0]["public_key"]
        .as_str()
        .unwrap()
        .to_string();
    let st = TempState::new();
    let policy_interval_ms = 1000;
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = true\nmax_signals = 0\n\
         [upload]\ninterval_ms = 100\nallow_insecure_http = true\n\
         [fleet]\nserver = {:?}\nenroll_token = {token:?}\npolicy_public_key = {key:?}\n\
         heartbeat_interval_ms = 500\npolicy_interval_ms = {policy_interval_ms}\n",
        server.url()
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    let s = wait_agent_ready(&st, &cfg, "agent");
    assert!(s["policy_version"].is_null(), "{s}");
    wait_status(&st, &cfg, "agent", "enrolment", |s| s["enrolled"] == true);

    // A policy that does not compile is refused by the server, naming file:line:col.
    let files = tempfile::tempdir().unwrap();
    let bad_dir = files.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad = write(
        &bad_dir,
        "broken.toml",
        &kql_rule("bad-rule", "Broken", "process.name:(kcc or"),
    );
    let out = server.cli(&[
        "policy",
        "publish",
        "--rules",
        bad.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:15:1: expected a value", bad.display())),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    // Version 1: the built-in rule, a new rule and an endpoint exception list.
    let rules_dir = files.path().join("rules");
    std::fs::create_dir(&rules_dir).unwrap();
    write(
        &rules_dir,
        "demo.toml",
        &kql_rule(DEMO, "Demo tool", "process.name:nightjar-demo-tool"),
    );
    let exceptions = write(files.path(), "endpoint.ndjson", EXCEPTIONS);
    let published = Instant::now();
    let v1 = &server.cli_json(&[
        "policy",
        "publish",
        "--rules",
        rules_dir.to_str().unwrap(),
        "--exceptions",
        exceptions.to_str().unwrap(),
        "--json",
    ])[0];
    assert_eq!(
        (&v1["version"], &v1["rules"], &v1["exceptions"]),
        (&1.into(), &1.into(), &1.into())
    );
    wait_status(&st, &cfg, "agent", "policy version 1 applied", |s| {
        s["policy_version"] == 1
    });
    let delay = published.elapsed();
    eprintln!("policy applied {} ms after publication", delay.as_millis());
    assert!(
        delay < Duration::from_millis(policy_interval_ms) + Duration::from_secs(10),
        "applied {delay:?} after publication, policy_interval_ms is {policy_interval_ms}"
    );

    let first = stream(
        &st,
        "first.ndjson",
        &[
            (20_001, "/usr/bin/kcc", &["kcc", "copy_cred_cache"]),
            (
                20_002,
                "/usr/local/bin/nightjar-demo-tool",
                &["nightjar-demo-tool", "--go"],
            ),
            (
                20_003,
                "/usr/bin/kcc",
                &["kcc", "copy_cred_cache", "--nightjar-safe"],
            ),
            (20_004, "/bin/ls", &["ls", "-la"]),
        ],
    );
    replay_all(&st, &cfg, &first, None, "sensor-1");
    let s = wait_events(&st, &cfg, "agent", 4);
    let s = if counter(&s, "alerts_stored") == 2 {
        s
    } else {
        wait_status(&st, &cfg, "agent", "two alerts", |s| {
            counter(s, "alerts_stored") == 2
        })
    };
    assert_eq!(counter(&s, "alerts_excepted"), 1, "{s}");
    assert_eq!(s["alerts_excepted_by_rule"][BUILTIN], 1, "{s}");
    assert_eq!(
        stored(&cfg),
        vec![(20_001, BUILTIN.into(), 1), (20_002, DEMO.into(), 1)]
    );

    // A policy the server's key signed but that does not compile here (a server past this
    // agent, or a bad row) is refused; version 1 keeps running.
    let server_key = PolicySigner::from_file(&server.policy_key_path());
    let broken = policy_doc(
        2,
        true,
        &[(
            "rules/broken.toml",
            &kql_rule("bad-rule", "Broken", "process.name:(kcc or"),
        )],
        &[],
    );
    insert_policy(&server, 2, &server_key.envelope(&broken));
    let s = wait_status(&st, &cfg, "agent", "version 2 refused", |s| {
        error_has(s, "policy version 2 does not compile")
    });
    assert!(error_has(&s, "policy v2: rules/broken.toml:15:1:"), "{s}");
    assert_eq!(s["policy_version"], 1);

    // A forged policy (another key) with a higher version: refused.
    let forger = PolicySigner::generate();
    let empty = policy_doc(
        3,
        false,
        &[(
            "rules/demo.toml",
            &kql_rule(DEMO, "Demo", "process.name:nothing"),
        )],
        &[],
    );
    insert_policy(&server, 3, &forger.envelope(&empty));
    let s = wait_status(&st, &cfg, "agent", "the forged version 3 refused", |s| {
        error_has(s, "not signed by the pinned policy key")
    });
    assert_eq!(s["policy_version"], 1);

    // The server goes away; the agent restarts and runs the kept version 1 at once.
    server.kill();
    stop(&mut agent, &st, "agent");
    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    let s = wait_agent_ready(&st, &cfg, "agent-2");
    assert_eq!(s["policy_version"], 1, "{s}");
    let second = stream(
        &st,
        "second.ndjson",
        &[
            (
                20_011,
                "/usr/local/bin/nightjar-demo-tool",
                &["nightjar-demo-tool"],
            ),
            (
                20_012,
                "/usr/bin/kcc",
                &["kcc", "copy_cred_cache", "--nightjar-safe"],
            ),
        ],
    );
    replay_all(&st, &cfg, &second, None, "sensor-2");
    let s = wait_events(&st, &cfg, "agent-2", 6);
    assert_eq!(counter(&s, "alerts_excepted"), 2, "{s}");
    let s = wait_status(&st, &cfg, "agent-2", "a failed policy fetch", |s| {
        s["policy_fetch_error"].is_string() && counter(s, "alerts_stored") == 3
    });
    assert_eq!(s["policy_version"], 1);
    assert_eq!(stored(&cfg)[2], (20_011, DEMO.into(), 1));

    // The server is back, still offering the forged version 3: refused again.
    server.restart();
    let s = wait_status(
        &st,
        &cfg,
        "agent-2",
        "the forged version refused again",
        |s| {
            error_has(s, "not signed by the pinned policy key") && s["policy_fetch_error"].is_null()
        },
    );
    assert_eq!(s["policy_version"], 1);

    // Version 4 (versions only grow past what the table holds): the built-in rule off,
    // another rule on.
    let other_dir = files.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    write(
        &other_dir,
        "other.toml",
        &kql_rule(OTHER, "Other tool", "process.name:nightjar-other-tool"),
    );
    let v4 = &server.cli_json(&[
        "policy",
        "publish",
        "--no-builtin",
        "--rules",
        other_dir.to_str().unwrap(),
        "--json",
    ])[0];
    assert_eq!(v4["version"], 4);
    let s = wait_status(&st, &cfg, "agent-2", "policy version 4 applied", |s| {
        s["policy_version"] == 4
    });
    assert!(s["policy_error"].is_null(), "{s}");
    let third = stream(
        &st,
        "third.ndjson",
        &[
            (20_021, "/usr/bin/kcc", &["kcc", "copy_cred_cache"]),
            (
                20_022,
                "/opt/bin/nightjar-other-tool",
                &["nightjar-other-tool"],
            ),
            (
                20_023,
                "/usr/local/bin/nightjar-demo-tool",
                &["nightjar-demo-tool"],
            ),
        ],
    );
    replay_all(&st, &cfg, &third, None, "sensor-3");
    wait_events(&st, &cfg, "agent-2", 9);
    let s = wait_status(&st, &cfg, "agent-2", "four alerts", |s| {
        counter(s, "alerts_stored") == 4
    });
    assert_eq!(counter(&s, "alerts_excepted"), 2);
    assert_eq!(stored(&cfg)[3], (20_022, OTHER.into(), 4));

    // The server sees the version the host runs, and lists every version newest first.
    wait_for_host_version(&server, 4);
    let listed: Vec<u64> = server
        .cli_json(&["policy", "list", "--json"])
        .iter()
        .map(|p| p["version"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![4, 3, 2, 1]);
    stop(&mut agent, &st, "agent-2");
}

fn wait_for_host_version(server: &Server, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let host = server.host("test-host-0001");
        if host["policy_version"] == version {
            return;
        }
        assert!(Instant::now() < deadline, "hosts list: {host}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_stand_in_server_offering_forged_and_older_policies_is_refused() {
    let stand = StandIn::start();
    let key = PolicySigner::generate();
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = true\nmax_signals = 0\n\
         [upload]\ninterval_ms = 100\nallow_insecure_http = true\n\
         [fleet]\nserver = {:?}\nenroll_token = \"nje_standin\"\npolicy_public_key = {:?}\n\
         heartbeat_interval_ms = 300\npolicy_interval_ms = 400\n",
        stand.url(),
        key.public_b64()
    ));
    let demo = kql_rule(DEMO, "Demo tool", "process.name:nightjar-demo-tool");
    let doc = |version: u64| policy_doc(version, false, &[("demo.toml", &demo)], &[]);
    stand.offer(key.envelope(&doc(3)), 3);
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_status(&st, &cfg, "agent", "genuine version 3 applied", |s| {
        s["policy_version"] == 3
    });

    let forger = PolicySigner::generate();
    let mut refusals = vec![
        (
            forger.envelope(&doc(7)),
            7,
            "not signed by the pinned policy key",
        ),
        (
            forger.envelope_as(&doc(8), &key.key_id()),
            8,
            "signature does not verify",
        ),
        (
            key.envelope(&doc(2)),
            2,
            "policy version 2 is not newer than version 3",
        ),
        (
            key.envelope(&doc(3)),
            3,
            "policy version 3 is not newer than version 3",
        ),
    ];
    // The payload of a genuine envelope swapped for another one.
    let mut swapped: Value = serde_json::from_slice(&key.envelope(&doc(9))).unwrap();
    let forged_payload = serde_json::to_vec(&policy_doc(9, true, &[], &[])).unwrap();
    swapped["payload"] = base64_encode(&forged_payload).into();
    refusals.push((
        swapped.to_string().into_bytes(),
        9,
        "signature does not verify",
    ));
    refusals.push((b"{\"payload\":".to_vec(), 10, "not a policy"));
    for (envelope, wanted, reason) in refusals {
        let before = stand.policy_requests();
        stand.offer(envelope, wanted);
        let s = wait_status(&st, &cfg, "agent", reason, |s| {
            error_has(s, reason) && stand.policy_requests() > before
        });
        assert_eq!(s["policy_version"], 3, "{s}");
    }

    // Version 3's rules still run, under version 3.
    let events = stream(
        &st,
        "events.ndjson",
        &[
            (
                30_001,
                "/usr/local/bin/nightjar-demo-tool",
                &["nightjar-demo-tool"],
            ),
            (30_002, "/usr/bin/kcc", &["kcc", "copy_cred_cache"]),
        ],
    );
    replay_all(&st, &cfg, &events, None, "sensor");
    wait_events(&st, &cfg, "agent", 2);
    wait_status(&st, &cfg, "agent", "one alert", |s| {
        counter(s, "alerts_stored") == 1
    });
    assert_eq!(stored(&cfg), vec![(30_001, DEMO.into(), 3)]);

    // Across a restart, with the genuine older version offered: version 3 runs from the
    // state directory and the older one is refused again.
    stand.offer(key.envelope(&doc(2)), 2);
    stop(&mut agent, &st, "agent");
    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    let s = wait_status(
        &st,
        &cfg,
        "agent-2",
        "the older version refused after restart",
        |s| error_has(s, "policy version 2 is not newer than version 3"),
    );
    assert_eq!(s["policy_version"], 3);

    // A kept envelope edited on disk no longer verifies: it is not run (and with no policy
    // offered, the local configuration runs).
    stop(&mut agent, &st, "agent-2");
    stand.withdraw();
    let kept = st.state_dir().join("policy.dsse.json");
    let mut env: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    env["payload"] =
        base64_encode(&serde_json::to_vec(&policy_doc(3, true, &[], &[])).unwrap()).into();
    std::fs::write(&kept, env.to_string()).unwrap();
    let mut agent = spawn_agent(&st, &cfg, "agent-3");
    let s = wait_agent_ready(&st, &cfg, "agent-3");
    assert!(error_has(&s, "kept policy not used"), "{s}");
    assert!(error_has(&s, "signature does not verify"), "{s}");
    assert!(s["policy_version"].is_null(), "{s}");
    stop(&mut agent, &st, "agent-3");
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
