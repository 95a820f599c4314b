//! Recording heartbeats. Each accepted heartbeat leaves its signature in `request_replay`
//! (replays are refused), updates its host's row (last seen, status counters, reported chain
//! head), and needs the server's view of that host's chain for its answer.
//!
//! Written one by one, a heartbeat is a tiny durable transaction whose cost is its commit (a
//! WAL flush, milliseconds on a busy disk), and the pool's connections bound how many commit
//! at once. So heartbeats that arrive together are written together: a dispatcher hands every
//! heartbeat waiting to one of a few concurrent writers, which records them all in one
//! statement and one commit and answers each. A heartbeat arriving alone is written at once
//! (no timer, no added latency); under load the groups grow by themselves, up to
//! [`MAX_GROUP`]. Every heartbeat is still committed before it is answered.
//!
//! A group fails as a whole only for a retryable reason (a deadlock with another replica's
//! group, retried); any other error sends each heartbeat of the group through alone, so a
//! heartbeat the database refuses fails by itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::types::Json;

use crate::db::DbError;

/// The most heartbeats written in one statement.
pub const MAX_GROUP: usize = 256;
/// Groups written at once (each holds one pool connection while it commits).
pub const WRITERS: usize = 4;
/// Heartbeats waiting for a writer, past which a request waits to be queued.
const QUEUE: usize = 8192;
/// Attempts at a group that hit a deadlock or serialization failure.
const ATTEMPTS: usize = 3;

/// One authenticated, well-formed heartbeat.
#[derive(Debug, Clone)]
pub struct Beat {
    pub host_id: String,
    pub epoch: i32,
    pub seq: i64,
    pub hash: [u8; 32],
    pub policy_version: Option<i64>,
    pub events_dropped: Option<i64>,
    /// The agent's status object, without U+0000 (which `jsonb` cannot hold).
    pub status: Value,
    /// SHA-256 of the request signature (the replay record).
    pub replay_hash: Vec<u8>,
}

/// What recording a heartbeat found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// The host has no chain head in this epoch (it was reset).
    Reset,
    /// The signature was used before: nothing was written.
    Replayed,
    /// Written; the server's side of the comparison.
    Written {
        /// The host row matched the epoch (else the host was reset meanwhile).
        updated: bool,
        server_head: i64,
        rollback_seq: Option<i64>,
        /// The payload hash the server stored for the reported seq, if any.
        stored_hash: Option<Vec<u8>>,
        latest_policy: Option<i64>,
    },
}

type Reply = oneshot::Sender<Result<Recorded, DbError>>;

/// The handle handlers record through.
#[derive(Debug, Clone)]
pub struct HeartbeatWriter {
    queue: mpsc::Sender<(Beat, Reply)>,
}

impl HeartbeatWriter {
    /// Starts the dispatcher on the current runtime.
    pub fn start(pool: Pool) -> HeartbeatWriter {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(dispatch(pool, rx));
        HeartbeatWriter { queue }
    }

    /// Records a heartbeat; answers once it is committed.
    pub async fn record(&self, beat: Beat) -> Result<Recorded, DbError> {
        let (tx, rx) = oneshot::channel();
        let stopped = || DbError::Schema("the heartbeat writer has stopped".into());
        self.queue.send((beat, tx)).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

async fn dispatch(pool: Pool, mut rx: mpsc::Receiver<(Beat, Reply)>) {
    let writers = Arc::new(Semaphore::new(WRITERS));
    loop {
        let Ok(permit) = writers.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            let _permit = permit;
            write_group(&pool, group).await;
        });
    }
}

/// Writes a group and answers every heartbeat in it.
async fn write_group(pool: &Pool, group: Vec<(Beat, Reply)>) {
    // The same signature twice in one group: the later one is a replay of the earlier.
    let mut seen = HashSet::new();
    let (mut group, repeats): (Vec<_>, Vec<_>) = group
        .into_iter()
        .partition(|(beat, _)| seen.insert(beat.replay_hash.clone()));
    for (_, reply) in repeats {
        let _ = reply.send(Ok(Recorded::Replayed));
    }
    let beats: Vec<&Beat> = group.iter().map(|(b, _)| b).collect();
    let mut result = write(pool, &beats).await;
    for attempt in 1..ATTEMPTS {
        match &result {
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(Duration::from_millis(10 * attempt as u64)).await;
                result = write(pool, &beats).await;
            }
            _ => break,
        }
    }
    match result {
        Ok(recorded) => {
            for ((_, reply), r) in group.into_iter().zip(recorded) {
                let _ = reply.send(Ok(r));
            }
        }
        Err(e) if group.len() == 1 => {
            let (_, reply) = group.pop().expect("one heartbeat");
            let _ = reply.send(Err(e));
        }
        Err(e) => {
            tracing::warn!(
                heartbeats = group.len(),
                "a group of heartbeats failed ({e}); writing them one by one"
            );
            for (beat, reply) in group {
                let r = write(pool, &[&beat]).await.map(|mut v| v.remove(0));
                let _ = reply.send(r);
            }
        }
    }
}

/// The group statement: replay records, host rows (the newest heartbeat of each host), and
/// the server's chain head and stored hash for every heartbeat, in input order.
const WRITE: &str = "
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bytea[], $5::bigint[],
                         $6::bigint[], $7::jsonb[], $8::bytea[]) WITH ORDINALITY
        AS i(host_id, epoch, seq, hash, policy_version, events_dropped, status, sig_hash, n)
), fresh AS (
    INSERT INTO request_replay (sig_hash) SELECT sig_hash FROM input
    ON CONFLICT DO NOTHING RETURNING sig_hash
), latest AS (
    SELECT DISTINCT ON (i.host_id) i.* FROM input i
    WHERE i.sig_hash IN (SELECT sig_hash FROM fresh)
    ORDER BY i.host_id, i.n DESC
), updated AS (
    UPDATE hosts h SET last_seen = now(), silent_since = NULL,
        reported_head_seq = l.seq, reported_head_hash = l.hash, policy_version = l.policy_version,
        events_dropped = COALESCE(l.events_dropped, h.events_dropped), last_status = l.status
    FROM latest l
    WHERE h.host_id = l.host_id AND h.epoch = l.epoch
    RETURNING h.host_id
)
SELECT i.sig_hash IN (SELECT sig_hash FROM fresh), i.host_id IN (SELECT host_id FROM updated),
       c.head_seq, c.rollback_seq, x.payload_hash, (SELECT max(version) FROM policies)
FROM input i
LEFT JOIN chain_heads c ON c.host_id = i.host_id AND c.epoch = i.epoch
LEFT JOIN chain_index x ON x.host_id = c.host_id AND x.epoch = c.epoch AND x.seq = i.seq
ORDER BY i.n";

async fn write(pool: &Pool, beats: &[&Beat]) -> Result<Vec<Recorded>, DbError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(WRITE).await?;
    let host_ids: Vec<&str> = beats.iter().map(|b| b.host_id.as_str()).collect();
    let epochs: Vec<i32> = beats.iter().map(|b| b.epoch).collect();
    let seqs: Vec<i64> = beats.iter().map(|b| b.seq).collect();
    let hashes: Vec<&[u8]> = beats.iter().map(|b| b.hash.as_slice()).collect();
    let policies: Vec<Option<i64>> = beats.iter().map(|b| b.policy_version).collect();
    let dropped: Vec<Option<i64>> = beats.iter().map(|b| b.events_dropped).collect();
    let statuses: Vec<Json<&Value>> = beats.iter().map(|b| Json(&b.status)).collect();
    let sigs: Vec<&[u8]> = beats.iter().map(|b| b.replay_hash.as_slice()).collect();
    let rows = client
        .query(
            &stmt,
            &[
                &host_ids, &epochs, &seqs, &hashes, &policies, &dropped, &statuses, &sigs,
            ],
        )
        .await?;
    if rows.len() != beats.len() {
        return Err(DbError::Schema(format!(
            "heartbeat group of {} answered {} rows",
            beats.len(),
            rows.len()
        )));
    }
    Ok(rows
        .iter()
        .map(|r| match r.get::<_, Option<i64>>(2) {
            None => Recorded::Reset,
            Some(_) if !r.get::<_, bool>(0) => Recorded::Replayed,
            Some(server_head) => Recorded::Written {
                updated: r.get(1),
                server_head,
                rollback_seq: r.get(3),
                stored_hash: r.get(4),
                latest_policy: r.get(5),
            },
        })
        .collect())
}
