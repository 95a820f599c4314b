//! `POST /v1/alerts`: a host's signed batch, verified and committed in one transaction.

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use nightjar_proto::fleet::IngestResponse;
use nightjar_proto::verify::hex;
use serde_json::json;

use super::AppState;
use super::body;
use super::error::ApiError;
use super::host_auth::{self, HostAuth};
use crate::ingest::parse::{BatchError, read_batch};
use crate::ingest::store::{IngestError, commit};
use crate::integrity::{self, Kind};

pub async fn ingest(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<IngestResponse>, ApiError> {
    let (parts, body) = req.into_parts();
    let _slot = state.ingest.clone().acquire_owned().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
    })?;
    let bytes = body::read(&parts.headers, body, state.config.max_body_bytes).await?;
    let auth =
        host_auth::authenticate(&state, &parts, &bytes, host_auth::Replay::Idempotent).await?;
    body::require_content_type(&parts.headers, "application/x-ndjson")?;
    let received_at = SystemTime::now();
    // Decoding and Ed25519 batch verification are the CPU-heavy part: off the I/O threads.
    let key = auth.key.clone();
    let host_id = auth.host_id.clone();
    let permit = state.cpu.clone().acquire_owned().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        )
    })?;
    let parsed = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        read_batch(&bytes, &key, &host_id, received_at)
    })
    .await
    .map_err(|e| {
        tracing::error!("batch verification task failed: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "batch verification failed",
        )
    })?;
    let alerts = match parsed {
        Ok(a) => a,
        Err(BatchError::Malformed { line, reason }) => {
            return Err(ApiError::at_line(StatusCode::BAD_REQUEST, line, reason));
        }
        Err(BatchError::BadSignature { line, seq, reason }) => {
            record_bad_signature(&state, &auth, line, seq, &reason).await;
            return Err(ApiError::at_line(StatusCode::BAD_REQUEST, line, reason)
                .with("reason", json!("bad_signature")));
        }
    };
    let outcome = match commit(&state.pool, &auth, &alerts, received_at).await {
        Ok(o) => o,
        Err(IngestError::KeyReset) => {
            return Err(ApiError::unauthorized(
                "the host's key was reset; enrol again",
            ));
        }
        Err(IngestError::Db(e)) => return Err(e.into()),
    };
    let answer = IngestResponse {
        accepted_through: outcome.head_seq,
        head_hash: hex(&outcome.head_hash),
    };
    if let Some((seq, reason)) = outcome.fork {
        tracing::warn!(host = %auth.host_id, seq, "fork: {reason}");
        return Err(
            ApiError::new(StatusCode::CONFLICT, format!("fork at seq {seq}: {reason}"))
                .with("seq", json!(seq))
                .with("accepted_through", json!(answer.accepted_through))
                .with("head_hash", json!(answer.head_hash)),
        );
    }
    Ok(Json(answer))
}

async fn record_bad_signature(
    state: &AppState,
    auth: &HostAuth,
    line: usize,
    seq: Option<u64>,
    reason: &str,
) {
    tracing::warn!(host = %auth.host_id, line, "batch refused: {reason}");
    let detail = format!("batch refused: line {line}: {reason}");
    let seqs = seq.map(|s| (s as i64, s as i64));
    let done = async {
        let client = state.pool.get().await?;
        integrity::record(
            &client,
            &auth.host_id,
            auth.epoch,
            Kind::BadSignature,
            seqs,
            &detail,
        )
        .await?;
        Ok::<_, crate::db::DbError>(())
    };
    if let Err(e) = done.await {
        tracing::error!(host = %auth.host_id, "recording a bad signature: {e}");
    }
}
