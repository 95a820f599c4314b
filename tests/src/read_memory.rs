//! What reading every stored alert costs in memory, through the running agent and with the
//! CLI reading the store itself: the measure behind `tests/tests/read_memory.rs` (which
//! checks the budget) and `scripts/bench store` (which reports it for 100,000 alerts).
//!
//! The alerts are real: `count` matching eslogger events replayed through the sensor into
//! the agent, one alert each. Memory is `RssAnon` (the process's own heap and stacks, not
//! the ring mapping or the binary's pages), sampled every 20 ms while each command runs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent_cli::counter;
use crate::harness::{ChildGuard, TempState, bin};
use crate::pipeline::{replay_all, spawn_agent, stop, wait_agent_ready, wait_status};
use crate::streams::EsloggerGen;

/// The documented budget: reading any number of alerts raises a process's heap by at most
/// this much (docs/operating.md, "Memory and disk").
pub const BUDGET_KIB: u64 = 32 * 1024;

/// The three full reads.
pub const READS: [&[&str]; 3] = [
    &["alerts", "list", "--json"],
    &["alerts", "export"],
    &["verify"],
];

/// Figures of one measurement, KiB.
#[derive(Debug, Clone, Default)]
pub struct ReadMemory {
    pub alerts: u64,
    /// The agent's heap, idle with the store full.
    pub agent_idle_kib: u64,
    /// Per read, the agent's largest heap growth over idle while serving it.
    pub agent_growth_kib: Vec<(String, u64)>,
    /// The agent's heap growth over idle once the three reads are done.
    pub agent_after_kib: u64,
    /// The CLI's own heap (peak) for `status` at rest: what the CLI costs reading nothing.
    pub cli_baseline_kib: u64,
    /// Per read at rest, the CLI's peak heap above that baseline.
    pub offline_growth_kib: Vec<(String, u64)>,
}

fn field_kib(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `nightjar-agent ARGS --config cfg` (output discarded) to completion, sampling
/// `RssAnon` of `watch` (the agent) or, when `None`, of the command itself. Returns the
/// largest sample.
fn run_sampling(cfg: &Path, args: &[&str], watch: Option<u32>) -> u64 {
    let mut child = ChildGuard::spawn(
        Command::new(bin("nightjar-agent"))
            .args(args)
            .arg("--config")
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let pid = watch.unwrap_or(child.pid());
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        if let Some(kib) = field_kib(pid, "RssAnon:") {
            peak = peak.max(kib);
        }
        if let Ok(Some(status)) = child.child.try_wait() {
            assert!(status.success(), "{args:?} failed: {status}");
            return peak;
        }
        assert!(Instant::now() < deadline, "{args:?} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn settled_heap(pid: u32) -> u64 {
    let mut samples: Vec<u64> = (0..5)
        .filter_map(|_| {
            std::thread::sleep(Duration::from_millis(200));
            field_kib(pid, "RssAnon:")
        })
        .collect();
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}

/// Stores `count` alerts through the real pipeline, then measures every full read through
/// the agent and at rest.
pub fn measure(count: u32) -> ReadMemory {
    let st = TempState::new();
    // A ring big enough that the replay never waits on the agent storing every event's
    // alert.
    let cfg = st.config_path();
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nring_path = {:?}\nring_capacity_bytes = 268435456\n\
             host_id = \"read-host\"\n[rules]\nbuiltin = true\nmax_signals = 0\n\
             [store]\nretain_alerts = 0\n",
            st.state_dir().display().to_string(),
            st.ring_path().display().to_string()
        ),
    )
    .expect("write config");
    let mut agent = spawn_agent(&st, &cfg, "agent");
    wait_agent_ready(&st, &cfg, "agent");
    let stream = st.path().join("stream.ndjson");
    EsloggerGen::new().write_stream(&stream, count, count);
    replay_all(&st, &cfg, &stream, None, "sensor");
    let s = wait_status(&st, &cfg, "agent", "every event read", |s| {
        counter(s, "events_received") + counter(s, "events_dropped") >= u64::from(count)
    });
    assert_eq!(
        counter(&s, "alerts_stored"),
        u64::from(count),
        "{s}\nring file: {:?} bytes\nsensor log:\n{}\nagent log (warnings):\n{}",
        std::fs::metadata(st.ring_path()).map(|m| m.len()),
        crate::pipeline::log_text(&st, "sensor"),
        crate::pipeline::log_text(&st, "agent")
            .lines()
            .filter(|l| !l.contains("INFO"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let idle = settled_heap(agent.pid());
    let mut out = ReadMemory {
        alerts: u64::from(count),
        agent_idle_kib: idle,
        ..ReadMemory::default()
    };
    for args in READS {
        let peak = run_sampling(&cfg, args, Some(agent.pid()));
        out.agent_growth_kib
            .push((args.join(" "), peak.saturating_sub(idle)));
    }
    out.agent_after_kib = settled_heap(agent.pid()).saturating_sub(idle);
    stop(&mut agent, &st, "agent");
    out.cli_baseline_kib = run_sampling(&cfg, &["status"], None);
    for args in READS {
        let peak = run_sampling(&cfg, args, None);
        out.offline_growth_kib
            .push((args.join(" "), peak.saturating_sub(out.cli_baseline_kib)));
    }
    out
}
