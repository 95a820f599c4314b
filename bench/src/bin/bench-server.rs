//! `scripts/bench server`: the central server on a real PostgreSQL (durable: fsync and
//! synchronous commit on), driven by simulated hosts that each have their own key and chain.
//!
//! Figures, each the best of `--rounds` identical rounds (the machine is shared and noisy),
//! with their same-run baselines:
//! - alerts verified and committed per second, N hosts posting batches concurrently to a
//!   fresh database, and the p50/p99 batch latency;
//! - the bound: bare Ed25519 verification of the same PAEs on both cores (ring and
//!   ed25519-dalek single verification, dalek batch verification), measured right before and
//!   right after every ingest round;
//! - the baseline: the same envelopes (the first ones of a fifth of the hosts) posted one per
//!   request, one transaction per alert, to the same server build on a fresh database;
//! - heartbeats per second from every host at once;
//! - where the CPU went in each phase: the server, the PostgreSQL cluster, the bench itself;
//! - server RSS over the run (and per minute with `--minutes M`, the sustained run);
//! - a page of alerts from a 1,000,000-alert database (first page, a deep cursor page, by
//!   rule, by host, by free text), server side, with the query plans' index use.
//!
//! Usage: bench-server [--hosts N] [--batches B] [--batch-size K] [--rounds R]
//!                     [--heartbeat-secs S] [--page-alerts M] [--minutes MIN]
//!                     [--server-config TOML]
//! The last stdout line is one JSON object with every figure.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use nightjar_bench::fleet::{Conn, SimHost};
use nightjar_proto::dsse::{ALERT_PAYLOAD_TYPE, pae};
use nightjar_proto::verify::{AlertKey, SignedAlert};
use nightjar_tests::fleet::Server;
use nightjar_tests::postgres::Cluster;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::{Value, json};

struct Args {
    hosts: usize,
    batches: usize,
    batch_size: usize,
    rounds: usize,
    heartbeat_secs: u64,
    page_alerts: u64,
    minutes: u64,
    server_config: String,
}

fn args() -> Args {
    let mut a = Args {
        hosts: 1000,
        batches: 2,
        batch_size: 100,
        rounds: 3,
        heartbeat_secs: 10,
        page_alerts: 1_000_000,
        minutes: 0,
        server_config: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--server-config" {
            // Extra server.toml lines, e.g. "db_pool_size = 8", to compare settings.
            a.server_config = it.next().unwrap_or_default().replace("\\n", "\n");
            continue;
        }
        let mut value = || -> u64 {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("bench-server: {flag} needs a number");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--hosts" => a.hosts = value() as usize,
            "--batches" => a.batches = value() as usize,
            "--batch-size" => a.batch_size = value() as usize,
            "--rounds" => a.rounds = (value() as usize).max(1),
            "--heartbeat-secs" => a.heartbeat_secs = value(),
            "--page-alerts" => a.page_alerts = value(),
            "--minutes" => a.minutes = value(),
            other => {
                eprintln!("bench-server: unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    a
}

fn log(msg: impl AsRef<str>) {
    eprintln!("bench-server: {}", msg.as_ref());
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples the server's RSS every 250 ms until `stop`.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(f64, u64)>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let mut out = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            out.push((start.elapsed().as_secs_f64(), rss_kib(pid)));
            std::thread::sleep(Duration::from_millis(250));
        }
        out
    })
}

/// Runs `f(i)` for `0..n` on `threads` threads.
fn parallel<T: Send + 'static>(
    n: usize,
    threads: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let out = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (f, next, out) = (f.clone(), next.clone(), out.clone());
            std::thread::spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    if i >= n {
                        break;
                    }
                    let v = f(i);
                    out.lock().unwrap().push((i, v));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker");
    }
    let mut v = Arc::try_unwrap(out).ok().unwrap().into_inner().unwrap();
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, t)| t).collect()
}

/// What [`bare_verification`] checks: 4,000 realistic alert envelopes of one host, opened
/// (their PAEs and signatures), and that host's public key.
struct BareData {
    messages: Vec<Vec<u8>>,
    sigs: Vec<Vec<u8>>,
    public: Vec<u8>,
    opened: Vec<SignedAlert>,
    key: AlertKey,
}

fn bare_data() -> Arc<BareData> {
    let mut host = SimHost::new("bare".into());
    let key = AlertKey::from_raw(host.public_key()).unwrap();
    let mut messages = Vec::new();
    let mut sigs = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..4000 {
        let env = host.next_envelope();
        let (_, payload) = nightjar_proto::verify::open_envelope(&env).unwrap();
        let m = pae(ALERT_PAYLOAD_TYPE, &payload);
        sigs.push(host.sign(&m));
        messages.push(m);
        opened.push(key.open(&env).unwrap());
    }
    Arc::new(BareData {
        messages,
        sigs,
        public: host.public_key().to_vec(),
        opened,
        key,
    })
}

/// Bare Ed25519 verification rates on both cores, each the best of 3 passes.
#[derive(Clone, Copy, Default)]
struct Bare {
    ring: f64,
    dalek: f64,
    dalek_batch: f64,
    /// `AlertKey::verify_batch`: what the server runs (one key's terms folded into one).
    same_key_batch: f64,
}

impl Bare {
    /// The bound the issue names: single verification, the faster library.
    fn single(&self) -> f64 {
        self.ring.max(self.dalek)
    }

    fn max(self, o: Bare) -> Bare {
        Bare {
            ring: self.ring.max(o.ring),
            dalek: self.dalek.max(o.dalek),
            dalek_batch: self.dalek_batch.max(o.dalek_batch),
            same_key_batch: self.same_key_batch.max(o.same_key_batch),
        }
    }

    fn json(&self) -> Value {
        json!({"ring": self.ring.round(), "dalek": self.dalek.round(),
               "dalek_batch": self.dalek_batch.round(),
               "same_key_batch": self.same_key_batch.round()})
    }
}

fn bare_verification(data: &Arc<BareData>, batch_size: usize) -> Bare {
    let rate = |mode: u8| -> f64 {
        let mut best = 0.0f64;
        for _ in 0..3 {
            let start = Instant::now();
            let per_thread: Vec<usize> = parallel(2, 2, {
                let data = data.clone();
                move |_| {
                    let (m, s, p) = (&data.messages, &data.sigs, &data.public);
                    let dk =
                        ed25519_dalek::VerifyingKey::from_bytes(p.as_slice().try_into().unwrap())
                            .unwrap();
                    let mut n = 0;
                    match mode {
                        0 => {
                            for (m, s) in m.iter().zip(s) {
                                UnparsedPublicKey::new(&ED25519, p).verify(m, s).unwrap();
                                n += 1;
                            }
                        }
                        1 => {
                            use ed25519_dalek::Verifier as _;
                            for (m, s) in m.iter().zip(s) {
                                let sig = ed25519_dalek::Signature::from_slice(s).unwrap();
                                dk.verify(m, &sig).unwrap();
                                n += 1;
                            }
                        }
                        2 => {
                            for (mc, sc) in m.chunks(batch_size).zip(s.chunks(batch_size)) {
                                let ms: Vec<&[u8]> = mc.iter().map(|x| x.as_slice()).collect();
                                let ss: Vec<ed25519_dalek::Signature> = sc
                                    .iter()
                                    .map(|x| ed25519_dalek::Signature::from_slice(x).unwrap())
                                    .collect();
                                let ks = vec![dk; ms.len()];
                                ed25519_dalek::verify_batch(&ms, &ss, &ks).unwrap();
                                n += ms.len();
                            }
                        }
                        _ => {
                            for chunk in data.opened.chunks(batch_size) {
                                data.key.verify_batch(chunk).unwrap();
                                n += chunk.len();
                            }
                        }
                    }
                    n
                }
            });
            let total: usize = per_thread.iter().sum();
            best = best.max(total as f64 / start.elapsed().as_secs_f64());
        }
        best
    };
    Bare {
        ring: rate(0),
        dalek: rate(1),
        dalek_batch: rate(2),
        same_key_batch: rate(3),
    }
}

/// The 1-minute load average.
fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// utime + stime (+ the reaped children's, with `children`) of a process, in clock ticks.
fn cpu_ticks(pid: u32, children: bool) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The fields after the command name (which may hold spaces) start at state (field 3).
    let Some((_, rest)) = stat.rsplit_once(") ") else {
        return 0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime, stime, cutime, cstime are fields 14-17 (indexes 11-14 here).
    let own = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    if children {
        own + f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0)
    } else {
        own
    }
}

/// The parent pid of a process.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU used so far (clock ticks) by the server, the cluster (postmaster, its live processes
/// and those it reaped) and this process.
#[derive(Clone, Copy, Default)]
struct Cpu {
    server: u64,
    postgres: u64,
    bench: u64,
}

impl Cpu {
    fn now(server_pid: u32, cluster: &Cluster) -> Cpu {
        let postmaster: u32 = std::fs::read_to_string(cluster.dir().join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next()?.trim().parse().ok())
            .unwrap_or(0);
        let mut postgres = cpu_ticks(postmaster, true);
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                if ppid(pid) == Some(postmaster) {
                    postgres += cpu_ticks(pid, false);
                }
            }
        }
        Cpu {
            server: cpu_ticks(server_pid, false),
            postgres,
            bench: cpu_ticks(std::process::id(), false),
        }
    }

    /// CPU seconds from `self` to `later`.
    fn until(&self, later: &Cpu) -> Value {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let s = |a: u64, b: u64| ((b.saturating_sub(a)) as f64 / hz * 100.0).round() / 100.0;
        json!({"server": s(self.server, later.server), "postgres": s(self.postgres, later.postgres),
               "bench": s(self.bench, later.bench)})
    }
}

fn ndjson(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        body.extend_from_slice(l);
        body.push(b'\n');
    }
    body
}

/// Enrols hosts with `token`.
fn enrol(server: &Server, hosts: &[SimHost], token: &str) {
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let mut conn = Conn::new(server.addr);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some(host) = hosts.get(i) else { break };
                    let (status, body) = conn
                        .request(
                            "POST",
                            "/v1/enroll",
                            &[("Content-Type", "application/json".into())],
                            &host.enroll_body(token),
                        )
                        .expect("enrol");
                    assert_eq!(status, 200, "enrol: {}", String::from_utf8_lossy(&body));
                }
            });
        }
    });
}

/// Batches the server shed (503, busy) and were sent again, as an agent would.
static RETRIES_503: AtomicU64 = AtomicU64::new(0);

/// Posts one batch, retrying a 503 after a pause (signed afresh) the way an agent backs off.
fn post_batch(conn: &mut Conn, host: &SimHost, body: &[u8]) {
    for attempt in 0..50u64 {
        let mut h = host.headers("POST", "/v1/alerts", body);
        h.push(("Content-Type", "application/x-ndjson".into()));
        let (status, answer) = conn
            .request("POST", "/v1/alerts", &h, body)
            .expect("upload");
        if status == 503 {
            RETRIES_503.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200 * (attempt + 1).min(10)));
            continue;
        }
        assert_eq!(status, 200, "upload: {}", String::from_utf8_lossy(&answer));
        return;
    }
    panic!("a batch was shed 50 times");
}

/// Posts every host's bodies concurrently (one thread and keep-alive connection per host,
/// released together); returns (elapsed until the last answer, batch latencies in ms).
fn ingest(
    addr: std::net::SocketAddr,
    hosts: &[SimHost],
    bodies: &[Vec<Vec<u8>>],
) -> (Duration, Vec<f64>) {
    let barrier = Barrier::new(hosts.len() + 1);
    let (start, mut lat) = std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .zip(bodies)
            .map(|(host, bodies)| {
                let barrier = &barrier;
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        let mut conn = Conn::new(addr);
                        let mut lat = Vec::with_capacity(bodies.len());
                        barrier.wait();
                        for body in bodies {
                            let t = Instant::now();
                            post_batch(&mut conn, host, body);
                            lat.push(t.elapsed().as_secs_f64() * 1000.0);
                        }
                        lat
                    })
                    .expect("spawn host thread")
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let lat: Vec<f64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("host thread"))
            .collect();
        (start, lat)
    });
    let elapsed = start.elapsed();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (elapsed, lat)
}

/// Heartbeats from every host (one thread each, keep-alive) for `secs`; returns heartbeats
/// per second.
fn heartbeats(addr: std::net::SocketAddr, hosts: &[SimHost], secs: u64) -> f64 {
    let count = AtomicU64::new(0);
    let barrier = Barrier::new(hosts.len() + 1);
    let stop = AtomicBool::new(false);
    let start = std::thread::scope(|s| {
        for host in hosts {
            let (count, barrier, stop) = (&count, &barrier, &stop);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(s, move || {
                    let mut conn = Conn::new(addr);
                    let (seq, hash) = host.head();
                    let mut n = 0u64;
                    barrier.wait();
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        // Distinct bodies: an identical heartbeat in the same second would be a
                        // refused replay.
                        let body = json!({"chain_head": {"seq": seq, "hash": hash},
                            "events_received": n, "events_dropped": 0})
                        .to_string();
                        let mut h = host.headers("POST", "/v1/heartbeat", body.as_bytes());
                        h.push(("Content-Type", "application/json".into()));
                        let (status, answer) = conn
                            .request("POST", "/v1/heartbeat", &h, body.as_bytes())
                            .expect("heartbeat");
                        assert_eq!(
                            status,
                            200,
                            "heartbeat: {}",
                            String::from_utf8_lossy(&answer)
                        );
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .expect("spawn heartbeat thread");
        }
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        start
    });
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Fills a database with `n` alerts of 1,000 hosts (rows as ingest writes them; envelopes
/// carry a small payload and no real signature, since a page does not re-verify) and
/// returns its URL.
fn page_database(cluster: &Cluster, n: u64) -> String {
    let url = cluster.fresh_db();
    let name = url.rsplit('/').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = nightjar_tests::fleet::write_config(dir.path(), &url, "");
    let out = std::process::Command::new(nightjar_tests::harness::bin("nightjar-server"))
        .args(["migrate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = format!(
        "INSERT INTO alert_rows (host_id, epoch, seq, received_at, alert_time, uuid, rule_id,
             rule_name, severity, key_id, envelope)
         SELECT 'host-' || lpad((g % 1000)::text, 4, '0'), 1, g / 1000 + 1,
                now() - make_interval(secs => g * 0.5),
                now() - make_interval(secs => g * 0.5),
                md5(g::text),
                (ARRAY['ad88231f-e2ab-491c-8fc6-64746da26cfe','c4ab5c12-3447-4aaf-891b-c474270fe4d9',
                       '5d1d6907-0747-4d5d-9b24-e4a18853dc0a','9f1c4ca3-44b5-481d-ba42-32dc215a2769'])[g % 4 + 1],
                'Rule ' || (g % 4), (ARRAY['high','medium','low','critical'])[g % 4 + 1],
                'k', convert_to(json_build_object(
                    'payload', translate(encode(convert_to(json_build_object(
                        'process', json_build_object('name', 'kcc', 'args',
                            json_build_array('/tmp/kcc', 'copy_cred_cache', 'n' || g::text)),
                        'nightjar', json_build_object('seq', g / 1000 + 1))::text, 'UTF8'),
                        'base64'), E'\\n', ''),
                    'payloadType', 'application/vnd.nightjar.alert+json',
                    'signatures', json_build_array())::text, 'UTF8')
         FROM generate_series(0, {}) g;
         ANALYZE alert_rows;",
        n - 1
    );
    cluster.psql(&name, &sql);
    url
}

/// Times `path` (`reps` runs, after one warm-up); returns the median in ms.
fn time_get(addr: std::net::SocketAddr, admin: &str, path: &str, reps: usize) -> (f64, Value) {
    let mut conn = Conn::new(addr);
    let h = [("Authorization", format!("Bearer {admin}"))];
    let (status, body) = conn.request("GET", path, &h, b"").expect("GET");
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    let mut times = Vec::new();
    for _ in 0..reps {
        let t = Instant::now();
        let (status, _) = conn.request("GET", path, &h, b"").expect("GET");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (
        percentile(&times, 0.5),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

/// Whether the plan of `sql` reads `alerts` through an index (and never scans it whole).
fn uses_index(cluster: &Cluster, db: &str, sql: &str) -> (bool, String) {
    let plan = cluster.psql(
        db,
        &format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}"),
    );
    let indexed = plan.contains("Index Scan") || plan.contains("Index Only Scan");
    let seq = plan.contains("Seq Scan");
    let exec = plan
        .lines()
        .find(|l| l.contains("Execution Time"))
        .unwrap_or("")
        .trim()
        .to_string();
    (indexed && !seq, exec)
}

/// One round: bare verification, the one-per-request baseline, the batched ingest, bare
/// verification again, heartbeats; every figure with the load it was measured under.
struct Round {
    load_start: f64,
    bare_before: Bare,
    single_per_s: f64,
    single_cpu: Value,
    ingest_per_s: f64,
    ingest_elapsed_s: f64,
    lat_p50: f64,
    lat_p99: f64,
    ingest_cpu: Value,
    bare_after: Bare,
    heartbeats_per_s: f64,
    heartbeat_cpu: Value,
    load_end: f64,
    rss_max_kib: u64,
}

impl Round {
    fn bare(&self) -> Bare {
        self.bare_before.max(self.bare_after)
    }

    fn json(&self) -> Value {
        let bare = self.bare();
        json!({
            "load_start": self.load_start,
            "load_end": self.load_end,
            "alerts_per_s": self.ingest_per_s.round(),
            "ingest_s": (self.ingest_elapsed_s * 100.0).round() / 100.0,
            "batch_latency_p50_ms": (self.lat_p50 * 10.0).round() / 10.0,
            "batch_latency_p99_ms": (self.lat_p99 * 10.0).round() / 10.0,
            "ingest_cpu_s": self.ingest_cpu,
            "bare_before": self.bare_before.json(),
            "bare_after": self.bare_after.json(),
            "one_transaction_per_alert_per_s": self.single_per_s.round(),
            "one_transaction_per_alert_cpu_s": self.single_cpu,
            "heartbeats_per_s": self.heartbeats_per_s.round(),
            "heartbeat_cpu_s": self.heartbeat_cpu,
            "ratio_vs_bare_verify": ratio(self.ingest_per_s, bare.single()),
            "ratio_vs_one_transaction_per_alert": ratio(self.ingest_per_s, self.single_per_s),
            "server_rss_kib_max": self.rss_max_kib,
        })
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// A server on a fresh database of `cluster` with `hosts` enrolled.
fn fresh_server(cluster: &Cluster, extra: &str, hosts: &[SimHost]) -> Server {
    let db = cluster.fresh_db();
    let server = Server::start_on(&db, &format!("silent_after = \"1h\"\n{extra}"));
    let token = server.token(hosts.len() as u32 + 10, "1h");
    enrol(&server, hosts, &token);
    server
}

/// Stops a round's server and drops its database (the disk is shared).
fn discard(cluster: &Cluster, server: Server) {
    let name = server.db_name();
    drop(server);
    cluster.psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

/// A checkpoint before a measured phase, as a long-running server has them: the WAL
/// segments of earlier phases become recyclable (a fresh cluster would otherwise spend much
/// of its time creating and zero-filling new ones) and no earlier phase's dirty pages are
/// left for this one to write.
fn checkpoint(cluster: &Cluster) {
    cluster.psql("postgres", "CHECKPOINT");
}

fn main() {
    let a = args();
    log(format!(
        "{} hosts x {} batches x {} alerts, {} rounds; heartbeats {} s; page database {} alerts",
        a.hosts, a.batches, a.batch_size, a.rounds, a.heartbeat_secs, a.page_alerts
    ));
    let bare_data = bare_data();
    let cluster = Cluster::durable();
    let durability = cluster.psql(
        "postgres",
        "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
         FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
             'wal_sync_method', 'max_wal_size', 'wal_compression', 'shared_buffers',
             'checkpoint_timeout', 'wal_level')",
    );
    log(format!("PostgreSQL: {durability}"));

    log("signing envelopes");
    let mut hosts: Vec<SimHost> = (0..a.hosts)
        .map(|i| SimHost::new(format!("bench-{i:05}")))
        .collect();
    let mut lines: Vec<Vec<Vec<u8>>> = hosts
        .iter_mut()
        .map(|h| {
            (0..a.batches * a.batch_size)
                .map(|_| h.next_envelope())
                .collect()
        })
        .collect();
    let bodies: Vec<Vec<Vec<u8>>> = lines
        .iter()
        .map(|l| l.chunks(a.batch_size).map(ndjson).collect())
        .collect();
    // The baseline: the first envelopes of a fifth of the hosts, one per request.
    let single_hosts = (a.hosts / 5).max(1);
    let per_host = 25.min(a.batches * a.batch_size);
    let singles: Vec<Vec<Vec<u8>>> = lines[..single_hosts]
        .iter()
        .map(|l| {
            l[..per_host]
                .iter()
                .map(|e| ndjson(std::slice::from_ref(e)))
                .collect()
        })
        .collect();
    lines.clear();
    let total = (a.hosts * a.batches * a.batch_size) as f64;

    let mut rounds: Vec<Round> = Vec::new();
    let mut last_server = None;
    for r in 0..a.rounds {
        let load_start = load();
        log(format!("round {}: load {load_start}", r + 1));
        let bare_before = bare_verification(&bare_data, a.batch_size);
        log(format!(
            "bare Ed25519 verification, 2 threads: ring {:.0}/s, dalek {:.0}/s, batches of {}: dalek {:.0}/s, one key {:.0}/s",
            bare_before.ring,
            bare_before.dalek,
            a.batch_size,
            bare_before.dalek_batch,
            bare_before.same_key_batch
        ));

        let single_server = fresh_server(&cluster, &a.server_config, &hosts[..single_hosts]);
        checkpoint(&cluster);
        let c0 = Cpu::now(single_server.child.pid(), &cluster);
        let (single_elapsed, _) = ingest(single_server.addr, &hosts[..single_hosts], &singles);
        let single_cpu = c0.until(&Cpu::now(single_server.child.pid(), &cluster));
        let single_per_s = (single_hosts * per_host) as f64 / single_elapsed.as_secs_f64();
        log(format!(
            "one transaction per alert (the same envelopes, one per request): {single_per_s:.0} alerts/s, cpu {single_cpu}"
        ));
        discard(&cluster, single_server);

        if let Some(s) = last_server.take() {
            discard(&cluster, s);
        }
        let server = fresh_server(&cluster, &a.server_config, &hosts);
        checkpoint(&cluster);
        let pid = server.child.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = sample_rss(pid, stop.clone());
        let c0 = Cpu::now(pid, &cluster);
        let (elapsed, lat) = ingest(server.addr, &hosts, &bodies);
        let ingest_cpu = c0.until(&Cpu::now(pid, &cluster));
        let ingest_per_s = total / elapsed.as_secs_f64();
        log(format!(
            "ingest: {total} alerts in {:.2} s = {ingest_per_s:.0} alerts/s; batch p50 {:.1} ms p99 {:.1} ms; cpu {ingest_cpu}",
            elapsed.as_secs_f64(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        ));
        let stored: i64 = cluster
            .psql(&server.db_name(), "SELECT count(*) FROM chain_index")
            .parse()
            .unwrap();
        assert_eq!(stored as f64, total, "every alert stored once");
        let bare_after = bare_verification(&bare_data, a.batch_size);
        log(format!(
            "bare Ed25519 verification again: ring {:.0}/s, dalek {:.0}/s, batches: dalek {:.0}/s, one key {:.0}/s",
            bare_after.ring, bare_after.dalek, bare_after.dalek_batch, bare_after.same_key_batch
        ));

        let c0 = Cpu::now(pid, &cluster);
        let hb_per_s = heartbeats(server.addr, &hosts, a.heartbeat_secs);
        let heartbeat_cpu = c0.until(&Cpu::now(pid, &cluster));
        log(format!("heartbeats: {hb_per_s:.0}/s; cpu {heartbeat_cpu}"));
        stop.store(true, Ordering::Relaxed);
        let rss = sampler.join().unwrap();
        let round = Round {
            load_start,
            bare_before,
            single_per_s,
            single_cpu,
            ingest_per_s,
            ingest_elapsed_s: elapsed.as_secs_f64(),
            lat_p50: percentile(&lat, 0.5),
            lat_p99: percentile(&lat, 0.99),
            ingest_cpu,
            bare_after,
            heartbeats_per_s: hb_per_s,
            heartbeat_cpu,
            load_end: load(),
            rss_max_kib: rss.iter().map(|r| r.1).max().unwrap_or(0),
        };
        log(format!("round {}: {}", r + 1, round.json()));
        rounds.push(round);
        last_server = Some(server);
    }
    let server = last_server.expect("at least one round");

    let best_ingest = rounds
        .iter()
        .max_by(|x, y| x.ingest_per_s.total_cmp(&y.ingest_per_s))
        .expect("a round");
    let best_bare = rounds.iter().fold(Bare::default(), |b, r| b.max(r.bare()));
    let best_single = rounds.iter().map(|r| r.single_per_s).fold(0.0, f64::max);
    let best_hb = rounds
        .iter()
        .map(|r| r.heartbeats_per_s)
        .fold(0.0, f64::max);
    log(format!(
        "best of {} rounds: ingest {:.0} alerts/s, bare verification {:.0}/s (batch {:.0}/s), one transaction per alert {best_single:.0}/s, heartbeats {best_hb:.0}/s",
        rounds.len(),
        best_ingest.ingest_per_s,
        best_bare.single(),
        best_bare.dalek_batch
    ));

    let rss_before = rss_kib(server.child.pid());
    let mut sustained = Value::Null;
    if a.minutes > 0 {
        sustained = sustained_run(&server, hosts, a.minutes, a.batch_size);
    }
    let rss_after = rss_kib(server.child.pid());
    discard(&cluster, server);

    log(format!(
        "page: filling a database with {} alerts",
        a.page_alerts
    ));
    let page_db = page_database(&cluster, a.page_alerts);
    let page_name = page_db.rsplit('/').next().unwrap().to_string();
    let page_server = Server::start_on(&page_db, &a.server_config);
    let admin = page_server.admin_token();
    let (first_ms, first) = time_get(page_server.addr, &admin, "/v1/alerts?limit=50", 20);
    let cursor = first["next"].as_str().unwrap_or("").to_string();
    // A deep page: the cursor of the row 500,000 rows in.
    let mid = cluster.psql(
        &page_name,
        &format!(
            "SELECT extract(epoch from alert_time)::numeric * 1000000, host_id, epoch, seq FROM alert_rows
             ORDER BY alert_time DESC, host_id DESC, epoch DESC, seq DESC OFFSET {} LIMIT 1",
            a.page_alerts / 2
        ),
    );
    let parts: Vec<&str> = mid.split('|').collect();
    let deep_cursor = nightjar_server::alerts::Cursor {
        time_us: parts[0].split('.').next().unwrap().parse().unwrap(),
        host_id: parts[1].to_string(),
        epoch: parts[2].parse().unwrap(),
        seq: parts[3].parse().unwrap(),
    }
    .encode();
    let (next_ms, _) = time_get(
        page_server.addr,
        &admin,
        &format!("/v1/alerts?limit=50&cursor={cursor}"),
        20,
    );
    let (deep_ms, _) = time_get(
        page_server.addr,
        &admin,
        &format!("/v1/alerts?limit=50&cursor={deep_cursor}"),
        20,
    );
    let (rule_ms, _) = time_get(
        page_server.addr,
        &admin,
        "/v1/alerts?limit=50&rule=5d1d6907-0747-4d5d-9b24-e4a18853dc0a",
        20,
    );
    let (host_ms, _) = time_get(
        page_server.addr,
        &admin,
        "/v1/alerts?limit=50&host=host-0042",
        20,
    );
    // Free text matching one alert in a thousand: the filter reads payloads out of envelopes
    // newest first until the page is full (about 50,000 rows).
    let (text_ms, text_page) = time_get(page_server.addr, &admin, "/v1/alerts?limit=50&q=n4242", 5);
    let text_found = text_page["alerts"].as_array().map_or(0, Vec::len);
    let (sql_first, _) = nightjar_server::alerts::page_sql(&Default::default(), None, 51);
    let (idx_first, exec_first) = uses_index(&cluster, &page_name, &sql_first);
    let rule_filter = nightjar_server::alerts::Filter {
        rule: Some("5d1d6907-0747-4d5d-9b24-e4a18853dc0a".into()),
        ..Default::default()
    };
    let (sql_rule, _) = nightjar_server::alerts::page_sql(&rule_filter, None, 51);
    let sql_rule = sql_rule.replace("$1", "'5d1d6907-0747-4d5d-9b24-e4a18853dc0a'");
    let (idx_rule, exec_rule) = uses_index(&cluster, &page_name, &sql_rule);
    log(format!(
        "page of 50 from {} alerts: first {first_ms:.1} ms, next {next_ms:.1} ms, deep {deep_ms:.1} ms, by rule {rule_ms:.1} ms, by host {host_ms:.1} ms, by text {text_ms:.1} ms ({text_found} found); index plans: {idx_first} ({exec_first}), {idx_rule} ({exec_rule})",
        a.page_alerts
    ));

    let bare_single = best_bare.single();
    let out = json!({
        "suite": "server",
        "hosts": a.hosts,
        "alerts": total,
        "batch_size": a.batch_size,
        "rounds": rounds.len(),
        "postgres": durability,
        "server_config": a.server_config,
        "load_min": rounds.iter().map(|r| r.load_start).fold(f64::INFINITY, f64::min),
        "load_max": rounds.iter().map(|r| r.load_end.max(r.load_start)).fold(0.0, f64::max),
        "alerts_verified_committed_per_s": best_ingest.ingest_per_s.round(),
        "batch_latency_p50_ms": (best_ingest.lat_p50 * 10.0).round() / 10.0,
        "batch_latency_p99_ms": (best_ingest.lat_p99 * 10.0).round() / 10.0,
        "ingest_cpu_s": best_ingest.ingest_cpu,
        "baseline_ed25519_verify_per_s_2_cores_ring": best_bare.ring.round(),
        "baseline_ed25519_verify_per_s_2_cores_dalek": best_bare.dalek.round(),
        "ed25519_batch_verify_per_s_2_cores_dalek": best_bare.dalek_batch.round(),
        "ed25519_batch_verify_per_s_2_cores_one_key": best_bare.same_key_batch.round(),
        "ratio_vs_bare_verify": ratio(best_ingest.ingest_per_s, bare_single),
        "baseline_one_transaction_per_alert_per_s": best_single.round(),
        "ratio_vs_one_transaction_per_alert": ratio(best_ingest.ingest_per_s, best_single),
        "heartbeats_per_s": best_hb.round(),
        "batches_shed_and_retried": RETRIES_503.load(Ordering::Relaxed),
        "server_rss_kib_max": rounds.iter().map(|r| r.rss_max_kib).max().unwrap_or(0),
        "server_rss_kib_before_sustained": rss_before,
        "server_rss_kib_after": rss_after,
        "per_round": rounds.iter().map(Round::json).collect::<Vec<_>>(),
        "sustained": sustained,
        "page_alerts": a.page_alerts,
        "page_first_ms_p50": (first_ms * 10.0).round() / 10.0,
        "page_next_ms_p50": (next_ms * 10.0).round() / 10.0,
        "page_deep_ms_p50": (deep_ms * 10.0).round() / 10.0,
        "page_by_rule_ms_p50": (rule_ms * 10.0).round() / 10.0,
        "page_by_host_ms_p50": (host_ms * 10.0).round() / 10.0,
        "page_by_text_ms_p50": (text_ms * 10.0).round() / 10.0,
        "page_by_text_found": text_found,
        "page_plan_uses_index": idx_first && idx_rule,
    });
    println!("{out}");
}

/// `--minutes M`: every host uploads 5 alerts and sends a heartbeat every 5 seconds (signing
/// as it goes: about 1,000 alerts and 200 heartbeats a second from 1,000 hosts, a load the
/// database can keep for the whole run without filling the disk) for M minutes; the
/// server's RSS is reported per minute.
fn sustained_run(server: &Server, hosts: Vec<SimHost>, minutes: u64, batch_size: usize) -> Value {
    log(format!("sustained: {minutes} minutes"));
    let pid = server.child.pid();
    let addr = server.addr;
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let alerts = AtomicU64::new(0);
    let beats = AtomicU64::new(0);
    let mut per_minute = Vec::new();
    std::thread::scope(|s| {
        for host in hosts {
            let (alerts, beats) = (&alerts, &beats);
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn_scoped(s, move || {
                    let mut host = host;
                    let mut conn = Conn::new(addr);
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let lines: Vec<Vec<u8>> = (0..batch_size.min(5))
                            .map(|_| host.next_envelope())
                            .collect();
                        let body = ndjson(&lines);
                        let mut h = host.headers("POST", "/v1/alerts", &body);
                        h.push(("Content-Type", "application/x-ndjson".into()));
                        let (status, _) = conn
                            .request("POST", "/v1/alerts", &h, &body)
                            .expect("upload");
                        assert_eq!(status, 200);
                        alerts.fetch_add(lines.len() as u64, Ordering::Relaxed);
                        n += 1;
                        let (seq, hash) = host.head();
                        let hb =
                            json!({"chain_head": {"seq": seq, "hash": hash}, "events_received": n})
                                .to_string();
                        let mut h = host.headers("POST", "/v1/heartbeat", hb.as_bytes());
                        h.push(("Content-Type", "application/json".into()));
                        let (status, _) = conn
                            .request("POST", "/v1/heartbeat", &h, hb.as_bytes())
                            .expect("heartbeat");
                        assert_eq!(status, 200);
                        beats.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_secs(5));
                    }
                })
                .expect("spawn");
        }
        let start = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(
                Duration::from_secs(60).min(deadline.saturating_duration_since(Instant::now())),
            );
            let m = json!({
                "minute": (start.elapsed().as_secs_f64() / 60.0).round(),
                "server_rss_kib": rss_kib(pid),
                "alerts": alerts.load(Ordering::Relaxed),
                "heartbeats": beats.load(Ordering::Relaxed),
            });
            log(m.to_string());
            per_minute.push(m);
        }
    });
    json!({"minutes": minutes, "per_minute": per_minute})
}
