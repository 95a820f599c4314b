//! The ring between real processes: order and contents, drops, restarts, rebuilds, files.

mod ring_support;

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use nightjar_proto::codec::MAX_RECORD_BYTES;
use nightjar_proto::shm_ring::{Consumer, Producer, RingError};
use ring_support::{arg, check_record, drain, expect_records, join, push_retrying, spawn};

const MIB: u64 = 1024 * 1024;
const ENTRY: &str = "child_process_entry";

/// Runs the child roles when this binary is re-executed by a test; a no-op otherwise.
#[test]
fn child_process_entry() {
    let Some((role, path)) = ring_support::role() else {
        return;
    };
    match role.as_str() {
        "stream" => stream(&path),
        "crash" => crash(&path),
        "fixed" => fixed(&path),
        "consume_and_die" => consume_and_die(&path),
        "until_stopped" => until_stopped(&path),
        "expect_busy" => {
            let err = Producer::open(&path, MIB)
                .err()
                .expect("second producer refused");
            assert!(matches!(err, RingError::ProducerBusy { .. }), "{err}");
        }
        "expect_consumer_busy" => {
            let err = Consumer::open(&path, MIB).expect_err("second consumer refused");
            assert!(matches!(err, RingError::ConsumerBusy { .. }), "{err}");
            assert!(err.to_string().contains("another consumer"), "{err}");
        }
        other => panic!("unknown role {other}"),
    }
}

/// Pushes records FIRST..FIRST+COUNT, retrying when full; records the retries (= drops).
fn stream(path: &Path) {
    let mut p = Producer::open(path, arg("CAP")).unwrap();
    let first = arg("FIRST");
    let mut retries = 0;
    for i in first..first + arg("COUNT") {
        retries += push_retrying(&mut p, i);
        if i.is_multiple_of(32) {
            p.flush();
        }
    }
    p.flush();
    let mut name = path.as_os_str().to_os_string();
    name.push(".retries");
    std::fs::write(name, retries.to_string()).unwrap();
}

/// Publishes FIRST..FIRST+COUNT, pushes five more without publishing, and dies without
/// running destructors, as a killed sensor would.
fn crash(path: &Path) {
    let mut p = Producer::open(path, MIB).unwrap();
    let first = arg("FIRST");
    let count = arg("COUNT");
    for i in first..first + count {
        push_retrying(&mut p, i);
    }
    p.flush();
    for i in first + count..first + count + 5 {
        push_retrying(&mut p, i);
    }
    // SAFETY: _exit ends the process at once; nothing is left half-done that matters here.
    unsafe { libc::_exit(0) }
}

/// Pushes COUNT fixed-size records (1008 bytes, 1024 in the ring) without retrying.
fn fixed(path: &Path) {
    let mut p = Producer::open(path, arg("CAP")).unwrap();
    for i in 0..arg("COUNT") {
        let mut rec = [0u8; 1008];
        rec[..8].copy_from_slice(&i.to_le_bytes());
        p.try_push(&rec);
    }
    p.flush();
}

/// Pushes and flushes one record every millisecond until `<ring>.stop` exists (or, should
/// the test have died, for a minute).
fn until_stopped(path: &Path) {
    let mut p = Producer::open(path, MIB).unwrap();
    let mut stop = path.as_os_str().to_os_string();
    stop.push(".stop");
    let mut i = 0;
    while !Path::new(&stop).exists() && i < 60_000 {
        push_retrying(&mut p, i);
        p.flush();
        i += 1;
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Reads READ records, commits up to the COMMIT-th, and dies.
fn consume_and_die(path: &Path) {
    let mut c = Consumer::open(path, MIB).unwrap();
    let commit_at = arg("COMMIT");
    for n in 0..arg("READ") {
        let entry = c.next().unwrap().expect("records are there");
        assert_eq!(check_record(entry.bytes), Some(n));
        let end = entry.end;
        if n + 1 == commit_at {
            c.commit(end);
        }
    }
    // SAFETY: see `crash`.
    unsafe { libc::_exit(0) }
}

fn nums(pairs: &[(&'static str, u64)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

#[test]
fn millions_of_records_arrive_in_order_with_exact_contents() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    let count = 2_000_000;
    let mut child = spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", count)]),
    );
    expect_records(&mut c, 0, count, &mut child);
    join(child);
    assert_eq!(drain(&mut c).unwrap(), Vec::<u64>::new());
    let retries: u64 = std::fs::read_to_string(dir.path().join("events.ring.retries"))
        .unwrap()
        .parse()
        .unwrap();
    let stats = c.stats();
    assert_eq!(stats.drops, retries, "every refused push is counted once");
    assert_eq!((stats.resyncs, stats.lost_in_resync), (0, 0));
    assert!(!stats.producer_alive);
    assert!(c.producer_idle_for().is_some());
}

#[test]
fn a_full_ring_drops_and_counts_exactly() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let cap = 512 * 1024;
    let mut c = Consumer::open(&path, cap).unwrap();
    join(spawn(
        ENTRY,
        "fixed",
        &path,
        &nums(&[("CAP", cap), ("COUNT", 2000)]),
    ));
    let mut got = Vec::new();
    while let Some(entry) = c.next().unwrap() {
        got.push(u64::from_le_bytes(entry.bytes[..8].try_into().unwrap()));
    }
    // 1024 bytes per record: exactly 512 fit, the other 1488 were dropped.
    assert_eq!(got, (0..512).collect::<Vec<_>>());
    assert_eq!(c.stats().drops, 1488);
}

#[test]
fn a_restarted_producer_continues_without_loss() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    let mut first = spawn(
        ENTRY,
        "crash",
        &path,
        &nums(&[("FIRST", 0), ("COUNT", 1000)]),
    );
    expect_records(&mut c, 0, 500, &mut first);
    join(first);
    let generation = c.stats().generation;
    assert_eq!(generation, 1);
    // Records 1000..1005 were never published; the next producer starts at 1000.
    let mut second = spawn(
        ENTRY,
        "crash",
        &path,
        &nums(&[("FIRST", 1000), ("COUNT", 1000)]),
    );
    expect_records(&mut c, 500, 1500, &mut second);
    join(second);
    assert_eq!(drain(&mut c).unwrap(), Vec::<u64>::new());
    let stats = c.stats();
    assert_eq!(stats.generation, generation + 1);
    assert_eq!(
        (stats.resyncs, stats.lost_in_resync, stats.generation_resets),
        (0, 0, 0)
    );
}

#[test]
fn a_restarted_consumer_resumes_from_its_commit() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", 1000)]),
    ));
    join(spawn(
        ENTRY,
        "consume_and_die",
        &path,
        &nums(&[("READ", 600), ("COMMIT", 400)]),
    ));
    let mut c = Consumer::open(&path, MIB).unwrap();
    // Read but uncommitted records (400..600) come again.
    assert_eq!(drain(&mut c).unwrap(), (400..1000).collect::<Vec<_>>());
    // Rewind goes back to the last commit only.
    drop(c);
    let mut c = Consumer::open(&path, MIB).unwrap();
    assert!(c.next().unwrap().is_none());
}

#[test]
fn rewind_rereads_uncommitted_records() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", 10)]),
    ));
    let mut c = Consumer::open(&path, MIB).unwrap();
    let end = c.next().unwrap().unwrap().end;
    c.commit(end);
    for _ in 0..3 {
        c.next().unwrap().unwrap();
    }
    c.rewind();
    assert_eq!(drain(&mut c).unwrap(), (1..10).collect::<Vec<_>>());
}

#[test]
fn a_capacity_change_rebuilds_and_the_consumer_follows() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", 300)]),
    ));
    assert_eq!(check_record(c.next().unwrap().unwrap().bytes), Some(0));
    let generation = c.stats().generation;
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", 2 * MIB), ("FIRST", 0), ("COUNT", 100)]),
    ));
    // What the old ring still held is read first, then the new ring.
    let expected: Vec<u64> = (1..300).chain(0..100).collect();
    assert_eq!(drain(&mut c).unwrap(), expected);
    let stats = c.stats();
    assert_eq!(stats.capacity, 2 * MIB);
    assert_eq!(stats.generation, generation + 1);
    assert_eq!(stats.generation_resets, 1);
    assert_eq!((stats.resyncs, stats.lost_in_resync), (0, 0));
}

#[test]
fn an_invalid_header_is_rebuilt_by_either_side() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", 10)]),
    ));
    scribble_magic(&path);
    // No producer holds the ring, so the consumer rebuilds it.
    let mut c = Consumer::open(&path, MIB).unwrap();
    assert!(c.next().unwrap().is_none());
    assert_eq!(c.stats().generation, 2);
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", 10)]),
    ));
    assert_eq!(drain(&mut c).unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(c.stats().generation, 3);
    // Scribbled under an attached consumer: the next producer rebuilds, the consumer follows.
    scribble_magic(&path);
    join(spawn(
        ENTRY,
        "stream",
        &path,
        &nums(&[("CAP", MIB), ("FIRST", 0), ("COUNT", 10)]),
    ));
    assert_eq!(drain(&mut c).unwrap(), (0..10).collect::<Vec<_>>());
    let stats = c.stats();
    assert_eq!((stats.generation, stats.generation_resets), (4, 1));
}

fn scribble_magic(path: &Path) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(b"garbage!", 0).unwrap();
}

#[test]
fn a_running_producer_follows_a_deleted_and_recreated_ring() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    let mut child = spawn(ENTRY, "until_stopped", &path, &[]);
    while c.next().unwrap().is_none() {
        c.wait(std::time::Duration::from_millis(10)).unwrap();
    }
    let pid = c.stats().producer_pid;
    drop(c);
    std::fs::remove_file(&path).unwrap();
    // The consumer creates a new ring; within a second the producer notices and attaches.
    let mut c = Consumer::open(&path, MIB).unwrap();
    assert_eq!(c.stats().generation, 0);
    let first = loop {
        if let Some(entry) = c.next().unwrap() {
            break check_record(entry.bytes).unwrap();
        }
        assert!(child.try_wait().unwrap().is_none(), "producer died");
        c.wait(std::time::Duration::from_millis(50)).unwrap();
    };
    let stats = c.stats();
    assert_eq!((stats.producer_pid, stats.generation), (pid, 1));
    assert!(first > 0);
    std::fs::write(dir.path().join("events.ring.stop"), b"").unwrap();
    join(child);
}

#[test]
fn a_second_producer_is_refused() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let _p = Producer::open(&path, MIB).unwrap();
    join(spawn(ENTRY, "expect_busy", &path, &[]));
}

#[test]
fn a_second_consumer_is_refused_until_the_first_is_gone() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let first = Consumer::open(&path, MIB).unwrap();
    join(spawn(ENTRY, "expect_consumer_busy", &path, &[]));
    drop(first);
    let _again = Consumer::open(&path, MIB).expect("the lock died with the first consumer");
}

#[test]
fn ring_files_are_private() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("run/nightjar/events.ring");
    let _p = Producer::open(&path, MIB).unwrap();
    let _c = Consumer::open(&path, MIB).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&path), 0o600);
    for side_file in [
        "events.ring.wake",
        "events.ring.lock",
        "events.ring.consumer",
    ] {
        assert_eq!(
            mode(&dir.path().join("run/nightjar").join(side_file)),
            0o600
        );
    }
    assert_eq!(mode(&dir.path().join("run/nightjar")), 0o700);
    assert_eq!(mode(&dir.path().join("run")), 0o700);

    let loose = dir.path().join("loose.ring");
    std::fs::write(&loose, b"not a ring").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _c = Consumer::open(&loose, MIB).unwrap();
    assert_eq!(mode(&loose), 0o600);
}

/// A ring found with a wider mode, or with a second name, is replaced by a fresh file, not
/// repaired: a descriptor opened while it was exposed, or the other name, then reaches only
/// the old file, never what the agent reads.
#[test]
fn an_exposed_ring_is_rebuilt_not_repaired() {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    drop(Producer::open(&path, MIB).unwrap());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    // What an attacker keeps open while the file is 0666.
    let mut held = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let old_ino = std::fs::metadata(&path).unwrap().ino();
    let mut c = Consumer::open(&path, MIB).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_ne!(meta.ino(), old_ino, "the exposed file was replaced");
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.nlink(), 1);
    let mut p = Producer::open(&path, MIB).unwrap();
    // The held descriptor scribbles over the whole old file: the ring does not see it.
    held.seek(SeekFrom::Start(0)).unwrap();
    held.write_all(&vec![0x5a; 4096 + 4096]).unwrap();
    for i in 0..10u64 {
        push_retrying(&mut p, i);
    }
    p.flush();
    assert_eq!(drain(&mut c).unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(c.stats().resyncs, 0);
    drop((c, p));

    // A second name made for the ring (hard link): replaced as well.
    let other = dir.path().join("elsewhere");
    std::fs::hard_link(&path, &other).unwrap();
    let _c = Consumer::open(&path, MIB).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().nlink(), 1);
    assert_ne!(
        std::fs::metadata(&path).unwrap().ino(),
        std::fs::metadata(&other).unwrap().ino()
    );
}

#[test]
fn a_ring_owned_by_another_user_is_refused() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    drop(Producer::open(&path, MIB).unwrap());
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let err = Consumer::open(&path, MIB).unwrap_err();
    assert!(
        matches!(err, RingError::Owner { owner: 65534, .. }),
        "{err}"
    );
    assert!(matches!(
        Producer::open(&path, MIB),
        Err(RingError::Owner { .. })
    ));
}

#[test]
fn bad_capacities_and_paths_are_errors() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    for cap in [0, 1000, 3 * MIB, 1024] {
        assert!(matches!(
            Producer::open(&path, cap),
            Err(RingError::Capacity { .. })
        ));
    }
    std::fs::create_dir(&path).unwrap();
    let err = Consumer::open(&path, MIB).unwrap_err();
    assert!(err.to_string().contains("events.ring"), "{err}");
}

#[test]
fn abandoned_and_oversized_records_are_not_published() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let cap = 512 * 1024;
    let mut p = Producer::open(&path, cap).unwrap();
    let mut c = Consumer::open(&path, cap).unwrap();
    let mut expected = Vec::new();
    for i in 0..30_000u64 {
        if i % 3 == 1 {
            // Reserves (and may pad for) a large record, then gives up.
            let max_len = (ring_support::size_of_record(i) * 40).min(MAX_RECORD_BYTES);
            assert!(!p.try_push_with(max_len, |_| None));
        } else {
            push_retrying(&mut p, i);
            expected.push(i);
        }
        if i % 50 == 0 {
            p.flush();
            let got = drain(&mut c).unwrap();
            assert_eq!(got, expected);
            expected.clear();
        }
    }
    assert!(!p.try_push(&vec![0; MAX_RECORD_BYTES + 1]));
    p.flush();
    assert_eq!(drain(&mut c).unwrap(), expected);
    assert_eq!(
        c.stats().drops,
        1,
        "only the oversized record counts as a drop"
    );
}
