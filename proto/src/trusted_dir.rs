//! Directories that hold root-only state (the agent's state directory, the ring's directory),
//! checked rather than trusted, and the files inside them opened relative to the checked
//! directory's descriptor.
//!
//! # The rule
//!
//! A directory is trusted when the path to it cannot be changed by anyone but root:
//!
//! - every directory from `/` down, and every symbolic link followed on the way, is owned by
//!   root or by the user the process runs as (the *trusted owners*);
//! - no directory on the way is writable by others or by its group, except a group of root
//!   itself (gid 0, and on macOS `daemon`, gid 1, whose only member is root: macOS ships
//!   `/var/run` as `root:daemon 0775`), and except *sticky* directories such as `/tmp`, where
//!   others may add entries but cannot rename or remove ours (the entry below must then
//!   itself be owned by a trusted owner, which the first rule already demands);
//! - the directory itself is writable by its owner alone, sticky or not, and is made 0700
//!   (when only its read or search bits are wider, they are taken away; when it is writable
//!   by anyone else it is refused, since someone else may already have planted files in it).
//!
//! Why: the agent writes its alert store, host key and control socket there, and the sensor
//! and agent map the ring there, as root. If a user could rename a directory on the path or
//! plant a symbolic link in it, the agent would write where that user chose (a root file
//! clobbered, a planted key used to sign alerts, a socket answered by someone else).
//!
//! The walk opens each component with `O_NOFOLLOW` relative to the previous one (a symbolic
//! link is read and its target walked under the same rule, at most [`MAX_LINKS`] of them), so
//! what is checked is what is used. Files inside a [`TrustedDir`] are opened relative to its
//! descriptor, with `O_NOFOLLOW`. POSIX ACLs show in the group bits of the mode on Linux;
//! macOS ACLs that grant others write access are not examined.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// Symbolic links followed in one walk before it is refused (Linux's own limit is 40).
pub const MAX_LINKS: usize = 32;

/// Why a private file in a trusted directory was not read ([`TrustedDir::read_private`]).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {op}: {reason}")]
pub struct ReadError {
    pub path: String,
    pub op: &'static str,
    pub reason: String,
}

/// Why a directory or a file in it is not used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The path can be changed by someone other than root; `reason` says which component
    /// and why.
    #[error("{path}: {reason}")]
    Untrusted { path: PathBuf, reason: String },
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl TrustError {
    fn io(path: &Path, op: &'static str, errno: Errno) -> TrustError {
        TrustError::Io {
            path: path.to_path_buf(),
            op,
            source: io::Error::from(errno),
        }
    }

    fn untrusted(path: &Path, reason: impl Into<String>) -> TrustError {
        TrustError::Untrusted {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// True when the directory does not exist (and was not to be created).
    pub fn is_not_found(&self) -> bool {
        matches!(self, TrustError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// What [`TrustedDir::open`] does with a missing directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Creates it and any missing parent, mode 0700.
    Create,
    /// Fails with a not-found error.
    Fail,
}

/// A checked directory, held open: everything in it is reached through its descriptor.
#[derive(Debug)]
pub struct TrustedDir {
    fd: OwnedFd,
    /// The path as configured, for messages.
    path: PathBuf,
    /// The same directory without symbolic links, as resolved by the walk: what components
    /// that open paths themselves (sled, `bind`) are given.
    real: PathBuf,
}

/// The owners a path may have: root, and the user this process runs as.
pub fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Groups whose write access does not make a directory on the path untrusted.
fn trusted_group(gid: u32) -> bool {
    gid == 0 || (cfg!(target_os = "macos") && gid == 1)
}

fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The permission bits (with setuid, setgid and sticky) of `st`.
// `st_mode` is u32 on Linux, u16 on macOS.
#[allow(clippy::useless_conversion)]
pub fn mode_bits(st: &FileStat) -> u32 {
    u32::from(st.st_mode) & 0o7777
}

/// (device, inode): what a name refers to, to tell whether it was replaced.
// `st_dev` and `st_ino` are i32 and u64 on macOS, u64 on Linux.
#[allow(clippy::unnecessary_cast)]
pub fn identity(st: &FileStat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Why a directory on the way (not the last one) is untrusted, if it is.
fn check_on_the_way(st: &FileStat) -> Option<String> {
    let mode = mode_bits(st);
    if !trusted_owner(st.st_uid) {
        return Some(format!(
            "is owned by uid {} (mode {mode:04o}): that user could replace what is below it",
            st.st_uid
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o002 != 0 && !sticky {
        return Some(format!(
            "is writable by every user (mode {mode:04o}, not sticky): anyone could replace what is below it"
        ));
    }
    if mode & 0o020 != 0 && !sticky && !trusted_group(st.st_gid) {
        return Some(format!(
            "is writable by group {} (mode {mode:04o}): its members could replace what is below it",
            st.st_gid
        ));
    }
    None
}

/// Why the directory itself is untrusted, if it is: stricter than on the way, since anyone
/// who can add an entry there can plant a file the agent then opens.
fn check_final(st: &FileStat) -> Option<String> {
    let mode = mode_bits(st);
    if !trusted_owner(st.st_uid) {
        return Some(format!(
            "is owned by uid {} (mode {mode:04o}); it must be owned by root",
            st.st_uid
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "is writable by its group or by others (mode {mode:04o}): someone else may already have \
             planted files in it; make it root-owned 0700 (or remove it and let it be created)"
        ));
    }
    None
}

impl TrustedDir {
    /// Walks `path` from `/`, checking every component as the module docs say, creating the
    /// missing ones (0700) when `missing` says so, and tightens the directory to 0700.
    pub fn open(path: &Path, missing: Missing) -> Result<TrustedDir, TrustError> {
        TrustedDir::walk(path, missing, true)
    }

    /// The same checks, leaving the directory's mode as it is: for a directory someone else
    /// provisions (an MDM-delivered key's), which only has to be safe, not private.
    pub fn open_as_is(path: &Path) -> Result<TrustedDir, TrustError> {
        TrustedDir::walk(path, Missing::Fail, false)
    }

    fn walk(path: &Path, missing: Missing, tighten: bool) -> Result<TrustedDir, TrustError> {
        if !path.is_absolute() {
            return Err(TrustError::untrusted(
                path,
                "is not an absolute path (it would depend on the working directory)",
            ));
        }
        let root = nix::fcntl::open(
            "/",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| TrustError::io(Path::new("/"), "open", e))?;
        let root_st =
            nix::sys::stat::fstat(&root).map_err(|e| TrustError::io(Path::new("/"), "fstat", e))?;
        if let Some(why) = check_on_the_way(&root_st) {
            return Err(TrustError::untrusted(path, format!("/ {why}")));
        }
        // The resolved directories, `/` first; `..` pops.
        let mut stack: Vec<(OwnedFd, PathBuf)> = vec![(root, PathBuf::from("/"))];
        let mut queue: VecDeque<OsString> = components(path);
        let mut links = 0usize;
        while let Some(name) = queue.pop_front() {
            if name == "/" {
                stack.truncate(1);
                continue;
            }
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let (dir, dir_path) = stack.last().expect("the stack always holds /");
            let here = dir_path.join(&name);
            let st = match stat_at(dir, &name) {
                Ok(Some(st)) => st,
                Ok(None) if missing == Missing::Create => {
                    make_dir(dir, name.as_os_str(), &here)?;
                    stat_at(dir, &name)
                        .map_err(|e| TrustError::io(&here, "stat", e))?
                        .ok_or_else(|| TrustError::io(&here, "stat", Errno::ENOENT))?
                }
                Ok(None) => return Err(TrustError::io(&here, "open", Errno::ENOENT)),
                Err(e) => return Err(TrustError::io(&here, "stat", e)),
            };
            match file_type(&st) {
                SFlag::S_IFLNK => {
                    if !trusted_owner(st.st_uid) {
                        return Err(TrustError::untrusted(
                            path,
                            format!(
                                "{} is a symbolic link owned by uid {}: that user chooses where it points",
                                here.display(),
                                st.st_uid
                            ),
                        ));
                    }
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(TrustError::untrusted(
                            path,
                            format!("more than {MAX_LINKS} symbolic links on the way"),
                        ));
                    }
                    let target = nix::fcntl::readlinkat(dir, name.as_os_str())
                        .map_err(|e| TrustError::io(&here, "read link", e))?;
                    let mut front = components(Path::new(&target));
                    if Path::new(&target).is_absolute() {
                        front.push_front(OsString::from("/"));
                    }
                    while let Some(c) = front.pop_back() {
                        queue.push_front(c);
                    }
                }
                SFlag::S_IFDIR => {
                    let fd = nix::fcntl::openat(
                        dir,
                        name.as_os_str(),
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| TrustError::io(&here, "open", e))?;
                    let opened = nix::sys::stat::fstat(&fd)
                        .map_err(|e| TrustError::io(&here, "fstat", e))?;
                    if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino) {
                        return Err(TrustError::untrusted(
                            path,
                            format!("{} changed while it was being checked", here.display()),
                        ));
                    }
                    // The last directory gets the stricter check below.
                    if !queue.is_empty()
                        && let Some(why) = check_on_the_way(&opened)
                    {
                        return Err(TrustError::untrusted(
                            path,
                            format!("{} {why}", here.display()),
                        ));
                    }
                    stack.push((fd, here));
                }
                _ => {
                    return Err(TrustError::untrusted(
                        path,
                        format!("{} is not a directory", here.display()),
                    ));
                }
            }
        }
        let (fd, real) = stack.pop().expect("the stack always holds /");
        let st = nix::sys::stat::fstat(&fd).map_err(|e| TrustError::io(&real, "fstat", e))?;
        if let Some(why) = check_final(&st) {
            return Err(TrustError::untrusted(
                path,
                format!("{} {why}", real.display()),
            ));
        }
        let dir = TrustedDir {
            fd,
            path: path.to_path_buf(),
            real,
        };
        if tighten {
            dir.tighten(&st)?;
        }
        Ok(dir)
    }

    /// Takes away group and other read and search bits (write bits were refused already).
    fn tighten(&self, st: &FileStat) -> Result<(), TrustError> {
        let mode = mode_bits(st);
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %self.path.display(),
                mode = format!("{mode:04o}"),
                "directory readable by others; tightening it to 0700"
            );
            nix::sys::stat::fchmod(&self.fd, Mode::from_bits_truncate(0o700))
                .map_err(|e| TrustError::io(&self.path, "chmod 0700", e))?;
        }
        Ok(())
    }

    /// The directory as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory with every symbolic link resolved by the walk: give this to code that
    /// opens paths itself. Nobody but root can change any directory on it.
    pub fn real_path(&self) -> &Path {
        &self.real
    }

    /// `path()/name`, for messages.
    pub fn display_name(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `name` (one component) with `flags | O_NOFOLLOW | O_CLOEXEC`; a symbolic link
    /// there fails with `ELOOP`. `mode` applies when `O_CREAT` creates the file.
    pub fn open_file(&self, name: &str, flags: OFlag, mode: u32) -> io::Result<File> {
        check_name(name)?;
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(mode as libc::mode_t),
        )?;
        Ok(File::from(fd))
    }

    /// The whole of `name`, a private file (see [`check_private_file`]) of at most `max`
    /// bytes, with its `fstat`; `None` when it does not exist. Opened with `O_NOFOLLOW` (a
    /// symbolic link is refused, never followed) and `O_NONBLOCK` (a planted FIFO cannot
    /// hang the reader before the check refuses it).
    pub fn read_private(
        &self,
        name: &str,
        max: u64,
    ) -> Result<Option<(Vec<u8>, FileStat)>, ReadError> {
        use std::io::Read;
        let fail = |op: &'static str, reason: String| ReadError {
            path: self.display_name(name).display().to_string(),
            op,
            reason,
        };
        let file = match self.open_file(name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(fail(
                    "open",
                    "is a symbolic link; refusing to follow it".into(),
                ));
            }
            Err(e) => return Err(fail("open", e.to_string())),
        };
        let st = nix::sys::stat::fstat(&file).map_err(|e| fail("stat", e.to_string()))?;
        if let Some(reason) = check_private_file(&st, true) {
            return Err(fail("check", reason));
        }
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail("read", e.to_string()))?;
        if bytes.len() as u64 > max {
            return Err(fail("check", format!("is over {max} bytes")));
        }
        Ok(Some((bytes, st)))
    }

    /// `lstat` of `name`; `None` when it does not exist.
    pub fn stat(&self, name: &str) -> io::Result<Option<FileStat>> {
        check_name(name)?;
        Ok(stat_at(&self.fd, OsStr::new(name))?)
    }

    /// Opens (or creates, 0700) the subdirectory `name`, checked like the directory itself.
    pub fn subdir(&self, name: &str, missing: Missing) -> Result<TrustedDir, TrustError> {
        let shown = self.display_name(name);
        check_name(name).map_err(|e| TrustError::Io {
            path: shown.clone(),
            op: "open",
            source: e,
        })?;
        let st = match stat_at(&self.fd, OsStr::new(name)) {
            Ok(Some(st)) => st,
            Ok(None) if missing == Missing::Create => {
                make_dir(&self.fd, OsStr::new(name), &shown)?;
                stat_at(&self.fd, OsStr::new(name))
                    .map_err(|e| TrustError::io(&shown, "stat", e))?
                    .ok_or_else(|| TrustError::io(&shown, "stat", Errno::ENOENT))?
            }
            Ok(None) => return Err(TrustError::io(&shown, "open", Errno::ENOENT)),
            Err(e) => return Err(TrustError::io(&shown, "stat", e)),
        };
        if file_type(&st) != SFlag::S_IFDIR {
            return Err(TrustError::untrusted(
                &shown,
                format!("is not a directory ({})", describe_type(&st)),
            ));
        }
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| TrustError::io(&shown, "open", e))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| TrustError::io(&shown, "fstat", e))?;
        if let Some(why) = check_final(&st) {
            return Err(TrustError::untrusted(&shown, why));
        }
        let dir = TrustedDir {
            fd,
            real: self.real.join(name),
            path: shown,
        };
        dir.tighten(&st)?;
        Ok(dir)
    }

    /// Opens (or creates, 0700) the subdirectory `name` of a directory others cannot
    /// reach (this one is 0700, like every directory [`TrustedDir::open`] hands out): it must
    /// be a directory owned by a trusted owner, and wider modes, harmless behind this one,
    /// are taken back to 0700 rather than refused. For directories a library creates inside
    /// ours with its own modes (sled's `blobs`).
    pub fn private_subdir(&self, name: &str, missing: Missing) -> Result<TrustedDir, TrustError> {
        let shown = self.display_name(name);
        check_name(name).map_err(|e| TrustError::Io {
            path: shown.clone(),
            op: "open",
            source: e,
        })?;
        if missing == Missing::Create
            && stat_at(&self.fd, OsStr::new(name)).ok().flatten().is_none()
        {
            make_dir(&self.fd, OsStr::new(name), &shown)?;
        }
        let fd = nix::fcntl::openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| TrustError::io(&shown, "open", e))?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| TrustError::io(&shown, "fstat", e))?;
        if !trusted_owner(st.st_uid) {
            return Err(TrustError::untrusted(
                &shown,
                format!("is owned by uid {}, not root", st.st_uid),
            ));
        }
        if mode_bits(&st) & 0o077 != 0 {
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700))
                .map_err(|e| TrustError::io(&shown, "chmod 0700", e))?;
        }
        Ok(TrustedDir {
            fd,
            real: self.real.join(name),
            path: shown,
        })
    }

    /// Renames `from` to `to`, both in this directory.
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        Ok(nix::fcntl::renameat(&self.fd, from, &self.fd, to)?)
    }

    /// Gives the file `from` the second name `to`, both in this directory; fails with
    /// `AlreadyExists` when `to` exists (never replacing it, unlike [`Self::rename`]).
    pub fn link(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        Ok(nix::unistd::linkat(
            &self.fd,
            from,
            &self.fd,
            to,
            nix::fcntl::AtFlags::empty(),
        )?)
    }

    /// Removes the file (not directory) `name`; a missing one is not an error.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match nix::unistd::unlinkat(&self.fd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes this directory's entries durable (`fsync` of the directory): after a file in it
    /// was created, renamed or removed.
    pub fn sync(&self) -> io::Result<()> {
        Ok(nix::unistd::fsync(&self.fd)?)
    }

    /// The names in this directory (without `.` and `..`).
    pub fn entries(&self) -> io::Result<Vec<OsString>> {
        let dup = self.fd.try_clone()?;
        let mut dir = nix::dir::Dir::from_fd(dup)?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name != "." && name != ".." {
                out.push(name.to_os_string());
            }
        }
        Ok(out)
    }
}

/// Why a file inside a trusted directory must not be used, if it must not: it is not a
/// regular file, belongs to someone else, is readable or writable by group or others (when
/// `private`), or has another name somewhere (a hard link made while it was exposed).
pub fn check_private_file(st: &FileStat, private: bool) -> Option<String> {
    let mode = mode_bits(st);
    if file_type(st) != SFlag::S_IFREG {
        return Some(format!("is not a regular file ({})", describe_type(st)));
    }
    if !trusted_owner(st.st_uid) {
        return Some(format!(
            "is owned by uid {}, not root (mode {mode:04o})",
            st.st_uid
        ));
    }
    if private && mode & 0o077 != 0 {
        return Some(format!(
            "has mode {mode:04o}; it must not be readable or writable by group or others"
        ));
    }
    if st.st_nlink != 1 {
        return Some(format!(
            "has {} names (hard links); it must have exactly one",
            st.st_nlink
        ));
    }
    None
}

/// "symbolic link", "directory", ... for messages.
pub fn describe_type(st: &FileStat) -> &'static str {
    match file_type(st) {
        SFlag::S_IFLNK => "a symbolic link",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        _ => "an unknown file type",
    }
}

/// Creates the directory `name` (0700) in `parent` and makes its entry durable (`fsync` of
/// the parent): a directory the agent creates and then fills must not vanish in a power
/// loss while what it holds was made durable. One that exists already is fine.
fn make_dir(parent: &impl AsFd, name: &OsStr, shown: &Path) -> Result<(), TrustError> {
    match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
        Ok(()) => nix::unistd::fsync(parent)
            .map_err(|e| TrustError::io(shown, "sync the new directory's parent", e)),
        Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(TrustError::io(shown, "create directory", e)),
    }
}

fn stat_at(dir: &impl AsFd, name: &OsStr) -> Result<Option<FileStat>, Errno> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    Ok(())
}

/// The path's components as the walk consumes them: names, `..`, and `/` for the root.
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::RootDir => None,
            Component::CurDir => None,
            Component::ParentDir => Some(OsString::from("..")),
            Component::Normal(n) => Some(n.to_os_string()),
            Component::Prefix(p) => Some(p.as_os_str().to_os_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        t
    }

    #[test]
    fn creates_missing_directories_0700_and_opens_files_inside() {
        let t = tmp();
        let p = t.path().join("a/b/state");
        let d = TrustedDir::open(&p, Missing::Create).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(d.real_path(), std::fs::canonicalize(&p).unwrap());
        let f = d
            .open_file("x", OFlag::O_CREAT | OFlag::O_RDWR | OFlag::O_EXCL, 0o600)
            .unwrap();
        drop(f);
        assert!(d.stat("x").unwrap().is_some());
        assert!(d.stat("y").unwrap().is_none());
        assert!(d.open_file("../x", OFlag::O_RDONLY, 0).is_err());
    }

    #[test]
    fn missing_without_create_is_not_found() {
        let t = tmp();
        let err = TrustedDir::open(&t.path().join("none"), Missing::Fail).unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn a_group_or_world_writable_directory_is_refused_naming_it() {
        let t = tmp();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustedDir::open(&open.join("state"), Missing::Create)
            .unwrap_err()
            .to_string();
        assert!(err.contains("writable by every user"), "{err}");
        assert!(err.contains(&open.display().to_string()), "{err}");
        // Sticky is fine on the way ...
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        TrustedDir::open(&open.join("state"), Missing::Create).unwrap();
        // ... but not for the directory itself.
        let err = TrustedDir::open(&open, Missing::Fail)
            .unwrap_err()
            .to_string();
        assert!(err.contains("writable by its group or by others"), "{err}");
    }

    #[test]
    fn a_readable_directory_is_tightened_and_a_symlinked_one_resolved() {
        let t = tmp();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        let d = TrustedDir::open(&link, Missing::Fail).unwrap();
        assert_eq!(d.real_path(), std::fs::canonicalize(&real).unwrap());
        assert_eq!(
            std::fs::metadata(&real).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn relative_paths_and_files_on_the_way_are_refused() {
        assert!(TrustedDir::open(Path::new("state"), Missing::Create).is_err());
        let t = tmp();
        std::fs::write(t.path().join("f"), b"").unwrap();
        let err = TrustedDir::open(&t.path().join("f/state"), Missing::Create)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a directory"), "{err}");
    }

    #[test]
    fn private_file_checks() {
        let t = tmp();
        let d = TrustedDir::open(t.path(), Missing::Fail).unwrap();
        d.open_file("k", OFlag::O_CREAT | OFlag::O_WRONLY, 0o600)
            .unwrap();
        let st = d.stat("k").unwrap().unwrap();
        assert_eq!(check_private_file(&st, true), None);
        std::fs::hard_link(t.path().join("k"), t.path().join("k2")).unwrap();
        let st = d.stat("k").unwrap().unwrap();
        assert!(check_private_file(&st, true).unwrap().contains("2 names"));
        std::os::unix::fs::symlink("k", t.path().join("l")).unwrap();
        let st = d.stat("l").unwrap().unwrap();
        assert!(
            check_private_file(&st, true)
                .unwrap()
                .contains("symbolic link")
        );
        assert!(d.open_file("l", OFlag::O_RDONLY, 0).is_err());
    }
}
