//! One transaction per batch: the host's chain-head row locked (`SELECT … FOR UPDATE`), the
//! batch planned against it ([`super::chain::plan`]), the new alerts inserted in one
//! multi-row statement, gaps opened or closed, a fork recorded, the head moved, committed.
//!
//! The lock is what makes replicas safe: two servers given the same batch at once serialise
//! on the row, and the second finds every seq stored with the same hash (a re-delivery).

use std::collections::BTreeSet;
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};

use super::chain::{Plan, Stored, plan, shrink_gaps};
use super::parse::IncomingAlert;
use crate::db::DbError;
use crate::http::host_auth::HostAuth;
use crate::integrity::{self, Kind};

/// What a committed batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub head_seq: u64,
    pub head_hash: [u8; 32],
    pub stored: usize,
    pub duplicates: usize,
    /// The first conflicting seq and why (409); what came before it is committed.
    pub fork: Option<(u64, String)>,
}

/// Why a batch could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The host was reset (its key unpinned) while the request was in flight.
    #[error("the host's key was reset; enrol again")]
    KeyReset,
}

impl From<tokio_postgres::Error> for IngestError {
    fn from(e: tokio_postgres::Error) -> Self {
        IngestError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for IngestError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        IngestError::Db(e.into())
    }
}

const INSERT_ALERTS: &str = "
WITH rows AS (
    SELECT * FROM unnest($3::bigint[], $4::bytea[], $5::bytea[], $6::timestamptz[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::bytea[], $12::text[])
        AS r(seq, payload_hash, prev_hash, alert_time, uuid, rule_id, rule_name, severity,
             envelope, payload)
), idx AS (
    INSERT INTO chain_index (host_id, epoch, seq, payload_hash, prev_hash, received_at)
    SELECT $1, $2, seq, payload_hash, prev_hash, $13 FROM rows
), stored AS (
    INSERT INTO alerts (host_id, epoch, seq, received_at, alert_time, uuid, rule_id, rule_name,
                        severity, key_id, envelope, payload)
    SELECT $1, $2, seq, $13, alert_time, uuid, rule_id, rule_name, severity, $14, envelope,
           payload::jsonb
    FROM rows
)
UPDATE chain_heads SET head_seq = $15, head_hash = $16, fork_seq = COALESCE(fork_seq, $17)
WHERE host_id = $1";

/// Commits a verified batch (ascending seqs, all of `auth`'s host).
pub async fn commit(
    pool: &Pool,
    auth: &HostAuth,
    batch: &[IncomingAlert],
    received_at: SystemTime,
) -> Result<Outcome, IngestError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached(
            "SELECT epoch, head_seq, head_hash, fork_seq FROM chain_heads
             WHERE host_id = $1 FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&lock, &[&auth.host_id])
        .await?
        .ok_or(IngestError::KeyReset)?;
    let epoch: i32 = row.get(0);
    if epoch != auth.epoch {
        return Err(IngestError::KeyReset);
    }
    let head_seq = row.get::<_, i64>(1) as u64;
    let head_hash = hash32(row.get(2));
    let forked_before = row.get::<_, Option<i64>>(3).is_some();

    let (lo, hi) = match (batch.first(), batch.last()) {
        (Some(a), Some(b)) => (a.seq, b.seq),
        _ => {
            return Ok(Outcome {
                head_seq,
                head_hash,
                stored: 0,
                duplicates: 0,
                fork: None,
            });
        }
    };
    let mut stored = Stored::new();
    if lo <= head_seq {
        let q = tx
            .prepare_cached(
                "SELECT seq, payload_hash, prev_hash FROM chain_index
                 WHERE host_id = $1 AND epoch = $2 AND seq BETWEEN $3 AND $4",
            )
            .await?;
        let from = lo.saturating_sub(1) as i64;
        let to = hi.saturating_add(1).min(i64::MAX as u64) as i64;
        for r in tx.query(&q, &[&auth.host_id, &epoch, &from, &to]).await? {
            stored.insert(
                r.get::<_, i64>(0) as u64,
                (hash32(r.get(1)), hash32(r.get(2))),
            );
        }
    }
    let plan = plan((head_seq, head_hash), stored, batch);
    let fork_seq = plan.fork.as_ref().map(|(s, _)| *s as i64);
    if plan.store.is_empty() {
        if fork_seq.is_some() {
            tx.execute(
                "UPDATE chain_heads SET fork_seq = COALESCE(fork_seq, $2) WHERE host_id = $1",
                &[&auth.host_id, &fork_seq],
            )
            .await?;
        }
    } else {
        insert(&tx, auth, epoch, batch, &plan, received_at, fork_seq).await?;
    }
    for &(from, to) in &plan.new_gaps {
        let detail = if from == to {
            format!("seq {from} missing (received seq {} first)", to + 1)
        } else {
            format!("seqs {from}..{to} missing (received seq {} first)", to + 1)
        };
        let id = integrity::record(
            &tx,
            &auth.host_id,
            epoch,
            Kind::Gap,
            Some((from as i64, to as i64)),
            &detail,
        )
        .await?;
        tx.execute(
            "INSERT INTO chain_gaps (host_id, epoch, from_seq, to_seq, event_id)
             VALUES ($1, $2, $3, $4, $5)",
            &[&auth.host_id, &epoch, &(from as i64), &(to as i64), &id],
        )
        .await?;
    }
    if !plan.fills.is_empty() {
        close_filled(&tx, &auth.host_id, epoch, &plan.fills).await?;
    }
    if let Some((seq, detail)) = &plan.fork
        && !forked_before
    {
        integrity::record(
            &tx,
            &auth.host_id,
            epoch,
            Kind::Fork,
            Some((*seq as i64, *seq as i64)),
            detail,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Outcome {
        head_seq: plan.head.0,
        head_hash: plan.head.1,
        stored: plan.store.len(),
        duplicates: plan.duplicates.len(),
        fork: plan.fork,
    })
}

async fn insert(
    tx: &impl GenericClient,
    auth: &HostAuth,
    epoch: i32,
    batch: &[IncomingAlert],
    plan: &Plan,
    received_at: SystemTime,
    fork_seq: Option<i64>,
) -> Result<(), IngestError> {
    let rows: Vec<&IncomingAlert> = plan.store.iter().map(|&i| &batch[i]).collect();
    let seqs: Vec<i64> = rows.iter().map(|a| a.seq as i64).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|a| a.hash.as_slice()).collect();
    let prevs: Vec<&[u8]> = rows.iter().map(|a| a.prev.as_slice()).collect();
    let times: Vec<SystemTime> = rows.iter().map(|a| a.alert_time).collect();
    let uuids: Vec<&str> = rows.iter().map(|a| a.uuid.as_str()).collect();
    let rule_ids: Vec<&str> = rows.iter().map(|a| a.rule_id.as_str()).collect();
    let rule_names: Vec<&str> = rows.iter().map(|a| a.rule_name.as_str()).collect();
    let severities: Vec<&str> = rows.iter().map(|a| a.severity.as_str()).collect();
    let envelopes: Vec<&[u8]> = rows.iter().map(|a| a.envelope.as_slice()).collect();
    let payloads: Vec<&str> = rows.iter().map(|a| a.payload_json.as_str()).collect();
    let stmt = tx.prepare_cached(INSERT_ALERTS).await?;
    tx.execute(
        &stmt,
        &[
            &auth.host_id,
            &epoch,
            &seqs,
            &hashes,
            &prevs,
            &times,
            &uuids,
            &rule_ids,
            &rule_names,
            &severities,
            &envelopes,
            &payloads,
            &received_at,
            &auth.key.key_id(),
            &(plan.head.0 as i64),
            &plan.head.1.as_slice(),
            &fork_seq,
        ],
    )
    .await?;
    Ok(())
}

/// Shrinks the open gaps by the filled seqs and closes the gap events left with no range.
async fn close_filled(
    tx: &impl GenericClient,
    host_id: &str,
    epoch: i32,
    fills: &[u64],
) -> Result<(), IngestError> {
    let rows = tx
        .query(
            "SELECT from_seq, to_seq, event_id FROM chain_gaps
             WHERE host_id = $1 AND epoch = $2 ORDER BY from_seq",
            &[&host_id, &epoch],
        )
        .await?;
    let mut touched = BTreeSet::new();
    for r in rows {
        let range = (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64);
        let event_id: i64 = r.get(2);
        let left = shrink_gaps(&[range], fills);
        if left == [range] {
            continue;
        }
        touched.insert(event_id);
        tx.execute(
            "DELETE FROM chain_gaps WHERE host_id = $1 AND epoch = $2 AND from_seq = $3",
            &[&host_id, &epoch, &(range.0 as i64)],
        )
        .await?;
        for (from, to) in left {
            tx.execute(
                "INSERT INTO chain_gaps (host_id, epoch, from_seq, to_seq, event_id)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&host_id, &epoch, &(from as i64), &(to as i64), &event_id],
            )
            .await?;
        }
    }
    let touched: Vec<i64> = touched.into_iter().collect();
    tx.execute(
        "UPDATE integrity_events e SET closed_at = now()
         WHERE e.id = ANY($1) AND NOT EXISTS (SELECT 1 FROM chain_gaps g WHERE g.event_id = e.id)",
        &[&touched],
    )
    .await?;
    Ok(())
}

/// A 32-byte hash column (anything else reads as zeros, which no real hash is).
pub fn hash32(bytes: Vec<u8>) -> [u8; 32] {
    bytes.try_into().unwrap_or([0; 32])
}
