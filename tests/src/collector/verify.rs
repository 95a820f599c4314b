//! The collector's view of what an agent uploads: each envelope checked by
//! `nightjar_proto::verify` (the one verification the agent and the server use), then the
//! collector's strict chain rule (seq continuity and hash links; re-deliveries idempotent).

use std::collections::BTreeMap;

use nightjar_proto::verify::{AlertKey, EnvelopeError, hex as proto_hex, sha256};

pub use nightjar_proto::dsse::{ALERT_PAYLOAD_TYPE as PAYLOAD_TYPE, pae};

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    proto_hex(bytes)
}

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

fn rejection(e: EnvelopeError) -> Rejection {
    let reason = match e {
        EnvelopeError::NotDsse(_) => RejectReason::BadJson,
        EnvelopeError::PayloadType { .. } => RejectReason::BadPayloadType,
        EnvelopeError::PayloadEncoding(_) | EnvelopeError::SignatureEncoding(_) => {
            RejectReason::BadBase64
        }
        EnvelopeError::NoSignature(_) => RejectReason::BadKeyId,
        EnvelopeError::BadSignature => RejectReason::BadSignature,
        EnvelopeError::Payload(_) => RejectReason::BadPayload,
    };
    reject(reason, e.to_string())
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

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha256(bytes))
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
        let key = AlertKey::from_raw(&self.public_key)
            .map_err(|e| reject(RejectReason::BadKeyId, format!("collector key: {e}")))?;
        let alert = key.open(line).map_err(rejection)?;
        key.verify(&alert).map_err(rejection)?;
        let (_, link) = alert.parse().map_err(rejection)?;
        let seq = link.seq;
        let prev = hex(&link.prev);
        if link.host_id != host_id {
            return Err(reject(
                RejectReason::HostMismatch,
                format!(
                    "seq {seq}: nightjar.host_id {:?}, header {host_id:?}",
                    link.host_id
                ),
            ));
        }
        let payload = alert.payload;

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
