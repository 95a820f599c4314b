//! Signs synthetic alert chains the way DESIGN.md specifies (DSSE over the PAE, Ed25519,
//! `nightjar.seq` / `nightjar.prev`), to exercise the collector and the uploader without the
//! agent's own signer — and to forge the broken envelopes a collector must refuse.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde_json::{Value, json};

use super::verify::{PAYLOAD_TYPE, pae, sha256_hex};

/// A host key and the head of its alert chain.
pub struct ChainSigner {
    key: Ed25519KeyPair,
    host_id: String,
    next_seq: u64,
    prev: String,
}

impl ChainSigner {
    /// A fresh random key for `host_id`; the chain starts at seq 1.
    pub fn generate(host_id: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("Ed25519 key generation");
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("freshly generated key");
        ChainSigner {
            key,
            host_id: host_id.to_owned(),
            next_seq: 1,
            prev: "0".repeat(64),
        }
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.key.public_key().as_ref());
        out
    }

    /// Lowercase hex SHA-256 of the public key.
    pub fn key_id(&self) -> String {
        sha256_hex(self.key.public_key().as_ref())
    }

    /// The host id the payloads carry.
    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    /// A minimal alert payload for `seq` with the given `prev`, without advancing the chain.
    pub fn payload(&self, seq: u64, prev: &str) -> Vec<u8> {
        let doc: Value = json!({
            "@timestamp": "2026-01-01T00:00:00Z",
            "event": {"kind": "signal"},
            "kibana": {"alert": {"uuid": format!("{}-{seq}", self.host_id)}},
            "nightjar": {"seq": seq, "prev": prev, "event_seq": seq, "host_id": self.host_id},
        });
        doc.to_string().into_bytes()
    }

    /// The next alert of the chain as a signed envelope; advances the chain.
    pub fn next_envelope(&mut self) -> (u64, Vec<u8>) {
        let seq = self.next_seq;
        let payload = self.payload(seq, &self.prev);
        self.prev = sha256_hex(&payload);
        self.next_seq += 1;
        (seq, self.envelope(&payload))
    }

    /// An Ed25519 signature by this key over arbitrary bytes (request and enrolment
    /// signatures of the fleet protocol).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).as_ref().to_vec()
    }

    /// The seq the next envelope gets and the `prev` it links to.
    pub fn position(&self) -> (u64, String) {
        (self.next_seq, self.prev.clone())
    }

    /// A DSSE envelope over `payload`, signed with this key and labelled with its key id.
    pub fn envelope(&self, payload: &[u8]) -> Vec<u8> {
        self.envelope_with_keyid(payload, &self.key_id())
    }

    /// A DSSE envelope over `payload` claiming an arbitrary key id.
    pub fn envelope_with_keyid(&self, payload: &[u8], keyid: &str) -> Vec<u8> {
        let sig = self.key.sign(&pae(PAYLOAD_TYPE, payload));
        json!({
            "payload": STANDARD.encode(payload),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": keyid, "sig": STANDARD.encode(sig.as_ref())}],
        })
        .to_string()
        .into_bytes()
    }
}
