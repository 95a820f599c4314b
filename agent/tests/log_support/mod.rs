//! Altering a store's envelope log behind the store's back, to test what it notices.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use nightjar_agent::store::log::{record_spans, segment_files};

/// The log's segment files, in order.
pub fn segments(db: &Path) -> Vec<PathBuf> {
    segment_files(db).unwrap()
}

/// (seq, offset, length) of every record of a segment file.
pub fn records(segment: &Path) -> Vec<(u64, usize, usize)> {
    record_spans(segment)
        .unwrap()
        .into_iter()
        .map(|(s, o, l)| (s, o as usize, l as usize))
        .collect()
}

/// The segment and byte span of the record of `seq`.
pub fn find(db: &Path, seq: u64) -> (PathBuf, usize, usize) {
    for seg in segments(db) {
        if let Some(&(_, at, len)) = records(&seg).iter().find(|r| r.0 == seq) {
            return (seg, at, len);
        }
    }
    panic!("no record of seq {seq}");
}

/// Removes the record of `seq` from the log file holding it.
pub fn cut_record(db: &Path, seq: u64) {
    let (seg, at, len) = find(db, seq);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes.drain(at..at + len);
    std::fs::write(&seg, bytes).unwrap();
}

/// Flips one byte of the envelope of `seq` (`from_end` bytes before its end).
pub fn flip_in_record(db: &Path, seq: u64, from_end: usize) {
    let (seg, at, len) = find(db, seq);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[at + len - from_end] ^= 0x01;
    std::fs::write(&seg, bytes).unwrap();
}

/// Swaps the records of `a` and `b` (adjacent, `a` first) in the log.
pub fn swap_records(db: &Path, a: u64, b: u64) {
    let (seg, at_a, len_a) = find(db, a);
    let (seg_b, at_b, len_b) = find(db, b);
    assert_eq!(seg, seg_b, "both in one segment");
    assert_eq!(at_a + len_a, at_b, "adjacent");
    let mut bytes = std::fs::read(&seg).unwrap();
    let ra = bytes[at_a..at_a + len_a].to_vec();
    let rb = bytes[at_b..at_b + len_b].to_vec();
    let mut swapped = rb;
    swapped.extend_from_slice(&ra);
    bytes.splice(at_a..at_b + len_b, swapped);
    std::fs::write(&seg, bytes).unwrap();
}
