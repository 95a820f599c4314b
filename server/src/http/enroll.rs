//! `POST /v1/enroll`: a host proves it holds the key it asks the server to pin (a signature
//! over `nightjar_proto::fleet::enroll_signing_bytes`) and spends one use of an enrolment
//! token. A host id pinned to another key is refused (409) until `hosts reset`.
//!
//! Enrolling again with the key already pinned answers 200 without spending a use, so an
//! agent whose first answer was lost can retry with a token that is now used up.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use nightjar_proto::fleet::{
    EnrollRequest, EnrollResponse, MAX_CLOCK_SKEW_SECS, enroll_signing_bytes,
};
use nightjar_proto::verify::AlertKey;

use super::AppState;
use super::body;
use super::error::ApiError;
use super::host_auth::MAX_HOST_ID_LEN;
use crate::secret;
use crate::time::{rfc3339, unix_now};

fn check_text(field: &str, value: &str, max: usize, allow_empty: bool) -> Result<(), ApiError> {
    if (!allow_empty && value.is_empty()) || value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field}: must be {} to {max} characters",
            if allow_empty { 0 } else { 1 }
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(())
}

pub async fn enroll(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<EnrollResponse>, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = body::read(&parts.headers, body, state.config.max_body_bytes).await?;
    body::require_content_type(&parts.headers, "application/json")?;
    let r: EnrollRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    check_text("host_id", &r.host_id, MAX_HOST_ID_LEN, false)?;
    check_text("hostname", &r.hostname, 255, true)?;
    check_text("os", &r.os, 64, true)?;
    check_text("agent_version", &r.agent_version, 64, true)?;
    if r.token.is_empty() || r.token.len() > 256 {
        return Err(ApiError::unauthorized("unknown enrolment token"));
    }
    let key = AlertKey::from_base64(&r.public_key)
        .map_err(|e| ApiError::bad_request(format!("public_key: {e}")))?;
    let skew = unix_now().saturating_sub(r.time);
    if skew.abs() > MAX_CLOCK_SKEW_SECS {
        return Err(ApiError::unauthorized(format!(
            "time: clock skew of {skew} s exceeds {MAX_CLOCK_SKEW_SECS} s"
        )));
    }
    let message = enroll_signing_bytes(&r.token, &r.host_id, &r.public_key, r.time);
    key.verify_base64(&message, &r.signature)
        .map_err(|e| ApiError::unauthorized(format!("signature: {e}")))?;

    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let host = tx
        .query_opt(
            "SELECT public_key, epoch FROM hosts WHERE host_id = $1 FOR UPDATE",
            &[&r.host_id],
        )
        .await?;
    let epoch = match &host {
        Some(row) => {
            let pinned: Option<Vec<u8>> = row.get(0);
            let epoch: i32 = row.get(1);
            match pinned {
                Some(p) if p == key.raw() => {
                    let at: SystemTime = tx
                        .query_one(
                            "SELECT pinned_at FROM host_keys WHERE host_id = $1 AND epoch = $2",
                            &[&r.host_id, &epoch],
                        )
                        .await?
                        .get(0);
                    tx.commit().await?;
                    return Ok(Json(EnrollResponse {
                        host_id: r.host_id,
                        key_id: key.key_id().to_string(),
                        enrolled_at: rfc3339(at),
                    }));
                }
                Some(_) => {
                    tracing::warn!(
                        host = %r.host_id,
                        key_id = key.key_id(),
                        "enrolment refused: the host id is pinned to another key"
                    );
                    return Err(ApiError::new(
                        StatusCode::CONFLICT,
                        "host id is pinned to another key; an admin must run `hosts reset` first",
                    ));
                }
                None => Some(epoch),
            }
        }
        None => None,
    };
    let token = tx
        .query_opt(
            "SELECT id, uses_left, expires_at < now() FROM enroll_tokens
             WHERE token_hash = $1 FOR UPDATE",
            &[&secret::hash(&r.token)],
        )
        .await?
        .ok_or_else(|| ApiError::unauthorized("unknown enrolment token"))?;
    let (token_id, uses_left, expired): (i64, i32, bool) =
        (token.get(0), token.get(1), token.get(2));
    if expired {
        return Err(ApiError::unauthorized("enrolment token expired"));
    }
    if uses_left <= 0 {
        return Err(ApiError::unauthorized("enrolment token used up"));
    }
    tx.execute(
        "UPDATE enroll_tokens SET uses_left = uses_left - 1 WHERE id = $1",
        &[&token_id],
    )
    .await?;
    let now = SystemTime::now();
    let raw: &[u8] = key.raw();
    let epoch = match epoch {
        Some(epoch) => {
            tx.execute(
                "UPDATE hosts SET public_key = $2, key_id = $3, hostname = $4, os = $5,
                     agent_version = $6, silent_since = NULL
                 WHERE host_id = $1",
                &[
                    &r.host_id,
                    &raw,
                    &key.key_id(),
                    &r.hostname,
                    &r.os,
                    &r.agent_version,
                ],
            )
            .await?;
            epoch
        }
        None => {
            let inserted = tx
                .execute(
                    "INSERT INTO hosts (host_id, hostname, os, agent_version, public_key, key_id,
                                        enrolled_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (host_id) DO NOTHING",
                    &[
                        &r.host_id,
                        &r.hostname,
                        &r.os,
                        &r.agent_version,
                        &raw,
                        &key.key_id(),
                        &now,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this host id is being enrolled by another request; retry",
                ));
            }
            tx.execute(
                "INSERT INTO chain_heads (host_id, epoch, head_seq, head_hash) VALUES ($1, 1, 0, $2)",
                &[&r.host_id, &[0u8; 32].as_slice()],
            )
            .await?;
            1
        }
    };
    tx.execute(
        "INSERT INTO host_keys (host_id, epoch, public_key, key_id, pinned_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[&r.host_id, &epoch, &raw, &key.key_id(), &now],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(host = %r.host_id, key_id = key.key_id(), epoch, "host enrolled");
    Ok(Json(EnrollResponse {
        host_id: r.host_id,
        key_id: key.key_id().to_string(),
        enrolled_at: rfc3339(now),
    }))
}
