//! Finding, validating, creating and rebuilding the ring file.

use std::fs::{DirBuilder, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::RingError;
use super::layout::{ALIGN, HEADER_BYTES, LAYOUT_VERSION, MAGIC, Mapping, RETIRED, capacity_ok};
use super::wake::{self, FileLock};

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

/// Creates missing parent directories with mode 0700.
pub(super) fn ensure_parent(path: &Path) -> Result<(), RingError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() && !parent.exists() => DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| RingError::io(parent, "create directory", e)),
        _ => Ok(()),
    }
}

/// Checks the file type and owner of `fd` and tightens its mode to 0600.
pub(super) fn check_owned(
    fd: &impl AsRawFd,
    path: &Path,
    kind: libc::mode_t,
) -> Result<(), RingError> {
    // SAFETY: `stat` is plain data; zeroed is a valid value that fstat overwrites.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an fd the caller owns into a live local.
    if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } != 0 {
        return Err(RingError::io(path, "fstat", io::Error::last_os_error()));
    }
    if st.st_mode & libc::S_IFMT != kind {
        let path = path.to_path_buf();
        return Err(if kind == libc::S_IFIFO {
            RingError::NotFifo { path }
        } else {
            RingError::NotRegular { path }
        });
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if st.st_uid != euid {
        return Err(RingError::Owner {
            path: path.to_path_buf(),
            owner: st.st_uid,
            expected: euid,
        });
    }
    // SAFETY: fchmod on an fd the caller owns.
    if st.st_mode & 0o777 != 0o600 && unsafe { libc::fchmod(fd.as_raw_fd(), 0o600) } != 0 {
        return Err(RingError::io(path, "fchmod", io::Error::last_os_error()));
    }
    Ok(())
}

/// What the path holds when we look.
enum Existing {
    Missing,
    Valid(Mapping),
    Invalid { old: Old, what: &'static str },
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

/// `<ring>.lock`: its `flock` serialises opens, creations and rebuilds.
fn lock_path(ring: &Path) -> PathBuf {
    let mut name = ring.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes `<ring>.consumer`'s `flock` for the consumer's lifetime: one consumer per ring, as
/// two would each commit the other's unread records. The returned file holds the lock.
pub(super) fn take_consumer_lock(ring: &Path) -> Result<File, RingError> {
    let mut name = ring.as_os_str().to_os_string();
    name.push(".consumer");
    let path = PathBuf::from(name);
    let file = open_file(&path, libc::O_CREAT)?
        .ok_or_else(|| RingError::io(&path, "create", io::ErrorKind::NotFound.into()))?;
    check_owned(&file, &path, libc::S_IFREG)?;
    // A consumer that just exited may hold the lock a moment longer (a forked child that
    // has not reached exec yet shares the descriptor): wait that out before refusing.
    let deadline = std::time::Instant::now() + CONSUMER_LOCK_PATIENCE;
    loop {
        if wake::try_lock(&file, &path)? {
            return Ok(file);
        }
        if std::time::Instant::now() >= deadline {
            return Err(RingError::ConsumerBusy {
                path: ring.to_path_buf(),
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long a consumer waits for `<ring>.consumer` before it is refused.
const CONSUMER_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens (creating or rebuilding as `role` allows) the ring at `path`; `wake` is the FIFO
/// to signal when a rebuild retires a ring a consumer may still be reading.
pub(super) fn open_ring(
    path: &Path,
    capacity: u64,
    role: Role,
    wake: &OwnedFd,
) -> Result<Mapping, RingError> {
    let lock_path = lock_path(path);
    let lock_file = open_file(&lock_path, libc::O_CREAT)?
        .ok_or_else(|| RingError::io(&lock_path, "create", io::ErrorKind::NotFound.into()))?;
    check_owned(&lock_file, &lock_path, libc::S_IFREG)?;
    let _lock = FileLock::exclusive(&lock_file, &lock_path)?;
    let pid = u64::from(std::process::id());
    match (role, inspect(path)?) {
        (Role::Producer, Existing::Valid(map)) if map.capacity() == capacity => {
            take_producer_lock(&map, path)?;
            let h = map.header();
            h.generation.fetch_add(1, Ordering::Relaxed);
            h.producer_pid.store(pid, Ordering::Relaxed);
            h.retired.store(0, Ordering::Relaxed);
            Ok(map)
        }
        (Role::Producer, Existing::Missing) => {
            let map = create(path, capacity, 1)?;
            take_producer_lock(&map, path)?;
            map.header().producer_pid.store(pid, Ordering::Relaxed);
            Ok(map)
        }
        (Role::Producer, Existing::Valid(map)) => rebuild(
            path,
            capacity,
            Old::Mapped(map),
            role,
            wake,
            "capacity differs",
        ),
        (Role::Producer, Existing::Invalid { old, what }) => {
            rebuild(path, capacity, old, role, wake, what)
        }
        (Role::Consumer, Existing::Valid(map)) => {
            map.header().retired.store(0, Ordering::Relaxed);
            Ok(map)
        }
        (Role::Consumer, Existing::Missing) => create(path, capacity, 0),
        (Role::Consumer, Existing::Invalid { old, what }) => {
            rebuild(path, capacity, old, role, wake, what)
        }
    }
}

/// Replaces an invalid (or, for the producer, differently sized) ring with a fresh file of
/// the next generation and retires the old one.
fn rebuild(
    path: &Path,
    capacity: u64,
    old: Old,
    role: Role,
    wake: &OwnedFd,
    what: &'static str,
) -> Result<Mapping, RingError> {
    if !wake::try_lock(old.file(), path)? {
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
    let map = create(path, capacity, old.generation().wrapping_add(1))?;
    match role {
        Role::Producer => {
            take_producer_lock(&map, path)?;
            map.header()
                .producer_pid
                .store(u64::from(std::process::id()), Ordering::Relaxed);
        }
        Role::Consumer => wake::unlock(old.file()),
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

fn open_file(path: &Path, flags: libc::c_int) -> Result<Option<File>, RingError> {
    let c = wake::c_path(path)?;
    // SAFETY: valid NUL-terminated path; the fd is checked and then owned.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            flags | libc::O_RDWR | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600 as libc::c_uint,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(None);
        }
        return Err(RingError::io(path, "open", err));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(Some(File::from(unsafe { OwnedFd::from_raw_fd(fd) })))
}

/// Opens and validates what is at `path`. Nothing in the header is trusted: the capacity
/// comes from the file size and every word is checked against it.
fn inspect(path: &Path) -> Result<Existing, RingError> {
    let Some(file) = open_file(path, 0)? else {
        return Ok(Existing::Missing);
    };
    check_owned(&file, path, libc::S_IFREG)?;
    let size = file
        .metadata()
        .map_err(|e| RingError::io(path, "stat", e))?
        .len();
    if size < HEADER_BYTES {
        return Ok(Existing::Invalid {
            old: Old::Bare(file),
            what: "file shorter than the header",
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
    let what = if h.magic.load(Ordering::Acquire) != MAGIC {
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
    Ok(Existing::Invalid {
        old: Old::Mapped(map),
        what,
    })
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".new");
    PathBuf::from(name)
}

/// Builds a fresh ring in `<path>.new` (0600, fully allocated so a full disk fails here
/// rather than as SIGBUS later) and renames it over `path`. Callers hold the open lock.
fn create(path: &Path, capacity: u64, generation: u64) -> Result<Mapping, RingError> {
    let tmp = temp_path(path);
    if let Err(e) = std::fs::remove_file(&tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        return Err(RingError::io(&tmp, "remove stale file", e));
    }
    let file = open_file(&tmp, libc::O_CREAT | libc::O_EXCL)?
        .ok_or_else(|| RingError::io(&tmp, "create", io::ErrorKind::NotFound.into()))?;
    check_owned(&file, &tmp, libc::S_IFREG)?;
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
    std::fs::rename(&tmp, path).map_err(|e| RingError::io(path, "rename into place", e))?;
    Ok(map)
}

/// Reserves the file's blocks, so that a full file system fails here and not as SIGBUS
/// when a page of the mapping is first written.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn allocate(file: &File, len: libc::off_t) -> io::Result<()> {
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

/// (device, inode) of what `path` names now, to tell whether the ring was replaced.
pub(super) fn identity_of_path(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// (device, inode) of an open file.
pub(super) fn identity_of_file(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| (m.dev(), m.ino()))
}
