//! Live Linux capture: `nightjar-sensor run --source ebpf` on this host, read back from the
//! ring. Needs root (or CAP_BPF + CAP_PERFMON); under CI=true their absence is a failure.

mod sensor_support;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nightjar_proto::event::{Event, FLAG_SNAPSHOT, FileAction};
use nightjar_proto::{ExecEvent, LossSource, OsType, Source};
use nightjar_tests::harness::{ChildGuard, TempState, bin, in_ci, is_root, run};
use sensor_support::RingReader;

const CAPACITY: u64 = 64 * 1024 * 1024;

fn may_run() -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "CI runs as root: the live eBPF tests must run");
    eprintln!("live eBPF test needs root; not run");
    false
}

/// A copy of /bin/true named `kcc` in the test's directory.
fn kcc(st: &TempState) -> PathBuf {
    let dir = st.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let kcc = dir.join("kcc");
    std::fs::copy("/bin/true", &kcc).unwrap();
    std::fs::set_permissions(&kcc, std::fs::Permissions::from_mode(0o755)).unwrap();
    kcc
}

struct LiveSensor {
    st: TempState,
    sensor: ChildGuard,
    reader: RingReader,
}

impl LiveSensor {
    fn start() -> LiveSensor {
        LiveSensor::start_with(TempState::new(), "")
    }

    /// A sensor whose config ends with `extra` (rules, `[sensor]` settings).
    fn start_with(st: TempState, extra: &str) -> LiveSensor {
        let cfg = st.path().join("nightjar.toml");
        std::fs::write(
            &cfg,
            format!(
                "ring_path = {:?}\nring_capacity_bytes = {CAPACITY}\n{extra}",
                st.ring_path().display().to_string()
            ),
        )
        .unwrap();
        let reader = RingReader::open(&st.ring_path(), CAPACITY);
        let log = File::create(st.path().join("sensor.log")).unwrap();
        let sensor = ChildGuard::spawn(
            Command::new(bin("nightjar-sensor"))
                .args(["run", "--source", "ebpf", "--config"])
                .arg(&cfg)
                .stderr(log),
        );
        LiveSensor { st, sensor, reader }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.st.path().join("sensor.log")).unwrap_or_default()
    }

    /// Execs `kcc ready` until the sensor reports it: the probe is attached.
    fn wait_ready(&mut self, kcc: &Path) {
        let exe = kcc.display().to_string();
        for _ in 0..300 {
            if let Ok(Some(status)) = self.sensor.child.try_wait() {
                panic!("sensor exited with {status}: {}", self.log());
            }
            run(Command::new(kcc).arg("ready"));
            let ok = self.reader.drain_until(
                Duration::from_millis(100),
                &mut |ev| ev.target.executable == exe.as_str(),
                |s| !s.execs.is_empty(),
            );
            if ok {
                self.reader.seen.execs.clear();
                return;
            }
        }
        panic!("the eBPF probe never reported an exec: {}", self.log());
    }
}

fn args_of(ev: &ExecEvent<'_>) -> Vec<String> {
    ev.target.args.iter().map(str::to_owned).collect()
}

#[test]
fn kcc_copy_cred_cache_reaches_the_ring_with_full_argv() {
    if !may_run() {
        return;
    }
    let mut live = LiveSensor::start();
    let kcc = kcc(&live.st);
    live.wait_ready(&kcc);
    let exe = kcc.display().to_string();

    let child = Command::new(&kcc).arg("copy_cred_cache").spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());

    let found = live.reader.drain_until(
        Duration::from_secs(10),
        &mut |ev| ev.target.pid == pid,
        |s| !s.execs.is_empty(),
    );
    assert!(found, "no exec of pid {pid} in the ring: {}", live.log());
    let ev = &live.reader.seen.execs[0];
    assert_eq!((ev.source, ev.os), (Source::Ebpf, OsType::Linux));
    assert_eq!(ev.target.executable, exe.as_str());
    assert_eq!(ev.process_name(), "kcc");
    assert_eq!(args_of(ev), [exe.as_str(), "copy_cred_cache"]);
    assert_eq!(ev.target.ppid, Some(std::process::id()));
    assert_eq!((ev.target.uid, ev.target.euid), (Some(0), Some(0)));
    assert!(ev.sensor_seq > 0 && ev.time_ns > 0 && ev.captured_ns >= ev.time_ns);
    assert!(ev.target.start_time_ns.is_some_and(|t| t <= ev.time_ns));
    assert_eq!(ev.flags, 0, "nothing truncated");
}

#[test]
fn burst_of_ten_thousand_execs_from_eight_shells_arrives_whole() {
    if !may_run() {
        return;
    }
    const SHELLS: usize = 8;
    const PER_SHELL: usize = 1250;
    let mut live = LiveSensor::start();
    let kcc = kcc(&live.st);
    live.wait_ready(&kcc);
    let exe = kcc.display().to_string();
    let marker = format!("marker-{}-{}", std::process::id(), live.st.path().display());

    let script = format!(
        "i=1; while [ $i -le {PER_SHELL} ]; do '{exe}' arg$i '{marker}' || exit 1; i=$((i+1)); done"
    );
    let shells: Vec<_> = (0..SHELLS)
        .map(|_| ChildGuard::spawn(Command::new("/bin/sh").arg("-c").arg(&script)))
        .collect();

    // Consume while the shells run, so the ring never has to hold the whole burst.
    let mut keep = |ev: &ExecEvent<'_>| ev.target.args.iter().nth(2) == Some(marker.as_str());
    let mut all_done = false;
    for _ in 0..6000 {
        live.reader
            .drain_until(Duration::from_millis(50), &mut keep, |s| {
                s.execs.len() >= SHELLS * PER_SHELL
            });
        if live.reader.seen.execs.len() >= SHELLS * PER_SHELL {
            all_done = true;
            break;
        }
    }
    for mut shell in shells {
        let status = shell.wait_timeout(Duration::from_secs(60));
        assert!(status.is_some_and(|s| s.success()), "a shell failed");
    }
    // Anything late (or duplicated) is read too before counting.
    live.reader.drain(&mut keep);
    assert!(
        all_done,
        "{} of {} execs arrived; ring {:?}; losses {:?}",
        live.reader.seen.execs.len(),
        SHELLS * PER_SHELL,
        live.reader.stats(),
        live.reader.seen.losses
    );

    let mut per_i = vec![0usize; PER_SHELL + 1];
    for ev in &live.reader.seen.execs {
        let args = args_of(ev);
        assert_eq!(args.len(), 3, "{args:?}");
        assert_eq!(args[0], exe);
        assert_eq!(ev.target.executable, exe.as_str());
        let i: usize = args[1]
            .strip_prefix("arg")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("argv[1] damaged: {args:?}"));
        assert!((1..=PER_SHELL).contains(&i), "{args:?}");
        per_i[i] += 1;
    }
    assert!(
        per_i[1..].iter().all(|&n| n == SHELLS),
        "every argument value from every shell exactly once"
    );
    let stats = live.reader.stats();
    assert_eq!(stats.drops, 0, "ring drops: {stats:?}");
    assert_eq!(stats.upstream_loss, 0, "upstream loss: {stats:?}");
    assert_eq!(live.reader.seen.lost(LossSource::BpfRingbuf), 0);
}

#[test]
fn the_agents_own_execs_are_muted() {
    if !may_run() {
        return;
    }
    let mut live = LiveSensor::start();
    let kcc = kcc(&live.st);
    live.wait_ready(&kcc);
    let exe = kcc.display().to_string();

    // A stand-in agent: a shell under the agent's name that, once told, execs kcc in place
    // (same pid), which the probe must not report.
    let agent_bin = live.st.path().join("bin/nightjar-agent");
    std::fs::copy("/bin/sh", &agent_bin).unwrap();
    std::fs::set_permissions(&agent_bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let go = live.st.path().join("go");
    let mut agent = ChildGuard::spawn(Command::new(&agent_bin).arg("-c").arg(format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; exec '{exe}' muted-exec",
        go.display()
    )));
    let agent_pid = agent.pid();
    let muted_line = format!("pid={agent_pid}");
    let noticed = nightjar_tests::harness::wait_for(Duration::from_secs(30), || {
        let log = live.log();
        log.lines()
            .any(|l| l.contains("muted the agent") && l.trim_end().ends_with(&muted_line))
            .then_some(())
    });
    assert!(
        noticed.is_some(),
        "the sensor never muted the agent: {}",
        live.log()
    );
    std::fs::write(&go, b"").unwrap();
    assert!(
        agent
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );

    // An exec after it, not muted, proves the probe was reporting all along.
    run(Command::new(&kcc).arg("after-agent"));
    let mut keep = |ev: &ExecEvent<'_>| ev.target.executable == exe.as_str();
    let done = live
        .reader
        .drain_until(Duration::from_secs(10), &mut keep, |s| {
            s.execs
                .iter()
                .any(|e| args_of(e).get(1).is_some_and(|a| a == "after-agent"))
        });
    assert!(
        done,
        "the exec after the agent's never arrived: {}",
        live.log()
    );
    let from_agent: Vec<_> = live
        .reader
        .seen
        .execs
        .iter()
        .filter(|e| e.target.pid == agent_pid)
        .collect();
    assert!(
        from_agent.is_empty(),
        "the agent's exec was reported: {from_agent:?}"
    );
}

/// A rule that reads file events under `dir`, so the sensor publishes them (the path filter
/// is built from the loaded rules).
fn file_rule(st: &TempState, dir: &Path) -> String {
    let rules = st.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    let rule = format!(
        "[metadata]\ncreation_date = \"2026/01/01\"\n[rule]\nrule_id = \"test-files\"\n\
         name = \"files under the test directory\"\ndescription = \"d\"\nseverity = \"low\"\n\
         risk_score = 21\ntype = \"eql\"\nlanguage = \"eql\"\n\
         query = 'file where file.path : \"{}/*\"'\n",
        dir.display()
    );
    std::fs::write(rules.join("files.toml"), rule).unwrap();
    format!("[rules]\npaths = [{:?}]\n", rules.display().to_string())
}

/// Pids of the process tree rooted at `root`, as the fork events describe it.
fn tree_of(root: u32, events: &[Event<'_>]) -> Vec<u32> {
    let mut tree = vec![root];
    for ev in events {
        if let Event::Fork(f) = ev
            && tree.contains(&f.parent.pid)
            && !tree.contains(&f.child_pid)
        {
            tree.push(f.child_pid);
        }
    }
    tree
}

/// A shell forks, its children exec, create, rename and delete files under a test directory
/// and exit: every step arrives with the pids, parents, paths and start times that tie the
/// events of one process instance together.
#[test]
fn a_process_tree_and_its_file_events_arrive_with_paths_and_parents() {
    if !may_run() {
        return;
    }
    let st = TempState::new();
    let dir = st.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let outside = st.path().join("outside.txt");
    let extra = file_rule(&st, &dir);
    let mut live = LiveSensor::start_with(st, &extra);
    let kcc = kcc(&live.st);
    live.wait_ready(&kcc);
    let d = dir.display().to_string();
    live.reader.keep_event = Box::new(|_| true);

    let mut shell = ChildGuard::spawn(Command::new("/bin/sh").arg("-c").arg(format!(
        "cd '{d}' && touch a && mv a b && rm '{d}/b' && (echo x > c) && touch '{}' && /bin/true done",
        outside.display()
    )));
    let shell_pid = shell.pid();
    assert!(
        shell
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );

    let dir_prefix = format!("{d}/");
    let c_path = format!("{d}/c");
    let done = live
        .reader
        .drain_until(Duration::from_secs(20), &mut |_| true, |s| {
            s.events.iter().any(|e| {
                matches!(e, Event::File(f) if f.path == c_path.as_str()
                    && f.action == FileAction::Modification)
            }) && s
                .events
                .iter()
                .any(|e| matches!(e, Event::Exit(x) if x.process.pid == shell_pid))
        });
    let seen = &live.reader.seen;
    let file_events: Vec<_> = seen
        .events
        .iter()
        .filter(|e| matches!(e, Event::File(f) if f.path.starts_with(&dir_prefix)))
        .collect();
    assert!(done, "events missing: {file_events:?}\n{}", live.log());
    let tree = tree_of(shell_pid, &seen.events);
    assert!(
        tree.len() >= 5,
        "touch, mv, rm, the subshell and true are forks: {tree:?}"
    );

    let files: Vec<_> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            Event::File(f) if f.path.starts_with(&dir_prefix) => Some(f),
            _ => None,
        })
        .collect();
    let find = |action: FileAction, path: &str| {
        *files
            .iter()
            .find(|f| f.action == action && f.path == path)
            .unwrap_or_else(|| panic!("no {action:?} of {path}: {files:?}"))
    };
    let created = find(FileAction::Creation, &format!("{d}/a"));
    let renamed = find(FileAction::Rename, &format!("{d}/b"));
    assert_eq!(
        renamed.original_path.as_deref(),
        Some(format!("{d}/a").as_str())
    );
    let deleted = find(FileAction::Deletion, &format!("{d}/b"));
    let written = find(FileAction::Modification, &c_path);
    for (f, image) in [(created, "touch"), (renamed, "mv"), (deleted, "rm")] {
        assert!(
            tree.contains(&f.process.pid),
            "{image} is in the tree: {f:?}"
        );
        let exec = seen
            .execs
            .iter()
            .find(|e| e.target.pid == f.process.pid)
            .unwrap_or_else(|| panic!("no exec of the {image} that touched the file"));
        assert_eq!(exec.process_name(), image);
        assert_eq!(
            exec.target.ppid,
            Some(shell_pid),
            "{image}'s parent is the shell"
        );
        assert_eq!(
            f.process.start_time_ns, exec.target.start_time_ns,
            "one process instance, one start time"
        );
        let fork = seen
            .events
            .iter()
            .find_map(|e| match e {
                Event::Fork(k) if k.child_pid == f.process.pid => Some(k),
                _ => None,
            })
            .expect("its fork");
        assert_eq!(fork.parent.pid, shell_pid);
        assert_eq!(fork.child_start_time_ns, exec.target.start_time_ns);
        assert_eq!(
            exec.target.cwd.as_deref(),
            Some(d.as_str()),
            "the working directory"
        );
    }
    assert!(tree.contains(&written.process.pid), "the subshell wrote c");
    let exits: Vec<_> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Exit(x) if tree.contains(&x.process.pid) => Some(x),
            _ => None,
        })
        .collect();
    assert!(exits.iter().all(|x| x.exit_code == Some(0)), "{exits:?}");
    assert!(exits.iter().any(|x| x.process.pid == shell_pid));
    // A path no loaded rule can match is filtered in the kernel, and counted.
    let outside = outside.display().to_string();
    assert!(
        !seen
            .events
            .iter()
            .any(|e| matches!(e, Event::File(f) if f.path == outside.as_str())),
        "{outside} was published"
    );
    let counted = live
        .reader
        .drain_until(Duration::from_secs(5), &mut |_| false, |s| {
            s.filtered.iter().map(|f| f.count).sum::<u64>() > 0
        });
    assert!(counted, "no filtered count reported");
}

/// A shell that was running before the sensor started is published from /proc, so its
/// children have a known parent.
#[test]
fn a_shell_that_predates_the_sensor_is_a_known_parent() {
    if !may_run() {
        return;
    }
    let st = TempState::new();
    let go = st.path().join("go");
    let marker = format!("predates-{}", std::process::id());
    let mut shell = ChildGuard::spawn(Command::new("/bin/sh").arg("-c").arg(format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; /bin/true {marker}",
        go.display()
    )));
    let shell_pid = shell.pid();
    let mut live = LiveSensor::start_with(st, "");
    let mut keep = |ev: &ExecEvent<'_>| {
        ev.target.pid == shell_pid || ev.target.args.iter().nth(1) == Some(marker.as_str())
    };
    // The processes running at start are published before anything else.
    let published = live
        .reader
        .drain_until(Duration::from_secs(30), &mut keep, |s| {
            s.execs.iter().any(|e| e.target.pid == shell_pid)
        });
    assert!(
        published,
        "the running shell was not published: {}",
        live.log()
    );
    std::fs::write(&go, b"").unwrap();
    assert!(
        shell
            .wait_timeout(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
    let done = live
        .reader
        .drain_until(Duration::from_secs(20), &mut keep, |s| {
            s.execs
                .iter()
                .any(|e| e.target.args.iter().nth(1) == Some(marker.as_str()))
        });
    assert!(done, "the child never arrived: {}", live.log());
    let seen = &live.reader.seen;
    let snapshot = seen
        .execs
        .iter()
        .find(|e| e.target.pid == shell_pid && e.flags & FLAG_SNAPSHOT != 0)
        .unwrap_or_else(|| {
            panic!(
                "the running shell was not published from /proc: {:?}",
                seen.execs
            )
        });
    assert_eq!(snapshot.source, Source::ProcessList);
    assert_eq!(snapshot.target.args.iter().next(), Some("/bin/sh"));
    assert!(snapshot.target.start_time_ns.is_some());
    let child = seen
        .execs
        .iter()
        .find(|e| e.target.args.iter().nth(1) == Some(marker.as_str()))
        .unwrap();
    assert_eq!(child.target.ppid, Some(shell_pid));
}

/// The filter entries the kernel tests besides prefixes, names and extensions: a whole path
/// component, text inside the path and a process name prefix. The sensor says it filters in
/// the kernel; what matches one is published, the rest is not.
#[test]
fn components_texts_and_process_prefixes_are_filtered_in_the_kernel() {
    if !may_run() {
        return;
    }
    let st = TempState::new();
    let dir = st.path().join("pat");
    std::fs::create_dir_all(dir.join("nj-wp-stuff")).unwrap();
    let rules = st.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    for (id, query) in [
        ("component", r#"file where file.path : "*/nj-wp-stuff/*""#),
        ("text", r#"file where file.path : "*NJ_GCONV_X*""#),
        ("process", r#"file where process.name : "njpfx*""#),
    ] {
        std::fs::write(
            rules.join(format!("{id}.toml")),
            format!(
                "[metadata]\ncreation_date = \"2026/01/01\"\n[rule]\nrule_id = \"pat-{id}\"\n\
                 name = \"{id}\"\ndescription = \"d\"\nseverity = \"low\"\nrisk_score = 21\n\
                 type = \"eql\"\nlanguage = \"eql\"\nquery = '{query}'\n"
            ),
        )
        .unwrap();
    }
    let extra = format!(
        "[rules]\nbuiltin = false\npaths = [{:?}]\n",
        rules.display().to_string()
    );
    let mut live = LiveSensor::start_with(st, &extra);
    let kcc = kcc(&live.st);
    live.wait_ready(&kcc);
    assert!(
        live.log().contains("in_kernel=true"),
        "the kernel applies this filter: {}",
        live.log()
    );
    live.reader.keep_event = Box::new(|_| true);
    let writer = live.st.path().join("bin").join("njpfx-writer");
    std::fs::copy("/usr/bin/touch", &writer).unwrap();
    let d = dir.display().to_string();
    let published = [
        format!("{d}/nj-wp-stuff/a"),
        format!("{d}/xxNJ_GCONV_Xyy"),
        format!("{d}/by-prefix"),
    ];
    let filtered = format!("{d}/plain");
    run(Command::new("/usr/bin/touch").args([&published[0], &published[1], &filtered]));
    run(Command::new(&writer).arg(&published[2]));
    let done = live
        .reader
        .drain_until(Duration::from_secs(20), &mut |_| true, |s| {
            published.iter().all(|p| {
                s.events
                    .iter()
                    .any(|e| matches!(e, Event::File(f) if f.path == p.as_str()))
            })
        });
    let files: Vec<&str> = live
        .reader
        .seen
        .events
        .iter()
        .filter_map(|e| match e {
            Event::File(f) if f.path.starts_with(d.as_str()) => Some(f.path.as_ref()),
            _ => None,
        })
        .collect();
    assert!(done, "not all published: {files:?}");
    assert!(
        !live
            .reader
            .seen
            .events
            .iter()
            .any(|e| matches!(e, Event::File(f) if f.path == filtered.as_str())),
        "{filtered} was published"
    );
}

/// An ordinary user's process from /tmp (file capabilities CAP_SETUID and CAP_SETGID) makes a
/// new session and takes gid and uid 0: a session_id_change, a gid_change and a uid_change
/// arrive for it, in that order, with the ids before and after, the new session, and the
/// start time of its exec (one process instance, one entity id); its parent's drop from root
/// to the user is reported too. Without a rule that reads them, no probe is attached and none
/// arrives.
#[test]
fn credential_and_session_changes_arrive_with_old_and_new_ids() {
    use nightjar_proto::event::CredChange;
    use nightjar_tests::escalation::Escalation;
    if !may_run() {
        return;
    }
    let Some(esc) = Escalation::stage() else {
        return;
    };
    // The credential probes are attached only for rules that read credential changes.
    let rule = nightjar_tests::harness::shared(
        "elastic-rules/linux-head-14cf530f/privilege_escalation_potential_privesc_via_general_sequence_child.toml",
    );
    let extra = format!("[rules]\npaths = [{:?}]\n", rule.display().to_string());
    let mut live = LiveSensor::start_with(TempState::new(), &extra);
    let kcc = kcc(&live.st);
    live.wait_ready(&kcc);
    let exe = esc.executable();
    let pids = std::rc::Rc::new(std::cell::RefCell::new(Vec::<u32>::new()));
    let kept = pids.clone();
    live.reader.keep_event =
        Box::new(move |e| matches!(e, Event::Cred(c) if kept.borrow().contains(&c.process.pid)));

    let run = esc.run();
    pids.borrow_mut().extend([run.child_pid, run.parent_pid]);
    let exe_ref = exe.as_str();
    let done = live.reader.drain_until(
        Duration::from_secs(20),
        &mut |ev| ev.target.executable == exe_ref,
        |s| {
            s.events.iter().any(|e| {
                matches!(e, Event::Cred(c) if c.change == CredChange::Uid
                    && c.process.pid == run.child_pid)
            })
        },
    );
    let seen = &live.reader.seen;
    assert!(done, "no uid_change: {:?}\n{}", seen.events, live.log());
    let exec = seen
        .execs
        .iter()
        .find(|e| e.target.pid == run.child_pid)
        .unwrap_or_else(|| panic!("no exec of the child {run:?}: {:?}", seen.execs));
    assert_eq!(
        exec.target.euid,
        Some(esc.user.uid),
        "it starts unprivileged"
    );
    assert_eq!(exec.target.ppid, Some(run.parent_pid));
    let changes: Vec<_> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Cred(c) if c.process.pid == run.child_pid => Some(c),
            _ => None,
        })
        .collect();
    let kinds: Vec<CredChange> = changes.iter().map(|c| c.change).collect();
    assert_eq!(
        kinds,
        [CredChange::SessionId, CredChange::Gid, CredChange::Uid],
        "{changes:#?}"
    );
    for c in &changes {
        assert_eq!(c.process.start_time_ns, exec.target.start_time_ns, "{c:?}");
        assert_eq!(c.process.ppid, Some(run.parent_pid), "{c:?}");
        assert_eq!(c.after.sid, Some(run.child_pid), "its own session: {c:?}");
    }
    let (sid, gid, uid) = (changes[0], changes[1], changes[2]);
    assert_eq!(sid.process.euid, Some(esc.user.uid), "{sid:?}");
    assert_eq!(
        (gid.before.gid, gid.before.egid, gid.before.sgid),
        (Some(esc.user.gid), Some(esc.user.gid), Some(esc.user.gid)),
        "{gid:?}"
    );
    assert_eq!(
        (gid.process.gid, gid.process.egid, gid.after.sgid),
        (Some(0), Some(0), Some(0)),
        "{gid:?}"
    );
    assert_eq!(gid.process.euid, Some(esc.user.uid), "uid not yet changed");
    assert_eq!(
        (uid.before.uid, uid.before.euid, uid.before.suid),
        (Some(esc.user.uid), Some(esc.user.uid), Some(esc.user.uid)),
        "{uid:?}"
    );
    assert_eq!(
        (uid.process.uid, uid.process.euid, uid.after.suid),
        (Some(0), Some(0), Some(0)),
        "{uid:?}"
    );
    // The parent is the test's fork, which gave up root for the user before it exec'd: a
    // drop, reported the same way.
    let drops: Vec<_> = seen
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Cred(c) if c.process.pid == run.parent_pid => Some(c),
            _ => None,
        })
        .collect();
    let kinds: Vec<CredChange> = drops.iter().map(|c| c.change).collect();
    assert_eq!(kinds, [CredChange::Gid, CredChange::Uid], "{drops:#?}");
    assert_eq!(
        (drops[0].before.egid, drops[0].process.egid),
        (Some(0), Some(esc.user.gid))
    );
    assert_eq!(
        (drops[1].before.euid, drops[1].process.euid),
        (Some(0), Some(esc.user.uid))
    );

    drop(live);

    // The seed rule alone reads no credential change: the probes stay off.
    let mut live = LiveSensor::start();
    let ready = self::kcc(&live.st);
    live.wait_ready(&ready);
    live.reader.keep_event = Box::new(|e| matches!(e, Event::Cred(_)));
    let again = esc.run();
    let seen_exec = live.reader.drain_until(
        Duration::from_secs(20),
        &mut |ev| ev.target.executable == exe_ref,
        |s| s.execs.iter().any(|e| e.target.pid == again.child_pid),
    );
    assert!(seen_exec, "no exec of {again:?}: {}", live.log());
    // Anything in flight behind the exec has had the same ring to arrive through.
    live.reader
        .drain_until(Duration::from_millis(500), &mut |_| false, |_| false);
    let stray: Vec<_> = live
        .reader
        .seen
        .events
        .iter()
        .filter(|e| matches!(e, Event::Cred(c) if c.process.pid == again.child_pid))
        .collect();
    assert!(stray.is_empty(), "credential probes attached: {stray:?}");
    assert!(live.log().contains("creds=false"), "{}", live.log());
}
