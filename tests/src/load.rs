//! Sustained load through the live pipeline: a generated eslogger stream written to
//! `nightjar-sensor replay --rate R -` at that rate, the agent consuming the ring, and once a second
//! the resident memory and CPU time of both processes and the agent's event counters.
//! Used by the CI load test (60 s) and by `scripts/load` (the documented long run).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::agent_cli::{alerts, counter, status, verify};
use crate::harness::{ChildGuard, TempState, bin};
use crate::pipeline::{PATIENCE, log_path, log_text, spawn_agent, stop, wait_agent_ready};
use crate::procstat::{ProcSample, cpu_percent, median, percentile, sample, slope};
use crate::streams::{EsloggerGen, Exec};

/// Placeholders rendered into the template line, then cut out of it.
const TIME_MARK: &str = "1999-01-01T00:00:00.000000000Z";
const SEQ_MARK: u64 = 777_111_777_111;
const GSEQ_MARK: u64 = 777_222_777_222;
const PID_MARK: u32 = 777_333_777;
const PIDVERSION_MARK: u64 = 777_444_777_444;

/// Renders eslogger exec lines from a real message template with plain string pastes (no
/// JSON tree per line), so a test process can write 50,000 lines a second. Each line carries
/// the wall-clock time it was rendered as its event time: an alert's `original_time` is
/// when its event entered the pipeline.
pub struct LineRenderer {
    ordinary: Vec<Piece>,
    matching: Vec<Piece>,
    seq: u64,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Time,
    Seq,
    GlobalSeq,
    Pid,
    PidVersion,
}

impl LineRenderer {
    pub fn new() -> Self {
        LineRenderer {
            ordinary: pieces("/usr/bin/git", &["git", "status", "--short"]),
            matching: pieces("/usr/bin/kcc", &["kcc", "copy_cred_cache"]),
            seq: 0,
        }
    }

    /// Appends one line (with its newline) to `out`: `kcc copy_cred_cache` when `matching`,
    /// else an ordinary command. Pids cycle through 100..100_000 as on macOS; every line has
    /// a fresh pidversion, sequence number and time.
    pub fn render(&mut self, out: &mut String, matching: bool) {
        self.seq += 1;
        let seq = self.seq;
        let pid = 100 + (seq % 99_900) as u32;
        let pieces = if matching {
            &self.matching
        } else {
            &self.ordinary
        };
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Time => push_rfc3339(out, now_ns()),
                Piece::Seq => {
                    let _ = write!(out, "{seq}");
                }
                Piece::GlobalSeq => {
                    let _ = write!(out, "{}", seq + 1_000_000);
                }
                Piece::Pid => {
                    let _ = write!(out, "{pid}");
                }
                Piece::PidVersion => {
                    let _ = write!(out, "{}", 50_000 + seq);
                }
            }
        }
        out.push('\n');
    }
}

impl Default for LineRenderer {
    fn default() -> Self {
        Self::new()
    }
}

fn pieces(executable: &str, args: &[&str]) -> Vec<Piece> {
    let line = EsloggerGen::new().line(&Exec {
        pid: PID_MARK,
        ppid: 1,
        executable,
        args,
    });
    let mut v: Value = serde_json::from_str(&line).expect("generated line is JSON");
    v["time"] = Value::from(TIME_MARK);
    v["seq_num"] = Value::from(SEQ_MARK);
    v["global_seq_num"] = Value::from(GSEQ_MARK);
    v["event"]["exec"]["target"]["audit_token"][7] = Value::from(PIDVERSION_MARK);
    let text = v.to_string();
    let marks: [(String, Piece); 5] = [
        (format!("\"{TIME_MARK}\""), Piece::Time),
        (SEQ_MARK.to_string(), Piece::Seq),
        (GSEQ_MARK.to_string(), Piece::GlobalSeq),
        (PID_MARK.to_string(), Piece::Pid),
        (PIDVERSION_MARK.to_string(), Piece::PidVersion),
    ];
    let mut out = Vec::new();
    let mut rest = text.as_str();
    loop {
        let next = marks
            .iter()
            .filter_map(|(m, p)| rest.find(m.as_str()).map(|at| (at, m.len(), p)))
            .min_by_key(|(at, _, _)| *at);
        let Some((at, len, piece)) = next else {
            out.push(Piece::Text(rest.to_owned()));
            break;
        };
        out.push(Piece::Text(rest[..at].to_owned()));
        if matches!(piece, Piece::Time) {
            out.push(Piece::Text("\"".to_owned()));
            out.push(Piece::Time);
            out.push(Piece::Text("\"".to_owned()));
        } else {
            out.push(piece.clone());
        }
        rest = &rest[at + len..];
    }
    out
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// RFC 3339 UTC with nanoseconds (civil-from-days, Howard Hinnant's algorithm).
fn push_rfc3339(out: &mut String, ns: i64) {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    );
}

/// Parses the RFC 3339 text [`push_rfc3339`] (and the agent) write, to Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = s.get(19..)?.strip_suffix('Z')?;
    let nanos = match frac.strip_prefix('.') {
        Some(f) if !f.is_empty() && f.len() <= 9 => {
            f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32)
        }
        None if frac.is_empty() => 0,
        _ => return None,
    };
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000_000 + nanos)
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    pub events_per_second: u32,
    pub duration: Duration,
    /// One event in this many is `kcc copy_cred_cache` (alerts, for latency).
    pub match_every: u32,
    /// `[store] retain_alerts` for the agent; `None` = its default.
    pub retain_alerts: Option<u64>,
}

/// One per-second reading.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Tick {
    pub t_s: f64,
    pub sent: u64,
    pub received: u64,
    pub dropped: u64,
    pub agent_rss_kib: u64,
    pub sensor_rss_kib: u64,
    pub agent_anon_kib: u64,
    pub sensor_anon_kib: u64,
    pub agent_cpu_pct: f64,
    pub sensor_cpu_pct: f64,
}

/// The outcome of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    pub events_sent: u64,
    pub events_received: u64,
    pub events_dropped: u64,
    pub matches_sent: u64,
    pub alerts_stored: u64,
    /// Alerts still in the store at the end (fewer than stored when retention ran).
    pub alerts_listed: u64,
    /// `nightjar-agent verify` after the run: exit code and output.
    pub verify: (i32, String),
    /// Seconds the feeder wrote for.
    pub feed_seconds: f64,
    /// The rate asked for.
    pub target_events_per_second: u32,
    pub ticks: Vec<Tick>,
    /// Intake-to-alert latency (alert `@timestamp` − event time), ms, per third of the run.
    pub latency_ms_p50_by_third: [f64; 3],
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
}

impl LoadReport {
    /// Median RSS (KiB) of the first and last third of the per-second samples.
    pub fn rss_thirds(&self, pick: impl Fn(&Tick) -> u64) -> (u64, u64) {
        let n = self.ticks.len();
        let third = (n / 3).max(1);
        let first: Vec<u64> = self.ticks.iter().take(third).map(&pick).collect();
        let last: Vec<u64> = self.ticks.iter().skip(n - third).map(&pick).collect();
        (median(&first), median(&last))
    }

    /// Median of each quarter of the per-second samples (KiB): the shape of the curve, so a
    /// warm-up followed by a plateau can be told from steady growth.
    pub fn quarters(&self, pick: impl Fn(&Tick) -> u64) -> [u64; 4] {
        let n = self.ticks.len();
        std::array::from_fn(|q| {
            let part: Vec<u64> = self.ticks[q * n / 4..(q + 1) * n / 4]
                .iter()
                .map(&pick)
                .collect();
            median(&part)
        })
    }

    /// Least-squares slope (KiB per minute) over the second half of the run: growth that
    /// goes on after the warm-up, with the noise of single samples averaged out.
    pub fn slope_last_half_kib_per_min(&self, pick: impl Fn(&Tick) -> u64) -> f64 {
        let half = &self.ticks[self.ticks.len() / 2..];
        let points: Vec<(f64, f64)> = half
            .iter()
            .map(|t| (t.t_s / 60.0, pick(t) as f64))
            .collect();
        (slope(&points) * 10.0).round() / 10.0
    }

    /// Events per second the pipeline actually took in.
    pub fn achieved_rate(&self) -> f64 {
        self.events_sent as f64 / self.feed_seconds.max(1e-9)
    }

    /// One JSON object summarising the run (the last stdout line of `scripts/load`).
    pub fn summary(&self) -> Value {
        let (a0, a1) = self.rss_thirds(|t| t.agent_rss_kib);
        let (s0, s1) = self.rss_thirds(|t| t.sensor_rss_kib);
        let (aa0, aa1) = self.rss_thirds(|t| t.agent_anon_kib);
        let (sa0, sa1) = self.rss_thirds(|t| t.sensor_anon_kib);
        let mean = |f: fn(&Tick) -> f64| {
            let n = self.ticks.len().max(1) as f64;
            self.ticks.iter().map(f).sum::<f64>() / n
        };
        json!({
            "events_sent": self.events_sent,
            "events_received": self.events_received,
            "events_dropped": self.events_dropped,
            "matches_sent": self.matches_sent,
            "alerts_stored": self.alerts_stored,
            "alerts_listed": self.alerts_listed,
            "verify_exit": self.verify.0,
            "target_events_per_s": self.target_events_per_second,
            "achieved_events_per_s": self.achieved_rate().round(),
            "agent_rss_kib_first_third": a0,
            "agent_rss_kib_last_third": a1,
            "sensor_rss_kib_first_third": s0,
            "sensor_rss_kib_last_third": s1,
            "agent_anon_kib_first_third": aa0,
            "agent_anon_kib_last_third": aa1,
            "sensor_anon_kib_first_third": sa0,
            "sensor_anon_kib_last_third": sa1,
            "agent_anon_kib_by_quarter": self.quarters(|t| t.agent_anon_kib),
            "sensor_anon_kib_by_quarter": self.quarters(|t| t.sensor_anon_kib),
            "agent_anon_kib_per_min_last_half": self.slope_last_half_kib_per_min(|t| t.agent_anon_kib),
            "sensor_anon_kib_per_min_last_half": self.slope_last_half_kib_per_min(|t| t.sensor_anon_kib),
            "agent_cpu_pct_mean": (mean(|t| t.agent_cpu_pct) * 10.0).round() / 10.0,
            "sensor_cpu_pct_mean": (mean(|t| t.sensor_cpu_pct) * 10.0).round() / 10.0,
            "latency_ms_p50_by_third": self.latency_ms_p50_by_third,
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p99": self.latency_ms_p99,
            "seconds": self.ticks.len(),
        })
    }
}

/// Runs the pipeline under load in `st` and returns what was measured. Panics (with the
/// process logs) when a process dies or the agent does not catch up within [`PATIENCE`].
pub fn run(st: &TempState, opts: LoadOptions) -> LoadReport {
    // A 64 MiB ring, as shipped.
    let store = opts
        .retain_alerts
        .map(|n| format!("[store]\nretain_alerts = {n}\n"))
        .unwrap_or_default();
    let cfg = st.write_config(&format!(
        "[rules]\nbuiltin = true\nmax_signals = 0\n{store}"
    ));
    let text = std::fs::read_to_string(&cfg).expect("config").replace(
        "ring_capacity_bytes = 4194304\n",
        "ring_capacity_bytes = 67108864\n",
    );
    std::fs::write(&cfg, text).expect("rewrite config");

    let mut agent = spawn_agent(st, &cfg, "agent");
    wait_agent_ready(st, &cfg, "agent");
    let sensor_log = File::create(log_path(st, "sensor")).expect("sensor log");
    let mut sensor = ChildGuard {
        child: Command::new(bin("nightjar-sensor"))
            .args(["replay", "--config"])
            .arg(&cfg)
            .args(["--format", "eslogger", "--rate"])
            .arg(opts.events_per_second.to_string())
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(sensor_log)
            .spawn()
            .expect("spawn sensor"),
    };
    let stdin = sensor.child.stdin.take().expect("sensor stdin");
    // The replay's pacer starts once the sensor holds the ring: feed from then on, so that
    // it never holds back lines that arrived on time.
    crate::pipeline::wait_status(st, &cfg, "agent", "the sensor on the ring", |s| {
        s["sensor_connected"] == true
    });

    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let sent = Arc::clone(&sent);
        let done = Arc::clone(&done);
        std::thread::spawn(move || feed(stdin, opts, &sent, &done))
    };

    let mut ticks = Vec::new();
    let start = Instant::now();
    let mut prev: Option<(Instant, ProcSample, ProcSample)> = None;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        let now = Instant::now();
        let (Some(a), Some(s)) = (sample(agent.pid()), sample(sensor.pid())) else {
            if done.load(Ordering::Relaxed) {
                // The feeder closed the pipe and the replay ended between two samples.
                break;
            }
            panic!(
                "a process died under load\nagent log:\n{}\nsensor log:\n{}",
                log_text(st, "agent"),
                log_text(st, "sensor")
            );
        };
        let st_now = status(&cfg).unwrap_or(Value::Null);
        if let Some((t0, a0, s0)) = prev {
            let dt = now - t0;
            ticks.push(Tick {
                t_s: (now - start).as_secs_f64(),
                sent: sent.load(Ordering::Relaxed),
                received: counter(&st_now, "events_received"),
                dropped: counter(&st_now, "events_dropped"),
                agent_rss_kib: a.rss_kib,
                sensor_rss_kib: s.rss_kib,
                agent_anon_kib: a.anon_kib,
                sensor_anon_kib: s.anon_kib,
                agent_cpu_pct: cpu_percent(a0, a, dt),
                sensor_cpu_pct: cpu_percent(s0, s, dt),
            });
        }
        prev = Some((now, a, s));
    }
    let feed_seconds = feeder.join().expect("feeder thread");
    let done = sensor.wait_timeout(PATIENCE).expect("sensor finishes");
    assert!(done.success(), "sensor: {}", log_text(st, "sensor"));

    let events_sent = sent.load(Ordering::Relaxed);
    let matches_sent = events_sent / u64::from(opts.match_every);
    let settled = crate::harness::wait_for(PATIENCE, || {
        let s = status(&cfg)?;
        (counter(&s, "events_received") + counter(&s, "events_dropped") >= events_sent
            && counter(&s, "alerts_stored") >= matches_sent)
            .then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "the agent did not account for {events_sent} events; status {:?}\n{}",
            status(&cfg),
            log_text(st, "agent")
        )
    });

    let mut by_third: [Vec<u64>; 3] = Default::default();
    let mut all = Vec::new();
    let stored = alerts(&cfg);
    let n = stored.len().max(1);
    for (i, a) in stored.iter().enumerate() {
        let at = a["@timestamp"].as_str().and_then(parse_rfc3339);
        let orig = a["kibana"]["alert"]["original_time"]
            .as_str()
            .and_then(parse_rfc3339);
        if let (Some(at), Some(orig)) = (at, orig) {
            let us = u64::try_from((at - orig) / 1000).unwrap_or(0);
            by_third[(i * 3 / n).min(2)].push(us);
            all.push(us);
        }
    }
    let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
    stop(&mut agent, st, "agent");
    let verify = verify(&cfg);
    LoadReport {
        events_sent,
        events_received: counter(&settled, "events_received"),
        events_dropped: counter(&settled, "events_dropped"),
        matches_sent,
        alerts_stored: counter(&settled, "alerts_stored"),
        alerts_listed: stored.len() as u64,
        verify,
        feed_seconds,
        target_events_per_second: opts.events_per_second,
        ticks,
        latency_ms_p50_by_third: [
            ms(median(&by_third[0])),
            ms(median(&by_third[1])),
            ms(median(&by_third[2])),
        ],
        latency_ms_p50: ms(median(&all)),
        latency_ms_p99: ms(percentile(&all, 99.0)),
    }
}

/// Writes up to `rate × duration` lines to the sensor, paced in ~1 ms batches, and stops when
/// `duration` has passed even if a slower pipeline (the pipe pushes back) took fewer: the
/// achieved rate is then below the offered one, which the report shows. Returns the seconds
/// it took. Sets `done` when finished (closing the pipe ends the replay).
fn feed(
    stdin: std::process::ChildStdin,
    opts: LoadOptions,
    sent: &AtomicU64,
    done: &AtomicBool,
) -> f64 {
    let total = u64::from(opts.events_per_second) * opts.duration.as_secs();
    let mut out = BufWriter::with_capacity(1 << 20, stdin);
    let mut renderer = LineRenderer::new();
    let mut buf = String::with_capacity(1 << 20);
    let start = Instant::now();
    let rate = u64::from(opts.events_per_second).max(1);
    // About one batch per millisecond: fine enough that the sensor's own pacer (which
    // spreads events evenly) never holds a line back for long.
    let batch = (rate / 1000).max(1);
    let mut n = 0u64;
    while n < total && start.elapsed() < opts.duration {
        let due = start + Duration::from_nanos(n.saturating_mul(1_000_000_000) / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        buf.clear();
        for _ in 0..batch.min(total - n) {
            n += 1;
            renderer.render(&mut buf, n.is_multiple_of(u64::from(opts.match_every)));
        }
        if out
            .write_all(buf.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
        sent.store(n, Ordering::Relaxed);
    }
    let took = start.elapsed().as_secs_f64();
    drop(out);
    done.store(true, Ordering::Relaxed);
    took
}

/// Writes a report's per-second samples as NDJSON (for plotting a long run).
pub fn write_ticks(report: &LoadReport, path: &Path) -> std::io::Result<()> {
    let mut f = BufWriter::new(File::create(path)?);
    for t in &report.ticks {
        serde_json::to_writer(&mut f, t)?;
        f.write_all(b"\n")?;
    }
    f.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_lines_are_valid_eslogger_json_with_fresh_identity() {
        let mut r = LineRenderer::new();
        let mut buf = String::new();
        r.render(&mut buf, false);
        r.render(&mut buf, true);
        let lines: Vec<Value> = buf
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines[0]["seq_num"], 1);
        assert_eq!(lines[1]["seq_num"], 2);
        assert_eq!(lines[1]["event"]["exec"]["args"][1], "copy_cred_cache");
        assert_eq!(lines[1]["event"]["exec"]["target"]["audit_token"][5], 102);
        let t = parse_rfc3339(lines[1]["time"].as_str().expect("time")).expect("parse");
        assert!((now_ns() - t).abs() < 60_000_000_000);
    }

    #[test]
    fn rfc3339_round_trips() {
        for ns in [0, 951_782_400_000_000_001, 1_795_000_000_123_456_789] {
            let mut s = String::new();
            push_rfc3339(&mut s, ns);
            assert_eq!(parse_rfc3339(&s), Some(ns), "{s}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
