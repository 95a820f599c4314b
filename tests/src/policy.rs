//! Fleet policies from outside the server: policy documents written as JSON by hand, DSSE
//! envelopes signed (or forged) with any key, and a stand-in fleet server that enrols
//! anyone, answers heartbeats with the version it chooses and serves whatever policy
//! envelope the test gives it — so a test can offer an agent a forged policy or a genuine
//! older one, which the real server never would.

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use crate::collector::http::{Response, read_body, read_head};
use crate::collector::{pae, sha256_hex};

/// The DSSE payload type of a policy.
pub const POLICY_PAYLOAD_TYPE: &str = "application/vnd.nightjar.policy+json";

/// An Ed25519 key that signs policy envelopes.
pub struct PolicySigner {
    key: Ed25519KeyPair,
}

impl PolicySigner {
    pub fn generate() -> PolicySigner {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("keygen");
        PolicySigner {
            key: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("fresh key"),
        }
    }

    /// The server's own key, read from its PKCS#8 file (`state_dir/policy.key`).
    pub fn from_file(path: &Path) -> PolicySigner {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        PolicySigner {
            key: Ed25519KeyPair::from_pkcs8_maybe_unchecked(&bytes).expect("policy key"),
        }
    }

    /// Standard base64 of the raw public key (`[fleet] policy_public_key`).
    pub fn public_b64(&self) -> String {
        STANDARD.encode(self.key.public_key().as_ref())
    }

    pub fn key_id(&self) -> String {
        sha256_hex(self.key.public_key().as_ref())
    }

    /// An envelope of `payload` signed by this key.
    pub fn envelope(&self, payload: &Value) -> Vec<u8> {
        self.envelope_as(payload, &self.key_id())
    }

    /// An envelope signed by this key but naming `keyid` as its signer (a forgery that
    /// claims another key).
    pub fn envelope_as(&self, payload: &Value, keyid: &str) -> Vec<u8> {
        let bytes = payload.to_string().into_bytes();
        let sig = self.key.sign(&pae(POLICY_PAYLOAD_TYPE, &bytes));
        json!({
            "payload": STANDARD.encode(&bytes),
            "payloadType": POLICY_PAYLOAD_TYPE,
            "signatures": [{"keyid": keyid, "sig": STANDARD.encode(sig.as_ref())}],
        })
        .to_string()
        .into_bytes()
    }
}

/// A policy document: `rules` and `exceptions` as (name, text).
pub fn policy_doc(
    version: u64,
    builtin: bool,
    rules: &[(&str, &str)],
    exceptions: &[(&str, &str)],
) -> Value {
    let files = |f: &[(&str, &str)]| {
        f.iter()
            .map(|(name, text)| json!({"name": name, "text": text}))
            .collect::<Vec<_>>()
    };
    json!({
        "format": 1,
        "version": version,
        "published_at": "2026-11-20T09:00:00Z",
        "builtin": builtin,
        "rules": files(rules),
        "exceptions": files(exceptions),
        "block": [],
        "links": [],
    })
}

/// A KQL query rule with `rule_id` and `name`.
pub fn kql_rule(rule_id: &str, name: &str, query: &str) -> String {
    format!(
        "[metadata]\ncreation_date = \"2026/01/01\"\n\n[rule]\nrule_id = \"{rule_id}\"\n\
         name = \"{name}\"\nversion = 1\nseverity = \"medium\"\nrisk_score = 47\n\
         description = \"test\"\ntype = \"query\"\nlanguage = \"kuery\"\nquery = '''\n{query}\n'''\n"
    )
}

/// What the stand-in serves.
#[derive(Default)]
struct Offer {
    /// The envelope `GET /v1/policy` answers with (404 when none).
    envelope: Option<Vec<u8>>,
    /// The version heartbeats name.
    wanted: u64,
    policy_requests: u64,
}

/// A fleet server stand-in on loopback (plain HTTP).
pub struct StandIn {
    pub addr: SocketAddr,
    offer: Arc<Mutex<Offer>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StandIn {
    pub fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let offer = Arc::new(Mutex::new(Offer::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (offer, stop) = (Arc::clone(&offer), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((s, _)) => {
                            let offer = Arc::clone(&offer);
                            std::thread::spawn(move || serve(s, &offer));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        StandIn {
            addr,
            offer,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Serves `envelope` from now on, and names `wanted` in heartbeat answers.
    pub fn offer(&self, envelope: Vec<u8>, wanted: u64) {
        let mut o = self.offer.lock().unwrap();
        o.envelope = Some(envelope);
        o.wanted = wanted;
    }

    /// Serves no policy any more (404), and names version 0 in heartbeat answers.
    pub fn withdraw(&self) {
        let mut o = self.offer.lock().unwrap();
        o.envelope = None;
        o.wanted = 0;
    }

    /// `GET /v1/policy` requests answered so far.
    pub fn policy_requests(&self) -> u64 {
        self.offer.lock().unwrap().policy_requests
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, offer: &Mutex<Offer>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut write) = stream.try_clone() else {
        return;
    };
    let mut read = BufReader::new(stream);
    while let Ok(Some(head)) = read_head(&mut read) {
        let Ok(body) = read_body(&mut read, &head) else {
            return;
        };
        let path = head.path.split('?').next().unwrap_or("");
        let response = match (head.method.as_str(), path) {
            ("POST", "/v1/enroll") => {
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let key = STANDARD
                    .decode(req["public_key"].as_str().unwrap_or(""))
                    .unwrap_or_default();
                Response::json(
                    200,
                    &json!({"host_id": req["host_id"], "key_id": sha256_hex(&key),
                            "enrolled_at": "2026-11-20T09:00:00Z"}),
                )
            }
            ("POST", "/v1/heartbeat") => {
                let wanted = offer.lock().unwrap().wanted;
                Response::json(200, &json!({"policy_version": wanted}))
            }
            ("POST", "/v1/alerts") => Response::json(
                200,
                &json!({"accepted_through": 0, "head_hash": "0".repeat(64)}),
            ),
            ("GET", "/v1/policy") => {
                let mut o = offer.lock().unwrap();
                o.policy_requests += 1;
                match &o.envelope {
                    Some(e) => Response {
                        status: 200,
                        headers: vec![("Content-Type", "application/json".to_owned())],
                        body: e.clone(),
                    },
                    None => Response::json(404, &json!({"error": "no policy published"})),
                }
            }
            _ => Response::json(404, &json!({"error": "no such endpoint"})),
        };
        if response.write_to(&mut write, head.wants_close()).is_err() || head.wants_close() {
            return;
        }
    }
}
