//! `scripts/bench sensor`: the sensor's intake cost and memory.
//!
//! 1. Latency from a raw exec sample in hand (the BPF ring-buffer bytes of a typical
//!    `kcc copy_cred_cache` exec) to its record in the shared-memory ring: decode the sample,
//!    stamp and number the event, encode it into the ring, and publish it: flushed on its
//!    own (an isolated exec; `publish_*`), or every 64 events (a BPF poll batch under load;
//!    `publish_batch64_*`, the flush cost landing on one event in 64). `push_no_flush_*` leaves
//!    publication to the ring (it publishes by itself every quarter of its capacity): the
//!    decode + encode + copy cost alone, without the wake-up of a sleeping consumer. Baseline, same events, same run: decode the
//!    sample, encode it as JSON and write it to a Unix socket (what a naive sensor would do).
//!    A consumer thread drains each side concurrently. p50/p99 per event, best of 5 rounds.
//!    Before measuring, one full lap of the ring is written unmeasured, so the figures are
//!    steady state (ring pages already faulted in), as in a sensor that has run a while.
//! 2. Resident memory of a running `nightjar-sensor run --source ebpf` (release build, 64 MiB
//!    ring) after a burst of execs: /proc/PID/smaps_rollup `Rss`, minus the `Rss` of the
//!    shared-memory ring's mapping and of the kernel BPF ring buffer's mapping
//!    (`anon_inode:bpf-map`: the 16 MiB buffer, mapped twice back to back by libbpf, so it
//!    shows as 32 MiB of Rss although it is 16 MiB of kernel memory), both reported too.
//!    Needs root; `null` otherwise. The same run also gives the live kernel-to-ring delay
//!    of those execs (`captured_ns - time_ns`: from the probe's timestamp to the sensor
//!    stamping the event just before encoding it), `live_exec_to_ring_*`.
//!
//! 3. File events through the ring: one million file samples (the BPF bytes of a creation
//!    under `~/.config/autostart/`) decoded, judged by the gate and published, flushed every
//!    64, with a consumer draining concurrently: events per second, best of 3 (`file_*`).
//! 4. A build under the live eBPF sensor (needs root): `make -j4` of 400 C files and a shared
//!    library in a directory under `/home` (where builds happen, and a tree Elastic's rules
//!    name), `TMPDIR` inside it so gcc's temporary files are counted too. Run twice: with the
//!    file filter derived from Elastic's Linux rules (`../shared/elastic-rules/linux-head-*`,
//!    the filter on) and with one rule that reads every file event (off). The build's file
//!    events are those on paths under its directory; with the filter off every one of them
//!    reaches the ring, so `1 - published(on) / published(off)` is the share the filter
//!    drops before the ring. Also: the sensor's CPU time during each build (utime + stime
//!    from /proc), the BPF ring drops reported per kind, and the filtered counts the sensor
//!    reported (`build_*`).
//!
//! 4b. A build-like load under the live eBPF sensor (`load`; needs root):
//!    `nightjar_tests::build_load`, two worker processes each creating, writing, renaming
//!    and deleting object and temporary files in a build tree under `/home` (7 file events
//!    per step, tens of thousands a second), with the filter of all of Elastic's Linux rules
//!    (on) and with one rule reading every file event (off), alternating, `LOAD_ROUNDS`
//!    rounds each, best (highest load rate) of each side reported: file events made,
//!    published to the ring, dropped in the kernel (made − published), the sensor's CPU,
//!    BPF ring drops and ring loss (records the shared ring refused) (`load_*`).
//!
//! 5. Exec latency with a blocking rule loaded (`[rules] block` of the kcc rule, compiled into
//!    the exec probe) against the same rule detecting only: four alternating rounds of each
//!    (a fresh sensor per round), 1,000 fork + exec + wait of `/bin/true` per round, pooled
//!    p50/p99; and the exec program's own run time per exec from `kernel.bpf_stats_enabled`
//!    (median of the rounds), which is where blocking adds its work (`exec_*`).
//!
//! 6. Opens through the macOS open filter (`open_*`): one million Endpoint Security open
//!    messages of a build (its sources, headers, SDK headers and libraries, one in 200 a
//!    cache database and one in 1,000 a browser's cookie store), mapped as the ES handler maps
//!    them (`EsMessage::to_event`), judged by the gate with the open filter of Elastic's macOS
//!    head rules (`RuleSet::open_filter`: names, so Endpoint Security cannot select them and
//!    every open reaches the sensor), the admitted ones published with a consumer draining.
//!    Baseline, same messages and run: the filter off (every open mapped and published: what
//!    the ring and the agent would take without it). Messages per second, best of 3, and the
//!    share the filter drops. Endpoint Security's own cost of delivering each open to a client
//!    is on macOS and not measured here.
//!
//! The last stdout line is one JSON object.

// The figures' `json!` object is larger than the macro's default recursion allows.
#![recursion_limit = "256"]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nightjar_bench::load::{self, LoadRound as _};
use nightjar_proto::codec::{self, Record};
use nightjar_proto::event::{EnvFilter, FLAG_SNAPSHOT};
use nightjar_proto::filter::PathFilter;
use nightjar_proto::shm_ring::{Consumer, Producer};
use nightjar_sensor::capture::ebpf::sample::{
    BootClock, DecodeContext, ExecSample, SampleScratch, decode_sample, encode_exec_sample,
    encode_file_sample,
};
use nightjar_sensor::capture::endpoint_security::fields::{
    EsAuditToken, EsHeader, EsMessage, EsPath, EsProcessFields, EsScratch,
};
use nightjar_sensor::gate::{Gate, Verdict};
use nightjar_sensor::publish::Publisher;
use serde_json::json;

const EVENTS: usize = 200_000;
const ROUNDS: usize = 5;
/// Events per flush in the batched mode (one BPF poll's worth under load).
const BATCH: usize = 64;
const RING_BYTES: u64 = 64 * 1024 * 1024;

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn typical_sample(i: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let argv = format!("/usr/local/bin/kcc\0copy_cred_cache\0--cache\0/tmp/krb5cc_{i}\0");
    encode_exec_sample(
        &mut out,
        &ExecSample {
            time_boot_ns: 1_000_000 + u64::from(i),
            start_boot_ns: 500_000 + u64::from(i),
            pid: 10_000 + i,
            ppid: 1234,
            ids: [501, 501, 20, 20],
            auid: 501,
            audit_session: 100_013,
            sid: 1234,
            pgid: 10_000 + i,
            argc: 4,
            flags: 0x10 | 0x20,
            exe: b"/usr/local/bin/kcc",
            cwd: b"/home/bob",
            head: argv.as_bytes(),
            tty: b"pts/1",
            cgroup: b"session-3.scope",
            ..ExecSample::default()
        },
    );
    out
}

/// Drains a ring on another thread until told to stop; returns the records read and, when
/// `intake` is set, each exec's kernel-to-sensor delay (`captured_ns - time_ns`).
fn drain_ring(
    path: PathBuf,
    stop: Arc<AtomicBool>,
    intake: bool,
) -> std::thread::JoinHandle<(u64, Vec<u64>)> {
    std::thread::spawn(move || {
        let mut consumer = Consumer::open(&path, RING_BYTES).expect("consumer");
        let mut n = 0u64;
        let mut delays = Vec::new();
        loop {
            let mut end = None;
            while let Ok(Some(entry)) = consumer.next() {
                end = Some(entry.end);
                n += 1;
                if intake
                    && let Ok(Record::Exec(ev)) = codec::decode(entry.bytes)
                    // Processes read from /proc at start are not live execs.
                    && ev.flags & FLAG_SNAPSHOT == 0
                {
                    delays.push(u64::try_from(ev.captured_ns - ev.time_ns).unwrap_or(0));
                }
            }
            if let Some(end) = end {
                consumer.commit(end);
            } else if stop.load(Ordering::Relaxed) {
                return (n, delays);
            } else {
                let _ = consumer.wait(Duration::from_millis(5));
            }
        }
    })
}

fn ring_round(samples: &[Vec<u8>], dir: &Path, round: usize, batch: usize) -> (Vec<u64>, u64) {
    let path = dir.join(format!("bench-{round}-{batch}.ring"));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = Producer::open(&path, RING_BYTES).expect("producer");
    let drainer = drain_ring(path, Arc::clone(&stop), false);
    let mut publisher = Publisher::new(producer);
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let clock = DecodeContext {
        clock: BootClock {
            offset_ns: 1,
            boot_unix_ns: 0,
            tick_ns: 10_000_000,
        },
        env: &env,
    };
    // Warm-up: one lap of the ring, unmeasured.
    let lap = (RING_BYTES as usize / 192).max(samples.len());
    for i in 0..lap {
        let mut ev =
            decode_sample(&samples[i % samples.len()], &mut scratch, clock).expect("sample");
        publisher.publish_event(&mut ev);
        if i % batch == batch - 1 {
            publisher.flush();
        }
    }
    publisher.flush();
    let warm = publisher.stats().published;
    let mut lat = Vec::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        let t0 = Instant::now();
        // Published where it was decoded, as the eBPF capture loop does.
        let Ok(ev) = &mut decode_sample(s, &mut scratch, clock) else {
            panic!("a bad sample");
        };
        publisher.publish_event(ev);
        if i % batch == batch - 1 {
            publisher.flush();
        }
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    publisher.flush();
    stop.store(true, Ordering::Relaxed);
    let (drained, _) = drainer.join().expect("drainer");
    let pushed = samples.len() as u64 + warm;
    (
        lat,
        publisher.stats().ring_full + pushed.saturating_sub(drained),
    )
}

fn json_round(samples: &[Vec<u8>]) -> Vec<u64> {
    let (mut tx, mut rx) = UnixStream::pair().expect("socketpair");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = std::io::Read::read(&mut rx, &mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let clock = DecodeContext {
        clock: BootClock {
            offset_ns: 1,
            boot_unix_ns: 0,
            tick_ns: 10_000_000,
        },
        env: &env,
    };
    let mut lat = Vec::with_capacity(samples.len());
    let mut line = Vec::new();
    for s in samples {
        let t0 = Instant::now();
        let ev = decode_sample(s, &mut scratch, clock)
            .expect("sample")
            .into_exec()
            .expect("an exec sample");
        let t = &ev.target;
        let doc = json!({
            "@timestamp": ev.time_ns,
            "process": {
                "pid": t.pid, "ppid": t.ppid, "executable": t.executable,
                "args": t.args.iter().collect::<Vec<_>>(),
                "start": t.start_time_ns,
            },
            "user": {"id": t.euid, "uid": t.uid, "gid": t.gid, "egid": t.egid},
            "auid": t.auid, "session": t.session_id,
        });
        line.clear();
        serde_json::to_writer(&mut line, &doc).expect("json");
        line.push(b'\n');
        tx.write_all(&line).expect("socket write");
        lat.push(t0.elapsed().as_nanos() as u64);
    }
    drop(tx);
    reader.join().expect("reader");
    lat
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Rss of a live eBPF sensor after a burst of execs, KiB.
struct Rss {
    total: u64,
    ring: u64,
    bpf_ringbuf: u64,
    /// Kernel exec to record published, p50 and p99, ns (from the same run's execs).
    intake: Option<(u64, u64)>,
}

/// Measures [`Rss`].
fn sensor_rss(dir: &Path) -> Result<Rss, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sensor = exe.with_file_name("nightjar-sensor");
    let ring = dir.join("rss.ring");
    let cfg = dir.join("rss.toml");
    std::fs::write(
        &cfg,
        format!(
            "ring_path = {:?}\nring_capacity_bytes = {RING_BYTES}\n",
            ring.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut child = Command::new(&sensor)
        .args(["run", "--source", "ebpf", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", sensor.display()))?;
    std::thread::sleep(Duration::from_millis(1500));
    let drainer = drain_ring(ring.clone(), Arc::clone(&stop), true);
    for i in 0..2000 {
        let _ = Command::new("/bin/true").arg(format!("bench-{i}")).status();
    }
    std::thread::sleep(Duration::from_millis(500));
    let pid = child.id();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"));
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"));
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let mut delays = drainer.join().map(|(_, d)| d).unwrap_or_default();
    delays.sort_unstable();
    if let Some(status) = exited {
        return Err(format!("sensor exited early: {status}"));
    }
    let rollup = rollup.map_err(|e| e.to_string())?;
    let smaps = smaps.map_err(|e| e.to_string())?;
    let total = kib_field(&rollup, "Rss:").ok_or("no Rss in smaps_rollup")?;
    let ring_name = ring.display().to_string();
    let (mut ring_rss, mut bpf_rss) = (0, 0);
    let mut current = None;
    for line in smaps.lines() {
        let is_header = line
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'));
        if is_header {
            current = if line.ends_with(&ring_name) {
                Some(&mut ring_rss)
            } else if line.ends_with("anon_inode:bpf-map") {
                Some(&mut bpf_rss)
            } else {
                None
            };
        } else if let Some(sum) = current.as_deref_mut()
            && let Some(kib) = kib_field(line, "Rss:")
        {
            *sum += kib;
        }
    }
    Ok(Rss {
        total,
        ring: ring_rss,
        bpf_ringbuf: bpf_rss,
        intake: (!delays.is_empty()).then(|| (percentile(&delays, 0.5), percentile(&delays, 0.99))),
    })
}

fn file_sample(i: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let path = format!("/home/bob/.config/autostart/update-{i}.desktop");
    encode_file_sample(
        &mut out,
        1_000_000 + u64::from(i),
        20_000 + i % 64,
        1,
        0,
        path.as_bytes(),
        b"",
    );
    out
}

/// Publishes file samples through the gate into a ring with a concurrent consumer: events
/// per second, records lost.
fn file_round(samples: &[Vec<u8>], dir: &Path, round: usize) -> (f64, u64) {
    let path = dir.join(format!("bench-file-{round}.ring"));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = Producer::open(&path, RING_BYTES).expect("producer");
    let drainer = drain_ring(path, Arc::clone(&stop), false);
    let mut publisher = Publisher::new(producer);
    let mut scratch = SampleScratch::default();
    let env = EnvFilter::default();
    let clock = DecodeContext {
        clock: BootClock {
            offset_ns: 1,
            boot_unix_ns: 0,
            tick_ns: 10_000_000,
        },
        env: &env,
    };
    let mut filter = PathFilter::none();
    filter.add_prefix("/home/bob/.config/autostart/");
    let mut gate = Gate::new(filter, vec![1]);
    let t0 = Instant::now();
    let mut published = 0u64;
    for (i, s) in samples.iter().enumerate() {
        let mut ev = decode_sample(s, &mut scratch, clock).expect("sample");
        if gate.judge(&ev) == Verdict::Publish {
            publisher.publish_event(&mut ev);
            published += 1;
        }
        if i % BATCH == BATCH - 1 {
            publisher.flush();
        }
    }
    publisher.flush();
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (drained, _) = drainer.join().expect("drainer");
    (
        published as f64 / secs,
        publisher.stats().ring_full + published.saturating_sub(drained),
    )
}

/// The paths a build opens (see item 6 of the module documentation), one per message.
fn open_paths() -> Vec<Vec<u8>> {
    (0..1_000_000u32)
        .map(|i| {
            let p = if i % 1000 == 999 {
                "/Users/bob/Library/Application Support/Google/Chrome/Default/Cookies".to_owned()
            } else if i % 200 == 199 {
                "/Users/bob/Library/Caches/com.apple.nsurlsessiond/Cache.db".to_owned()
            } else {
                match i % 4 {
                    0 => format!("/Users/bob/src/proj/src/unit{}.c", i % 400),
                    1 => format!("/Users/bob/src/proj/include/proj/h{}.h", i % 97),
                    2 => format!(
                        "/Applications/Xcode.app/Contents/Developer/Platforms/MacOSX.platform/\
                         Developer/SDKs/MacOSX.sdk/usr/include/sys/h{}.h",
                        i % 61
                    ),
                    _ => "/usr/lib/libSystem.B.dylib".to_owned(),
                }
            };
            p.into_bytes()
        })
        .collect()
}

/// The open filter of Elastic's macOS head rules.
fn macos_open_filter() -> Result<PathFilter, String> {
    let macos = nightjar_bench::elastic_rules_folder("macos-head")?;
    let (set, _) = nightjar_rules::RuleSet::load(std::slice::from_ref(&macos), false, None)
        .map_err(|e| e.to_string())?;
    Ok(set.open_filter())
}

/// Maps open messages, judges them with `opens` and publishes what passes into a ring with a
/// concurrent consumer: messages per second, and how many were published.
fn open_round(paths: &[Vec<u8>], dir: &Path, tag: &str, opens: &PathFilter) -> (f64, u64) {
    let path = dir.join(format!("bench-open-{tag}.ring"));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = Producer::open(&path, RING_BYTES).expect("producer");
    let drainer = drain_ring(path.clone(), Arc::clone(&stop), false);
    let mut publisher = Publisher::new(producer);
    let mut gate = Gate::new(PathFilter::none(), vec![1]).with_opens(opens.clone());
    let mut scratch = EsScratch::default();
    let env = EnvFilter::default();
    let token = EsAuditToken {
        auid: 501,
        euid: 501,
        egid: 20,
        ruid: 501,
        rgid: 20,
        pid: 7100,
        asid: 100_017,
        pidversion: 41,
    };
    let clang = EsProcessFields {
        audit_token: token,
        ppid: 7000,
        original_ppid: 7000,
        codesigning_flags: 0x2200_0001,
        is_platform_binary: true,
        signing_id: b"com.apple.clang",
        executable: b"/Applications/Xcode.app/Contents/Developer/Toolchains/XcodeDefault.xctoolchain/usr/bin/clang",
        start_time: Some((1_795_000_000, 0)),
        parent_audit_token: Some(EsAuditToken { pid: 7000, ..token }),
        responsible_audit_token: Some(EsAuditToken { pid: 410, ..token }),
        ..EsProcessFields::default()
    };
    let t0 = Instant::now();
    let mut published = 0u64;
    for (i, p) in paths.iter().enumerate() {
        let msg: EsMessage<'_, std::iter::Empty<&[u8]>, std::iter::Empty<&[u8]>> =
            EsMessage::File {
                header: EsHeader {
                    event_type: nightjar_proto::eslogger::event_type::NOTIFY_OPEN,
                    version: 7,
                    time_ns: 1_795_000_000_000_000_000 + i as i64,
                    seq_num: Some(i as u64),
                    global_seq_num: Some(i as u64),
                },
                process: clang.clone(),
                action: nightjar_proto::event::FileAction::Open,
                path: EsPath::File {
                    path: p,
                    truncated: false,
                },
                original: None,
            };
        let ev = msg.to_event(&mut scratch, &env);
        if gate.judge(&ev) == Verdict::Publish {
            publisher.publish(ev);
            published += 1;
        }
        if i % BATCH == BATCH - 1 {
            publisher.flush();
        }
    }
    publisher.flush();
    let secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    drainer.join().expect("drainer");
    let _ = std::fs::remove_file(&path);
    (paths.len() as f64 / secs, published)
}

/// What one build under the live sensor gave.
#[derive(Debug, Default, Clone)]
struct BuildRun {
    /// File events under the build directory that reached the ring.
    published: u64,
    /// File events the sensor reported as filtered (whole machine, during the run).
    filtered_reported: u64,
    /// Events the sensor reported lost (BPF ring full), by kind name.
    lost: serde_json::Map<String, serde_json::Value>,
    sensor_cpu_ms: u64,
    build_secs: f64,
    /// Records the ring refused while full (the consumer drains as fast as it can).
    ring_lost: u64,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name: state is field 3; utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Writes a small C project: 400 translation units, a shared library of them and a program.
fn write_project(root: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join("tmp"))?;
    let mut objs = Vec::new();
    for i in 0..400 {
        std::fs::write(
            root.join(format!("src/unit{i}.c")),
            format!(
                "#include <stdio.h>\n#include <string.h>\nint unit{i}(const char *s) {{ char b[64]; snprintf(b, sizeof b, \"%s-{i}\", s); return (int)strlen(b); }}\n"
            ),
        )?;
        objs.push(format!("build/unit{i}.o"));
    }
    std::fs::write(
        root.join("src/main.c"),
        "int unit0(const char *s);\nint main(void) { return unit0(\"x\") > 0 ? 0 : 1; }\n",
    )?;
    std::fs::write(
        root.join("Makefile"),
        format!(
            "OBJS = {}\nall: build/app\nbuild/%.o: src/%.c\n\t@mkdir -p build\n\tgcc -O1 -fPIC -MMD -c $< -o $@\nbuild/libunits.so: $(OBJS)\n\tgcc -shared -o $@ $(OBJS)\nbuild/app: src/main.c build/libunits.so\n\tgcc -o $@ src/main.c -Lbuild -lunits\nclean:\n\trm -rf build\n",
            objs.join(" ")
        ),
    )
}

/// Runs the build under a live eBPF sensor loading `rules`.
fn build_run(dir: &Path, root: &Path, rules: &Path, tag: &str) -> Result<BuildRun, String> {
    let _ = Command::new("make")
        .args(["-s", "clean"])
        .current_dir(root)
        .status();
    live_run(dir, root, rules, tag, || {
        let status = Command::new("make")
            .args(["-s", "-j4"])
            .current_dir(root)
            .env("TMPDIR", root.join("tmp"))
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("make: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the build failed: {status}"))
        }
    })
}

/// Runs `work` (file activity under `root`) under a live eBPF sensor loading `rules`, with a
/// consumer draining the ring as fast as it can.
fn live_run(
    dir: &Path,
    root: &Path,
    rules: &Path,
    tag: &str,
    work: impl FnOnce() -> Result<(), String>,
) -> Result<BuildRun, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sensor = exe.with_file_name("nightjar-sensor");
    let ring = dir.join(format!("build-{tag}.ring"));
    let cfg = dir.join(format!("build-{tag}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "ring_path = {:?}\nring_capacity_bytes = {RING_BYTES}\n[rules]\nbuiltin = false\npaths = [{:?}]\n",
            ring.display().to_string(),
            rules.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(&sensor)
        .args(["run", "--source", "ebpf", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{}: {e}", sensor.display()))?;
    std::thread::sleep(Duration::from_millis(2000));
    let stop = Arc::new(AtomicBool::new(false));
    let prefix = root.display().to_string();
    let drainer = {
        let stop = Arc::clone(&stop);
        let ring = ring.clone();
        std::thread::spawn(move || {
            let mut run = BuildRun::default();
            let Ok(mut consumer) = Consumer::open(&ring, RING_BYTES) else {
                return run;
            };
            loop {
                let mut end = None;
                while let Ok(Some(entry)) = consumer.next() {
                    end = Some(entry.end);
                    match codec::decode(entry.bytes) {
                        Ok(Record::File(f))
                            if f.path.starts_with(&prefix)
                                || f.original_path
                                    .as_deref()
                                    .is_some_and(|o| o.starts_with(&prefix)) =>
                        {
                            run.published += 1
                        }
                        Ok(Record::Filtered(f)) => run.filtered_reported += f.count,
                        Ok(Record::Loss(l)) => {
                            let k = l.kind.map_or("unknown", |k| k.as_str()).to_owned();
                            let n = run
                                .lost
                                .get(&k)
                                .and_then(serde_json::Value::as_u64)
                                .unwrap_or(0);
                            run.lost.insert(k, (n + l.count).into());
                        }
                        _ => {}
                    }
                }
                if let Some(end) = end {
                    consumer.commit(end);
                } else if stop.load(Ordering::Relaxed) {
                    run.ring_lost = consumer.stats().drops;
                    return run;
                } else {
                    let _ = consumer.wait(Duration::from_millis(5));
                }
            }
        })
    };
    let pid = child.id();
    let cpu0 = cpu_ticks(pid);
    let t0 = Instant::now();
    let worked = work();
    let build_secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(1500));
    let cpu1 = cpu_ticks(pid);
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let mut run = drainer.join().map_err(|_| "drainer panicked".to_owned())?;
    if let Some(st) = exited {
        return Err(format!("sensor exited early: {st}"));
    }
    worked?;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .unwrap_or(100)
        .max(1);
    run.sensor_cpu_ms = match (cpu0, cpu1) {
        (Some(a), Some(b)) => (b - a) * 1000 / hz,
        _ => 0,
    };
    run.build_secs = build_secs;
    Ok(run)
}

/// The build with the filter on and off: (on, off, whether the kernel applies the filter).
/// The build runs: the filter from all of Elastic's Linux rules (`on`), from its single-event
/// rules only (`event_rules`), and off.
#[derive(Debug)]
struct BuildFigures {
    on: BuildRun,
    event_rules: BuildRun,
    off: BuildRun,
    /// The kernel applies the filter of all rules / of the single-event rules.
    kernel: bool,
    event_rules_kernel: bool,
    /// Rule files whose filter alone admits every file event (a file query no path or
    /// process bounds, such as a sequence's file stage joined on the process).
    admit_all: Vec<String>,
}

fn build_figures(dir: &Path) -> Result<BuildFigures, String> {
    let linux = linux_rules()?;
    let (set, _) = nightjar_rules::RuleSet::load(std::slice::from_ref(&linux), false, None)
        .map_err(|e| e.to_string())?;
    let kernel = set.file_filter().kernel_can_filter();
    // The single-event rules, each file judged on its own.
    let singles = dir.join("linux-event-rules");
    std::fs::create_dir_all(&singles).map_err(|e| e.to_string())?;
    let mut admit_all = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&linux)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in &files {
        let Ok((one, _)) = nightjar_rules::RuleSet::load(std::slice::from_ref(file), false, None)
        else {
            continue;
        };
        if one.file_filter().is_all() {
            admit_all.push(
                file.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        if !one.rules().is_empty() && one.event_rules() == one.rules().len() {
            let name = file.file_name().ok_or("a rule file without a name")?;
            std::fs::copy(file, singles.join(name)).map_err(|e| e.to_string())?;
        }
    }
    let (single_set, _) =
        nightjar_rules::RuleSet::load(std::slice::from_ref(&singles), false, None)
            .map_err(|e| e.to_string())?;
    let event_rules_kernel = single_set.file_filter().kernel_can_filter();
    let every = every_file_rule(dir)?;
    let root = PathBuf::from(format!("/home/nightjar-bench-build-{}", std::process::id()));
    write_project(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let out = (|| {
        let on = build_run(dir, &root, &linux, "on")?;
        let event_rules = build_run(dir, &root, &singles, "event-rules")?;
        let off = build_run(dir, &root, &every, "off")?;
        Ok(BuildFigures {
            on,
            event_rules,
            off,
            kernel,
            event_rules_kernel,
            admit_all,
        })
    })();
    let _ = std::fs::remove_dir_all(&root);
    out
}

/// Rounds of the build-like load per side, its workers and their steps.
const LOAD_ROUNDS: usize = 3;
const LOAD_WORKERS: u32 = 2;
const LOAD_STEPS: u64 = 20_000;

/// The folder of Elastic's Linux rules.
fn linux_rules() -> Result<PathBuf, String> {
    nightjar_bench::elastic_rules_folder("linux-head")
}

/// One rule that reads every file event: the filter off.
fn every_file_rule(dir: &Path) -> Result<PathBuf, String> {
    let every = dir.join("every-file.toml");
    std::fs::write(
        &every,
        concat!(
            "[metadata]\ncreation_date = \"2026/01/01\"\n[rule]\nrule_id = \"bench-every-file\"\n",
            "name = \"every file event\"\nseverity = \"low\"\nrisk_score = 1\ndescription = \"d\"\n",
            "type = \"eql\"\nlanguage = \"eql\"\nquery = 'file where file.path : \"*\"'\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(every)
}

/// One round of the build-like load under the live sensor.
#[derive(Debug, Clone)]
struct LoadRound {
    run: BuildRun,
    made: u64,
    secs: f64,
}

impl load::LoadRound for LoadRound {
    fn rate(&self) -> f64 {
        self.made as f64 / self.secs.max(1e-9)
    }

    fn json(&self) -> serde_json::Value {
        let lost_bpf: u64 = self
            .run
            .lost
            .values()
            .filter_map(serde_json::Value::as_u64)
            .sum();
        json!({
            "file_events_made": self.made,
            "file_events_per_s": self.rate().round(),
            "published": self.run.published,
            "dropped_before_ring": self.made.saturating_sub(self.run.published),
            "dropped_share": 1.0 - self.run.published as f64 / self.made.max(1) as f64,
            "filtered_reported": self.run.filtered_reported,
            "sensor_cpu_ms": self.run.sensor_cpu_ms,
            "sensor_cpu_ns_per_file_event": (self.run.sensor_cpu_ms * 1_000_000) / self.made.max(1),
            "secs": self.secs,
            "bpf_ring_drops": lost_bpf,
            "bpf_ring_drops_by_kind": self.run.lost.clone(),
            "ring_lost": self.run.ring_lost,
        })
    }
}

/// The build-like load with the filter on and off, alternating; every round kept.
fn load_figures(dir: &Path) -> Result<(Vec<LoadRound>, Vec<LoadRound>), String> {
    let linux = linux_rules()?;
    let every = every_file_rule(dir)?;
    let root = PathBuf::from(format!("/home/nightjar-bench-load-{}", std::process::id()));
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let out = (|| {
        let (mut on, mut off) = (Vec::new(), Vec::new());
        for round in 0..LOAD_ROUNDS {
            for (rules, tag, side) in [(&linux, "load-on", &mut on), (&every, "load-off", &mut off)]
            {
                let mut made = (0, 0.0);
                let run = live_run(dir, &root, rules, tag, || {
                    let r = nightjar_tests::build_load::run(&root, LOAD_WORKERS, LOAD_STEPS)?;
                    made = (r.events, r.secs);
                    Ok(())
                })?;
                let r = LoadRound {
                    run,
                    made: made.0,
                    secs: made.1,
                };
                eprintln!("load round {round} {tag}: {}", r.json());
                side.push(r);
            }
        }
        Ok((on, off))
    })();
    let _ = std::fs::remove_dir_all(&root);
    out
}

/// The ids of the BPF programs `pid` holds open (`/proc/PID/fdinfo`).
fn prog_ids(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("prog_id:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .collect()
}

/// (run time ns, runs) of the exec program among `ids`.
fn exec_prog_stats(ids: &[u32]) -> Option<(u64, u64)> {
    libbpf_rs::query::ProgInfoIter::default()
        .find(|p| ids.contains(&p.id) && p.name.to_string_lossy() == "nightjar_exec")
        .map(|p| (p.run_time_ns, p.run_cnt))
}

/// Exec latency under a live sensor, with and without a blocking rule loaded.
#[derive(Debug, Default, Clone)]
struct ExecCost {
    /// fork + exec + wait of /bin/true, ns.
    latency: Vec<u64>,
    /// The exec program's run time per exec (bpf_stats), ns.
    prog_ns: Vec<f64>,
}

/// One round: a sensor loading the kcc rule (blocking it when `block`), `n` execs of
/// /bin/true.
fn exec_round(dir: &Path, block: bool, n: usize, cost: &mut ExecCost) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let sensor = exe.with_file_name("nightjar-sensor");
    let rule =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/linux/rules/kcc-linux.toml");
    let tag = if block { "block" } else { "detect" };
    let ring = dir.join(format!("exec-{tag}.ring"));
    let cfg = dir.join(format!("exec-{tag}.toml"));
    let log = dir.join(format!("exec-{tag}.log"));
    let block_line = if block {
        "block = [\"c4ab5c12-3447-4aaf-891b-c474270fe4d9\"]\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!(
            "ring_path = {:?}\nring_capacity_bytes = {RING_BYTES}\n[rules]\nbuiltin = false\npaths = [{:?}]\n{block_line}",
            ring.display().to_string(),
            rule.display().to_string()
        ),
    )
    .map_err(|e| e.to_string())?;
    let mut child = Command::new(&sensor)
        .args(["run", "--source", "ebpf", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("{}: {e}", sensor.display()))?;
    let t0 = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("eBPF probes attached")) {
        if t0.elapsed() > Duration::from_secs(90) || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the sensor did not attach: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if block && !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("blocking rules loaded")) {
        let _ = child.kill();
        let _ = child.wait();
        return Err("the blocking rule was not loaded".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = drain_ring(ring, Arc::clone(&stop), false);
    let ids = prog_ids(child.id());
    let before = exec_prog_stats(&ids);
    for _ in 0..n {
        let t = Instant::now();
        let _ = Command::new("/bin/true").status();
        cost.latency.push(t.elapsed().as_nanos() as u64);
    }
    let after = exec_prog_stats(&ids);
    if let (Some((t0, c0)), Some((t1, c1))) = (before, after)
        && c1 > c0
    {
        cost.prog_ns.push((t1 - t0) as f64 / (c1 - c0) as f64);
    }
    let _ = child.kill();
    let _ = child.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = drainer.join();
    Ok(())
}

/// Alternating rounds without and with the blocking rule; (without, with).
fn exec_costs(dir: &Path) -> Result<(ExecCost, ExecCost), String> {
    // Run times of BPF programs are counted only while kernel.bpf_stats_enabled is set.
    let stats = "/proc/sys/kernel/bpf_stats_enabled";
    let was = std::fs::read_to_string(stats).unwrap_or_default();
    let _ = std::fs::write(stats, "1");
    let mut detect = ExecCost::default();
    let mut block = ExecCost::default();
    let out = (|| {
        for _ in 0..4 {
            exec_round(dir, false, 1000, &mut detect)?;
            exec_round(dir, true, 1000, &mut block)?;
        }
        Ok(())
    })();
    if !was.trim().is_empty() {
        let _ = std::fs::write(stats, was.trim());
    }
    out.map(|()| (detect, block))
}

fn median_f(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    // `scripts/bench sensor [publish] [file] [open] [rss] [build] [exec]`: only those parts (all
    // by default).
    let only: Vec<String> = std::env::args().skip(1).collect();
    let want = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let samples: Vec<Vec<u8>> = (0..EVENTS as u32).map(typical_sample).collect();

    let mut best_single: Option<(u64, u64)> = None;
    let mut best_batch: Option<(u64, u64)> = None;
    let mut best_push: Option<(u64, u64)> = None;
    let mut best_json: Option<(u64, u64)> = None;
    let mut lost = 0;
    let keep_best = |best: &mut Option<(u64, u64)>, mut lat: Vec<u64>| {
        lat.sort_unstable();
        let p = (percentile(&lat, 0.5), percentile(&lat, 0.99));
        if best.is_none_or(|b| p.1 < b.1) {
            *best = Some(p);
        }
        p
    };
    for round in 0..ROUNDS {
        if !want("publish") {
            break;
        }
        let (lat, l) = ring_round(&samples, dir.path(), round, 1);
        lost += l;
        let s = keep_best(&mut best_single, lat);
        let (lat, l) = ring_round(&samples, dir.path(), round, BATCH);
        lost += l;
        let b = keep_best(&mut best_batch, lat);
        let (lat, l) = ring_round(&samples, dir.path(), round, usize::MAX);
        lost += l;
        let p = keep_best(&mut best_push, lat);
        let j = keep_best(&mut best_json, json_round(&samples));
        eprintln!(
            "round {round}: ring (flush each) p50 {} p99 {} ns; (flush per {BATCH}) p50 {} p99 {} ns; (no flush) p50 {} p99 {} ns; json+socket p50 {} p99 {} ns",
            s.0, s.1, b.0, b.1, p.0, p.1, j.0, j.1
        );
    }
    let (ring_p50, ring_p99) = best_single.unwrap_or_default();
    let (batch_p50, batch_p99) = best_batch.unwrap_or_default();
    let (push_p50, push_p99) = best_push.unwrap_or_default();
    let (json_p50, json_p99) = best_json.unwrap_or_default();

    let files: Vec<Vec<u8>> = (0..1_000_000u32).map(file_sample).collect();
    let mut file_rate: f64 = 0.0;
    let mut file_lost = 0;
    for round in 0..3 {
        if !want("file") {
            break;
        }
        let (rate, l) = file_round(&files, dir.path(), round);
        file_lost += l;
        eprintln!("round {round}: file events through the ring {rate:.0}/s");
        file_rate = file_rate.max(rate);
    }
    drop(files);

    // Opens, filter on and off alternately, best of 3 each.
    let (mut open_on, mut open_off, mut open_published) = (0f64, 0f64, (0u64, 0u64));
    let open_filter = if want("open") {
        macos_open_filter()
    } else {
        Err("not run".into())
    };
    if let Ok(opens) = &open_filter {
        let paths = open_paths();
        for round in 0..3 {
            let (on, published_on) = open_round(&paths, dir.path(), "on", opens);
            let (off, published_off) = open_round(&paths, dir.path(), "off", &PathFilter::all());
            eprintln!("round {round}: opens {on:.0}/s filter on, {off:.0}/s off");
            open_on = open_on.max(on);
            open_off = open_off.max(off);
            open_published = (published_on, published_off);
        }
    }
    let open_dropped_share =
        (open_published.1 > 0).then(|| 1.0 - open_published.0 as f64 / open_published.1 as f64);

    let rss = if want("rss") {
        sensor_rss(dir.path())
    } else {
        Err("not run".into())
    };
    if let Err(e) = &rss {
        eprintln!("resident memory not measured: {e}");
    }
    let rss_ok = rss.as_ref().ok();
    let build = if want("build") {
        build_figures(dir.path())
    } else {
        Err("not run".into())
    };
    match &build {
        Ok(f) => eprintln!(
            "build: filter on {:?}; single-event rules {:?}; off {:?}",
            f.on, f.event_rules, f.off
        ),
        Err(e) => eprintln!("build not measured: {e}"),
    }
    let b = build.as_ref().ok();
    let load = if want("load") {
        load_figures(dir.path())
    } else {
        Err("not run".into())
    };
    if let Err(e) = &load {
        eprintln!("build-like load not measured: {e}");
    }
    let load_on = load.as_ref().ok().and_then(|(on, _)| load::best(on));
    let load_off = load.as_ref().ok().and_then(|(_, off)| load::best(off));
    let load_rounds = load.as_ref().ok().map(|(on, off)| load::all(on, off));
    let execs = if want("exec") {
        exec_costs(dir.path())
    } else {
        Err("not run".into())
    };
    if let Err(e) = &execs {
        eprintln!("exec latency not measured: {e}");
    }
    let lat = |c: &ExecCost, p: f64| {
        let mut v = c.latency.clone();
        v.sort_unstable();
        (!v.is_empty()).then(|| percentile(&v, p))
    };
    let e = execs.as_ref().ok();
    let share = |on: &BuildRun, off: &BuildRun| {
        (off.published > 0).then(|| 1.0 - on.published as f64 / off.published as f64)
    };
    let dropped_share = b.and_then(|f| share(&f.on, &f.off));
    let event_rules_dropped_share = b.and_then(|f| share(&f.event_rules, &f.off));
    let out = json!({
        "suite": "sensor",
        "events_per_round": EVENTS,
        "rounds": ROUNDS,
        "publish_p50_ns": ring_p50,
        "publish_p99_ns": ring_p99,
        "publish_batch64_p50_ns": batch_p50,
        "publish_batch64_p99_ns": batch_p99,
        "push_no_flush_p50_ns": push_p50,
        "push_no_flush_p99_ns": push_p99,
        "baseline_json_unix_socket_p50_ns": json_p50,
        "baseline_json_unix_socket_p99_ns": json_p99,
        "records_lost": lost,
        "sensor_rss_kib": rss_ok.map(|r| r.total),
        "sensor_ring_mapping_rss_kib": rss_ok.map(|r| r.ring),
        "sensor_bpf_ringbuf_mapping_rss_kib": rss_ok.map(|r| r.bpf_ringbuf),
        "sensor_rss_without_buffers_kib": rss_ok.map(|r| r.total.saturating_sub(r.ring + r.bpf_ringbuf)),
        "live_exec_to_ring_p50_ns": rss_ok.and_then(|r| r.intake).map(|i| i.0),
        "live_exec_to_ring_p99_ns": rss_ok.and_then(|r| r.intake).map(|i| i.1),
        "rss_error": rss.as_ref().err(),
        "file_events_per_sec": file_rate.round(),
        "open_messages_per_sec_filter_on": open_filter.as_ref().ok().map(|_| open_on.round()),
        "open_messages_per_sec_filter_off": open_filter.as_ref().ok().map(|_| open_off.round()),
        "open_published_filter_on": open_filter.as_ref().ok().map(|_| open_published.0),
        "open_published_filter_off": open_filter.as_ref().ok().map(|_| open_published.1),
        "open_filter_dropped_share": open_dropped_share,
        "file_records_lost": file_lost,
        "build_file_events_filter_off": b.map(|f| f.off.published),
        "build_file_events_filter_on": b.map(|f| f.on.published),
        "build_filter_dropped_share": dropped_share,
        "build_filter_in_kernel": b.map(|f| f.kernel),
        "build_sensor_cpu_ms_filter_on": b.map(|f| f.on.sensor_cpu_ms),
        "build_sensor_cpu_ms_filter_off": b.map(|f| f.off.sensor_cpu_ms),
        "build_secs_filter_on": b.map(|f| f.on.build_secs),
        "build_secs_filter_off": b.map(|f| f.off.build_secs),
        "build_filtered_reported_filter_on": b.map(|f| f.on.filtered_reported),
        "build_lost_filter_on": b.map(|f| f.on.lost.clone()),
        "build_lost_filter_off": b.map(|f| f.off.lost.clone()),
        "build_file_events_event_rules_filter": b.map(|f| f.event_rules.published),
        "build_event_rules_filter_dropped_share": event_rules_dropped_share,
        "build_event_rules_filter_in_kernel": b.map(|f| f.event_rules_kernel),
        "build_sensor_cpu_ms_event_rules_filter": b.map(|f| f.event_rules.sensor_cpu_ms),
        "build_secs_event_rules_filter": b.map(|f| f.event_rules.build_secs),
        "build_filtered_reported_event_rules_filter": b.map(|f| f.event_rules.filtered_reported),
        "build_lost_event_rules_filter": b.map(|f| f.event_rules.lost.clone()),
        "build_rules_admitting_every_file_event": b.map(|f| f.admit_all.clone()),
        "build_error": build.as_ref().err(),
        "load_filter_on": load_on,
        "load_filter_off": load_off,
        "load_rounds": load_rounds,
        "load_error": load.as_ref().err(),
        "exec_latency_p50_ns_detect": e.and_then(|(d, _)| lat(d, 0.5)),
        "exec_latency_p50_ns_blocking": e.and_then(|(_, b)| lat(b, 0.5)),
        "exec_latency_p99_ns_detect": e.and_then(|(d, _)| lat(d, 0.99)),
        "exec_latency_p99_ns_blocking": e.and_then(|(_, b)| lat(b, 0.99)),
        "exec_prog_ns_per_exec_detect": e.and_then(|(d, _)| median_f(&d.prog_ns)),
        "exec_prog_ns_per_exec_blocking": e.and_then(|(_, b)| median_f(&b.prog_ns)),
        "exec_error": execs.as_ref().err(),
    });
    println!("{out}");
}
