//! Hardening against a local attacker: each attack a user without root tried against the
//! agent and sensor, run again as a user created for the test (the tests run as root, as in
//! CI; under `CI=true` a missing capability fails them). Each must end at the documented
//! refusal (docs/security.md, "Threat model").

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nightjar_tests::agent_cli::{counter, status};
use nightjar_tests::harness::{ChildGuard, TempState, TestUser, TmpArea, bin, run, wait_for};
use nightjar_tests::pipeline::{
    log_text, replay_all, spawn_agent, stop, wait_agent_ready, wait_status,
};
use nightjar_tests::streams::{EsloggerGen, Exec};

/// How long a command that must refuse at once may take on a loaded machine.
const REFUSAL: Duration = Duration::from_secs(60);

/// Runs `cmd` to completion within `limit` (a command that should have refused but starts
/// its main loop instead is killed, and the test fails).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = ChildGuard::spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()));
    let mut stdout = child.child.stdout.take().expect("stdout");
    let mut stderr = child.child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let status = child
        .wait_timeout(limit)
        .unwrap_or_else(|| panic!("{cmd:?} did not finish within {limit:?}"));
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A config at `at` with this state directory and ring, and `extra` TOML.
fn config(at: &Path, state_dir: &Path, ring: &Path, extra: &str) -> PathBuf {
    std::fs::write(
        at,
        format!(
            "state_dir = {:?}\nring_path = {:?}\nring_capacity_bytes = 4194304\nhost_id = \"attack-host\"\n{extra}",
            state_dir.display().to_string(),
            ring.display().to_string()
        ),
    )
    .expect("write config");
    at.to_path_buf()
}

fn agent_run(cfg: &Path) -> Output {
    run_bounded(
        Command::new(bin("nightjar-agent"))
            .args(["run", "--config"])
            .arg(cfg)
            .env_remove("NIGHTJAR_CONFIG"),
        REFUSAL,
    )
}

/// Reads lines of a child test process until one contains `needle` (the test harness
/// prints its own lines around the test's).
fn wait_line(lines: &mut impl Iterator<Item = std::io::Result<String>>, needle: &str) {
    for line in lines.by_ref() {
        if line.expect("child output").contains(needle) {
            return;
        }
    }
    panic!("the child ended before printing {needle:?}");
}

fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).expect("stat").mode() & 0o7777
}

const RULES: &str = "[rules]\nbuiltin = true\nmax_signals = 0\n";

/// One eslogger exec line.
fn exec_line(pid: u32, args: &[&str]) -> String {
    EsloggerGen::new().line(&Exec {
        pid,
        ppid: 1,
        executable: "/usr/bin/kcc",
        args,
    })
}

#[test]
fn a_state_directory_someone_else_can_change_is_refused() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    // The attacker prepares the directory root will be told to use.
    let area = TmpArea::new("attack-state");
    user.sh(&format!(
        "mkdir -m 0777 {0} && mkdir {0}/state",
        area.path.display()
    ));
    let cfg = config(
        &st.config_path(),
        &area.join("state"),
        &st.ring_path(),
        RULES,
    );
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("key `state_dir`"), "{msg}");
    assert!(msg.contains(&format!("owned by uid {}", user.uid)), "{msg}");
    assert!(!area.join("state/host.key").exists(), "nothing was created");
    assert!(!area.join("state/alerts.sled").exists());

    // A state directory that is the attacker's symbolic link to `/`: not followed, and `/`
    // keeps its mode (the agent once ran chmod("/", 0700) here).
    let link = TmpArea::new("attack-link");
    user.sh(&format!("ln -s / {}", link.path.display()));
    let root_mode = mode_of(Path::new("/"));
    let cfg = config(&st.config_path(), &link.path, &st.ring_path(), RULES);
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("is a symbolic link owned by uid"),
        "{}",
        text(&out)
    );
    assert_eq!(mode_of(Path::new("/")), root_mode, "/ was not touched");

    // A root-owned, private state directory inside a directory of the attacker's: they could
    // rename it away and put their own in its place, so it is refused, naming the parent.
    let parent = TmpArea::new("attack-parent");
    user.sh(&format!("mkdir -m 0755 {}", parent.path.display()));
    let state = parent.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg = config(&st.config_path(), &state, &st.ring_path(), RULES);
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&format!(
            "{} is owned by uid {}",
            parent.path.display(),
            user.uid
        )) && msg.contains("could replace what is below it"),
        "{msg}"
    );
    assert!(!state.join("host.key").exists(), "nothing was created");

    // The same with a root-owned parent the attacker's group may write to.
    let group = TmpArea::new("attack-group");
    std::fs::create_dir(&group.path).unwrap();
    std::os::unix::fs::chown(&group.path, Some(0), Some(user.gid)).unwrap();
    std::fs::set_permissions(&group.path, std::fs::Permissions::from_mode(0o775)).unwrap();
    let state = group.join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let cfg = config(&st.config_path(), &state, &st.ring_path(), RULES);
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("is writable by group {}", user.gid)),
        "{}",
        text(&out)
    );
    assert!(!state.join("host.key").exists(), "nothing was created");
}

/// A directory the attacker owned and then handed to root (chown of the directories only,
/// as an administrator "fixing" permissions would): what the attacker left inside is not
/// used.
fn handed_over(user: &TestUser, area: &TmpArea, plant: &str) -> PathBuf {
    user.sh(&format!(
        "umask 077 && mkdir -p {0}/state && cd {0}/state && {plant}",
        area.path.display()
    ));
    for dir in [area.path.clone(), area.join("state")] {
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).expect("chown");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    area.join("state")
}

#[test]
fn a_planted_host_key_is_refused() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    // The attacker's own key, a valid one: alerts signed with it would be theirs to forge.
    let src = TmpArea::new("attack-keysrc");
    nightjar_agent::sign::HostKey::create(&st.path().join("k")).expect("key");
    std::fs::copy(st.path().join("k"), &src.path).expect("copy key");
    std::fs::set_permissions(&src.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let area = TmpArea::new("attack-key");
    let state = handed_over(
        &user,
        &area,
        &format!("cp {} host.key && chmod 600 host.key", src.path.display()),
    );
    let cfg = config(&st.config_path(), &state, &st.ring_path(), RULES);
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("host.key"), "{msg}");
    assert!(msg.contains(&format!("owned by uid {}", user.uid)), "{msg}");

    // A provisioned key (`key_file`) the user could replace: in a directory of theirs, or
    // root's directory with the user's file in it.
    let theirs = TmpArea::new("attack-keyfile");
    user.sh(&format!(
        "mkdir -m 0755 {0} && cp {1} {0}/host.key && chmod 600 {0}/host.key",
        theirs.path.display(),
        src.path.display()
    ));
    let cfg = config(
        &st.config_path(),
        &st.state_dir(),
        &st.ring_path(),
        &format!(
            "key_file = {:?}\n{RULES}",
            theirs.join("host.key").display().to_string()
        ),
    );
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("its directory cannot be trusted"),
        "{}",
        text(&out)
    );
    std::os::unix::fs::chown(&theirs.path, Some(0), Some(0)).unwrap();
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("owned by uid {}", user.uid)),
        "{}",
        text(&out)
    );
    assert!(
        !st.state_dir().join("alerts.sled").exists(),
        "no store was made"
    );
}

#[test]
fn a_planted_store_link_is_not_followed() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let victim = st.path().join("victim");
    std::fs::write(&victim, b"root's precious file\n").unwrap();
    let area = TmpArea::new("attack-sled");
    let state = handed_over(
        &user,
        &area,
        &format!(
            "mkdir alerts.sled && ln -s {} alerts.sled/db",
            victim.display()
        ),
    );
    std::os::unix::fs::chown(state.join("alerts.sled"), Some(0), Some(0)).unwrap();
    let cfg = config(&st.config_path(), &state, &st.ring_path(), RULES);
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("alerts.sled/db is not a regular file (a symbolic link)"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"root's precious file\n",
        "the link's target is untouched"
    );
}

/// Runs as the attacker in a child process: listens on `$NIGHTJAR_FAKE_AGENT` and answers
/// every request as a cheerful agent would.
#[test]
fn fake_agent_entry() {
    let Ok(path) = std::env::var("NIGHTJAR_FAKE_AGENT") else {
        return;
    };
    let listener = UnixListener::bind(&path).expect("bind");
    println!("listening");
    std::io::stdout().flush().unwrap();
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let mut line = String::new();
        let _ = BufReader::new(&s).read_line(&mut line);
        let _ = s.write_all(b"{\"verify\":{\"ok\":true,\"alerts\":1}}\n{\"end\":true}\n");
    }
}

#[test]
fn the_cli_does_not_believe_a_fake_agent() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    std::fs::create_dir(st.state_dir()).unwrap();
    std::fs::set_permissions(st.state_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let area = TmpArea::new("attack-sock");
    user.sh(&format!("mkdir -m 0700 {}", area.path.display()));
    let sock = area.join("control.sock");
    let mut fake = ChildGuard::spawn(
        user.command(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fake_agent_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NIGHTJAR_FAKE_AGENT", &sock)
            .stdout(Stdio::piped()),
    );
    let mut lines = BufReader::new(fake.child.stdout.take().unwrap()).lines();
    wait_line(&mut lines, "listening");
    // The listening socket ends up where the CLI looks for the agent.
    std::fs::rename(&sock, st.state_dir().join("control.sock")).expect("move the socket");
    let cfg = config(&st.config_path(), &st.state_dir(), &st.ring_path(), RULES);
    let out = run_bounded(
        Command::new(bin("nightjar-agent"))
            .args(["verify", "--config"])
            .arg(&cfg),
        REFUSAL,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&format!("answered by uid {}", user.uid)),
        "{msg}"
    );
    assert!(!msg.contains("ok: "), "{msg}");
}

#[test]
fn a_ring_directory_someone_else_can_change_is_refused() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let area = TmpArea::new("attack-ring");
    user.sh(&format!("mkdir -m 0777 {}", area.path.display()));
    let ring = area.join("run/events.ring");
    let cfg = config(&st.config_path(), &st.state_dir(), &ring, RULES);
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("the ring's directory cannot be trusted"),
        "{}",
        text(&out)
    );
    let feed = st.path().join("feed.ndjson");
    std::fs::write(&feed, exec_line(700, &["kcc", "copy_cred_cache"]) + "\n").unwrap();
    let out = run_bounded(
        Command::new(bin("nightjar-sensor"))
            .args(["replay", "--format", "eslogger", "--config"])
            .arg(&cfg)
            .arg(&feed),
        REFUSAL,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!ring.exists(), "no ring was made there");

    // The ring's directory is the attacker's link to a root directory holding a root file
    // called events.ring: not followed, the file not clobbered.
    let victim_dir = st.path().join("victim");
    std::fs::create_dir(&victim_dir).unwrap();
    std::fs::write(victim_dir.join("events.ring"), b"root's file\n").unwrap();
    let link = TmpArea::new("attack-ringlink");
    user.sh(&format!(
        "ln -s {} {}",
        victim_dir.display(),
        link.path.display()
    ));
    let cfg = config(
        &st.config_path(),
        &st.state_dir(),
        &link.join("events.ring"),
        RULES,
    );
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        std::fs::read(victim_dir.join("events.ring")).unwrap(),
        b"root's file\n"
    );
}

/// Runs as the attacker in a child process: opens `$NIGHTJAR_HOLD_RING` while it is
/// writable by everyone, keeps the descriptor, and once `$NIGHTJAR_TRIGGER` exists writes
/// the ring image in `$NIGHTJAR_FORGED` through it.
#[test]
fn ring_holder_entry() {
    let Ok(ring) = std::env::var("NIGHTJAR_HOLD_RING") else {
        return;
    };
    let forged = std::fs::read(std::env::var("NIGHTJAR_FORGED").unwrap()).unwrap();
    let trigger = PathBuf::from(std::env::var("NIGHTJAR_TRIGGER").unwrap());
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&ring)
        .expect("open the exposed ring");
    println!("held");
    std::io::stdout().flush().unwrap();
    while !trigger.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    held.write_all_at(&forged, 0)
        .expect("write through the held descriptor");
    println!("forged");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn a_descriptor_held_on_an_exposed_ring_forges_nothing() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    stop(&mut agent, &st, "agent-1");

    // A forged ring image: a ring of the same size holding one unread `kcc copy_cred_cache`.
    let scratch = TempState::new();
    let scratch_cfg = scratch.write_config(RULES);
    let feed = scratch.path().join("feed.ndjson");
    std::fs::write(&feed, exec_line(4242, &["kcc", "copy_cred_cache"]) + "\n").unwrap();
    replay_all(&scratch, &scratch_cfg, &feed, None, "scratch-sensor");
    let image = TmpArea::new("attack-forged");
    std::fs::copy(scratch.ring_path(), &image.path).unwrap();
    std::fs::set_permissions(&image.path, std::fs::Permissions::from_mode(0o644)).unwrap();

    // A careless deployment: the ring readable and writable by everyone, its directories
    // searchable. The attacker opens it and keeps the descriptor.
    let ring = st.ring_path();
    for dir in [st.path(), ring.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o666)).unwrap();
    let old_ino = std::fs::metadata(&ring).unwrap().ino();
    let trigger = st.path().join("go");
    let mut holder = ChildGuard::spawn(
        user.command(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "ring_holder_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NIGHTJAR_HOLD_RING", &ring)
            .env("NIGHTJAR_FORGED", &image.path)
            .env("NIGHTJAR_TRIGGER", &trigger)
            .stdout(Stdio::piped()),
    );
    let mut lines = BufReader::new(holder.child.stdout.take().unwrap()).lines();
    wait_line(&mut lines, "held");

    // The agent starts again: the exposed ring is replaced, not repaired.
    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    // The control socket answers before the ring is opened: wait for the replacement.
    wait_status(&st, &cfg, "agent-2", "a fresh ring file", |_| {
        std::fs::metadata(&ring).is_ok_and(|m| m.ino() != old_ino)
    });
    let meta = std::fs::metadata(&ring).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(meta.nlink(), 1);
    std::fs::write(&trigger, b"").unwrap();
    wait_line(&mut lines, "forged");
    std::thread::sleep(Duration::from_secs(3));
    let s = status(&cfg).expect("status");
    assert_eq!(
        counter(&s, "alerts_stored"),
        0,
        "the forged record made no alert: {s}"
    );
    assert_eq!(counter(&s, "events_received"), 0, "{s}");

    // The agent is alive and reading its own ring.
    let real = st.path().join("real.ndjson");
    std::fs::write(&real, exec_line(702, &["kcc", "copy_cred_cache"]) + "\n").unwrap();
    replay_all(&st, &cfg, &real, None, "sensor");
    wait_status(&st, &cfg, "agent-2", "the real alert", |s| {
        counter(s, "alerts_stored") == 1
    });
    holder.kill9();
    stop(&mut agent, &st, "agent-2");
}

/// A second name for the ring, made by the attacker while it was exposed (a hard link in a
/// directory of theirs) and left behind when an administrator "fixed" the mode: the ring
/// must have one name, so the agent builds a fresh file rather than read one whose other
/// name someone else controls.
#[test]
fn a_ring_with_a_second_name_is_replaced() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(&st, &cfg, "agent-1");
    wait_agent_ready(&st, &cfg, "agent-1");
    stop(&mut agent, &st, "agent-1");

    let ring = st.ring_path();
    for dir in [st.path(), ring.parent().unwrap()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o666)).unwrap();
    let area = TmpArea::new("attack-ringname");
    user.sh(&format!(
        "mkdir -m 0755 {0} && ln {1} {0}/mine",
        area.path.display(),
        ring.display()
    ));
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o600)).unwrap();
    let old = std::fs::metadata(&ring).unwrap();
    assert_eq!(old.nlink(), 2, "the attacker's link is there");

    let mut agent = spawn_agent(&st, &cfg, "agent-2");
    wait_status(&st, &cfg, "agent-2", "a fresh ring file", |_| {
        std::fs::metadata(&ring).is_ok_and(|m| m.ino() != old.ino())
    });
    let meta = std::fs::metadata(&ring).unwrap();
    assert_eq!(meta.nlink(), 1);
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_ne!(
        std::fs::metadata(area.join("mine")).unwrap().ino(),
        meta.ino(),
        "the attacker's name is not the ring's"
    );
    assert!(
        log_text(&st, "agent-2").contains("2 names (hard links), not one"),
        "{}",
        log_text(&st, "agent-2")
    );
    // The agent reads the fresh ring.
    let real = st.path().join("real.ndjson");
    std::fs::write(&real, exec_line(703, &["kcc", "copy_cred_cache"]) + "\n").unwrap();
    replay_all(&st, &cfg, &real, None, "sensor");
    wait_status(&st, &cfg, "agent-2", "the real alert", |s| {
        counter(s, "alerts_stored") == 1
    });
    stop(&mut agent, &st, "agent-2");
}

#[test]
fn credentials_in_the_upload_url_are_never_printed() {
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "{RULES}[upload]\nurl = \"https://alice:S3cretPassw0rd@127.0.0.1:9/v1/alerts?token=T0kenValue42\"\ninterval_ms = 100\n"
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let feed = st.path().join("feed.ndjson");
    std::fs::write(&feed, exec_line(702, &["kcc", "copy_cred_cache"]) + "\n").unwrap();
    replay_all(&st, &cfg, &feed, None, "sensor");
    let s = wait_status(&st, &cfg, "agent", "an upload error", |s| {
        s["last_upload_error"].is_string()
    });
    let human = run(Command::new(bin("nightjar-agent"))
        .args(["status", "--config"])
        .arg(&cfg));
    stop(&mut agent, &st, "agent");
    let everything = format!(
        "{s}\n{}\n{}",
        String::from_utf8_lossy(&human.stdout),
        log_text(&st, "agent")
    );
    for secret in ["S3cretPassw0rd", "T0kenValue42", "alice:"] {
        assert!(
            !everything.contains(secret),
            "{secret} was printed:\n{everything}"
        );
    }
    assert!(
        s["last_upload_error"]
            .as_str()
            .unwrap()
            .contains("https://***@127.0.0.1:9/v1/alerts?token=***"),
        "{s}"
    );

    // The fleet server's URL may not carry credentials at all: refused, and not echoed.
    let st = TempState::new();
    let cfg = st.write_config(&format!(
        "{RULES}[fleet]\nserver = \"https://bob:FleetPassw0rd@127.0.0.1:9\"\n"
    ));
    let out = agent_run(&cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("key `fleet.server`"), "{}", text(&out));
    assert!(!text(&out).contains("FleetPassw0rd"), "{}", text(&out));

    // The enrolment token, through the enrolment's retries.
    let cfg = st.write_config(&format!(
        "{RULES}[fleet]\nserver = \"https://127.0.0.1:9\"\nenroll_token = \"Enr0llT0ken99\"\n"
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    let s = wait_status(&st, &cfg, "agent", "an enrolment error", |s| {
        s["enrol_error"].is_string()
    });
    let human = run(Command::new(bin("nightjar-agent"))
        .args(["status", "--config"])
        .arg(&cfg));
    stop(&mut agent, &st, "agent");
    let everything = format!(
        "{s}\n{}\n{}",
        String::from_utf8_lossy(&human.stdout),
        log_text(&st, "agent")
    );
    assert!(
        !everything.contains("Enr0llT0ken99"),
        "the token was printed:\n{everything}"
    );
}

/// Bytes a terminal would act on: C0 controls but newline, DEL, C1 controls, and the
/// bidirectional overrides.
fn raw_controls(out: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(out);
    text.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| format!("{:?}", c))
        .collect()
}

const HOSTILE: &[&str] = &[
    "kcc",
    "\u{1b}[2K\r7  2026-01-01T00:00:00Z  Nothing to see  mac-1  /bin/ls [1]",
    "\u{1b}]0;owned\u{7}",
    "copy_cred_cache",
    "one\ntwo",
    "\u{9b}31m",
    "\u{202e}txt.exe",
];

fn assert_terminal_safe(cfg: &Path) {
    let list = run(Command::new(bin("nightjar-agent"))
        .args(["alerts", "list", "--config"])
        .arg(cfg));
    assert!(list.status.success(), "{}", text(&list));
    assert_eq!(
        raw_controls(&list.stdout),
        Vec::<String>::new(),
        "{}",
        text(&list)
    );
    let table = String::from_utf8_lossy(&list.stdout);
    assert_eq!(
        table.lines().count(),
        2,
        "one header and one row, no forged one:\n{table}"
    );
    assert!(table.contains("\\x1b[2K\\r7"), "{table}");
    let json = run(Command::new(bin("nightjar-agent"))
        .args(["alerts", "list", "--json", "--config"])
        .arg(cfg));
    assert_eq!(raw_controls(&json.stdout), Vec::<String>::new());
    let doc: serde_json::Value =
        serde_json::from_slice(json.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
    let args: Vec<String> = doc["process"]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        args.iter().any(|a| a.contains("\u{1b}]0;owned\u{7}")),
        "JSON keeps the value, escaped: {args:?}"
    );
    let uuid = doc["kibana"]["alert"]["uuid"].as_str().unwrap().to_string();
    let show = run(Command::new(bin("nightjar-agent"))
        .args(["alerts", "show", "--config"])
        .arg(cfg)
        .arg(&uuid));
    assert!(show.status.success(), "{}", text(&show));
    assert_eq!(raw_controls(&show.stdout), Vec::<String>::new());
}

#[test]
fn terminal_escapes_in_argv_cannot_forge_output() {
    let st = TempState::new();
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let feed = st.path().join("feed.ndjson");
    std::fs::write(&feed, exec_line(702, HOSTILE) + "\n").unwrap();
    replay_all(&st, &cfg, &feed, None, "sensor");
    wait_status(&st, &cfg, "agent", "the alert", |s| {
        counter(s, "alerts_stored") == 1
    });
    assert_terminal_safe(&cfg);
    stop(&mut agent, &st, "agent");
    // The same from the store at rest.
    assert_terminal_safe(&cfg);
}

/// The same argv, exec'd for real by the unprivileged user under the live eBPF sensor.
#[test]
fn terminal_escapes_from_a_users_exec_cannot_forge_output() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let rule =
        nightjar_tests::harness::workspace_root().join("packaging/linux/rules/kcc-linux.toml");
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = false\nmax_signals = 0\npaths = [{:?}]\n",
        rule.display().to_string()
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let log = std::fs::File::create(st.path().join("sensor.log")).unwrap();
    let _sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stderr(log),
    );
    let area = TmpArea::new("attack-exec");
    user.sh(&format!(
        "mkdir -m 0755 {0} && cp /bin/true {0}/kcc",
        area.path.display()
    ));
    let kcc = area.join("kcc");
    // Exec until the probe is attached and the alert is in.
    let got = wait_for(Duration::from_secs(60), || {
        let _ = run(user.command(&kcc).args(&HOSTILE[1..]));
        status(&cfg).filter(|s| counter(s, "alerts_stored") >= 1)
    });
    assert!(
        got.is_some(),
        "no alert from the user's exec; sensor log:\n{}",
        std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
    );
    stop(&mut agent, &st, "agent");
    // Only the first of the user's execs is listed with --rule; the table may hold several
    // (each exec alerts): check every line.
    let list = run(Command::new(bin("nightjar-agent"))
        .args(["alerts", "list", "--config"])
        .arg(&cfg));
    assert_eq!(
        raw_controls(&list.stdout),
        Vec::<String>::new(),
        "{}",
        text(&list)
    );
    let rows = String::from_utf8_lossy(&list.stdout).lines().count() as u64 - 1;
    let stored = counter(&status(&cfg).unwrap(), "alerts_stored");
    assert_eq!(rows, stored, "one row per alert, none forged");
}

/// Evasion by argv padding, exec'd for real by the unprivileged user under the live eBPF
/// sensor: `kcc --cache=x ×1023 copy_cred_cache` (the reported attack: the argument is in the
/// kept tail) alerts exactly with the true `args_count`; the argument hidden in the dropped
/// middle of 3,001 arguments still alerts, marked `nightjar.match = "argv_truncated"`.
#[test]
fn argv_padding_does_not_silence_a_rule() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let rule =
        nightjar_tests::harness::workspace_root().join("packaging/linux/rules/kcc-linux.toml");
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = false\nmax_signals = 0\npaths = [{:?}]\n",
        rule.display().to_string()
    ));
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let log = std::fs::File::create(st.path().join("sensor.log")).unwrap();
    let _sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stderr(log),
    );
    let area = TmpArea::new("attack-argv");
    user.sh(&format!(
        "mkdir -m 0755 {0} && cp /bin/true {0}/kcc",
        area.path.display()
    ));
    let kcc = area.join("kcc");
    let pad = |n: usize| std::iter::repeat_n("--cache=x", n);
    let tail_attack: Vec<&str> = pad(1023).chain(["copy_cred_cache"]).collect();
    let middle_attack: Vec<&str> = pad(1500)
        .chain(["copy_cred_cache"])
        .chain(pad(1500))
        .collect();
    let find = |count: u64| {
        nightjar_tests::agent_cli::alerts(&cfg)
            .into_iter()
            .find(|a| a["process"]["args_count"].as_u64() == Some(count))
    };
    // Exec until the probe is attached and each alert is in.
    for (args, count) in [(&tail_attack, 1025), (&middle_attack, 3002)] {
        let got = wait_for(Duration::from_secs(60), || {
            let _ = run(user.command(&kcc).args(args.iter()));
            find(count)
        });
        assert!(
            got.is_some(),
            "no alert for {count} arguments; sensor log:\n{}",
            std::fs::read_to_string(st.path().join("sensor.log")).unwrap_or_default()
        );
    }
    stop(&mut agent, &st, "agent");
    let tail = find(1025).unwrap();
    assert_eq!(tail["process"]["Ext"]["args_truncated"], true);
    assert_eq!(tail["nightjar"]["match"], "exact", "{tail}");
    let kept = tail["process"]["args"].as_array().unwrap();
    assert_eq!(kept.last().unwrap(), "copy_cred_cache", "the tail is kept");
    assert!(kept[0].as_str().unwrap().ends_with("kcc"), "the head too");
    assert_eq!(kept[1], "--cache=x");
    let middle = find(3002).unwrap();
    assert_eq!(middle["process"]["Ext"]["args_truncated"], true);
    assert_eq!(middle["nightjar"]["match"], "argv_truncated", "{middle}");
    assert!(
        middle["kibana"]["alert"]["reason"]
            .as_str()
            .unwrap()
            .contains("argv was truncated")
    );
    let (code, out) = nightjar_tests::agent_cli::verify(&cfg);
    assert_eq!(code, 0, "{out}");
}

/// Runs in a child process (root, like the client of the report): loops on the control
/// socket `$NIGHTJAR_LOOP_SOCKET`, half its threads connecting and never asking, half asking
/// for an export and never reading it.
#[test]
fn looping_client_entry() {
    let Ok(path) = std::env::var("NIGHTJAR_LOOP_SOCKET") else {
        return;
    };
    let mut threads = Vec::new();
    for t in 0..6 {
        let path = path.clone();
        threads.push(std::thread::spawn(move || {
            loop {
                // A tight loop, with a breath so the machine keeps a core for the test.
                std::thread::sleep(Duration::from_millis(2));
                let Ok(mut s) = UnixStream::connect(&path) else {
                    continue;
                };
                if t % 2 == 1 {
                    let _ = s.write_all(b"{\"cmd\":\"alerts_export\"}\n");
                }
                // Hold it until the agent drops it.
                let mut b = [0u8; 1];
                let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
                if t % 2 == 0 {
                    let _ = s.read(&mut b);
                } else {
                    std::thread::sleep(Duration::from_secs(60));
                }
            }
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn a_looping_local_client_cannot_keep_the_cli_out() {
    let st = TempState::new();
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    // Alerts to export, so that an export that is never read holds its slot.
    let feed = st.path().join("feed.ndjson");
    EsloggerGen::new().write_stream(&feed, 400, 200);
    replay_all(&st, &cfg, &feed, None, "sensor");
    wait_status(&st, &cfg, "agent", "the alerts", |s| {
        counter(s, "alerts_stored") == 200
    });
    let socket = st.state_dir().join("control.sock");
    let loopers: Vec<ChildGuard> = (0..20)
        .map(|_| {
            ChildGuard::spawn(
                Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        "looping_client_entry",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env("NIGHTJAR_LOOP_SOCKET", &socket)
                    .stdout(Stdio::null()),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..10 {
        let started = Instant::now();
        let out = run_bounded(
            Command::new(bin("nightjar-agent"))
                .args(["status", "--json", "--config"])
                .arg(&cfg),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "status {i} failed while clients loop: {}",
            text(&out)
        );
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
        assert_eq!(
            s["agent_running"], true,
            "answered by the agent, not the store"
        );
        eprintln!("status {i} answered in {:?}", started.elapsed());
    }
    drop(loopers);
    stop(&mut agent, &st, "agent");
}

/// `verify` run by a user who may not read the store could not check anything: exit 2
/// (could not check), never 1 (a failed check).
#[test]
fn verify_tells_could_not_check_from_a_failed_check() {
    let Some(user) = TestUser::create() else {
        return;
    };
    let st = TempState::new();
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    // The user may read this copy of the config (not the state it names).
    let public = TmpArea::new("attack-cfg");
    std::fs::create_dir(&public.path).unwrap();
    std::fs::set_permissions(&public.path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let readable = public.join("nightjar.toml");
    std::fs::copy(&cfg, &readable).unwrap();
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(st.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_bounded(
        user.command(bin("nightjar-agent"))
            .args(["verify", "--config"])
            .arg(&readable),
        REFUSAL,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("could not verify"), "{}", text(&out));
    assert!(
        text(&out).to_lowercase().contains("permission denied"),
        "{}",
        text(&out)
    );
    stop(&mut agent, &st, "agent");
    // At rest, root, an intact store: 0.
    let out = run(Command::new(bin("nightjar-agent"))
        .args(["verify", "--config"])
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// Tail truncation without the host key: the newest alerts cut from the log and the
/// index's head moved back to match. `verify` names what the signed head mark says was
/// there.
#[test]
fn a_truncated_tail_is_caught_by_the_signed_head_mark() {
    use nightjar_agent::store::log::{record_spans, segment_files};
    let st = TempState::new();
    let cfg = st.write_config(RULES);
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let feed = st.path().join("feed.ndjson");
    EsloggerGen::new().write_stream(&feed, 50, 5);
    replay_all(&st, &cfg, &feed, None, "sensor");
    let s = wait_status(&st, &cfg, "agent", "five alerts, marked", |s| {
        counter(s, "alerts_stored") == 5 && s["chain_head"]["seq"] == 5
    });
    assert!(s["chain_head"]["signature"].is_string(), "{s}");
    stop(&mut agent, &st, "agent");

    let db = st.state_dir().join("alerts.sled");
    let seg = segment_files(&db).unwrap().pop().unwrap();
    let spans = record_spans(&seg).unwrap();
    let (_, cut_at, _) = spans[3];
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(cut_at).unwrap();
    drop(file);
    // The head as the index had it after alert 3 (seq and that alert's payload hash).
    let env = {
        let bytes = std::fs::read(&seg).unwrap();
        let (_, at, len) = spans[2];
        let rec = &bytes[at as usize..(at + len) as usize];
        let raw: [u8; 72] = rec[..72].try_into().unwrap();
        nightjar_agent::store::record::Header::parse(&raw)
            .unwrap()
            .hash
    };
    {
        let raw = sled::open(&db).unwrap();
        let meta = raw.open_tree("meta").unwrap();
        let head = nightjar_agent::sign::ChainHead { seq: 3, hash: env };
        meta.insert("head", &head.to_bytes()[..]).unwrap();
        raw.flush().unwrap();
    }
    let (code, out) = nightjar_tests::agent_cli::verify(&cfg);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signed head mark names seq 5"), "{out}");
}
