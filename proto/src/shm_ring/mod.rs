//! The shared-memory single-producer single-consumer byte ring between sensor and agent.
//!
//! # Layout
//!
//! The ring is one regular file (mode 0600, parent directory 0700 when created here)
//! mapped `MAP_SHARED` by both processes: a 4 KiB header page, then `capacity` data bytes
//! (a power of two, [`MIN_CAPACITY`]..=[`MAX_CAPACITY`]), pre-faulted and, on Linux,
//! allocated up front. It is best kept on tmpfs (`/run` on Linux): on a disk-backed file
//! system the kernel also writes every dirtied page back to disk. The header has three 128-byte
//! lines so that the producer's and the consumer's hot words never share a cache line (nor
//! an adjacent-line prefetch pair):
//!
//! - identity: magic, layout version, capacity, generation, producer pid, a retired mark;
//! - producer line: published write position, next record sequence number, drop counter,
//!   upstream-loss counter, heartbeat (`CLOCK_MONOTONIC` ns of the last flush);
//! - consumer line: committed read position, the "consumer is sleeping" flag.
//!
//! Positions are 64-bit byte counts that only ever grow; the offset in the data area is
//! `pos & (capacity - 1)`. At 10 GB/s a 64-bit position wraps after 58 years, so the
//! producer's `write - read <= capacity` test never meets wrap-around arithmetic, and a
//! position never repeats, which lets a record header bind itself to its position.
//!
//! # Records
//!
//! Each record is a 16-byte header — length (u32), check word (u32), sequence number (u64) —
//! followed by the payload, padded to 16 bytes. The check word mixes length, sequence number
//! and position, so a scribbled header, or a stale record left from an earlier lap, does not
//! validate. The sequence number counts published records; a gap tells the consumer how many
//! records a resynchronisation lost. Payload bytes are not checksummed: they are the codec's
//! records, which [`crate::codec::decode`] treats as untrusted.
//!
//! Wrap-around uses a padding record: when a record does not fit before the end of the
//! data area, the producer writes a padding header (length `u32::MAX`) covering the rest and
//! places the record at offset 0. Records are therefore always contiguous and the consumer
//! hands out plain slices of the mapping (no copy, no double mapping). The minimum capacity
//! guarantees a maximum-size record always fits once the ring is empty.
//!
//! # Memory orderings
//!
//! The producer writes record bytes with plain stores, then publishes by storing the write
//! position with `Release`; the consumer loads it with `Acquire` before reading the records
//! below it. The consumer releases space by storing the read position with `Release` after
//! it is done with the bytes; the producer loads it with `Acquire` before overwriting them.
//! Each side caches the other's position and reloads it only when its cached view says the
//! ring is empty (consumer) or full (producer), so steady state touches the other side's
//! cache line rarely. Publication is batched: [`Producer::flush`] publishes everything
//! pushed since the previous flush (a push also publishes on its own once a quarter of the
//! ring is pending, so a producer that forgets to flush cannot fill the ring invisibly).
//!
//! # Wake-ups
//!
//! Next to the ring lives a FIFO, `<ring>.wake` (0600). The consumer holds it open read-only
//! and non-blocking (the fd [`Consumer::wake_fd`] is what `mio` polls); the producer holds it
//! open read-write, so its writes never fail for lack of a reader and never raise `SIGPIPE`.
//! Before sleeping the consumer drains the FIFO, stores `sleeping = 1`, issues a `SeqCst`
//! fence and rechecks the write position. After publishing, the producer issues a `SeqCst`
//! fence and loads the flag; only if it is set does it swap it to 0 and write one byte.
//! The two fences make the Dekker pattern sound: either the consumer's recheck sees the new
//! position or the producer sees the flag, so no wake-up is lost, and a push never makes a
//! system call (a flush makes one only when the consumer sleeps, plus a `stat` once a
//! second, see Restarts). The FIFO is drained before sleeping rather than after waking,
//! which keeps a system call off the wake-up path and still gives edge-triggered pollers
//! a fresh edge for every signal.
//!
//! # Untrusted contents and resynchronisation
//!
//! Either process, or anyone able to write the file, may scribble over it. Each side keeps
//! its own copy of the capacity and of its own position and never trusts the other side's
//! word beyond range checks; the capacity at open comes from the file size, not the header.
//! The consumer validates every record header (check word, length bound, contiguity,
//! within the published range, padding only where padding may be); on failure it scans
//! forward for the next header that validates at its position (else skips to the
//! producer's current published position), counts a resynchronisation, and counts the
//! records lost through the sequence-number gap of the next valid record. The skipped
//! bytes are committed at once if every record handed out is committed, else with the next
//! commit that covers them, so a ring full of garbage cannot stall the producer.
//!
//! The positions in the header are checked each time they are reloaded:
//! - a published position more than a capacity past the commit means the producer overran
//!   unread records (it trusted a scribbled read position): skip to it;
//! - one behind the cursor but not behind the last record handed out means we skipped
//!   ahead on a scribbled value: resume after that record and take back the commit;
//! - anything else out of range is reported once and ignored until the producer's next
//!   flush rewrites it;
//! - a read position that differs from the consumer's commit is rewritten by the consumer,
//!   and the producer treats an implausible one as "full" (dropping is safe, overwriting
//!   unread records is not); the producer also rewrites its counters on each flush.
//!
//! Every error is one counted resynchronisation, and every loop over the mapping is bounded
//! (at most one padding record per call), so hostile contents cost records, never a panic,
//! an out-of-bounds read or a hang.
//!
//! # Restarts
//!
//! - Consumer restart: it resumes at the committed read position, so records read but not
//!   committed are read again (the agent recognises them by their deterministic alert ids).
//! - Producer restart: it re-attaches to a valid ring of the same layout and capacity and
//!   continues at the published write position and sequence number; records it pushed but
//!   never published die with it. The generation grows by one.
//! - Invalid header or a different capacity: the producer builds a new file beside the old
//!   one and renames it into place (so a consumer's mapping of the old file never shrinks
//!   under it), with the next generation, then marks the old header retired and wakes the
//!   consumer. The consumer reads what was published in the old file, then, seeing the
//!   mark, checks that the path names another file, maps it, resets its cursor to the new
//!   ring's commit and counts a generation reset (and, through sequence numbers, any record
//!   it could not read). Should the mark itself be scribbled away, the consumer still
//!   notices the replaced file: about to sleep, it compares the path's inode with its
//!   mapping (at most once a second).
//! - Ring file deleted under a running producer: a consumer starting then creates a new
//!   one; the producer compares the path with its mapping once a second (in `flush`) and
//!   attaches to the new file. What it had published in the deleted file is gone.
//! - Either side may start first; the one that finds no ring creates it. Opening is
//!   serialised by an advisory lock on `<ring>.lock` (0600), and the producer holds an exclusive
//!   lock on the ring file for its lifetime, which is how a second producer is refused and
//!   how a consumer knows it may rebuild an invalid ring. The consumer likewise holds an
//!   exclusive lock on `<ring>.consumer` (0600), so a second consumer is refused.

mod consumer;
pub mod handshake;
mod layout;
mod producer;
mod setup;
mod wake;

use std::io;
use std::path::PathBuf;

pub use consumer::{Consumer, DEFAULT_SPIN, Entry};
pub use layout::{LAYOUT_VERSION, MAX_CAPACITY, MIN_CAPACITY};
pub use producer::{Producer, monotonic_ns};

/// Counters both sides can show; `status` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Grows by one each time a producer attaches or rebuilds the ring.
    pub generation: u64,
    pub producer_pid: u32,
    /// The producer pid exists (`kill(pid, 0)`); see also [`Consumer::producer_idle_for`].
    pub producer_alive: bool,
    /// Published write position (bytes since the ring was created).
    pub written: u64,
    /// Committed read position (bytes since the ring was created).
    pub committed: u64,
    /// Records the producer dropped because the ring was full.
    pub drops: u64,
    /// Events the sensor lost before they reached the ring (ES sequence gaps, BPF drops).
    pub upstream_loss: u64,
    /// Times the consumer found corrupt contents and skipped ahead.
    pub resyncs: u64,
    /// Records lost to resynchronisations and ring rebuilds.
    pub lost_in_resync: u64,
    /// Times the consumer moved to a rebuilt ring file.
    pub generation_resets: u64,
    /// Data bytes in the ring.
    pub capacity: u64,
}

/// Why the ring could not be opened or read; each variant names the ring file.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{path}: capacity {capacity} is not a power of two in {MIN_CAPACITY}..={MAX_CAPACITY}")]
    Capacity { path: PathBuf, capacity: u64 },
    #[error("{path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path}: not a regular file")]
    NotRegular { path: PathBuf },
    #[error("{path}: not a FIFO")]
    NotFifo { path: PathBuf },
    #[error("{path}: owned by uid {owner}, expected uid {expected}")]
    Owner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    #[error("{path}: another producer holds the ring")]
    ProducerBusy { path: PathBuf },
    #[error("{path}: another consumer holds the ring (is a second agent running?)")]
    ConsumerBusy { path: PathBuf },
    #[error(
        "{path}: ring layout version {found} is newer than this build's {supported}: \
         nightjar-sensor and nightjar-agent must be upgraded together"
    )]
    NewerLayout {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("{path}: invalid ring header ({what}) while a producer holds it")]
    Invalid { path: PathBuf, what: String },
    #[error("{path}: corrupt ring contents at position {pos}: {what}; skipped to {resumed_at}")]
    Corrupt {
        path: PathBuf,
        pos: u64,
        resumed_at: u64,
        what: &'static str,
    },
}

impl RingError {
    fn io(path: &std::path::Path, op: &'static str, source: io::Error) -> RingError {
        RingError::Io {
            path: path.to_path_buf(),
            op,
            source,
        }
    }
}
