//! Wake-ups: a consumer asleep in `mio::Poll` is woken by the producer's flush.

mod ring_support;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nightjar_proto::shm_ring::{Consumer, Producer};
use ring_support::{arg, check_record, fill_record, join, size_of_record, spawn};

const MIB: u64 = 1024 * 1024;
/// Byte offset of the consumer's "sleeping" word in the ring file.
const SLEEPING_WORD: u64 = 264;
const ENTRY: &str = "child_process_entry";
const WAKE: Token = Token(7);

/// Runs the child roles when this binary is re-executed by a test; a no-op otherwise.
#[test]
fn child_process_entry() {
    let Some((role, path)) = ring_support::role() else {
        return;
    };
    match role.as_str() {
        "push_when_asleep" => push_when_asleep(&path),
        other => panic!("unknown role {other}"),
    }
}

/// For each of ROUNDS records: waits until the consumer says it sleeps, then publishes it.
fn push_when_asleep(path: &Path) {
    let mut p = Producer::open(path, MIB).unwrap();
    let file = File::open(path).unwrap();
    for i in 0..arg("ROUNDS") {
        let mut word = [0u8; 8];
        let mut polls = 0;
        loop {
            file.read_exact_at(&mut word, SLEEPING_WORD).unwrap();
            if u64::from_le_bytes(word) != 0 {
                break;
            }
            polls += 1;
            assert!(polls < 60_000, "the consumer never went to sleep");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(p.try_push_with(size_of_record(i), |buf| Some(fill_record(i, buf))));
        p.flush();
    }
}

#[test]
fn a_consumer_sleeping_in_mio_is_woken_by_the_producer() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    let mut poll = Poll::new().unwrap();
    let fd = c.wake_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), WAKE, Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(4);
    let rounds = 20;
    let child = spawn(
        ENTRY,
        "push_when_asleep",
        &path,
        &[("ROUNDS", rounds.to_string())],
    );
    let mut wakes = 0;
    for i in 0..rounds {
        loop {
            if let Some(entry) = c.next().unwrap() {
                assert_eq!(check_record(entry.bytes), Some(i));
                let end = entry.end;
                c.commit(end);
                break;
            }
            if c.prepare_sleep() {
                // A lost wake-up shows as this generous timeout expiring.
                poll.poll(&mut events, Some(Duration::from_secs(30)))
                    .unwrap();
                assert!(
                    events.iter().any(|e| e.token() == WAKE),
                    "round {i}: poll timed out, the wake-up was lost"
                );
                c.after_wake();
                wakes += 1;
            }
        }
    }
    join(child);
    assert!(wakes >= 1);
    assert!(c.next().unwrap().is_none());
}

#[test]
fn wait_returns_when_data_arrives() {
    let dir = ring_support::ring_dir();
    let path = dir.path().join("events.ring");
    let mut c = Consumer::open(&path, MIB).unwrap();
    let child = spawn(
        ENTRY,
        "push_when_asleep",
        &path,
        &[("ROUNDS", "5".to_string())],
    );
    for i in 0..5 {
        loop {
            c.wait(Duration::from_secs(30)).unwrap();
            if let Some(entry) = c.next().unwrap() {
                assert_eq!(check_record(entry.bytes), Some(i));
                break;
            }
        }
    }
    join(child);
}
