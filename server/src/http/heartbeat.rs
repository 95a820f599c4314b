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
    let auth = host_auth::authenticate(&state, &parts, &bytes, host_auth::Replay::Refuse).await?;
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
    let mut client = state.pool.get().await?;
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
    let tx = client.transaction().await?;
    let update = tx
        .prepare_cached(
            "UPDATE hosts SET last_seen = now(), silent_since = NULL, reported_head_seq = $2,
                 reported_head_hash = $3, policy_version = $4,
                 events_dropped = COALESCE($5, events_dropped), last_status = $6
             WHERE host_id = $1 AND epoch = $7",
        )
        .await?;
    let n = tx
        .execute(
            &update,
            &[
                &auth.host_id,
                &seq,
                &hash.as_slice(),
                &policy_version,
                &events_dropped,
                &status,
                &auth.epoch,
            ],
        )
        .await?;
    if n == 0 {
        return Err(ApiError::unauthorized(
            "the host's key was reset; enrol again",
        ));
    }
    let head = tx
        .prepare_cached(
            "SELECT c.head_seq, c.rollback_seq, x.payload_hash,
                    (SELECT max(version) FROM policies)
             FROM chain_heads c
             LEFT JOIN chain_index x ON x.host_id = c.host_id AND x.epoch = c.epoch AND x.seq = $2
             WHERE c.host_id = $1 AND c.epoch = $3",
        )
        .await?;
    let row = tx
        .query_one(&head, &[&auth.host_id, &seq, &auth.epoch])
        .await?;
    let server_head: i64 = row.get(0);
    let rollback_seq: Option<i64> = row.get(1);
    let stored_hash: Option<Vec<u8>> = row.get(2);
    let latest_policy: Option<i64> = row.get(3);
    if seq < server_head {
        if rollback_seq != Some(seq) {
            let detail =
                format!("host reports chain head seq {seq}, the server holds seq {server_head}");
            integrity::record(
                &tx,
                &auth.host_id,
                auth.epoch,
                Kind::Rollback,
                Some((seq, server_head)),
                &detail,
            )
            .await?;
            tx.execute(
                "UPDATE chain_heads SET rollback_seq = $2 WHERE host_id = $1",
                &[&auth.host_id, &seq],
            )
            .await?;
        }
    } else if rollback_seq.is_some() {
        tx.execute(
            "UPDATE chain_heads SET rollback_seq = NULL WHERE host_id = $1",
            &[&auth.host_id],
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
        let marked = tx
            .execute(
                "UPDATE chain_heads SET fork_seq = $2 WHERE host_id = $1 AND fork_seq IS NULL",
                &[&auth.host_id, &seq],
            )
            .await?;
        if marked > 0 {
            integrity::record(
                &tx,
                &auth.host_id,
                auth.epoch,
                Kind::Fork,
                Some((seq, seq)),
                &detail,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Json(HeartbeatResponse {
        policy_version: latest_policy.unwrap_or(0).max(0) as u64,
    }))
}
