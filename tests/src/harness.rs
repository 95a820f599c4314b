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
