//! `scripts/bench store`: alerts built, chained, signed and made durable per second.
//!
//! Every run uses real alerts (the built-in rule matched by a `kcc copy_cred_cache` event,
//! built by the agent's alert builder) and a fresh sled store in a temporary directory on the
//! same file system as the system temp dir. Modes, each measured in the same run:
//! - `sign_only`: build + chain + sign, nothing stored (the baseline);
//! - `insert_no_flush`: as above, stored in sled without flushing;
//! - `flush_each`: stored and flushed per alert (what the agent does), with per-alert latency;
//! - `group_64`: stored, one flush per 64 alerts (group commit).
//!
//! Usage: `bench-store [ALERTS] [RUNS]` (defaults 2000 and 3); the best run of each mode is
//! reported. Progress goes to stderr; the last stdout line is one JSON object.
//!
//! `heap_bytes_per_stored_alert`: the process's anonymous memory (`RssAnon`) growth per
//! alert between the 100,000th and the 200,000th alert of one `group_64` run (the first
//! 100,000 fill sled's cache and log: warm-up). sled 0.34 keeps
//! a few dozen bytes of location metadata in memory for every page it ever wrote, whatever
//! its cache cap, so an agent's heap grows with the number of alerts it stores (not with the
//! events it reads).
//!
//! `heap_bytes_per_stored_alert_retained`: the same growth in a `group_64` run that keeps
//! only the newest [`RETAIN`] alerts, pruning every [`PRUNE_BATCH`] alerts as the agent's
//! reader does (`[store] retain_alerts`). Measured first, so the run without retention (the
//! baseline, just after it in the same process) may reuse its freed memory: that can only
//! make the baseline look smaller.
//!
//! `heap_bytes_per_alert_read_back`: after that run, every kept alert is read back in
//! 64-alert chunks (what `alerts list`, `alerts export` and `verify` do through a running
//! agent); the heap growth divided by the alerts read. A single pass over a sled 0.34 store
//! keeps nearly every page it read, whatever its cache cap (likely because its cache applies
//! the cap only once 64 page accesses have queued up in one of its 256 shards): a full read
//! costs about the store's size.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use nightjar_agent::alert::{alert_uuid, build_alert};
use nightjar_agent::process_table::ProcessTable;
use nightjar_agent::sign::{HostKey, Sealer, Unsealed};
use nightjar_agent::store::{PRUNE_BATCH, Store};
use nightjar_proto::event::Event;
use nightjar_proto::{Args, ExecEvent, OsType, Source, Target};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use serde_json::json;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    SignOnly,
    InsertNoFlush,
    FlushEach,
    Group(usize),
    /// Group commit, keeping only the newest `RETAIN` alerts.
    GroupRetain(usize),
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::SignOnly => "sign_only",
            Mode::InsertNoFlush => "insert_no_flush",
            Mode::FlushEach => "flush_each",
            Mode::Group(_) => "group_64",
            Mode::GroupRetain(_) => "group_64_retained",
        }
    }
}

struct RunResult {
    per_s: f64,
    latencies_us: Vec<f64>,
    /// (alerts stored, `RssAnon` KiB) every [`GROWTH_SAMPLE_EVERY`] alerts.
    anon_kib: Vec<(u32, u64)>,
    /// Heap growth per alert read back, when the retention run reads every kept alert
    /// in 64-alert chunks as `alerts list` and `verify` do through the agent.
    read_back_bytes_per_alert: Option<f64>,
}

const GROWTH_SAMPLE_EVERY: u32 = 20_000;
const GROWTH_ALERTS: u32 = 200_000;
/// Growth is measured from this many alerts on.
const GROWTH_FROM: u32 = 100_000;
/// Alerts kept by the retention run: a fortieth of [`GROWTH_ALERTS`], so the store is at its
/// bound long before growth is measured.
const RETAIN: u64 = 5_000;

fn event(i: u32) -> ExecEvent<'static> {
    let (args, _) = Args::from_strs(["kcc", "copy_cred_cache"]);
    ExecEvent {
        sensor_seq: u64::from(i),
        source: Source::Eslogger,
        os: OsType::Macos,
        time_ns: 1_795_165_200_000_000_000 + i64::from(i),
        target: Target {
            pid: 10_000 + i,
            pidversion: Some(i),
            ppid: Some(1),
            euid: Some(501),
            egid: Some(20),
            executable: Cow::Borrowed("/usr/bin/kcc"),
            args,
            cwd: Some(Cow::Borrowed("/Users/analyst")),
            signing_id: Some(Cow::Borrowed("com.apple.kcc")),
            platform_binary: Some(true),
            cs_flags: Some(0x2000_0001),
            ..Target::default()
        },
        ..ExecEvent::default()
    }
}

fn run(mode: Mode, alerts: u32, rules: &RuleSet) -> Result<RunResult, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let key = HostKey::create(&tmp.path().join("host.key")).map_err(|e| e.to_string())?;
    let mut sealer = Sealer::new(key, "bench-host".into());
    let store = Store::open(&tmp.path().join("db")).map_err(|e| e.to_string())?;
    let host = HostInfo::new("bench", "bench-host");
    let table = ProcessTable::new(1024);
    let rule = rules.rules().first().ok_or("no built-in rule")?;
    let events: Vec<Event<'static>> = (1..=alerts).map(|i| Event::Exec(event(i))).collect();
    let mut latencies_us = Vec::with_capacity(alerts as usize);
    let mut anon_samples = Vec::new();
    let mut head = store.head().map_err(|e| e.to_string())?;
    let start = Instant::now();
    for (i, ev) in events.iter().enumerate() {
        let t0 = Instant::now();
        let ecs = EcsEvent::of(ev, &table, &host);
        let meta = ev.meta();
        let doc = build_alert(rule, ev, &ecs, "bench-host", meta.time_ns, 0);
        let unsealed = Unsealed {
            alert: doc,
            uuid: alert_uuid("bench-host", &rule.rule_id, ev),
            time_ns: meta.time_ns,
            event_seq: meta.sensor_seq,
        };
        let sealed = sealer.seal(&head, unsealed).map_err(|e| e.to_string())?;
        match mode {
            Mode::SignOnly => {}
            Mode::InsertNoFlush => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
            }
            Mode::FlushEach => {
                store.append(&sealed).map_err(|e| e.to_string())?;
            }
            Mode::Group(n) => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
                if (i + 1) % n == 0 {
                    store.flush().map_err(|e| e.to_string())?;
                }
            }
            Mode::GroupRetain(n) => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
                if (i + 1) % n == 0 {
                    store.flush().map_err(|e| e.to_string())?;
                }
                if (i as u64 + 1).is_multiple_of(PRUNE_BATCH) {
                    store.prune(RETAIN, false).map_err(|e| e.to_string())?;
                }
            }
        }
        head = nightjar_agent::sign::ChainHead {
            seq: sealed.seq,
            hash: sealed.payload_hash,
        };
        latencies_us.push(t0.elapsed().as_secs_f64() * 1e6);
        let stored = i as u32 + 1;
        if stored.is_multiple_of(GROWTH_SAMPLE_EVERY)
            && let Some(kib) = anon_kib()
        {
            anon_samples.push((stored, kib));
        }
    }
    store.flush().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    if mode != Mode::SignOnly {
        let stored = store.head().map_err(|e| e.to_string())?.seq;
        if stored != u64::from(alerts) {
            return Err(format!("{} stored {stored} of {alerts}", mode.name()));
        }
    }
    let mut read_back = None;
    if matches!(mode, Mode::GroupRetain(_)) {
        let first_kept = store.pruned().map_err(|e| e.to_string())?.seq + 1;
        let kept = u64::from(alerts) + 1 - first_kept;
        if kept > RETAIN + PRUNE_BATCH
            || store
                .envelope(first_kept)
                .map_err(|e| e.to_string())?
                .is_none()
        {
            return Err(format!(
                "retention kept {kept} alerts from seq {first_kept}, not the newest {RETAIN}"
            ));
        }
        let before = anon_kib();
        let mut next = first_kept;
        let mut read = 0u64;
        loop {
            let chunk = store.range(next, 64).map_err(|e| e.to_string())?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            read += chunk.len() as u64;
            next = last + 1;
        }
        if read != kept {
            return Err(format!("read back {read} of {kept} kept alerts"));
        }
        read_back = before
            .zip(anon_kib())
            .map(|(b, a)| (a as f64 - b as f64) * 1024.0 / read as f64);
    }
    Ok(RunResult {
        per_s: f64::from(alerts) / elapsed.as_secs_f64(),
        latencies_us,
        anon_kib: anon_samples,
        read_back_bytes_per_alert: read_back,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// This process's anonymous resident memory (`RssAnon`, Linux), KiB.
fn anon_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Bytes of heap per stored alert between the sample at [`GROWTH_FROM`] and the last one.
fn growth_per_alert(run: &RunResult) -> Option<f64> {
    let from = run.anon_kib.iter().find(|(a, _)| *a == GROWTH_FROM)?;
    let (&(a0, k0), &(a1, k1)) = (from, run.anon_kib.last()?);
    (a1 > a0).then(|| (k1 as f64 - k0 as f64) * 1024.0 / f64::from(a1 - a0))
}

/// Peak resident set of this process (`VmHWM`, Linux); `None` elsewhere.
fn max_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let alerts: u32 = argv.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let runs: u32 = argv.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let rules = match RuleSet::load(&[], true, None) {
        Ok((rules, _)) => rules,
        Err(e) => {
            eprintln!("bench-store: cannot load the built-in rule: {e}");
            std::process::exit(1);
        }
    };
    let modes = [
        Mode::SignOnly,
        Mode::InsertNoFlush,
        Mode::FlushEach,
        Mode::Group(64),
    ];
    let mut best: Vec<Option<RunResult>> = modes.iter().map(|_| None).collect();
    for r in 0..runs {
        for (m, mode) in modes.iter().enumerate() {
            match run(*mode, alerts, &rules) {
                Ok(res) => {
                    eprintln!(
                        "run {}: {:<16} {:>10.0} alerts/s",
                        r + 1,
                        mode.name(),
                        res.per_s
                    );
                    println!("{} run {} {:.0} alerts/s", mode.name(), r + 1, res.per_s);
                    if best[m].as_ref().is_none_or(|b| res.per_s > b.per_s) {
                        best[m] = Some(res);
                    }
                }
                Err(e) => {
                    eprintln!("bench-store: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    let growth_of = |mode: Mode| match run(mode, GROWTH_ALERTS, &rules) {
        Ok(res) => {
            eprintln!(
                "heap while storing {GROWTH_ALERTS} alerts ({}): {:?}",
                mode.name(),
                res.anon_kib
            );
            (growth_per_alert(&res), res.read_back_bytes_per_alert)
        }
        Err(e) => {
            eprintln!("bench-store: {e}");
            std::process::exit(1);
        }
    };
    let (growth_retained, read_back) = growth_of(Mode::GroupRetain(64));
    let (growth, _) = growth_of(Mode::Group(64));
    let rate = |m: usize| best[m].as_ref().map_or(0.0, |r| r.per_s);
    let mut flush_lat = best[2]
        .as_ref()
        .map(|r| r.latencies_us.clone())
        .unwrap_or_default();
    flush_lat.sort_by(f64::total_cmp);
    let out = json!({
        "suite": "store",
        "alerts_per_run": alerts,
        "runs": runs,
        "best_of_runs": true,
        "baseline_sign_only_per_s": rate(0).round(),
        "insert_no_flush_per_s": rate(1).round(),
        "flush_each_per_s": rate(2).round(),
        "group_64_per_s": rate(3).round(),
        "flush_each_latency_us": {
            "p50": percentile(&flush_lat, 0.50).round(),
            "p99": percentile(&flush_lat, 0.99).round(),
            "max": percentile(&flush_lat, 1.0).round(),
        },
        "flush_each_vs_baseline": if rate(0) > 0.0 { (rate(2) / rate(0) * 1000.0).round() / 1000.0 } else { 0.0 },
        "group_64_vs_flush_each": if rate(2) > 0.0 { (rate(3) / rate(2) * 10.0).round() / 10.0 } else { 0.0 },
        "max_rss_kib": max_rss_kib(),
        "heap_bytes_per_stored_alert": growth.map(f64::round),
        "heap_bytes_per_stored_alert_retained": growth_retained.map(f64::round),
        "retained_alerts": RETAIN,
        "heap_bytes_per_alert_read_back": read_back.map(f64::round),
    });
    println!("{out}");
}
