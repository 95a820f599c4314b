//! Hostile ring contents: random bytes written over header and data while both sides run.

mod ring_support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nightjar_proto::codec::MAX_RECORD_BYTES;
use nightjar_proto::shm_ring::{Consumer, Producer};
use proptest::prelude::*;
use ring_support::{arg, check_record, expect_records, fill_record, join, size_of_record, spawn};

const MIB: u64 = 1024 * 1024;
const HEADER_BYTES: u64 = 4096;
/// The header words in use: identity, producer and consumer lines.
const HEADER_WORDS: u64 = 384;
const ENTRY: &str = "child_process_entry";

/// Runs the child roles when this binary is re-executed by a test; a no-op otherwise.
#[test]
fn child_process_entry() {
    let Some((role, path)) = ring_support::role() else {
        return;
    };
    match role.as_str() {
        "flood" => flood(&path),
        "stream" => {
            let mut p = Producer::open(&path, MIB).unwrap();
            for i in 0..arg("COUNT") {
                ring_support::push_retrying(&mut p, i);
                if i.is_multiple_of(16) {
                    p.flush();
                }
            }
            p.flush();
        }
        other => panic!("unknown role {other}"),
    }
}

/// Pushes records without retrying until `<ring>.stop` exists (or, should the test have
/// died, after 100 million records).
fn flood(path: &Path) {
    let mut p = Producer::open(path, MIB).unwrap();
    let mut stop = path.as_os_str().to_os_string();
    stop.push(".stop");
    let mut i = 0u64;
    while !Path::new(&stop).exists() && i < 100_000_000 {
        for _ in 0..256 {
            p.try_push_with(size_of_record(i), |buf| Some(fill_record(i, buf)));
            i += 1;
            if i.is_multiple_of(16) {
                p.flush();
            }
        }
        std::thread::yield_now();
    }
    p.flush();
}

/// A small xorshift generator: the scribbler needs speed and variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Writes `writes` random 1..16-byte runs over the ring file: a third over the header
/// words, the rest over the data area.
fn scribble(path: &Path, writes: u32, seed: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    let mut rng = Rng(seed | 1);
    for n in 0..writes {
        let len = 1 + (rng.next() % 16) as usize;
        let off = if rng.next().is_multiple_of(3) {
            rng.next() % HEADER_WORDS
        } else {
            HEADER_BYTES + rng.next() % (MIB - 16)
        };
        let bytes = rng.next().to_le_bytes();
        let bytes = [bytes, rng.next().to_le_bytes()].concat();
        // Writes through the page cache land in the very pages both processes map.
        file.write_all_at(&bytes[..len], off).unwrap();
        if n.is_multiple_of(64) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

#[test]
fn scribbling_over_a_live_ring_never_panics_or_hangs_and_the_ring_recovers() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    let mut producer = spawn(ENTRY, "flood", &path, &[]);
    let (started, done) = (AtomicBool::new(false), AtomicBool::new(false));
    let (delivered, errors) = std::thread::scope(|s| {
        s.spawn(|| {
            // Once the producer is attached, so that it is the running ring that suffers.
            while !started.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            scribble(&path, 20_000, 0x5eed);
            done.store(true, Ordering::Release);
        });
        let (mut delivered, mut errors, mut idle) = (0u64, 0u64, 0);
        let mut stopping = false;
        // Bounded: the loop ends once the producer has stopped and the ring is drained.
        for _ in 0..50_000_000u64 {
            // The flood stops when the scribbling does (a consumer slower than the flood
            // would otherwise never find the ring empty).
            if !stopping && done.load(Ordering::Acquire) {
                let mut stop = path.as_os_str().to_os_string();
                stop.push(".stop");
                std::fs::write(stop, b"").unwrap();
                stopping = true;
            }
            match c.next() {
                Ok(Some(entry)) => {
                    assert!(entry.bytes.len() <= MAX_RECORD_BYTES);
                    assert_eq!(
                        entry.end - entry.pos,
                        (16 + entry.bytes.len().div_ceil(16) * 16) as u64
                    );
                    let end = entry.end;
                    delivered += 1;
                    c.commit(end);
                    if delivered == 1000 {
                        started.store(true, Ordering::Release);
                    }
                }
                Ok(None) => {
                    if stopping && producer.try_wait().unwrap().is_some() {
                        idle += 1;
                        if idle == 5 {
                            return (delivered, errors);
                        }
                    }
                    c.wait(Duration::from_millis(5)).unwrap();
                }
                Err(_) => errors += 1,
            }
        }
        panic!("the consumer did not settle");
    });
    join(producer);
    let stats = c.stats();
    eprintln!("delivered {delivered}, errors {errors}, {stats:?}");
    assert!(delivered > 0);
    assert!(stats.resyncs > 0, "20,000 scribbles went unnoticed");
    assert_eq!(
        stats.resyncs, errors,
        "every error is one counted resynchronisation"
    );

    // Once the scribbling stops, a new producer (re-attaching, or rebuilding a ruined
    // header) delivers every record intact and in order.
    let mut clean = spawn(ENTRY, "stream", &path, &[("COUNT", "20000".to_string())]);
    expect_records(&mut c, 0, 20_000, &mut clean);
    join(clean);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any scribbles over a filled ring: draining terminates, never panics, hands out only
    /// bounded records, and records pushed after the scribbling arrive intact.
    #[test]
    fn any_scribble_is_survived(
        records in 1u64..3000,
        scribbles in prop::collection::vec(
            (0u64..(HEADER_BYTES + MIB), prop::collection::vec(any::<u8>(), 1..24)),
            1..40,
        ),
    ) {
        let dir = ring_support::ring_dir();
        let path = dir.path().join("events.ring");
        let mut p = Producer::open(&path, MIB).unwrap();
        let mut c = Consumer::open(&path, MIB).unwrap();
        for i in 0..records {
            p.try_push_with(size_of_record(i), |buf| Some(fill_record(i, buf)));
        }
        p.flush();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        for (off, bytes) in &scribbles {
            let off = if *off < HEADER_BYTES { off % HEADER_WORDS } else { *off };
            let len = bytes.len().min((HEADER_BYTES + MIB - off) as usize);
            file.write_all_at(&bytes[..len], off).unwrap();
        }
        drain_bounded(&mut c);
        // The producer rewrites its words; the consumer settles on them.
        p.flush();
        drain_bounded(&mut c);
        let resyncs = c.stats().resyncs;
        let first = 1_000_000;
        for i in first..first + 50 {
            ring_support::push_retrying(&mut p, i);
        }
        p.flush();
        let mut got = Vec::new();
        for _ in 0..1000 {
            match c.next() {
                Ok(Some(entry)) => {
                    let end = entry.end;
                    got.push(check_record(entry.bytes));
                    c.commit(end);
                }
                Ok(None) => break,
                Err(e) => panic!("corruption after the scribbling stopped: {e}"),
            }
        }
        prop_assert_eq!(got, (first..first + 50).map(Some).collect::<Vec<_>>());
        prop_assert_eq!(c.stats().resyncs, resyncs);
    }
}

/// Drains with a hard bound on calls; a consumer that does not settle fails the test.
fn drain_bounded(c: &mut Consumer) {
    for _ in 0..20_000 {
        match c.next() {
            Ok(Some(entry)) => {
                assert!(entry.bytes.len() <= MAX_RECORD_BYTES);
                let end = entry.end;
                c.commit(end);
            }
            Ok(None) => return,
            Err(_) => {}
        }
    }
    panic!("the consumer did not settle");
}

#[test]
fn a_corrupt_record_header_costs_exactly_the_records_skipped() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut p = Producer::open(&path, MIB).unwrap();
    let mut c = Consumer::open(&path, MIB).unwrap();
    for i in 0..100 {
        assert!(p.try_push_with(size_of_record(i), |buf| Some(fill_record(i, buf))));
    }
    p.flush();
    // Record 10 starts after records 0..10, each a 16-byte header plus its padded payload.
    let pos: u64 = (0..10)
        .map(|i| 16 + (size_of_record(i) as u64).div_ceil(16) * 16)
        .sum();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xff; 4], HEADER_BYTES + pos).unwrap();
    for i in 0..10 {
        let entry = c.next().unwrap().unwrap();
        assert_eq!(check_record(entry.bytes), Some(i));
    }
    let err = c.next().unwrap_err();
    assert!(
        err.to_string().contains(&format!("position {pos}")),
        "{err}"
    );
    assert!(err.to_string().contains("events.ring"), "{err}");
    // The scan forward finds record 11's header: only record 10 is lost.
    for i in 100..110 {
        assert!(p.try_push_with(size_of_record(i), |buf| Some(fill_record(i, buf))));
    }
    p.flush();
    let got: Vec<_> =
        std::iter::from_fn(|| c.next().unwrap().map(|e| check_record(e.bytes))).collect();
    assert_eq!(got, (11..110).map(Some).collect::<Vec<_>>());
    let stats = c.stats();
    assert_eq!((stats.resyncs, stats.lost_in_resync), (1, 1));
}

/// The layout version word (second header word): a ring of an older layout is rebuilt, one of
/// a newer layout is refused by name and left as it is, since a newer program owns it.
#[test]
fn layout_versions_older_are_rebuilt_newer_are_refused() {
    use nightjar_proto::shm_ring::{LAYOUT_VERSION, MIN_CAPACITY, RingError};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.ring");
    drop(Producer::open(&path, MIN_CAPACITY).unwrap());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.write_all_at(&(LAYOUT_VERSION + 1).to_le_bytes(), 8)
        .unwrap();
    match Consumer::open(&path, MIN_CAPACITY) {
        Err(err @ RingError::NewerLayout { .. }) => {
            let msg = err.to_string();
            assert!(msg.contains("upgraded together"), "{msg}");
        }
        other => panic!("a newer layout was not refused: {:?}", other.map(|_| ())),
    }
    assert!(
        Producer::open(&path, MIN_CAPACITY).is_err(),
        "nor by a producer"
    );
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, 8).unwrap();
    assert_eq!(
        u64::from_le_bytes(word),
        LAYOUT_VERSION + 1,
        "left as it was"
    );

    file.write_all_at(&(LAYOUT_VERSION - 1).to_le_bytes(), 8)
        .unwrap();
    drop(file);
    let consumer = Consumer::open(&path, MIN_CAPACITY).expect("an older layout is rebuilt");
    drop(consumer);
    let file = OpenOptions::new().read(true).open(&path).unwrap();
    file.read_exact_at(&mut word, 8).unwrap();
    assert_eq!(u64::from_le_bytes(word), LAYOUT_VERSION);
}
