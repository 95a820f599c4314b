//! The fleet protocol between an agent and the central server: the bytes a host signs for
//! enrolment and for every later request, the headers that carry them, and the JSON bodies.
//!
//! The agent signs and the server verifies these exact bytes, so both build them here.

use serde::{Deserialize, Serialize};

/// `X-Nightjar-Host-Id`: the host the request speaks for.
pub const HEADER_HOST_ID: &str = "x-nightjar-host-id";
/// `X-Nightjar-Key-Id`: lowercase hex SHA-256 of the host's raw public key.
pub const HEADER_KEY_ID: &str = "x-nightjar-key-id";
/// `X-Nightjar-Time`: unix seconds when the request was signed.
pub const HEADER_TIME: &str = "x-nightjar-time";
/// `X-Nightjar-Signature`: standard base64 of the Ed25519 signature over
/// [`request_signing_bytes`].
pub const HEADER_SIGNATURE: &str = "x-nightjar-signature";

/// The most a request's signing time may differ from the server's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The paths of the protocol.
pub const PATH_ENROLL: &str = "/v1/enroll";
pub const PATH_ALERTS: &str = "/v1/alerts";
pub const PATH_HEARTBEAT: &str = "/v1/heartbeat";
pub const PATH_POLICY: &str = "/v1/policy";

/// What a host signs for one request:
/// `"nightjar-request-v1\n" METHOD "\n" PATH_AND_QUERY "\n" TIME "\n" hex(sha256(body))`.
///
/// `body_sha256_hex` is the lowercase hex SHA-256 of the body bytes exactly as sent (of the
/// empty string for a request without a body).
pub fn request_signing_bytes(
    method: &str,
    path_and_query: &str,
    time: i64,
    body_sha256_hex: &str,
) -> Vec<u8> {
    format!("nightjar-request-v1\n{method}\n{path_and_query}\n{time}\n{body_sha256_hex}")
        .into_bytes()
}

/// What a host signs to enrol (proof that it holds the key it asks the server to pin):
/// `"nightjar-enroll-v1\n" token "\n" host_id "\n" public_key "\n" time`, where `public_key`
/// is the standard base64 text exactly as sent in the request.
pub fn enroll_signing_bytes(
    token: &str,
    host_id: &str,
    public_key_b64: &str,
    time: i64,
) -> Vec<u8> {
    format!("nightjar-enroll-v1\n{token}\n{host_id}\n{public_key_b64}\n{time}").into_bytes()
}

/// The body of `POST /v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub host_id: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    /// Standard base64 of the raw 32-byte Ed25519 public key.
    pub public_key: String,
    /// Unix seconds.
    pub time: i64,
    /// Standard base64 of the Ed25519 signature over [`enroll_signing_bytes`].
    pub signature: String,
}

/// The answer to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub host_id: String,
    pub key_id: String,
    /// RFC 3339.
    pub enrolled_at: String,
}

/// The answer to an accepted `POST /v1/alerts` batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// The highest seq the server holds with every seq below it (the contiguous head).
    pub accepted_through: u64,
    /// Lowercase hex SHA-256 of that alert's payload (64 zeros when none).
    pub head_hash: String,
}

/// The chain head a heartbeat reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatChainHead {
    pub seq: u64,
    /// Lowercase hex SHA-256 of the head alert's payload.
    pub hash: String,
    /// Standard base64 of the host key's Ed25519 signature over [`chain_head_signing_bytes`],
    /// when the agent signs its chain-head mark. The server checks it when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// What a signed chain-head mark covers: `"nightjar-chain-head-v1\n" host_id "\n" seq "\n" hash`.
pub fn chain_head_signing_bytes(host_id: &str, seq: u64, hash_hex: &str) -> Vec<u8> {
    format!("nightjar-chain-head-v1\n{host_id}\n{seq}\n{hash_hex}").into_bytes()
}

/// The body of `POST /v1/heartbeat`: the agent's `status` counters, its chain head and the
/// policy version it runs. Counters the agent does not know are absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub chain_head: HeartbeatChainHead,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
    /// The rest of `nightjar-agent status --json` (events_received, events_dropped, ...).
    #[serde(flatten)]
    pub status: serde_json::Map<String, serde_json::Value>,
}

/// The answer to a heartbeat: the policy version the host should run (0: none published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub policy_version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_string_is_the_design_layout() {
        assert_eq!(
            request_signing_bytes("POST", "/v1/alerts?x=1", 1700000000, "ab"),
            b"nightjar-request-v1\nPOST\n/v1/alerts?x=1\n1700000000\nab".to_vec()
        );
        assert_eq!(
            enroll_signing_bytes("t", "h", "a2V5", 5),
            b"nightjar-enroll-v1\nt\nh\na2V5\n5".to_vec()
        );
    }

    #[test]
    fn heartbeat_keeps_unknown_status_fields() {
        let hb: Heartbeat = serde_json::from_str(
            r#"{"chain_head":{"seq":3,"hash":"00"},"events_dropped":7,"policy_version":2}"#,
        )
        .unwrap();
        assert_eq!(hb.chain_head.seq, 3);
        assert_eq!(hb.policy_version, Some(2));
        assert_eq!(hb.status["events_dropped"], 7);
    }
}
