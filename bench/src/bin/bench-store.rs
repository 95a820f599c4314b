//! `scripts/bench store`: alerts built, chained, signed and made durable per second.
//!
//! Every run uses real alerts (the built-in rule matched by a `kcc copy_cred_cache` event,
//! built by the agent's alert builder) and a fresh store in a temporary directory on the
//! same file system as the system temp dir. Modes, each measured in the same run:
//! - `sign_only`: build + chain + sign, nothing stored (the baseline);
//! - `baseline_sled_flush_each` / `baseline_sled_group_64`: the store as it was before the
//!   envelope log (one sled transaction over four trees per alert, then sled's `flush`,
//!   which is `sync_file_range` on Linux and does not reach the medium), per alert and per
//!   64 alerts: today's figures without the extra sync;
//! - `insert_no_sync`: appended to the log, never made durable;
//! - `flush_each`: appended and committed per alert (`fdatasync`, `F_FULLFSYNC` on macOS):
//!   durable on the medium, with per-alert latency;
//! - `group_64`: committed once per 64 alerts (group commit, as the agent commits the alerts
//!   of one pass over the ring together).
//!
//! Usage: `bench-store [ALERTS] [RUNS]` (defaults 2000 and 3); the best run of each mode is
//! reported. Progress goes to stderr; the last stdout line is one JSON object.
//!
//! `heap_bytes_per_stored_alert`: the process's anonymous memory (`RssAnon`) growth per
//! alert between the 100,000th and the 200,000th alert of one `group_64` run (the first
//! 100,000 are warm-up), keeping every alert; `_retained`: the same, keeping the newest
//! [`RETAIN`] as the agent's retention does.
//!
//! `read_back`: after the retention run, every kept alert is read back in 64-alert chunks
//! (what `alerts list`, `alerts export` and `verify` do through a running agent), then every
//! alert of a 100,000-alert store; the heap growth is reported per alert read and in all.
//!
//! `read_100k`: the release agent and CLI themselves, with 100,000 real alerts stored
//! through the sensor and the agent: the agent's heap growth over idle while serving a full
//! `alerts list --json`, `alerts export` and `verify`, what it keeps afterwards, and the
//! CLI's peak above its own when it reads the store at rest
//! (`nightjar_tests::read_memory`; the budget is 32 MiB).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use nightjar_agent::alert::{MatchKind, alert_uuid, build_alert};
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
    /// The version-1 store's write path, flushed every `n` alerts.
    SledBaseline(usize),
    InsertNoSync,
    FlushEach,
    Group(usize),
    /// Group commit, keeping only the newest `RETAIN` alerts.
    GroupRetain(usize),
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::SignOnly => "sign_only",
            Mode::SledBaseline(1) => "baseline_sled_flush_each",
            Mode::SledBaseline(_) => "baseline_sled_group_64",
            Mode::InsertNoSync => "insert_no_sync",
            Mode::FlushEach => "flush_each",
            Mode::Group(_) => "group_64",
            Mode::GroupRetain(_) => "group_64_retained",
        }
    }
}

/// The store's write path before the envelope log: envelope, uuid, time and chain head in
/// one sled transaction over four trees, durable by sled's own `flush`.
struct SledBaseline {
    db: sled::Db,
    trees: (sled::Tree, sled::Tree, sled::Tree, sled::Tree),
}

impl SledBaseline {
    fn open(dir: &std::path::Path) -> Result<SledBaseline, String> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(8 * 1024 * 1024)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|e| e.to_string())?;
        let t = |n: &str| db.open_tree(n).map_err(|e| e.to_string());
        let trees = (t("alerts")?, t("uuid")?, t("time")?, t("meta")?);
        Ok(SledBaseline { db, trees })
    }

    fn insert(&self, a: &nightjar_agent::sign::SealedAlert) -> Result<(), String> {
        use sled::transaction::Transactional;
        let key = a.seq.to_be_bytes();
        let head = nightjar_agent::sign::ChainHead {
            seq: a.seq,
            hash: a.payload_hash,
        }
        .to_bytes();
        let (alerts, uuids, times, meta) = &self.trees;
        (alerts, uuids, times, meta)
            .transaction(|(al, u, t, m)| {
                if u.get(a.uuid.as_bytes())?.is_some() {
                    return Ok(());
                }
                al.insert(&key, a.envelope.as_slice())?;
                u.insert(a.uuid.as_bytes(), &key)?;
                t.insert(&key, &a.time_ns.to_be_bytes())?;
                m.insert("head", &head[..])?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(|e| format!("{e:?}"))
    }

    fn flush(&self) -> Result<(), String> {
        self.db.flush().map(drop).map_err(|e| e.to_string())
    }
}

struct RunResult {
    per_s: f64,
    latencies_us: Vec<f64>,
    /// (alerts stored, `RssAnon` KiB) every [`GROWTH_SAMPLE_EVERY`] alerts.
    anon_kib: Vec<(u32, u64)>,
    /// Heap growth while every kept alert was read back in 64-alert chunks, as `alerts
    /// list`, `alerts export` and `verify` do through the agent.
    read_back: Option<ReadBack>,
}

#[derive(Clone, Copy)]
struct ReadBack {
    alerts: u64,
    /// Largest `RssAnon` growth seen during the read, KiB.
    peak_growth_kib: u64,
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
    let sled_baseline = match mode {
        Mode::SledBaseline(_) => Some(SledBaseline::open(&tmp.path().join("v1.sled"))?),
        _ => None,
    };
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
        let doc = build_alert(
            rule,
            ev,
            &ecs,
            "bench-host",
            meta.time_ns,
            0,
            MatchKind::Exact,
        );
        let unsealed = Unsealed {
            alert: doc,
            uuid: alert_uuid("bench-host", &rule.rule_id, ev),
            time_ns: meta.time_ns,
            event_seq: meta.sensor_seq,
        };
        let sealed = sealer.seal(&head, unsealed).map_err(|e| e.to_string())?;
        match mode {
            Mode::SignOnly => {}
            Mode::SledBaseline(n) => {
                let b = sled_baseline.as_ref().ok_or("no baseline store")?;
                b.insert(&sealed)?;
                if (i + 1) % n == 0 {
                    b.flush()?;
                }
            }
            Mode::InsertNoSync => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
            }
            Mode::FlushEach => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
                store
                    .commit_marked(|h| sealer.mark(h))
                    .map_err(|e| e.to_string())?;
            }
            Mode::Group(n) => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
                if (i + 1) % n == 0 {
                    store
                        .commit_marked(|h| sealer.mark(h))
                        .map_err(|e| e.to_string())?;
                }
            }
            Mode::GroupRetain(n) => {
                store.insert(&sealed).map_err(|e| e.to_string())?;
                if (i + 1) % n == 0 {
                    store
                        .commit_marked(|h| sealer.mark(h))
                        .map_err(|e| e.to_string())?;
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
    if let Some(b) = &sled_baseline {
        b.flush()?;
    } else if mode != Mode::InsertNoSync {
        store.flush().map_err(|e| e.to_string())?;
    }
    let elapsed = start.elapsed().max(Duration::from_nanos(1));
    if !matches!(mode, Mode::SignOnly | Mode::SledBaseline(_)) {
        let stored = store.head().map_err(|e| e.to_string())?.seq;
        if stored != u64::from(alerts) {
            return Err(format!("{} stored {stored} of {alerts}", mode.name()));
        }
    }
    let mut read_back = None;
    let full_read = matches!(mode, Mode::Group(_)) && alerts >= GROWTH_ALERTS;
    if matches!(mode, Mode::GroupRetain(_)) || full_read {
        let first_kept = store.pruned().map_err(|e| e.to_string())?.seq + 1;
        let kept = u64::from(alerts) + 1 - first_kept;
        if matches!(mode, Mode::GroupRetain(_))
            && (kept > RETAIN + PRUNE_BATCH
                || store
                    .envelope(first_kept)
                    .map_err(|e| e.to_string())?
                    .is_none())
        {
            return Err(format!(
                "retention kept {kept} alerts from seq {first_kept}, not the newest {RETAIN}"
            ));
        }
        let before = anon_kib().unwrap_or(0);
        let mut peak = before;
        let mut next = first_kept;
        let mut read = 0u64;
        loop {
            let chunk = store.range(next, 64).map_err(|e| e.to_string())?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            read += chunk.len() as u64;
            next = last + 1;
            if read.is_multiple_of(4096) {
                peak = peak.max(anon_kib().unwrap_or(0));
            }
        }
        peak = peak.max(anon_kib().unwrap_or(0));
        if read != kept {
            return Err(format!("read back {read} of {kept} kept alerts"));
        }
        read_back = Some(ReadBack {
            alerts: read,
            peak_growth_kib: peak.saturating_sub(before),
        });
    }
    Ok(RunResult {
        per_s: f64::from(alerts) / elapsed.as_secs_f64(),
        latencies_us,
        anon_kib: anon_samples,
        read_back,
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
        Mode::SledBaseline(1),
        Mode::SledBaseline(64),
        Mode::InsertNoSync,
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
            (growth_per_alert(&res), res.read_back)
        }
        Err(e) => {
            eprintln!("bench-store: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("reading 100,000 alerts through the agent and at rest...");
    let through = nightjar_tests::read_memory::measure(100_000);
    eprintln!("{through:#?}");
    let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
    let read_100k = json!({
        "alerts": through.alerts,
        "budget_mib": mib(nightjar_tests::read_memory::BUDGET_KIB),
        "agent_idle_heap_mib": mib(through.agent_idle_kib),
        "agent_growth_mib": through.agent_growth_kib.iter().map(|(k, v)| (k.clone(), json!(mib(*v)))).collect::<serde_json::Map<_, _>>(),
        "agent_kept_after_mib": mib(through.agent_after_kib),
        "cli_baseline_heap_mib": mib(through.cli_baseline_kib),
        "offline_growth_mib": through.offline_growth_kib.iter().map(|(k, v)| (k.clone(), json!(mib(*v)))).collect::<serde_json::Map<_, _>>(),
    });
    let (growth_retained, read_retained) = growth_of(Mode::GroupRetain(64));
    let (growth, read_all) = growth_of(Mode::Group(64));
    let rate = |m: usize| best[m].as_ref().map_or(0.0, |r| r.per_s);
    let latencies = |m: usize| {
        let mut l = best[m]
            .as_ref()
            .map(|r| r.latencies_us.clone())
            .unwrap_or_default();
        l.sort_by(f64::total_cmp);
        json!({
            "p50": percentile(&l, 0.50).round(),
            "p99": percentile(&l, 0.99).round(),
            "max": percentile(&l, 1.0).round(),
        })
    };
    let ratio = |a: f64, b: f64| {
        if b > 0.0 {
            (a / b * 1000.0).round() / 1000.0
        } else {
            0.0
        }
    };
    let read_json = |r: Option<ReadBack>| {
        r.map(|r| {
            json!({
                "alerts": r.alerts,
                "peak_heap_growth_mib": (r.peak_growth_kib as f64 / 1024.0 * 10.0).round() / 10.0,
                "heap_bytes_per_alert": (r.peak_growth_kib as f64 * 1024.0 / r.alerts.max(1) as f64).round(),
            })
        })
    };
    let out = json!({
        "suite": "store",
        "alerts_per_run": alerts,
        "runs": runs,
        "best_of_runs": true,
        "baseline_sign_only_per_s": rate(0).round(),
        "baseline_sled_flush_each_per_s": rate(1).round(),
        "baseline_sled_group_64_per_s": rate(2).round(),
        "insert_no_sync_per_s": rate(3).round(),
        "flush_each_per_s": rate(4).round(),
        "group_64_per_s": rate(5).round(),
        "baseline_sled_flush_each_latency_us": latencies(1),
        "flush_each_latency_us": latencies(4),
        "flush_each_vs_baseline_sled_flush_each": ratio(rate(4), rate(1)),
        "group_64_vs_baseline_sled_group_64": ratio(rate(5), rate(2)),
        "group_64_vs_flush_each": ratio(rate(5), rate(4)),
        "flush_each_vs_sign_only": ratio(rate(4), rate(0)),
        "max_rss_kib": max_rss_kib(),
        "heap_bytes_per_stored_alert": growth.map(f64::round),
        "heap_bytes_per_stored_alert_retained": growth_retained.map(f64::round),
        "retained_alerts": RETAIN,
        "read_back_retained": read_json(read_retained),
        "read_back_all": read_json(read_all),
        "read_100k": read_100k,
    });
    println!("{out}");
}
