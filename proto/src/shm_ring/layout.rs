//! The on-file layout: header words, record headers and the mapping that holds them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use super::RingError;

/// "NJRING" + 0 + layout version byte, little-endian.
pub(super) const MAGIC: u64 = u64::from_le_bytes(*b"NJRING\x00\x01");
/// Bump on any incompatible change to the header, the record framing or the record codec
/// ([`crate::codec::RECORD_VERSION`]). Version 2: typed records (exec, fork, exit, file,
/// loss, filter counts). Version 3: credential and session change records. Version 4: the
/// macOS file actions (record version 4). Version 5: fixed-width integers in the
/// record body (record version 5). A ring of an older layout is rebuilt; one of a newer
/// layout is refused by name and left alone, since a newer program owns it.
pub const LAYOUT_VERSION: u64 = 5;
/// The header page; data starts page-aligned after it.
pub(super) const HEADER_BYTES: u64 = 4096;
/// Record header: length (u32), check word (u32), sequence number (u64).
pub(super) const RECORD_HEADER: u64 = 16;
/// Every record starts on this boundary, so a record header never straddles the end.
pub(super) const ALIGN: u64 = 16;
/// Length value of a padding record, which covers the rest of the data area.
pub(super) const PAD_LEN: u32 = u32::MAX;
/// Written into the old header when a producer rebuilds the ring as a new file.
pub(super) const RETIRED: u64 = u64::from_le_bytes(*b"RETIRED!");

/// Smallest capacity: twice the largest record with its header and padding, so a record
/// of [`crate::codec::MAX_RECORD_BYTES`] always fits once the ring is empty.
pub const MIN_CAPACITY: u64 = 512 * 1024;
/// Largest capacity (16 GiB), far beyond any sensible ring.
pub const MAX_CAPACITY: u64 = 1 << 34;

/// The header words, in three 128-byte lines: identity, producer, consumer.
#[repr(C, align(128))]
pub(super) struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU64,
    pub capacity: AtomicU64,
    pub generation: AtomicU64,
    pub producer_pid: AtomicU64,
    pub retired: AtomicU64,
    _identity_pad: [AtomicU64; 10],
    pub write_pos: AtomicU64,
    pub next_seq: AtomicU64,
    pub drops: AtomicU64,
    pub upstream_loss: AtomicU64,
    pub heartbeat_ns: AtomicU64,
    _producer_pad: [AtomicU64; 11],
    pub read_pos: AtomicU64,
    pub consumer_sleeping: AtomicU64,
    _consumer_pad: [AtomicU64; 14],
}

const _: () = assert!(size_of::<Header>() == 384);
const _: () = assert!(size_of::<Header>() as u64 <= HEADER_BYTES);

pub(super) fn capacity_ok(capacity: u64) -> bool {
    capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
}

/// Bytes a record of `len` payload bytes occupies, header and padding included.
pub(super) fn record_size(len: u64) -> u64 {
    RECORD_HEADER + len.div_ceil(ALIGN) * ALIGN
}

/// Binds a record header to its length, sequence number and position (a 64-bit mix,
/// folded to 32 bits): random bytes validate with probability 2^-32, and a stale record
/// from an earlier lap never does, because its position differs.
pub(super) fn check_word(len: u32, seq: u64, pos: u64) -> u32 {
    let mut x = seq ^ pos.rotate_left(29) ^ (u64::from(len) << 17) ^ 0x6a09_e667_f3bc_c908;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    (x ^ (x >> 32)) as u32
}

/// Packs length and check word into the first record-header word.
pub(super) fn record_word(len: u32, seq: u64, pos: u64) -> u64 {
    u64::from(len) | (u64::from(check_word(len, seq, pos)) << 32)
}

/// Fault the whole ring in at open, so that steady state takes no page faults.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAP_POPULATE: libc::c_int = libc::MAP_POPULATE;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAP_POPULATE: libc::c_int = 0;

/// A `MAP_SHARED` mapping of the ring file, unmapped on drop.
pub(super) struct Mapping {
    base: NonNull<u8>,
    len: u64,
    file: File,
}

// SAFETY: the mapping is plain memory owned by this value; all shared words are atomics and
// the data area is only accessed through the producer/consumer protocol.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps the first `len` bytes of `file` (which must be at least that long).
    pub fn map(file: File, len: u64, path: &Path) -> Result<Mapping, RingError> {
        let size = usize::try_from(len)
            .map_err(|_| RingError::io(path, "mmap", std::io::Error::other("ring too large")))?;
        // SAFETY: a fresh shared mapping of a file we hold open; the kernel picks the address.
        // The result is checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(RingError::io(path, "mmap", std::io::Error::last_os_error()));
        }
        let base = NonNull::new(ptr.cast::<u8>())
            .ok_or_else(|| RingError::io(path, "mmap", std::io::Error::other("null mapping")))?;
        Ok(Mapping { base, len, file })
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the mapping is page-aligned (so 128-aligned), at least HEADER_BYTES long
        // (every caller maps a file of at least that size), lives as long as `self`, and the
        // header consists only of atomics, which tolerate concurrent writes from the other
        // process.
        unsafe { &*self.base.as_ptr().cast::<Header>() }
    }

    /// Data bytes after the header (0 when only the header is mapped).
    pub fn capacity(&self) -> u64 {
        self.len.saturating_sub(HEADER_BYTES)
    }

    /// Start of the data area.
    pub fn data(&self) -> *mut u8 {
        // SAFETY: HEADER_BYTES is within the mapping (see `header`).
        unsafe { self.base.as_ptr().add(HEADER_BYTES as usize) }
    }

    /// The 8-byte word at data offset `off`.
    ///
    /// Callers pass `off.is_multiple_of(8)` and `off + 8 <= capacity`.
    pub fn data_word(&self, off: u64) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= self.capacity());
        // SAFETY: per the contract above the word is inside the data area and 8-aligned
        // (the data area is page-aligned); AtomicU64 tolerates the other process's writes.
        unsafe { &*self.data().add(off as usize).cast::<AtomicU64>() }
    }

    /// Writes a record header at data offset `off` (16-aligned, inside the data area).
    pub fn write_record_header(&self, off: u64, len: u32, seq: u64, pos: u64) {
        self.data_word(off)
            .store(record_word(len, seq, pos), Ordering::Relaxed);
        self.data_word(off + 8).store(seq, Ordering::Relaxed);
    }

    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len describe the mapping created in `map`, which nothing borrows any
        // more (borrows of the mapping are tied to `&self`).
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_sizes_are_aligned() {
        assert_eq!(record_size(0), 16);
        assert_eq!(record_size(1), 32);
        assert_eq!(record_size(16), 32);
        assert_eq!(record_size(256), 272);
        let max = crate::codec::MAX_RECORD_BYTES as u64;
        assert!(2 * record_size(max) <= MIN_CAPACITY);
    }

    #[test]
    fn check_word_depends_on_every_input() {
        let c = check_word(10, 5, 4096);
        assert_ne!(c, check_word(11, 5, 4096));
        assert_ne!(c, check_word(10, 6, 4096));
        assert_ne!(c, check_word(10, 5, 4096 + MIN_CAPACITY));
    }
}
