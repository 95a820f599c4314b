//! The envelope log: every alert appended, in seq order, to segment files
//! `alerts.log/<first seq, 20 digits>.log` (see [`super::record`] for a record's bytes).
//!
//! Why a log beside sled: reading sled 0.34 keeps what it read (a full read of 40,000 alerts
//! took the agent from 6 MB to 134 MB, whatever its cache cap), and its flush does not reach
//! the medium. Envelopes here are read with `pread` into one caller's buffer, so reading any
//! number of alerts costs one record's memory; appends are made durable with `fdatasync`
//! (`F_FULLFSYNC` on macOS) of the one file being written, which is also what makes group
//! commit cheap.
//!
//! In memory: per segment its length, its last record, and the offset of every
//! [`SPARSE_EVERY`]th record, so finding a seq reads at most that many headers. Opening reads
//! every record header (not the envelopes) to rebuild this, and reads whole records where a
//! crash may have torn them: past the last durable position the index recorded.
//!
//! # What a crash can leave, and what opening does with it
//!
//! Everything before the last sync is intact: the log syncs the segment it writes and, after
//! creating a segment, the directory, before the store calls anything durable. After it,
//! any part of the unsynced writes may or may not have reached the medium. So, in the last
//! segment, past the durable position, the first record that does not check (or is cut off)
//! and everything after it is a torn tail: cut off (and those alerts were never reported
//! durable, so the ring still holds their events). A record that does not check anywhere
//! else is damage: opening skips to the next record that does (a hole, which `verify` names),
//! or, when nothing after the damage checks in the last segment, reports
//! [`LogError::Damaged`] with the last intact record, for the store to quarantine.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use nightjar_proto::trusted_dir::{TrustedDir, check_private_file};
use nix::fcntl::OFlag;

use super::record::{self, Fields, HEADER, Header};
use super::sync::{sync_data, sync_dir};

/// A segment is closed and a new one started once it holds this many bytes: the unit in
/// which retention gives disk space back (about 4,700 alerts of 3.5 KB).
pub const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// One record in this many is indexed in memory.
pub const SPARSE_EVERY: u64 = 32;

/// A position in the log: the segment (by its first seq) and a byte offset in it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

impl Position {
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.segment.to_be_bytes());
        out[8..].copy_from_slice(&self.offset.to_be_bytes());
        out
    }

    pub fn from_bytes(b: &[u8]) -> Option<Position> {
        Some(Position {
            segment: u64::from_be_bytes(b.get(..8)?.try_into().ok()?),
            offset: u64::from_be_bytes(b.get(8..16)?.try_into().ok()?),
        })
    }
}

/// Why the log cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("{path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    /// Records the index knew to be durable do not check, and nothing after them does.
    #[error(
        "{path}: damaged at offset {at}: records that were durable do not check and nothing after them does"
    )]
    Damaged {
        path: PathBuf,
        at: u64,
        /// The last intact record before the damage: (seq, payload hash).
        last_intact: Option<(u64, [u8; 32])>,
    },
}

/// Something opening found and dealt with, for the log and for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An incomplete record at the end of the last segment, past the durable position
    /// (power loss): the log was cut there.
    TornTail {
        segment: String,
        at: u64,
        bytes: u64,
    },
    /// Bytes that do not form records, skipped: `verify` names the seqs missing there.
    Hole {
        segment: String,
        at: u64,
        resume: u64,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::TornTail { segment, at, bytes } => write!(
                f,
                "{segment}: an incomplete record at offset {at} ({bytes} bytes, never reported durable) was cut off"
            ),
            Finding::Hole {
                segment,
                at,
                resume,
            } => write!(
                f,
                "{segment}: bytes {at}..{resume} do not form records (damaged); skipped"
            ),
        }
    }
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    name: String,
    file: Arc<File>,
    /// End of the last intact record: where the next append goes.
    len: u64,
    /// The last record: (seq, payload hash).
    last: Option<(u64, [u8; 32])>,
    records: u64,
    /// (seq, offset) of every [`SPARSE_EVERY`]th record, the first always.
    sparse: Vec<(u64, u64)>,
    /// Damaged ranges (start, resume) the opening scan skipped.
    holes: Vec<(u64, u64)>,
}

impl Segment {
    fn note(&mut self, seq: u64, hash: [u8; 32], offset: u64) {
        // Only ascending seqs are indexed, so the index can be searched; reading walks
        // forward from an entry and meets the others.
        if self.records.is_multiple_of(SPARSE_EVERY)
            && self.sparse.last().is_none_or(|&(s, _)| seq > s)
        {
            self.sparse.push((seq, offset));
        }
        self.records += 1;
        self.last = Some((seq, hash));
    }
}

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Record {
        seq: u64,
        time_ns: i64,
        hash: [u8; 32],
        uuid: String,
        /// Empty when only headers were asked for.
        envelope: Vec<u8>,
    },
    /// A record that does not check (or bytes that are no record): `seq` when its header
    /// still names one.
    Damaged { seq: Option<u64>, reason: String },
}

/// The log of one store.
#[derive(Debug)]
pub struct Log {
    dir: TrustedDir,
    segments: Vec<Segment>,
    segment_bytes: u64,
    /// Appended since the last sync.
    dirty: bool,
    /// A segment was created since the directory was last synced.
    dir_dirty: bool,
    synced: Position,
    buf: Vec<u8>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Log {
    /// Opens the log in `dir` (checked by the caller), rebuilding the in-memory index and
    /// dealing with what a crash left (see the module docs). `durable`: the position the
    /// index last recorded as synced, if it knows one.
    pub fn open(
        dir: TrustedDir,
        durable: Option<Position>,
        segment_bytes: u64,
    ) -> Result<(Log, Vec<Finding>), LogError> {
        let mut names = Vec::new();
        let entries = dir.entries().map_err(|source| LogError::Io {
            path: dir.path().to_path_buf(),
            op: "list",
            source,
        })?;
        for name in entries {
            let name = name.to_string_lossy().into_owned();
            match parse_segment_name(&name) {
                Some(first) => names.push((first, name)),
                None => tracing::warn!(
                    log = %dir.path().display(),
                    entry = %name,
                    "ignoring an entry that is no log segment"
                ),
            }
        }
        names.sort();
        let mut log = Log {
            dir,
            segments: Vec::new(),
            segment_bytes,
            dirty: false,
            dir_dirty: false,
            synced: Position::default(),
            buf: Vec::new(),
        };
        let mut findings = Vec::new();
        let count = names.len();
        for (i, (first_seq, name)) in names.into_iter().enumerate() {
            let last_segment = i + 1 == count;
            // Where records must be read whole: past the durable position in the last
            // segment (a crash may have torn them there), everywhere when it is unknown.
            let check_from = match durable {
                Some(d) if d.segment == first_seq => Some(d.offset),
                Some(d) if d.segment > first_seq => None,
                _ if last_segment => Some(0),
                _ => None,
            };
            let seg = log.scan_segment(
                first_seq,
                name,
                last_segment,
                check_from,
                durable,
                &mut findings,
            )?;
            log.segments.push(seg);
        }
        if let Some(last) = log.segments.last() {
            log.synced = Position {
                segment: last.first_seq,
                offset: last.len,
            };
        }
        Ok((log, findings))
    }

    fn path_of(&self, name: &str) -> PathBuf {
        self.dir.display_name(name)
    }

    fn io(&self, name: &str, op: &'static str) -> impl FnOnce(io::Error) -> LogError + use<> {
        let path = self.path_of(name);
        move |source| LogError::Io { path, op, source }
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_segment(
        &self,
        first_seq: u64,
        name: String,
        last_segment: bool,
        check_from: Option<u64>,
        durable: Option<Position>,
        findings: &mut Vec<Finding>,
    ) -> Result<Segment, LogError> {
        let file = self
            .dir
            .open_file(&name, OFlag::O_RDWR, 0)
            .map_err(self.io(&name, "open"))?;
        let st = nix::sys::stat::fstat(&file).map_err(|e| LogError::Io {
            path: self.path_of(&name),
            op: "stat",
            source: e.into(),
        })?;
        if let Some(why) = check_private_file(&st, false) {
            return Err(LogError::Untrusted {
                path: self.path_of(&name),
                reason: why,
            });
        }
        let size = file.metadata().map_err(self.io(&name, "stat"))?.len();
        let mut seg = Segment {
            first_seq,
            name,
            file: Arc::new(file),
            len: 0,
            last: None,
            records: 0,
            sparse: Vec::new(),
            holes: Vec::new(),
        };
        let mut pos = 0u64;
        let mut body = Vec::new();
        while pos < size {
            let whole = check_from.is_some_and(|from| pos >= from);
            match read_record_at(&seg.file, pos, size, whole, &mut body) {
                // A record that checks is kept wherever it is: one out of order is `verify`'s
                // to name, not damage to skip.
                Ok(h) => {
                    seg.note(h.seq, h.hash, pos);
                    pos += h.total();
                    seg.len = pos;
                }
                _ => {
                    // Torn tail: in the last segment, past what the index knew durable.
                    let durable_here = match durable {
                        Some(d) if d.segment == first_seq => d.offset,
                        Some(d) if d.segment > first_seq => u64::MAX,
                        _ => 0,
                    };
                    if last_segment && pos >= durable_here {
                        seg.file
                            .set_len(pos)
                            .map_err(self.io(&seg.name, "cut off a torn tail"))?;
                        sync_data(&seg.file).map_err(self.io(&seg.name, "sync"))?;
                        findings.push(Finding::TornTail {
                            segment: seg.name.clone(),
                            at: pos,
                            bytes: size - pos,
                        });
                        return Ok(seg);
                    }
                    match resync(&seg.file, pos, size, &mut body) {
                        Some(resume) => {
                            findings.push(Finding::Hole {
                                segment: seg.name.clone(),
                                at: pos,
                                resume,
                            });
                            seg.holes.push((pos, resume));
                            pos = resume;
                        }
                        None if last_segment => {
                            return Err(LogError::Damaged {
                                path: self.path_of(&seg.name),
                                at: pos,
                                last_intact: seg.last,
                            });
                        }
                        None => {
                            findings.push(Finding::Hole {
                                segment: seg.name.clone(),
                                at: pos,
                                resume: size,
                            });
                            seg.holes.push((pos, size));
                            seg.len = size;
                            return Ok(seg);
                        }
                    }
                }
            }
        }
        Ok(seg)
    }

    /// The last record: (seq, payload hash).
    pub fn last(&self) -> Option<(u64, [u8; 32])> {
        self.segments.iter().rev().find_map(|s| s.last)
    }

    /// The first seq held (the first record of the first segment).
    pub fn first_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .find_map(|s| s.sparse.first().map(|&(seq, _)| seq))
    }

    /// Where everything up to now is durable (after [`Log::sync`]).
    pub fn synced(&self) -> Position {
        self.synced
    }

    /// Appends one record (not yet durable).
    pub fn append(&mut self, f: &Fields<'_>) -> Result<(), LogError> {
        let need_new = self
            .segments
            .last()
            .is_none_or(|s| s.len >= self.segment_bytes && s.records > 0);
        if need_new {
            self.start_segment(f.seq)?;
        }
        self.buf.clear();
        if record::encode(f, &mut self.buf).is_none() {
            return Err(LogError::Io {
                path: self.dir.path().to_path_buf(),
                op: "append",
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("alert seq {} is beyond the record format's bounds", f.seq),
                ),
            });
        }
        let seg = self
            .segments
            .last_mut()
            .expect("a segment was just ensured");
        let at = seg.len;
        if let Err(source) = seg.file.write_all_at(&self.buf, at) {
            // Leave no partial record behind for the next append to follow.
            let _ = seg.file.set_len(at);
            return Err(LogError::Io {
                path: self.dir.display_name(&seg.name),
                op: "append",
                source,
            });
        }
        seg.len += self.buf.len() as u64;
        seg.note(f.seq, f.hash, at);
        self.dirty = true;
        Ok(())
    }

    fn start_segment(&mut self, first_seq: u64) -> Result<(), LogError> {
        // The segment being closed is made durable first, so only the last one ever holds
        // unsynced records.
        self.sync()?;
        let name = segment_name(first_seq);
        let file = self
            .dir
            .open_file(&name, OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL, 0o600)
            .map_err(self.io(&name, "create segment"))?;
        self.segments.push(Segment {
            first_seq,
            name,
            file: Arc::new(file),
            len: 0,
            last: None,
            records: 0,
            sparse: Vec::new(),
            holes: Vec::new(),
        });
        self.dir_dirty = true;
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> Result<Position, LogError> {
        if let Some(seg) = self.segments.last() {
            if self.dirty {
                sync_data(&seg.file).map_err(self.io(&seg.name, "sync"))?;
            }
            if self.dir_dirty {
                sync_dir(&self.dir.fd()).map_err(|source| LogError::Io {
                    path: self.dir.path().to_path_buf(),
                    op: "sync directory",
                    source,
                })?;
            }
            self.synced = Position {
                segment: seg.first_seq,
                offset: seg.len,
            };
        }
        self.dirty = false;
        self.dir_dirty = false;
        Ok(self.synced)
    }

    /// Undoes every append since the last sync (after a failed write or sync, whose data
    /// cannot be trusted to reach the medium even if a later sync succeeds).
    pub fn roll_back(&mut self) -> Result<(), LogError> {
        let synced = self.synced;
        while let Some(seg) = self.segments.last() {
            if seg.first_seq > synced.segment && self.segments.len() > 1 {
                let name = seg.name.clone();
                self.segments.pop();
                self.dir
                    .remove_file(&name)
                    .map_err(self.io(&name, "remove"))?;
                self.dir_dirty = true;
            } else {
                break;
            }
        }
        let keep = if self
            .segments
            .last()
            .is_some_and(|s| s.first_seq == synced.segment)
        {
            synced.offset
        } else {
            0
        };
        let Some(seg) = self.segments.last_mut() else {
            return Ok(());
        };
        seg.file.set_len(keep).map_err(|source| LogError::Io {
            path: self.dir.display_name(&seg.name),
            op: "roll back",
            source,
        })?;
        // Rebuild what we know of the segment from its (now shorter) contents.
        let name = seg.name.clone();
        let first = seg.first_seq;
        let mut findings = Vec::new();
        let rebuilt = self.scan_segment(first, name, true, Some(u64::MAX), None, &mut findings)?;
        *self.segments.last_mut().expect("checked above") = rebuilt;
        self.dirty = false;
        Ok(())
    }

    /// Whether the first segment's records all have seq <= `through` (and it is not the one
    /// being written).
    pub fn segments_below(&self, through: u64) -> bool {
        self.segments.len() > 1 && self.segments[1].first_seq <= through + 1
    }

    /// Removes every segment whose records all have seq <= `through`, except the one being
    /// written. Returns how many segments went.
    pub fn remove_through(&mut self, through: u64) -> Result<usize, LogError> {
        let mut removed = 0;
        while self.segments.len() > 1 {
            let seg = &self.segments[0];
            let next_first = self.segments[1].first_seq;
            // Every seq in the segment is below the next segment's first.
            if next_first > through + 1 {
                break;
            }
            let name = seg.name.clone();
            self.dir
                .remove_file(&name)
                .map_err(self.io(&name, "remove segment"))?;
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir.fd()).map_err(|source| LogError::Io {
                path: self.dir.path().to_path_buf(),
                op: "sync directory",
                source,
            })?;
        }
        Ok(removed)
    }

    /// Reads records with seq >= `from`, in order, handing each to `visit` until it returns
    /// false or `max` were handed. Envelopes are read only when `envelopes` (else headers and
    /// uuids). A hole is handed only after a record was, so that reading again from the seq
    /// after the last record handed does not meet it twice.
    pub fn read_from(
        &self,
        from: u64,
        max: usize,
        envelopes: bool,
        mut visit: impl FnMut(Item) -> bool,
    ) -> Result<(), LogError> {
        let start = self
            .segments
            .partition_point(|s| s.first_seq <= from)
            .saturating_sub(1);
        let mut handed = 0usize;
        let mut body = Vec::new();
        let mut any = false;
        for seg in &self.segments[start..] {
            let mut pos = if seg.first_seq <= from {
                let i = seg.sparse.partition_point(|&(s, _)| s <= from);
                i.checked_sub(1).map_or(0, |i| seg.sparse[i].1)
            } else {
                0
            };
            while pos < seg.len {
                if handed >= max {
                    return Ok(());
                }
                if let Some(&(at, resume)) = seg.holes.iter().find(|&&(at, _)| at == pos) {
                    pos = resume;
                    if !any {
                        continue;
                    }
                    handed += 1;
                    let item = Item::Damaged {
                        seq: None,
                        reason: format!("bytes {at}..{resume} of {} do not form records", seg.name),
                    };
                    if !visit(item) {
                        return Ok(());
                    }
                    continue;
                }
                let mut raw = [0u8; HEADER];
                seg.file
                    .read_exact_at(&mut raw, pos)
                    .map_err(|source| LogError::Io {
                        path: self.dir.display_name(&seg.name),
                        op: "read",
                        source,
                    })?;
                let Some(h) = Header::parse(&raw) else {
                    // Only holes found at open are not headers; anything else changed since.
                    if any {
                        visit(Item::Damaged {
                            seq: None,
                            reason: format!("offset {pos} of {} holds no record header", seg.name),
                        });
                    }
                    return Ok(());
                };
                let next = pos + h.total();
                if h.seq < from {
                    pos = next;
                    continue;
                }
                let body_len = if envelopes {
                    h.total() as usize - HEADER
                } else {
                    usize::from(h.uuid_len)
                };
                body.resize(body_len, 0);
                let read = seg.file.read_exact_at(&mut body, pos + HEADER as u64);
                let item = match read {
                    Err(e) => Item::Damaged {
                        seq: Some(h.seq),
                        reason: format!("cannot read the record: {e}"),
                    },
                    Ok(()) if envelopes && !h.checks(&raw, &body) => Item::Damaged {
                        seq: Some(h.seq),
                        reason: "the stored record does not check: its bytes were altered".into(),
                    },
                    Ok(()) => {
                        let uuid_len = usize::from(h.uuid_len);
                        let uuid = String::from_utf8_lossy(&body[..uuid_len]).into_owned();
                        let envelope = if envelopes {
                            body[uuid_len..].to_vec()
                        } else {
                            Vec::new()
                        };
                        Item::Record {
                            seq: h.seq,
                            time_ns: h.time_ns,
                            hash: h.hash,
                            uuid,
                            envelope,
                        }
                    }
                };
                handed += 1;
                any = true;
                pos = next;
                if !visit(item) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The record stored under `seq`, read whole.
    pub fn get(&self, seq: u64) -> Result<Option<Item>, LogError> {
        let mut found = None;
        self.read_from(seq, usize::MAX, true, |item| {
            match &item {
                Item::Record { seq: s, .. } if *s == seq => found = Some(item),
                Item::Damaged { seq: Some(s), .. } if *s == seq => found = Some(item),
                Item::Record { seq: s, .. } | Item::Damaged { seq: Some(s), .. } if *s > seq => {
                    return false;
                }
                _ => return true,
            }
            false
        })?;
        Ok(found)
    }
}

/// Reads the record at `pos` (header, and the body when `whole` or always for its uuid).
/// `Err(())` when there is no intact record there.
fn read_record_at(
    file: &File,
    pos: u64,
    size: u64,
    whole: bool,
    body: &mut Vec<u8>,
) -> Result<Header, ()> {
    if size - pos < HEADER as u64 {
        return Err(());
    }
    let mut raw = [0u8; HEADER];
    file.read_exact_at(&mut raw, pos).map_err(|_| ())?;
    let h = Header::parse(&raw).ok_or(())?;
    if pos + h.total() > size {
        return Err(());
    }
    if whole {
        body.resize(h.total() as usize - HEADER, 0);
        file.read_exact_at(body, pos + HEADER as u64)
            .map_err(|_| ())?;
        if !h.checks(&raw, body) {
            return Err(());
        }
    }
    Ok(h)
}

/// The first offset after `pos` where an intact record (checked whole) starts, if any.
/// Bounded by the segment's size; reads it in 1 MiB windows.
fn resync(file: &File, pos: u64, size: u64, body: &mut Vec<u8>) -> Option<u64> {
    const WINDOW: u64 = 1 << 20;
    let finder = memchr::memmem::Finder::new(&record::MAGIC);
    let mut window = Vec::new();
    let mut start = pos + 1;
    while start < size {
        let len = (size - start).min(WINDOW + record::MAGIC.len() as u64);
        window.resize(len as usize, 0);
        file.read_exact_at(&mut window, start).ok()?;
        for i in finder.find_iter(&window) {
            let at = start + i as u64;
            if read_record_at(file, at, size, true, body).is_ok() {
                return Some(at);
            }
        }
        start += WINDOW;
    }
    None
}

/// The segment files of the log of the store whose index is `index_dir`, in order: for
/// forensics (and the tests that alter a store behind its back).
pub fn segment_files(index_dir: &std::path::Path) -> io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(super::log_dir_of(index_dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| parse_segment_name(n).is_some())
        })
        .collect();
    out.sort();
    Ok(out)
}

/// (seq, offset, length) of each record of a segment file, as far as its headers parse.
pub fn record_spans(segment: &std::path::Path) -> io::Result<Vec<(u64, u64, u64)>> {
    let file = File::open(segment)?;
    let size = file.metadata()?.len();
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut raw = [0u8; HEADER];
    while pos + HEADER as u64 <= size {
        file.read_exact_at(&mut raw, pos)?;
        let Some(h) = Header::parse(&raw) else { break };
        out.push((h.seq, pos, h.total()));
        pos += h.total();
    }
    Ok(out)
}
