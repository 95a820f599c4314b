//! Random bytes written into the shared-memory ring while the sensor and the agent both run:
//! the agent survives, counts what the corruption cost, resynchronises, and keeps alerting
//! on every later event. Accounting stays exact: replayed = received + dropped.

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nightjar_tests::agent_cli::{counter, verify};
use nightjar_tests::harness::TempState;
use nightjar_tests::pipeline::{
    PATIENCE, alert_pids, log_text, replay_all, spawn_agent, spawn_replay, stop, wait_agent_ready,
    wait_events, wait_status,
};
use nightjar_tests::streams::EsloggerGen;

/// The ring file's header page, and where the producer's published write position and the
/// consumer's committed read position sit in it (proto/src/shm_ring/layout.rs).
const HEADER_BYTES: u64 = 4096;
const WRITE_POS_AT: u64 = 128;
const READ_POS_AT: u64 = 256;
/// `ring_capacity_bytes` as `TempState::write_config` writes it.
const CAPACITY: u64 = 4 * 1024 * 1024;

const A: (u32, u32, u32) = (10_000, 2_000, 20);
const B: (u32, u32, u32) = (20_000, 3_000, 30);
const C: (u32, u32, u32) = (40_000, 1_000, 10);

fn read_u64(ring: &std::fs::File, at: u64) -> u64 {
    let mut b = [0u8; 8];
    ring.read_exact_at(&mut b, at).expect("read ring header");
    u64::from_le_bytes(b)
}

/// Overwrites `len` bytes at ring position `pos` (wrapping like the ring does) with noise.
fn scribble(ring: &std::fs::File, pos: u64, len: usize, rng: &mut u64) {
    let noise: Vec<u8> = (0..len)
        .map(|_| {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng as u8
        })
        .collect();
    let offset = pos & (CAPACITY - 1);
    let first = ((CAPACITY - offset) as usize).min(len);
    ring.write_all_at(&noise[..first], HEADER_BYTES + offset)
        .expect("scribble");
    if first < len {
        ring.write_all_at(&noise[first..], HEADER_BYTES)
            .expect("scribble wrapped");
    }
}

fn pause(pid: u32, sig: i32) {
    // SAFETY: kill on our own child's pid, which the ChildGuard has not reaped.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

#[test]
fn scribbled_ring_is_survived_counted_and_resynchronised() {
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\nmax_signals = 0\n");
    let mut generator = EsloggerGen::new();
    let stream = |generator: &mut EsloggerGen, name: &str, (first, total, matches)| {
        let path = st.path().join(name);
        let hits = generator.write_stream_at(&path, first, total, matches);
        (path, hits)
    };
    let (a, hits_a) = stream(&mut generator, "a.ndjson", A);
    let (b, hits_b) = stream(&mut generator, "b.ndjson", B);
    let (c, hits_c) = stream(&mut generator, "c.ndjson", C);

    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    replay_all(&st, &cfg, &a, None, "sensor-a");
    wait_events(&st, &cfg, "agent", u64::from(A.1));

    // The agent is frozen (alive, not reading) while the sensor publishes stream b, so the
    // records it has yet to read are in the ring when the noise lands on them.
    pause(agent.pid(), libc::SIGSTOP);
    let ring = OpenOptions::new()
        .read(true)
        .write(true)
        .open(st.ring_path())
        .expect("open the ring file");
    // Everything published from here on is stream b, which the frozen agent has not read
    // (its committed read position may lag behind what it has read of stream a).
    let b_starts = read_u64(&ring, WRITE_POS_AT);
    let mut sensor = spawn_replay(&st, &cfg, &b, Some(3_000), "sensor-b");
    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x2545_f491)
        | 1;
    let mut scribbles = 0;
    let deadline = std::time::Instant::now() + PATIENCE;
    while scribbles < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(150));
        let read = read_u64(&ring, READ_POS_AT).max(b_starts);
        let write = read_u64(&ring, WRITE_POS_AT);
        let unread = write.saturating_sub(read);
        if unread < 4096 {
            continue;
        }
        // Somewhere in the unread records, clear of the newest ones.
        let pos = read + (rng % (unread - 2048));
        scribble(&ring, pos, 48, &mut rng);
        scribbles += 1;
    }
    assert_eq!(scribbles, 4, "stream b put unread records in the ring");
    pause(agent.pid(), libc::SIGCONT);
    let done = sensor.wait_timeout(PATIENCE).expect("replay b finishes");
    assert!(done.success(), "replay b: {}", log_text(&st, "sensor-b"));

    // Later events alert as usual.
    replay_all(&st, &cfg, &c, Some(5_000), "sensor-c");
    let replayed = u64::from(A.1 + B.1 + C.1);
    let s = wait_events(&st, &cfg, "agent", replayed);
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "the agent survives: {}",
        log_text(&st, "agent")
    );
    let received = counter(&s, "events_received");
    let dropped = counter(&s, "events_dropped");
    assert_eq!(
        received + dropped,
        replayed,
        "replayed = received + dropped: {s}"
    );
    assert!(dropped > 0, "the corruption is reported as loss: {s}");
    // A scribble over a record header costs a resync; one over a payload, a record the
    // codec refuses; one over the ring header, a rebuild. Which ones happen is random, so
    // only the field's presence is certain.
    assert!(
        s["ring_resyncs"].as_u64().is_some(),
        "status reports ring_resyncs: {s}"
    );

    let want = u64::from(A.2 + C.2);
    wait_status(&st, &cfg, "agent", "stream c's alerts", |s| {
        counter(s, "alerts_stored") >= want
    });
    let pids = alert_pids(&cfg);
    let unique: BTreeSet<u32> = pids.iter().copied().collect();
    assert_eq!(unique.len(), pids.len(), "no alert stored twice");
    let of = |(first, total, _): (u32, u32, u32)| -> BTreeSet<u32> {
        unique
            .iter()
            .copied()
            .filter(|p| (first..first + total).contains(p))
            .collect()
    };
    assert_eq!(
        of(A),
        hits_a.into_iter().collect(),
        "stream a alerted fully"
    );
    assert_eq!(
        of(C),
        hits_c.into_iter().collect(),
        "stream c alerted fully"
    );
    let hits_b: BTreeSet<u32> = hits_b.into_iter().collect();
    assert!(
        of(B).is_subset(&hits_b),
        "no alert for an event that did not match: {:?}",
        of(B).difference(&hits_b).collect::<Vec<_>>()
    );
    assert_eq!(
        unique.len(),
        of(A).len() + of(B).len() + of(C).len(),
        "no alert for an event that was never replayed"
    );
    eprintln!(
        "scribbled ring: {received} received, {dropped} dropped, {} of {} stream-b alerts survived",
        of(B).len(),
        B.2
    );

    stop(&mut agent, &st, "agent");
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify: {text}");
}
