//! A file system that forgets what was not made durable: the disk of the crash-state tests
//! (`tests/tests/crash_states.rs`).
//!
//! Mounted with FUSE (the `fuser` crate), it keeps every file twice in memory: as programs
//! see it, and as a power loss would leave it, which is only what `fsync`/`fdatasync` of that
//! file made durable. A directory's entries likewise become durable only with `fsync` of the
//! directory (the strict POSIX reading: ext4 often does more, a program must not count on
//! it). Everything done since the last sync is kept as an ordered list of pending operations,
//! so that a crash state is built the way ALICE and LazyFS build them, by choosing which of
//! those operations reached the medium ([`Choice`]): none, all, a random subset per file
//! (the last one possibly torn), or a random prefix per directory. A same-directory rename
//! stays atomic; metadata (mode, owner) is taken as durable at once.
//!
//! At a chosen operation count the disk loses power ([`Controller::cut_power_at`]): that
//! request and every later one fail with `EIO`, as from a disk that went away, so nothing
//! the program does after the cut can reach the crash state.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// No caching in the kernel: every lookup and attribute comes from here.
const TTL: Duration = Duration::ZERO;

/// One write since the file was last synced.
#[derive(Debug, Clone)]
enum Write {
    Data { off: u64, bytes: Vec<u8> },
    SetLen(u64),
}

/// One change of a directory's entries since it was last synced.
#[derive(Debug, Clone)]
enum DirOp {
    Link(OsString, u64),
    Unlink(OsString),
    /// Within one directory: atomic, as `rename(2)` is.
    Rename(OsString, OsString, u64),
}

#[derive(Debug)]
enum Body {
    File {
        data: Vec<u8>,
        durable: Vec<u8>,
        pending: Vec<Write>,
    },
    Dir {
        entries: BTreeMap<OsString, u64>,
        durable: BTreeMap<OsString, u64>,
        pending: Vec<DirOp>,
    },
    Symlink(PathBuf),
    /// Sockets and FIFOs: no content, not kept in crash states.
    Special(FileType),
}

#[derive(Debug)]
struct Node {
    perm: u16,
    uid: u32,
    gid: u32,
    body: Body,
}

#[derive(Debug)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    ops: u64,
    syncs: u64,
    cut_at: Option<u64>,
    cut: bool,
}

/// Which of the operations pending at the cut a crash state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Only what was synced (LazyFS's "clear the cache").
    Durable,
    /// Everything written (what a killed process, not a power loss, leaves).
    Everything,
    /// Per file, each pending write kept with probability 1/2, in order, and the last one
    /// kept torn at a random length a third of the time; per directory, a random prefix of
    /// its pending changes.
    Random(u64),
    /// Everything, but each file's last pending write torn in half.
    TornTail,
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Choice::Durable => write!(f, "durable only"),
            Choice::Everything => write!(f, "everything written"),
            Choice::Random(seed) => write!(f, "random subset (seed {seed})"),
            Choice::TornTail => write!(f, "last writes torn"),
        }
    }
}

/// A small deterministic generator (splitmix64), so a crash state can be rebuilt from its
/// seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

/// The file system; give it to [`mount`].
pub struct CrashFs {
    state: Arc<Mutex<State>>,
}

/// The test's handle on a mounted [`CrashFs`].
#[derive(Clone)]
pub struct Controller {
    state: Arc<Mutex<State>>,
}

/// A mounted [`CrashFs`], unmounted at drop.
pub struct Mounted {
    pub controller: Controller,
    _session: fuser::BackgroundSession,
}

/// Mounts a new, empty [`CrashFs`] at `at` (an existing empty directory; root only).
pub fn mount(at: &Path) -> io::Result<Mounted> {
    let mut nodes = HashMap::new();
    nodes.insert(
        INodeNo::ROOT.0,
        Node {
            perm: 0o755,
            uid: 0,
            gid: 0,
            body: Body::Dir {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending: Vec::new(),
            },
        },
    );
    let state = Arc::new(Mutex::new(State {
        nodes,
        next_ino: 2,
        ops: 0,
        syncs: 0,
        cut_at: None,
        cut: false,
    }));
    let fs = CrashFs {
        state: Arc::clone(&state),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("nightjar-crashfs".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    let session = fuser::spawn_mount(fs, at, &config)?;
    Ok(Mounted {
        controller: Controller { state },
        _session: session,
    })
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Controller {
    /// Mutating operations seen so far (writes, creations, removals, renames, syncs).
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }

    /// `fsync`/`fdatasync` and directory syncs seen so far.
    pub fn syncs(&self) -> u64 {
        lock(&self.state).syncs
    }

    /// The disk loses power when the `op`-th mutating operation arrives (counting from 1).
    pub fn cut_power_at(&self, op: u64) {
        lock(&self.state).cut_at = Some(op);
    }

    /// Whether the power was cut.
    pub fn is_cut(&self) -> bool {
        lock(&self.state).cut
    }

    /// The disk's contents as `choice` says a power loss at this moment could leave them.
    pub fn crash_state(&self, choice: Choice) -> Image {
        let st = lock(&self.state);
        let mut rng = Rng(match choice {
            Choice::Random(seed) => seed,
            _ => 0,
        });
        Image {
            root: build(&st, INodeNo::ROOT.0, choice, &mut rng),
            choice,
        }
    }
}

/// A crash state, to be written out as a real directory tree.
#[derive(Debug)]
pub struct Image {
    root: ImageNode,
    pub choice: Choice,
}

#[derive(Debug)]
enum ImageNode {
    Dir {
        perm: u16,
        uid: u32,
        gid: u32,
        entries: Vec<(OsString, ImageNode)>,
    },
    File {
        perm: u16,
        uid: u32,
        gid: u32,
        data: Vec<u8>,
    },
    Symlink(PathBuf),
    Skipped,
}

impl Image {
    /// Writes the crash state's root directory out as `at` (which must not exist), with the
    /// same modes and owners.
    pub fn materialize(&self, at: &Path) -> io::Result<()> {
        write_node(&self.root, at)
    }

    /// (files, bytes) in the image.
    pub fn size(&self) -> (u64, u64) {
        fn walk(n: &ImageNode, acc: &mut (u64, u64)) {
            match n {
                ImageNode::Dir { entries, .. } => entries.iter().for_each(|(_, c)| walk(c, acc)),
                ImageNode::File { data, .. } => {
                    acc.0 += 1;
                    acc.1 += data.len() as u64;
                }
                _ => {}
            }
        }
        let mut acc = (0, 0);
        walk(&self.root, &mut acc);
        acc
    }
}

fn write_node(n: &ImageNode, at: &Path) -> io::Result<()> {
    match n {
        ImageNode::Dir {
            perm,
            uid,
            gid,
            entries,
        } => {
            std::fs::create_dir(at)?;
            for (name, child) in entries {
                write_node(child, &at.join(name))?;
            }
            std::os::unix::fs::chown(at, Some(*uid), Some(*gid))?;
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(u32::from(*perm)))
        }
        ImageNode::File {
            perm,
            uid,
            gid,
            data,
        } => {
            std::fs::write(at, data)?;
            std::os::unix::fs::chown(at, Some(*uid), Some(*gid))?;
            std::fs::set_permissions(at, std::fs::Permissions::from_mode(u32::from(*perm)))
        }
        ImageNode::Symlink(target) => symlink(target, at),
        ImageNode::Skipped => Ok(()),
    }
}

fn apply(base: &[u8], writes: &[Write], keep: &[bool], torn_last: Option<u64>) -> Vec<u8> {
    let mut data = base.to_vec();
    let last_kept = keep.iter().rposition(|&k| k);
    for (i, w) in writes.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        match w {
            Write::SetLen(len) => data.resize(*len as usize, 0),
            Write::Data { off, bytes } => {
                let mut bytes = &bytes[..];
                if Some(i) == last_kept
                    && let Some(cut) = torn_last
                {
                    bytes = &bytes[..(cut as usize).min(bytes.len())];
                }
                let end = *off as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*off as usize..end].copy_from_slice(bytes);
            }
        }
    }
    data
}

fn build(st: &State, ino: u64, choice: Choice, rng: &mut Rng) -> ImageNode {
    let Some(node) = st.nodes.get(&ino) else {
        return ImageNode::Skipped;
    };
    match &node.body {
        Body::File {
            durable, pending, ..
        } => {
            let n = pending.len();
            let (keep, torn) = match choice {
                Choice::Durable => (vec![false; n], None),
                Choice::Everything => (vec![true; n], None),
                Choice::TornTail => {
                    let torn = pending.iter().rev().find_map(|w| match w {
                        Write::Data { bytes, .. } => Some(bytes.len() as u64 / 2),
                        Write::SetLen(_) => None,
                    });
                    (vec![true; n], torn)
                }
                Choice::Random(_) => {
                    let keep: Vec<bool> = (0..n).map(|_| rng.below(2) == 1).collect();
                    let torn = (rng.below(3) == 0).then(|| rng.below(8192));
                    (keep, torn)
                }
            };
            ImageNode::File {
                perm: node.perm,
                uid: node.uid,
                gid: node.gid,
                data: apply(durable, pending, &keep, torn),
            }
        }
        Body::Dir {
            durable, pending, ..
        } => {
            let upto = match choice {
                Choice::Durable => 0,
                Choice::Everything | Choice::TornTail => pending.len(),
                Choice::Random(_) => rng.below(pending.len() as u64 + 1) as usize,
            };
            let mut entries = durable.clone();
            for op in &pending[..upto] {
                match op {
                    DirOp::Link(name, ino) => {
                        entries.insert(name.clone(), *ino);
                    }
                    DirOp::Unlink(name) => {
                        entries.remove(name);
                    }
                    DirOp::Rename(from, to, ino) => {
                        entries.remove(from);
                        entries.insert(to.clone(), *ino);
                    }
                }
            }
            ImageNode::Dir {
                perm: node.perm,
                uid: node.uid,
                gid: node.gid,
                entries: entries
                    .into_iter()
                    .map(|(name, child)| (name, build(st, child, choice, rng)))
                    .collect(),
            }
        }
        Body::Symlink(target) => ImageNode::Symlink(target.clone()),
        Body::Special(_) => ImageNode::Skipped,
    }
}

impl State {
    /// Counts a mutating operation; false = the power is (now) cut: fail it.
    fn mutate(&mut self) -> bool {
        if self.cut {
            return false;
        }
        self.ops += 1;
        if self.cut_at.is_some_and(|at| self.ops >= at) {
            self.cut = true;
            return false;
        }
        true
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let n = self.nodes.get(&ino)?;
        let (kind, size, nlink) = match &n.body {
            Body::File { data, .. } => (FileType::RegularFile, data.len() as u64, 1),
            Body::Dir { entries, .. } => {
                let subdirs = entries
                    .values()
                    .filter(|c| {
                        self.nodes
                            .get(c)
                            .is_some_and(|c| matches!(c.body, Body::Dir { .. }))
                    })
                    .count() as u32;
                (FileType::Directory, 4096, 2 + subdirs)
            }
            Body::Symlink(t) => (FileType::Symlink, t.as_os_str().len() as u64, 1),
            Body::Special(kind) => (*kind, 0, 1),
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind,
            perm: n.perm,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn dir_mut(
        &mut self,
        ino: u64,
    ) -> Result<(&mut BTreeMap<OsString, u64>, &mut Vec<DirOp>), Errno> {
        match self.nodes.get_mut(&ino).map(|n| &mut n.body) {
            Some(Body::Dir {
                entries, pending, ..
            }) => Ok((entries, pending)),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        match self.nodes.get(&parent).map(|n| &n.body) {
            Some(Body::Dir { entries, .. }) => entries.get(name).copied().ok_or(Errno::ENOENT),
            Some(_) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// Adds a new node named `name` in `parent`; returns its inode.
    fn add(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<u64, Errno> {
        if self.child(parent, name).is_ok() {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        let (entries, pending) = self.dir_mut(parent)?;
        entries.insert(name.to_os_string(), ino);
        pending.push(DirOp::Link(name.to_os_string(), ino));
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.child(parent, name)?;
        let is_dir = matches!(
            self.nodes.get(&ino).map(|n| &n.body),
            Some(Body::Dir { .. })
        );
        if want_dir != is_dir {
            return Err(if want_dir {
                Errno::ENOTDIR
            } else {
                Errno::EISDIR
            });
        }
        if let Some(Body::Dir { entries, .. }) = self.nodes.get(&ino).map(|n| &n.body)
            && !entries.is_empty()
        {
            return Err(Errno::ENOTEMPTY);
        }
        let (entries, pending) = self.dir_mut(parent)?;
        entries.remove(name);
        pending.push(DirOp::Unlink(name.to_os_string()));
        Ok(())
    }
}

fn new_node(perm: u32, req: &Request, body: Body) -> Node {
    Node {
        perm: (perm & 0o7777) as u16,
        uid: req.uid(),
        gid: req.gid(),
        body,
    }
}

fn empty_file() -> Body {
    Body::File {
        data: Vec::new(),
        durable: Vec::new(),
        pending: Vec::new(),
    }
}

fn empty_dir() -> Body {
    Body::Dir {
        entries: BTreeMap::new(),
        durable: BTreeMap::new(),
        pending: Vec::new(),
    }
}

impl CrashFs {
    fn st(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn reply_entry(st: &State, ino: u64, reply: ReplyEntry) {
        match st.attr(ino) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }
}

impl Filesystem for CrashFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = self.st();
        if st.cut {
            return reply.error(Errno::EIO);
        }
        match st.child(parent.0, name) {
            Ok(ino) => Self::reply_entry(&st, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let st = self.st();
        if st.cut {
            return reply.error(Errno::EIO);
        }
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        let Some(node) = st.nodes.get_mut(&ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(m) = mode {
            node.perm = (m & 0o7777) as u16;
        }
        if let Some(u) = uid {
            node.uid = u;
        }
        if let Some(g) = gid {
            node.gid = g;
        }
        if let Some(len) = size {
            match &mut node.body {
                Body::File { data, pending, .. } => {
                    data.resize(len as usize, 0);
                    pending.push(Write::SetLen(len));
                }
                _ => return reply.error(Errno::EISDIR),
            }
        }
        match st.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let st = self.st();
        match st.nodes.get(&ino.0).map(|n| &n.body) {
            Some(Body::Symlink(t)) => reply.data(t.as_os_str().as_encoded_bytes()),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        let body = match mode & libc::S_IFMT {
            libc::S_IFREG => empty_file(),
            libc::S_IFSOCK => Body::Special(FileType::Socket),
            libc::S_IFIFO => Body::Special(FileType::NamedPipe),
            _ => return reply.error(Errno::EPERM),
        };
        match st.add(parent.0, name, new_node(mode & !umask, req, body)) {
            Ok(ino) => Self::reply_entry(&st, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        match st.add(parent.0, name, new_node(mode & !umask, req, empty_dir())) {
            Ok(ino) => Self::reply_entry(&st, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        match st.remove(parent.0, name, false) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        match st.remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        let body = Body::Symlink(target.to_path_buf());
        match st.add(parent.0, link_name, new_node(0o777, req, body)) {
            Ok(ino) => Self::reply_entry(&st, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        let ino = match st.child(parent.0, name) {
            Ok(i) => i,
            Err(e) => return reply.error(e),
        };
        if let Ok(existing) = st.child(newparent.0, newname)
            && let Some(Body::Dir { entries, .. }) = st.nodes.get(&existing).map(|n| &n.body)
            && !entries.is_empty()
        {
            return reply.error(Errno::ENOTEMPTY);
        }
        if parent == newparent {
            let (entries, pending) = match st.dir_mut(parent.0) {
                Ok(d) => d,
                Err(e) => return reply.error(e),
            };
            entries.remove(name);
            entries.insert(newname.to_os_string(), ino);
            pending.push(DirOp::Rename(
                name.to_os_string(),
                newname.to_os_string(),
                ino,
            ));
        } else {
            {
                let (entries, pending) = match st.dir_mut(parent.0) {
                    Ok(d) => d,
                    Err(e) => return reply.error(e),
                };
                entries.remove(name);
                pending.push(DirOp::Unlink(name.to_os_string()));
            }
            let (entries, pending) = match st.dir_mut(newparent.0) {
                Ok(d) => d,
                Err(e) => return reply.error(e),
            };
            entries.insert(newname.to_os_string(), ino);
            pending.push(DirOp::Link(newname.to_os_string(), ino));
        }
        reply.ok();
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        let r = st.dir_mut(newparent.0).map(|(entries, pending)| {
            entries.insert(newname.to_os_string(), ino.0);
            pending.push(DirOp::Link(newname.to_os_string(), ino.0));
        });
        match r {
            Ok(()) => Self::reply_entry(&st, ino.0, reply),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let st = self.st();
        if st.cut {
            return reply.error(Errno::EIO);
        }
        if st.nodes.contains_key(&ino.0) {
            reply.opened(FileHandle(0), FopenFlags::empty());
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.st();
        if st.cut {
            return reply.error(Errno::EIO);
        }
        match st.nodes.get(&ino.0).map(|n| &n.body) {
            Some(Body::File { data, .. }) => {
                let start = (offset as usize).min(data.len());
                let end = (start + size as usize).min(data.len());
                reply.data(&data[start..end]);
            }
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        bytes: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        match st.nodes.get_mut(&ino.0).map(|n| &mut n.body) {
            Some(Body::File { data, pending, .. }) => {
                let end = offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[offset as usize..end].copy_from_slice(bytes);
                pending.push(Write::Data {
                    off: offset,
                    bytes: bytes.to_vec(),
                });
                reply.written(bytes.len() as u32);
            }
            Some(_) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        st.syncs += 1;
        if let Some(Body::File {
            data,
            durable,
            pending,
        }) = st.nodes.get_mut(&ino.0).map(|n| &mut n.body)
        {
            durable.clone_from(data);
            pending.clear();
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.st();
        if st.cut {
            return reply.error(Errno::EIO);
        }
        let Some(Body::Dir { entries, .. }) = st.nodes.get(&ino.0).map(|n| &n.body) else {
            return reply.error(Errno::ENOTDIR);
        };
        let mut all: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for (name, child) in entries {
            let kind = st.attr(*child).map_or(FileType::RegularFile, |a| a.kind);
            all.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in all.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        st.syncs += 1;
        if let Some(Body::Dir {
            entries,
            durable,
            pending,
        }) = st.nodes.get_mut(&ino.0).map(|n| &mut n.body)
        {
            durable.clone_from(entries);
            pending.clear();
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 24, 1 << 23, 1 << 23, 1 << 20, 1 << 19, 4096, 255, 4096);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.st();
        if !st.mutate() {
            return reply.error(Errno::EIO);
        }
        match st.add(parent.0, name, new_node(mode & !umask, req, empty_file())) {
            Ok(ino) => match st.attr(ino) {
                Some(a) => {
                    reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty())
                }
                None => reply.error(Errno::EIO),
            },
            Err(e) => reply.error(e),
        }
    }
}
