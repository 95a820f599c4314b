//! The writing side, owned by the sensor.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::handshake::{self, StdFence};
use super::layout::{ALIGN, Mapping, PAD_LEN, RECORD_HEADER, record_size};
use super::setup::{self, RingPlace, Role};
use super::{RingError, RingStats, wake};
use crate::codec::MAX_RECORD_BYTES;

/// The single writer. Pushing copies into the mapping and never blocks or makes a system
/// call; [`Producer::flush`] publishes a batch and wakes a sleeping consumer.
///
/// Positions are byte counts since the ring was created, multiples of `ALIGN`, that only
/// grow. Invariants, checked by [`Producer::check_invariants`] in debug builds after every
/// operation that moves them:
/// `cached_read <= published <= write`, `write - cached_read <= capacity`,
/// `checked_through <= write`.
pub struct Producer {
    map: Mapping,
    wake: OwnedFd,
    /// Data bytes: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`, fixed for the mapping.
    capacity: u64,
    /// `capacity - 1`: the offset of a position is `pos & mask`.
    mask: u64,
    /// Next byte to write. Bytes in `published..write` are written but not yet visible.
    write: u64,
    /// The write position last stored in the header (what the consumer may read up to).
    published: u64,
    /// The consumer's read position as last loaded; reloaded only when the ring looks
    /// full. Everything below it is free to overwrite.
    cached_read: u64,
    /// The write position at the last wake-up check in `flush`: a flush that published
    /// nothing beyond it wakes nobody (see `handshake`).
    checked_through: u64,
    /// Sequence number of the next record pushed.
    next_seq: u64,
    drops: u64,
    upstream_loss: u64,
    generation: u64,
    path: PathBuf,
    /// The ring's checked directory and name: every file is opened relative to it.
    place: RingPlace,
    /// (device, inode) of the mapped file, to notice the path being deleted or replaced.
    identity: Option<(u64, u64)>,
    /// When `flush` last compared the path with `identity` (monotonic ns).
    checked_ns: u64,
}

/// How often `flush` (and a sleeping consumer) checks that the path still names the
/// mapped file.
pub(super) const IDENTITY_CHECK_NS: u64 = 1_000_000_000;

impl Producer {
    /// Create-or-attach as the (single) producer; sets producer pid, bumps generation.
    ///
    /// A valid ring of the same capacity is continued where its last producer published;
    /// anything else is rebuilt as a new file (see the module docs).
    pub fn open(path: &Path, capacity_bytes: u64) -> Result<Producer, RingError> {
        setup::check_capacity(path, capacity_bytes)?;
        let place = RingPlace::open(path)?;
        let (wake, fifo_replaced) = wake::open_fifo(&place, true)?;
        let map = setup::open_ring(
            &place,
            capacity_bytes,
            Role::Producer,
            &wake,
            fifo_replaced.as_deref(),
        )?;
        let h = map.header();
        let write = h.write_pos.load(Ordering::Acquire);
        let cached_read = h.read_pos.load(Ordering::Acquire);
        let next_seq = h.next_seq.load(Ordering::Relaxed);
        let drops = h.drops.load(Ordering::Relaxed);
        let upstream_loss = h.upstream_loss.load(Ordering::Relaxed);
        let generation = h.generation.load(Ordering::Relaxed);
        let mut producer = Producer {
            capacity: capacity_bytes,
            mask: capacity_bytes - 1,
            write,
            published: write,
            checked_through: write,
            cached_read,
            next_seq,
            drops,
            upstream_loss,
            generation,
            path: path.to_path_buf(),
            place,
            identity: setup::identity_of_file(map.file()),
            checked_ns: monotonic_ns(),
            map,
            wake,
        };
        producer.flush();
        Ok(producer)
    }

    /// Copy one record in; false = dropped (ring full, counted in the header). No syscall.
    pub fn try_push(&mut self, record: &[u8]) -> bool {
        self.try_push_with(record.len(), |buf| {
            buf.copy_from_slice(record);
            Some(record.len())
        })
    }

    /// Encode in place: `fill` gets a writable slice of `max_len` bytes and returns the
    /// bytes used (None = abandon without publishing). false = dropped (full) or abandoned.
    ///
    /// Records over [`MAX_RECORD_BYTES`] are dropped and counted like a full ring.
    pub fn try_push_with(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> bool {
        if max_len > MAX_RECORD_BYTES {
            self.count_drop();
            return false;
        }
        let need = record_size(max_len as u64);
        let off = self.write & self.mask;
        let contiguous = self.capacity - off;
        let pad = if need > contiguous { contiguous } else { 0 };
        if !self.has_room(pad + need) {
            self.count_drop();
            return false;
        }
        if pad > 0 {
            self.map
                .write_record_header(off, PAD_LEN, self.next_seq, self.write);
            self.write += pad;
        }
        let off = self.write & self.mask;
        // SAFETY: `has_room` proved [write, write + need) is free (the consumer committed
        // past it) and it is contiguous inside the data area (`need <= capacity - off`
        // after padding), so nobody else reads or writes these bytes until we publish.
        let body = unsafe {
            std::slice::from_raw_parts_mut(
                self.map.data().add((off + RECORD_HEADER) as usize),
                max_len,
            )
        };
        let Some(len) = fill(body).filter(|&n| n <= max_len) else {
            return false;
        };
        self.map
            .write_record_header(off, len as u32, self.next_seq, self.write);
        self.write += record_size(len as u64);
        self.next_seq += 1;
        if self.write - self.published >= self.capacity / 4 {
            self.publish();
        }
        self.check_invariants();
        true
    }

    /// Publish everything pushed since the last flush; wake the consumer if it sleeps.
    ///
    /// Also refreshes the heartbeat, so an idle sensor should flush now and then, and once a
    /// second checks that the path still names the mapped file: if the file was deleted
    /// and a consumer created a new one, the producer moves there (a `stat`, no more).
    pub fn flush(&mut self) {
        self.publish();
        let now = monotonic_ns();
        let h = self.map.header();
        // Rewriting the counters (same cache line as the heartbeat) heals scribbles.
        h.drops.store(self.drops, Ordering::Relaxed);
        h.upstream_loss.store(self.upstream_loss, Ordering::Relaxed);
        h.heartbeat_ns.store(now, Ordering::Relaxed);
        let fresh = self.write != self.checked_through;
        self.checked_through = self.write;
        if handshake::wake_needed::<_, StdFence>(&h.consumer_sleeping, fresh) {
            wake::signal(&self.wake);
        }
        if now.wrapping_sub(self.checked_ns) >= IDENTITY_CHECK_NS {
            self.checked_ns = now;
            self.follow_replaced_file();
        }
    }

    /// Re-opens the path when it no longer names our file. What was published in the old
    /// file and not read is lost with it; the new file keeps its own counters. On failure
    /// the producer stays where it is and tries again a second later.
    fn follow_replaced_file(&mut self) {
        if self.place.identity() == self.identity {
            return;
        }
        if let Ok(mut next) = Producer::open(&self.path, self.capacity) {
            // The old producer is dropped here; its final flush skips this check because
            // `checked_ns` was just updated.
            std::mem::swap(self, &mut next);
        }
    }

    /// Counts events the sensor lost before they reached the ring.
    pub fn add_upstream_loss(&mut self, n: u64) {
        self.upstream_loss = self.upstream_loss.wrapping_add(n);
        self.map
            .header()
            .upstream_loss
            .store(self.upstream_loss, Ordering::Relaxed);
    }

    pub fn stats(&self) -> RingStats {
        RingStats {
            generation: self.generation,
            producer_pid: std::process::id(),
            producer_alive: true,
            written: self.published,
            committed: self.cached_read,
            drops: self.drops,
            upstream_loss: self.upstream_loss,
            capacity: self.capacity,
            ..RingStats::default()
        }
    }

    fn publish(&mut self) {
        let h = self.map.header();
        h.next_seq.store(self.next_seq, Ordering::Relaxed);
        h.write_pos.store(self.write, Ordering::Release);
        self.published = self.write;
        self.check_invariants();
    }

    /// The field invariants stated on [`Producer`] (debug builds).
    fn check_invariants(&self) {
        debug_assert!(self.capacity.is_power_of_two() && self.mask == self.capacity - 1);
        debug_assert!(self.cached_read <= self.published && self.published <= self.write);
        debug_assert!(self.write - self.cached_read <= self.capacity);
        debug_assert!(self.checked_through <= self.write);
        debug_assert!(
            [self.write, self.published, self.cached_read]
                .iter()
                .all(|p| p.is_multiple_of(ALIGN))
        );
    }

    /// Whether `total` more bytes fit; reloads the consumer's position only when the cached
    /// one says no. A read position that is not a plausible commit (scribbled) counts as
    /// "full": dropping is safe, overwriting unread records is not.
    fn has_room(&mut self, total: u64) -> bool {
        if self.write + total - self.cached_read <= self.capacity {
            return true;
        }
        let read = self.map.header().read_pos.load(Ordering::Acquire);
        if read > self.published || self.write - read > self.capacity || !read.is_multiple_of(ALIGN)
        {
            return false;
        }
        self.cached_read = read;
        self.write + total - read <= self.capacity
    }

    fn count_drop(&mut self) {
        self.drops += 1;
        self.map.header().drops.store(self.drops, Ordering::Relaxed);
    }
}

impl Drop for Producer {
    /// Publishes what is pending, so a clean shutdown loses nothing.
    fn drop(&mut self) {
        self.flush();
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (a vDSO call, no system call): the heartbeat's clock,
/// comparable between processes on the host.
pub fn monotonic_ns() -> u64 {
    // SAFETY: zeroed timespec is valid and clock_gettime overwrites it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and a live local.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts);
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}
