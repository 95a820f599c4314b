//! Locating the built binaries and the shared test data, temporary state directories, and
//! child processes that cannot outlive a failed test.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests crate sits inside the workspace")
        .to_path_buf()
}

/// `shared/` beside the repository (`$NIGHTJAR_SHARED` overrides).
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("NIGHTJAR_SHARED") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("../shared"),
    }
}

/// A file under `shared/`, checked to exist so a missing copy fails loudly.
pub fn shared(rel: &str) -> PathBuf {
    let p = shared_dir().join(rel);
    assert!(p.exists(), "shared test data missing: {}", p.display());
    p
}

/// The directory the running executable's profile builds into (`target/debug`): test
/// binaries live in `target/<profile>/deps`, this crate's own binaries (the load driver) in
/// `target/<profile>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("executable path");
    let dir = exe.parent().expect("executable lives in a directory");
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary (`nightjar-agent`, `nightjar-sensor`, ...). `scripts/test`
/// builds them before the tests; a missing binary is a failure with a hint, never a skip.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.exists(),
        "{} not built; run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// True when running under CI (`CI=true`): a missing capability there is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// True when this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A private state directory (0700) with a config file, removed at drop.
pub struct TempState {
    dir: tempfile::TempDir,
}

impl TempState {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nightjar-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod temp dir");
        TempState { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path().join("state")
    }

    pub fn ring_path(&self) -> PathBuf {
        self.path().join("run/events.ring")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("nightjar.toml")
    }

    /// Writes a config with this directory's state and ring paths, a fixed host id, and
    /// `extra` appended (more TOML: `[rules]`, `[upload]` tables).
    pub fn write_config(&self, extra: &str) -> PathBuf {
        let body = format!(
            "state_dir = {:?}\nring_path = {:?}\nring_capacity_bytes = 4194304\nhost_id = \"test-host-0001\"\n{extra}",
            self.state_dir().display().to_string(),
            self.ring_path().display().to_string(),
        );
        let path = self.config_path();
        let mut f = std::fs::File::create(&path).expect("config file");
        f.write_all(body.as_bytes()).expect("write config");
        path
    }
}

impl Default for TempState {
    fn default() -> Self {
        Self::new()
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// nothing running.
pub struct ChildGuard {
    pub child: Child,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        ChildGuard { child }
    }

    /// [`Self::spawn`] with the command's own stdin (e.g. a pipe the caller writes).
    pub fn spawn_with_stdin(cmd: &mut Command) -> Self {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        ChildGuard { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid; the child is not reaped until drop/wait.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the child to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs a command to completion and returns its output (stdout/stderr captured).
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A local user without privileges, created for one test (`useradd`) and removed at drop:
/// the attacker of the hardening tests. Needs root; under CI a missing capability fails.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// `None` when not root outside CI (the caller then says the test did not run).
    pub fn create() -> Option<TestUser> {
        if !is_root() {
            assert!(!in_ci(), "CI runs as root: the attack tests must run");
            eprintln!("this test needs root to create an unprivileged user; not run");
            return None;
        }
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "njx{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let out = run(Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
            ])
            .arg(&name));
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id = |flag: &str| -> u32 {
            let out = run(Command::new("id").arg(flag).arg(&name));
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("id {flag} {name}"))
        };
        let (uid, gid) = (id("-u"), id("-g"));
        assert_ne!(uid, 0);
        LIVE_USERS.fetch_add(1, Ordering::SeqCst);
        Some(TestUser { name, uid, gid })
    }

    /// A command run as this user (no supplementary groups). A program this user could not
    /// reach (a checkout under a private directory, as `mktemp -d` makes) runs from a copy in a
    /// world-readable directory, so the attack is what the test measures, not the checkout's
    /// location.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(reachable_by_anyone(Path::new(program.as_ref())));
        cmd.uid(self.uid)
            .gid(self.gid)
            .env_remove("NIGHTJAR_CONFIG");
        cmd
    }

    /// Runs `script` with `sh -c` as this user; it must succeed.
    pub fn sh(&self, script: &str) -> Output {
        let out = run(self.command("sh").arg("-c").arg(script).current_dir("/"));
        assert!(
            out.status.success(),
            "as {}: {script}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Copies of programs made for unprivileged users, by original path; removed when the last
/// [`TestUser`] of the process is dropped.
static USER_COPIES: std::sync::Mutex<Option<std::collections::HashMap<PathBuf, PathBuf>>> =
    std::sync::Mutex::new(None);
/// [`TestUser`]s alive in this process.
static LIVE_USERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `program`, or a copy of it others can execute when some directory on its path or the file
/// itself is closed to them. Copies live in one root-owned 0755 directory per test process,
/// made once per program.
fn reachable_by_anyone(program: &Path) -> PathBuf {
    use std::collections::HashMap;
    use std::os::unix::fs::DirBuilderExt;
    let open_to_others =
        |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0);
    if !program.is_absolute()
        || (open_to_others(program) && program.ancestors().skip(1).all(open_to_others))
    {
        return program.to_path_buf();
    }
    let mut copies = USER_COPIES.lock().unwrap_or_else(|e| e.into_inner());
    let copies = copies.get_or_insert_with(HashMap::new);
    if let Some(copy) = copies.get(program) {
        return copy.clone();
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let dir = PathBuf::from(format!(
        "/tmp/nightjar-userbin-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    let copy = dir.join(program.file_name().unwrap_or_else(|| "program".as_ref()));
    std::fs::copy(program, &copy)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", program.display(), copy.display()));
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", copy.display()));
    copies.insert(program.to_path_buf(), copy.clone());
    copy
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes were started by the test and are gone by now.
        let _ = run(Command::new("userdel").arg(&self.name));
        let mut copies = USER_COPIES.lock().unwrap_or_else(|e| e.into_inner());
        if LIVE_USERS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            for copy in copies.take().into_iter().flat_map(|c| c.into_values()) {
                if let Some(dir) = copy.parent() {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
        }
    }
}

/// A fresh directory under `/tmp` (root-owned, sticky: where an unprivileged user can create
/// entries of their own), removed at drop.
pub struct TmpArea {
    pub path: PathBuf,
}

impl TmpArea {
    pub fn new(tag: &str) -> TmpArea {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = PathBuf::from(format!(
            "/tmp/nightjar-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        TmpArea { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }
}

impl Drop for TmpArea {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.path);
    }
}
