//! The reading side, owned by the agent.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::handshake::{self, StdFence};
use super::layout::{ALIGN, Mapping, PAD_LEN, RECORD_HEADER, RETIRED, check_word, record_size};
use super::producer::{IDENTITY_CHECK_NS, monotonic_ns};
use super::setup::{self, RingPlace, Role};
use super::{RingError, RingStats, wake};
use crate::codec::MAX_RECORD_BYTES;

/// How long [`Consumer::wait`] spins before sleeping, unless changed with
/// [`Consumer::set_spin`]: by default only its first few dozen checks (well under a
/// microsecond). The wake-up path alone meets the latency goal, and a longer spin makes the
/// agent compete with the sensor and everything else for the CPU: measured on a loaded
/// two-core host, a 20 µs spin at 100,000 records/s raised median latency from about 2 µs
/// to milliseconds. A host with a core to spare can ask for more.
pub const DEFAULT_SPIN: Duration = Duration::ZERO;

/// One record, borrowed from the mapping until the next call on the consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Ring position of the record.
    pub pos: u64,
    /// Position after it: what [`Consumer::commit`] takes to release it.
    pub end: u64,
    /// The payload, untrusted: decode it with [`crate::codec::decode`].
    pub bytes: &'a [u8],
}

/// The single reader. Reading moves a private cursor; the producer gets space back only
/// when [`Consumer::commit`] says the records up to a position are done with.
///
/// Positions are byte counts since the ring was created, multiples of `ALIGN`. Invariants,
/// checked by [`Consumer::check_invariants`] in debug builds after every operation that moves
/// them: `committed <= cursor`, `delivered_end <= cursor <= cached_write`, and a pending skip
/// `(from, to)` has `from <= to`. Nothing the other process writes is trusted to keep them:
/// every value loaded from the header is range-checked before it is stored here.
pub struct Consumer {
    path: PathBuf,
    /// The ring's checked directory and name: every file is opened relative to it.
    place: RingPlace,
    map: Mapping,
    wake: OwnedFd,
    /// Holds `<ring>.consumer`'s lock: one consumer per ring.
    _consumer_lock: std::fs::File,
    /// (device, inode) of the mapped file, to tell a rebuilt ring from a stray retired mark.
    identity: Option<(u64, u64)>,
    /// Data bytes, from the file size (never the header): a power of two.
    capacity: u64,
    /// `capacity - 1`.
    mask: u64,
    /// Where the next record is read.
    cursor: u64,
    /// Released to the producer: everything below it may be overwritten.
    committed: u64,
    /// Last published position seen; reloaded only when the cursor reaches it.
    cached_write: u64,
    /// End of the last record handed out (or where reading resumed): skipped bytes may be
    /// committed once it is, and a scribbled skip is undone back to it.
    delivered_end: u64,
    /// After a resynchronisation with records handed out but not committed: once the
    /// first position is committed, the commit extends to the second (the skipped bytes).
    pending_skip: Option<(u64, u64)>,
    expected_seq: Option<u64>,
    /// A published position already reported as out of range.
    bad_published: Option<u64>,
    /// The path names another file than the one mapped (seen before sleeping): a rebuild
    /// whose retired mark was lost.
    replaced: bool,
    /// When `prepare_sleep` last compared the path with `identity` (monotonic ns).
    identity_checked_ns: u64,
    resyncs: u64,
    lost_in_resync: u64,
    generation_resets: u64,
    spin: Duration,
}

impl Consumer {
    /// Create-or-attach as the consumer.
    ///
    /// A valid existing ring is attached whatever its capacity (the producer decides);
    /// `capacity_bytes` is used when the ring has to be created. Reading resumes at the
    /// committed position.
    pub fn open(path: &Path, capacity_bytes: u64) -> Result<Consumer, RingError> {
        setup::check_capacity(path, capacity_bytes)?;
        let place = RingPlace::open(path)?;
        let consumer_lock = setup::take_consumer_lock(&place)?;
        let (wake, fifo_replaced) = wake::open_fifo(&place, false)?;
        let map = setup::open_ring(
            &place,
            capacity_bytes,
            Role::Consumer,
            &wake,
            fifo_replaced.as_deref(),
        )?;
        wake::drain(&wake);
        let mut consumer = Consumer {
            path: path.to_path_buf(),
            place,
            identity: None,
            capacity: 0,
            mask: 0,
            cursor: 0,
            committed: 0,
            cached_write: 0,
            delivered_end: 0,
            pending_skip: None,
            expected_seq: None,
            bad_published: None,
            replaced: false,
            identity_checked_ns: monotonic_ns(),
            resyncs: 0,
            lost_in_resync: 0,
            generation_resets: 0,
            spin: DEFAULT_SPIN,
            map,
            wake,
            _consumer_lock: consumer_lock,
        };
        consumer.install_mapping();
        Ok(consumer)
    }

    /// Next unread record after the read cursor (does not commit). Err = corruption found;
    /// the consumer has already resynchronised and counted the loss; calling next() again continues.
    // Not an Iterator: each entry borrows the mapping until the next call (a lending
    // iterator), which `Iterator` cannot express.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry<'_>>, RingError> {
        if self.cursor == self.cached_write && !self.refresh()? {
            return Ok(None);
        }
        let mut padded = false;
        loop {
            let off = self.cursor & self.mask;
            let avail = self.cached_write - self.cursor;
            let contiguous = self.capacity - off;
            let word = self.map.data_word(off).load(Ordering::Relaxed);
            let seq = self.map.data_word(off + 8).load(Ordering::Relaxed);
            let len = word as u32;
            if (word >> 32) as u32 != check_word(len, seq, self.cursor) {
                return Err(self.resync("record header check word mismatch"));
            }
            if len == PAD_LEN {
                if padded || off == 0 || contiguous > avail {
                    return Err(self.resync("misplaced padding record"));
                }
                padded = true;
                self.cursor += contiguous;
                if self.cursor == self.cached_write && !self.refresh()? {
                    return Ok(None);
                }
                continue;
            }
            let size = record_size(u64::from(len));
            if len as usize > MAX_RECORD_BYTES || size > avail || size > contiguous {
                return Err(self.resync("record length out of range"));
            }
            self.note_seq(seq);
            let pos = self.cursor;
            self.cursor += size;
            self.delivered_end = self.cursor;
            // SAFETY: [off + 16, off + 16 + len) lies inside the data area (size <=
            // contiguous) and below the published position (size <= avail), so the producer
            // does not write it until we commit past it; the borrow ends before the next
            // call that could commit. Scribbled contents are possible and are the caller's
            // to validate, which `codec::decode` does.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    self.map.data().add((off + RECORD_HEADER) as usize),
                    len as usize,
                )
            };
            self.check_invariants();
            return Ok(Some(Entry {
                pos,
                end: self.cursor,
                bytes,
            }));
        }
    }

    /// Release the ring space up to `end` (an `Entry::end`) to the producer.
    ///
    /// Positions that are not between the last commit and the cursor are ignored.
    pub fn commit(&mut self, end: u64) {
        let mut end = end;
        if let Some((entry_end, skip_to)) = self.pending_skip
            && end >= entry_end
            && end <= self.cursor
        {
            end = end.max(skip_to);
            self.pending_skip = None;
        }
        if end > self.committed && end <= self.cursor && end.is_multiple_of(ALIGN) {
            self.set_committed(end);
        }
        self.check_invariants();
    }

    /// Move the read cursor back to the committed position (e.g. after a failed store).
    pub fn rewind(&mut self) {
        self.cursor = self.committed;
        self.delivered_end = self.committed;
        self.pending_skip = None;
        self.expected_seq = None;
        self.check_invariants();
    }

    /// Block up to `timeout` for data: spin briefly (64 checks, or [`Consumer::set_spin`]
    /// long), then sleep on the wake fd.
    pub fn wait(&mut self, timeout: Duration) -> Result<(), RingError> {
        let start = Instant::now();
        let spin = self.spin.min(timeout);
        let mut spins = 0u32;
        while !self.has_data() {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && start.elapsed() >= spin {
                break;
            }
            std::hint::spin_loop();
        }
        loop {
            if self.has_data() {
                return Ok(());
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout || !self.prepare_sleep() {
                return Ok(());
            }
            let slept = wake::wait_readable(&self.wake, timeout - elapsed, &self.path);
            self.after_wake();
            slept?;
        }
    }

    /// For mio: register with SourceFd; call `prepare_sleep()` before polling (false = data
    /// already there, do not sleep) and `after_wake()` after waking.
    pub fn wake_fd(&self) -> RawFd {
        self.wake.as_raw_fd()
    }

    /// Announces that the consumer is about to sleep; false = data arrived meanwhile (the
    /// announcement is withdrawn), do not sleep.
    ///
    /// Also notices, once a second at most (a `stat`), a ring file replaced behind our back.
    pub fn prepare_sleep(&mut self) -> bool {
        wake::drain(&self.wake);
        let now = monotonic_ns();
        if now.wrapping_sub(self.identity_checked_ns) >= IDENTITY_CHECK_NS {
            self.identity_checked_ns = now;
            self.replaced |= self
                .place
                .identity()
                .is_some_and(|id| Some(id) != self.identity);
        }
        let h = self.map.header();
        handshake::announce_sleep::<_, StdFence>(&h.consumer_sleeping, || self.has_data())
    }

    /// Withdraws the sleeping flag after a wake-up (or timeout). The FIFO is emptied by the
    /// next [`Consumer::prepare_sleep`], which keeps a system call off the wake-up path and
    /// still gives edge-triggered pollers a fresh edge for the next signal.
    pub fn after_wake(&mut self) {
        self.map
            .header()
            .consumer_sleeping
            .store(0, Ordering::Relaxed);
    }

    pub fn stats(&self) -> RingStats {
        let h = self.map.header();
        let pid = h.producer_pid.load(Ordering::Relaxed);
        RingStats {
            generation: h.generation.load(Ordering::Relaxed),
            producer_pid: u32::try_from(pid).unwrap_or(0),
            producer_alive: pid_alive(pid),
            written: h.write_pos.load(Ordering::Acquire),
            committed: self.committed,
            drops: h.drops.load(Ordering::Relaxed),
            upstream_loss: h.upstream_loss.load(Ordering::Relaxed),
            resyncs: self.resyncs,
            lost_in_resync: self.lost_in_resync,
            generation_resets: self.generation_resets,
            capacity: self.capacity,
        }
    }

    /// Time since the producer last flushed (its heartbeat); None before any flush.
    /// Together with `producer_alive` this tells a live sensor from a recycled pid.
    pub fn producer_idle_for(&self) -> Option<Duration> {
        let beat = self.map.header().heartbeat_ns.load(Ordering::Relaxed);
        (beat != 0).then(|| Duration::from_nanos(monotonic_ns().saturating_sub(beat)))
    }

    /// How long [`Consumer::wait`] spins before sleeping ([`DEFAULT_SPIN`] by default).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Resets the private state from a (new) mapping's committed position.
    fn install_mapping(&mut self) {
        self.identity = setup::identity_of_file(self.map.file());
        self.capacity = self.map.capacity();
        self.mask = self.capacity - 1;
        let read = self.map.header().read_pos.load(Ordering::Acquire);
        self.cursor = read;
        self.committed = read;
        self.cached_write = read;
        self.delivered_end = read;
        self.pending_skip = None;
        self.expected_seq = None;
        self.bad_published = None;
        self.replaced = false;
    }

    fn has_data(&self) -> bool {
        if self.cursor != self.cached_write {
            return true;
        }
        let h = self.map.header();
        let w = h.write_pos.load(Ordering::Acquire);
        (w != self.cursor && self.bad_published != Some(w))
            || self.replaced
            || h.retired.load(Ordering::Relaxed) == RETIRED
    }

    /// Reloads the published position; true = there is something to read. Handles a
    /// rebuilt ring and every out-of-range position (see the module docs).
    fn refresh(&mut self) -> Result<bool, RingError> {
        let h = self.map.header();
        if self.replaced || h.retired.load(Ordering::Acquire) == RETIRED {
            // The producer moved to a new file; finish what it published here first.
            let w = h.write_pos.load(Ordering::Acquire);
            if w == self.cursor || self.bad_published == Some(w) {
                self.follow_rebuild()?;
            }
        }
        let h = self.map.header();
        if h.read_pos.load(Ordering::Relaxed) != self.committed {
            h.read_pos.store(self.committed, Ordering::Release);
        }
        let w = h.write_pos.load(Ordering::Acquire);
        if w == self.cursor {
            return Ok(false);
        }
        if !w.is_multiple_of(ALIGN) {
            return self.bad_position(w, "published position misaligned");
        }
        let pos = self.cursor;
        if w < self.cursor {
            if w < self.delivered_end {
                return self.bad_position(w, "published position behind records already read");
            }
            // We skipped ahead on a scribbled position: continue after the last record
            // handed out, and take back any commit of the skipped bytes.
            self.cursor = self.delivered_end;
            self.pending_skip = None;
            if self.committed > self.cursor {
                self.set_committed(self.cursor);
            }
            self.cached_write = w;
            return self.corrupt(pos, self.cursor, "published position behind the cursor");
        }
        if w - self.committed > self.capacity {
            // The producer overran unread records (it trusted a scribbled read position).
            self.cached_write = w;
            self.skip_to(w);
            return self.corrupt(pos, w, "producer overran the read position");
        }
        self.bad_published = None;
        self.cached_write = w;
        Ok(true)
    }

    fn bad_position(&mut self, w: u64, what: &'static str) -> Result<bool, RingError> {
        if self.bad_published == Some(w) {
            return Ok(false);
        }
        self.bad_published = Some(w);
        self.corrupt(self.cursor, self.cursor, what)
    }

    fn corrupt(
        &mut self,
        pos: u64,
        resumed_at: u64,
        what: &'static str,
    ) -> Result<bool, RingError> {
        self.resyncs += 1;
        Err(RingError::Corrupt {
            path: self.path.clone(),
            pos,
            resumed_at,
            what,
        })
    }

    /// Skips a bad record: resumes at the next valid record header before the producer's
    /// current published position, or at that position when there is none.
    fn resync(&mut self, what: &'static str) -> RingError {
        let pos = self.cursor;
        let w = self.map.header().write_pos.load(Ordering::Acquire);
        let end = if w.is_multiple_of(ALIGN) && w > pos && w - self.committed <= self.capacity {
            w
        } else {
            self.cached_write
        };
        self.cached_write = self.cached_write.max(end);
        let target = self.next_valid_header(pos + ALIGN, end).unwrap_or(end);
        self.skip_to(target);
        self.resyncs += 1;
        RingError::Corrupt {
            path: self.path.clone(),
            pos,
            resumed_at: target,
            what,
        }
    }

    /// The first position in `[from, end)` holding a record header that validates: its
    /// check word binds it to that position (random bytes pass with probability 2^-32), its
    /// record lies before `end` without crossing the ring's end, and its sequence number is
    /// not older than the next one expected. One corrupt record then costs itself and what
    /// the scribble covered, not every record published after it. The scan reads only the
    /// published range, which the producer does not touch before we commit, and is bounded
    /// by a capacity's worth of 16-byte steps.
    fn next_valid_header(&self, from: u64, end: u64) -> Option<u64> {
        let end = end.min(from.saturating_add(self.capacity));
        let mut p = from.next_multiple_of(ALIGN);
        while p < end {
            let off = p & self.mask;
            let word = self.map.data_word(off).load(Ordering::Relaxed);
            let seq = self.map.data_word(off + 8).load(Ordering::Relaxed);
            let len = word as u32;
            if (word >> 32) as u32 == check_word(len, seq, p) {
                let fits = if len == PAD_LEN {
                    off != 0
                } else {
                    let size = record_size(u64::from(len));
                    len as usize <= MAX_RECORD_BYTES
                        && p + size <= end
                        && off + size <= self.capacity
                        && self.expected_seq.is_none_or(|expected| seq >= expected)
                };
                if fits {
                    return Some(p);
                }
            }
            p += ALIGN;
        }
        None
    }

    /// Moves the cursor forward over bytes that will never be read; they are committed at
    /// once if every record handed out is committed, else with the next commit that is.
    fn skip_to(&mut self, target: u64) {
        self.cursor = target;
        if self.committed >= self.delivered_end {
            self.set_committed(target);
        } else {
            self.pending_skip = Some((self.delivered_end, target));
        }
    }

    fn note_seq(&mut self, seq: u64) {
        if let Some(expected) = self.expected_seq
            && seq > expected
        {
            self.lost_in_resync += (seq - expected).min(self.capacity / RECORD_HEADER);
        }
        self.expected_seq = Some(seq.wrapping_add(1));
    }

    /// The producer marked our file retired and we read all it published there: if the path
    /// now names another file, move to it (counting anything left unread as lost);
    /// otherwise the mark is stray (scribbled).
    fn follow_rebuild(&mut self) -> Result<(), RingError> {
        let h = self.map.header();
        if self.place.identity() == self.identity {
            h.retired.store(0, Ordering::Relaxed);
            self.replaced = false;
            return Ok(());
        }
        // Normally everything published there has been read and this is 0; after a
        // scribbled final position, the sequence numbers still tell what was left behind.
        let final_seq = h.next_seq.load(Ordering::Relaxed);
        let lost = self
            .expected_seq
            .map_or(0, |expected| final_seq.saturating_sub(expected))
            .min(self.capacity / RECORD_HEADER);
        // The producer may have replaced an exposed FIFO along with the ring.
        let (wake, fifo_replaced) = wake::open_fifo(&self.place, false)?;
        self.wake = wake;
        self.map = setup::open_ring(
            &self.place,
            self.capacity,
            Role::Consumer,
            &self.wake,
            fifo_replaced.as_deref(),
        )?;
        self.install_mapping();
        self.lost_in_resync += lost;
        self.generation_resets += 1;
        Ok(())
    }

    fn set_committed(&mut self, pos: u64) {
        self.committed = pos;
        self.map.header().read_pos.store(pos, Ordering::Release);
    }

    /// The field invariants stated on [`Consumer`] (debug builds).
    fn check_invariants(&self) {
        debug_assert!(self.capacity.is_power_of_two() && self.mask == self.capacity - 1);
        debug_assert!(self.committed <= self.cursor, "{self:?}");
        debug_assert!(
            self.delivered_end <= self.cursor && self.cursor <= self.cached_write,
            "{self:?}"
        );
        debug_assert!(self.pending_skip.is_none_or(|(a, b)| a <= b));
        debug_assert!(
            [
                self.cursor,
                self.committed,
                self.cached_write,
                self.delivered_end
            ]
            .iter()
            .all(|p| p.is_multiple_of(ALIGN)),
            "{self:?}"
        );
    }
}

/// `kill(pid, 0)`: the process exists (EPERM also means it exists).
fn pid_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("path", &self.path)
            .field("cursor", &self.cursor)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}
