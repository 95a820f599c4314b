//! `scripts/bench idle`: what an idle agent and sensor cost, in wake-ups per second.
//!
//! Runs the release agent and the release sensor on a private config, lets them settle, and
//! counts the context switches of every thread of each process over a window
//! (`idle_wakeups_per_s`): each one a wake-up (or a preemption) a laptop pays for.
//!
//! - `agent_idle_wakeups_per_s` / `sensor_idle_wakeups_per_s`: the agent with the sensor
//!   replaying from a pipe that falls silent after a few events (two of them alerts, so the
//!   store has been written, as on any host that ever alerted), so no event reaches either
//!   in the window (the agent's own timers, and the sensor's);
//! - `agent_own_wakeups_per_s` and `agent_sled_io_wakeups_per_s` split the agent's figure by
//!   thread: sled 0.34.7 starts a global I/O pool at the first write (`sled-io-*`, seven
//!   threads that never exit), each waiting on a condition variable with a fixed 1 s
//!   timeout, which nothing in sled's API changes; `agent_sled_io_threads` counts them;
//! - `ebpf.agent_idle_wakeups_per_s` / `ebpf.sensor_idle_wakeups_per_s`: the same with the
//!   live eBPF sensor (root). Every exec on the host wakes the sensor and, when it publishes,
//!   the agent: `ebpf.host_execs_per_s` says how many there were (on a shared machine the
//!   window is not idle);
//! - baseline in the same run: `baseline_sleep_wakeups_per_s`, a process blocked in
//!   `sleep`, what "never wakes" measures as; the figure before the change, from the
//!   same measure, was 205 context switches in 20 s (10.25/s) for the agent.
//!
//! Usage: `bench-idle [WINDOW_SECONDS]` (default 30). The last stdout line is one JSON object.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nightjar_tests::agent_cli::{counter, status};
use nightjar_tests::harness::{ChildGuard, TempState, bin, is_root};
use nightjar_tests::pipeline::{log_path, spawn_agent, wait_agent_ready, wait_status};
use nightjar_tests::procstat::{ThreadSwitches, context_switches, thread_context_switches};
use nightjar_tests::streams::{EsloggerGen, Exec};
use serde_json::json;
use std::io::Write;

/// Time for the processes to finish starting (the eBPF probe attaching, the first muting
/// scan) before the window opens.
const SETTLE: Duration = Duration::from_secs(8);

struct Window {
    agent: f64,
    /// The agent's figure without sled's I/O pool threads.
    agent_own: f64,
    agent_sled_io: f64,
    sled_io_threads: usize,
    sensor: f64,
    sleeper: f64,
    events_per_s: f64,
}

/// Counts wake-ups of the three processes over `window`.
fn measure(
    agent: &ChildGuard,
    sensor: &ChildGuard,
    cfg: &std::path::Path,
    window: Duration,
) -> Result<Window, String> {
    let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("100000"));
    std::thread::sleep(SETTLE);
    let read = |pid: u32, what: &str| {
        context_switches(pid).ok_or_else(|| format!("the {what} (pid {pid}) is gone"))
    };
    let events = |s: Option<serde_json::Value>| {
        s.map(|s| counter(&s, "events_received") + counter(&s, "events_dropped"))
            .unwrap_or(0)
    };
    // Status is asked outside the window: the question itself wakes the agent.
    let e0 = events(status(cfg));
    let threads = |pid: u32| {
        thread_context_switches(pid).ok_or_else(|| format!("the agent (pid {pid}) is gone"))
    };
    let t0 = Instant::now();
    let agent_threads0 = threads(agent.pid())?;
    let (a0, s0, z0) = (
        read(agent.pid(), "agent")?,
        read(sensor.pid(), "sensor")?,
        read(sleeper.pid(), "sleeper")?,
    );
    std::thread::sleep(window);
    let (a1, s1, z1) = (
        read(agent.pid(), "agent")?,
        read(sensor.pid(), "sensor")?,
        read(sleeper.pid(), "sleeper")?,
    );
    for (pid, what) in [(agent.pid(), "agent"), (sensor.pid(), "sensor")] {
        // A process that exited in the window would measure as perfectly idle.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = state.rsplit(')').next().unwrap_or("").trim_start();
        if state.is_empty() || state.starts_with('Z') || state.starts_with('X') {
            return Err(format!("the {what} (pid {pid}) exited during the window"));
        }
    }
    let agent_threads1 = threads(agent.pid())?;
    let secs = t0.elapsed().as_secs_f64();
    let e1 = events(status(cfg));
    let (own, sled_io, sled_io_threads) = split(&agent_threads0, &agent_threads1);
    sleeper.kill9();
    Ok(Window {
        agent: (a1 - a0) as f64 / secs,
        agent_own: own as f64 / secs,
        agent_sled_io: sled_io as f64 / secs,
        sled_io_threads,
        sensor: (s1 - s0) as f64 / secs,
        sleeper: (z1 - z0) as f64 / secs,
        events_per_s: (e1.saturating_sub(e0)) as f64 / secs,
    })
}

/// The switches between two samples of one process's threads, split into its own threads'
/// and sled's I/O pool's (`sled-io-N`), and how many pool threads there are at the end.
/// Threads are matched by tid; one born in the window counts in full.
fn split(before: &[ThreadSwitches], after: &[ThreadSwitches]) -> (u64, u64, usize) {
    let (mut own, mut sled_io, mut pool) = (0, 0, 0);
    for t in after {
        let earlier = before
            .iter()
            .find(|b| b.tid == t.tid)
            .map_or(0, |b| b.switches);
        let n = t.switches.saturating_sub(earlier);
        if t.name.starts_with("sled-io") {
            sled_io += n;
            pool += 1;
        } else {
            own += n;
        }
    }
    (own, sled_io, pool)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn run(window: Duration) -> Result<serde_json::Value, String> {
    let st = TempState::new();
    let cfg = st.write_config("[rules]\nbuiltin = true\n");
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");

    // A sensor whose input falls silent: `replay -` from a pipe we hold open, after a few
    // events of which two alert.
    let mut quiet = ChildGuard::spawn_with_stdin(
        Command::new(bin("nightjar-sensor"))
            .args(["replay", "--format", "eslogger", "--config"])
            .arg(&cfg)
            .arg("-")
            .stdin(Stdio::piped())
            .stderr(File::create(log_path(&st, "sensor-quiet")).map_err(|e| e.to_string())?),
    );
    {
        let mut generator = EsloggerGen::new();
        let stdin = quiet.child.stdin.as_mut().ok_or("the sensor's stdin")?;
        for (i, args) in [["kcc", "copy_cred_cache"], ["git", "status"]]
            .iter()
            .cycle()
            .take(4)
            .enumerate()
        {
            let line = generator.line(&Exec {
                pid: 40_000 + i as u32,
                ppid: 1,
                executable: if args[0] == "kcc" {
                    "/usr/bin/kcc"
                } else {
                    "/usr/bin/git"
                },
                args,
            });
            writeln!(stdin, "{line}").map_err(|e| format!("feeding the sensor: {e}"))?;
        }
        stdin
            .flush()
            .map_err(|e| format!("feeding the sensor: {e}"))?;
    }
    wait_status(&st, &cfg, "agent", "the two alerts stored", |s| {
        counter(s, "alerts_stored") >= 2
    });
    let quiet_window = measure(&agent, &quiet, &cfg, window)?;
    eprintln!(
        "idle, no events: agent {:.2}/s (own threads {:.2}/s, sled's {} I/O threads {:.2}/s), \
         sensor {:.2}/s, sleep {:.2}/s",
        quiet_window.agent,
        quiet_window.agent_own,
        quiet_window.sled_io_threads,
        quiet_window.agent_sled_io,
        quiet_window.sensor,
        quiet_window.sleeper
    );
    drop(quiet.child.stdin.take());
    let _ = quiet.wait_timeout(Duration::from_secs(10));
    quiet.kill9();

    let ebpf = if is_root() {
        let sensor = ChildGuard::spawn(
            Command::new(bin("nightjar-sensor"))
                .args(["run", "--source", "ebpf", "--config"])
                .arg(&cfg)
                .stderr(File::create(log_path(&st, "sensor-ebpf")).map_err(|e| e.to_string())?),
        );
        let w = measure(&agent, &sensor, &cfg, window)?;
        eprintln!(
            "idle, live eBPF: agent {:.2}/s (own threads {:.2}/s), sensor {:.2}/s, \
             host execs {:.2}/s",
            w.agent, w.agent_own, w.sensor, w.events_per_s
        );
        drop(sensor);
        json!({
            "agent_idle_wakeups_per_s": round2(w.agent),
            "agent_own_wakeups_per_s": round2(w.agent_own),
            "agent_sled_io_wakeups_per_s": round2(w.agent_sled_io),
            "sensor_idle_wakeups_per_s": round2(w.sensor),
            "host_execs_per_s": round2(w.events_per_s),
        })
    } else {
        eprintln!("bench-idle: the eBPF window needs root; skipped");
        serde_json::Value::Null
    };
    agent.signal(libc::SIGTERM);
    let _ = agent.wait_timeout(Duration::from_secs(30));
    Ok(json!({
        "suite": "idle",
        "window_s": window.as_secs(),
        "agent_idle_wakeups_per_s": round2(quiet_window.agent),
        "agent_own_wakeups_per_s": round2(quiet_window.agent_own),
        "agent_sled_io_wakeups_per_s": round2(quiet_window.agent_sled_io),
        "agent_sled_io_threads": quiet_window.sled_io_threads,
        "sensor_idle_wakeups_per_s": round2(quiet_window.sensor),
        "baseline_sleep_wakeups_per_s": round2(quiet_window.sleeper),
        "ebpf": ebpf,
        "before_agent_idle_wakeups_per_s": 10.25,
    }))
}

fn main() {
    let window = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .map_or(Duration::from_secs(30), Duration::from_secs);
    match run(window) {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("bench-idle: {e}");
            std::process::exit(1);
        }
    }
}
