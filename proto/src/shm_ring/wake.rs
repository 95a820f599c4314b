//! The wake-up FIFO beside the ring: creation, signalling, draining and waiting.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::RingError;

/// `<ring>.wake`.
pub(super) fn fifo_path(ring: &Path) -> PathBuf {
    let mut name = ring.as_os_str().to_os_string();
    name.push(".wake");
    PathBuf::from(name)
}

pub(super) fn c_path(path: &Path) -> Result<CString, RingError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        RingError::io(
            path,
            "path",
            io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"),
        )
    })
}

/// Creates the FIFO (0600) when missing and opens it: read-write for the producer (its
/// writes then never see "no reader"), read-only for the consumer. Both non-blocking.
pub(super) fn open_fifo(path: &Path, read_write: bool) -> Result<OwnedFd, RingError> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EEXIST) {
            return Err(RingError::io(path, "mkfifo", err));
        }
    }
    let mode = if read_write {
        libc::O_RDWR
    } else {
        libc::O_RDONLY
    };
    // SAFETY: valid path; the returned fd is checked and then owned.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            mode | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(RingError::io(path, "open", io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    super::setup::check_owned(&fd, path, libc::S_IFIFO)?;
    Ok(fd)
}

/// Writes one byte; a full FIFO already guarantees a wake-up, so `EAGAIN` is fine.
pub(super) fn signal(fd: &OwnedFd) {
    let byte = 1u8;
    // SAFETY: writes one byte from a live local to an fd we own.
    unsafe {
        libc::write(fd.as_raw_fd(), (&raw const byte).cast(), 1);
    }
}

/// Reads until the FIFO is empty, so edge-triggered pollers see the next write.
pub(super) fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 256];
    // Bounded: a FIFO holds at most 1 MiB by default; 4096 reads of 256 bytes cover it.
    for _ in 0..4096 {
        // SAFETY: reads into a live local buffer of the given length.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < buf.len() as isize {
            break;
        }
    }
}

/// Sleeps until the FIFO is readable or `timeout` (rounded up to a millisecond) passes;
/// `EINTR` counts as a wake-up. Plain `poll`, which macOS has too.
pub(super) fn wait_readable(fd: &OwnedFd, timeout: Duration, path: &Path) -> Result<(), RingError> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd, a live local.
    let rc = unsafe { libc::poll(&raw mut pfd, 1, ms) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(RingError::io(path, "poll", err));
        }
    }
    Ok(())
}

/// An exclusive `flock`, released on drop.
pub(super) struct FileLock<'a, F: AsRawFd> {
    fd: &'a F,
}

impl<'a, F: AsRawFd> FileLock<'a, F> {
    /// Blocks until the lock is ours (others hold it only while opening the ring).
    pub fn exclusive(fd: &'a F, path: &Path) -> Result<FileLock<'a, F>, RingError> {
        loop {
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(FileLock { fd });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(RingError::io(path, "flock", err));
            }
        }
    }
}

impl<F: AsRawFd> Drop for FileLock<'_, F> {
    fn drop(&mut self) {
        // SAFETY: flock on an fd that outlives this guard.
        unsafe {
            libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Tries to take an exclusive lock without waiting: false = someone else holds it.
pub(super) fn try_lock(fd: &impl AsRawFd, path: &Path) -> Result<bool, RingError> {
    // SAFETY: flock on an fd the caller owns.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(RingError::io(path, "flock", err))
    }
}

/// Drops a lock taken with [`try_lock`].
pub(super) fn unlock(fd: &impl AsRawFd) {
    // SAFETY: flock on an fd the caller owns.
    unsafe {
        libc::flock(fd.as_raw_fd(), libc::LOCK_UN);
    }
}
