//! Error answers: a status and a JSON body `{"error": "...", ...}` that names what was wrong
//! (the line of a batch, the header, the key), never a secret.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::db::DbError;

/// A refused request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Map<String, Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let mut body = Map::new();
        body.insert("error".into(), Value::String(message.into()));
        ApiError { status, body }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// A refusal about one line of an NDJSON body (lines count from 1).
    pub fn at_line(status: StatusCode, line: usize, message: impl std::fmt::Display) -> ApiError {
        ApiError::new(status, format!("line {line}: {message}")).with("line", json!(line))
    }

    /// Adds a field to the answer.
    pub fn with(mut self, key: &str, value: Value) -> ApiError {
        self.body.insert(key.into(), value);
        self
    }

    /// The error message.
    pub fn message(&self) -> &str {
        self.body.get("error").and_then(Value::as_str).unwrap_or("")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.body.get("retry_after").and_then(Value::as_u64);
        let mut response = (self.status, axum::Json(Value::Object(self.body))).into_response();
        if let Some(secs) =
            retry.and_then(|s| axum::http::HeaderValue::from_str(&s.to_string()).ok())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs);
        }
        response
    }
}

impl From<DbError> for ApiError {
    /// The database is unreachable or failed: the client should retry later (503), and the
    /// cause goes to the server's log only.
    fn from(e: DbError) -> ApiError {
        tracing::error!("{e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server's database is unavailable; retry later",
        )
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> ApiError {
        ApiError::from(DbError::from(e))
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    /// Every connection busy for the whole wait: the server is saturated, not broken. 503
    /// with `Retry-After`, which agents honour with backoff.
    fn from(e: deadpool_postgres::PoolError) -> ApiError {
        if matches!(e, deadpool_postgres::PoolError::Timeout(_)) {
            tracing::warn!("every database connection stayed busy: shedding a request");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy; retry later",
            )
            .with("retry_after", json!(1));
        }
        ApiError::from(DbError::from(e))
    }
}
