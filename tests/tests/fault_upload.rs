//! Upload faults through the real agent and the verifying collector: a server that is down,
//! slow, answers 500/503/429/400, or cuts the connection mid-body or mid-response. Nothing
//! is lost, nothing reordered (what the collector accepted is `alerts export`, byte for byte),
//! and the retries are bounded so each run completes well inside its timeout.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use nightjar_tests::agent_cli::{counter, export_lines, public_key};
use nightjar_tests::collector::{Collector, CollectorOptions, FaultPhase, parse_public_key};
use nightjar_tests::harness::{ChildGuard, TempState};
use nightjar_tests::pipeline::{
    PATIENCE, replay_all, spawn_agent, stop, wait_agent_ready, wait_events, wait_status,
};
use nightjar_tests::streams::EsloggerGen;

const RULES: &str = "[rules]\nbuiltin = true\nmax_signals = 0\n";
const TOTAL: u32 = 3_000;
const MATCHES: u32 = 60;

/// Starts the agent once without upload so it creates its host key; returns the key.
fn host_key(st: &TempState) -> [u8; 32] {
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(st, &cfg, "agent-keygen");
    wait_agent_ready(st, &cfg, "agent-keygen");
    let (b64, _) = public_key(&cfg);
    stop(&mut agent, st, "agent-keygen");
    parse_public_key(&b64).expect("public key")
}

fn upload_section(url: &str, extra: &str) -> String {
    format!("{RULES}[upload]\nurl = {url:?}\ninterval_ms = 100\nbatch_max = 7\n{extra}")
}

/// Replays a stream with `MATCHES` matching events while the agent runs.
fn feed(st: &TempState, cfg: &Path, agent_log: &str) {
    let stream = st.path().join("stream.ndjson");
    EsloggerGen::new().write_stream(&stream, TOTAL, MATCHES);
    replay_all(st, cfg, &stream, Some(3_000), "sensor");
    wait_events(st, cfg, agent_log, u64::from(TOTAL));
}

/// Waits until the collector holds every alert and the agent has nothing pending, then
/// checks the collector's record against `alerts export`.
fn assert_delivered(st: &TempState, cfg: &Path, agent_log: &str, collector: &Collector) {
    let stats = collector.wait_until(PATIENCE, |s| s.accepted >= u64::from(MATCHES));
    assert_eq!(
        stats.accepted,
        u64::from(MATCHES),
        "collector accepted every alert once: {stats:?}"
    );
    assert!(
        stats.rejected.is_empty(),
        "nothing refused by verification: {stats:?}"
    );
    let s = wait_status(st, cfg, agent_log, "nothing pending upload", |s| {
        counter(s, "alerts_pending_upload") == 0 && !s["last_upload_ok"].is_null()
    });
    assert_eq!(counter(&s, "alerts_stored"), u64::from(MATCHES), "{s}");
    let exported = export_lines(cfg);
    let accepted = collector.accepted();
    assert_eq!(accepted.len(), exported.len());
    for (i, (got, want)) in accepted.iter().zip(&exported).enumerate() {
        assert!(
            got == want,
            "envelope {} differs:\ncollector: {}\nexport:    {}",
            i + 1,
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(want)
        );
    }
}

fn phases(specs: &[&str]) -> Vec<FaultPhase> {
    specs
        .iter()
        .map(|s| s.parse().expect("fault spec"))
        .collect()
}

#[test]
fn http_upload_through_errors_cuts_and_slow_answers_loses_and_reorders_nothing() {
    let st = TempState::new();
    let key = host_key(&st);
    let faults = phases(&[
        "503:2",
        "500:1",
        "429=1:1",
        "cut-body:2",
        "cut-response:1",
        "slow=3:1",
        "500:1",
    ]);
    let injected: u64 = faults.iter().map(|p| u64::from(p.requests)).sum();
    let collector = Collector::start(CollectorOptions {
        faults,
        ..CollectorOptions::new(key)
    })
    .expect("collector");
    let cfg = st.write_config(&upload_section(
        collector.url(),
        "allow_insecure_http = true\n",
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    feed(&st, &cfg, "agent");
    assert_delivered(&st, &cfg, "agent", &collector);
    assert_eq!(
        collector.stats().faults_injected,
        injected,
        "every scripted fault was met"
    );
    stop(&mut agent, &st, "agent");
}

#[test]
fn https_upload_with_ca_file_reports_a_refused_batch_and_delivers_after_restart() {
    let st = TempState::new();
    let key = host_key(&st);
    let collector = Collector::start(CollectorOptions {
        tls_dir: Some(st.path().to_path_buf()),
        faults: phases(&["503:1", "400"]),
        ..CollectorOptions::new(key)
    })
    .expect("collector");
    let ca = collector.ca_file().expect("TLS collector writes its CA");
    assert!(collector.url().starts_with("https://"));
    let cfg = st.write_config(&upload_section(
        collector.url(),
        &format!("ca_file = {:?}\n", ca.display().to_string()),
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    feed(&st, &cfg, "agent-1");

    // 400 is not retried: the batch is blocked and says so in status.
    let s = wait_status(&st, &cfg, "agent-1", "a blocked batch in status", |s| {
        !s["upload_blocked_batch"].is_null()
    });
    let error = s["last_upload_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("400"),
        "last_upload_error names the status: {s}"
    );
    assert!(counter(&s, "alerts_pending_upload") > 0, "{s}");
    assert_eq!(collector.stats().accepted, 0);

    // The collector is fixed; a restarted agent delivers everything, in order.
    collector.clear_faults();
    stop(&mut agent, &st, "agent-1");
    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    assert_delivered(&st, &cfg, "agent-2", &collector);
    stop(&mut agent, &st, "agent-2");
}

#[test]
fn alerts_wait_while_the_server_is_down_and_arrive_once_it_is_up() {
    let st = TempState::new();
    let key = host_key(&st);
    // A loopback port with nobody listening: connections are refused.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let down_url = format!("http://{dead}/v1/alerts");
    let cfg = st.write_config(&upload_section(&down_url, "allow_insecure_http = true\n"));
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    feed(&st, &cfg, "agent-1");
    let s = wait_status(&st, &cfg, "agent-1", "an upload error in status", |s| {
        !s["last_upload_error"].is_null()
            && counter(s, "alerts_pending_upload") == u64::from(MATCHES)
    });
    assert!(s["last_upload_ok"].is_null(), "{s}");
    // Retrying against a dead server must not take the agent down.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "agent still runs"
    );
    stop(&mut agent, &st, "agent-1");

    let collector = Collector::start(CollectorOptions::new(key)).expect("collector");
    let cfg = st.write_config(&upload_section(
        collector.url(),
        "allow_insecure_http = true\n",
    ));
    let mut agent: ChildGuard = spawn_agent(&st, &cfg, "agent-2");
    assert_delivered(&st, &cfg, "agent-2", &collector);
    stop(&mut agent, &st, "agent-2");
}
