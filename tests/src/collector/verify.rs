//! Independent verification of what an agent uploads: DSSE envelope shape, key id, Ed25519
//! signature over the PAE, and the per-host hash chain (`nightjar.seq` / `nightjar.prev`).
//! Written from the DESIGN text alone, so a bug in the agent's signer cannot be mirrored here.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde_json::Value;

/// The DSSE payload type of a Nightjar alert.
pub const PAYLOAD_TYPE: &str = "application/vnd.nightjar.alert+json";

/// Why an envelope was refused; the code is what `/stats` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RejectReason {
    BadJson,
    BadPayloadType,
    BadBase64,
    BadKeyId,
    BadSignature,
    BadPayload,
    HostMismatch,
    SeqGap,
    BadChain,
    ConflictingDuplicate,
}

impl RejectReason {
    /// Stable short code used in `/stats` and in 400 responses.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::BadJson => "bad_json",
            RejectReason::BadPayloadType => "bad_payload_type",
            RejectReason::BadBase64 => "bad_base64",
            RejectReason::BadKeyId => "bad_keyid",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::BadPayload => "bad_payload",
            RejectReason::HostMismatch => "host_mismatch",
            RejectReason::SeqGap => "seq_gap",
            RejectReason::BadChain => "bad_chain",
            RejectReason::ConflictingDuplicate => "conflicting_duplicate",
        }
    }
}

/// A refused envelope: the reason code and a human-readable detail.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: {detail}", reason.code())]
pub struct Rejection {
    pub reason: RejectReason,
    pub detail: String,
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// A verified envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The next alert of the chain.
    Accepted { seq: u64, payload: Vec<u8> },
    /// A re-delivery of an alert already accepted, byte for byte.
    Duplicate { seq: u64 },
}

/// The DSSE pre-authentication encoding: `"DSSEv1" SP len(type) SP type SP len(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(
        format!(
            "DSSEv1 {} {} {} ",
            payload_type.len(),
            payload_type,
            payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(digest(&SHA256, bytes).as_ref())
}

/// Verification state for one host key: the chain head and every accepted payload's hash.
pub struct Verifier {
    public_key: [u8; 32],
    key_id: String,
    last_seq: u64,
    last_hash: String,
    accepted: BTreeMap<u64, String>,
}

impl Verifier {
    /// A verifier expecting the chain to start at seq 1.
    pub fn new(public_key: [u8; 32]) -> Self {
        Verifier {
            key_id: sha256_hex(&public_key),
            public_key,
            last_seq: 0,
            last_hash: "0".repeat(64),
            accepted: BTreeMap::new(),
        }
    }

    /// The key id an agent with this public key must send.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The highest seq accepted so far (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Verifies one NDJSON line; on acceptance the chain advances. `host_id` is the batch's
    /// `X-Nightjar-Host-Id`, which every payload must carry as `nightjar.host_id`.
    pub fn check(&mut self, line: &[u8], host_id: &str) -> Result<Verdict, Rejection> {
        let envelope: Value = serde_json::from_slice(line)
            .map_err(|e| reject(RejectReason::BadJson, format!("envelope: {e}")))?;
        let payload_type = envelope
            .get("payloadType")
            .and_then(Value::as_str)
            .ok_or_else(|| reject(RejectReason::BadJson, "envelope: no payloadType string"))?;
        if payload_type != PAYLOAD_TYPE {
            return Err(reject(RejectReason::BadPayloadType, payload_type));
        }
        let payload_b64 = envelope
            .get("payload")
            .and_then(Value::as_str)
            .ok_or_else(|| reject(RejectReason::BadJson, "envelope: no payload string"))?;
        let payload = STANDARD
            .decode(payload_b64)
            .map_err(|e| reject(RejectReason::BadBase64, format!("payload: {e}")))?;
        let signatures = envelope
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| reject(RejectReason::BadJson, "envelope: no signatures array"))?;
        let ours = signatures
            .iter()
            .find(|s| s.get("keyid").and_then(Value::as_str) == Some(self.key_id.as_str()))
            .ok_or_else(|| {
                let seen: Vec<&str> = signatures
                    .iter()
                    .filter_map(|s| s.get("keyid").and_then(Value::as_str))
                    .collect();
                reject(
                    RejectReason::BadKeyId,
                    format!("no signature by key {} (saw {seen:?})", self.key_id),
                )
            })?;
        let sig = ours
            .get("sig")
            .and_then(Value::as_str)
            .ok_or_else(|| reject(RejectReason::BadJson, "signature: no sig string"))?;
        let sig = STANDARD
            .decode(sig)
            .map_err(|e| reject(RejectReason::BadBase64, format!("sig: {e}")))?;
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(&pae(payload_type, &payload), &sig)
            .map_err(|_| {
                reject(
                    RejectReason::BadSignature,
                    "Ed25519 signature does not verify",
                )
            })?;

        let doc: Value = serde_json::from_slice(&payload)
            .map_err(|e| reject(RejectReason::BadPayload, format!("payload JSON: {e}")))?;
        let nightjar = doc
            .get("nightjar")
            .ok_or_else(|| reject(RejectReason::BadPayload, "payload has no nightjar object"))?;
        let seq = nightjar
            .get("seq")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                reject(
                    RejectReason::BadPayload,
                    "nightjar.seq is not a positive integer",
                )
            })?;
        let prev = nightjar
            .get("prev")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                reject(
                    RejectReason::BadPayload,
                    format!("seq {seq}: nightjar.prev missing"),
                )
            })?;
        let payload_host = nightjar.get("host_id").and_then(Value::as_str);
        if payload_host != Some(host_id) {
            return Err(reject(
                RejectReason::HostMismatch,
                format!("seq {seq}: nightjar.host_id {payload_host:?}, header {host_id:?}"),
            ));
        }

        let hash = sha256_hex(&payload);
        if seq <= self.last_seq {
            return match self.accepted.get(&seq) {
                Some(h) if *h == hash => Ok(Verdict::Duplicate { seq }),
                _ => Err(reject(
                    RejectReason::ConflictingDuplicate,
                    format!("seq {seq} was already accepted with a different payload"),
                )),
            };
        }
        if seq != self.last_seq + 1 {
            return Err(reject(
                RejectReason::SeqGap,
                format!("seq {seq} after {}", self.last_seq),
            ));
        }
        if prev != self.last_hash {
            return Err(reject(
                RejectReason::BadChain,
                format!(
                    "seq {seq}: prev {prev} but the previous payload hashes to {}",
                    self.last_hash
                ),
            ));
        }
        self.last_seq = seq;
        self.last_hash = hash.clone();
        self.accepted.insert(seq, hash);
        Ok(Verdict::Accepted { seq, payload })
    }
}
