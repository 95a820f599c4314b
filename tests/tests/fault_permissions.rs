//! File modes as the real binaries create them (docs/security.md): the state directory
//! 0700, the host key 0600, the control socket 0600, the ring and its wake FIFO 0600 in a
//! 0700 directory — even under a permissive umask, and with no path created beforehand.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nightjar_tests::agent_cli::counter;
use nightjar_tests::harness::TempState;
use nightjar_tests::pipeline::{replay_all, spawn_agent, stop, wait_agent_ready, wait_events};
use nightjar_tests::streams::EsloggerGen;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Sets a permissive umask for this process (inherited by the children it spawns) so the
/// modes seen are the ones the binaries ask for, not the umask's doing.
fn permissive_umask() {
    // SAFETY: umask has no preconditions; the tests in this file do not create files
    // concurrently with expectations about their modes.
    unsafe {
        libc::umask(0o000);
    }
}

#[test]
fn state_key_socket_and_ring_are_root_only() {
    permissive_umask();
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\n");
    let stream = st.path().join("stream.ndjson");
    EsloggerGen::new().write_stream(&stream, 50, 5);
    assert!(!st.state_dir().exists() && !st.ring_path().exists());

    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    replay_all(&st, &cfg, &stream, None, "sensor");
    let s = wait_events(&st, &cfg, "agent", 50);
    assert_eq!(counter(&s, "alerts_stored"), 5, "{s}");

    let state = st.state_dir();
    assert_eq!(mode(&state), 0o700, "state directory {}", state.display());
    let key = state.join("host.key");
    assert_eq!(mode(&key), 0o600, "host key {}", key.display());
    let sock = state.join("control.sock");
    let meta = std::fs::symlink_metadata(&sock).expect("control socket exists");
    assert!(
        meta.file_type().is_socket(),
        "{} is a socket",
        sock.display()
    );
    assert_eq!(mode(&sock), 0o600, "control socket {}", sock.display());

    let ring = st.ring_path();
    assert_eq!(mode(&ring), 0o600, "ring {}", ring.display());
    let ring_dir = ring.parent().expect("ring dir");
    assert_eq!(
        mode(ring_dir),
        0o700,
        "ring directory {}",
        ring_dir.display()
    );
    let wake = ring.with_extension("ring.wake");
    assert_eq!(mode(&wake), 0o600, "wake FIFO {}", wake.display());

    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    for p in [&state, &key, &sock, &ring, ring_dir] {
        let owner = std::fs::symlink_metadata(p).expect("stat").uid();
        assert_eq!(owner, me, "{} is owned by the agent's user", p.display());
    }
    stop(&mut agent, &st, "agent");
}
