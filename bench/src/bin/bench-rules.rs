//! `scripts/bench rules`: rule evaluation throughput.
//!
//! Over a generated stream of exec events (mostly common binaries, a few rule hits, parents in
//! the process table) it measures, best of several runs:
//! - `seed_events_per_s`: the built-in seed rule alone;
//! - `macos_set_events_per_s`: every event query (stages of stateful rules included) of
//!   every supported rule of both macOS folders at once, through the matcher (the older
//!   folder's copies of a rule under their own `rule_id`, since a rule set holds each
//!   `rule_id` once), with the check against exceptions every event rule's match takes;
//! - `macos_set_exceptions_events_per_s`: the same rules and stream with a realistic
//!   endpoint exception list of 200 items (Kibana's export format; every item applies to
//!   every rule), measured interleaved with the run above; `exceptions_cost_ratio` is the
//!   per-event cost with the list over the cost without (the target is at most 1.10);
//! - `exception_check_ns_per_match`: what checking one match against the 200 items costs,
//!   on a stream of matches alone;
//! - `baseline_naive_events_per_s`: the same set through `rules::naive` (a serde_json document
//!   built per event, every rule interpreted over it), measured in the same run on the first
//!   200,000 events of the stream (it is two orders of magnitude slower), after checking that
//!   both evaluators give the same answers on every distinct event;
//! - `scan_eslogger_events_per_s` and `scan_peak_rss_mib`: `nightjar-agent scan` (release
//!   binary) over a generated eslogger file (measured before what follows: a child's peak
//!   RSS counts the bench's memory at the time it is spawned);
//! - `all_runnable_events_per_s`: every runnable rule of both head folders (macOS and Linux)
//!   at once, stateful ones included, through the detection engine (sequences, samples,
//!   thresholds, new_terms) over a mixed stream of macOS and Linux execs (one in four Linux),
//!   100 µs apart; `baseline_naive_all_events_per_s` is the reference interpreter
//!   (`naive::stateful`: a document per event, every query interpreted, plain maps for
//!   state) on the first 200,000 events in the same run, after checking that both find the
//!   same detections on them; `all_runnable_events_per_cpu_s` and
//!   `baseline_naive_all_events_per_cpu_s` are the same runs' rates per second of the
//!   measuring thread's CPU time (the per-core figure: on a shared machine the wall rate
//!   also counts the time other processes held the core);
//! - `sequence_state_bytes` / `sequence_state_held`: the engine's state after that run; and
//!   `adversarial_state_peak_bytes` / `_held` / `_evicted`: a stream of 1,000,000 distinct
//!   join keys, each starting a partial match that never completes, against the default
//!   bounds (10,000 per rule, 64 MiB in total).
//!
//! The last stdout line is one JSON object.

use std::borrow::Cow;
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use nightjar_agent::process_table::ProcessTable;
use nightjar_proto::{Args, ExecEvent, OsType, Target};
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::engine::{Detection, Engine, Limits};
use nightjar_rules::naive::stateful::{Found, NaiveEngine};
use nightjar_rules::{RuleSet, SourceText, Sources, read_rule_files};
use serde_json::{Value, json};

const POOL: usize = 16_384;
const EVENTS: usize = 2_000_000;
const NAIVE_EVENTS: usize = 200_000;
const RUNS: usize = 5;
const SCAN_LINES: usize = 100_000;
/// Exception items in the realistic list.
const EXCEPTION_ITEMS: usize = 200;
/// Clock for `expire_time` checks (none of the generated items expires).
const NOW_NS: i64 = 1_800_000_000_000_000_000;

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

/// Common Linux binaries and their usual arguments.
const LINUX_COMMON: &[(&str, &[&str])] = &[
    ("/usr/bin/bash", &["bash", "-c", "echo ok"]),
    ("/usr/bin/ls", &["ls", "-la", "/var/log"]),
    ("/usr/bin/cat", &["cat", "/etc/os-release"]),
    ("/usr/bin/grep", &["grep", "-r", "error", "/var/log/syslog"]),
    ("/usr/bin/sed", &["sed", "-n", "1p", "file"]),
    ("/usr/bin/python3", &["python3", "/opt/app/worker.py"]),
    ("/usr/bin/systemctl", &["systemctl", "status", "nginx"]),
    ("/usr/bin/git", &["git", "pull", "--rebase"]),
    (
        "/usr/bin/curl",
        &["curl", "-fsS", "http://localhost:8080/health"],
    ),
    ("/usr/bin/sleep", &["sleep", "5"]),
    ("/usr/bin/find", &["find", "/tmp", "-mtime", "+7"]),
    ("/usr/bin/ps", &["ps", "aux"]),
    ("/usr/bin/tar", &["tar", "czf", "backup.tgz", "/srv/data"]),
    ("/usr/bin/docker", &["docker", "ps"]),
    ("/usr/bin/node", &["node", "/srv/app/index.js"]),
];

/// Rare Linux events some rule (or a sequence's stage) matches.
const LINUX_HITS: &[(&str, &[&str])] = &[
    ("/usr/bin/ps", &["ps", "-eo", "pid", "command"]),
    ("/usr/bin/kill", &["kill", "-9", "4242"]),
    ("/usr/bin/mkfifo", &["mkfifo", "/tmp/f"]),
    (
        "/usr/bin/xclip",
        &["xclip", "-o", "-selection", "clipboard"],
    ),
    ("/usr/bin/base64", &["base64", "-d", "/tmp/payload"]),
    ("/usr/bin/nohup", &["nohup", "/tmp/run.sh"]),
];

/// macOS events stateful rules count: pbpaste (a burst makes the sequence), sshd sessions
/// (the threshold).
const STATEFUL_HITS: &[(&str, &[&str])] = &[
    ("/usr/bin/pbpaste", &["pbpaste"]),
    ("/usr/libexec/sshd-keygen-wrapper", &["sshd-keygen-wrapper"]),
];

/// The event at position `i` of the mixed pool and its OS: one in four is Linux.
fn pick_os(i: usize) -> (&'static str, &'static [&'static str], OsType) {
    let h = i.wrapping_mul(2_654_435_761) % 500;
    if i % 4 == 3 {
        let (e, a) = if h == 0 {
            LINUX_HITS[(i / 500) % LINUX_HITS.len()]
        } else {
            LINUX_COMMON[h % LINUX_COMMON.len()]
        };
        return (e, a, OsType::Linux);
    }
    let (e, a) = if h == 1 {
        STATEFUL_HITS[(i / 500) % STATEFUL_HITS.len()]
    } else {
        pick(i)
    };
    (e, a, OsType::Macos)
}

/// The mixed pool: macOS and Linux execs, parents in the table.
fn mixed_pool() -> Vec<ExecEvent<'static>> {
    let mut events = pool();
    for (i, ev) in events.iter_mut().enumerate() {
        let (exe, args, os) = pick_os(i);
        ev.os = os;
        ev.target.executable = Cow::Borrowed(exe);
        ev.target.args = Args::from_strs(args).0;
        if os == OsType::Linux {
            ev.target.cwd = Some(Cow::Borrowed("/home/bob"));
            ev.target.signing_id = None;
            ev.target.cs_flags = None;
        }
    }
    events
}

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

fn best_rate(runs: usize, events: usize, run: impl FnMut(usize) -> usize) -> (f64, usize) {
    let (rate, _, hits) = best_rates(runs, events, run);
    (rate, hits)
}

/// The best wall rate and the best rate per second of this thread's CPU time (user and
/// system) of `runs` runs: on a shared machine the wall rate counts the time other
/// processes held the core, the CPU rate only the time the run itself ran.
fn best_rates(
    runs: usize,
    events: usize,
    mut run: impl FnMut(usize) -> usize,
) -> (f64, f64, usize) {
    let mut best = 0f64;
    let mut best_cpu = 0f64;
    let mut hits = 0;
    for _ in 0..runs {
        let cpu = thread_cpu_s();
        let start = Instant::now();
        hits = run(events);
        let rate = events as f64 / start.elapsed().as_secs_f64();
        let cpu = thread_cpu_s() - cpu;
        best = best.max(rate);
        if cpu > 0.0 {
            best_cpu = best_cpu.max(events as f64 / cpu);
        }
    }
    (best, best_cpu, hits)
}

/// CPU time this thread has used, seconds.
fn thread_cpu_s() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 * 1e-6;
        t(u.user_time()) + t(u.system_time())
    })
}

fn main() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/elastic-rules");
    // `bench-rules all_runnable`: that part only (for profiling).
    if std::env::args().nth(1).as_deref() == Some("all_runnable") {
        let mut figures = json!({});
        all_runnable(&shared, &mut figures);
        println!("{figures}");
        return;
    }
    let (seed, _) = RuleSet::load(&[], true, None).expect("built-in rule");
    let rules = macos_rules(&shared);
    let (macos, report) = RuleSet::build(Sources {
        rules: rules.clone(),
        ..Sources::default()
    });
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    eprintln!(
        "macOS set: {} supported rules ({} files)",
        macos.rules().len(),
        report.entries.len()
    );
    let (with_exceptions, ereport) = RuleSet::build(Sources {
        rules,
        exceptions: vec![SourceText {
            name: "endpoint-exceptions.ndjson".into(),
            text: exception_list(EXCEPTION_ITEMS),
        }],
        ..Sources::default()
    });
    assert!(ereport.problems().is_empty(), "{:?}", ereport.problems());
    assert_eq!(ereport.exception_items, EXCEPTION_ITEMS);
    assert_eq!(with_exceptions.rules().len(), macos.rules().len());
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

    // As the agent's reader does: evaluate, then check each match against exceptions.
    let run_set = |set: &RuleSet, pool: &[ExecEvent<'static>], n: usize, out: &mut Vec<usize>| {
        let mut alerts = 0;
        for i in 0..n {
            let view = EcsEvent::new(&pool[i % pool.len()], &table, &host);
            set.evaluate_slots(&view, out);
            for &r in out.iter() {
                if r < set.event_rules() && set.excepted(r, &view, NOW_NS).is_none() {
                    alerts += 1;
                }
            }
        }
        black_box(alerts)
    };
    let (seed_rate, seed_hits) = best_rate(RUNS, EVENTS, |n| run_set(&seed, &events, n, &mut out));
    eprintln!("seed rule: {seed_rate:.0} events/s ({seed_hits} alerts per run)");
    // The sets with and without exceptions alternate, so both see the same machine.
    let (mut set_rate, mut exc_rate) = (0f64, 0f64);
    let (mut set_hits, mut exc_hits) = (0, 0);
    for _ in 0..RUNS {
        let (r, h) = best_rate(1, EVENTS, |n| run_set(&macos, &events, n, &mut out));
        (set_rate, set_hits) = (set_rate.max(r), h);
        let (r, h) = best_rate(1, EVENTS, |n| {
            run_set(&with_exceptions, &events, n, &mut out)
        });
        (exc_rate, exc_hits) = (exc_rate.max(r), h);
    }
    eprintln!("macOS set: {set_rate:.0} events/s ({set_hits} alerts per run)");
    eprintln!(
        "macOS set + {EXCEPTION_ITEMS} exception items: {exc_rate:.0} events/s ({exc_hits} alerts per run)"
    );
    // A stream of nothing but rule hits: every event pays the exception check.
    let hits_only: Vec<ExecEvent<'static>> = events
        .iter()
        .filter(|ev| {
            macos.evaluate(&EcsEvent::new(ev, &table, &host), &mut out);
            !out.is_empty()
        })
        .cloned()
        .collect();
    let matches_per_pass: usize = hits_only
        .iter()
        .map(|ev| {
            macos.evaluate(&EcsEvent::new(ev, &table, &host), &mut out);
            out.len()
        })
        .sum();
    let hit_events = 200_000;
    let (mut plain, mut checked) = (0f64, 0f64);
    for _ in 0..RUNS {
        plain = plain.max(best_rate(1, hit_events, |n| run_set(&macos, &hits_only, n, &mut out)).0);
        checked = checked.max(
            best_rate(1, hit_events, |n| {
                run_set(&with_exceptions, &hits_only, n, &mut out)
            })
            .0,
        );
    }
    let per_match_ns =
        (1e9 / checked - 1e9 / plain) * hits_only.len() as f64 / matches_per_pass.max(1) as f64;
    eprintln!(
        "exception check: {per_match_ns:.0} ns per match ({} matching events, {:.2} matches each)",
        hits_only.len(),
        matches_per_pass as f64 / hits_only.len().max(1) as f64
    );
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
        macos.evaluate_slots(&view, &mut fast);
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
        "macos_set_exceptions_events_per_s": exc_rate.round(),
        "exception_items": EXCEPTION_ITEMS,
        "exceptions_cost_ratio": (set_rate / exc_rate * 1000.0).round() / 1000.0,
        "exception_check_ns_per_match": per_match_ns.round(),
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
    all_runnable(&shared, &mut figures);
    println!("{figures}");
}

/// Events of the all-runnable stream are this far apart.
const SPACING_NS: i64 = 100_000;

/// The rules of both head folders.
fn head_rules(shared: &Path) -> (RuleSet, nightjar_rules::LoadReport) {
    RuleSet::load(
        &[
            shared.join("macos-head-14cf530f"),
            shared.join("linux-head-14cf530f"),
        ],
        false,
        None,
    )
    .expect("shared rules readable")
}

/// Sets the time and capture order of pool event `c` of the stream and returns it.
fn at<'e>(events: &'e mut [ExecEvent<'static>], c: i64) -> &'e ExecEvent<'static> {
    let ev = &mut events[(c as usize) % POOL];
    ev.time_ns = T0 + c * SPACING_NS;
    ev.sensor_seq = c as u64;
    ev
}

const T0: i64 = 1_700_000_000_000_000_000;

/// What a detection is, for comparing the engine with the reference.
fn detection_key(d: &Detection) -> String {
    match d {
        Detection::Event { rule } => format!("e{rule}"),
        Detection::Correlated { rule, events } => format!(
            "c{rule}:{:?}",
            events
                .iter()
                .map(|e| e.event().meta().sensor_seq)
                .collect::<Vec<_>>()
        ),
        Detection::NewTerms { rule, .. } => format!("n{rule}"),
        Detection::Threshold { rule, .. } => format!("t{rule}"),
    }
}

fn found_key(f: &Found) -> String {
    match f {
        Found::Event { rule, .. } => format!("e{rule}"),
        Found::Correlated { rule, seqs } => format!("c{rule}:{seqs:?}"),
        Found::NewTerms { rule, .. } => format!("n{rule}"),
        Found::Threshold { rule, .. } => format!("t{rule}"),
    }
}

/// Every runnable rule of both head folders through the engine, against the reference
/// interpreter; state memory after the run and under an adversarial stream.
fn all_runnable(shared: &Path, figures: &mut serde_json::Value) {
    let (set, report) = head_rules(shared);
    let stateful = set.programs().iter().filter(|p| p.is_stateful()).count();
    let rules = set.rules().len();
    eprintln!(
        "all runnable: {rules} rules ({stateful} stateful, {} event queries) of {} files",
        set.slots(),
        report.entries.len()
    );
    let mut events = mixed_pool();
    let host = HostInfo::new("bench-host", "bench-host");
    host.set_user_name(0, Some("root"));
    host.set_user_name(501, Some("bob"));
    let mut table = ProcessTable::new(65_536);
    for ev in &events {
        table.observe(ev);
    }
    let mut engine = Engine::new(set, Limits::default());
    let mut out: Vec<Detection> = Vec::with_capacity(64);
    let mut clock = 0i64;
    // Profiling: `NIGHTJAR_BENCH_ENGINE_ONLY=N` runs the engine alone, once, over N events.
    let only: Option<usize> = std::env::var("NIGHTJAR_BENCH_ENGINE_ONLY")
        .ok()
        .map(|n| n.parse().unwrap_or(EVENTS));
    let (runs, n_events) = only.map_or((RUNS, EVENTS), |n| (1, n));
    let (rate, cpu_rate, detections) = best_rates(runs, n_events, |n| {
        let mut detections = 0;
        for _ in 0..n {
            clock += 1;
            let ev = at(&mut events, clock);
            out.clear();
            engine.on_event(&EcsEvent::new(ev, &table, &host), &mut out);
            detections += out.len();
        }
        black_box(detections)
    });
    let state = engine.stats();
    eprintln!(
        "all runnable: {rate:.0} events/s, {cpu_rate:.0} per CPU second ({:.0} ns CPU per event; {detections} detections per run); state {} entries, {} bytes, {} evicted",
        1e9 / cpu_rate,
        state.held,
        state.bytes,
        state.evicted
    );
    if only.is_some() {
        return;
    }

    // The reference on the first events of the stream, then agreement on them.
    let (set, _) = head_rules(shared);
    let mut naive = NaiveEngine::new(&set);
    let mut found: Vec<Found> = Vec::new();
    let (naive_rate, naive_cpu_rate, _) = best_rates(1, NAIVE_EVENTS, |n| {
        for c in 1..=n as i64 {
            let ev = at(&mut events, c);
            let doc = EcsEvent::new(ev, &table, &host).document();
            naive.on_document(&doc, ev.time_ns, ev.sensor_seq, &mut found);
        }
        black_box(found.len())
    });
    naive.finish(&mut found);
    eprintln!(
        "naive all-runnable baseline: {naive_rate:.0} events/s, {naive_cpu_rate:.0} per CPU second"
    );
    let (set, _) = head_rules(shared);
    let mut fresh = Engine::new(
        set,
        Limits {
            reorder_window: std::time::Duration::ZERO,
            ..Limits::default()
        },
    );
    let mut fast = Vec::new();
    for c in 1..=NAIVE_EVENTS as i64 {
        let ev = at(&mut events, c);
        fresh.on_event(&EcsEvent::new(ev, &table, &host), &mut fast);
    }
    fresh.finish(&mut fast);
    let mut a: Vec<String> = fast.iter().map(detection_key).collect();
    let mut b: Vec<String> = found.iter().map(found_key).collect();
    a.sort();
    b.sort();
    assert!(
        a == b,
        "engine and reference disagree on the stream ({} vs {} detections)",
        a.len(),
        b.len()
    );
    let correlated = a.iter().filter(|k| k.starts_with('c')).count();
    eprintln!(
        "agreement: {} detections on {NAIVE_EVENTS} events ({correlated} correlations)",
        a.len()
    );

    // Adversarial: every event starts a partial match on a new key.
    let rule = r#"[rule]
rule_id = "adv"
name = "adv"
severity = "low"
risk_score = 1
type = "eql"
query = '''
sequence by process.pid with maxspan=1h [process where process.name == "a"] [process where process.name == "b"]
'''
"#;
    let (adv, _) = RuleSet::from_texts(&[("adv.toml", rule)], None);
    let mut engine = Engine::new(adv, Limits::default());
    let mut ev = events[0].clone();
    ev.target.executable = Cow::Borrowed("/usr/bin/a");
    let mut peak = 0u64;
    for i in 0..1_000_000u32 {
        ev.target.pid = i;
        ev.time_ns = T0 + i64::from(i) * SPACING_NS;
        ev.sensor_seq = u64::from(i);
        out.clear();
        engine.on_event(
            &EcsEvent::new(&ev, &nightjar_rules::ecs::NoProcesses, &host),
            &mut out,
        );
        peak = peak.max(engine.stats().bytes);
    }
    let adv_state = engine.stats();
    eprintln!(
        "adversarial: peak {peak} bytes, {} held, {} evicted",
        adv_state.held, adv_state.evicted
    );

    figures["all_runnable_events_per_s"] = json!(rate.round());
    figures["baseline_naive_all_events_per_s"] = json!(naive_rate.round());
    figures["all_runnable_speedup_vs_naive"] = json!((rate / naive_rate * 10.0).round() / 10.0);
    figures["all_runnable_events_per_cpu_s"] = json!(cpu_rate.round());
    figures["baseline_naive_all_events_per_cpu_s"] = json!(naive_cpu_rate.round());
    figures["all_runnable_cpu_speedup_vs_naive"] =
        json!((cpu_rate / naive_cpu_rate * 10.0).round() / 10.0);
    figures["all_runnable_rules"] = json!(rules);
    figures["all_runnable_stateful_rules"] = json!(stateful);
    figures["sequence_state_bytes"] = json!(state.bytes);
    figures["sequence_state_held"] = json!(state.held);
    figures["adversarial_state_peak_bytes"] = json!(peak);
    figures["adversarial_state_held"] = json!(adv_state.held);
    figures["adversarial_state_evicted"] = json!(adv_state.evicted);
}

/// Both macOS folders' rule files; the older folder's copy of a rule the newer one also
/// holds keeps its own `rule_id` (suffixed), so both versions run side by side as before a
/// rule set held each `rule_id` once.
fn macos_rules(shared: &Path) -> Vec<SourceText> {
    let head = read_rule_files(&[shared.join("macos-head-14cf530f")]).expect("macOS head rules");
    let kuery =
        read_rule_files(&[shared.join("macos-kuery-c58d59ee")]).expect("macOS KQL-era rules");
    kuery
        .into_iter()
        .map(|mut t| {
            t.text = t.text.replacen("rule_id = \"", "rule_id = \"kuery-", 1);
            t
        })
        .chain(head)
        .collect()
}

/// An endpoint exception list as Kibana exports it, with `items` items of the shapes fleets
/// write (trusted applications by path and team, tools by name and argument, vendor trees by
/// wildcard, signatures as nested entries, management agents by parent and command line,
/// service accounts), none of which excepts the stream's rule hits.
fn exception_list(items: usize) -> String {
    let mut out = json!({
        "id": "endpoint_list", "list_id": "endpoint_list", "type": "endpoint",
        "namespace_type": "agnostic", "name": "Endpoint Security Exception List",
        "description": "Endpoint Security Exception List", "immutable": false, "os_types": [],
        "tags": [], "version": 1,
    })
    .to_string();
    out.push('\n');
    let m = |field: &str, value: String| json!({"field": field, "operator": "included", "type": "match", "value": value});
    for i in 0..items {
        let entries: Value = match i % 7 {
            0 => json!([
                m(
                    "process.executable",
                    format!("/Applications/App{i}.app/Contents/MacOS/App{i}")
                ),
                m("process.code_signature.team_id", format!("TEAM{i:06}")),
            ]),
            1 => json!([
                {"field": "process.name", "operator": "included", "type": "match_any",
                 "value": [format!("tool{i}"), format!("tool{i}-helper")]},
                m("process.args", "--managed".into()),
            ]),
            2 => json!([{"field": "process.executable", "operator": "included",
                         "type": "wildcard", "value": format!("/opt/vendor{i}/*/bin/*")}]),
            3 => json!([{"field": "process.code_signature", "type": "nested", "entries": [
                m("signing_id", format!("com.vendor{i}.agent")),
                m("trusted", "true".into()),
            ]}]),
            4 => json!([
                m("process.parent.name", format!("mdm-agent{i}")),
                {"field": "process.command_line", "operator": "included", "type": "wildcard",
                 "value": "* --inventory *"},
            ]),
            5 => json!([m(
                "process.executable.caseless",
                format!("/usr/local/bin/helper{i}")
            )]),
            _ => json!([
                m("user.name", format!("svc{i}")),
                m("process.name", "backup".into()),
                {"field": "process.code_signature.trusted", "operator": "excluded",
                 "type": "match", "value": "false"},
            ]),
        };
        let item = json!({
            "item_id": format!("item-{i}"), "list_id": "endpoint_list",
            "namespace_type": "agnostic", "name": format!("exception {i}"), "type": "simple",
            "description": "", "os_types": ["macos"], "entries": entries, "comments": [],
            "tags": [],
        });
        out.push_str(&item.to_string());
        out.push('\n');
    }
    out
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
