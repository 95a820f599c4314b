//! `scripts/bench rules`: rule evaluation throughput.
//!
//! Over a generated stream of exec events (mostly common binaries, a few rule hits, parents in
//! the process table) it measures, best of several runs:
//! - `seed_events_per_s`: the built-in seed rule alone;
//! - `macos_set_events_per_s`: every supported rule of both macOS folders at once;
//! - `baseline_naive_events_per_s`: the same set through `rules::naive` (a serde_json document
//!   built per event, every rule interpreted over it), measured in the same run on the first
//!   200,000 events of the stream (it is two orders of magnitude slower), after checking that
//!   both evaluators give the same answers on every distinct event;
//! - `scan_eslogger_events_per_s` and `scan_peak_rss_mib`: `nightjar-agent scan` (release
//!   binary) over a generated eslogger file.
//!
//! The last stdout line is one JSON object.

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nightjar_agent::process_table::ProcessTable;
use nightjar_proto::{Args, ExecEvent, Target};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use serde_json::json;

const POOL: usize = 16_384;
const EVENTS: usize = 2_000_000;
const NAIVE_EVENTS: usize = 200_000;
const RUNS: usize = 5;
const SCAN_LINES: usize = 100_000;

/// Common binaries and their usual arguments.
const COMMON: &[(&str, &[&str])] = &[
    ("/bin/ls", &["ls", "-la", "/Users/bob/src"]),
    ("/usr/bin/git", &["git", "status", "--porcelain"]),
    ("/usr/bin/grep", &["grep", "-r", "TODO", "."]),
    ("/bin/cat", &["cat", "/etc/hosts"]),
    ("/bin/sh", &["sh", "-c", "echo hello | wc -c"]),
    ("/bin/zsh", &["-zsh"]),
    ("/usr/bin/sed", &["sed", "-e", "s/a/b/", "file.txt"]),
    ("/usr/bin/xcrun", &["xcrun", "--show-sdk-path"]),
    (
        "/usr/bin/clang",
        &["clang", "-c", "main.c", "-o", "main.o", "-O2", "-Wall"],
    ),
    (
        "/usr/libexec/xpcproxy",
        &["xpcproxy", "com.apple.mdworker.shared"],
    ),
    (
        "/System/Library/Frameworks/CoreServices.framework/Frameworks/Metadata.framework/Versions/A/Support/mdworker_shared",
        &[
            "mdworker_shared",
            "-s",
            "mdworker",
            "-c",
            "MDSImporterWorker",
            "-m",
            "com.apple.mdworker.shared",
        ],
    ),
    (
        "/usr/local/bin/node",
        &["node", "/Users/bob/app/server.js", "--port", "8080"],
    ),
    (
        "/usr/bin/python3",
        &["python3", "-m", "pip", "install", "requests"],
    ),
    (
        "/usr/bin/defaults",
        &["defaults", "read", "com.apple.finder"],
    ),
    ("/usr/bin/security", &["security", "list-keychains"]),
    ("/bin/launchctl", &["launchctl", "list"]),
    ("/usr/bin/curl", &["curl", "-s", "https://example.com/api"]),
    (
        "/usr/sbin/networksetup",
        &["networksetup", "-listallnetworkservices"],
    ),
    (
        "/usr/bin/osascript",
        &["osascript", "-e", "tell application \"Finder\" to activate"],
    ),
    (
        "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
        &["Google Chrome", "--type=renderer"],
    ),
];

/// Rare events some rule matches.
const HITS: &[(&str, &[&str])] = &[
    ("/usr/bin/kcc", &["kcc", "copy_cred_cache"]),
    (
        "/usr/bin/security",
        &["security", "find-generic-password", "-wa", "Chrome"],
    ),
    (
        "/usr/sbin/networksetup",
        &["networksetup", "-setwebproxy", "Wi-Fi", "127.0.0.1", "8080"],
    ),
    (
        "/usr/bin/osascript",
        &[
            "osascript",
            "-e",
            "display dialog \"Enter your password\" with hidden answer",
        ],
    ),
    (
        "/usr/bin/dscl",
        &[".", "-create", "/Users/x", "IsHidden", "1"],
    ),
];

fn pick(i: usize) -> (&'static str, &'static [&'static str]) {
    // About 1 in 500 events is a hit.
    let h = i.wrapping_mul(2_654_435_761) % 500;
    if h == 0 {
        HITS[(i / 500) % HITS.len()]
    } else {
        COMMON[h % COMMON.len()]
    }
}

fn pool() -> Vec<ExecEvent<'static>> {
    (0..POOL)
        .map(|i| {
            let (exe, args) = pick(i);
            let pid = 1000 + i as u32;
            ExecEvent {
                sensor_seq: i as u64 + 1,
                time_ns: 1_700_000_000_000_000_000 + i as i64,
                target: Target {
                    pid,
                    ppid: Some(if i > 0 { 1000 + (i as u32 - 1) / 3 } else { 1 }),
                    euid: Some(if i % 7 == 0 { 0 } else { 501 }),
                    egid: Some(20),
                    executable: Cow::Borrowed(exe),
                    args: Args::from_strs(args).0,
                    cwd: Some(Cow::Borrowed("/Users/bob")),
                    signing_id: Some(Cow::Borrowed("com.apple.bin")),
                    team_id: None,
                    cs_flags: Some(0x2000_0001),
                    ..Target::default()
                },
                responsible_pid: Some(1000),
                ..ExecEvent::default()
            }
        })
        .collect()
}

fn best_rate(runs: usize, events: usize, mut run: impl FnMut(usize) -> usize) -> (f64, usize) {
    let mut best = 0f64;
    let mut hits = 0;
    for _ in 0..runs {
        let start = Instant::now();
        hits = run(events);
        let rate = events as f64 / start.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    (best, hits)
}

fn main() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/elastic-rules");
    let (seed, _) = RuleSet::load(&[], true, None).expect("built-in rule");
    let (macos, report) = RuleSet::load(
        &[
            shared.join("macos-kuery-c58d59ee"),
            shared.join("macos-head-14cf530f"),
        ],
        false,
        None,
    )
    .expect("shared rules readable (../shared next to the repository)");
    eprintln!(
        "macOS set: {} supported rules ({} files)",
        macos.rules().len(),
        report.entries.len()
    );
    let naive = macos.naive();

    let events = pool();
    let host = HostInfo::new("bench-mac", "bench-host");
    host.set_user_name(0, Some("root"));
    host.set_user_name(501, Some("bob"));
    let mut table = ProcessTable::new(65_536);
    for ev in &events {
        table.observe(ev);
    }
    let mut out = Vec::with_capacity(128);

    let mut run_set = |set: &RuleSet, n: usize| {
        let mut hits = 0;
        for i in 0..n {
            let ev = &events[i % POOL];
            set.evaluate(&EcsEvent::new(ev, &table, &host), &mut out);
            hits += out.len();
        }
        black_box(hits)
    };
    let (seed_rate, seed_hits) = best_rate(RUNS, EVENTS, |n| run_set(&seed, n));
    eprintln!("seed rule: {seed_rate:.0} events/s ({seed_hits} alerts per run)");
    let (set_rate, set_hits) = best_rate(RUNS, EVENTS, |n| run_set(&macos, n));
    eprintln!("macOS set: {set_rate:.0} events/s ({set_hits} alerts per run)");
    let mut nout = Vec::new();
    let (naive_rate, naive_hits) = best_rate(2, NAIVE_EVENTS, |n| {
        let mut hits = 0;
        for i in 0..n {
            let ev = &events[i % POOL];
            naive.evaluate(&EcsEvent::new(ev, &table, &host), &mut nout);
            hits += nout.len();
        }
        black_box(hits)
    });
    eprintln!("naive baseline: {naive_rate:.0} events/s ({naive_hits} alerts per run)");
    // Both evaluators must give the same answers on the stream.
    let (mut fast, mut slow) = (Vec::new(), Vec::new());
    for ev in &events {
        let view = EcsEvent::new(ev, &table, &host);
        macos.evaluate(&view, &mut fast);
        naive.evaluate(&view, &mut slow);
        assert_eq!(
            fast, slow,
            "compiled and naive disagree on pid {}",
            ev.target.pid
        );
    }

    let mut figures = json!({
        "seed_events_per_s": seed_rate.round(),
        "macos_set_events_per_s": set_rate.round(),
        "baseline_naive_events_per_s": naive_rate.round(),
        "macos_set_speedup_vs_naive": (set_rate / naive_rate * 10.0).round() / 10.0,
        "macos_set_rules": macos.rules().len(),
        "events_per_run": EVENTS,
    });
    match scan_bench(&shared) {
        Ok((rate, rss)) => {
            eprintln!("scan: {rate:.0} eslogger events/s, peak RSS {rss:.1} MiB");
            figures["scan_eslogger_events_per_s"] = json!(rate.round());
            figures["scan_peak_rss_mib"] = json!((rss * 10.0).round() / 10.0);
            figures["scan_lines"] = json!(SCAN_LINES);
        }
        Err(e) => eprintln!("scan benchmark skipped: {e}"),
    }
    println!("{figures}");
}

/// Runs the release `nightjar-agent scan` over a generated eslogger file; best events/s of
/// three runs and the largest peak RSS (MiB).
fn scan_bench(shared: &Path) -> Result<(f64, f64), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let agent = exe.with_file_name("nightjar-agent");
    if !agent.exists() {
        return Err(format!("{} not built", agent.display()));
    }
    let template_path = shared.join("../fixtures/eslogger/kcc-sample.ndjson");
    let text = std::fs::read_to_string(&template_path)
        .map_err(|e| format!("{}: {e}", template_path.display()))?;
    let line = text.lines().nth(2).ok_or("template line missing")?;
    let template: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("events.ndjson");
    write_eslogger(&template, &file).map_err(|e| e.to_string())?;
    let mut best = 0f64;
    let mut rss = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let status = Command::new(&agent)
            .args(["scan", "--format", "eslogger"])
            .arg(&file)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        let secs = start.elapsed().as_secs_f64();
        if !status.success() {
            return Err(format!("scan exited with {status}"));
        }
        best = best.max(SCAN_LINES as f64 / secs);
        rss = rss.max(children_max_rss_mib());
    }
    Ok((best, rss))
}

fn write_eslogger(template: &serde_json::Value, path: &PathBuf) -> std::io::Result<()> {
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    let mut ev = template.clone();
    for i in 0..SCAN_LINES {
        let (exe, args) = pick(i);
        let pid = 1000 + i as u64;
        let ppid = if i > 0 { 1000 + (i as u64 - 1) / 3 } else { 1 };
        ev["process"]["audit_token"]["pid"] = json!(pid);
        ev["process"]["ppid"] = json!(ppid);
        ev["process"]["parent_audit_token"]["pid"] = json!(ppid);
        ev["global_seq_num"] = json!(10_000 + i);
        ev["seq_num"] = json!(5_000 + i);
        let target = &mut ev["event"]["exec"]["target"];
        target["audit_token"]["pid"] = json!(pid);
        target["ppid"] = json!(ppid);
        target["parent_audit_token"]["pid"] = json!(ppid);
        target["executable"]["path"] = json!(exe);
        ev["event"]["exec"]["args"] = json!(args);
        serde_json::to_writer(&mut w, &ev)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

fn children_max_rss_mib() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    // Linux reports KiB.
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| u.max_rss() as f64 / 1024.0)
}
