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
    let client = state.pool.get().await?;
    if let Some(sig) = &hb.chain_head.signature {
        let message = chain_head_signing_bytes(&auth.host_id, hb.chain_head.seq, &hex(&hash));
        if let Err(e) = auth.key.verify_base64(&message, sig) {
            let detail = format!("heartbeat chain-head mark (seq {seq}): {e}");
            integrity::record(
                &client,
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
    let status = Value::Object(hb.status);
    let replay_hash = auth.replay_hash.clone().unwrap_or_default();
    // One statement in the common case: the replay record, the host's row, and what the
    // comparison with the server's chain needs.
    let stmt = client
        .prepare_cached(
            "WITH r AS (
                 INSERT INTO request_replay (sig_hash) VALUES ($8)
                 ON CONFLICT DO NOTHING RETURNING 1
             ), u AS (
                 UPDATE hosts SET last_seen = now(), silent_since = NULL,
                     reported_head_seq = $2, reported_head_hash = $3, policy_version = $4,
                     events_dropped = COALESCE($5, events_dropped), last_status = $6
                 WHERE host_id = $1 AND epoch = $7 AND EXISTS (SELECT 1 FROM r)
                 RETURNING 1
             )
             SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM u), c.head_seq,
                    c.rollback_seq, x.payload_hash, (SELECT max(version) FROM policies)
             FROM chain_heads c
             LEFT JOIN chain_index x
               ON x.host_id = c.host_id AND x.epoch = c.epoch AND x.seq = $2
             WHERE c.host_id = $1 AND c.epoch = $7",
        )
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &auth.host_id,
                &seq,
                &hash.as_slice(),
                &policy_version,
                &events_dropped,
                &status,
                &auth.epoch,
                &replay_hash,
            ],
        )
        .await?;
    let reset = || ApiError::unauthorized("the host's key was reset; enrol again");
    let row = row.ok_or_else(reset)?;
    if row.get::<_, i64>(0) == 0 {
        return Err(host_auth::replayed());
    }
    if row.get::<_, i64>(1) == 0 {
        state.keys.forget(&auth.host_id);
        return Err(reset());
    }
    let server_head: i64 = row.get(2);
    let rollback_seq: Option<i64> = row.get(3);
    let stored_hash: Option<Vec<u8>> = row.get(4);
    let latest_policy: Option<i64> = row.get(5);
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
    if let Some(stored) = stored_hash.map(hash32)
        && stored != hash
        && seq > 0
    {
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
