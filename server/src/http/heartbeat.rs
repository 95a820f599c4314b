//! `POST /v1/heartbeat`: last seen, the agent's status counters, and its chain head compared
//! with the server's: below it is a `rollback` (a restored or reinstalled host), at it with
//! another hash a `fork`, above it `pending` uploads. A signed chain-head mark is checked
//! when the agent sends one.

use axum::Json;
use axum::extract::{Request, State};
use nightjar_proto::fleet::{Heartbeat, HeartbeatResponse, chain_head_signing_bytes};
use nightjar_proto::verify::{hex, parse_hex32};
use serde_json::{Value, json};

use super::AppState;
use super::body;
use super::error::ApiError;
use super::host_auth;
use crate::heartbeats::{Beat, Recorded};
use crate::ingest::store::hash32;
use crate::integrity::{self, Kind};

/// The largest status object kept per host.
const MAX_STATUS_BYTES: usize = 64 * 1024;

pub async fn heartbeat(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    let (parts, body) = req.into_parts();
    let limit = state.config.max_body_bytes.min(MAX_STATUS_BYTES);
    let bytes = body::read(&parts.headers, body, limit).await?;
    let auth = host_auth::authenticate(&state, &parts, &bytes, host_auth::Replay::Deferred).await?;
    body::require_content_type(&parts.headers, "application/json")?;
    let hb: Heartbeat =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let seq = i64::try_from(hb.chain_head.seq)
        .map_err(|_| ApiError::bad_request("chain_head.seq: out of range"))?;
    let hash = parse_hex32(&hb.chain_head.hash)
        .ok_or_else(|| ApiError::bad_request("chain_head.hash: not 64 hex digits"))?;
    let policy_version = hb
        .policy_version
        .map(i64::try_from)
        .transpose()
        .map_err(|_| ApiError::bad_request("policy_version: out of range"))?;
    let events_dropped = hb.status.get("events_dropped").and_then(Value::as_i64);
    let store_recovery = hb
        .status
        .get("store_recovery")
        .and_then(Value::as_str)
        .map(|s| s.replace('\0', "\u{fffd}"));
    if let Some(sig) = &hb.chain_head.signature {
        let message = chain_head_signing_bytes(&auth.host_id, hb.chain_head.seq, &hex(&hash));
        if let Err(e) = auth.key.verify_base64(&message, sig) {
            let detail = format!("heartbeat chain-head mark (seq {seq}): {e}");
            integrity::record(
                &state.pool.get().await?,
                &auth.host_id,
                auth.epoch,
                Kind::BadSignature,
                Some((seq, seq)),
                &detail,
            )
            .await?;
            return Err(ApiError::bad_request(format!("chain_head.signature: {e}"))
                .with("reason", json!("bad_signature")));
        }
    }
    let mut status = Value::Object(hb.status);
    scrub_nul(&mut status);
    let beat = Beat {
        host_id: auth.host_id.clone(),
        epoch: auth.epoch,
        seq,
        hash,
        policy_version,
        events_dropped,
        status,
        replay_hash: auth.replay_hash.clone().unwrap_or_default(),
    };
    let reset = || ApiError::unauthorized("the host's key was reset; enrol again");
    let (server_head, rollback_seq, stored_hash, latest_policy) =
        match state.heartbeats.record(beat).await? {
            Recorded::Reset => return Err(reset()),
            Recorded::Replayed => return Err(host_auth::replayed()),
            Recorded::Written { updated: false, .. } => {
                state.keys.forget(&auth.host_id);
                return Err(reset());
            }
            Recorded::Written {
                server_head,
                rollback_seq,
                stored_hash,
                latest_policy,
                ..
            } => (server_head, rollback_seq, stored_hash, latest_policy),
        };
    if let Some(summary) = &store_recovery {
        record_store_recovery(&state, &auth.host_id, auth.epoch, summary).await?;
    }
    // What the comparison found beyond the common case is recorded on a connection of its
    // own (rare: a rollback, its end, or a fork the host reports).
    let forked = stored_hash.map(hash32).filter(|s| *s != hash && seq > 0);
    let needs_write = (seq < server_head && rollback_seq != Some(seq))
        || (seq >= server_head && rollback_seq.is_some())
        || forked.is_some();
    if !needs_write {
        return Ok(Json(HeartbeatResponse {
            policy_version: latest_policy.unwrap_or(0).max(0) as u64,
        }));
    }
    let client = state.pool.get().await?;
    if seq < server_head && rollback_seq != Some(seq) {
        let detail =
            format!("host reports chain head seq {seq}, the server holds seq {server_head}");
        client
            .execute(
                "WITH m AS (
                     UPDATE chain_heads SET rollback_seq = $2
                     WHERE host_id = $1 AND epoch = $3 AND rollback_seq IS DISTINCT FROM $2
                     RETURNING 1)
                 INSERT INTO integrity_events (host_id, epoch, kind, seq_from, seq_to, detail)
                 SELECT $1, $3, 'rollback', $2, $4, $5 FROM m",
                &[&auth.host_id, &seq, &auth.epoch, &server_head, &detail],
            )
            .await?;
    } else if seq >= server_head && rollback_seq.is_some() {
        client
            .execute(
                "UPDATE chain_heads SET rollback_seq = NULL WHERE host_id = $1 AND epoch = $2",
                &[&auth.host_id, &auth.epoch],
            )
            .await?;
    }
    if let Some(stored) = forked {
        let detail = format!(
            "host reports seq {seq} with hash {}, the server stored {}",
            hex(&hash),
            hex(&stored)
        );
        client
            .execute(
                "WITH m AS (
                     UPDATE chain_heads SET fork_seq = $2
                     WHERE host_id = $1 AND epoch = $3 AND fork_seq IS NULL RETURNING 1)
                 INSERT INTO integrity_events (host_id, epoch, kind, seq_from, seq_to, detail)
                 SELECT $1, $3, 'fork', $2, $2, $4 FROM m",
                &[&auth.host_id, &seq, &auth.epoch, &detail],
            )
            .await?;
    }
    Ok(Json(HeartbeatResponse {
        policy_version: latest_policy.unwrap_or(0).max(0) as u64,
    }))
}

/// Records the host's report of a repaired alert store once: the agent keeps saying it in
/// every heartbeat after the repair, and the event is its first report (a later repair has
/// another sentence, with its own time, and is recorded again). Only hosts that report one
/// pay for the lookup.
async fn record_store_recovery(
    state: &AppState,
    host_id: &str,
    epoch: i32,
    summary: &str,
) -> Result<(), ApiError> {
    let detail: String = summary.chars().take(MAX_DETAIL_CHARS).collect();
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO integrity_events (host_id, epoch, kind, detail)
             SELECT $1, $2, 'store_recovery', $3
             WHERE NOT EXISTS (SELECT 1 FROM integrity_events
                               WHERE host_id = $1 AND epoch = $2
                                 AND kind = 'store_recovery' AND detail = $3)",
        )
        .await?;
    client.execute(&stmt, &[&host_id, &epoch, &detail]).await?;
    Ok(())
}

/// The longest store-recovery sentence kept (the agent's are a few hundred characters).
const MAX_DETAIL_CHARS: usize = 2_000;

/// Replaces U+0000 in the status object's keys and strings with U+FFFD: `jsonb` cannot hold
/// it, and one such heartbeat must not fail the others written with it.
fn scrub_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
        Value::Array(a) => a.iter_mut().for_each(scrub_nul),
        Value::Object(o) => {
            let keys: Vec<String> = o.keys().filter(|k| k.contains('\0')).cloned().collect();
            for k in keys {
                if let Some(val) = o.remove(&k) {
                    o.insert(k.replace('\0', "\u{fffd}"), val);
                }
            }
            o.values_mut().for_each(scrub_nul);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_scrubbed_from_keys_and_strings() {
        let mut v = serde_json::json!({"a": "x\u{0}y", "k\u{0}": [1, "\u{0}"], "n": 1});
        scrub_nul(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": "x\u{fffd}y", "k\u{fffd}": [1, "\u{fffd}"], "n": 1})
        );
    }
}
