//! The wake-up FIFO beside the ring: creation, signalling, draining and waiting.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::RingError;
use super::setup::{Fitness, RingPlace, WAKE, check_file};

/// Creates the FIFO `<ring>.wake` (0600) when missing and opens it: read-write for the
/// producer (its writes then never see "no reader"), read-only for the consumer. Both
/// non-blocking. An exposed FIFO (see `setup::Fitness`) is replaced by a fresh one, and the
/// reason is returned: the caller then rebuilds the ring so the other side, which may still
/// hold the old FIFO, moves to the new one with it.
pub(super) fn open_fifo(
    place: &RingPlace,
    read_write: bool,
) -> Result<(OwnedFd, Option<String>), RingError> {
    let shown = place.shown(WAKE);
    let make = || match nix::unistd::mkfifo(&place.real(WAKE), Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
        Err(e) => Err(RingError::io(&shown, "mkfifo", e.into())),
    };
    let flags = if read_write {
        OFlag::O_RDWR
    } else {
        OFlag::O_RDONLY
    } | OFlag::O_NONBLOCK;
    make()?;
    let fd = OwnedFd::from(place.open_raw(WAKE, flags)?);
    let Fitness::Exposed(why) = check_file(&fd, &shown, libc::S_IFIFO)? else {
        return Ok((fd, None));
    };
    tracing::warn!(fifo = %shown.display(), "wake FIFO is exposed ({why}); replacing it");
    drop(fd);
    place.remove(WAKE)?;
    make()?;
    let fd = OwnedFd::from(place.open_raw(WAKE, flags)?);
    if let Fitness::Exposed(why) = check_file(&fd, &shown, libc::S_IFIFO)? {
        return Err(RingError::io(
            &shown,
            "mkfifo",
            io::Error::other(format!("a fresh FIFO is exposed: {why}")),
        ));
    }
    Ok((fd, Some(format!("the wake FIFO was exposed ({why})"))))
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
