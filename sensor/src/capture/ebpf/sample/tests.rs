use super::*;

const CLOCK: BootClock = BootClock {
    offset_ns: 1_000,
    boot_unix_ns: 2_000_000_000,
    tick_ns: 10_000_000,
};

fn ctx(env: &EnvFilter) -> DecodeContext<'_> {
    DecodeContext { clock: CLOCK, env }
}

fn exec(s: &ExecSample<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_exec_sample(&mut out, s);
    out
}

fn kcc() -> ExecSample<'static> {
    ExecSample {
        time_boot_ns: 50,
        start_boot_ns: 25_000_000_042,
        pid: 42,
        ppid: 7,
        ids: [1, 2, 3, 4],
        auid: 1000,
        audit_session: 5,
        sid: 40,
        pgid: 41,
        argc: 2,
        flags: F_EXE_RESOLVED | F_CWD,
        exe: b"/usr/bin/kcc",
        cwd: b"/home/bob",
        head: b"kcc\0copy_cred_cache\0",
        tty: b"pts/3",
        cgroup: b"session-3.scope",
        ..ExecSample::default()
    }
}

fn decode<'s>(s: &'s [u8], scratch: &'s mut SampleScratch, env: &EnvFilter) -> ExecEvent<'s> {
    decode_sample(s, scratch, ctx(env))
        .unwrap()
        .into_exec()
        .unwrap()
}

fn strs(ev: &ExecEvent<'_>) -> Vec<String> {
    ev.target.args.iter().map(str::to_owned).collect()
}

#[test]
fn decodes_every_exec_field_borrowing_from_the_sample() {
    let s = exec(&kcc());
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let ev = decode(&s, &mut scratch, &env);
    let t = &ev.target;
    assert_eq!((t.pid, t.ppid), (42, Some(7)));
    assert_eq!(
        (t.uid, t.euid, t.gid, t.egid),
        (Some(1), Some(2), Some(3), Some(4))
    );
    assert_eq!((t.auid, t.session_id), (Some(1000), Some(5)));
    assert_eq!(
        (t.session_leader_pid, t.group_leader_pid),
        (Some(40), Some(41))
    );
    assert_eq!(t.executable, "/usr/bin/kcc");
    assert!(matches!(t.executable, Cow::Borrowed(_)));
    assert_eq!(t.cwd.as_deref(), Some("/home/bob"));
    assert_eq!(t.tty.as_deref(), Some("pts/3"));
    assert_eq!(t.container, Some(false));
    assert_eq!(strs(&ev), ["kcc", "copy_cred_cache"]);
    assert_eq!(t.args.total(), 2);
    assert_eq!(ev.time_ns, 1_050);
    assert_eq!(
        t.start_time_ns,
        Some(2_000_000_000 + 25_000_000_000),
        "start rounded down to the tick, from the boot second"
    );
    assert_eq!(
        (ev.source, ev.os, ev.flags),
        (Source::Ebpf, OsType::Linux, 0)
    );
    assert!(ev.validate().is_ok());
}

#[test]
fn start_times_from_the_probe_and_from_proc_agree() {
    let ns = 123_456_789_012u64;
    let ticks = ns / 10_000_000;
    assert_eq!(
        CLOCK.start_unix_ns(ns),
        CLOCK.start_unix_ns_from_ticks(ticks)
    );
}

#[test]
fn empty_arguments_and_empty_argv_survive() {
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let s = exec(&ExecSample {
        head: b"x\0\0last\0",
        argc: 3,
        ..kcc()
    });
    assert_eq!(strs(&decode(&s, &mut scratch, &env)), ["x", "", "last"]);
    let s = exec(&ExecSample {
        head: b"",
        argc: 0,
        ..kcc()
    });
    assert_eq!(decode(&s, &mut scratch, &env).target.args.len(), 0);
}

/// A whole argv that is valid UTF-8 and within the bounds is borrowed from the sample, and
/// comes out as the builder would have built it.
#[test]
fn a_whole_argv_is_borrowed_and_equals_what_the_builder_makes() {
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let blocks: [(&[u8], &[&str]); 5] = [
        (b"kcc\0copy_cred_cache\0", &["kcc", "copy_cred_cache"]),
        (b"x\0\0last\0", &["x", "", "last"]),
        (b"\0", &[""]),
        (b"no-final-nul", &["no-final-nul"]),
        (
            "caf\u{e9}\0\u{1f980}\0".as_bytes(),
            &["caf\u{e9}", "\u{1f980}"],
        ),
    ];
    for (head, want) in blocks {
        let s = exec(&ExecSample {
            head,
            argc: want.len() as u32,
            ..kcc()
        });
        let ev = decode(&s, &mut scratch, &env);
        let args = &ev.target.args;
        assert!(
            s.as_ptr_range().contains(&args.joined().as_ptr()) || args.joined().is_empty(),
            "{want:?} is borrowed from the sample"
        );
        assert_eq!(*args, Args::from_strs(want).0, "{want:?}");
        assert_eq!(ev.flags & TRUNC_ARGS, 0);
        assert!(ev.validate().is_ok());
    }
}

/// All of argv read, but more arguments than the model keeps: the builder keeps head and
/// tail, flags the cut and keeps the count.
#[test]
fn more_arguments_than_the_model_keeps_are_cut_with_their_count() {
    let argv: Vec<String> = (0..1500).map(|i| format!("a{i}")).collect();
    let mut block = argv.join("\0").into_bytes();
    block.push(0);
    let s = exec(&ExecSample {
        head: &block,
        argc: 1500,
        ..kcc()
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let ev = decode(&s, &mut scratch, &env);
    assert!(ev.validate().is_ok());
    assert_eq!(ev.flags & TRUNC_ARGS, TRUNC_ARGS);
    assert_eq!(ev.target.args.total(), 1500);
    assert_eq!(ev.target.args.len(), nightjar_proto::event::MAX_ARGS);
    let held = strs(&ev);
    assert_eq!(
        (held[0].as_str(), held.last().unwrap().as_str()),
        ("a0", "a1499")
    );
}

/// `kcc --cache=x ×N copy_cred_cache` longer than the probe's bounds: the head, the tail and
/// the true count survive.
#[test]
fn a_padded_argv_keeps_head_tail_and_count() {
    let mut head = b"kcc\0".to_vec();
    while head.len() < 12288 {
        head.extend_from_slice(b"--cache=x\0");
    }
    head.truncate(12288);
    let mut tail = b"che=x\0".to_vec();
    for _ in 0..300 {
        tail.extend_from_slice(b"--cache=x\0");
    }
    tail.extend_from_slice(b"copy_cred_cache\0");
    let s = exec(&ExecSample {
        head: &head,
        tail: &tail,
        argc: 5002,
        flags: F_ARGS_TRUNCATED,
        ..kcc()
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let ev = decode(&s, &mut scratch, &env);
    assert!(ev.validate().is_ok());
    let args = strs(&ev);
    assert_eq!(args[0], "kcc");
    assert_eq!(args.last().unwrap(), "copy_cred_cache");
    assert_eq!(ev.target.args.total(), 5002);
    assert_eq!(ev.flags & TRUNC_ARGS, TRUNC_ARGS);
    assert!(ev.target.args.elided() > 0);
}

#[test]
fn head_and_tail_that_meet_are_one_argv() {
    let mut all = Vec::new();
    for i in 0..2000 {
        all.extend_from_slice(format!("arg{i}\0").as_bytes());
    }
    assert!(all.len() > 12288 && all.len() <= 12288 + 4096);
    let (head, tail) = all.split_at(12288);
    let s = exec(&ExecSample {
        head,
        tail,
        argc: 2000,
        ..kcc()
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let ev = decode(&s, &mut scratch, &env);
    let args = strs(&ev);
    assert!(ev.validate().is_ok());
    assert_eq!(
        ev.target.args.total(),
        2000,
        "the argument cut by the head bound is one"
    );
    assert_eq!(args[0], "arg0");
    assert_eq!(args.last().unwrap(), "arg1999");
    assert_eq!(
        ev.target.args.elided(),
        2000 - nightjar_proto::event::MAX_ARGS
    );
}

#[test]
fn unreadable_argv_is_flagged_and_counted() {
    let s = exec(&ExecSample {
        head: b"",
        argc: 3,
        flags: F_ARGS_UNREADABLE,
        ..kcc()
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let ev = decode(&s, &mut scratch, &env);
    assert!(ev.target.args.is_empty());
    assert_eq!(ev.target.args.total(), 3);
    assert_eq!(ev.flags & TRUNC_ARGS, TRUNC_ARGS);
    assert!(ev.validate().is_ok());
}

#[test]
fn invalid_utf8_is_replaced_not_refused() {
    let s = exec(&ExecSample {
        exe: b"/bin/\xff",
        head: b"a\xfe\0b\0",
        argc: 2,
        ..kcc()
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let ev = decode(&s, &mut scratch, &env);
    assert_eq!(ev.target.executable, "/bin/\u{FFFD}");
    assert_eq!(strs(&ev), ["a\u{FFFD}", "b"]);
}

#[test]
fn only_configured_environment_variables_are_kept() {
    let s = exec(&ExecSample {
        env: b"PATH=/bin\0LD_PRELOAD=/tmp/evil.so\0HOME=/root\0",
        ..kcc()
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::new(["LD_PRELOAD"]);
    let ev = decode(&s, &mut scratch, &env);
    assert_eq!(
        ev.target.env_vars.iter().collect::<Vec<_>>(),
        ["LD_PRELOAD=/tmp/evil.so"]
    );
    let none = EnvFilter::default();
    let mut scratch = SampleScratch::default();
    assert!(decode(&s, &mut scratch, &none).target.env_vars.is_empty());
}

#[test]
fn containers_are_told_by_pid_namespace_or_cgroup() {
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    for (level, leaf, container) in [
        (0, &b"session-3.scope"[..], false),
        (1, b"session-3.scope", true),
        (0, b"docker-0123456789abcdef.scope", true),
        (0, b"cri-containerd-abc.scope", true),
        (
            0,
            b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            true,
        ),
    ] {
        let s = exec(&ExecSample {
            pidns_level: level,
            cgroup: leaf,
            ..kcc()
        });
        assert_eq!(
            decode(&s, &mut scratch, &env).target.container,
            Some(container),
            "{level} {}",
            String::from_utf8_lossy(leaf)
        );
    }
}

#[test]
fn unset_login_ids_are_absent() {
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let s = exec(&ExecSample {
        auid: u32::MAX,
        audit_session: u32::MAX,
        ..kcc()
    });
    let t = decode(&s, &mut scratch, &env).target;
    assert_eq!((t.auid, t.session_id), (None, None));
    let s = exec(&ExecSample {
        flags: F_NO_LOGINUID,
        ..kcc()
    });
    let t = decode(&s, &mut scratch, &env).target;
    assert_eq!((t.auid, t.session_id), (None, None));
}

#[test]
fn file_fork_and_exit_samples_decode() {
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let mut s = Vec::new();
    encode_file_sample(&mut s, 100, 9, 3, 0, b"/etc/cron.d/new", b"/tmp/x");
    let Event::File(f) = decode_sample(&s, &mut scratch, ctx(&env)).unwrap() else {
        panic!("not a file event")
    };
    assert_eq!(f.action, FileAction::Rename);
    assert_eq!(f.path, "/etc/cron.d/new");
    assert_eq!(f.original_path.as_deref(), Some("/tmp/x"));
    assert_eq!(f.process.pid, 9);
    assert!(f.validate().is_ok());
    encode_file_sample(&mut s, 100, 9, 4, 0, b"/tmp/gone", b"");
    let Event::File(f) = decode_sample(&s, &mut scratch, ctx(&env)).unwrap() else {
        panic!("not a file event")
    };
    assert_eq!((f.action, f.original_path), (FileAction::Deletion, None));

    encode_lifecycle_sample(&mut s, KIND_FORK, 9, 10);
    let Event::Fork(fork) = decode_sample(&s, &mut scratch, ctx(&env)).unwrap() else {
        panic!("not a fork")
    };
    assert_eq!((fork.parent.pid, fork.child_pid), (9, 10));
    encode_lifecycle_sample(&mut s, KIND_EXIT, 9, 9);
    let Event::Exit(exit) = decode_sample(&s, &mut scratch, ctx(&env)).unwrap() else {
        panic!("not an exit")
    };
    assert_eq!(exit.exit_code, Some(137), "killed by SIGKILL");
}

#[test]
fn credential_and_session_samples_decode() {
    use nightjar_proto::event::CredChange;
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let mut s = Vec::new();
    let user = [1000, 1000, 1000, 1000, 1000, 1000];
    let root = [0, 0, 0, 1000, 1000, 1000];
    encode_cred_sample(&mut s, 9, 1, user, root, 9);
    assert_eq!(s.len(), HEADER_LEN + CRED_BODY_LEN);
    let Event::Cred(c) = decode_sample(&s, &mut scratch, ctx(&env)).unwrap() else {
        panic!("not a credential change")
    };
    assert_eq!(c.change, CredChange::Uid);
    assert_eq!(
        (c.process.pid, c.process.euid, c.process.egid),
        (9, Some(0), Some(1000))
    );
    assert_eq!(
        (c.before.uid, c.before.euid, c.before.suid),
        (Some(1000), Some(1000), Some(1000))
    );
    assert_eq!(
        (c.after.uid, c.after.suid, c.after.sid),
        (Some(0), Some(0), Some(9))
    );
    assert_eq!(c.process.start_time_ns, Some(CLOCK.start_unix_ns(50)));
    encode_cred_sample(&mut s, 9, 3, [0; 6], user, 9);
    let Event::Cred(c) = decode_sample(&s, &mut scratch, ctx(&env)).unwrap() else {
        panic!("not a session change")
    };
    assert_eq!(c.change, CredChange::SessionId);
    assert_eq!((c.before.sid, c.after.sid), (None, Some(9)));
    assert_eq!(c.after.euid, Some(1000));
    encode_cred_sample(&mut s, 9, 7, user, user, 9);
    assert!(matches!(
        decode_sample(&s, &mut scratch, ctx(&env)),
        Err(SampleError::Change { change: 7 })
    ));
    assert!(matches!(
        decode_sample(&s[..HEADER_LEN + 20], &mut scratch, ctx(&env)),
        Err(SampleError::Short { .. })
    ));
}

#[test]
fn lying_lengths_and_kinds_are_errors() {
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let mut s = exec(&kcc());
    s[HEADER_LEN + 32..HEADER_LEN + 34].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(matches!(
        decode_sample(&s, &mut scratch, ctx(&env)),
        Err(SampleError::Lengths { .. })
    ));
    assert!(matches!(
        decode_sample(&s[..10], &mut scratch, ctx(&env)),
        Err(SampleError::Short { len: 10, .. })
    ));
    assert!(matches!(
        decode_sample(&s[..HEADER_LEN + 3], &mut scratch, ctx(&env)),
        Err(SampleError::Short { .. })
    ));
    s[0] = 99;
    assert!(matches!(
        decode_sample(&s, &mut scratch, ctx(&env)),
        Err(SampleError::Kind { kind: 99 })
    ));
    let mut f = Vec::new();
    encode_file_sample(&mut f, 1, 1, 9, 0, b"/x", b"");
    assert!(matches!(
        decode_sample(&f, &mut scratch, ctx(&env)),
        Err(SampleError::Action { action: 9 })
    ));
}
