//! The eslogger source against a stand-in `eslogger` (`$NIGHTJAR_ESLOGGER`): a script that
//! prints lines of the shared sample, crashes, comes back with a gap in its numbering, exits
//! again, then idles. Everything the sensor publishes and every loss it reports is read back
//! from the ring.

mod sensor_support;

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use nightjar_proto::{LossSource, OsType, Source};
use nightjar_tests::harness::{ChildGuard, TempState, bin, shared};
use sensor_support::RingReader;

const CAPACITY: u64 = 4 * 1024 * 1024;

/// Run 1: sample lines 1-3 (seq 0-2), then dies. Run 2, a new Endpoint Security client that
/// numbers from 0 again: lines 4 and 6 (seq 0 and 2: one exec missing), then exits. Run 3 and
/// later: records its pid and idles.
const FAKE_ESLOGGER: &str = r#"#!/bin/sh
want='exec fork exit setuid setgid seteuid setegid setreuid setregid'
[ "$*" = "$want" ] || { echo "fake eslogger: expected '$want', got '$*'" >&2; exit 64; }
dir=$(dirname "$0")
n=$(cat "$dir/runs" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$dir/runs"
case "$n" in
  1) sed -n '1,3p' "$dir/sample.ndjson"; kill -9 $$ ;;
  2) sed -n '4p;6p' "$dir/sample.ndjson"; exit 0 ;;
  *) echo $$ > "$dir/idle.pid"; exec sleep 600 ;;
esac
"#;

#[test]
fn eslogger_output_crashes_and_gaps_reach_the_ring() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let dir = st.path().join("fake");
    std::fs::create_dir(&dir).unwrap();
    // The shared sample is an excerpt (seq 501..); each run of a real eslogger is a new client
    // numbered from 0, so the lines are renumbered per run.
    let sample = std::fs::read_to_string(shared("fixtures/eslogger/kcc-sample.ndjson")).unwrap();
    let renumbered: Vec<String> = sample
        .lines()
        .enumerate()
        .map(|(i, line)| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            let n = if i < 3 { i } else { i - 3 };
            v["seq_num"] = n.into();
            v["global_seq_num"] = n.into();
            v.to_string()
        })
        .collect();
    std::fs::write(dir.join("sample.ndjson"), renumbered.join("\n") + "\n").unwrap();
    let fake = dir.join("eslogger");
    std::fs::write(&fake, FAKE_ESLOGGER).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut reader = RingReader::open(&st.ring_path(), CAPACITY);
    let log_path = st.path().join("sensor.log");
    let mut sensor = ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "eslogger", "--config"])
            .arg(&cfg)
            .env("NIGHTJAR_ESLOGGER", &fake)
            .stderr(File::create(&log_path).unwrap()),
    );
    let idle_pid = dir.join("idle.pid");
    let done = reader.drain_until(Duration::from_secs(30), &mut |_| true, |s| {
        s.execs.len() >= 5 && s.lost(LossSource::EsloggerRestart) >= 2 && idle_pid.exists()
    });
    let idle = std::fs::read_to_string(&idle_pid).ok();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    sensor.kill9();
    if let Some(pid) = idle.as_deref().and_then(|p| p.trim().parse::<i32>().ok()) {
        // SAFETY: signals the idle stand-in this test started (through the sensor).
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    assert!(done, "ring saw {:?}; sensor log: {log}", reader.seen);
    // Let anything published after the condition arrive before counting exactly.
    reader.drain(&mut |_| true);

    let seen = &reader.seen;
    assert_eq!(
        seen.execs.iter().map(|e| e.es_seq_num).collect::<Vec<_>>(),
        [0, 1, 2, 0, 2].map(Some)
    );
    assert_eq!(
        seen.execs.iter().map(|e| e.sensor_seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5],
        "sensor_seq counts across eslogger restarts"
    );
    for ev in &seen.execs {
        assert_eq!((ev.source, ev.os), (Source::Eslogger, OsType::Macos));
    }
    let kcc = &seen.execs[2];
    assert_eq!(kcc.target.executable, "/usr/bin/kcc");
    assert_eq!(
        kcc.target.args.iter().collect::<Vec<_>>(),
        ["kcc", "copy_cred_cache"]
    );
    assert_eq!(seen.lost(LossSource::EsloggerGap), 1, "{:?}", seen.losses);
    assert_eq!(
        seen.lost(LossSource::EsloggerRestart),
        2,
        "{:?}",
        seen.losses
    );
    assert_eq!(
        reader.stats().upstream_loss,
        3,
        "the header carries the same total"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("runs")).unwrap().trim(),
        "3"
    );
}

#[test]
fn a_missing_eslogger_is_a_clear_runtime_failure() {
    let st = TempState::new();
    let cfg = st.write_config("");
    let missing = st.path().join("no-eslogger-here");
    let out = nightjar_tests::harness::run(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "eslogger", "--config"])
            .arg(&cfg)
            .env("NIGHTJAR_ESLOGGER", &missing),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no-eslogger-here"), "{stderr}");
}
