//! Alerts survive power loss, checked the way storage engines are: the agent runs with its
//! state directory on a file system that keeps only what was made durable
//! (`nightjar_tests::crashfs`, FUSE), the power is cut at a chosen operation, and the agent
//! is restarted on every crash state that cut allows (only what was synced; everything
//! written; random subsets of the unsynced writes, the last ones torn). On each it must
//! start, every alert whose event's ring position was committed must be there, nothing
//! doubled, and the chain must verify; then, given the ring as it was at the cut, it must
//! alert on every other matching event too, exactly once.
//!
//! CI runs [`CI_POINTS`] crash points and each of the first [`FIRST_START_OPS`] operations;
//! `NIGHTJAR_CRASH_POINTS=N` runs N (the long run, see
//! docs/operating.md), `NIGHTJAR_CRASH_SEED=S` replays a run. The crash points and states
//! tried are printed at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nightjar_proto::codec::{self, Record};
use nightjar_proto::shm_ring::Consumer;
use nightjar_tests::agent_cli::{alerts, counter, status, verify};
use nightjar_tests::crashfs::{self, Choice, Controller};
use nightjar_tests::harness::{TempState, in_ci, is_root, wait_for};
use nightjar_tests::pipeline::{log_text, spawn_agent, stop, wait_agent_ready};
use nightjar_tests::streams::EsloggerGen;
use serde_json::Value;

/// Crash points CI tries.
const CI_POINTS: u64 = 12;
/// Every one of the first operations is also a crash point, in every run: the first start
/// (state directory, host key, locks) must survive a power cut at any step, and evenly
/// spread points rarely fall there. (A host key written in place and then synced fails here:
/// the cut between the two leaves a torn `host.key` the agent never starts with.)
const FIRST_START_OPS: u64 = 10;
const EVENTS: u32 = 240;
const MATCHES: u32 = 48;
const RING_BYTES: u64 = 4 * 1024 * 1024;

fn may_run() -> bool {
    if is_root() && Path::new("/dev/fuse").exists() {
        return true;
    }
    assert!(
        !in_ci(),
        "CI runs as root with /dev/fuse: the crash-state tests must run"
    );
    eprintln!("crash states need root and /dev/fuse; not run");
    false
}

/// Where one crash run keeps things: the FUSE disk with the state directory, the ring on a
/// real file system (it is memory in production: a power loss takes it too).
struct Run {
    st: TempState,
    cfg: PathBuf,
    stream: PathBuf,
    /// Pids of the matching events.
    hits: Vec<u32>,
}

fn config_at(st: &TempState, state_dir: &Path, ring: &Path) -> PathBuf {
    let cfg = st.path().join("nightjar.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nring_path = {:?}\nring_capacity_bytes = {RING_BYTES}\nhost_id = \"crash-host\"\n[rules]\nbuiltin = true\nmax_signals = 0\n",
            state_dir.display().to_string(),
            ring.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

impl Run {
    fn new() -> Run {
        let st = TempState::new();
        let disk = st.path().join("disk");
        std::fs::create_dir(&disk).unwrap();
        let cfg = config_at(&st, &disk.join("state"), &st.ring_path());
        let stream = st.path().join("stream.ndjson");
        let hits = EsloggerGen::new().write_stream(&stream, EVENTS, MATCHES);
        Run {
            st,
            cfg,
            stream,
            hits,
        }
    }
}

/// What a crash run left.
struct Cut {
    ops: u64,
    syncs: u64,
    controller: Controller,
    /// The ring file as it was after the cut.
    ring: PathBuf,
    /// Pids of the matching events whose ring positions were committed.
    committed_hits: BTreeSet<u32>,
    /// Pids of the matching events published to the ring before the cut.
    published_hits: BTreeSet<u32>,
    _mounted: crashfs::Mounted,
}

/// Events per second the sensor replays while the agent runs: slow enough that the agent
/// stores, commits and releases in many small rounds, so crash points fall between them.
const RATE: u32 = 600;

/// Runs the agent on a fresh crash disk while the sensor replays the stream into the ring,
/// the power cut at operation `cut_at` (None: no cut, the calibration run).
fn crash_run(run: &Run, cut_at: Option<u64>, tag: &str) -> Cut {
    let disk = run.st.path().join("disk");
    let mounted = crashfs::mount(&disk).expect("mount the crash file system");
    let controller = mounted.controller.clone();
    let _ = std::fs::remove_file(run.st.ring_path());
    if let Some(at) = cut_at {
        controller.cut_power_at(at);
    }
    let name = format!("agent-{tag}");
    let mut agent = spawn_agent(&run.st, &run.cfg, &name);
    // Until the agent answers, or the power goes while it starts.
    let ready = wait_for(Duration::from_secs(120), || {
        if controller.is_cut() {
            return Some(false);
        }
        status(&run.cfg)
            .filter(|s| s["agent_running"] == true)
            .map(|_| true)
    });
    assert!(
        ready.is_some(),
        "{name} never answered: {}",
        log_text(&run.st, &name)
    );
    let mut sensor = nightjar_tests::pipeline::spawn_replay(
        &run.st,
        &run.cfg,
        &run.stream,
        Some(RATE),
        &format!("sensor-{tag}"),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if controller.is_cut() {
            break;
        }
        // The run's operation count varies with how events batch up: a run may end before
        // its cut point. Then the power goes once everything is released.
        if status(&run.cfg).is_some_and(|s| {
            counter(&s, "events_received") >= u64::from(EVENTS)
                && counter(&s, "alerts_stored") >= u64::from(MATCHES)
        }) {
            if cut_at.is_some() {
                std::thread::sleep(Duration::from_millis(300));
                controller.cut_power_at(controller.ops() + 1);
            }
            break;
        }
        if let Ok(Some(exit)) = agent.child.try_wait() {
            panic!(
                "{name} exited ({exit}) before the cut: {}",
                log_text(&run.st, &name)
            );
        }
        assert!(
            Instant::now() < deadline,
            "{name}: neither the cut at {cut_at:?} nor the end came: {} ops\n{}",
            controller.ops(),
            log_text(&run.st, &name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    if cut_at.is_none() {
        let _ = sensor.wait_timeout(Duration::from_secs(60));
        stop(&mut agent, &run.st, &name);
    } else {
        // Whatever the agent does after the cut cannot reach the disk; a commit of the ring
        // it made just before the cut lands now.
        std::thread::sleep(Duration::from_millis(200));
        agent.kill9();
    }
    // The sensor stops with the machine.
    sensor.kill9();
    let ring = run.st.path().join(format!("ring-{tag}"));
    std::fs::copy(run.st.ring_path(), &ring).unwrap();
    let (committed_hits, published_hits) = committed(run, &ring);
    Cut {
        ops: controller.ops(),
        syncs: controller.syncs(),
        controller,
        ring,
        committed_hits,
        published_hits,
        _mounted: mounted,
    }
}

/// The matching events whose records the agent had released in `ring` (its committed read
/// position: every event before the first record still unreleased), and those published
/// to it at all.
fn committed(run: &Run, ring: &Path) -> (BTreeSet<u32>, BTreeSet<u32>) {
    let probe = TempState::new();
    let copy = probe.path().join("probe.ring");
    std::fs::copy(ring, &copy).unwrap();
    let mut consumer = Consumer::open(&copy, RING_BYTES).expect("read the ring copy");
    let mut first_unreleased = None;
    let mut last_published = None;
    while let Ok(Some(entry)) = consumer.next() {
        if let Ok(Record::Exec(ev)) = codec::decode(entry.bytes) {
            first_unreleased.get_or_insert(ev.target.pid);
            last_published = Some(ev.target.pid);
        }
    }
    // Event i of the stream has pid 10_000 + i (EsloggerGen::write_stream). With nothing
    // unreleased, what was released is what was published: read the agent's count.
    let released_below = first_unreleased.unwrap_or(u32::MAX);
    let committed: BTreeSet<u32> = run
        .hits
        .iter()
        .copied()
        .filter(|&p| p < released_below)
        .collect();
    let published = match last_published {
        Some(last) => run.hits.iter().copied().filter(|&p| p <= last).collect(),
        None => committed.clone(),
    };
    (committed, published)
}

/// Counts what one crash state showed.
#[derive(Default)]
struct Tally {
    states: u64,
    alerts_checked: u64,
}

/// Restarts the agent on one crash state and checks it.
fn check_state(run: &Run, cut: &Cut, choice: Choice, label: &str, tally: &mut Tally) {
    let image = cut.controller.crash_state(choice);
    let st = TempState::new();
    let state_dir = st.path().join("disk");
    image
        .materialize(&state_dir)
        .expect("write the crash state out");
    let state_dir = state_dir.join("state");
    let what = format!("{label}, {choice}");
    if !state_dir.exists() {
        // The cut came before the state directory's creation was durable: nothing was
        // committed either.
        assert!(
            cut.committed_hits.is_empty(),
            "{what}: the state directory is gone but alerts were committed"
        );
    }

    let cfg = config_at(&st, &state_dir, &st.ring_path());
    // Phase 1, a power loss as it happens (only what was synced; the ring is gone too):
    // every committed alert is there. The other states go straight to phase 2, which finds
    // a lost committed alert as surely (its event is never read again).
    if choice == Choice::Durable {
        power_loss(&st, &cfg, cut, &what, tally);
    }
    ring_kept(run, &st, &cfg, cut, &what, tally);
}

fn power_loss(st: &TempState, cfg: &Path, cut: &Cut, what: &str, tally: &mut Tally) {
    let (st, cfg) = (st, cfg);
    let mut agent = spawn_agent(st, cfg, "agent");
    wait_agent_ready(st, cfg, "agent");
    let listed = alerts(cfg);
    let pids = pids_once(&listed, what);
    let missing: Vec<u32> = cut
        .committed_hits
        .iter()
        .copied()
        .filter(|p| !pids.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{what}: committed alerts missing after the crash: {missing:?}\nagent log:\n{}",
        log_text(st, "agent")
    );
    let (code, text) = verify(cfg);
    assert_eq!(code, 0, "{what}: verify after the crash: {text}");
    stop(&mut agent, st, "agent");
    tally.alerts_checked += listed.len() as u64;
}

/// Phase 2, the ring kept as it was at the cut: every published matching event alerts,
/// once, and the chain verifies.
fn ring_kept(run: &Run, st: &TempState, cfg: &Path, cut: &Cut, what: &str, tally: &mut Tally) {
    let _ = run;
    std::fs::create_dir_all(st.ring_path().parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(st.ring_path());
    std::fs::copy(&cut.ring, st.ring_path()).unwrap();
    std::fs::set_permissions(st.ring_path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let (st, cfg) = (st, cfg);
    let mut agent = spawn_agent(st, cfg, "agent-ring");
    wait_agent_ready(st, cfg, "agent-ring");
    let all = &cut.published_hits;
    let got = wait_for(Duration::from_secs(90), || {
        let listed = alerts(cfg);
        let pids = pids_once(&listed, what);
        (&pids == all).then_some(listed)
    });
    let listed = got.unwrap_or_else(|| {
        let pids = pids_once(&alerts(cfg), what);
        panic!(
            "{what}: with the ring kept, alerts {:?} missing, {:?} unexpected\nagent log:\n{}",
            all.difference(&pids).collect::<Vec<_>>(),
            pids.difference(all).collect::<Vec<_>>(),
            log_text(st, "agent-ring")
        )
    });
    let (code, text) = verify(cfg);
    assert_eq!(code, 0, "{what}: verify with the ring replayed: {text}");
    stop(&mut agent, st, "agent-ring");
    tally.alerts_checked += listed.len() as u64;
    tally.states += 1;
}

/// The pids of the listed alerts, each seen once (a duplicate fails the test).
fn pids_once(listed: &[Value], what: &str) -> BTreeSet<u32> {
    let mut count: BTreeMap<u32, u32> = BTreeMap::new();
    let mut uuids = BTreeSet::new();
    for a in listed {
        let pid = a["process"]["pid"].as_u64().expect("process.pid") as u32;
        *count.entry(pid).or_default() += 1;
        let uuid = a["kibana"]["alert"]["uuid"]
            .as_str()
            .expect("uuid")
            .to_string();
        assert!(
            uuids.insert(uuid.clone()),
            "{what}: alert {uuid} stored twice"
        );
    }
    let doubled: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{what}: events alerted twice: {doubled:?}"
    );
    count.into_keys().collect()
}

#[test]
fn every_crash_state_keeps_every_committed_alert() {
    if !may_run() {
        return;
    }
    let points: u64 = std::env::var("NIGHTJAR_CRASH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_POINTS);
    let seed: u64 = std::env::var("NIGHTJAR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    eprintln!("crash states: seed {seed} (NIGHTJAR_CRASH_SEED={seed} replays this run)");
    let started = Instant::now();

    // Calibration: the whole run without a cut, to know how many operations it makes.
    let run = Run::new();
    let full = crash_run(&run, None, "full");
    assert_eq!(
        full.committed_hits.len(),
        MATCHES as usize,
        "the full run commits everything"
    );
    let total = full.ops;
    eprintln!(
        "crash states: a full run makes {total} operations ({} syncs) for {EVENTS} events and {MATCHES} alerts",
        full.syncs
    );
    drop(full);

    // Crash points: spread over the run, plus random ones.
    let mut rng = seed;
    let mut next = || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };
    let mut cuts: BTreeSet<u64> = (1..=points / 2)
        .map(|i| 1 + i * (total - 1) / (points / 2 + 1))
        .collect();
    while (cuts.len() as u64) < points {
        cuts.insert(1 + next() % total.max(1));
    }
    cuts.extend(1..=FIRST_START_OPS.min(total));

    let mut tally = Tally::default();
    let mut with_committed = 0u64;
    for (i, &at) in cuts.iter().enumerate() {
        let run = Run::new();
        let cut = crash_run(&run, Some(at), &format!("cut{i}"));
        if !cut.committed_hits.is_empty() {
            with_committed += 1;
        }
        let label = format!(
            "cut at operation {at} of {total} ({} committed alerts)",
            cut.committed_hits.len()
        );
        let choices = [
            Choice::Durable,
            Choice::Everything,
            Choice::Random(next()),
            Choice::TornTail,
        ];
        for choice in choices {
            let t = Instant::now();
            check_state(&run, &cut, choice, &label, &mut tally);
            eprintln!("crash states:   {choice}: {:?}", t.elapsed());
        }
        eprintln!("crash states: {label}: {} states ok", choices.len());
    }
    eprintln!(
        "crash states: {} crash points ({with_committed} with committed alerts), {} crash states, {} alerts checked, in {:?}",
        cuts.len(),
        tally.states,
        tally.alerts_checked,
        started.elapsed()
    );
}
