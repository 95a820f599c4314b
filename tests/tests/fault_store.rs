//! The alert store under attack and under pressure: an alert altered or deleted in the
//! envelope log behind the agent's back makes `verify` exit 1 naming that seq (with and
//! without a running agent),
//! and a full disk stalls alerting loudly without releasing the ring past the alerts it
//! could not store, so that with room again every alert appears, none lost, none doubled.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nightjar_agent::store::log::{record_spans, segment_files};
use nightjar_tests::agent_cli::{counter, verify};
use nightjar_tests::harness::{ChildGuard, TempState, bin, in_ci, is_root, run, wait_for};
use nightjar_tests::pipeline::{
    alert_pids, log_text, replay_all, spawn_agent, stop, wait_agent_ready, wait_events, wait_status,
};
use nightjar_tests::streams::EsloggerGen;

const RULES: &str = "[rules]\nbuiltin = true\nmax_signals = 0\n";
const MATCHES: u32 = 12;
/// Streams of 1,000 events (20 alerts) fed into a full disk before the store must fail.
const STALL_ROUNDS: u32 = 10;

/// A store holding `MATCHES` verified alerts, the agent stopped.
fn store_with_alerts(st: &TempState) -> PathBuf {
    let cfg = st.write_config(RULES);
    let stream = st.path().join("stream.ndjson");
    EsloggerGen::new().write_stream(&stream, 600, MATCHES);
    let mut agent = spawn_agent(st, &cfg, "agent");
    wait_agent_ready(st, &cfg, "agent");
    replay_all(st, &cfg, &stream, None, "sensor");
    wait_status(st, &cfg, "agent", "alerts stored", |s| {
        counter(s, "alerts_stored") == u64::from(MATCHES)
    });
    stop(&mut agent, st, "agent");
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "the untouched store verifies: {text}");
    cfg
}

/// The span (segment file, offset, length) of alert `seq` in the agent's envelope log.
fn record_of(st: &TempState, seq: u64) -> (PathBuf, usize, usize) {
    let db = st.state_dir().join("alerts.sled");
    for seg in segment_files(&db).expect("list the log") {
        for (s, at, len) in record_spans(&seg).expect("read a segment") {
            if s == seq {
                return (seg, at as usize, len as usize);
            }
        }
    }
    panic!("no stored alert of seq {seq}");
}

/// Rewrites the agent's log file holding alert `seq` (the agent is stopped): `edit` gets the
/// file's bytes and the record's span.
fn edit_log(st: &TempState, seq: u64, edit: impl FnOnce(&mut Vec<u8>, usize, usize)) {
    let (seg, at, len) = record_of(st, seq);
    let mut bytes = std::fs::read(&seg).expect("read the segment");
    edit(&mut bytes, at, len);
    std::fs::write(&seg, bytes).expect("write the segment back");
}

/// `verify` fails with exit 1 and names `seq`, both from the store at rest and through a
/// running agent.
fn assert_verify_names(st: &TempState, cfg: &Path, seq: u64) {
    let needle = format!("seq {seq}:");
    let (code, text) = verify(cfg);
    assert_eq!(code, 1, "verify at rest must fail: {text}");
    assert!(text.contains(&needle), "verify names {needle:?}: {text}");

    let mut agent = spawn_agent(st, cfg, "agent-after");
    wait_agent_ready(st, cfg, "agent-after");
    let (code, text) = verify(cfg);
    assert_eq!(code, 1, "verify through the agent must fail: {text}");
    assert!(text.contains(&needle), "verify names {needle:?}: {text}");
    stop(&mut agent, st, "agent-after");
}

#[test]
fn a_flipped_byte_in_a_stored_alert_fails_verify_naming_its_seq() {
    let st = TempState::new();
    let cfg = store_with_alerts(&st);
    let target = 5u64;
    edit_log(&st, target, |bytes, at, len| {
        // Flip one base64 character inside the payload: the envelope stays well-formed JSON,
        // but its bytes are no longer what was written (nor what was signed).
        let record = &bytes[at..at + len];
        let start = find(record, b"\"payload\":\"").expect("payload field") + 11;
        let i = at + start + 40;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    });
    assert_verify_names(&st, &cfg, target);
}

#[test]
fn a_deleted_alert_fails_verify_naming_the_missing_seq() {
    let st = TempState::new();
    let cfg = store_with_alerts(&st);
    let target = 7u64;
    edit_log(&st, target, |bytes, at, len| {
        bytes.drain(at..at + len);
    });
    assert_verify_names(&st, &cfg, target);
}

#[test]
fn a_deleted_last_alert_fails_verify_against_the_chain_head() {
    let st = TempState::new();
    let cfg = store_with_alerts(&st);
    let target = u64::from(MATCHES);
    edit_log(&st, target, |bytes, at, len| {
        bytes.drain(at..at + len);
    });
    assert_verify_names(&st, &cfg, target);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs {
    at: PathBuf,
}

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let out = run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at));
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            at: at.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(&self.at));
    }
}

/// Fills the file system holding `path` until writes fail with ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("filler file");
    let chunk = vec![0x5a_u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Partial pages: keep writing single bytes until nothing fits.
    while let Ok(1) = f.write(&[0x5a]) {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_stalls_alerting_loudly_and_loses_nothing() {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root: the disk-full test must run");
        eprintln!("mounting a tmpfs needs root; not run");
        return;
    }
    let st = TempState::new();
    let _tmpfs = Tmpfs::mount(&st.state_dir(), "24m");
    let cfg = st.write_config(RULES);
    let mut generator = EsloggerGen::new();
    let a = st.path().join("a.ndjson");
    let hits_a = generator.write_stream_at(&a, 10_000, 1_000, 10);

    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    replay_all(&st, &cfg, &a, None, "sensor-a");
    wait_status(&st, &cfg, "agent-1", "the first alerts", |s| {
        counter(s, "alerts_stored") == 10
    });

    // No room left on the state directory's file system.
    let filler = st.state_dir().join("filler");
    fill(&filler);
    // Sled may still have written pages to reuse: keep feeding alerts until it needs a
    // new page and the store fails. Loud: the agent log says alerting stalled.
    let mut hits_b = Vec::new();
    let mut events_b = 0u32;
    let mut stalled = false;
    for round in 0..STALL_ROUNDS {
        let b = st.path().join(format!("b{round}.ndjson"));
        hits_b.extend(generator.write_stream_at(&b, 20_000 + round * 1_000, 1_000, 20));
        events_b += 1_000;
        replay_all(&st, &cfg, &b, Some(4_000), &format!("sensor-b{round}"));
        stalled = wait_for(Duration::from_secs(5), || {
            log_text(&st, "agent-1")
                .contains("alerting stalled")
                .then_some(())
        })
        .is_some();
        if stalled {
            break;
        }
    }
    assert!(
        stalled,
        "the agent reports the store failure after {STALL_ROUNDS} streams; log:\n{}",
        log_text(&st, "agent-1")
    );
    let total_alerts = 10 + hits_b.len() as u64;
    let total_events = 1_000 + u64::from(events_b);
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        agent.child.try_wait().expect("try_wait").is_none(),
        "the agent survives a full disk: {}",
        log_text(&st, "agent-1")
    );
    let during = nightjar_tests::agent_cli::status(&cfg).expect("status while stalled");
    assert!(
        counter(&during, "alerts_stored") < total_alerts,
        "some alerts could not be stored: {during}"
    );
    assert!(
        during["alerting_stalled"].is_string(),
        "status names the stall: {during}"
    );

    // Room again: the agent stores the stalled alerts, by itself within its longest retry
    // pause (30 s), or once restarted.
    std::fs::remove_file(&filler).expect("free space");
    let recovered = wait_for(Duration::from_secs(35), || {
        nightjar_tests::agent_cli::status(&cfg)
            .filter(|s| counter(s, "alerts_stored") == total_alerts)
            .map(|_| ())
    });
    agent.signal(libc::SIGTERM);
    let exited = agent.wait_timeout(Duration::from_secs(30));
    assert!(
        exited.is_some(),
        "the agent stops on SIGTERM after a full disk"
    );
    let mut agent: ChildGuard = spawn_agent(&st, &cfg, "agent-2");
    let s = wait_status(&st, &cfg, "agent-2", "every alert stored", |s| {
        counter(s, "alerts_stored") >= total_alerts && counter(s, "events_received") >= total_events
    });
    assert_eq!(counter(&s, "alerts_stored"), total_alerts, "{s}");
    assert_eq!(counter(&s, "events_dropped"), 0, "{s}");
    let pids: BTreeSet<u32> = alert_pids(&cfg).into_iter().collect();
    let expected: BTreeSet<u32> = hits_a.into_iter().chain(hits_b).collect();
    assert_eq!(pids, expected, "every matching event alerted exactly once");
    eprintln!(
        "disk full: alerts recovered {} restart",
        if recovered.is_some() {
            "without a"
        } else {
            "after a"
        }
    );
    wait_events(&st, &cfg, "agent-2", total_events);
    stop(&mut agent, &st, "agent-2");
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "verify: {text}");
}

/// Durable alerts lost (the log zeroed from seq 7 on, as a failing disk leaves it): the
/// agent does not stop alerting. It quarantines the store, says so in `status`, and the new
/// store's chain continues after the last intact alert, which its first alert names.
#[test]
fn a_damaged_store_is_quarantined_and_alerting_goes_on() {
    let st = TempState::new();
    let cfg = store_with_alerts(&st);
    let intact = 6u64;
    edit_log(&st, intact + 1, |bytes, at, _| {
        for b in &mut bytes[at..] {
            *b = 0;
        }
    });
    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    let s = wait_status(&st, &cfg, "agent-2", "the quarantine reported", |s| {
        s["store_recovery"].is_string()
    });
    let said = s["store_recovery"].as_str().unwrap();
    assert!(
        said.contains("quarantined") && said.contains(&format!("after seq {intact}")),
        "{s}"
    );
    let human = run(Command::new(bin("nightjar-agent"))
        .args(["status", "--config"])
        .arg(&cfg));
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("quarantined"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );

    let stream = st.path().join("after.ndjson");
    let hits = EsloggerGen::new().write_stream_at(&stream, 50_000, 300, 5);
    replay_all(&st, &cfg, &stream, None, "sensor-2");
    let new: BTreeSet<u32> = hits.iter().copied().collect();
    let got = wait_for(Duration::from_secs(60), || {
        let listed = nightjar_tests::agent_cli::alerts(&cfg);
        let pids: BTreeSet<u32> = listed
            .iter()
            .filter_map(|a| a["process"]["pid"].as_u64().map(|p| p as u32))
            .filter(|p| new.contains(p))
            .collect();
        (pids == new).then_some(listed)
    })
    .unwrap_or_else(|| panic!("the new alerts; agent log:\n{}", log_text(&st, "agent-2")));
    let first = got
        .iter()
        .find(|a| a["nightjar"]["seq"] == intact + 1)
        .unwrap_or_else(|| panic!("an alert of seq {}: {got:?}", intact + 1));
    assert_eq!(
        first["nightjar"]["recovered_from"]["seq"], intact,
        "{first}"
    );
    assert!(new.contains(&(first["process"]["pid"].as_u64().unwrap() as u32)));
    stop(&mut agent, &st, "agent-2");
    let (code, text) = verify(&cfg);
    assert_eq!(code, 0, "the new chain verifies: {text}");
}
