//! `scripts/bench ring`: the shared-memory ring between two processes against a Unix stream
//! socket (two processes) and a crossbeam channel (two threads), plus the latency of paced
//! records through the consumer's sleep/wake-up path.
//!
//! Progress goes to stderr; the last stdout line is one JSON object. Each figure is the
//! best of [`RUNS`] runs. The producer side of each cross-process figure is this binary
//! re-executed with `--child`.
//!
//! - `records_per_s`: 256-byte records, producer flushing every 64, consumer committing
//!   every 256, through a 2 MiB ring; `records_per_s_64mib_ring` the same through 64 MiB.
//!   The producer retries a refused push, so every record arrives; `drops` counts the
//!   refusals (what the sensor, which never retries, would have dropped).
//! - `baseline_unix_socket_records_per_s`: the same records, length-prefixed, over a Unix
//!   stream socket with one `write` per record, as a sensor would send each event when it
//!   arrives; `baseline_unix_socket_batched_records_per_s` with one `write` per 64 records
//!   (the ring's publication batch), which trades latency for fewer system calls.
//! - `baseline_crossbeam_records_per_s`: a bounded crossbeam channel between two threads.
//! - `latency_ns`: producer timestamp (`CLOCK_MONOTONIC`) to consumer receipt for records
//!   paced at 100,000/s, each flushed on its own; the consumer uses [`Consumer::wait`] with
//!   its default spin, so it sleeps whenever the ring is empty and every record goes
//!   through the wake-up path. `latency_spin_20us_ns` is the same with a 20 µs spin (longer
//!   than the 10 µs between records: the consumer does not sleep while they keep coming).
//!   `baseline_unix_socket_latency_ns` is the same paced stream over a Unix socket, one
//!   `write` per record, read by a blocking `read`: the kernel's own wake-up path, measured
//!   in the same run, against which the ring's tail is judged. Each latency figure carries
//!   the consumer's involuntary context switches and the machine's steal time during the
//!   run, which tell scheduling delays from the ring's own cost.
//!
//!   In the paced runs the producer and the consumer are pinned to two different CPUs
//!   (`"pinned": true`), as latency benchmarks of shared-memory IPC usually are. The paced
//!   producer busy-waits to keep time, which a sensor never does; unpinned, the kernel may
//!   place the woken consumer on the busy producer's CPU (a pipe write is a "sync" wake-up)
//!   and the record then waits a scheduler tick, milliseconds, for a CPU the benchmark
//!   itself is hogging. `latency_unpinned_ns` is the default run without pinning, for
//!   comparison.

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nightjar_proto::shm_ring::{Consumer, DEFAULT_SPIN, Producer, monotonic_ns};
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;

const RUNS: usize = 3;
const RECORD: usize = 256;
/// The headline ring: small enough to stay in cache (~7,700 records of 256 bytes in flight).
const RING_CAPACITY: u64 = 2 * 1024 * 1024;
/// The example `ring_capacity_bytes` of the configuration, measured too: a producer that
/// runs tens of megabytes ahead leaves the consumer reading from DRAM.
const LARGE_RING_CAPACITY: u64 = 64 * 1024 * 1024;
const RING_RECORDS: u64 = 20_000_000;
const SOCKET_RECORDS: u64 = 2_000_000;
const CHANNEL_RECORDS: u64 = 5_000_000;
/// Records the producer pushes between flushes in the throughput run.
const FLUSH_EVERY: u64 = 64;
/// Records the consumer reads between commits.
const COMMIT_EVERY: u64 = 256;
const PACED_RATE: u64 = 100_000;
const PACED_RECORDS: u64 = 200_000;
/// The consumer spin compared against the default in the paced run.
const COMPARED_SPIN: Duration = Duration::from_micros(20);

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2..]);
    }
    // Where a Linux host keeps /run: tmpfs. A disk-backed file adds writeback of every
    // dirty page to what is measured.
    let dir = match tempfile::tempdir_in("/dev/shm") {
        Ok(dir) => dir,
        Err(_) => tempfile::tempdir()?,
    };
    eprintln!("ring files in {}", dir.path().display());

    let (ring, drops) = best_ring_throughput(dir.path(), RING_CAPACITY)?;
    let (ring_large, drops_large) = best_ring_throughput(dir.path(), LARGE_RING_CAPACITY)?;
    let (mut push_ns, mut read_ns) = (f64::MAX, f64::MAX);
    for run in 0..RUNS {
        let (push, read) = one_thread_costs(&dir.path().join(format!("o{run}.ring")))?;
        eprintln!("one thread run {run}: push {push:.1} ns, read+commit {read:.1} ns per record");
        push_ns = push_ns.min(push);
        read_ns = read_ns.min(read);
    }
    let mut socket = Vec::new();
    let mut socket_unbatched = Vec::new();
    for run in 0..RUNS {
        let rate = socket_throughput(&dir.path().join(format!("s{run}.sock")), FLUSH_EVERY)?;
        eprintln!("unix socket run {run} (a write per {FLUSH_EVERY} records): {rate:.0} records/s");
        socket.push(rate);
        let rate = socket_throughput(&dir.path().join(format!("u{run}.sock")), 1)?;
        eprintln!("unix socket run {run} (a write per record): {rate:.0} records/s");
        socket_unbatched.push(rate);
    }
    let mut channel = Vec::new();
    for run in 0..RUNS {
        let rate = channel_throughput();
        eprintln!("crossbeam run {run}: {rate:.0} records/s");
        channel.push(rate);
    }
    let mut paced = Vec::new();
    let mut paced_spin = Vec::new();
    let mut paced_socket = Vec::new();
    let mut paced_unpinned = Vec::new();
    let pinned = Pinning::available();
    for run in 0..RUNS {
        let l = paced_socket_latency(&dir.path().join(format!("p{run}.sock")), pinned)?;
        eprintln!("paced run {run} (unix socket, blocking read): {l:?}");
        paced_socket.push(l);
        let path = dir.path().join(format!("l{run}.ring"));
        let l = paced_latency(&path, DEFAULT_SPIN, pinned)?;
        eprintln!("paced run {run} (default: sleep when empty): {l:?}");
        paced.push(l);
        let path = dir.path().join(format!("n{run}.ring"));
        let l = paced_latency(&path, COMPARED_SPIN, pinned)?;
        eprintln!("paced run {run} (spin {COMPARED_SPIN:?}, then sleep): {l:?}");
        paced_spin.push(l);
        let path = dir.path().join(format!("w{run}.ring"));
        let l = paced_latency(&path, DEFAULT_SPIN, None)?;
        eprintln!("paced run {run} (default, unpinned): {l:?}");
        paced_unpinned.push(l);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let best_latency =
        |v: &[Percentiles]| v.iter().copied().min_by_key(|l| l.p99).unwrap_or_default();
    let (socket, socket_unbatched) = (best(&socket), best(&socket_unbatched));
    let channel = best(&channel);
    let ratio = |a: f64, b: f64| (a / b * 100.0).round() / 100.0;
    let paced = best_latency(&paced);
    let paced_spin = best_latency(&paced_spin);
    let paced_socket = best_latency(&paced_socket);
    let paced_unpinned = best_latency(&paced_unpinned);
    let figures = serde_json::json!({
        "records_per_s": ring.round(),
        "drops": drops,
        "ring_capacity_bytes": RING_CAPACITY,
        "records_per_s_64mib_ring": ring_large.round(),
        "drops_64mib_ring": drops_large,
        "baseline_unix_socket_records_per_s": socket_unbatched.round(),
        "baseline_unix_socket_batched_records_per_s": socket.round(),
        "baseline_crossbeam_records_per_s": channel.round(),
        "ratio_vs_unix_socket": ratio(ring, socket_unbatched),
        "ratio_vs_unix_socket_batched": ratio(ring, socket),
        "ratio_vs_crossbeam": ratio(ring, channel),
        "one_thread_push_ns_per_record": (push_ns * 10.0).round() / 10.0,
        "one_thread_read_ns_per_record": (read_ns * 10.0).round() / 10.0,
        "latency_ns": paced.json(),
        "latency_spin_20us_ns": paced_spin.json(),
        "baseline_unix_socket_latency_ns": paced_socket.json(),
        "latency_unpinned_ns": paced_unpinned.json(),
        "pinned": pinned.is_some(),
        "record_bytes": RECORD,
        "paced_rate_per_s": PACED_RATE,
        "runs": RUNS,
        "load_average_1m": load_average(),
    });
    println!("{figures}");
    Ok(())
}

/// The 1-minute load average (Linux), printed with the figures: on a shared machine the
/// other runnable processes decide much of what two communicating processes achieve.
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn spawn_child(args: &[&str]) -> BenchResult<Child> {
    Ok(Command::new(std::env::current_exe()?)
        .arg("--child")
        .args(args)
        .spawn()?)
}

fn child(args: &[String]) -> BenchResult<()> {
    let arg = |i: usize| args.get(i).cloned().ok_or("missing child argument");
    let count: u64 = arg(2)?.parse()?;
    let path = PathBuf::from(arg(1)?);
    // Ring capacity, or records per socket write.
    let size: u64 = arg(3)?.parse()?;
    match arg(0)?.as_str() {
        "ring" => {
            let mut p = Producer::open(&path, size)?;
            let mut rec = [0xa5u8; RECORD];
            for i in 0..count {
                rec[..8].copy_from_slice(&i.to_le_bytes());
                // A refused push is counted as a drop by the ring; retrying it here makes
                // the figure the sustained rate rather than the rate of what survived.
                while !p.try_push(&rec) {
                    p.flush();
                    std::thread::yield_now();
                }
                if (i + 1).is_multiple_of(FLUSH_EVERY) {
                    p.flush();
                }
            }
            p.flush();
        }
        "paced" => {
            let mut p = Producer::open(&path, size)?;
            let mut rec = [0x5au8; RECORD];
            paced(count, |sent_ns| {
                rec[..8].copy_from_slice(&sent_ns.to_le_bytes());
                p.try_push(&rec);
                p.flush();
                Ok(())
            })?;
        }
        "socket_paced" => {
            let mut out = UnixStream::connect(&path)?;
            let mut rec = [0x5au8; RECORD + 4];
            rec[..4].copy_from_slice(&(RECORD as u32).to_le_bytes());
            paced(count, |sent_ns| {
                rec[4..12].copy_from_slice(&sent_ns.to_le_bytes());
                Ok(out.write_all(&rec)?)
            })?;
        }
        "socket" => {
            let batch = size as usize * (RECORD + 4);
            let mut out = BufWriter::with_capacity(batch, UnixStream::connect(&path)?);
            let mut rec = [0xa5u8; RECORD];
            for i in 0..count {
                rec[..8].copy_from_slice(&i.to_le_bytes());
                out.write_all(&(RECORD as u32).to_le_bytes())?;
                out.write_all(&rec)?;
                if (i + 1).is_multiple_of(size) {
                    out.flush()?;
                }
            }
            out.flush()?;
        }
        other => return Err(format!("unknown child role {other}").into()),
    }
    Ok(())
}

/// Calls `send` `count` times at [`PACED_RATE`] with the time of each call, busy-waiting
/// between them (a sleep could not keep 10 µs steps), after giving the consumer 50 ms to
/// settle into its wait.
fn paced(count: u64, mut send: impl FnMut(u64) -> BenchResult<()>) -> BenchResult<()> {
    let period = 1_000_000_000 / PACED_RATE;
    std::thread::sleep(Duration::from_millis(50));
    let start = monotonic_ns();
    for i in 0..count {
        let due = start + i * period;
        while monotonic_ns() < due {
            std::hint::spin_loop();
        }
        send(monotonic_ns())?;
    }
    Ok(())
}

/// The best of [`RUNS`] throughput runs through a ring of `capacity`, with its drops.
fn best_ring_throughput(dir: &Path, capacity: u64) -> BenchResult<(f64, u64)> {
    let (mut best, mut drops) = (0.0, 0);
    for run in 0..RUNS {
        let path = dir.join(format!("t{capacity}-{run}.ring"));
        let (rate, run_drops) = ring_throughput(&path, capacity)?;
        eprintln!("ring run {run} ({capacity} bytes): {rate:.0} records/s, {run_drops} drops");
        if rate > best {
            (best, drops) = (rate, run_drops);
        }
    }
    Ok((best, drops))
}

/// Records per second from the first record received to the last, and the drops.
fn ring_throughput(path: &Path, capacity: u64) -> BenchResult<(f64, u64)> {
    let mut c = Consumer::open(path, capacity)?;
    let mut producer = spawn_child(&[
        "ring",
        &path.to_string_lossy(),
        &RING_RECORDS.to_string(),
        &capacity.to_string(),
    ])?;
    let (mut received, mut start, mut bad, mut idle_after_exit) = (0u64, None, 0u64, 0u32);
    loop {
        match c.next()? {
            Some(entry) => {
                let seq = entry.bytes.get(..8).and_then(|b| b.try_into().ok());
                if entry.bytes.len() != RECORD || seq.map(u64::from_le_bytes) != Some(received) {
                    bad += 1;
                }
                let end = entry.end;
                received += 1;
                start.get_or_insert_with(Instant::now);
                if received.is_multiple_of(COMMIT_EVERY) {
                    c.commit(end);
                }
            }
            None if received == RING_RECORDS => break,
            None => {
                idle_after_exit += u32::from(producer.try_wait()?.is_some());
                if idle_after_exit > 3 {
                    return Err("the producer exited before delivering everything".into());
                }
                c.wait(Duration::from_millis(100))?;
            }
        }
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    producer.wait()?;
    if bad > 0 {
        return Err(format!("{bad} malformed records").into());
    }
    Ok((received as f64 / elapsed.as_secs_f64(), c.stats().drops))
}

/// Cost of each side alone, without a second process competing for the CPU: fill most of
/// the ring from one thread (flushing every [`FLUSH_EVERY`]), then read it all back.
fn one_thread_costs(path: &Path) -> BenchResult<(f64, f64)> {
    let mut p = Producer::open(path, RING_CAPACITY)?;
    let mut c = Consumer::open(path, RING_CAPACITY)?;
    let count = RING_CAPACITY / 2 / (RECORD as u64 + 16);
    let mut rec = [0xa5u8; RECORD];
    let start = Instant::now();
    for i in 0..count {
        rec[..8].copy_from_slice(&i.to_le_bytes());
        if !p.try_push(&rec) {
            return Err("ring full in the one-thread run".into());
        }
        if (i + 1).is_multiple_of(FLUSH_EVERY) {
            p.flush();
        }
    }
    p.flush();
    let push = start.elapsed().as_nanos() as f64 / count as f64;
    let start = Instant::now();
    let (mut n, mut sum) = (0u64, 0u64);
    while let Some(entry) = c.next()? {
        sum = sum.wrapping_add(u64::from(entry.bytes[RECORD - 1]));
        n += 1;
        let end = entry.end;
        if n.is_multiple_of(COMMIT_EVERY) {
            c.commit(end);
        }
    }
    let read = start.elapsed().as_nanos() as f64 / count as f64;
    std::hint::black_box(sum);
    if n != count {
        return Err("the one-thread run lost records".into());
    }
    Ok((push, read))
}

/// A length-prefixed Unix stream socket; the writer makes one `write` per `batch` records.
fn socket_throughput(path: &Path, batch: u64) -> BenchResult<f64> {
    let listener = UnixListener::bind(path)?;
    let mut producer = spawn_child(&[
        "socket",
        &path.to_string_lossy(),
        &SOCKET_RECORDS.to_string(),
        &batch.to_string(),
    ])?;
    let (stream, _) = listener.accept()?;
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    let mut rec = [0u8; RECORD];
    let mut start = None;
    for _ in 0..SOCKET_RECORDS {
        let mut len = [0u8; 4];
        input.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        input.read_exact(rec.get_mut(..len).ok_or("record too long")?)?;
        start.get_or_insert_with(Instant::now);
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    producer.wait()?;
    Ok(SOCKET_RECORDS as f64 / elapsed.as_secs_f64())
}

fn channel_throughput() -> f64 {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; RECORD]>(4096);
    let sender = std::thread::spawn(move || {
        let mut rec = [0xa5u8; RECORD];
        for i in 0..CHANNEL_RECORDS {
            rec[..8].copy_from_slice(&i.to_le_bytes());
            if tx.send(rec).is_err() {
                return;
            }
        }
    });
    let mut start = None;
    let mut sum = 0u64;
    for rec in rx.iter() {
        start.get_or_insert_with(Instant::now);
        sum = sum.wrapping_add(u64::from(rec[8]));
    }
    let elapsed = start.map_or(Duration::ZERO, |s| s.elapsed());
    let _ = sender.join();
    std::hint::black_box(sum);
    CHANNEL_RECORDS as f64 / elapsed.as_secs_f64()
}

#[derive(Debug, Clone, Copy, Default)]
struct Percentiles {
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    /// Times the consumer was preempted (`ru_nivcsw`) during the run.
    involuntary_switches: u64,
    /// Time the hypervisor ran something else instead of this machine's vCPUs, summed over
    /// them (`/proc/stat` steal), during the run.
    steal_ms: u64,
    /// Records the ring refused (0 for the socket, which blocks instead).
    drops: u64,
    /// Records that arrived.
    received: u64,
}

impl Percentiles {
    fn from_latencies(mut latencies: Vec<u64>, sched: SchedDelta) -> Percentiles {
        latencies.sort_unstable();
        let at = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q) as usize)
                .copied()
                .unwrap_or(0)
        };
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: latencies.last().copied().unwrap_or(0),
            involuntary_switches: sched.involuntary_switches,
            steal_ms: sched.steal_ms,
            drops: 0,
            received: latencies.len() as u64,
        }
    }

    fn json(self) -> serde_json::Value {
        serde_json::json!({
            "p50": self.p50,
            "p99": self.p99,
            "p999": self.p999,
            "max": self.max,
            "consumer_involuntary_switches": self.involuntary_switches,
            "steal_ms": self.steal_ms,
            "drops": self.drops,
            "received": self.received,
        })
    }
}

/// What the scheduler did to a measured run: read at its start, then [`SchedDelta::since`].
#[derive(Debug, Clone, Copy, Default)]
struct SchedDelta {
    involuntary_switches: u64,
    steal_ms: u64,
}

impl SchedDelta {
    fn now() -> SchedDelta {
        SchedDelta {
            involuntary_switches: involuntary_switches(),
            steal_ms: steal_ms(),
        }
    }

    fn since(self) -> SchedDelta {
        let now = SchedDelta::now();
        SchedDelta {
            involuntary_switches: now
                .involuntary_switches
                .saturating_sub(self.involuntary_switches),
            steal_ms: now.steal_ms.saturating_sub(self.steal_ms),
        }
    }
}

/// This thread's involuntary context switches so far.
fn involuntary_switches() -> u64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0, |u| u.involuntary_context_switches() as u64)
}

/// Steal time of all CPUs so far, ms (`/proc/stat`, in clock ticks of 10 ms on Linux).
fn steal_ms() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?;
            line.split_whitespace().nth(8)?.parse::<u64>().ok()
        })
        .map_or(0, |ticks| ticks * 10)
}

/// Latency from the producer's timestamp to the consumer's receipt for records paced at
/// [`PACED_RATE`], with the consumer spinning `spin` before it sleeps.
fn paced_latency(path: &Path, spin: Duration, pin: Option<Pinning>) -> BenchResult<Percentiles> {
    let mut c = Consumer::open(path, RING_CAPACITY)?;
    c.set_spin(spin);
    let mut producer = spawn_child(&[
        "paced",
        &path.to_string_lossy(),
        &PACED_RECORDS.to_string(),
        &RING_CAPACITY.to_string(),
    ])?;
    let _pinned = pin.map(|p| p.apply(&producer)).transpose()?;
    let mut latencies = Vec::with_capacity(PACED_RECORDS as usize);
    let sched = SchedDelta::now();
    let mut idle_after_exit = 0u32;
    while (latencies.len() as u64) < PACED_RECORDS {
        let before = latencies.len();
        while let Some(entry) = c.next()? {
            let now = monotonic_ns();
            let sent = entry
                .bytes
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            latencies.push(now.saturating_sub(sent.ok_or("short record")?));
            let end = entry.end;
            c.commit(end);
        }
        // Only after a wait that brought nothing, so the measured path has no extra call.
        if latencies.len() == before && producer.try_wait()?.is_some() {
            idle_after_exit += 1;
            if idle_after_exit > 3 {
                break;
            }
        }
        c.wait(Duration::from_millis(100))?;
    }
    let sched = sched.since();
    producer.wait()?;
    Ok(Percentiles {
        drops: c.stats().drops,
        ..Percentiles::from_latencies(latencies, sched)
    })
}

/// The paced stream of [`paced_latency`] over a length-prefixed Unix stream socket, one
/// `write` per record, the reader blocking in `read`: the same-run baseline for the ring's
/// wake-up path.
fn paced_socket_latency(path: &Path, pin: Option<Pinning>) -> BenchResult<Percentiles> {
    let listener = UnixListener::bind(path)?;
    let mut producer = spawn_child(&[
        "socket_paced",
        &path.to_string_lossy(),
        &PACED_RECORDS.to_string(),
        "1",
    ])?;
    let _pinned = pin.map(|p| p.apply(&producer)).transpose()?;
    let (mut stream, _) = listener.accept()?;
    let mut latencies = Vec::with_capacity(PACED_RECORDS as usize);
    let sched = SchedDelta::now();
    let mut rec = [0u8; RECORD + 4];
    for _ in 0..PACED_RECORDS {
        stream.read_exact(&mut rec)?;
        let now = monotonic_ns();
        let sent = u64::from_le_bytes(rec[4..12].try_into()?);
        latencies.push(now.saturating_sub(sent));
    }
    let sched = sched.since();
    producer.wait()?;
    Ok(Percentiles::from_latencies(latencies, sched))
}

/// Two CPUs to pin a paced run's producer and consumer to.
#[derive(Debug, Clone, Copy)]
struct Pinning {
    producer_cpu: usize,
    consumer_cpu: usize,
}

impl Pinning {
    /// The first two CPUs this process may run on; `None` on a one-CPU machine.
    fn available() -> Option<Pinning> {
        let mine = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let mut cpus = (0..CpuSet::count()).filter(|&c| mine.is_set(c).unwrap_or(false));
        Some(Pinning {
            producer_cpu: cpus.next()?,
            consumer_cpu: cpus.next()?,
        })
    }

    /// Pins `producer` and this thread; the guard gives this thread its CPUs back.
    fn apply(self, producer: &Child) -> BenchResult<Unpin> {
        let before = sched_getaffinity(Pid::from_raw(0))?;
        let one = |cpu: usize| -> BenchResult<CpuSet> {
            let mut set = CpuSet::new();
            set.set(cpu)?;
            Ok(set)
        };
        sched_setaffinity(
            Pid::from_raw(producer.id() as i32),
            &one(self.producer_cpu)?,
        )?;
        sched_setaffinity(Pid::from_raw(0), &one(self.consumer_cpu)?)?;
        Ok(Unpin(before))
    }
}

/// Restores this thread's CPU affinity when dropped.
struct Unpin(CpuSet);

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = sched_setaffinity(Pid::from_raw(0), &self.0);
    }
}
