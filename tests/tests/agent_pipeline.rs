//! The agent end to end with the real binaries: the shared eslogger fixture replayed through
//! `nightjar-sensor` alerts exactly for pids 702 and 704; the chain verifies; the CLI answers
//! over the control socket while the agent runs and from the store once it stopped; a
//! tampered store fails verification at the right seq; alerts reach a TLS collector that
//! verifies them with an MDM-provisioned key.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_tests::agent_cli::{alerts, counter, envelope_payload, export, status, verify};
use nightjar_tests::collector::{Collector, CollectorOptions};
use nightjar_tests::harness::{ChildGuard, TempState, bin, run, shared, wait_for};
use ring::signature::{Ed25519KeyPair, KeyPair};

const FIXTURE: &str = "fixtures/eslogger/kcc-sample.ndjson";

fn spawn_agent(st: &TempState, cfg: &Path) -> ChildGuard {
    let log = File::create(st.path().join("agent.log")).expect("agent log");
    ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log),
    )
}

fn replay(cfg: &Path) {
    let out = run(Command::new(bin("nightjar-sensor"))
        .args(["replay", "--config"])
        .arg(cfg)
        .args(["--format", "eslogger"])
        .arg(shared(FIXTURE)));
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn agent_log(st: &TempState) -> String {
    std::fs::read_to_string(st.path().join("agent.log")).unwrap_or_default()
}

#[test]
fn replayed_fixture_alerts_for_702_and_704_only_and_verifies() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let mut agent = spawn_agent(&st, &cfg);
    let running = wait_for(Duration::from_secs(30), || {
        status(&cfg).filter(|s| s["agent_running"] == true)
    });
    assert!(running.is_some(), "agent did not start: {}", agent_log(&st));
    replay(&cfg);

    let s = wait_for(Duration::from_secs(30), || {
        status(&cfg)
            .filter(|s| counter(s, "alerts_stored") >= 2 && counter(s, "events_received") >= 6)
    })
    .unwrap_or_else(|| panic!("no alerts: {:?}\n{}", status(&cfg), agent_log(&st)));
    for field in [
        "events_received",
        "events_dropped",
        "alerts_stored",
        "alerts_suppressed",
        "alerts_pending_upload",
        "sensor_connected",
        "last_upload_ok",
        "last_upload_error",
    ] {
        assert!(s.get(field).is_some(), "status lacks {field}: {s}");
    }
    assert_eq!(counter(&s, "alerts_stored"), 2, "{s}");
    assert_eq!(counter(&s, "events_dropped"), 0, "{s}");
    assert_eq!(s["chain_ok"], true);

    let live = alerts(&cfg);
    let pids: Vec<u64> = live
        .iter()
        .map(|a| a["process"]["pid"].as_u64().expect("process.pid"))
        .collect();
    assert_eq!(pids, vec![702, 704]);
    for (i, a) in live.iter().enumerate() {
        assert_eq!(a["nightjar"]["seq"], i as u64 + 1);
        assert_eq!(a["nightjar"]["host_id"], "test-host-0001");
        assert_eq!(
            a["kibana"]["alert"]["rule"]["rule_id"],
            "ad88231f-e2ab-491c-8fc6-64746da26cfe"
        );
    }
    assert_eq!(live[0]["nightjar"]["prev"], "0".repeat(64));
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify over the socket: {text}");

    agent.signal(libc::SIGTERM);
    let exit = agent
        .wait_timeout(Duration::from_secs(20))
        .expect("agent stops on SIGTERM");
    assert!(exit.success(), "agent exit {exit:?}: {}", agent_log(&st));
    assert!(!st.state_dir().join("control.sock").exists());

    // No agent: the CLI reads the store itself and sees the same alerts.
    let s = status(&cfg).expect("status from the store");
    assert_eq!(s["agent_running"], false);
    assert_eq!(counter(&s, "alerts_stored"), 2);
    assert_eq!(
        counter(&s, "events_received"),
        6,
        "counters survive the restart"
    );
    let envelopes = export(&cfg);
    assert_eq!(envelopes.len(), 2);
    assert_eq!(envelope_payload(&envelopes[1])["process"]["pid"], 704);
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify from the store: {text}");

    // Replaying the same events again is recognised: no duplicate alert.
    let mut agent = spawn_agent(&st, &cfg);
    replay(&cfg);
    let s = wait_for(Duration::from_secs(30), || {
        status(&cfg).filter(|s| s["agent_running"] == true && counter(s, "events_received") >= 12)
    })
    .unwrap_or_else(|| panic!("second replay not read: {}", agent_log(&st)));
    assert_eq!(counter(&s, "alerts_stored"), 2, "{s}");
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_timeout(Duration::from_secs(20)).is_some());

    // Tamper with alert 2 on disk: verify fails and names seq 2.
    tamper_second_alert(&st.state_dir().join("alerts.sled"));
    let (code, text) = verify(&cfg);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("seq 2"), "{text}");
}

/// Flips one byte inside the base64 payload of the alert stored under seq 2, in the
/// agent's envelope log.
fn tamper_second_alert(db: &Path) {
    use nightjar_agent::store::log::{record_spans, segment_files};
    for seg in segment_files(db).expect("list the log") {
        for (seq, at, _) in record_spans(&seg).expect("read the segment") {
            if seq == 2 {
                let mut bytes = std::fs::read(&seg).expect("read");
                // Past the 72-byte header and the 36-byte uuid, inside the envelope.
                let i = at as usize + 72 + 36 + b"{\"payload\":\"".len() + 10;
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                std::fs::write(&seg, bytes).expect("write");
                return;
            }
        }
    }
    panic!("alert 2 is not in the log");
}

#[test]
fn alerts_reach_a_tls_collector_signed_by_the_provisioned_key() {
    let st = TempState::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key pair");
    let key_file = st.path().join("mdm.key");
    std::fs::write(&key_file, pkcs8.as_ref()).expect("key file");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut public = [0u8; 32];
    public.copy_from_slice(pair.public_key().as_ref());

    let tls_dir = st.path().join("tls");
    std::fs::create_dir(&tls_dir).expect("tls dir");
    let mut options = CollectorOptions::new(public);
    options.tls_dir = Some(tls_dir);
    let collector = Collector::start(options).expect("collector");
    let ca = collector
        .ca_file()
        .expect("TLS collector has a CA")
        .to_path_buf();
    let cfg = st.write_config(&format!(
        "key_file = {:?}\n[upload]\nurl = {:?}\ninterval_ms = 100\nca_file = {:?}\n",
        key_file.display().to_string(),
        collector.url(),
        ca.display().to_string()
    ));

    let mut agent = spawn_agent(&st, &cfg);
    wait_for(Duration::from_secs(30), || {
        status(&cfg).filter(|s| s["agent_running"] == true)
    })
    .unwrap_or_else(|| panic!("agent did not start: {}", agent_log(&st)));
    let keys = run(Command::new(bin("nightjar-agent"))
        .args(["keys", "show", "--json", "--config"])
        .arg(&cfg));
    let keys: serde_json::Value = serde_json::from_slice(&keys.stdout).expect("keys json");
    assert_eq!(keys["key_id"], collector.key_id());

    replay(&cfg);
    let stats = collector.wait_until(Duration::from_secs(60), |s| s.accepted >= 2);
    assert_eq!(stats.accepted, 2, "{stats:?}\n{}", agent_log(&st));
    assert!(stats.rejected.is_empty(), "{stats:?}");
    let s = wait_for(Duration::from_secs(30), || {
        status(&cfg)
            .filter(|s| counter(s, "alerts_pending_upload") == 0 && !s["last_upload_ok"].is_null())
    })
    .unwrap_or_else(|| panic!("upload not reported: {:?}", status(&cfg)));
    assert!(s["last_upload_error"].is_null(), "{s}");
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_timeout(Duration::from_secs(20)).is_some());
}
