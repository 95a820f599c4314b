//! `kill -9` of the sensor in the middle of a replayed stream, then a new sensor: the agent
//! notices the sensor is gone, follows the new ring generation, and its counters say exactly
//! what arrived. Events the dead sensor had read but not yet published never reached the ring
//! (they are the sensor's loss, not a ring drop); everything it did publish is read and
//! alerted on exactly once.

use std::collections::BTreeSet;
use std::time::Duration;

use nightjar_tests::agent_cli::{counter, status, verify};
use nightjar_tests::harness::{TempState, wait_for};
use nightjar_tests::pipeline::{
    PATIENCE, alert_pids, hits_before, log_text, spawn_agent, spawn_replay, stop, wait_agent_ready,
    wait_status,
};
use nightjar_tests::streams::EsloggerGen;

const FIRST_A: u32 = 10_000;
const TOTAL_A: u32 = 8_000;
const MATCHES_A: u32 = 80;
const FIRST_B: u32 = 50_000;
const TOTAL_B: u32 = 3_000;
const MATCHES_B: u32 = 30;

#[test]
fn sensor_kill9_mid_stream_is_noticed_and_accounted_exactly() {
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\nmax_signals = 0\n");
    let mut generator = EsloggerGen::new();
    let a = st.path().join("a.ndjson");
    let b = st.path().join("b.ndjson");
    let hits_a = generator.write_stream_at(&a, FIRST_A, TOTAL_A, MATCHES_A);
    let hits_b = generator.write_stream_at(&b, FIRST_B, TOTAL_B, MATCHES_B);

    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");

    // 8,000 events at 2,000/s take four seconds; the sensor dies one second after the first
    // event reaches the agent.
    let mut sensor = spawn_replay(&st, &cfg, &a, Some(2_000), "sensor-a");
    let s = wait_status(
        &st,
        &cfg,
        "agent",
        "first events and a connected sensor",
        |s| counter(s, "events_received") > 0 && s["sensor_connected"] == true,
    );
    let generation_a = s["ring_generation"].as_u64();
    std::thread::sleep(Duration::from_secs(1));
    sensor.kill9();

    // The agent notices, then drains what was published; the count settles.
    wait_status(&st, &cfg, "agent", "sensor_connected = false", |s| {
        s["sensor_connected"] == false
    });
    let received_a = settled_received(&cfg);
    assert!(
        received_a > 0 && received_a < u64::from(TOTAL_A),
        "the kill landed mid-stream: {received_a} of {TOTAL_A} received"
    );

    // A new sensor: a new ring generation, and everything it replays arrives.
    let mut sensor = spawn_replay(&st, &cfg, &b, Some(5_000), "sensor-b");
    let done = sensor.wait_timeout(PATIENCE).expect("replay b finishes");
    assert!(done.success(), "replay b: {}", log_text(&st, "sensor-b"));
    let expected = received_a + u64::from(TOTAL_B);
    let s = wait_status(&st, &cfg, "agent", "stream b received", |s| {
        counter(s, "events_received") >= expected
    });
    assert_eq!(counter(&s, "events_received"), expected, "{s}");
    assert_eq!(
        counter(&s, "events_dropped"),
        0,
        "a killed producer loses only what it never published: {s}"
    );
    let generation_b = s["ring_generation"].as_u64();
    assert!(
        generation_b.is_some() && generation_b != generation_a,
        "the agent follows the restarted sensor's ring generation: {generation_a:?} -> {generation_b:?}"
    );

    let mut expected_pids: BTreeSet<u32> = hits_before(&hits_a, FIRST_A, received_a)
        .into_iter()
        .collect();
    expected_pids.extend(&hits_b);
    let want = expected_pids.len() as u64;
    wait_status(&st, &cfg, "agent", "every alert stored", |s| {
        counter(s, "alerts_stored") >= want
    });
    let pids = alert_pids(&cfg);
    assert_eq!(pids.len() as u64, want, "one alert per matching event");
    assert_eq!(
        pids.into_iter().collect::<BTreeSet<_>>(),
        expected_pids,
        "alerts exactly for the events that reached the ring"
    );
    eprintln!(
        "sensor kill -9: {received_a} of {TOTAL_A} events published before the kill, {} lost with the sensor",
        u64::from(TOTAL_A) - received_a
    );

    stop(&mut agent, &st, "agent");
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify: {text}");
}

/// `events_received` once it has not moved for a second (the dead sensor's ring is drained).
fn settled_received(cfg: &std::path::Path) -> u64 {
    let mut last = None;
    wait_for(PATIENCE, || {
        let now = status(cfg).map(|s| counter(&s, "events_received"));
        if now.is_some() && now == last {
            return now;
        }
        last = now;
        std::thread::sleep(Duration::from_secs(1));
        None
    })
    .expect("events_received settles")
}
