//! Shared pieces of the ring tests: child processes, deterministic records, draining.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nightjar_proto::codec::MAX_RECORD_BYTES;
use nightjar_proto::shm_ring::{Consumer, Producer, RingError};

/// Environment variable naming the role a re-executed test binary plays.
pub const ROLE_VAR: &str = "NIGHTJAR_RING_TEST_ROLE";
/// Environment variable carrying the ring path to the child.
pub const PATH_VAR: &str = "NIGHTJAR_RING_TEST_PATH";

/// The role this process plays, when it is a child started by [`spawn`].
pub fn role() -> Option<(String, PathBuf)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let path = std::env::var_os(PATH_VAR)?;
    Some((role, PathBuf::from(path)))
}

/// Re-executes this test binary running only `entry`, with `role` and `path` in its
/// environment, plus `args` as `NIGHTJAR_RING_TEST_<KEY>` variables.
pub fn spawn(entry: &str, role: &str, path: &Path, args: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([entry, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(PATH_VAR, path)
        .stdout(Stdio::null());
    for (key, value) in args {
        cmd.env(format!("NIGHTJAR_RING_TEST_{key}"), value);
    }
    cmd.spawn().unwrap()
}

/// A numeric argument passed by [`spawn`].
pub fn arg(key: &str) -> u64 {
    std::env::var(format!("NIGHTJAR_RING_TEST_{key}"))
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits for a child and insists it succeeded.
pub fn join(mut child: Child) {
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
}

fn pattern() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..MAX_RECORD_BYTES + 256)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
            .collect()
    })
}

/// Size of record `i`: mostly small and varied, every 100,003rd the maximum.
pub fn size_of_record(i: u64) -> usize {
    if i % 100_003 == 7 {
        MAX_RECORD_BYTES
    } else {
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54;
        8 + (h as usize % 700)
    }
}

/// Writes record `i` into `buf` (at least `size_of_record(i)` long); returns its length.
pub fn fill_record(i: u64, buf: &mut [u8]) -> usize {
    let len = size_of_record(i);
    buf[..8].copy_from_slice(&i.to_le_bytes());
    let start = (i % 251) as usize;
    buf[8..len].copy_from_slice(&pattern()[start..start + len - 8]);
    len
}

/// The index of a record, after checking its every byte; None if it is not a test record.
pub fn check_record(bytes: &[u8]) -> Option<u64> {
    let i = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let start = (i % 251) as usize;
    (bytes.len() == size_of_record(i) && bytes[8..] == pattern()[start..start + bytes.len() - 8])
        .then_some(i)
}

/// Pushes record `i`, retrying (flush, yield) while the ring is full; returns the retries.
pub fn push_retrying(p: &mut Producer, i: u64) -> u64 {
    let mut retries = 0;
    while !p.try_push_with(size_of_record(i), |buf| Some(fill_record(i, buf))) {
        retries += 1;
        p.flush();
        std::thread::yield_now();
    }
    retries
}

/// Reads until `count` records arrived (committing every 64), checking that they are
/// records `first..first + count` in order. Panics if the producer has exited and the ring
/// stays empty before that.
pub fn expect_records(c: &mut Consumer, first: u64, count: u64, producer: &mut Child) {
    let mut next = first;
    let mut idle_after_exit = 0;
    while next < first + count {
        match c.next() {
            Ok(Some(entry)) => {
                let end = entry.end;
                let i = check_record(entry.bytes)
                    .unwrap_or_else(|| panic!("record at {} is not a test record", entry.pos));
                assert_eq!(i, next, "out of order at position {}", entry.pos);
                next += 1;
                if next.is_multiple_of(64) {
                    c.commit(end);
                }
            }
            Ok(None) => {
                if producer.try_wait().unwrap().is_some() {
                    idle_after_exit += 1;
                    assert!(
                        idle_after_exit < 50,
                        "producer exited; got {next}, wanted {}",
                        first + count
                    );
                }
                c.wait(Duration::from_millis(20)).unwrap();
            }
            Err(e) => panic!("unexpected corruption: {e}"),
        }
    }
}

/// Reads everything currently in the ring (committing it), returning the records' indices.
pub fn drain(c: &mut Consumer) -> Result<Vec<u64>, RingError> {
    let mut seen = Vec::new();
    while let Some(entry) = c.next()? {
        let end = entry.end;
        seen.push(check_record(entry.bytes).expect("a test record"));
        c.commit(end);
    }
    Ok(seen)
}

/// A fresh directory for one test's ring.
pub fn ring_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}
