//! `run` and `migrate`.

use std::sync::Arc;
use std::time::SystemTime;

use super::Failure;
use crate::config::{Config, Transport};
use crate::db;
use crate::http::{self, AppState};
use crate::policy_key::PolicyKey;

pub async fn migrate(config: Config) -> Result<(), Failure> {
    let pool = super::pool(&config)?;
    let applied = db::migrate::run(&pool).await?;
    db::partitions::ensure(&pool, SystemTime::now()).await?;
    if applied.is_empty() {
        eprintln!("nightjar-server: the schema is up to date");
    } else {
        eprintln!("nightjar-server: applied migrations {applied:?}");
    }
    Ok(())
}

pub async fn run(config: Config) -> Result<(), Failure> {
    init_logging();
    let pool = db::pool(&config, config.db_pool_size)?;
    let applied = db::migrate::run(&pool).await?;
    if !applied.is_empty() {
        tracing::info!("applied migrations {applied:?}");
    }
    db::partitions::ensure(&pool, SystemTime::now()).await?;
    let policy_key = PolicyKey::load_or_create(&config.state_dir)?;
    tracing::info!(
        key_id = %policy_key.to_json()["key_id"].as_str().unwrap_or(""),
        "policy key loaded"
    );
    let listener = http::bind(&config).await?;
    let addr = listener.local_addr()?;
    let scheme = match config.transport {
        Transport::Tls { .. } => "https",
        Transport::InsecureHttp => "http",
    };
    let config = Arc::new(config);
    tokio::spawn(db::partitions::maintain(pool.clone()));
    tokio::spawn(crate::hosts::watch_silence(
        pool.clone(),
        config.silent_after,
    ));
    tokio::spawn(http::host_auth::prune_replays(pool.clone()));
    let state = AppState::new(pool, config.clone());
    // Tests and scripts read this line to find the port when `listen` ends in `:0`.
    eprintln!("nightjar-server: listening on {scheme}://{addr}");
    http::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopping");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NIGHTJAR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
