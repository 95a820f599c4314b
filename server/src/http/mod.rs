//! The HTTP(S) front: routes, TLS, connection handling.
//!
//! - [`host_auth`]: host request signatures; [`admin`]: admin tokens and console sessions;
//! - [`enroll`], [`alerts`], [`heartbeat`]: the agent protocol;
//! - [`api`]: the admin JSON API; [`body`], [`error`]: bounded bodies and error answers.

pub mod admin;
pub mod alerts;
pub mod api;
pub mod body;
pub mod enroll;
pub mod error;
pub mod heartbeat;
pub mod host_auth;
pub mod key_cache;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use deadpool_postgres::Pool;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::{Config, Transport};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    pub keys: Arc<key_cache::KeyCache>,
    /// Bounds the CPU-bound work (decoding and verifying batches) to the cores there are, so
    /// a thousand concurrent uploads queue instead of each holding a thread and its memory.
    pub cpu: Arc<tokio::sync::Semaphore>,
    /// Bounds the uploads whose bodies are in memory at once ([`INGEST_SLOTS`]): the rest wait
    /// unread in their connections, so memory stays flat however many hosts post at once.
    pub ingest: Arc<tokio::sync::Semaphore>,
    /// Writes heartbeats that arrive together in one transaction.
    pub heartbeats: crate::heartbeats::HeartbeatWriter,
}

/// Uploads read and processed at once (each at most `max_body_bytes`; a few times the
/// database pool, so the pool stays busy).
pub const INGEST_SLOTS: usize = 48;

impl AppState {
    /// Must be called inside the runtime (it starts the heartbeat writer).
    pub fn new(pool: Pool, config: Arc<Config>) -> AppState {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AppState {
            heartbeats: crate::heartbeats::HeartbeatWriter::start(pool.clone()),
            pool,
            config,
            keys: Arc::default(),
            cpu: Arc::new(tokio::sync::Semaphore::new(cores)),
            ingest: Arc::new(tokio::sync::Semaphore::new(INGEST_SLOTS)),
        }
    }
}

/// The most connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16_384;
/// How long a client may take to send its request head, and to finish the TLS handshake.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// Every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/enroll", post(enroll::enroll))
        .route("/v1/alerts", post(alerts::ingest).get(api::list_alerts))
        .route("/v1/heartbeat", post(heartbeat::heartbeat))
        .route("/v1/policy", get(api::policy))
        .route("/v1/hosts", get(api::list_hosts))
        .route("/v1/hosts/{host_id}", get(api::get_host))
        .route("/v1/alerts/counts", get(api::alert_counts))
        .route("/v1/alerts/{host_id}/{seq}", get(api::get_alert))
        .route("/v1/integrity", get(api::list_integrity))
        .route("/v1/stats", get(api::stats))
        .route("/v1/policies", get(api::list_policies))
        .route("/v1/export/elastic-bulk", get(api::export_elastic))
        .merge(crate::console::routes())
        .fallback(|| async {
            error::ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such endpoint")
        })
        .with_state(state)
        .layer(axum::middleware::map_response(
            crate::console::security_headers,
        ))
}

/// Why the server could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Tls { path: String, reason: String },
}

/// Loads the certificate chain and key for TLS.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::ServerConfig, ServeError> {
    let tls_err = |path: &std::path::Path, reason: String| ServeError::Tls {
        path: path.display().to_string(),
        reason,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| tls_err(cert, e.to_string()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file".into()));
    }
    let key_pem = std::fs::read(key).map_err(|e| tls_err(key, e.to_string()))?;
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| tls_err(key, format!("not a PEM private key: {e}")))?
        .ok_or_else(|| tls_err(key, "no private key in the file".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| tls_err(key, format!("does not match the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The listen backlog: a fleet reconnecting at once (after a server restart) should queue,
/// not be refused.
const BACKLOG: u32 = 4096;

/// Binds `config.listen` (or fails naming it).
pub async fn bind(config: &Config) -> Result<TcpListener, ServeError> {
    let addr = config.listen;
    let err = |source| ServeError::Bind { addr, source };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(BACKLOG).map_err(err)
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let tls = match &state.config.transport {
        Transport::Tls { cert, key } => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            tls_config(cert, key)?,
        ))),
        Transport::InsecureHttp => None,
    };
    let app = router(state);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = &mut shutdown => return Ok(()),
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .keep_alive(true);
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HEAD_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => http.serve_connection(TokioIo::new(s), service).await,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, "TLS handshake: {e}");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => http.serve_connection(TokioIo::new(stream), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "connection: {e}");
            }
        });
    }
}
