//! A full ring: the agent is stopped while the sensor replays far more than the smallest ring
//! holds. The sensor never blocks, drops are counted exactly (replayed = received +
//! dropped), nothing crashes, and when the agent returns it reads what the ring kept and
//! then keeps up with new events without further drops.

use std::collections::BTreeSet;

use nightjar_tests::agent_cli::{counter, verify};
use nightjar_tests::harness::TempState;
use nightjar_tests::pipeline::{
    alert_pids, hits_before, replay_all, spawn_agent, stop, wait_agent_ready, wait_events,
    wait_status,
};
use nightjar_tests::streams::EsloggerGen;

/// The ring's minimum capacity (512 KiB).
const SMALL_RING: &str = "ring_capacity_bytes = 524288\n";

const FIRST_WARM: u32 = 1_000;
const WARM: u32 = 100;
const WARM_MATCHES: u32 = 1;
const FIRST_FLOOD: u32 = 10_000;
const FLOOD: u32 = 20_000;
const FLOOD_MATCHES: u32 = 200;
const FIRST_AFTER: u32 = 100_000;
const AFTER: u32 = 2_000;
const AFTER_MATCHES: u32 = 20;

#[test]
fn ring_full_drops_are_counted_exactly_and_the_agent_recovers() {
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\nmax_signals = 0\n");
    // write_config sets a 4 MiB ring; this test wants the smallest one.
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace("ring_capacity_bytes = 4194304\n", SMALL_RING);
    std::fs::write(&cfg, text).expect("rewrite config");

    let mut generator = EsloggerGen::new();
    let warm = st.path().join("warm.ndjson");
    let flood = st.path().join("flood.ndjson");
    let after = st.path().join("after.ndjson");
    let warm_hits = generator.write_stream_at(&warm, FIRST_WARM, WARM, WARM_MATCHES);
    let flood_hits = generator.write_stream_at(&flood, FIRST_FLOOD, FLOOD, FLOOD_MATCHES);
    let after_hits = generator.write_stream_at(&after, FIRST_AFTER, AFTER, AFTER_MATCHES);

    // A normal start: the agent reads a first stream, then stops.
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    replay_all(&st, &cfg, &warm, None, "sensor-warm");
    wait_events(&st, &cfg, "agent-1", u64::from(WARM));
    stop(&mut agent, &st, "agent-1");

    // The flood, with nobody reading: the sensor must finish (never block) and drop.
    replay_all(&st, &cfg, &flood, None, "sensor-flood");

    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    let replayed = u64::from(WARM + FLOOD);
    let s = wait_events(&st, &cfg, "agent-2", replayed);
    let received = counter(&s, "events_received");
    let dropped = counter(&s, "events_dropped");
    assert_eq!(
        received + dropped,
        replayed,
        "replayed = received + dropped: {s}"
    );
    assert!(dropped > 0, "{FLOOD} events cannot fit a 512 KiB ring: {s}");
    // With no reader the ring keeps the flood's first events and drops the rest.
    let kept = received - u64::from(WARM);

    // The agent is back: new events flow with no further drops.
    replay_all(&st, &cfg, &after, Some(5_000), "sensor-after");
    let s = wait_events(&st, &cfg, "agent-2", replayed + u64::from(AFTER));
    assert_eq!(counter(&s, "events_dropped"), dropped, "no new drops: {s}");
    assert_eq!(
        counter(&s, "events_received"),
        received + u64::from(AFTER),
        "{s}"
    );

    let at_least = u64::from(WARM_MATCHES + AFTER_MATCHES)
        + hits_before(&flood_hits, FIRST_FLOOD, kept.saturating_sub(4)).len() as u64;
    wait_status(&st, &cfg, "agent-2", "the alerts stored", |s| {
        counter(s, "alerts_stored") >= at_least
    });
    let pids = alert_pids(&cfg);
    let unique: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(unique.len(), pids.len(), "no alert stored twice");
    let in_range = |lo: u32, n: u32| {
        unique
            .iter()
            .copied()
            .filter(move |p| (lo..lo + n).contains(p))
    };
    assert_eq!(in_range(FIRST_WARM, WARM).collect::<Vec<_>>(), warm_hits);
    assert_eq!(in_range(FIRST_AFTER, AFTER).collect::<Vec<_>>(), after_hits);
    // The flood's survivors are its first events, plus at most a few smaller records that
    // still fitted the space a larger one could not use.
    let flood_alerts: BTreeSet<u32> = in_range(FIRST_FLOOD, FLOOD).collect();
    let hits: BTreeSet<u32> = flood_hits.iter().copied().collect();
    assert!(
        flood_alerts.is_subset(&hits),
        "alerts only for matching events"
    );
    let surely_kept: BTreeSet<u32> = hits_before(&flood_hits, FIRST_FLOOD, kept.saturating_sub(4))
        .into_iter()
        .collect();
    assert!(
        surely_kept.is_subset(&flood_alerts),
        "every matching event the ring kept alerted: missing {:?}",
        surely_kept.difference(&flood_alerts).collect::<Vec<_>>()
    );
    assert_eq!(
        unique.len(),
        WARM_MATCHES as usize + flood_alerts.len() + AFTER_MATCHES as usize
    );
    eprintln!("ring full: {received} received, {dropped} dropped of {replayed}");

    stop(&mut agent, &st, "agent-2");
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify: {text}");
}
