//! The fleet's hosts: their status as the console and `hosts list` show it, silence
//! detection, and `hosts reset`.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool};
use serde_json::{Value, json};

use crate::db::DbError;
use crate::integrity::{self, Kind};
use crate::time::rfc3339;

/// A host row with its chain status.
#[derive(Debug, Clone)]
pub struct Host {
    pub host_id: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub key_id: Option<String>,
    pub epoch: i32,
    pub enrolled_at: SystemTime,
    pub last_seen: Option<SystemTime>,
    pub chain_head_seq: i64,
    pub reported_head_seq: Option<i64>,
    pub status: String,
    pub events_dropped: Option<i64>,
    pub policy_version: Option<i64>,
    pub open_gaps: i64,
    pub last_status: Option<Value>,
}

impl Host {
    /// The `hosts list --json` line.
    pub fn to_json(&self) -> Value {
        json!({
            "host_id": self.host_id,
            "hostname": self.hostname,
            "os": self.os,
            "agent_version": self.agent_version,
            "key_id": self.key_id,
            "epoch": self.epoch,
            "enrolled_at": rfc3339(self.enrolled_at),
            "last_seen": self.last_seen.map(rfc3339),
            "chain_head_seq": self.chain_head_seq,
            "reported_head_seq": self.reported_head_seq,
            "status": self.status,
            "open_gaps": self.open_gaps,
            "events_dropped": self.events_dropped,
            "policy_version": self.policy_version,
        })
    }
}

/// The status, worst first: `fork` (until reset), `rollback` (until the host reports a head
/// at or past the server's), `gap` (while a range is missing), `silent` (no heartbeat within
/// `silent_after`), `pending` (the host reports alerts the server has not received), `ok`.
const STATUS_SQL: &str = "
CASE WHEN c.fork_seq IS NOT NULL THEN 'fork'
     WHEN c.rollback_seq IS NOT NULL THEN 'rollback'
     WHEN g.open_gaps > 0 THEN 'gap'
     WHEN COALESCE(h.last_seen, h.enrolled_at) < now() - make_interval(secs => $1) THEN 'silent'
     WHEN h.reported_head_seq > c.head_seq THEN 'pending'
     ELSE 'ok' END";

fn select_hosts(filter: &str) -> String {
    format!(
        "SELECT h.host_id, h.hostname, h.os, h.agent_version, h.key_id, h.epoch, h.enrolled_at,
                h.last_seen, c.head_seq, h.reported_head_seq, {STATUS_SQL}, h.events_dropped,
                h.policy_version, g.open_gaps, h.last_status
         FROM hosts h JOIN chain_heads c USING (host_id)
         CROSS JOIN LATERAL (SELECT count(*) AS open_gaps FROM chain_gaps x
                             WHERE x.host_id = h.host_id AND x.epoch = h.epoch) g
         {filter}"
    )
}

fn host_from_row(r: &tokio_postgres::Row) -> Host {
    Host {
        host_id: r.get(0),
        hostname: r.get(1),
        os: r.get(2),
        agent_version: r.get(3),
        key_id: r.get(4),
        epoch: r.get(5),
        enrolled_at: r.get(6),
        last_seen: r.get(7),
        chain_head_seq: r.get(8),
        reported_head_seq: r.get(9),
        status: r.get(10),
        events_dropped: r.get(11),
        policy_version: r.get(12),
        open_gaps: r.get(13),
        last_status: r.get(14),
    }
}

/// Hosts ordered by host id, after `after` (a cursor), at most `limit`.
pub async fn list(
    client: &impl GenericClient,
    silent_after: Duration,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Host>, DbError> {
    let sql =
        select_hosts("WHERE ($2::text IS NULL OR h.host_id > $2) ORDER BY h.host_id LIMIT $3");
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&stmt, &[&silent_after.as_secs_f64(), &after, &limit])
        .await?;
    Ok(rows.iter().map(host_from_row).collect())
}

/// One host.
pub async fn get(
    client: &impl GenericClient,
    silent_after: Duration,
    host_id: &str,
) -> Result<Option<Host>, DbError> {
    let sql = select_hosts("WHERE h.host_id = $2 AND $3::bigint IS NOT NULL");
    let stmt = client.prepare_cached(&sql).await?;
    let row = client
        .query_opt(&stmt, &[&silent_after.as_secs_f64(), &host_id, &1i64])
        .await?;
    Ok(row.as_ref().map(host_from_row))
}

/// Counts of hosts per status (the console's chart).
pub async fn status_counts(
    client: &impl GenericClient,
    silent_after: Duration,
) -> Result<Vec<(String, i64)>, DbError> {
    let sql = format!(
        "SELECT s, count(*) FROM (
             SELECT {STATUS_SQL} AS s
             FROM hosts h JOIN chain_heads c USING (host_id)
             CROSS JOIN LATERAL (SELECT count(*) AS open_gaps FROM chain_gaps x
                                 WHERE x.host_id = h.host_id AND x.epoch = h.epoch) g
             WHERE $2::bigint IS NOT NULL) q
         GROUP BY s ORDER BY s"
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client
        .query(&stmt, &[&silent_after.as_secs_f64(), &1i64])
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Records a `silent` event for every host that has just gone silent (once per silence;
/// the next heartbeat clears it). Atomic, so several replicas record each silence once.
pub async fn mark_silent(pool: &Pool, silent_after: Duration) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "WITH s AS (
                 UPDATE hosts SET silent_since = now()
                 WHERE silent_since IS NULL
                   AND COALESCE(last_seen, enrolled_at) < now() - make_interval(secs => $1)
                 RETURNING host_id, epoch, last_seen)
             INSERT INTO integrity_events (host_id, epoch, kind, detail)
             SELECT host_id, epoch, 'silent',
                    CASE WHEN last_seen IS NULL THEN 'no heartbeat since enrolment'
                         ELSE 'no heartbeat since ' || to_char(last_seen AT TIME ZONE 'UTC',
                              'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') END
             FROM s",
            &[&silent_after.as_secs_f64()],
        )
        .await?;
    Ok(n)
}

/// Runs [`mark_silent`] every `silent_after / 4` (at least every 5 s, at most every minute).
pub async fn watch_silence(pool: Pool, silent_after: Duration) {
    let every = (silent_after / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        if let Err(e) = mark_silent(&pool, silent_after).await {
            tracing::warn!("silence check: {e}");
        }
        tokio::time::sleep(every).await;
    }
}

/// What `hosts reset` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    pub old_key_id: Option<String>,
    pub new_epoch: i32,
}

/// Unpins a host's key so it can enrol again with a new one (a reinstalled host). Its stored
/// alerts stay, under their epoch; the next chain starts at seq 1 in a new epoch. Recorded
/// as a `reset` integrity event.
pub async fn reset(pool: &Pool, host_id: &str) -> Result<Option<Reset>, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT c.epoch, h.key_id FROM chain_heads c JOIN hosts h USING (host_id)
             WHERE host_id = $1 FOR UPDATE",
            &[&host_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let epoch: i32 = row.get(0);
    let old_key_id: Option<String> = row.get(1);
    let new_epoch = epoch + 1;
    tx.execute(
        "UPDATE hosts SET public_key = NULL, key_id = NULL, epoch = $2,
             reported_head_seq = NULL, reported_head_hash = NULL
         WHERE host_id = $1",
        &[&host_id, &new_epoch],
    )
    .await?;
    tx.execute(
        "UPDATE host_keys SET reset_at = now() WHERE host_id = $1 AND epoch = $2",
        &[&host_id, &epoch],
    )
    .await?;
    tx.execute(
        "UPDATE chain_heads SET epoch = $2, head_seq = 0, head_hash = $3, fork_seq = NULL,
             rollback_seq = NULL
         WHERE host_id = $1",
        &[&host_id, &new_epoch, &[0u8; 32].as_slice()],
    )
    .await?;
    tx.execute(
        "UPDATE integrity_events e SET closed_at = now()
         WHERE e.host_id = $1 AND e.kind = 'gap' AND e.closed_at IS NULL",
        &[&host_id],
    )
    .await?;
    tx.execute("DELETE FROM chain_gaps WHERE host_id = $1", &[&host_id])
        .await?;
    let detail = match &old_key_id {
        Some(k) => format!("key {k} unpinned by an admin; epoch {epoch} closed"),
        None => format!("reset again (no key pinned); epoch {epoch} closed"),
    };
    integrity::record(&tx, host_id, epoch, Kind::Reset, None, &detail).await?;
    tx.commit().await?;
    Ok(Some(Reset {
        old_key_id,
        new_epoch,
    }))
}
