//! Simulated hosts for the server benchmark: each with its own Ed25519 key and alert chain,
//! signing what a real agent signs (DSSE envelopes over realistic alert payloads, request
//! signatures), and a small blocking HTTP/1.1 keep-alive client to post them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use nightjar_proto::dsse::{ALERT_PAYLOAD_TYPE, Envelope, Signature, pae};
use nightjar_proto::fleet::{enroll_signing_bytes, request_signing_bytes};
use nightjar_proto::verify::{hex, key_id, sha256};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::json;

/// Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// One simulated host: its key and the head of its chain.
pub struct SimHost {
    pub host_id: String,
    key: Ed25519KeyPair,
    key_id: String,
    next_seq: u64,
    prev: [u8; 32],
}

impl SimHost {
    pub fn new(host_id: String) -> SimHost {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
        let key_id = key_id(key.public_key().as_ref());
        SimHost {
            host_id,
            key,
            key_id,
            next_seq: 1,
            prev: [0; 32],
        }
    }

    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).as_ref().to_vec()
    }

    /// The enrolment body for `token`.
    pub fn enroll_body(&self, token: &str) -> Vec<u8> {
        let pk = STANDARD.encode(self.public_key());
        let time = unix_now();
        let sig = self.sign(&enroll_signing_bytes(token, &self.host_id, &pk, time));
        json!({
            "token": token, "host_id": self.host_id, "hostname": self.host_id,
            "os": "linux", "agent_version": "bench", "public_key": pk, "time": time,
            "signature": STANDARD.encode(sig),
        })
        .to_string()
        .into_bytes()
    }

    /// The next alert of this host's chain: a payload shaped like the agent's (about 1.3 KB),
    /// signed as a DSSE envelope.
    pub fn next_envelope(&mut self) -> Vec<u8> {
        let seq = self.next_seq;
        let payload = alert_payload(&self.host_id, seq, &self.prev);
        self.prev = sha256(&payload);
        self.next_seq += 1;
        let sig = self.key.sign(&pae(ALERT_PAYLOAD_TYPE, &payload));
        let env = Envelope {
            payload: STANDARD.encode(&payload),
            payload_type: ALERT_PAYLOAD_TYPE.into(),
            signatures: vec![Signature {
                keyid: self.key_id.clone(),
                sig: STANDARD.encode(sig.as_ref()),
            }],
        };
        serde_json::to_vec(&env).expect("envelope JSON")
    }

    /// (seq, hash) of the chain head.
    pub fn head(&self) -> (u64, String) {
        (self.next_seq - 1, hex(&self.prev))
    }

    /// Signature headers for a request.
    pub fn headers(&self, method: &str, path: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let time = unix_now();
        let msg = request_signing_bytes(method, path, time, &hex(&sha256(body)));
        vec![
            ("X-Nightjar-Host-Id", self.host_id.clone()),
            ("X-Nightjar-Key-Id", self.key_id.clone()),
            ("X-Nightjar-Time", time.to_string()),
            ("X-Nightjar-Signature", STANDARD.encode(self.sign(&msg))),
        ]
    }
}

const RULES: [(&str, &str, &str); 4] = [
    (
        "ad88231f-e2ab-491c-8fc6-64746da26cfe",
        "Kerberos Cached Credentials Dumping",
        "high",
    ),
    (
        "c4ab5c12-3447-4aaf-891b-c474270fe4d9",
        "Kerberos Cached Credentials Dumping (Linux)",
        "high",
    ),
    (
        "5d1d6907-0747-4d5d-9b24-e4a18853dc0a",
        "Suspicious Execution via Scheduled Task",
        "medium",
    ),
    (
        "9f1c4ca3-44b5-481d-ba42-32dc215a2769",
        "Potential Protocol Tunneling via EarthWorm",
        "low",
    ),
];

/// A payload with the agent's structure (ECS process, host, user; kibana.alert; nightjar).
pub fn alert_payload(host_id: &str, seq: u64, prev: &[u8; 32]) -> Vec<u8> {
    let (rule_id, name, severity) = RULES[(seq % RULES.len() as u64) as usize];
    let pid = 1000 + seq % 30_000;
    json!({
        "@timestamp": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
        "event": {"kind": "signal"},
        "host": {"id": host_id, "name": host_id, "hostname": host_id, "os": {"type": "linux"}},
        "kibana": {"alert": {
            "uuid": format!("{host_id}-{seq:016x}"),
            "original_time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "severity": severity,
            "risk_score": 73,
            "reason": format!("process event with process kcc, by root on {host_id} created {severity} alert {name}."),
            "status": "active",
            "workflow_status": "open",
            "rule": {
                "rule_id": rule_id, "name": name, "version": 107, "type": "query",
                "language": "kuery", "severity": severity, "risk_score": 73,
                "threat": [{"framework": "MITRE ATT&CK",
                    "tactic": {"id": "TA0006", "name": "Credential Access", "reference": "https://attack.mitre.org/tactics/TA0006/"},
                    "technique": [{"id": "T1003", "name": "OS Credential Dumping", "reference": "https://attack.mitre.org/techniques/T1003/"}]}],
            },
            "original_event": {"action": "exec", "category": ["process"], "kind": "event", "type": ["start"]},
        }},
        "process": {
            "pid": pid, "name": "kcc", "executable": "/tmp/kcc",
            "args": ["/tmp/kcc", "copy_cred_cache", format!("--n={seq}")], "args_count": 3,
            "command_line": format!("/tmp/kcc copy_cred_cache --n={seq}"),
            "working_directory": "/root",
            "parent": {"pid": pid - 1, "name": "bash", "executable": "/usr/bin/bash"},
        },
        "user": {"id": "0", "name": "root"},
        "nightjar": {"seq": seq, "prev": hex(prev), "event_seq": seq * 7, "host_id": host_id},
    })
    .to_string()
    .into_bytes()
}

/// A keep-alive HTTP/1.1 connection.
pub struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    /// Sends one request; returns (status, body). Reconnects (up to five times, pausing a
    /// little) when the connection was closed or refused: a thousand hosts connecting at once
    /// can overflow the listen queue.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let mut last = None;
        for attempt in 0..6u64 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            if self.stream.is_none() {
                match TcpStream::connect(self.addr) {
                    Ok(s) => {
                        s.set_nodelay(true)?;
                        s.set_read_timeout(Some(Duration::from_secs(120)))?;
                        self.stream = Some(BufReader::new(s));
                    }
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            match self.exchange(method, path, headers, body) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.stream = None;
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no attempt made")))
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let stream = self.stream.as_mut().expect("connected");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let w = stream.get_mut();
        w.write_all(head.as_bytes())?;
        w.write_all(body)?;
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut length = 0usize;
        loop {
            line.clear();
            stream.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut out = vec![0u8; length];
        stream.read_exact(&mut out)?;
        Ok((status, out))
    }
}
