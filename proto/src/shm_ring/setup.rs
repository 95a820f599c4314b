//! Finding, validating, creating and rebuilding the ring file.
//!
//! The ring's directory is a [`TrustedDir`]: checked from `/` down (root-owned, writable by
//! root alone), created 0700 when missing, and every file in it (the ring, `<ring>.new`, the
//! lock files, the wake FIFO) is opened relative to its descriptor with `O_NOFOLLOW`. A file
//! found with another mode than 0600, or with a second name (hard link), is never repaired
//! in place: a descriptor someone opened while it was exposed would keep its access. It is
//! replaced by a fresh file instead (the ring rebuilt as a new generation).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use nix::fcntl::OFlag;

use super::RingError;
use super::layout::{ALIGN, HEADER_BYTES, LAYOUT_VERSION, MAGIC, Mapping, RETIRED, capacity_ok};
use super::wake::{self, FileLock};
use crate::trusted_dir::{Missing, TrustedDir};

/// Where a ring lives: its checked directory and its file name there. The lock files and
/// the wake FIFO are named after it (`<ring>.lock`, `<ring>.consumer`, `<ring>.wake`).
#[derive(Debug)]
pub(super) struct RingPlace {
    dir: TrustedDir,
    name: String,
    path: PathBuf,
}

/// File name suffixes of the files beside the ring.
pub(super) const LOCK: &str = ".lock";
pub(super) const CONSUMER_LOCK: &str = ".consumer";
pub(super) const WAKE: &str = ".wake";
const NEW: &str = ".new";

impl RingPlace {
    /// Checks (creating it 0700 when missing) the ring's directory.
    pub fn open(path: &Path) -> Result<RingPlace, RingError> {
        let untrusted = |reason: String| RingError::Untrusted {
            path: path.to_path_buf(),
            reason,
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| untrusted("the ring path must end in a UTF-8 file name".into()))?;
        let parent = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| untrusted("the ring path must be absolute".into()))?;
        let dir = TrustedDir::open(parent, Missing::Create).map_err(|e| match e {
            crate::trusted_dir::TrustError::Untrusted { reason, .. } => {
                untrusted(format!("the ring's directory cannot be trusted: {reason}"))
            }
            crate::trusted_dir::TrustError::Io { path, op, source } => {
                RingError::Io { path, op, source }
            }
        })?;
        Ok(RingPlace {
            dir,
            name: name.to_string(),
            path: path.to_path_buf(),
        })
    }

    /// The ring path as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file_name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.name)
    }

    /// `<ring><suffix>`, for messages.
    pub fn shown(&self, suffix: &str) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }

    /// `<ring><suffix>` under the directory's resolved path (for `mkfifo`, which has no
    /// descriptor-relative form on macOS; nobody but root can change that path).
    pub fn real(&self, suffix: &str) -> PathBuf {
        self.dir.real_path().join(self.file_name(suffix))
    }

    /// Opens `<ring><suffix>` read-write (plus `flags`) without following a link; `None`
    /// when it does not exist.
    pub fn open_file(&self, suffix: &str, flags: OFlag) -> Result<Option<File>, RingError> {
        match self
            .dir
            .open_file(&self.file_name(suffix), flags | OFlag::O_RDWR, 0o600)
        {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RingError::io(&self.shown(suffix), "open", e)),
        }
    }

    /// Opens `<ring><suffix>` with exactly `flags` (the FIFO's read-only end).
    pub fn open_raw(&self, suffix: &str, flags: OFlag) -> Result<File, RingError> {
        self.dir
            .open_file(&self.file_name(suffix), flags, 0o600)
            .map_err(|e| RingError::io(&self.shown(suffix), "open", e))
    }

    pub fn remove(&self, suffix: &str) -> Result<(), RingError> {
        self.dir
            .remove_file(&self.file_name(suffix))
            .map_err(|e| RingError::io(&self.shown(suffix), "remove", e))
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), RingError> {
        self.dir
            .rename(&self.file_name(from), &self.file_name(to))
            .map_err(|e| RingError::io(&self.shown(to), "rename into place", e))
    }

    /// (device, inode) of what the ring's name holds now, to tell whether it was replaced.
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.dir
            .stat(&self.name)
            .ok()
            .flatten()
            .map(|st| crate::trusted_dir::identity(&st))
    }
}

/// Which side is opening: the producer rebuilds invalid rings and takes the producer lock;
/// the consumer rebuilds only when no producer holds the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Producer,
    Consumer,
}

/// Rejects capacities the layout cannot hold before touching the file system.
pub(super) fn check_capacity(path: &Path, capacity: u64) -> Result<(), RingError> {
    if capacity_ok(capacity) {
        Ok(())
    } else {
        Err(RingError::Capacity {
            path: path.to_path_buf(),
            capacity,
        })
    }
}

/// Whether a file beside the ring may be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fitness {
    Fit,
    /// Another mode than 0600, or more than one name: someone may hold a descriptor opened
    /// while it was exposed, or reach it through another name. Replace it, never repair it.
    Exposed(String),
}

/// Checks the file type and owner of `fd` (errors), then its mode and link count.
pub(super) fn check_file(
    fd: &impl AsFd,
    path: &Path,
    kind: libc::mode_t,
) -> Result<Fitness, RingError> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| RingError::io(path, "fstat", e.into()))?;
    if st.st_mode & libc::S_IFMT != kind {
        let path = path.to_path_buf();
        return Err(if kind == libc::S_IFIFO {
            RingError::NotFifo { path }
        } else {
            RingError::NotRegular { path }
        });
    }
    let euid = nix::unistd::geteuid().as_raw();
    if st.st_uid != euid {
        return Err(RingError::Owner {
            path: path.to_path_buf(),
            owner: st.st_uid,
            expected: euid,
        });
    }
    let mode = crate::trusted_dir::mode_bits(&st);
    Ok(if mode != 0o600 {
        Fitness::Exposed(format!("mode {mode:04o}, not 0600"))
    } else if st.st_nlink != 1 {
        Fitness::Exposed(format!("{} names (hard links), not one", st.st_nlink))
    } else {
        Fitness::Fit
    })
}

/// Opens (creating it 0600) the lock file `<ring><suffix>`. An exposed one is replaced by a
/// fresh file, unless `keep_if_locked` and someone holds its lock (a running consumer: the
/// caller then refuses, as for any busy consumer lock).
fn open_lock_file(
    place: &RingPlace,
    suffix: &str,
    keep_if_locked: bool,
) -> Result<File, RingError> {
    let shown = place.shown(suffix);
    let file = place
        .open_file(suffix, OFlag::O_CREAT)?
        .ok_or_else(|| RingError::io(&shown, "create", io::ErrorKind::NotFound.into()))?;
    let Fitness::Exposed(why) = check_file(&file, &shown, libc::S_IFREG)? else {
        return Ok(file);
    };
    if keep_if_locked && !wake::try_lock(&file, &shown)? {
        return Ok(file);
    }
    tracing::warn!(file = %shown.display(), "lock file is exposed ({why}); replacing it with a fresh one");
    let fresh = fresh_file(place, suffix)?;
    Ok(fresh)
}

/// Creates `<ring><suffix>.new` (0600, exclusively) and renames it over `<ring><suffix>`.
fn fresh_file(place: &RingPlace, suffix: &str) -> Result<File, RingError> {
    let tmp = format!("{suffix}{NEW}");
    place.remove(&tmp)?;
    let file = place
        .open_file(&tmp, OFlag::O_CREAT | OFlag::O_EXCL)?
        .ok_or_else(|| {
            RingError::io(&place.shown(&tmp), "create", io::ErrorKind::NotFound.into())
        })?;
    if let Fitness::Exposed(why) = check_file(&file, &place.shown(&tmp), libc::S_IFREG)? {
        return Err(RingError::io(
            &place.shown(&tmp),
            "create",
            io::Error::other(format!("a freshly created file is exposed: {why}")),
        ));
    }
    place.rename(&tmp, suffix)?;
    Ok(file)
}

/// What the path holds when we look.
enum Existing {
    Missing,
    Valid(Mapping),
    /// `exposed`: the file's mode or links are wrong, so it is rebuilt even if someone holds
    /// its lock (a descriptor opened while it was exposed may be holding it).
    Invalid {
        old: Old,
        what: String,
        exposed: bool,
    },
}

/// An invalid ring: mapped (header at least) when the file is large enough to retire it.
enum Old {
    Mapped(Mapping),
    Bare(File),
}

impl Old {
    fn file(&self) -> &File {
        match self {
            Old::Mapped(m) => m.file(),
            Old::Bare(f) => f,
        }
    }

    fn generation(&self) -> u64 {
        match self {
            Old::Mapped(m) => m.header().generation.load(Ordering::Relaxed),
            Old::Bare(_) => 0,
        }
    }

    /// Tells a consumer still mapping the old file to move to the new one.
    fn retire(&self) {
        if let Old::Mapped(m) = self {
            m.header().retired.store(RETIRED, Ordering::Release);
        }
    }
}

/// Takes `<ring>.consumer`'s `flock` for the consumer's lifetime: one consumer per ring, as
/// two would each commit the other's unread records. The returned file holds the lock.
pub(super) fn take_consumer_lock(place: &RingPlace) -> Result<File, RingError> {
    let path = place.shown(CONSUMER_LOCK);
    let file = open_lock_file(place, CONSUMER_LOCK, true)?;
    // A consumer that just exited may hold the lock a moment longer (a forked child that
    // has not reached exec yet shares the descriptor): wait that out before refusing.
    let deadline = std::time::Instant::now() + CONSUMER_LOCK_PATIENCE;
    loop {
        if wake::try_lock(&file, &path)? {
            return Ok(file);
        }
        if std::time::Instant::now() >= deadline {
            return Err(RingError::ConsumerBusy {
                path: place.path().to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long a consumer waits for `<ring>.consumer` before it is refused.
const CONSUMER_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens (creating or rebuilding as `role` allows) the ring; `wake` is the FIFO to signal
/// when a rebuild retires a ring a consumer may still be reading. `rebuild_why`: the wake
/// FIFO was just replaced (it was exposed), so the ring is rebuilt too, which moves the
/// other side to the new FIFO when it follows the new ring.
pub(super) fn open_ring(
    place: &RingPlace,
    capacity: u64,
    role: Role,
    wake: &OwnedFd,
    rebuild_why: Option<&str>,
) -> Result<Mapping, RingError> {
    let path = place.path();
    let lock_path = place.shown(LOCK);
    let lock_file = open_lock_file(place, LOCK, false)?;
    let _lock = FileLock::exclusive(&lock_file, &lock_path)?;
    let pid = u64::from(std::process::id());
    let found = match (inspect(place)?, rebuild_why) {
        (Existing::Valid(map), Some(why)) => Existing::Invalid {
            old: Old::Mapped(map),
            what: why.to_string(),
            exposed: true,
        },
        (found, _) => found,
    };
    match (role, found) {
        (Role::Producer, Existing::Valid(map)) if map.capacity() == capacity => {
            take_producer_lock(&map, path)?;
            let h = map.header();
            h.generation.fetch_add(1, Ordering::Relaxed);
            h.producer_pid.store(pid, Ordering::Relaxed);
            h.retired.store(0, Ordering::Relaxed);
            Ok(map)
        }
        (Role::Producer, Existing::Missing) => {
            let map = create(place, capacity, 1)?;
            take_producer_lock(&map, path)?;
            map.header().producer_pid.store(pid, Ordering::Relaxed);
            Ok(map)
        }
        (Role::Producer, Existing::Valid(map)) => rebuild(
            place,
            capacity,
            Old::Mapped(map),
            role,
            wake,
            "capacity differs".into(),
            false,
        ),
        (Role::Consumer, Existing::Valid(map)) => {
            map.header().retired.store(0, Ordering::Relaxed);
            Ok(map)
        }
        (Role::Consumer, Existing::Missing) => create(place, capacity, 0),
        (role, Existing::Invalid { old, what, exposed }) => {
            rebuild(place, capacity, old, role, wake, what, exposed)
        }
    }
}

/// Replaces an invalid (or, for the producer, differently sized) ring with a fresh file of
/// the next generation and retires the old one. An `exposed` ring is replaced whoever holds
/// its lock: a running producer follows the new file within a second.
#[allow(clippy::too_many_arguments)]
fn rebuild(
    place: &RingPlace,
    capacity: u64,
    old: Old,
    role: Role,
    wake: &OwnedFd,
    what: String,
    exposed: bool,
) -> Result<Mapping, RingError> {
    let path = place.path();
    let locked = wake::try_lock(old.file(), path)?;
    if !locked && !exposed {
        return Err(match role {
            Role::Producer => RingError::ProducerBusy {
                path: path.to_path_buf(),
            },
            Role::Consumer => RingError::Invalid {
                path: path.to_path_buf(),
                what,
            },
        });
    }
    if exposed {
        tracing::warn!(ring = %path.display(), "ring file is exposed ({what}); building a fresh one");
    }
    let map = create(place, capacity, old.generation().wrapping_add(1))?;
    match role {
        Role::Producer => {
            take_producer_lock(&map, path)?;
            map.header()
                .producer_pid
                .store(u64::from(std::process::id()), Ordering::Relaxed);
        }
        Role::Consumer if locked => wake::unlock(old.file()),
        Role::Consumer => {}
    }
    old.retire();
    wake::signal(wake);
    Ok(map)
}

fn take_producer_lock(map: &Mapping, path: &Path) -> Result<(), RingError> {
    if wake::try_lock(map.file(), path)? {
        Ok(())
    } else {
        Err(RingError::ProducerBusy {
            path: path.to_path_buf(),
        })
    }
}

/// Opens and validates the ring file. Nothing in the header is trusted: the capacity
/// comes from the file size and every word is checked against it.
fn inspect(place: &RingPlace) -> Result<Existing, RingError> {
    let path = place.path();
    let Some(file) = place.open_file("", OFlag::empty())? else {
        return Ok(Existing::Missing);
    };
    let exposure = match check_file(&file, path, libc::S_IFREG)? {
        Fitness::Fit => None,
        Fitness::Exposed(why) => Some(why),
    };
    let size = file
        .metadata()
        .map_err(|e| RingError::io(path, "stat", e))?
        .len();
    if size < HEADER_BYTES {
        return Ok(Existing::Invalid {
            old: Old::Bare(file),
            what: "file shorter than the header".into(),
            exposed: exposure.is_some(),
        });
    }
    let capacity = size - HEADER_BYTES;
    let map_len = if capacity_ok(capacity) {
        size
    } else {
        HEADER_BYTES
    };
    let map = Mapping::map(file, map_len, path)?;
    let h = map.header();
    let read = h.read_pos.load(Ordering::Acquire);
    let write = h.write_pos.load(Ordering::Acquire);
    let what = if let Some(why) = &exposure {
        why.as_str()
    } else if h.magic.load(Ordering::Acquire) != MAGIC {
        "bad magic"
    } else if h.version.load(Ordering::Relaxed) > LAYOUT_VERSION
        && h.version.load(Ordering::Relaxed) < u64::from(u32::MAX)
    {
        // Plausibly a newer program's ring: rebuilding it would cut that program off.
        return Err(RingError::NewerLayout {
            path: path.to_path_buf(),
            found: h.version.load(Ordering::Relaxed),
            supported: LAYOUT_VERSION,
        });
    } else if h.version.load(Ordering::Relaxed) != LAYOUT_VERSION {
        "older or unknown layout version"
    } else if !capacity_ok(capacity) {
        "file size is not a valid capacity"
    } else if h.capacity.load(Ordering::Relaxed) != capacity {
        "capacity word disagrees with the file size"
    } else if read > write
        || write - read > capacity
        || !read.is_multiple_of(ALIGN)
        || !write.is_multiple_of(ALIGN)
    {
        "positions out of range"
    } else {
        return Ok(Existing::Valid(map));
    };
    let what = what.to_string();
    Ok(Existing::Invalid {
        old: Old::Mapped(map),
        what,
        exposed: exposure.is_some(),
    })
}

/// Builds a fresh ring in `<ring>.new` (0600, fully allocated so a full disk fails here
/// rather than as SIGBUS later) and renames it over the ring. Callers hold the open lock.
fn create(place: &RingPlace, capacity: u64, generation: u64) -> Result<Mapping, RingError> {
    let tmp = place.shown(NEW);
    place.remove(NEW)?;
    let file = place
        .open_file(NEW, OFlag::O_CREAT | OFlag::O_EXCL)?
        .ok_or_else(|| RingError::io(&tmp, "create", io::ErrorKind::NotFound.into()))?;
    if let Fitness::Exposed(why) = check_file(&file, &tmp, libc::S_IFREG)? {
        return Err(RingError::io(
            &tmp,
            "create",
            io::Error::other(format!("a freshly created ring is exposed: {why}")),
        ));
    }
    let len = HEADER_BYTES + capacity;
    let off_len = libc::off_t::try_from(len)
        .map_err(|_| RingError::io(&tmp, "allocate", io::Error::other("ring too large")))?;
    allocate(&file, off_len).map_err(|e| RingError::io(&tmp, "allocate", e))?;
    let map = Mapping::map(file, len, &tmp)?;
    let h = map.header();
    h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
    h.capacity.store(capacity, Ordering::Relaxed);
    h.generation.store(generation, Ordering::Relaxed);
    h.magic.store(MAGIC, Ordering::Release);
    place.rename(NEW, "")?;
    Ok(map)
}

/// Reserves the file's blocks, so that a full file system fails here and not as SIGBUS
/// when a page of the mapping is first written.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allocate(file: &File, len: libc::off_t) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fallocate on an fd we own; it returns an errno value.
    match unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) } {
        0 => Ok(()),
        rc => Err(io::Error::from_raw_os_error(rc)),
    }
}

/// Sizes the file (macOS has no `posix_fallocate`).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn allocate(file: &File, len: libc::off_t) -> io::Result<()> {
    file.set_len(len as u64)
}

/// (device, inode) of an open file.
pub(super) fn identity_of_file(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}
