//! `kill -9` of the agent at random moments while a replayed stream with known matches flows
//! through the real sensor and agent: every alert is stored exactly once, the chain verifies,
//! and nothing is counted lost.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nightjar_tests::agent_cli::{counter, envelope_payload, export, status, verify};
use nightjar_tests::harness::{ChildGuard, TempState, bin, wait_for};
use nightjar_tests::streams::EsloggerGen;

const TOTAL: u32 = 20_000;
const MATCHES: u32 = 500;
const KILLS: usize = 3;
const RATE: u32 = 5_000;

fn spawn_agent(st: &TempState, cfg: &std::path::Path, n: usize) -> ChildGuard {
    let log = File::create(st.path().join(format!("agent-{n}.log"))).expect("agent log");
    ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(log),
    )
}

/// A small xorshift so kill moments differ run to run without a dependency.
fn random_delays(n: usize, span_ms: u64) -> Vec<u64> {
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9)
        | 1;
    let mut out: Vec<u64> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            300 + x % span_ms
        })
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn kill9_of_the_agent_loses_no_alert_and_duplicates_none() {
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\nmax_signals = 0\n");
    let stream = st.path().join("stream.ndjson");
    let hits = EsloggerGen::new().write_stream(&stream, TOTAL, MATCHES);
    assert_eq!(hits.len(), MATCHES as usize);

    let mut agent = spawn_agent(&st, &cfg, 0);
    let sensor_log = File::create(st.path().join("sensor.log")).expect("sensor log");
    let mut sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["replay", "--config"])
            .arg(&cfg)
            .args(["--format", "eslogger", "--rate", &RATE.to_string()])
            .arg(&stream)
            .stderr(sensor_log),
    );

    // The stream takes TOTAL / RATE seconds; kill the agent at random moments inside it.
    let span_ms = u64::from(TOTAL / RATE) * 1000;
    let mut elapsed = 0;
    for (i, at) in random_delays(KILLS, span_ms).into_iter().enumerate() {
        std::thread::sleep(Duration::from_millis(at.saturating_sub(elapsed)));
        elapsed = at;
        agent.kill9();
        agent = spawn_agent(&st, &cfg, i + 1);
    }

    let replay = sensor
        .wait_timeout(Duration::from_secs(120))
        .expect("replay finishes");
    assert!(replay.success(), "sensor replay failed: {replay:?}");

    let settled = wait_for(Duration::from_secs(120), || {
        let s = status(&cfg)?;
        (counter(&s, "alerts_stored") >= u64::from(MATCHES)
            && counter(&s, "events_received") >= u64::from(TOTAL))
        .then_some(s)
    });
    let s = settled.unwrap_or_else(|| {
        panic!(
            "agent did not store {MATCHES} alerts; last status: {:?}",
            status(&cfg)
        )
    });
    assert_eq!(counter(&s, "alerts_stored"), u64::from(MATCHES), "{s}");
    assert_eq!(counter(&s, "events_dropped"), 0, "nothing may be lost: {s}");

    agent.signal(libc::SIGTERM);
    assert!(agent.wait_timeout(Duration::from_secs(20)).is_some());

    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify failed: {text}");

    let envelopes = export(&cfg);
    assert_eq!(envelopes.len(), MATCHES as usize);
    let mut uuids = HashSet::new();
    let mut pids = BTreeSet::new();
    for (i, env) in envelopes.iter().enumerate() {
        let alert = envelope_payload(env);
        assert_eq!(
            alert["nightjar"]["seq"],
            i as u64 + 1,
            "seq order and no gap"
        );
        let uuid = alert["kibana"]["alert"]["uuid"]
            .as_str()
            .expect("alert uuid")
            .to_owned();
        assert!(uuids.insert(uuid.clone()), "duplicate alert {uuid}");
        pids.insert(alert["process"]["pid"].as_u64().expect("process.pid") as u32);
    }
    let expected: BTreeSet<u32> = hits.into_iter().collect();
    assert_eq!(pids, expected, "exactly the matching events alerted");
}
