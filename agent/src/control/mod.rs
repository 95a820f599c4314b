//! The control socket (Unix, 0600, in the state directory) that the CLI queries while the agent runs.
//!
//! sled lets one process open the store, so while the agent runs every analyst command goes
//! through `state_dir/control.sock`; when nothing answers there the CLI opens the store
//! itself and runs the very same [`Responder`] in-process.
//!
//! # Protocol
//!
//! Line-delimited JSON over a stream socket. The client writes one request line (at most
//! [`MAX_REQUEST_BYTES`], ending in `\n`); the server answers with zero or more item lines
//! and one final line, then closes:
//!
//! | request | item lines |
//! |---|---|
//! | `{"cmd":"status"}` | `{"status":{...}}` ([`StatusReport`]) |
//! | `{"cmd":"alerts_list","since_ns":N?,"rule":"ID"?}` | `{"alert":PAYLOAD}` per alert, seq order |
//! | `{"cmd":"alerts_show","uuid":"U"}` | `{"alert":PAYLOAD}` |
//! | `{"cmd":"alerts_export"}` | `{"envelope":ENVELOPE}` per alert, seq order |
//! | `{"cmd":"verify"}` | `{"verify":{"ok":true,"alerts":N}}` or `{"verify":{"ok":false,"seq":S,"reason":"..."}}` |
//! | `{"cmd":"keys_show"}` | `{"key":{"key_id","public_key","algorithm"}}` |
//!
//! The final line is `{"end":true}` on success or `{"error":"..."}`.
//!
//! # Bounds
//!
//! Replies are produced in bounded chunks as the client reads, so a slow or hostile client
//! costs the agent one buffer, never a stall. Only root (or the agent's own user) is served:
//! the socket is 0600 in the 0700 state directory, and the agent checks each peer's uid
//! besides. A request that does not arrive whole within [`REQUEST_TIMEOUT`], or a client
//! that reads nothing for [`STALL_TIMEOUT`], is disconnected. At most [`MAX_CLIENTS`] are
//! connected, at most [`MAX_CLIENTS_PER_PROCESS`] from one process; when all slots are
//! taken the least active client (one that has not sent its request, else the one that has
//! read nothing for longest) makes room for the newcomer. A looping local client therefore
//! cannot keep the CLI out: the CLI sends its request at once and reads as fast as it can,
//! and it retries a refused or dropped connection for up to [`client::CONNECT_PATIENCE`].
//!
//! # Who answers
//!
//! The CLI checks who listens on the socket (`SO_PEERCRED` / `getpeereid`) and refuses an
//! answer from anyone but root (or its own user), so a process that managed to bind the
//! socket path cannot impersonate the agent (`verify` would otherwise print its "ok").

mod client;
mod peer;
mod responder;
mod server;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use client::{CONNECT_PATIENCE, ClientError, Connection, ask};
pub use peer::{Peer, peer_of};
pub use responder::{Backend, KeyInfo, Responder, lookup};
pub use server::{ControlServer, ServerError};

/// Longest request line accepted.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Time a client has to send its whole request (the CLI sends it as soon as it connects).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Time a client may leave a reply unread before it is dropped.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients connected at once.
pub const MAX_CLIENTS: usize = 64;
/// Clients one process may have connected at once.
pub const MAX_CLIENTS_PER_PROCESS: usize = 4;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    AlertsList {
        /// Only alerts whose alert time is at or after this, Unix nanoseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ns: Option<i64>,
        /// Only alerts of this `kibana.alert.rule.rule_id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
    },
    AlertsShow {
        uuid: String,
    },
    AlertsExport,
    Verify,
    KeysShow,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Status(Box<StatusReport>),
    Alert(serde_json::Value),
    Envelope(nightjar_proto::dsse::Envelope),
    Verify(VerifyOutcome),
    Key(KeyReport),
    End(bool),
    Error(String),
}

/// `status`: DESIGN's fields first, then extras.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    pub events_received: u64,
    /// Ring drops, upstream loss reported by the sensor, and records lost to corruption.
    pub events_dropped: u64,
    pub alerts_stored: u64,
    pub alerts_suppressed: u64,
    /// Events the sensor's filters left out (no loaded rule could match them).
    #[serde(default)]
    pub events_filtered: u64,
    /// Execs stopped by a blocking rule.
    #[serde(default)]
    pub exec_blocked: u64,
    /// Execs let through because a blocking decision could not be made in time.
    #[serde(default)]
    pub block_failed_open: u64,
    pub alerts_pending_upload: u64,
    pub sensor_connected: bool,
    /// When the collector last accepted a batch (RFC 3339), if ever in this run.
    pub last_upload_ok: Option<String>,
    pub last_upload_error: Option<String>,
    /// Whether these figures come from the running agent (else from the store at rest).
    pub agent_running: bool,
    /// Whether the chain head matched the stored alerts when the store was opened.
    pub chain_ok: bool,
    pub chain_error: Option<String>,
    /// The ring generation the agent reads (changes when the sensor recreates the ring).
    pub ring_generation: Option<u64>,
    /// Corrupt ring regions the running agent skipped since it started.
    #[serde(default)]
    pub ring_resyncs: Option<u64>,
    pub upload_enabled: bool,
    /// The seq range the collector refused with a non-retryable status, if any.
    pub upload_blocked_batch: Option<String>,
    /// Why alerting is stalled (e.g. the disk is full): events wait in the ring, unreleased.
    #[serde(default)]
    pub alerting_stalled: Option<String>,
    /// The chain head signed with the host key (`{seq, hash, signature}`, see
    /// `crate::sign::head`): what the heartbeat sends. `None` before the first mark.
    #[serde(default)]
    pub chain_head: Option<nightjar_proto::fleet::HeartbeatChainHead>,
    /// The latest repair of a damaged store (index rebuilt, store quarantined, damaged
    /// records skipped), with its time; `None` when the store never needed one.
    #[serde(default)]
    pub store_recovery: Option<String>,
    /// Stateful rules (running agent only): state entries evicted to keep to the `[rules]`
    /// bounds since start, entries and bytes held now, sequence stage matches later than the
    /// reorder window, new_terms rules still learning.
    #[serde(default)]
    pub rules_state_evicted: Option<u64>,
    #[serde(default)]
    pub rules_state_held: Option<u64>,
    #[serde(default)]
    pub rules_state_bytes: Option<u64>,
    #[serde(default)]
    pub rules_events_late: Option<u64>,
    #[serde(default)]
    pub rules_learning: Option<u64>,
    /// Whether this host is enrolled with the fleet server (`false` without `[fleet]`).
    #[serde(default)]
    pub enrolled: bool,
    /// When the fleet server last accepted a heartbeat (RFC 3339), if ever in this run.
    #[serde(default)]
    pub last_heartbeat_ok: Option<String>,
    #[serde(default)]
    pub last_heartbeat_error: Option<String>,
    /// Why the host is not enrolled, while it is not (with `[fleet]`).
    #[serde(default)]
    pub enrol_error: Option<String>,
    /// Matches an exception excepted (no alert made), since the store was created.
    #[serde(default)]
    pub alerts_excepted: u64,
    /// The same per rule_id, since the agent started.
    #[serde(default)]
    pub alerts_excepted_by_rule: std::collections::BTreeMap<String, u64>,
    /// The fleet policy version running (`null`: the local `[rules]` configuration).
    #[serde(default)]
    pub policy_version: Option<u64>,
    /// When that policy was applied (RFC 3339).
    #[serde(default)]
    pub policy_applied_at: Option<String>,
    /// The last policy refused and why (a bad signature, an older version, a rule that does
    /// not compile); the running policy stays.
    #[serde(default)]
    pub policy_error: Option<String>,
    /// The last failure to fetch the policy from the server.
    #[serde(default)]
    pub policy_fetch_error: Option<String>,
}

/// `verify`. With `ok`, `reason` may carry a note (alerts not yet covered by the head mark).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOutcome {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `keys show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    pub key_id: String,
    /// Standard base64 of the raw 32-byte public key.
    pub public_key: String,
    pub algorithm: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shape() {
        let r = Request::AlertsList {
            since_ns: Some(5),
            rule: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"cmd":"alerts_list","since_ns":5}"#
        );
        let back: Request = serde_json::from_str(r#"{"cmd":"alerts_list"}"#).unwrap();
        assert_eq!(
            back,
            Request::AlertsList {
                since_ns: None,
                rule: None
            }
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"format_disk"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&Reply::End(true)).unwrap(),
            r#"{"end":true}"#
        );
    }
}
