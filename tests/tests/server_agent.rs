//! A real agent enrolled with a real server over HTTPS (a test CA), on a real PostgreSQL:
//! its alerts arrive verified and identical, its heartbeats keep the host `ok`, `enroll` is
//! idempotent, a host reset by an admin sends the agent back to enrolment, and a store
//! damaged after its alerts were uploaded is repaired without forking the server's chain.

use std::collections::BTreeSet;
use std::process::Command;

use nightjar_agent::store::log::{record_spans, segment_files};
use nightjar_proto::verify::open_envelope;
use nightjar_tests::agent_cli::{counter, export_lines};
use nightjar_tests::fleet::Server;
use nightjar_tests::harness::{TempState, bin, run};
use nightjar_tests::pipeline::{
    replay_all, spawn_agent, stop, wait_agent_ready, wait_events, wait_status,
};
use nightjar_tests::streams::EsloggerGen;
use serde_json::Value;

const TOTAL: u32 = 2_000;
const MATCHES: u32 = 40;

/// A server over TLS with a one-use token, and an agent config enrolling with it (builtin rule,
/// uploads every 100 ms, heartbeats every 300 ms); `upload_extra` goes into `[upload]`.
fn enrolling_agent(upload_extra: &str) -> (Server, TempState, std::path::PathBuf) {
    let (server, ca_pem) = Server::start_tls("");
    let token = server.token(1, "1h");
    let st = TempState::new();
    let ca = st.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let url = format!("https://localhost:{}", server.addr.port());
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = true\nmax_signals = 0\n\
         [upload]\ninterval_ms = 100\n{upload_extra}ca_file = {:?}\n\
         [fleet]\nserver = {url:?}\nenroll_token = {token:?}\nheartbeat_interval_ms = 300\n",
        ca.display().to_string()
    ));
    (server, st, cfg)
}

/// A status predicate: `n` alerts stored, all uploaded, a heartbeat accepted.
fn uploaded(n: u64) -> impl Fn(&Value) -> bool {
    move |s: &Value| {
        counter(s, "alerts_stored") == n
            && counter(s, "alerts_pending_upload") == 0
            && s["last_heartbeat_ok"].is_string()
    }
}

#[test]
fn a_real_agents_alerts_arrive_verified_and_identical() {
    let (server, st, cfg) = enrolling_agent("batch_max = 16\n");
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let stream = st.path().join("stream.ndjson");
    EsloggerGen::new().write_stream(&stream, TOTAL, MATCHES);
    replay_all(&st, &cfg, &stream, Some(4_000), "sensor");
    wait_events(&st, &cfg, "agent", u64::from(TOTAL));
    let s = wait_status(
        &st,
        &cfg,
        "agent",
        "every alert uploaded and a heartbeat accepted",
        |s| {
            counter(s, "alerts_stored") == u64::from(MATCHES)
                && counter(s, "alerts_pending_upload") == 0
                && s["enrolled"] == true
                && s["last_heartbeat_ok"].is_string()
        },
    );
    assert!(s["last_upload_error"].is_null(), "{s}");

    // Identical: the server's payloads are the agent's, byte for byte, plus `verified`.
    let exported: BTreeSet<String> = export_lines(&cfg)
        .iter()
        .map(|e| {
            let (_, payload) = open_envelope(e).unwrap();
            let mut doc: Value = serde_json::from_slice(&payload).unwrap();
            doc["nightjar"]["verified"] = Value::Bool(true);
            doc.to_string()
        })
        .collect();
    let on_server: BTreeSet<String> = server
        .cli_json(&["alerts", "list", "--host", "test-host-0001", "--json"])
        .iter()
        .map(Value::to_string)
        .collect();
    assert_eq!(on_server.len(), MATCHES as usize);
    assert_eq!(on_server, exported);

    let host = server.host("test-host-0001");
    assert_eq!(host["status"], "ok", "{host}");
    assert_eq!(host["chain_head_seq"], u64::from(MATCHES));
    assert!(host["events_dropped"].is_number(), "{host}");
    let out = server.cli(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `enroll` again with the same key: idempotent, even with the token used up.
    let out = run(Command::new(bin("nightjar-agent"))
        .arg("enroll")
        .arg("--config")
        .arg(&cfg));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["host_id"], "test-host-0001");

    // An admin resets the host: the agent's next heartbeat is refused and it tries to enrol
    // again, which the used-up token cannot do; status says so.
    server.cli_ok(&["hosts", "reset", "test-host-0001"]);
    let s = wait_status(&st, &cfg, "agent", "the agent to notice the reset", |s| {
        s["enrolled"] == false
            && s["enrol_error"]
                .as_str()
                .is_some_and(|e| e.contains("used up"))
    });
    assert!(s["last_heartbeat_error"].is_string(), "{s}");
    stop(&mut agent, &st, "agent");
}

/// Tail truncation by restoring an older copy of the whole store (index and log): `verify`
/// on the host cannot see it (the older copy is a valid chain, signed head mark included), but the agent's next
/// heartbeat carries the signed head, below what the server holds: the host is `rollback`.
#[test]
fn a_restored_older_store_is_a_rollback_at_the_server() {
    let (server, st, cfg) = enrolling_agent("");
    let mut generator = EsloggerGen::new();
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    let first = st.path().join("first.ndjson");
    generator.write_stream_at(&first, 10_000, 200, 5);
    replay_all(&st, &cfg, &first, None, "sensor-1");
    wait_status(&st, &cfg, "agent-1", "5 alerts uploaded", uploaded(5));
    stop(&mut agent, &st, "agent-1");
    // The store: the index (alerts.sled) and the envelope log (alerts.log).
    let parts = ["alerts.sled", "alerts.log"];
    let backup = st.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    let cp = |from: &std::path::Path, to: &std::path::Path| {
        let out = run(Command::new("cp").arg("-a").arg(from).arg(to));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for part in parts {
        cp(&st.state_dir().join(part), &backup.join(part));
    }

    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    wait_agent_ready(&st, &cfg, "agent-2");
    let second = st.path().join("second.ndjson");
    generator.write_stream_at(&second, 20_000, 200, 5);
    replay_all(&st, &cfg, &second, None, "sensor-2");
    wait_status(&st, &cfg, "agent-2", "10 alerts uploaded", uploaded(10));
    stop(&mut agent, &st, "agent-2");
    let host = server.host("test-host-0001");
    assert_eq!(host["chain_head_seq"], 10, "{host}");
    assert_eq!(host["status"], "ok", "{host}");

    // The older copy back in place: a valid store on its own.
    for part in parts {
        std::fs::remove_dir_all(st.state_dir().join(part)).unwrap();
        cp(&backup.join(part), &st.state_dir().join(part));
    }
    let (code, text) = nightjar_tests::agent_cli::verify(&cfg);
    assert_eq!(code, 0, "undetectable on the host alone: {text}");
    let mut agent = spawn_agent(&st, &cfg, "agent-3");
    wait_status(
        &st,
        &cfg,
        "agent-3",
        "a heartbeat of the restored store",
        |s| s["last_heartbeat_ok"].is_string() && s["chain_head"]["seq"] == 5,
    );
    let seen = nightjar_tests::harness::wait_for(std::time::Duration::from_secs(30), || {
        let h = server.host("test-host-0001");
        (h["status"] == "rollback").then_some(h)
    });
    assert!(seen.is_some(), "{}", server.host("test-host-0001"));
    assert!(
        server
            .integrity_kinds("test-host-0001")
            .iter()
            .any(|k| k == "rollback")
    );
    stop(&mut agent, &st, "agent-3");
}

/// The envelope log zeroed from seq 7 on after all 10 alerts reached the server (a failing
/// disk): the agent quarantines its store and keeps alerting, and its new chain continues
/// after seq 10, the last alert the server accepted, so the server takes the new alerts as
/// the same chain (no fork, no gap, every alert verified) and lists the repair as a
/// `store_recovery` integrity event, once, however many heartbeats repeat it.
#[test]
fn a_store_damaged_after_upload_continues_the_servers_chain() {
    let (server, st, cfg) = enrolling_agent("");
    let mut generator = EsloggerGen::new();
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    let first = st.path().join("first.ndjson");
    generator.write_stream_at(&first, 10_000, 400, 10);
    replay_all(&st, &cfg, &first, None, "sensor-1");
    wait_status(&st, &cfg, "agent-1", "10 alerts uploaded", uploaded(10));
    stop(&mut agent, &st, "agent-1");
    assert_eq!(server.host("test-host-0001")["chain_head_seq"], 10);

    // Zero the log from the record of seq 7 to the end of its segment.
    let damaged = 7u64;
    let log = st.state_dir().join("alerts.sled");
    let (seg, at) = segment_files(&log)
        .expect("list the log")
        .into_iter()
        .find_map(|seg| {
            let spans = record_spans(&seg).expect("read a segment");
            spans
                .iter()
                .find(|(s, _, _)| *s == damaged)
                .map(|(_, at, _)| (seg.clone(), *at as usize))
        })
        .expect("the record of seq 7");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at..].iter_mut().for_each(|b| *b = 0);
    std::fs::write(&seg, bytes).unwrap();

    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    let s = wait_status(&st, &cfg, "agent-2", "the quarantine reported", |s| {
        s["store_recovery"].is_string()
    });
    let said = s["store_recovery"].as_str().unwrap().to_string();
    assert!(
        said.contains("accepted through seq 10") && said.contains("continues after seq 10"),
        "{said}"
    );
    let second = st.path().join("second.ndjson");
    generator.write_stream_at(&second, 20_000, 200, 5);
    replay_all(&st, &cfg, &second, None, "sensor-2");
    wait_status(&st, &cfg, "agent-2", "5 new alerts uploaded", |s| {
        counter(s, "alerts_pending_upload") == 0
            && s["chain_head"]["seq"] == 15
            && s["last_heartbeat_ok"].is_string()
    });
    let host = nightjar_tests::harness::wait_for(std::time::Duration::from_secs(30), || {
        let h = server.host("test-host-0001");
        (h["chain_head_seq"] == 15).then_some(h)
    })
    .unwrap_or_else(|| server.host("test-host-0001"));
    assert_eq!(host["chain_head_seq"], 15, "{host}");
    assert_eq!(host["status"], "ok", "{host}");
    let first_new = server
        .cli_json(&["alerts", "list", "--host", "test-host-0001", "--json"])
        .into_iter()
        .find(|a| a["nightjar"]["seq"] == 11)
        .expect("seq 11 on the server");
    assert_eq!(
        first_new["nightjar"]["recovered_from"]["seq"], 10,
        "{first_new}"
    );
    // Several heartbeats carried the same sentence: one event.
    std::thread::sleep(std::time::Duration::from_millis(1_000));
    let events = server.cli_json(&["integrity", "list", "--host", "test-host-0001", "--json"]);
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["store_recovery"], "{events:?}");
    assert_eq!(events[0]["detail"].as_str(), Some(said.as_str()));
    let out = server.cli(&["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(&mut agent, &st, "agent-2");
}
