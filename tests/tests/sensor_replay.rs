//! `nightjar-sensor replay` and the sensor's command-line and config errors, through the real
//! binary and the real ring.

mod sensor_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nightjar_proto::event::FLAG_REPLAYED;
use nightjar_proto::{OsType, Source};
use nightjar_tests::harness::{TempState, bin, run, shared};
use sensor_support::RingReader;

const CAPACITY: u64 = 4 * 1024 * 1024;

/// Replays `fixture` with `args` (format, rate) through the real sensor and reads the ring
/// until `n` exec records arrived, then drains the rest.
fn replay_into_ring(
    st: &TempState,
    cfg: &Path,
    args: &[&str],
    fixture: &Path,
    n: usize,
) -> RingReader {
    let out = run(Command::new(bin("nightjar-sensor"))
        .arg("replay")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .arg(fixture));
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = RingReader::open(&st.ring_path(), CAPACITY);
    let done = reader.drain_until(Duration::from_secs(5), &mut |_| true, |s| {
        s.execs.len() >= n
    });
    assert!(done, "only {} events in the ring", reader.seen.execs.len());
    reader.drain(&mut |_| true);
    reader
}

#[test]
fn replay_of_the_eslogger_sample_puts_its_six_execs_in_the_ring() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let fixture = shared("fixtures/eslogger/kcc-sample.ndjson");
    let reader = replay_into_ring(&st, &cfg, &["--format", "eslogger"], &fixture, 6);
    let execs = &reader.seen.execs;
    assert_eq!(execs.len(), 6);
    assert_eq!(
        execs.iter().map(|e| e.sensor_seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        execs.iter().map(|e| e.es_seq_num).collect::<Vec<_>>(),
        [501, 502, 503, 504, 505, 506].map(Some)
    );
    for ev in execs {
        assert_eq!((ev.source, ev.os), (Source::Eslogger, OsType::Macos));
        assert_eq!(ev.flags & FLAG_REPLAYED, FLAG_REPLAYED);
        assert!(ev.captured_ns > 0);
    }
    let kcc = &execs[2];
    assert_eq!(kcc.target.executable, "/usr/bin/kcc");
    assert_eq!(
        kcc.target.args.iter().collect::<Vec<_>>(),
        ["kcc", "copy_cred_cache"]
    );
    assert!(reader.seen.losses.is_empty(), "{:?}", reader.seen.losses);
    assert_eq!(reader.stats().drops, 0);
}

#[test]
fn replay_reads_standard_input_and_names_bad_lines() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let sample = std::fs::read_to_string(shared("fixtures/eslogger/kcc-sample.ndjson")).unwrap();
    let first = sample.lines().next().unwrap();
    let input = format!("{first}\n{{\"not\": \"eslogger\"\n{first}\n");
    let mut child = Command::new(bin("nightjar-sensor"))
        .args(["replay", "--format", "eslogger", "--config"])
        .arg(&cfg)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("-:2:"), "the bad line is named: {stderr}");

    let mut reader = RingReader::open(&st.ring_path(), CAPACITY);
    reader.drain_until(Duration::from_secs(5), &mut |_| true, |s| {
        s.execs.len() >= 2
    });
    assert_eq!(
        reader.seen.execs.len(),
        2,
        "the good lines around it went through"
    );
}

/// A recorded file's name and its lines are outside text: the report of a bad line must not
/// carry a raw escape to the terminal that reads it (a hostile variant name in a line would
/// be printed by serde as it is; the file name always is).
#[test]
fn bad_line_reports_escape_terminal_controls() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let file = st.path().join("rec\u{1b}]0;owned\u{7}\u{1b}[2J.ndjson");
    std::fs::write(&file, "{\"not\": \"eslogger\"}\n").unwrap();
    let out = run(Command::new(bin("nightjar-sensor"))
        .args(["replay", "--format", "eslogger", "--config"])
        .arg(&cfg)
        .arg(&file));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !out.stderr.iter().any(|&b| b == 0x1b || b == 0x07),
        "raw control in: {stderr:?}"
    );
    assert!(
        stderr.contains("rec\\x1b]0;owned\\x07\\x1b[2J.ndjson:1:"),
        "the line is named, escaped: {stderr}"
    );
}

#[test]
fn config_errors_name_the_file_and_key_and_exit_2() {
    let st = TempState::new();
    let fixture = shared("fixtures/eslogger/kcc-sample.ndjson");
    let cases = [
        ("ring_pth = \"/tmp/x\"\n", "`ring_pth`"),
        (
            "[upload]\nurl = \"https://x\"\nretries = 3\n",
            "`upload.retries`",
        ),
        ("ring_capacity_bytes = 1000\n", "`ring_capacity_bytes`"),
        ("ring_path = 7\n", "`ring_path`"),
    ];
    for (body, key) in cases {
        let cfg = st.path().join("bad.toml");
        std::fs::write(&cfg, body).unwrap();
        for args in [
            vec!["replay", "--format", "eslogger"],
            vec!["run", "--source", "eslogger"],
        ] {
            let out = run(Command::new(bin("nightjar-sensor"))
                .args(&args)
                .arg("--config")
                .arg(&cfg)
                .args(if args[0] == "replay" {
                    vec![fixture.as_os_str()]
                } else {
                    vec![]
                }));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?} {body:?}: {stderr}");
            assert!(
                stderr.contains(&cfg.display().to_string()) && stderr.contains(key),
                "{args:?} {body:?}: {stderr}"
            );
        }
    }

    // $NIGHTJAR_CONFIG is used when --config is absent.
    let cfg = st.path().join("env.toml");
    std::fs::write(&cfg, "bogus = 1\n").unwrap();
    let out = run(Command::new(bin("nightjar-sensor"))
        .env("NIGHTJAR_CONFIG", &cfg)
        .args(["replay", "--format", "eslogger"])
        .arg(&fixture));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("env.toml") && stderr.contains("`bogus`"),
        "{stderr}"
    );

    // A named config that does not exist, an unknown source, a missing input file.
    let missing = st.path().join("missing.toml");
    let out = run(Command::new(bin("nightjar-sensor"))
        .args(["run", "--config"])
        .arg(&missing));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    let out = run(Command::new(bin("nightjar-sensor")).args(["run", "--source", "dtrace"]));
    assert_eq!(out.status.code(), Some(2));
    let good = st.write_config("");
    let out = run(Command::new(bin("nightjar-sensor"))
        .args(["replay", "--format", "eslogger", "--config"])
        .arg(&good)
        .arg(st.path().join("no-such.ndjson")));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such.ndjson"));
}

#[test]
fn replay_of_ecs_documents_puts_only_process_starts_in_the_ring() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let fixture =
        nightjar_tests::harness::workspace_root().join("tests/fixtures/ecs/defend-process.ndjson");
    let reader = replay_into_ring(
        &st,
        &cfg,
        &["--format", "ecs", "--rate", "1000"],
        &fixture,
        6,
    );
    let execs = &reader.seen.execs;
    assert_eq!(
        execs.len(),
        6,
        "six of the twelve documents are process starts"
    );
    assert!(
        execs
            .iter()
            .all(|e| e.source == Source::Ecs && e.flags & FLAG_REPLAYED != 0)
    );
    assert_eq!(execs[0].target.executable, "/usr/bin/kcc");
    assert_eq!(
        execs[0].target.args.iter().collect::<Vec<_>>(),
        ["kcc", "copy_cred_cache"]
    );
}

#[test]
fn invalid_utf8_in_a_line_is_replaced_not_fatal() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let fixture = nightjar_tests::harness::workspace_root()
        .join("tests/fixtures/eslogger/invalid-utf8.ndjson");
    let reader = replay_into_ring(&st, &cfg, &["--format", "eslogger"], &fixture, 3);
    assert_eq!(reader.seen.execs.len(), 3);
    let odd = &reader.seen.execs[1];
    assert!(
        odd.target
            .args
            .iter()
            .any(|a| a.starts_with("copy_cred_cache") && a.contains('\u{FFFD}')),
        "{:?}",
        odd.target.args
    );
}
