//! One transaction per batch: the host's chain-head row locked (`SELECT … FOR UPDATE`), the
//! batch planned against it ([`super::chain::plan`]), the chain rows inserted and the head
//! moved in one statement, the alerts sent with one binary `COPY`, gaps opened or closed, a
//! fork recorded, committed. A batch that simply extends the chain (the common case) is
//! decided, its chain rows stored and its head moved by the locking statement itself
//! ([`EXTEND`]): four round trips for the whole batch (that statement, the `COPY` and its
//! end, the commit) besides `BEGIN`.
//!
//! The lock is what makes replicas safe: two servers given the same batch at once serialise
//! on the row, and the second finds every seq stored with the same hash (a re-delivery).

use std::collections::BTreeSet;
use std::time::SystemTime;

use deadpool_postgres::{GenericClient, Pool};
use futures_util::SinkExt as _;

use super::chain::{Plan, Stored, plan, shrink_gaps};
use super::copy::{COPY_ALERTS, alert_rows};
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

/// The common batch in one statement: lock the host's head; if the batch extends it (its
/// first `prev` is the head's hash, and [`contiguous`] held in Rust for the rest), store the
/// chain rows and move the head. Either way it answers the head as locked, so a batch that
/// does not simply extend goes on to the general path without locking again.
///
/// Under concurrency the locked row is the newest version (READ COMMITTED re-reads a row it
/// waited for), so a batch racing another replica's copy of itself sees the moved head and
/// stores nothing here.
const EXTEND: &str = "
WITH head AS (
    SELECT epoch, head_seq, head_hash, fork_seq FROM chain_heads WHERE host_id = $1 FOR UPDATE
), extends AS (
    SELECT 1 FROM head WHERE epoch = $2 AND head_seq = $3 AND head_hash = $4
), idx AS (
    INSERT INTO chain_index (host_id, epoch, seq, payload_hash, prev_hash, received_at)
    SELECT $1, $2, r.seq, r.payload_hash, r.prev_hash, $8
    FROM unnest($5::bigint[], $6::bytea[], $7::bytea[]) AS r(seq, payload_hash, prev_hash)
    WHERE EXISTS (SELECT 1 FROM extends)
), moved AS (
    UPDATE chain_heads SET head_seq = $9, head_hash = $10
    WHERE host_id = $1 AND EXISTS (SELECT 1 FROM extends)
    RETURNING 1
)
SELECT epoch, head_seq, head_hash, fork_seq, EXISTS (SELECT 1 FROM moved) FROM head";

/// The host's head, locked, for the general path.
const LOCK: &str = "SELECT epoch, head_seq, head_hash, fork_seq FROM chain_heads
                    WHERE host_id = $1 FOR UPDATE";

/// The chain rows of the alerts a plan stores, and the head moved past them.
const STORE_CHAIN: &str = "
WITH idx AS (
    INSERT INTO chain_index (host_id, epoch, seq, payload_hash, prev_hash, received_at)
    SELECT $1, $2, r.seq, r.payload_hash, r.prev_hash, $6
    FROM unnest($3::bigint[], $4::bytea[], $5::bytea[]) AS r(seq, payload_hash, prev_hash)
)
UPDATE chain_heads SET head_seq = $7, head_hash = $8, fork_seq = COALESCE(fork_seq, $9)
WHERE host_id = $1";

/// Commits a verified batch (ascending seqs, all of `auth`'s host).
pub async fn commit(
    pool: &Pool,
    auth: &HostAuth,
    batch: &[IncomingAlert],
    received_at: SystemTime,
) -> Result<Outcome, IngestError> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Err(IngestError::Db(DbError::Schema(
            "an empty batch reached commit".into(),
        )));
    };
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = if contiguous(batch) {
        let stmt = tx.prepare_cached(EXTEND).await?;
        let (seqs, hashes, prevs) = chain_columns(batch.iter());
        let row = tx
            .query_opt(
                &stmt,
                &[
                    &auth.host_id,
                    &auth.epoch,
                    &((first.seq - 1) as i64),
                    &first.prev.as_slice(),
                    &seqs,
                    &hashes,
                    &prevs,
                    &received_at,
                    &(last.seq as i64),
                    &last.hash.as_slice(),
                ],
            )
            .await?
            .ok_or(IngestError::KeyReset)?;
        if row.get::<_, bool>(4) {
            copy_alerts(&tx, auth, auth.epoch, batch.iter(), received_at).await?;
            tx.commit().await?;
            return Ok(Outcome {
                head_seq: last.seq,
                head_hash: last.hash,
                stored: batch.len(),
                duplicates: 0,
                fork: None,
            });
        }
        row
    } else {
        let stmt = tx.prepare_cached(LOCK).await?;
        tx.query_opt(&stmt, &[&auth.host_id])
            .await?
            .ok_or(IngestError::KeyReset)?
    };
    let epoch: i32 = row.get(0);
    if epoch != auth.epoch {
        return Err(IngestError::KeyReset);
    }
    let head_seq = row.get::<_, i64>(1) as u64;
    let head_hash = hash32(row.get(2));
    let forked_before = row.get::<_, Option<i64>>(3).is_some();

    let (lo, hi) = (first.seq, last.seq);
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
        store(&tx, auth, epoch, batch, &plan, received_at, fork_seq).await?;
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

/// Whether the batch is one unbroken run of the chain (each seq one more than the last, each
/// `prev` the hash of the one before): then extending the head is all it can do.
fn contiguous(batch: &[IncomingAlert]) -> bool {
    batch
        .windows(2)
        .all(|w| w[1].seq == w[0].seq + 1 && w[1].prev == w[0].hash)
}

/// The `chain_index` columns of `rows`, as arrays.
fn chain_columns<'a>(
    rows: impl Iterator<Item = &'a IncomingAlert>,
) -> (Vec<i64>, Vec<&'a [u8]>, Vec<&'a [u8]>) {
    let mut seqs = Vec::new();
    let mut hashes = Vec::new();
    let mut prevs = Vec::new();
    for a in rows {
        seqs.push(a.seq as i64);
        hashes.push(a.hash.as_slice());
        prevs.push(a.prev.as_slice());
    }
    (seqs, hashes, prevs)
}

/// Sends the alert rows with `COPY … FROM STDIN (FORMAT binary)` in one message.
async fn copy_alerts<'a>(
    tx: &deadpool_postgres::Transaction<'_>,
    auth: &HostAuth,
    epoch: i32,
    rows: impl ExactSizeIterator<Item = &'a IncomingAlert>,
    received_at: SystemTime,
) -> Result<(), IngestError> {
    let data = alert_rows(&auth.host_id, epoch, auth.key.key_id(), received_at, rows)
        .map_err(|e| IngestError::Db(DbError::Schema(e.to_string())))?;
    let stmt = tx.prepare_cached(COPY_ALERTS).await?;
    let mut sink = std::pin::pin!(tx.copy_in::<_, bytes::Bytes>(&stmt).await?);
    sink.send(data).await?;
    sink.as_mut().finish().await?;
    Ok(())
}

/// Stores what the plan keeps: the chain rows and the moved head, then the alerts.
async fn store(
    tx: &deadpool_postgres::Transaction<'_>,
    auth: &HostAuth,
    epoch: i32,
    batch: &[IncomingAlert],
    plan: &Plan,
    received_at: SystemTime,
    fork_seq: Option<i64>,
) -> Result<(), IngestError> {
    let rows = || plan.store.iter().map(|&i| &batch[i]);
    let (seqs, hashes, prevs) = chain_columns(rows());
    let stmt = tx.prepare_cached(STORE_CHAIN).await?;
    tx.execute(
        &stmt,
        &[
            &auth.host_id,
            &epoch,
            &seqs,
            &hashes,
            &prevs,
            &received_at,
            &(plan.head.0 as i64),
            &plan.head.1.as_slice(),
            &fork_seq,
        ],
    )
    .await?;
    copy_alerts(tx, auth, epoch, rows(), received_at).await
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
