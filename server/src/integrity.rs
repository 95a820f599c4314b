//! Integrity events: every gap, fork, rollback, bad signature, reset and silence, by host
//! and time (DESIGN "Central server"), and each repair of a host's damaged alert store that
//! its heartbeat reports. Recorded inside the transaction that found them.

use std::time::SystemTime;

use deadpool_postgres::GenericClient;
use serde_json::{Value, json};

use crate::db::DbError;
use crate::time::rfc3339;

/// The kinds DESIGN lists, and `store_recovery`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gap,
    Fork,
    Rollback,
    BadSignature,
    Reset,
    Silent,
    /// The host's heartbeat reports that its alert store was damaged and repaired
    /// (`store_recovery`: quarantined, index rebuilt, records skipped); recorded once per
    /// repair, its detail the host's own sentence.
    StoreRecovery,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gap => "gap",
            Kind::Fork => "fork",
            Kind::Rollback => "rollback",
            Kind::BadSignature => "bad_signature",
            Kind::Reset => "reset",
            Kind::Silent => "silent",
            Kind::StoreRecovery => "store_recovery",
        }
    }
}

/// Records an event; returns its id.
pub async fn record(
    client: &impl GenericClient,
    host_id: &str,
    epoch: i32,
    kind: Kind,
    seqs: Option<(i64, i64)>,
    detail: &str,
) -> Result<i64, DbError> {
    let stmt = client
        .prepare_cached(
            "INSERT INTO integrity_events (host_id, epoch, kind, seq_from, seq_to, detail)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .await?;
    let (from, to) = seqs.map_or((None, None), |(a, b)| (Some(a), Some(b)));
    let row = client
        .query_one(
            &stmt,
            &[&host_id, &epoch, &kind.as_str(), &from, &to, &detail],
        )
        .await?;
    Ok(row.get(0))
}

/// One recorded event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub host_id: String,
    pub epoch: i32,
    pub kind: String,
    pub at: SystemTime,
    pub seq_from: Option<i64>,
    pub seq_to: Option<i64>,
    pub detail: String,
    pub closed_at: Option<SystemTime>,
}

impl Event {
    /// The `integrity list --json` line: `host_id`, `kind`, `at`, the seqs involved.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "host_id": self.host_id,
            "epoch": self.epoch,
            "kind": self.kind,
            "at": rfc3339(self.at),
            "seq_from": self.seq_from,
            "seq_to": self.seq_to,
            "detail": self.detail,
            "closed_at": self.closed_at.map(rfc3339),
        })
    }
}

/// Events newest first, of one host or all, with ids below `before` (a cursor), at most
/// `limit`.
pub async fn list(
    client: &impl GenericClient,
    host: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<Event>, DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, host_id, epoch, kind, at, seq_from, seq_to, detail, closed_at
             FROM integrity_events
             WHERE ($1::text IS NULL OR host_id = $1) AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
        )
        .await?;
    let rows = client.query(&stmt, &[&host, &before, &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| Event {
            id: r.get(0),
            host_id: r.get(1),
            epoch: r.get(2),
            kind: r.get(3),
            at: r.get(4),
            seq_from: r.get(5),
            seq_to: r.get(6),
            detail: r.get(7),
            closed_at: r.get(8),
        })
        .collect())
}
