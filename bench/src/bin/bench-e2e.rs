//! `scripts/bench e2e`: the whole pipeline, sensor -> ring -> agent -> decision, with the
//! release binaries.
//!
//! - Throughput: `nightjar-sensor replay` of a pre-generated file, unpaced, into a running
//!   agent; events/s from the replay's start until the agent has accounted for every event
//!   (received + dropped; drops are reported). Two inputs: eslogger NDJSON (the sensor
//!   decodes eslogger JSON) and ECS NDJSON (already in the agent's field names: the
//!   "pre-decoded" path; reported as null when the sensor has no ECS replay).
//! - Decision latency at a paced rate: a generated eslogger stream written to the sensor's
//!   stdin at 10,000 events/s, each line stamped with the wall-clock time it was written;
//!   latency = the stored alert's `@timestamp` − that time (p50/p99, ms).
//! - Baseline, same run: `nightjar-agent scan` over the same eslogger file (one process, no
//!   ring, no store).
//!
//! - A build-like file load under the live pipeline (`--load`, needs root; on by default
//!   when root): `nightjar-sensor run --source ebpf` and `nightjar-agent run` sharing one
//!   config with all of Elastic's Linux rules, while `nightjar_tests::build_load` makes tens
//!   of thousands of file events a second in a tree under `/home`; filter on (the rules
//!   alone) and off (the same rules plus one that reads every file event and matches none:
//!   a `regex` on `file.path`), alternating,
//!   best (highest load rate) of `LOAD_ROUNDS` each: events the agent received, filtered
//!   and dropped (its `status`), the sensor's and the agent's CPU (`load_*`).
//!
//! Best of `RUNS` for each throughput figure. `--events N` (default 200,000) and
//! `--paced-seconds N` (default 20) size the runs. Progress on stderr; the last stdout line is one
//! JSON object.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nightjar_bench::load::{self, LoadRound as _};
use nightjar_tests::agent_cli::{counter, status};
use nightjar_tests::harness::{TempState, bin};
use nightjar_tests::load::{LineRenderer, LoadOptions, run as paced_run};
use nightjar_tests::pipeline::{log_path, log_text, spawn_agent, stop, wait_agent_ready};
use nightjar_tests::procstat::{self, ProcSample};
use serde_json::{Value, json};

/// Events per input file (`--events N` overrides).
const DEFAULT_EVENTS: u64 = 200_000;
const MATCH_EVERY: u64 = 1_000;
const RUNS: usize = 3;
const PACED_RATE: u32 = 10_000;
/// Length of the paced run (`--paced-seconds N` overrides).
const DEFAULT_PACED_SECONDS: u64 = 20;
const PATIENCE: Duration = Duration::from_secs(600);

/// `--NAME N` from the command line, else `default`.
fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) if v > 0 => v,
            _ => {
                eprintln!("bench-e2e: {name} takes a positive number");
                std::process::exit(2);
            }
        },
        None => default,
    }
}

fn main() {
    let events = arg("--events", DEFAULT_EVENTS);
    let paced_seconds = arg("--paced-seconds", DEFAULT_PACED_SECONDS);
    let work = TempState::new();
    let eslogger = work.path().join("events.eslogger.ndjson");
    let ecs = work.path().join("events.ecs.ndjson");
    write_eslogger(&eslogger, events);
    write_ecs(&ecs, events);
    eprintln!(
        "bench-e2e: {events} events per input, {RUNS} runs each, binaries from {}",
        bin("nightjar-agent").display()
    );

    let scan = best(|| scan_rate(&eslogger, events));
    eprintln!("scan baseline: {:.0} events/s", scan.0);
    let eslogger_run = best(|| pipeline_rate(&eslogger, "eslogger", events));
    eprintln!(
        "pipeline (eslogger): {:.0} events/s, {} dropped",
        eslogger_run.0, eslogger_run.1
    );
    let ecs_run = if sensor_replays_ecs(&ecs) {
        let r = best(|| pipeline_rate(&ecs, "ecs", events));
        eprintln!("pipeline (ecs): {:.0} events/s, {} dropped", r.0, r.1);
        Some(r)
    } else {
        eprintln!("pipeline (ecs): the sensor has no ECS replay in this build");
        None
    };

    let st = TempState::new();
    let paced = paced_run(
        &st,
        LoadOptions {
            events_per_second: PACED_RATE,
            duration: Duration::from_secs(paced_seconds),
            match_every: 100,
            retain_alerts: None,
        },
    );
    eprintln!("paced: {}", paced.summary());

    let load = if nightjar_tests::harness::is_root() {
        load_figures()
    } else {
        Err("needs root (live eBPF)".to_owned())
    };
    if let Err(e) = &load {
        eprintln!("build-like load not measured: {e}");
    }
    let line = json!({
        "suite": "e2e",
        "load_filter_on": load.as_ref().ok().and_then(|(on, _)| load::best(on)),
        "load_filter_off": load.as_ref().ok().and_then(|(_, off)| load::best(off)),
        "load_rounds": load.as_ref().ok().map(|(on, off)| load::all(on, off)),
        "load_error": load.as_ref().err(),
        "events": events,
        "pipeline_eslogger_events_per_s": eslogger_run.0.round(),
        "pipeline_eslogger_dropped": eslogger_run.1,
        "pipeline_ecs_events_per_s": ecs_run.map(|r| r.0.round()),
        "pipeline_ecs_dropped": ecs_run.map(|r| r.1),
        "baseline_scan_eslogger_events_per_s": scan.0.round(),
        "paced_events_per_s": PACED_RATE,
        "paced_achieved_events_per_s": paced.achieved_rate().round(),
        "paced_events_dropped": paced.events_dropped,
        "decision_latency_ms_p50": paced.latency_ms_p50,
        "decision_latency_ms_p99": paced.latency_ms_p99,
        "paced_alerts": paced.alerts_stored,
    });
    println!("{line}");
}

/// The best (highest-rate) of `RUNS` runs of `f`, which returns (events/s, dropped).
fn best(mut f: impl FnMut() -> (f64, u64)) -> (f64, u64) {
    (0..RUNS)
        .map(|_| f())
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap_or((0.0, 0))
}

fn write_eslogger(path: &Path, events: u64) {
    let mut out = BufWriter::new(File::create(path).expect("create eslogger input"));
    let mut renderer = LineRenderer::new();
    let mut buf = String::new();
    for i in 1..=events {
        buf.clear();
        renderer.render(&mut buf, i.is_multiple_of(MATCH_EVERY));
        out.write_all(buf.as_bytes()).expect("write eslogger input");
    }
    out.flush().expect("flush eslogger input");
}

/// The same kind of events as ECS documents (Elastic Defend field names).
fn write_ecs(path: &Path, events: u64) {
    let mut out = BufWriter::new(File::create(path).expect("create ECS input"));
    for i in 1..=events {
        let (exe, args): (&str, &[&str]) = if i.is_multiple_of(MATCH_EVERY) {
            ("/usr/bin/kcc", &["kcc", "copy_cred_cache"])
        } else {
            ("/usr/bin/git", &["git", "status", "--short"])
        };
        let doc = json!({
            "@timestamp": format!("2026-11-20T10:{:02}:{:02}.{:09}Z", (i / 60_000) % 60, (i / 1000) % 60, (i % 1000) * 1_000_000),
            "event": {"category": ["process"], "type": ["start"], "action": "exec", "kind": "event"},
            "host": {"os": {"type": "macos"}},
            "process": {
                "pid": 100 + i % 99_900,
                "executable": exe,
                "args": args,
                "working_directory": "/Users/analyst",
                "parent": {"pid": 1, "executable": "/sbin/launchd"},
                "code_signature": {"signing_id": "com.apple.kcc", "team_id": "", "exists": true, "trusted": true},
            },
            "user": {"id": "501"},
            "group": {"id": "20"},
        });
        serde_json::to_writer(&mut out, &doc).expect("write ECS input");
        out.write_all(b"\n").expect("write ECS input");
    }
    out.flush().expect("flush ECS input");
}

/// `nightjar-agent scan` over the file: events/s of the single-process baseline.
fn scan_rate(file: &Path, events: u64) -> (f64, u64) {
    let start = Instant::now();
    let out = Command::new(bin("nightjar-agent"))
        .args(["scan", "--format", "eslogger"])
        .arg(file)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run scan");
    let secs = start.elapsed().as_secs_f64();
    assert!(out.status.success(), "scan failed: {:?}", out.status);
    assert!(
        out.stdout.contains(&b'\n'),
        "scan found the matching events"
    );
    (events as f64 / secs, 0)
}

fn sensor_replays_ecs(file: &Path) -> bool {
    let st = TempState::new();
    let cfg = st.write_config("");
    let out = Command::new(bin("nightjar-sensor"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .args(["--format", "ecs", "--rate", "1"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = out else {
        return false;
    };
    // A build without ECS replay refuses at once with exit 2; one with it starts replaying.
    std::thread::sleep(Duration::from_millis(500));
    let refused = matches!(child.try_wait(), Ok(Some(s)) if s.code() == Some(2));
    let _ = child.kill();
    let _ = child.wait();
    !refused
}

/// Unpaced replay of `file` into a running agent: events/s until every event is accounted
/// for, and how many of them were dropped.
fn pipeline_rate(file: &Path, format: &str, events: u64) -> (f64, u64) {
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\nmax_signals = 0\n");
    let text = std::fs::read_to_string(&cfg).expect("config").replace(
        "ring_capacity_bytes = 4194304\n",
        "ring_capacity_bytes = 67108864\n",
    );
    std::fs::write(&cfg, text).expect("rewrite config");
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");

    let start = Instant::now();
    let mut sensor = Command::new(bin("nightjar-sensor"))
        .args(["replay", "--config"])
        .arg(&cfg)
        .args(["--format", format])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log_path(&st, "sensor")).expect("sensor log"))
        .spawn()
        .expect("spawn sensor");
    let deadline = start + PATIENCE;
    let (elapsed, dropped) = loop {
        let s = status(&cfg).unwrap_or(Value::Null);
        let received = counter(&s, "events_received");
        let dropped = counter(&s, "events_dropped");
        if received + dropped >= events {
            break (start.elapsed(), dropped);
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not account for {events} events: {s}\n{}",
            log_text(&st, "agent")
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = sensor.wait().expect("sensor exit");
    assert!(done.success(), "sensor: {}", log_text(&st, "sensor"));
    stop(&mut agent, &st, "agent");
    (events as f64 / elapsed.as_secs_f64(), dropped)
}

/// Rounds of the build-like load per side, its workers and their steps.
const LOAD_ROUNDS: usize = 3;
const LOAD_WORKERS: u32 = 2;
const LOAD_STEPS: u64 = 20_000;

/// One round of the build-like load through the live sensor and agent.
struct LoadRound {
    made: u64,
    secs: f64,
    received: u64,
    filtered: u64,
    dropped: u64,
    sensor_cpu_ms: u64,
    agent_cpu_ms: u64,
    alerts: u64,
}

impl load::LoadRound for LoadRound {
    fn rate(&self) -> f64 {
        self.made as f64 / self.secs.max(1e-9)
    }

    fn json(&self) -> Value {
        json!({
            "file_events_made": self.made,
            "file_events_per_s": self.rate().round(),
            "agent_events_received": self.received,
            "events_filtered_reported": self.filtered,
            "events_dropped": self.dropped,
            "sensor_cpu_ms": self.sensor_cpu_ms,
            "agent_cpu_ms": self.agent_cpu_ms,
            "agent_cpu_ns_per_file_event": self.agent_cpu_ms * 1_000_000 / self.made.max(1),
            "sensor_cpu_ns_per_file_event": self.sensor_cpu_ms * 1_000_000 / self.made.max(1),
            "alerts_stored": self.alerts,
            "secs": self.secs,
        })
    }
}

fn linux_rules() -> Result<std::path::PathBuf, String> {
    nightjar_bench::elastic_rules_folder("linux-head")
}

fn cpu_ms(before: Option<ProcSample>, after: Option<ProcSample>) -> u64 {
    match (before, after) {
        (Some(a), Some(b)) => {
            b.cpu_ticks.saturating_sub(a.cpu_ticks) * 1000 / procstat::ticks_per_second()
        }
        _ => 0,
    }
}

/// One round: a fresh agent and live sensor on `rules`, the load, then the counters once the
/// agent has read everything.
fn load_round(rules: &[&Path], root: &Path) -> Result<LoadRound, String> {
    let st = TempState::new();
    let paths: Vec<String> = rules
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = false\npaths = [{}]\n",
        paths.join(", ")
    ));
    let text = std::fs::read_to_string(&cfg)
        .map_err(|e| e.to_string())?
        .replace(
            "ring_capacity_bytes = 4194304\n",
            "ring_capacity_bytes = 67108864\n",
        );
    std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let mut sensor = nightjar_tests::harness::ChildGuard::spawn(
        Command::new(bin("nightjar-sensor"))
            .args(["run", "--source", "ebpf", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log_path(&st, "sensor")).map_err(|e| e.to_string())?),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !log_text(&st, "sensor").contains("eBPF probes attached") {
        if Instant::now() > deadline {
            return Err(format!(
                "the sensor did not start: {}",
                log_text(&st, "sensor")
            ));
        }
        if let Ok(Some(s)) = sensor.child.try_wait() {
            return Err(format!(
                "the sensor exited: {s}: {}",
                log_text(&st, "sensor")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let counts = |s: &Value| {
        (
            counter(s, "events_received"),
            counter(s, "events_filtered"),
            counter(s, "events_dropped"),
            counter(s, "alerts_stored"),
        )
    };
    let before = counts(&status(&cfg).unwrap_or(Value::Null));
    let (sp, ap) = (sensor.child.id(), agent.child.id());
    let (s0, a0) = (procstat::sample(sp), procstat::sample(ap));
    let load = nightjar_tests::build_load::run(root, LOAD_WORKERS, LOAD_STEPS)?;
    // Until the agent has accounted for at least what the load made, received or filtered
    // (the shared machine adds its own events, and the rules alert on some: the counts never
    // stand still), then one more second for the rest in flight.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = counts(&status(&cfg).unwrap_or(Value::Null));
        let seen = (now.0 - before.0) + (now.1 - before.1) + (now.2 - before.2);
        if seen >= load.events || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1000));
    let last = counts(&status(&cfg).unwrap_or(Value::Null));
    let (s1, a1) = (procstat::sample(sp), procstat::sample(ap));
    drop(sensor);
    stop(&mut agent, &st, "agent");
    Ok(LoadRound {
        made: load.events,
        secs: load.secs,
        received: last.0 - before.0,
        filtered: last.1 - before.1,
        dropped: last.2 - before.2,
        sensor_cpu_ms: cpu_ms(s0, s1),
        agent_cpu_ms: cpu_ms(a0, a1),
        alerts: last.3 - before.3,
    })
}

/// The load with the filter on (Elastic's Linux rules) and off (plus a rule whose regular
/// expression no filter can bound, so every file event is published and evaluated, and
/// which matches none), alternating.
fn load_figures() -> Result<(Vec<LoadRound>, Vec<LoadRound>), String> {
    let linux = linux_rules()?;
    let work = TempState::new();
    let every = work.path().join("every-file.toml");
    std::fs::write(
        &every,
        concat!(
            "[metadata]\ncreation_date = \"2026/01/01\"\n[rule]\nrule_id = \"bench-every-file\"\n",
            "name = \"every file event\"\nseverity = \"low\"\nrisk_score = 1\ndescription = \"d\"\n",
            "type = \"eql\"\nlanguage = \"eql\"\n",
            "query = 'file where file.path regex \"/nightjar-bench-never/.*\"'\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let root = std::path::PathBuf::from(format!(
        "/home/nightjar-bench-e2e-load-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let out = (|| {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for round in 0..LOAD_ROUNDS {
            let r = load_round(&[&linux], &root)?;
            eprintln!("load round {round} filter on: {}", r.json());
            on.push(r);
            let r = load_round(&[&linux, &every], &root)?;
            eprintln!("load round {round} filter off: {}", r.json());
            off.push(r);
        }
        Ok((on, off))
    })();
    let _ = std::fs::remove_dir_all(&root);
    out
}
