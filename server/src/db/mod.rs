//! PostgreSQL: the connection pool, the versioned schema migrations and the alert partitions.
//!
//! The server keeps no state of its own besides its policy key: everything else is here.

pub mod migrate;
pub mod partitions;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::config::Config;

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database pool: {0}")]
    Build(String),
    #[error("database: {0}")]
    Schema(String),
}

impl DbError {
    /// A serialization failure or deadlock: the transaction may simply be retried.
    pub fn is_retryable(&self) -> bool {
        let DbError::Postgres(e) = self else {
            return false;
        };
        matches!(
            e.code(),
            Some(&tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE)
                | Some(&tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
        )
    }

    /// A unique-key collision (two replicas inserting the same row at once).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Postgres(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION))
    }
}

/// A pool of `size` connections to `database_url`. Connections are made on first use, so
/// building the pool does not wait for the database.
pub fn pool(config: &Config, size: usize) -> Result<Pool, DbError> {
    let mut pg: tokio_postgres::Config = config
        .database_url
        .parse()
        .map_err(|e| DbError::Build(format!("database_url: {e}")))?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(10));
    }
    pg.application_name("nightjar-server");
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(30)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::Build(e.to_string()))
}
