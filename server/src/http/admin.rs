//! Admin authentication for the JSON API and the console: `Authorization: Bearer <admin
//! token>`, or the console's session cookie. A host's request signature never opens it, nor
//! does an enrolment token.

use axum::http::{HeaderMap, Method, header};

use super::AppState;
use super::error::ApiError;
use crate::secret;

/// The console's session cookie.
pub const SESSION_COOKIE: &str = "nightjar_session";

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct Admin {
    pub token_id: i64,
    /// The session's CSRF token when signed in through the console.
    pub csrf: Option<String>,
}

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Checks an admin bearer token or console session. Cookie-authenticated requests that change
/// state must also carry the session's CSRF token (see `super::console`).
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Admin, ApiError> {
    let client = state.pool.get().await?;
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(secret::ADMIN_PREFIX))
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization must be `Bearer <admin token>`")
            })?;
        let stmt = client
            .prepare_cached(
                "SELECT id FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .await?;
        let row = client
            .query_opt(&stmt, &[&secret::hash(token)])
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked admin token"))?;
        return Ok(Admin {
            token_id: row.get(0),
            csrf: None,
        });
    }
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        let stmt = client
            .prepare_cached(
                "SELECT s.admin_token_id, s.csrf_token FROM admin_sessions s
                 JOIN admin_tokens t ON t.id = s.admin_token_id
                 WHERE s.session_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL",
            )
            .await?;
        if let Some(row) = client.query_opt(&stmt, &[&secret::hash(session)]).await? {
            let csrf: String = row.get(1);
            if !matches!(*method, Method::GET | Method::HEAD) {
                let sent = headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "missing or wrong CSRF token",
                    ));
                }
            }
            return Ok(Admin {
                token_id: row.get(0),
                csrf: Some(csrf),
            });
        }
        return Err(ApiError::unauthorized("session expired; sign in again"));
    }
    Err(ApiError::unauthorized(
        "admin token required (Authorization: Bearer <admin token>)",
    ))
}

/// Compares secrets without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
