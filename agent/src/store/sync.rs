//! Making written bytes durable on the medium, not just in the operating system's cache.
//!
//! - Linux: `fdatasync` for a file's data (and the size needed to read it back), `fsync` for a
//!   directory's entries. sled 0.34's own flush is `sync_file_range`, which flushes neither
//!   the file's size nor the drive's write cache: it survives a crashed process, not a power
//!   loss.
//! - macOS: `fcntl(F_FULLFSYNC)`, which also asks the drive to empty its cache; plain `fsync`
//!   there does not. A file system that does not support it (some network ones) gets `fsync`.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;

/// Makes `file`'s written data durable.
pub fn sync_data(file: &File) -> io::Result<()> {
    full_sync(file, false)
}

/// Makes the entries of the directory open as `dir` (files created, renamed or removed in
/// it) durable.
pub fn sync_dir(dir: &impl AsFd) -> io::Result<()> {
    full_sync(dir, true)
}

#[cfg(target_os = "macos")]
fn full_sync(fd: &impl AsFd, _dir: bool) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    match fcntl(fd, FcntlArg::F_FULLFSYNC) {
        Ok(_) => Ok(()),
        Err(nix::errno::Errno::ENOTSUP | nix::errno::Errno::EINVAL) => Ok(nix::unistd::fsync(fd)?),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "macos"))]
fn full_sync(fd: &impl AsFd, dir: bool) -> io::Result<()> {
    if dir {
        Ok(nix::unistd::fsync(fd)?)
    } else {
        Ok(nix::unistd::fdatasync(fd)?)
    }
}
