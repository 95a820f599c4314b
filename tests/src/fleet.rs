//! The central server under test: a real `nightjar-server` process on a fresh database of
//! the shared test cluster, its CLI, and a host client that speaks the fleet protocol by
//! hand, so tests can be an honest agent or a hostile one (forged, skewed and replayed
//! signatures, forks, gaps, rollbacks, hostile bodies).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::fleet::{enroll_signing_bytes, request_signing_bytes};
use nightjar_proto::verify::{hex, sha256};
use serde_json::{Value, json};

use crate::collector::ChainSigner;
use crate::harness::{ChildGuard, bin, run};
use crate::postgres::Cluster;

/// A running server on its own database.
pub struct Server {
    pub child: ChildGuard,
    pub addr: SocketAddr,
    pub db_url: String,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

/// Writes a server config for `db_url` (plain HTTP on loopback) plus `extra` TOML lines.
pub fn write_config(dir: &std::path::Path, db_url: &str, extra: &str) -> PathBuf {
    write_config_at(dir, "127.0.0.1:0", db_url, extra)
}

/// [`write_config`] listening on `listen`.
pub fn write_config_at(dir: &std::path::Path, listen: &str, db_url: &str, extra: &str) -> PathBuf {
    let path = dir.join("server.toml");
    let text = format!(
        "listen = \"{listen}\"\ndatabase_url = \"{db_url}\"\nallow_insecure_http = true\n\
         state_dir = \"{}\"\n{extra}\n",
        dir.join("state").display()
    );
    std::fs::write(&path, text).expect("write server config");
    path
}

impl Server {
    /// A server on a fresh database.
    pub fn start(extra: &str) -> Server {
        Server::start_on(&Cluster::shared().fresh_db(), extra)
    }

    /// A server on an existing database (a second replica).
    pub fn start_on(db_url: &str, extra: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("nightjar-server-test-")
            .tempdir()
            .expect("temp dir");
        let config = write_config(dir.path(), db_url, extra);
        Server::spawn(db_url, config, dir)
    }

    /// A server on a fresh database serving HTTPS with a test CA's certificate; returns the
    /// CA's PEM (what an agent gets as `upload.ca_file`).
    pub fn start_tls(extra: &str) -> (Server, String) {
        let db_url = Cluster::shared().fresh_db();
        let dir = tempfile::Builder::new()
            .prefix("nightjar-server-test-")
            .tempdir()
            .expect("temp dir");
        let pki = crate::collector::generate_pem().expect("test PKI");
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, &pki.cert_pem).expect("write cert");
        std::fs::write(&key, &pki.key_pem).expect("write key");
        let path = dir.path().join("server.toml");
        let text = format!(
            "listen = \"127.0.0.1:0\"\ndatabase_url = \"{db_url}\"\ntls_cert = \"{}\"\n\
             tls_key = \"{}\"\nstate_dir = \"{}\"\n{extra}\n",
            cert.display(),
            key.display(),
            dir.path().join("state").display()
        );
        std::fs::write(&path, text).expect("write server config");
        (Server::spawn(&db_url, path, dir), pki.ca_pem)
    }

    /// A server on a fresh database, on a loopback port chosen now and kept by
    /// [`Server::restart`] (so an agent configured with its URL finds it again).
    pub fn start_restartable(extra: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let db_url = Cluster::shared().fresh_db();
        let dir = tempfile::Builder::new()
            .prefix("nightjar-server-test-")
            .tempdir()
            .expect("temp dir");
        let config = write_config_at(dir.path(), &format!("127.0.0.1:{port}"), &db_url, extra);
        Server::spawn(&db_url, config, dir)
    }

    /// Stops the server process; its database and state directory (the policy key) stay.
    pub fn kill(&mut self) {
        self.child.kill9();
    }

    /// Starts the server again with the same config, database and policy key.
    pub fn restart(&mut self) {
        let (child, addr) = Server::spawn_child(&self.config);
        self.child = child;
        self.addr = addr;
    }

    /// The server's policy signing key file.
    pub fn policy_key_path(&self) -> PathBuf {
        self._dir.path().join("state/policy.key")
    }

    /// The name of the server's database.
    pub fn db_name(&self) -> String {
        self.db_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    fn spawn(db_url: &str, config: PathBuf, dir: tempfile::TempDir) -> Server {
        let (child, addr) = Server::spawn_child(&config);
        Server {
            child,
            addr,
            db_url: db_url.to_string(),
            config,
            _dir: dir,
        }
    }

    fn spawn_child(config: &std::path::Path) -> (ChildGuard, SocketAddr) {
        let mut cmd = Command::new(bin("nightjar-server"));
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env("NIGHTJAR_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = ChildGuard::spawn(&mut cmd);
        let stderr = child.child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("nightjar-server: listening on http://")
                    .or_else(|| line.strip_prefix("nightjar-server: listening on https://"))
                {
                    let _ = tx.send(addr.to_string());
                }
                eprintln!("[server] {line}");
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("nightjar-server did not report its address within 60 s")
            .parse()
            .expect("a socket address");
        (child, addr)
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `nightjar-server ARGS --config <this server's config>`.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("nightjar-server"));
        cmd.args(args).arg("--config").arg(&self.config);
        run(&mut cmd)
    }

    /// Runs the CLI and returns stdout, panicking with stderr on failure.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "nightjar-server {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// The `--json` lines of a listing command.
    pub fn cli_json(&self, args: &[&str]) -> Vec<Value> {
        self.cli_ok(args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l}")))
            .collect()
    }

    /// A new enrolment token.
    pub fn token(&self, uses: u32, expires: &str) -> String {
        let v = &self.cli_json(&[
            "token",
            "create",
            "--uses",
            &uses.to_string(),
            "--expires",
            expires,
            "--json",
        ])[0];
        v["token"].as_str().expect("token").to_string()
    }

    /// A new admin token.
    pub fn admin_token(&self) -> String {
        let v = &self.cli_json(&["admin-token", "create", "--json"])[0];
        v["token"].as_str().expect("token").to_string()
    }

    /// `integrity list --json` kinds of one host, oldest first.
    pub fn integrity_kinds(&self, host: &str) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .cli_json(&["integrity", "list", "--host", host, "--json"])
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or("").to_string())
            .collect();
        kinds.reverse();
        kinds
    }

    /// The `hosts list --json` line of one host.
    pub fn host(&self, host: &str) -> Value {
        self.cli_json(&["hosts", "list", "--json"])
            .into_iter()
            .find(|h| h["host_id"] == host)
            .unwrap_or_else(|| panic!("host {host} not listed"))
    }
}

/// An HTTP answer: status and body (JSON when it parses).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or("").to_string()
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect to the server");
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send request head");
    // The server may answer (413) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Answer { status, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&raw[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
    out
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A host speaking the protocol by hand.
pub struct Host {
    pub signer: ChainSigner,
    pub addr: SocketAddr,
}

impl Host {
    pub fn new(server: &Server, host_id: &str) -> Host {
        Host {
            signer: ChainSigner::generate(host_id),
            addr: server.addr,
        }
    }

    pub fn host_id(&self) -> String {
        self.signer.host_id().to_string()
    }

    pub fn public_key_b64(&self) -> String {
        STANDARD.encode(self.signer.public_key())
    }

    /// `POST /v1/enroll` with `token`, signed at `time`.
    pub fn enroll_at(&self, token: &str, time: i64) -> Answer {
        let pk = self.public_key_b64();
        let sig = self.signer.sign(&enroll_signing_bytes(
            token,
            self.signer.host_id(),
            &pk,
            time,
        ));
        let body = json!({
            "token": token, "host_id": self.signer.host_id(), "hostname": "test-host",
            "os": "linux", "agent_version": "test", "public_key": pk, "time": time,
            "signature": STANDARD.encode(sig),
        });
        http(
            self.addr,
            "POST",
            "/v1/enroll",
            &[("Content-Type", "application/json".into())],
            body.to_string().as_bytes(),
        )
    }

    pub fn enroll(&self, token: &str) -> Answer {
        self.enroll_at(token, now())
    }

    /// The four signature headers for a request signed at `time`.
    pub fn sign_headers(
        &self,
        method: &str,
        path: &str,
        time: i64,
        body: &[u8],
    ) -> Vec<(&'static str, String)> {
        let msg = request_signing_bytes(method, path, time, &hex(&sha256(body)));
        vec![
            ("X-Nightjar-Host-Id", self.host_id()),
            ("X-Nightjar-Key-Id", self.signer.key_id()),
            ("X-Nightjar-Time", time.to_string()),
            (
                "X-Nightjar-Signature",
                STANDARD.encode(self.signer.sign(&msg)),
            ),
        ]
    }

    /// A signed request with `content_type`.
    pub fn signed(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Answer {
        let mut h = self.sign_headers(method, path, now(), body);
        h.push(("Content-Type", content_type.to_string()));
        http(self.addr, method, path, &h, body)
    }

    /// `POST /v1/alerts` of these envelopes.
    pub fn upload(&self, envelopes: &[Vec<u8>]) -> Answer {
        let mut body = Vec::new();
        for e in envelopes {
            body.extend_from_slice(e);
            body.push(b'\n');
        }
        self.signed("POST", "/v1/alerts", "application/x-ndjson", &body)
    }

    /// The next `n` envelopes of this host's chain.
    pub fn next(&mut self, n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|_| self.signer.next_envelope().1).collect()
    }

    /// `POST /v1/heartbeat` reporting chain head (seq, hash).
    pub fn heartbeat(&self, seq: u64, hash: &str) -> Answer {
        let body = json!({
            "chain_head": {"seq": seq, "hash": hash},
            "events_received": 10, "events_dropped": 3, "alerts_stored": seq,
        });
        self.signed(
            "POST",
            "/v1/heartbeat",
            "application/json",
            body.to_string().as_bytes(),
        )
    }

    /// A heartbeat reporting this host's own chain head.
    pub fn heartbeat_head(&self) -> Answer {
        let (next, prev) = self.signer.position();
        self.heartbeat(next - 1, &prev)
    }
}
