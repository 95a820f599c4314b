//! A privilege escalation staged for the credential-event tests: an ordinary user runs a
//! program from `/tmp` that holds file capabilities (CAP_SETUID, CAP_SETGID); its child makes
//! a new session and takes uid and gid 0 (`nightjar-credhelper`). Each run uses its own user,
//! directory and program name, so the events are told apart from anything else on the host.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

use crate::harness::{TestUser, TmpArea, bin};

/// `security.capability` (`struct vfs_cap_data`, revision 2): CAP_SETGID and CAP_SETUID
/// permitted, and raised as effective at exec.
fn setid_capabilities() -> [u8; 20] {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
    const CAP_SETGID: u32 = 6;
    const CAP_SETUID: u32 = 7;
    let mut data = [0u8; 20];
    data[..4].copy_from_slice(&(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE).to_le_bytes());
    data[4..8].copy_from_slice(&((1u32 << CAP_SETGID) | (1u32 << CAP_SETUID)).to_le_bytes());
    data
}

/// The staged escalation, ready to run.
pub struct Escalation {
    pub user: TestUser,
    /// The program's copy: `/tmp/nightjar-escalate-PID-N/njesc<PID>x<N>`.
    pub program: PathBuf,
    _area: TmpArea,
}

/// What one run did.
#[derive(Debug)]
pub struct EscalationRun {
    /// The pid of the process that became root (the child).
    pub child_pid: u32,
    /// The pid of its parent, the user's first process.
    pub parent_pid: u32,
}

impl Escalation {
    /// `None` when not root outside CI (see [`TestUser::create`]).
    pub fn stage() -> Option<Escalation> {
        let user = TestUser::create()?;
        let area = TmpArea::new("escalate");
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(&area.path)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", area.path.display()));
        let name = area
            .path
            .file_name()
            .map(|n| n.to_string_lossy().replace("nightjar-escalate-", "njesc"))
            .unwrap_or_default()
            .replace('-', "x");
        let program = area.join(&name);
        std::fs::copy(bin("nightjar-credhelper"), &program)
            .unwrap_or_else(|e| panic!("copy the helper to {}: {e}", program.display()));
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", program.display()));
        let path = std::ffi::CString::new(program.as_os_str().as_bytes()).expect("no NUL");
        let caps = setid_capabilities();
        // SAFETY: both strings are NUL-terminated and live; `caps` is a live buffer of the
        // length passed.
        let rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
                c"security.capability".as_ptr(),
                caps.as_ptr().cast(),
                caps.len(),
                0,
            )
        };
        assert_eq!(
            rc,
            0,
            "setting file capabilities on {}: {}",
            program.display(),
            std::io::Error::last_os_error()
        );
        Some(Escalation {
            user,
            program,
            _area: area,
        })
    }

    /// Runs the escalation once, as the user; it must succeed.
    pub fn run(&self) -> EscalationRun {
        let child = self
            .user
            .command(&self.program)
            .arg("parent")
            .current_dir("/")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.program.display()));
        let parent_pid = child.id();
        let out = child.wait_with_output().expect("wait for the escalation");
        assert!(
            out.status.success(),
            "{} parent as {}: {}",
            self.program.display(),
            self.user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let child_pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the child prints its pid");
        EscalationRun {
            child_pid,
            parent_pid,
        }
    }

    /// The program's path as events name it.
    pub fn executable(&self) -> String {
        self.program.display().to_string()
    }
}
