//! Host request signatures (DESIGN "Protocol"): every agent request but enrolment carries
//! `X-Nightjar-{Host-Id,Key-Id,Time,Signature}`, the signature by the host's pinned key over
//! `nightjar_proto::fleet::request_signing_bytes`. Unknown host or key, a clock skew over
//! 300 s, a bad signature, or a replay: 401.
//!
//! Replays: a signed request captured in transit could be sent again within the skew window.
//! Ed25519 signatures are deterministic, so an honest agent that resends the same body in the
//! same second also repeats its signature; the answer depends on what a repeat could do:
//!
//! - an upload ([`Replay::Idempotent`]) changes nothing the second time (every envelope is a
//!   re-delivery), so a repeated signature is processed like any retry;
//! - a heartbeat or policy fetch ([`Replay::Refuse`]) would let a captured request keep a dead
//!   host looking alive, so the server remembers every such signature for twice the window
//!   (`request_replay`, shared by all replicas) and refuses a second use with 401.

use axum::http::HeaderMap;
use axum::http::request::Parts;
use nightjar_proto::fleet::{
    HEADER_HOST_ID, HEADER_KEY_ID, HEADER_SIGNATURE, HEADER_TIME, MAX_CLOCK_SKEW_SECS,
    request_signing_bytes,
};
use nightjar_proto::verify::{AlertKey, hex, sha256};

use super::AppState;
use super::error::ApiError;
use crate::time::unix_now;

/// The longest host id accepted anywhere.
pub const MAX_HOST_ID_LEN: usize = 256;

/// A request proven to come from a host holding its pinned key.
#[derive(Debug, Clone)]
pub struct HostAuth {
    pub host_id: String,
    /// The host's current key epoch (see `hosts.epoch`).
    pub epoch: i32,
    pub key: AlertKey,
    /// With [`Replay::Deferred`]: the hash of the signature, for the handler to record.
    pub replay_hash: Option<Vec<u8>>,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .ok_or_else(|| ApiError::unauthorized(format!("missing header {name}")))?
        .to_str()
        .map_err(|_| ApiError::unauthorized(format!("header {name} is not ASCII")))
}

/// Whether a repeated signature is refused (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Idempotent,
    /// Recorded and refused here.
    Refuse,
    /// Refused by the handler, which records the signature in its own statement
    /// ([`HostAuth::replay_hash`]) to save a round trip.
    Deferred,
}

/// Checks a host request's signature over `body`.
pub async fn authenticate(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
    replay: Replay,
) -> Result<HostAuth, ApiError> {
    let headers = &parts.headers;
    let host_id = header(headers, HEADER_HOST_ID)?;
    let key_id = header(headers, HEADER_KEY_ID)?;
    let time_text = header(headers, HEADER_TIME)?;
    let signature = header(headers, HEADER_SIGNATURE)?;
    if host_id.is_empty() || host_id.len() > MAX_HOST_ID_LEN {
        return Err(ApiError::unauthorized(format!(
            "header {HEADER_HOST_ID} must be 1 to {MAX_HOST_ID_LEN} characters"
        )));
    }
    let time: i64 = time_text
        .parse()
        .map_err(|_| ApiError::unauthorized(format!("header {HEADER_TIME} is not unix seconds")))?;
    let skew = unix_now().saturating_sub(time);
    if skew.abs() > MAX_CLOCK_SKEW_SECS {
        return Err(ApiError::unauthorized(format!(
            "clock skew of {skew} s exceeds {MAX_CLOCK_SKEW_SECS} s"
        ))
        .with("server_time", unix_now().into()));
    }
    let pinned = match state.keys.get(host_id, key_id) {
        Some(p) => p,
        None => {
            let p = pinned_key(state, host_id, key_id).await?;
            state.keys.put(host_id, p.clone());
            p
        }
    };
    let (key, epoch) = (pinned.key, pinned.epoch);
    let path = parts
        .uri
        .path_and_query()
        .map_or(parts.uri.path(), |pq| pq.as_str());
    let message = request_signing_bytes(parts.method.as_str(), path, time, &hex(&sha256(body)));
    key.verify_base64(&message, signature)
        .map_err(|e| ApiError::unauthorized(format!("request signature: {e}")))?;
    let sig_hash = sha256(signature.as_bytes()).to_vec();
    if replay != Replay::Refuse {
        return Ok(HostAuth {
            host_id: host_id.to_string(),
            epoch,
            key,
            replay_hash: (replay == Replay::Deferred).then_some(sig_hash),
        });
    }
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached("INSERT INTO request_replay (sig_hash) VALUES ($1) ON CONFLICT DO NOTHING")
        .await?;
    if client.execute(&stmt, &[&sig_hash]).await? == 0 {
        return Err(replayed());
    }
    Ok(HostAuth {
        host_id: host_id.to_string(),
        epoch,
        key,
        replay_hash: None,
    })
}

/// The refusal for a repeated signature.
pub fn replayed() -> ApiError {
    ApiError::unauthorized("replayed request: this signature was already used")
}

/// The key pinned to `host_id`, from the database; it must have `key_id`.
async fn pinned_key(
    state: &AppState,
    host_id: &str,
    key_id: &str,
) -> Result<super::key_cache::Pinned, ApiError> {
    let client = state.pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT public_key, key_id, epoch FROM hosts WHERE host_id = $1")
        .await?;
    let row = client.query_opt(&stmt, &[&host_id]).await?;
    let unknown = || ApiError::unauthorized("unknown host or key; enrol first");
    let row = row.ok_or_else(unknown)?;
    let pinned: Option<Vec<u8>> = row.get(0);
    let pinned_id: Option<String> = row.get(1);
    let epoch: i32 = row.get(2);
    let (Some(pinned), Some(pinned_id)) = (pinned, pinned_id) else {
        return Err(unknown());
    };
    if pinned_id != key_id {
        return Err(unknown());
    }
    let key = AlertKey::from_raw(&pinned).map_err(|e| {
        tracing::error!(host = host_id, "pinned key is unusable: {e}");
        unknown()
    })?;
    Ok(super::key_cache::Pinned { key, epoch })
}

/// Forgets replay records older than twice the skew window, every minute.
pub async fn prune_replays(pool: deadpool_postgres::Pool) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let done = async {
            let client = pool.get().await?;
            client
                .execute(
                    "DELETE FROM request_replay WHERE seen_at < now() - make_interval(secs => $1)",
                    &[&((2 * MAX_CLOCK_SKEW_SECS) as f64)],
                )
                .await?;
            Ok::<_, ApiError>(())
        };
        if let Err(e) = done.await {
            tracing::warn!("pruning replay records: {}", e.message());
        }
    }
}
