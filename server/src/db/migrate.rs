//! Versioned schema migrations, embedded in the binary and tracked in `schema_migrations`.
//!
//! Each migration runs in its own transaction under an advisory lock, so several replicas
//! starting at once apply each migration exactly once. A database with a migration this
//! binary does not know (a newer server ran) is refused rather than guessed at.

use deadpool_postgres::Pool;

use super::DbError;

/// (version, name, SQL), in order.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "fleet", include_str!("../../migrations/0001_fleet.sql")),
    (
        2,
        "ingest_cost",
        include_str!("../../migrations/0002_ingest_cost.sql"),
    ),
    (
        3,
        "policy_summary",
        include_str!("../../migrations/0003_policy_summary.sql"),
    ),
    (
        4,
        "payload_from_envelope",
        include_str!("../../migrations/0004_payload_from_envelope.sql"),
    ),
    (
        5,
        "alerts_view",
        include_str!("../../migrations/0005_alerts_view.sql"),
    ),
    (
        6,
        "store_recovery",
        include_str!("../../migrations/0006_store_recovery.sql"),
    ),
];

/// An arbitrary constant: the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x6e6a_6d69_6772_6174;

/// Applies every migration not applied yet; returns the versions applied now.
pub async fn run(pool: &Pool) -> Result<Vec<i32>, DbError> {
    let mut client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    integer PRIMARY KEY,
                 name       text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .or_else(|e| {
            // Two replicas creating the table at once: the loser sees a unique violation.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    let mut applied_now = Vec::new();
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let done: Vec<i32> = tx
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(newer) = done.iter().find(|v| **v > known) {
        return Err(DbError::Schema(format!(
            "the database has schema migration {newer}, newer than this server knows ({known}); \
             run the newer nightjar-server"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| {
            DbError::Schema(format!("migration {version} ({name}): {}", pg_message(&e)))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        applied_now.push(*version);
    }
    tx.commit().await?;
    Ok(applied_now)
}

/// The server's message of a database error (the driver's `Display` hides it).
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}
