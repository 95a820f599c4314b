//! The eslogger decoder against the shared sample and the fixtures in `tests/fixtures/eslogger`.

mod eslogger_support;

use std::borrow::Cow;

use eslogger_support::{fixture, flip_audit_tokens, lines, shared};
use nightjar_proto::eslogger::{DecodeError, EsloggerDecoder};
use nightjar_proto::event::{MAX_ARGS, TRUNC_ARGS, TRUNC_CWD, TRUNC_EXECUTABLE, basename};
use nightjar_proto::{ExecEvent, OsType, Source};

fn decode_all(lines: &[String]) -> Vec<Option<ExecEvent<'static>>> {
    let mut d = EsloggerDecoder::new();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            d.decode_line(l)
                .unwrap_or_else(|e| panic!("line {}: {e}", i + 1))
                .and_then(|e| e.into_exec())
                .map(ExecEvent::into_owned)
        })
        .collect()
}

fn args(ev: &ExecEvent<'_>) -> Vec<String> {
    ev.target.args.iter().map(str::to_owned).collect()
}

#[test]
fn shared_sample_decodes_six_execs() {
    let lines = lines(shared("fixtures/eslogger/kcc-sample.ndjson"));
    let events: Vec<_> = decode_all(&lines).into_iter().flatten().collect();
    assert_eq!(events.len(), 6);
    let pids: Vec<u32> = events.iter().map(|e| e.target.pid).collect();
    assert_eq!(pids, [700, 701, 702, 703, 704, 705]);
    let names: Vec<&str> = events.iter().map(|e| e.process_name()).collect();
    assert_eq!(names, ["bash", "klist", "kcc", "kcc", "kcc", "git"]);
    assert_eq!(args(&events[2]), ["kcc", "copy_cred_cache"]);
    assert_eq!(args(&events[3]), ["kcc", "list"]);
    assert_eq!(args(&events[4]), ["/usr/bin/kcc", "copy_cred_cache"]);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.source, Source::Eslogger);
        assert_eq!(ev.os, OsType::Macos);
        assert_eq!(ev.es_seq_num, Some(501 + i as u64));
        assert_eq!(ev.es_global_seq_num, Some(1001 + i as u64));
        assert_eq!(ev.caller.pid, Some(ev.target.pid));
        assert_eq!(ev.target.euid, Some(501));
        assert_eq!(ev.target.egid, Some(20));
        assert_eq!(ev.target.session_id, Some(100013));
        assert_eq!(ev.target.cwd.as_deref(), Some("/Users/bob"));
        assert_eq!(ev.target.platform_binary, Some(true));
        assert_eq!(ev.target.cs_flags, Some(536_870_913));
        assert_eq!(ev.target.team_id, None);
        assert_eq!(ev.target.tty, None);
        assert_eq!(ev.flags, 0);
        assert!(ev.target.start_time_ns.is_some());
        assert!(ev.validate().is_ok());
    }
    // v10 line (array audit tokens): pid 704, pidversion 2119, responsible pid 700.
    let v10 = &events[4];
    assert_eq!(v10.target.pidversion, Some(2119));
    assert_eq!(v10.responsible_pid, Some(700));
    assert_eq!(v10.target.ppid, Some(700));
    assert_eq!(v10.caller.executable.as_deref(), Some("/bin/bash"));
    assert_eq!(
        v10.target.cdhash.as_deref(),
        Some("00000000e4229c32ea112a2f39b44780345009cd")
    );
    assert_eq!(v10.time_ns, 1_795_165_200_962_000_123);
    assert_eq!(v10.target.start_time_ns, Some(1_795_165_200_962_000_000));
    assert_eq!(
        events[0].caller.executable.as_deref(),
        Some("/usr/bin/login")
    );
    assert_eq!(events[0].responsible_pid, Some(1));
}

#[test]
fn both_audit_token_forms_give_identical_events() {
    let mut d = EsloggerDecoder::new();
    let mut checked = 0;
    let files = [
        shared("fixtures/eslogger/kcc-sample.ndjson"),
        fixture("eslogger/credential-access.ndjson"),
        fixture("eslogger/versions.ndjson"),
        fixture("eslogger/macos-file-actions.ndjson"),
    ];
    for path in files {
        for line in lines(path) {
            let mut value: serde_json::Value = serde_json::from_str(&line).unwrap();
            flip_audit_tokens(&mut value);
            let flipped = serde_json::to_string(&value).unwrap();
            assert_ne!(flipped, line);
            let a = d.decode_line(&line).unwrap();
            let b = d.decode_line(&flipped).unwrap();
            assert_eq!(a, b, "{line}");
            checked += usize::from(a.is_some());
        }
    }
    // kcc-sample: 6 execs; credential-access: 12 execs, a fork, two exits and an open (its
    // unmodified close maps to no event); versions: 7 execs; macos-file-actions: 4 execs, a
    // fork, 5 opens, 3 quarantine removals, 3 launch items.
    assert_eq!(checked, 6 + (12 + 4) + 7 + 16, "events compared");
}

#[test]
fn credential_access_stream_skips_non_exec_events() {
    let events = decode_all(&lines(fixture("eslogger/credential-access.ndjson")));
    let skipped: Vec<usize> = (0..events.len()).filter(|&i| events[i].is_none()).collect();
    assert_eq!(skipped, [1, 3, 7, 9, 15], "fork, exit, open, close, exit");
    let execs: Vec<&ExecEvent<'_>> = events.iter().flatten().collect();
    let commands: Vec<String> = execs.iter().map(|e| args(e).join(" ")).collect();
    assert_eq!(commands[1], "kcc copy_cred_cache");
    assert!(commands[2].starts_with("security dump-keychain"));
    assert_eq!(
        commands[3],
        "dscl . -read /Users/bob AuthenticationAuthority"
    );
    assert!(commands[4].contains("with hidden answer"));
    assert_eq!(commands[6], "/usr/bin/kcc list");
    // Escaped slashes decode to plain paths.
    assert_eq!(execs[1].target.executable, "/usr/bin/kcc");
    assert_eq!(execs[1].target.cwd.as_deref(), Some("/Users/bob"));
    // A developer-signed, non-platform image keeps its team id and cdhash.
    let py = execs.iter().find(|e| e.target.pid == 4109).unwrap();
    assert_eq!(py.target.team_id.as_deref(), Some("DJ6BZV8MFV"));
    assert_eq!(py.target.platform_binary, Some(false));
    assert_eq!(py.process_name(), "python3.12");
    // An unsigned copy of kcc: no signing id, no cdhash, no flags.
    let fake = execs.iter().find(|e| e.target.pid == 4110).unwrap();
    assert_eq!(fake.target.signing_id, None);
    assert_eq!(fake.target.cdhash, None);
    assert_eq!(fake.target.cs_flags, Some(0));
    assert_eq!(basename(&fake.target.executable), "kcc");
    let sudo = execs.iter().find(|e| e.target.pid == 4111).unwrap();
    assert_eq!((sudo.target.uid, sudo.target.euid), (Some(0), Some(0)));
    // Per-type sequence numbers advance by one per exec.
    let seqs: Vec<u64> = execs.iter().filter_map(|e| e.es_seq_num).collect();
    assert_eq!(seqs, (101..101 + execs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn message_versions_4_to_10_decode_to_the_same_exec() {
    let events: Vec<ExecEvent<'static>> = decode_all(&lines(fixture("eslogger/versions.ndjson")))
        .into_iter()
        .map(Option::unwrap)
        .collect();
    assert_eq!(events.len(), 7);
    let first = &events[0];
    assert_eq!(first.target.pid, 5000);
    assert_eq!(first.target.tty.as_deref(), Some("/dev/ttys003"));
    assert_eq!(first.responsible_pid, Some(4000));
    for ev in &events[1..] {
        assert_eq!(ev.target, first.target);
        assert_eq!(ev.caller, first.caller);
        assert_eq!(ev.responsible_pid, first.responsible_pid);
    }
}

#[test]
fn nasty_lines_decode_as_documented() {
    let lines = lines(fixture("eslogger/nasty.ndjson"));
    let mut d = EsloggerDecoder::new();
    let ev = |n: usize| -> Option<ExecEvent<'_>> {
        EsloggerDecoder::new()
            .decode_line(&lines[n - 1])
            .unwrap_or_else(|e| panic!("nasty line {n}: {e}"))
            .and_then(|e| e.into_exec())
    };
    // 1, 2: raw UTF-8 and the same strings as \u escapes with escaped slashes.
    let raw = ev(1).unwrap();
    let escaped = ev(2).unwrap();
    assert_eq!(raw.target.executable, "/Users/bób/Ünïcødé 文件/kcc 😀");
    assert_eq!(escaped.target.executable, raw.target.executable);
    assert_eq!(args(&escaped), args(&raw));
    assert_eq!(args(&raw), ["kcc 😀", "copy_cred_cache", "naïve"]);
    assert_eq!(escaped.target.cwd, raw.target.cwd);
    assert!(matches!(raw.target.executable, Cow::Borrowed(_)));
    assert_eq!(raw.process_name(), "kcc 😀");
    // 3: lone surrogate and NUL inside argv.
    let lone = ev(3).unwrap();
    assert_eq!(
        args(&lone),
        ["kcc", "\u{FFFD}\u{FFFD}\u{FFFD}x", "a\u{FFFD}b"]
    );
    // 4: 1500 arguments are cut to MAX_ARGS and flagged.
    let many = ev(4).unwrap();
    assert_eq!(many.target.args.len(), MAX_ARGS);
    assert_eq!(many.flags & TRUNC_ARGS, TRUNC_ARGS);
    assert!(many.truncated());
    // 5: empty argv.
    assert!(ev(5).unwrap().target.args.is_empty());
    // 6: shuffled keys, unknown fields, optional fields null.
    let shuffled = ev(6).unwrap();
    assert_eq!(args(&shuffled), ["kcc", "copy_cred_cache"]);
    assert_eq!(shuffled.target.tty, None);
    assert_eq!(shuffled.target.start_time_ns, None);
    assert_eq!(shuffled.target.cwd, None);
    assert_eq!(shuffled.target.signing_id.as_deref(), Some("com.apple.kcc"));
    // 7: only the required fields: everything optional stays None.
    let minimal = ev(7).unwrap();
    assert_eq!(minimal.target.pid, 6008);
    assert_eq!(minimal.target.executable, "/usr/bin/kcc");
    assert_eq!(minimal.target.pidversion, None);
    assert_eq!(minimal.target.ppid, None);
    assert_eq!(minimal.target.euid, None);
    assert_eq!(minimal.target.cwd, None);
    assert_eq!(minimal.target.signing_id, None);
    assert_eq!(minimal.target.cdhash, None);
    assert_eq!(minimal.target.platform_binary, None);
    assert_eq!(minimal.target.cs_flags, None);
    assert_eq!(minimal.caller, Default::default());
    assert_eq!(minimal.responsible_pid, None);
    assert_eq!(
        (minimal.es_seq_num, minimal.es_global_seq_num),
        (None, None)
    );
    assert_eq!(minimal.flags, 0);
    // 8: path_truncated from Endpoint Security is flagged.
    let cut = ev(8).unwrap();
    assert_eq!(
        cut.flags & (TRUNC_EXECUTABLE | TRUNC_CWD),
        TRUNC_EXECUTABLE | TRUNC_CWD
    );
    // 9: huge numbers and deep nesting in fields the decoder skips.
    assert_eq!(args(&ev(9).unwrap()), ["kcc", "list"]);
    // 10: event first, event_type last, auid -1.
    let reordered = ev(10).unwrap();
    assert_eq!(reordered.target.auid, Some(u32::MAX));
    assert_eq!(reordered.target.pid, 6011);
    // 11: quotes, backslashes, control characters.
    assert_eq!(
        args(&ev(11).unwrap()),
        ["sh", "-c", "echo \"a\\b\"\n\tkcc copy_cred_cache"]
    );
    // 12: fork without event_type: skipped by its event key.
    assert!(ev(12).is_none());
    // 13: empty ids are absent; a lowercase cdhash is kept as is.
    let empty_ids = ev(13).unwrap();
    assert_eq!(empty_ids.target.signing_id, None);
    assert_eq!(empty_ids.target.team_id, None);
    assert!(matches!(empty_ids.target.cdhash, Some(Cow::Borrowed(_))));
    // 14, 15: args missing, args null.
    assert!(ev(14).unwrap().target.args.is_empty());
    assert!(ev(15).unwrap().target.args.is_empty());
    assert_eq!(lines.len(), 15);
    for line in &lines {
        d.decode_line(line).unwrap();
    }
}

#[test]
fn an_over_long_argument_is_cut_and_flagged() {
    let line = lines(fixture("eslogger/nasty.ndjson"))[4].replace(
        r#""args":[]"#,
        &format!(r#""args":["echo","{}","tail"]"#, "A".repeat(70_000)),
    );
    let ev = EsloggerDecoder::new()
        .decode_line(&line)
        .unwrap()
        .unwrap()
        .into_exec()
        .unwrap();
    assert_eq!(ev.flags & TRUNC_ARGS, TRUNC_ARGS);
    // Both ends are kept; the argument too long for either is what is dropped.
    assert_eq!(args(&ev), ["echo", "tail"]);
    assert_eq!(ev.target.args.total(), 3, "args_count stays true");
    assert!(ev.validate().is_ok());
}

/// Each malformed line, with a piece of the message it must give.
const MALFORMED: [(usize, &str); 19] = [
    (2, "EOF while parsing"),
    (3, "at `(line)`: expected value at line 1 column 1"),
    (4, "EOF while parsing a value"),
    (5, "at `event.exec.target.audit_token"),
    (6, "at `event.exec.args`: invalid type: string"),
    (7, "invalid length 7"),
    (8, "at `time`: invalid value: string \"20/11/2026 10:00\""),
    (9, "required field `event.exec.target.executable`"),
    (10, "required field `time`"),
    (
        11,
        "at `event.exec.target.ppid`: invalid value: integer `-4`",
    ),
    (12, "at `event.exec.target.audit_token"),
    (13, "trailing characters"),
    (14, "at `event.exec.args"),
    (15, "required field `event`"),
    (
        16,
        "invalid type: sequence, expected an eslogger message object",
    ),
    (17, "duplicate field `executable`"),
    (18, "at `process[0][0]`: invalid type: sequence"),
    (
        19,
        "at `event.exec.target.executable.path`: invalid type: integer `42`",
    ),
    (20, "required field `time`"),
];

#[test]
fn malformed_lines_give_errors_that_say_where() {
    let lines = lines(fixture("eslogger/malformed.ndjson"));
    assert_eq!(lines.len(), 20);
    let mut d = EsloggerDecoder::new();
    assert!(
        d.decode_line(&lines[0]).unwrap().is_some(),
        "line 1 is the valid control"
    );
    for (n, expected) in MALFORMED {
        let err = d
            .decode_line(&lines[n - 1])
            .err()
            .unwrap_or_else(|| panic!("malformed line {n} decoded"));
        let msg = err.to_string();
        assert!(
            msg.contains(expected),
            "line {n}: {msg:?} lacks {expected:?}"
        );
    }
    let err = d.decode_line(&lines[1]).unwrap_err();
    assert!(matches!(err, DecodeError::Json { .. }));
    assert_eq!(err.column(), Some(lines[1].len()));
}

#[test]
fn invalid_utf8_in_a_file_costs_one_argument_not_the_event() {
    let bytes = std::fs::read(fixture("eslogger/invalid-utf8.ndjson")).unwrap();
    let mut d = EsloggerDecoder::new();
    let mut decoded = 0;
    for raw in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        assert!(std::str::from_utf8(raw).is_err() || decoded != 1);
        let line = String::from_utf8_lossy(raw);
        let ev = d.decode_line(&line).unwrap().unwrap().into_exec().unwrap();
        if decoded == 1 {
            assert_eq!(args(&ev), ["kcc", "copy_cred_cache\u{FFFD}\u{FFFD}"]);
        }
        decoded += 1;
    }
    assert_eq!(decoded, 3);
}

#[test]
fn hostile_sizes_and_nesting_are_errors() {
    let mut d = EsloggerDecoder::new();
    let huge = format!(r#"{{"x":"{}"}}"#, "a".repeat(10 << 20));
    assert!(matches!(
        d.decode_line(&huge),
        Err(DecodeError::LineTooLong { .. })
    ));
    let deep = "[".repeat(1 << 20);
    assert!(d.decode_line(&deep).is_err());
    let deep_obj = format!(r#"{{"event":{{"exec":{}"#, r#"{"target":"#.repeat(100_000));
    assert!(d.decode_line(&deep_obj).is_err());
    let skipped_deep = format!(
        r#"{{"time":"2026-11-20T10:00:00Z","x":{}{},"event":{{"exec":{{"target":{{"audit_token":{{"pid":1}},"executable":{{"path":"/a"}}}}}}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let ev = d
        .decode_line(&skipped_deep)
        .unwrap()
        .unwrap()
        .into_exec()
        .unwrap();
    assert_eq!(ev.target.pid, 1);
    for bad in [
        "",
        " ",
        "null",
        "1",
        "\"x\"",
        "{}",
        "[]",
        "{\"event\":null}",
    ] {
        assert!(d.decode_line(bad).is_err(), "{bad:?} decoded");
    }
}

#[test]
fn every_fixture_event_fits_a_ring_record_and_round_trips() {
    use nightjar_proto::codec::{self, Record};
    let mut d = EsloggerDecoder::new();
    let mut n = 0;
    for f in [
        "credential-access",
        "versions",
        "nasty",
        "macos-file-actions",
    ] {
        for line in lines(fixture(&format!("eslogger/{f}.ndjson"))) {
            if let Some(ev) = d.decode_line(&line).unwrap() {
                let bytes = codec::encode_to_vec(&Record::from(ev.clone())).unwrap();
                assert!(bytes.len() <= codec::MAX_RECORD_BYTES);
                assert_eq!(codec::decode(&bytes).unwrap(), Record::from(ev));
                n += 1;
            }
        }
    }
    assert_eq!(
        n,
        (12 + 4) + 7 + (14 + 1) + 16,
        "execs plus the fork, exit, open, quarantine and launch item events"
    );
}

/// Every file event shape eslogger prints, and fork and exit, as `eslogger create close rename
/// unlink fork exit exec` gives them (fixture `file-events.ndjson`, see its README).
#[test]
fn file_fork_and_exit_messages_decode_to_their_events() {
    use nightjar_proto::event::{Event, FileAction};
    let mut d = EsloggerDecoder::new();
    let lines = lines(fixture("eslogger/file-events.ndjson"));
    let events: Vec<Option<Event<'static>>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            d.decode_line(l)
                .unwrap_or_else(|e| panic!("line {}: {e}", i + 1))
                .map(Event::into_owned)
        })
        .collect();
    let file = |i: usize| match &events[i] {
        Some(Event::File(f)) => f.clone(),
        other => panic!("line {}: not a file event: {other:?}", i + 1),
    };
    assert!(
        matches!(&events[0], Some(Event::Fork(f)) if f.parent.pid == 4000 && f.child_pid == 4300)
    );
    assert!(matches!(&events[1], Some(Event::Exec(e)) if e.target.pid == 4300));
    let create = file(2);
    assert_eq!(create.action, FileAction::Creation);
    assert_eq!(
        create.path,
        "/Users/bob/Library/LaunchAgents/.com.apple.updater.plist"
    );
    assert_eq!(create.process.pid, 4300);
    assert_eq!(create.process.executable.as_deref(), Some("/bin/cp"));
    assert_eq!(create.process.pidversion, Some(32));
    assert_eq!(file(3).action, FileAction::Modification);
    assert!(
        events[4].is_none(),
        "a close that modified nothing is no event"
    );
    assert!(
        matches!(&events[5], Some(Event::Exit(x)) if x.process.pid == 4300 && x.exit_code == Some(0)),
        "{:?}",
        events[5]
    );
    let over = file(6);
    assert_eq!(
        (
            over.action,
            over.path.as_ref(),
            over.original_path.as_deref()
        ),
        (
            FileAction::Rename,
            "/Library/LaunchAgents/com.vendor.plist",
            Some("/tmp/x.plist")
        ),
        "message version 7, audit tokens as objects"
    );
    let new = file(7);
    assert_eq!(
        (new.path.as_ref(), new.original_path.as_deref()),
        ("/Library/LaunchDaemons/.y.plist", Some("/tmp/.y.plist")),
        "escaped slashes"
    );
    let gone = file(8);
    assert_eq!(gone.action, FileAction::Deletion);
    assert_eq!(gone.path, "/Users/bob/Library/LaunchAgents/.gone.plist");
    assert_eq!(file(9).path, "/Users/bob/Library/LaunchAgents/.again.plist");
    assert_eq!(file(10).action, FileAction::Modification, "a write");
    assert!(matches!(&events[11], Some(Event::Exit(x)) if x.exit_code == Some(137)));
    for (i, ev) in events.iter().enumerate() {
        if let Some(ev) = ev {
            assert!(ev.validate().is_ok(), "line {}", i + 1);
        }
    }
}

/// `eslogger open deleteextattr btm_launch_item_add` lines (fixture `macos-file-actions.ndjson`,
/// see its README): opens, quarantine removals only of `com.apple.quarantine`, launch agents
/// and daemons only (no login items), their property lists from percent-encoded and
/// app-relative URLs, the instigator as the acting process.
#[test]
fn open_quarantine_and_launch_item_messages_decode_to_file_events() {
    use nightjar_proto::event::{Event, FileAction};
    let mut d = EsloggerDecoder::new();
    let lines = lines(fixture("eslogger/macos-file-actions.ndjson"));
    let events: Vec<Option<Event<'static>>> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            d.decode_line(l)
                .unwrap_or_else(|e| panic!("line {}: {e}", i + 1))
                .map(Event::into_owned)
        })
        .collect();
    let file = |line: usize| match &events[line - 1] {
        Some(Event::File(f)) => f.clone(),
        other => panic!("line {line}: not a file event: {other:?}"),
    };
    let cookies = file(2);
    assert_eq!(cookies.action, FileAction::Open);
    assert_eq!(
        cookies.path,
        "/Users/bob/Library/Application Support/Google/Chrome/Default/Cookies"
    );
    assert_eq!(
        (cookies.process.pid, cookies.process.executable.as_deref()),
        (5200, Some("/Users/Shared/.x/stealer"))
    );
    assert_eq!(cookies.process.cs_flags, Some(0), "unsigned");
    assert_eq!(file(3).process.team_id.as_deref(), Some("EQHXZ8M8AV"));
    assert_eq!(file(4).path, "/usr/lib/libobjc.A.dylib", "escaped slashes");
    assert_eq!(file(7).process.euid, Some(0), "sorted keys");
    let quarantine = file(8);
    assert_eq!(quarantine.action, FileAction::ExtendedAttributesDelete);
    assert_eq!(quarantine.path, "/Users/bob/Downloads/Invoice 2026.app");
    assert_eq!(
        file(9).process.executable.as_deref(),
        Some("/usr/bin/xattr")
    );
    assert!(events[9].is_none(), "another attribute is no event");
    assert_eq!(file(11).action, FileAction::ExtendedAttributesDelete);

    let daemon = file(13);
    assert_eq!(daemon.action, FileAction::LaunchDaemon);
    assert_eq!(
        daemon.path, "/Library/LaunchDaemons/.com.apple.softwareupdate helper.plist",
        "percent-decoded"
    );
    assert_eq!(
        daemon.launch_executable.as_deref(),
        Some("/Users/Shared/.local/.updater")
    );
    assert_eq!(
        (daemon.process.pid, daemon.process.pidversion),
        (5300, Some(42)),
        "the instigator, not backgroundtaskmanagementd"
    );
    let Some(Event::Exec(python)) = &events[11] else {
        panic!("line 12 is the python exec")
    };
    assert_eq!(
        daemon.process.start_time_ns, python.target.start_time_ns,
        "the same process instance as its exec"
    );
    let Some(Event::Exec(launchctl)) = &events[14] else {
        panic!("line 15 is the launchctl exec")
    };
    assert_eq!(launchctl.target.ppid, Some(5300));

    let found = file(16);
    assert_eq!(
        found.path,
        "/Users/bob/Library/LaunchAgents/com.vendor.agent.plist"
    );
    assert_eq!(
        found.process.pid, 150,
        "no instigator: the message's own process"
    );
    assert!(events[16].is_none(), "a login item is no launchd job");
    let bundled = file(18);
    assert_eq!(
        bundled.path,
        "/Applications/Vendor App.app/Contents/Library/LaunchDaemons/com.vendor.helper.plist",
        "relative to the app's URL"
    );
    for (i, ev) in events.iter().enumerate() {
        if let Some(ev) = ev {
            assert!(ev.validate().is_ok(), "line {}", i + 1);
        }
    }
}

#[test]
fn hostile_launch_items_and_opens_are_errors_or_skips_never_panics() {
    let mut d = EsloggerDecoder::new();
    let base = r#"{"time":"2026-11-20T10:00:00Z","event_type":124,"process":{"audit_token":{"pid":150},"executable":{"path":"/usr/libexec/btmd"}},"event":{"btm_launch_item_add":BODY}}"#;
    let with = |body: &str| base.replace("BODY", body);
    // An item that names no local file is an error naming the field.
    let err = d
        .decode_line(&with(
            r#"{"instigator":null,"item":{"item_type":4,"item_url":"https://x/y.plist"}}"#,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("item_url"), "{err}");
    // No item at all, a type that is no number, an instigator without a pid: errors.
    for body in [
        r#"{"instigator":null}"#,
        r#"{"item":{"item_type":"daemon","item_url":"file:///a.plist"}}"#,
        r#"{"instigator":{"audit_token":{}},"item":{"item_type":4,"item_url":"file:///a.plist"}}"#,
    ] {
        assert!(d.decode_line(&with(body)).is_err(), "{body}");
    }
    // An unknown item type is skipped; a missing type too.
    for body in [
        r#"{"item":{"item_type":99,"item_url":"file:///a.plist"}}"#,
        r#"{"item":{"item_url":"file:///a.plist"}}"#,
    ] {
        assert!(d.decode_line(&with(body)).unwrap().is_none(), "{body}");
    }
    let open = r#"{"time":"2026-11-20T10:00:00Z","event_type":10,"process":{"audit_token":{"pid":9}},"event":{"open":{"fflag":1}}}"#;
    assert!(d.decode_line(open).is_err(), "an open without its file");
    let xattr = r#"{"time":"2026-11-20T10:00:00Z","event_type":70,"process":{"audit_token":{"pid":9}},"event":{"deleteextattr":{"target":{"path":"/x"},"extattr":null}}}"#;
    assert!(
        d.decode_line(xattr).is_err(),
        "an attribute that is no string"
    );
}
