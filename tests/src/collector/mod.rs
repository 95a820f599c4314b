//! A real alert collector on loopback for end-to-end tests: HTTP/1.1 (optionally TLS with a
//! generated CA), `POST /v1/alerts` NDJSON batches verified independently of the agent
//! (DSSE, Ed25519, key id, seq continuity and hash chain; re-deliveries are idempotent),
//! accepted envelopes appended to an NDJSON file, `GET /stats`, and scripted faults
//! (503/500/400/429 answers, slow answers, connections cut mid-body or mid-response).

pub mod http;
mod signer;
mod tls;
mod verify;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

pub use signer::ChainSigner;
pub use tls::{PkiPem, generate_pem};
pub use verify::{PAYLOAD_TYPE, RejectReason, Rejection, Verdict, Verifier, hex, pae, sha256_hex};

/// The path alerts are POSTed to.
pub const ALERTS_PATH: &str = "/v1/alerts";
/// How long an idle keep-alive connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the collector could not start.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("generating test certificates: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("TLS server configuration: {0}")]
    Tls(String),
    #[error("--public-key: {0}")]
    PublicKey(String),
    #[error("--fault {spec:?}: {reason}")]
    Fault { spec: String, reason: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CollectorError {
    let context = context.into();
    move |source| CollectorError::Io { context, source }
}

/// A scripted misbehaviour for one POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 503 Service Unavailable, batch not read into the chain.
    Unavailable,
    /// 500 Internal Server Error.
    Internal,
    /// 400 Bad Request.
    BadRequest,
    /// 429 Too Many Requests with `Retry-After: secs`.
    TooMany { retry_after_secs: u64 },
    /// Process normally, but only after sleeping this long.
    Slow(Duration),
    /// Read half the body, then drop the connection without answering.
    CutBody,
    /// Process the batch, then drop the connection half-way through the response.
    CutResponse,
}

/// A fault applied to the next `requests` POSTs (`u32::MAX`: every one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPhase {
    pub fault: Fault,
    pub requests: u32,
}

impl FromStr for FaultPhase {
    type Err = CollectorError;

    /// `KIND[=ARG][:COUNT]`: `503`, `500`, `400`, `429[=RETRY_AFTER_SECS]`, `slow=SECS`,
    /// `cut-body`, `cut-response`; COUNT omitted = every request from then on.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| CollectorError::Fault {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (kind_arg, count) = match spec.split_once(':') {
            Some((k, c)) => (k, c.parse().map_err(|_| bad("COUNT is not a number"))?),
            None => (spec, u32::MAX),
        };
        let (kind, arg) = match kind_arg.split_once('=') {
            Some((k, a)) => (
                k,
                Some(a.parse::<u64>().map_err(|_| bad("ARG is not a number"))?),
            ),
            None => (kind_arg, None),
        };
        let fault = match (kind, arg) {
            ("503", None) => Fault::Unavailable,
            ("500", None) => Fault::Internal,
            ("400", None) => Fault::BadRequest,
            ("429", a) => Fault::TooMany {
                retry_after_secs: a.unwrap_or(1),
            },
            ("slow", Some(secs)) => Fault::Slow(Duration::from_secs(secs)),
            ("slow", None) => return Err(bad("slow needs =SECS")),
            ("cut-body", None) => Fault::CutBody,
            ("cut-response", None) => Fault::CutResponse,
            (_, Some(_)) => return Err(bad("this fault takes no =ARG")),
            _ => return Err(bad("unknown fault kind")),
        };
        Ok(FaultPhase {
            fault,
            requests: count,
        })
    }
}

/// How to run a collector.
#[derive(Debug, Clone)]
pub struct CollectorOptions {
    /// The agent's Ed25519 public key (raw 32 bytes).
    pub public_key: [u8; 32],
    /// Serve HTTPS with a generated CA whose PEM is written to `DIR/ca.pem`.
    pub tls_dir: Option<PathBuf>,
    /// Append each newly accepted envelope here, one per line.
    pub record: Option<PathBuf>,
    /// Faults applied to successive POSTs, phase after phase.
    pub faults: Vec<FaultPhase>,
    /// Answer every POST with 503 for this long after start (before the phases apply).
    pub unavailable_for: Option<Duration>,
}

impl CollectorOptions {
    /// Plain HTTP, no faults, no record file.
    pub fn new(public_key: [u8; 32]) -> Self {
        CollectorOptions {
            public_key,
            tls_dir: None,
            record: None,
            faults: Vec::new(),
            unavailable_for: None,
        }
    }
}

/// Decodes a public key as `nightjar-agent keys show --json` prints it (base64, 32 bytes).
pub fn parse_public_key(b64: &str) -> Result<[u8; 32], CollectorError> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| CollectorError::PublicKey(e.to_string()))?;
    raw.try_into().map_err(|raw: Vec<u8>| {
        CollectorError::PublicKey(format!("{} bytes, expected 32", raw.len()))
    })
}

/// What `/stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Every request read, any method.
    pub requests: u64,
    /// POSTs to the alerts path.
    pub posts: u64,
    /// POSTs answered with a scripted fault.
    pub faults_injected: u64,
    /// Envelopes newly accepted into the chain.
    pub accepted: u64,
    /// Envelopes re-delivered after acceptance (idempotent).
    pub duplicates: u64,
    /// Highest accepted seq.
    pub last_seq: u64,
    /// Refusals by reason code.
    pub rejected: BTreeMap<String, u64>,
}

struct State {
    verifier: Verifier,
    stats: Stats,
    accepted: Vec<Vec<u8>>,
    record: Option<File>,
    phase: usize,
    used_in_phase: u32,
    faults_cleared: bool,
}

struct Shared {
    options: CollectorOptions,
    started: Instant,
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The fault for the next POST, if any; consumes one request of the current phase.
    fn next_fault(&self, state: &mut State) -> Option<Fault> {
        if state.faults_cleared {
            return None;
        }
        if self
            .options
            .unavailable_for
            .is_some_and(|d| self.started.elapsed() < d)
        {
            return Some(Fault::Unavailable);
        }
        while let Some(phase) = self.options.faults.get(state.phase) {
            if state.used_in_phase < phase.requests {
                state.used_in_phase += 1;
                return Some(phase.fault);
            }
            state.phase += 1;
            state.used_in_phase = 0;
        }
        None
    }
}

/// A running collector; stopped when dropped.
pub struct Collector {
    addr: SocketAddr,
    url: String,
    ca_file: Option<PathBuf>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Collector {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub fn start(options: CollectorOptions) -> Result<Collector, CollectorError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("binding 127.0.0.1:0"))?;
        let addr = listener.local_addr().map_err(io_err("local address"))?;
        let (tls, ca_file) = match &options.tls_dir {
            Some(dir) => {
                let pki = tls::generate()?;
                let path = dir.join("ca.pem");
                std::fs::write(&path, &pki.ca_pem)
                    .map_err(io_err(format!("writing {}", path.display())))?;
                (Some(pki.server_config), Some(path))
            }
            None => (None, None),
        };
        let record = match &options.record {
            Some(path) => Some(
                File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(io_err(format!("opening {}", path.display())))?,
            ),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}{ALERTS_PATH}");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                verifier: Verifier::new(options.public_key),
                stats: Stats::default(),
                accepted: Vec::new(),
                record,
                phase: 0,
                used_in_phase: 0,
                faults_cleared: false,
            }),
            options,
            started: Instant::now(),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            tls,
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("collector-accept".to_owned())
            .spawn(move || accept_loop(listener, acceptor_shared))
            .map_err(io_err("spawning the accept thread"))?;
        Ok(Collector {
            addr,
            url,
            ca_file,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The alerts endpoint, e.g. `https://127.0.0.1:40123/v1/alerts`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The stats endpoint.
    pub fn stats_url(&self) -> String {
        self.url.replace(ALERTS_PATH, "/stats")
    }

    /// The generated CA certificate (PEM), for the agent's `upload.ca_file`.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The key id agents must use.
    pub fn key_id(&self) -> String {
        self.shared.lock().verifier.key_id().to_owned()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats.clone()
    }

    /// The accepted envelopes, in seq order.
    pub fn accepted(&self) -> Vec<Vec<u8>> {
        self.shared.lock().accepted.clone()
    }

    /// Ends every scripted fault: from now on the collector behaves. Lets a test hold a
    /// fault for as long as it needs to observe the agent's reaction.
    pub fn clear_faults(&self) {
        self.shared.lock().faults_cleared = true;
    }

    /// Blocks until `pred` holds for the stats or `timeout` passes; returns the last stats.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if pred(&state.stats) || left.is_zero() {
                return state.stats.clone();
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Serves until the process ends (the binary's main loop).
    pub fn join(mut self) {
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(tcp) = conn else { continue };
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("collector-conn".to_owned())
            .spawn(move || {
                let _ = tcp.set_read_timeout(Some(IDLE_TIMEOUT));
                let _ = tcp.set_nodelay(true);
                match &shared.tls {
                    Some(config) => match rustls::ServerConnection::new(Arc::clone(config)) {
                        Ok(conn) => serve(rustls::StreamOwned::new(conn, tcp), &shared),
                        Err(e) => eprintln!("collector: TLS session: {e}"),
                    },
                    None => serve(tcp, &shared),
                }
            });
        if let Err(e) = spawned {
            eprintln!("collector: spawning a connection thread: {e}");
        }
    }
}

/// The transport below HTTP: plain TCP or TLS over TCP.
trait Conn: Read + Write {
    /// Drops the connection without a clean close (no TLS close_notify).
    fn cut(&mut self);
}

impl Conn for TcpStream {
    fn cut(&mut self) {
        let _ = self.shutdown(Shutdown::Both);
    }
}

impl Conn for rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    fn cut(&mut self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Serves one keep-alive connection until the peer closes, an error, or a scripted cut.
fn serve(conn: impl Conn, shared: &Shared) {
    let mut reader = BufReader::new(conn);
    loop {
        let head = match http::read_head(&mut reader) {
            Ok(Some(head)) => head,
            Ok(None) | Err(_) => return,
        };
        shared.lock().stats.requests += 1;
        let close = head.wants_close();
        let is_upload = head.method == "POST" && head.path == ALERTS_PATH;
        // Keep the connection's framing: any other request's body is read and discarded.
        if !is_upload && http::read_body(&mut reader, &head).is_err() {
            return;
        }
        let response = match (head.method.as_str(), head.path.as_str()) {
            ("GET", "/stats") => {
                let stats = shared.lock().stats.clone();
                http::Response::json(200, &json!(stats))
            }
            ("POST", ALERTS_PATH) => match handle_post(&mut reader, &head, shared) {
                Some(response) => response,
                None => return,
            },
            (_, "/stats") | (_, ALERTS_PATH) => {
                http::Response::json(405, &json!({"error": "method not allowed"}))
            }
            _ => http::Response::json(404, &json!({"error": "not found"})),
        };
        if response.write_to(reader.get_mut(), close).is_err() || close {
            return;
        }
    }
}

/// Handles one POST batch; `None` when the connection was cut on purpose (or broke).
fn handle_post(
    reader: &mut BufReader<impl Conn>,
    head: &http::Head,
    shared: &Shared,
) -> Option<http::Response> {
    let fault = {
        let mut state = shared.lock();
        state.stats.posts += 1;
        let fault = shared.next_fault(&mut state);
        if fault.is_some() {
            state.stats.faults_injected += 1;
        }
        shared.changed.notify_all();
        fault
    };
    if fault == Some(Fault::CutBody) {
        let half = head.content_length().unwrap_or(0) / 2;
        let _ = http::read_partial(reader, half);
        reader.get_mut().cut();
        return None;
    }
    let body = match http::read_body(reader, head) {
        Ok(body) => body,
        Err(e) => {
            let status = if http::is_too_large(&e) { 413 } else { 400 };
            let response = http::Response::json(status, &json!({"error": e.to_string()}));
            let _ = response.write_to(reader.get_mut(), true);
            return None;
        }
    };
    let scripted = |status: u16, retry_after: Option<u64>| {
        let mut r = http::Response::json(status, &json!({"error": "scripted fault"}));
        if let Some(secs) = retry_after {
            r.headers.push(("Retry-After", secs.to_string()));
        }
        Some(r)
    };
    match fault {
        Some(Fault::Unavailable) => return scripted(503, None),
        Some(Fault::Internal) => return scripted(500, None),
        Some(Fault::BadRequest) => return scripted(400, None),
        Some(Fault::TooMany { retry_after_secs }) => return scripted(429, Some(retry_after_secs)),
        Some(Fault::Slow(d)) => std::thread::sleep(d),
        Some(Fault::CutBody) | Some(Fault::CutResponse) | None => {}
    }
    let response = process_batch(head, &body, shared);
    if fault == Some(Fault::CutResponse) {
        let bytes = response.to_bytes(false);
        let conn = reader.get_mut();
        let _ = conn.write_all(&bytes[..bytes.len() / 2]);
        let _ = conn.flush();
        conn.cut();
        return None;
    }
    Some(response)
}

/// Verifies a batch line by line under the chain lock. Lines before the first bad one stay
/// accepted; the bad line and everything after it are refused with a 400 naming the reason.
fn process_batch(head: &http::Head, body: &[u8], shared: &Shared) -> http::Response {
    let mut state = shared.lock();
    let refuse = |state: &mut State, reason: &str, detail: String, line: usize| {
        *state.stats.rejected.entry(reason.to_owned()).or_default() += 1;
        shared.changed.notify_all();
        http::Response::json(
            400,
            &json!({"error": reason, "detail": detail, "line": line}),
        )
    };
    let content_type = head.header("content-type").unwrap_or_default();
    if !content_type.eq_ignore_ascii_case("application/x-ndjson") {
        *state
            .stats
            .rejected
            .entry("bad_content_type".to_owned())
            .or_default() += 1;
        shared.changed.notify_all();
        return http::Response::json(
            415,
            &json!({"error": "bad_content_type", "detail": content_type}),
        );
    }
    let expected_key = state.verifier.key_id().to_owned();
    match head.header("x-nightjar-key-id") {
        Some(k) if k == expected_key => {}
        other => {
            let detail = format!("X-Nightjar-Key-Id {other:?}, expected {expected_key}");
            return refuse(&mut state, "bad_key_header", detail, 0);
        }
    }
    let Some(host_id) = head.header("x-nightjar-host-id").map(str::to_owned) else {
        return refuse(
            &mut state,
            "missing_host_id",
            "no X-Nightjar-Host-Id".to_owned(),
            0,
        );
    };
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        match state.verifier.check(line, &host_id) {
            Ok(Verdict::Accepted { seq, .. }) => {
                if let Some(file) = state.record.as_mut() {
                    let written = file.write_all(line).and_then(|()| file.write_all(b"\n"));
                    if let Err(e) = written {
                        eprintln!("collector: recording seq {seq}: {e}");
                    }
                }
                state.accepted.push(line.to_vec());
                state.stats.accepted += 1;
                state.stats.last_seq = seq;
                accepted += 1;
            }
            Ok(Verdict::Duplicate { .. }) => {
                state.stats.duplicates += 1;
                duplicates += 1;
            }
            Err(rejection) => {
                return refuse(&mut state, rejection.reason.code(), rejection.detail, i + 1);
            }
        }
    }
    shared.changed.notify_all();
    let last_seq = state.stats.last_seq;
    http::Response::json(
        200,
        &json!({"accepted": accepted, "duplicates": duplicates, "last_seq": last_seq}),
    )
}
