//! The analyst console: one page and its script and style, embedded in the binary (no
//! external assets; it works offline), served with a strict Content-Security-Policy. The page
//! reads the JSON API (`/v1/...`) with the session cookie.
//!
//! Sign-in posts an admin token from a one-field form; the server answers with an HttpOnly,
//! SameSite=Strict session cookie (Secure over TLS) that expires after `session_lifetime`.
//! Only the SHA-256 of the cookie is stored. Requests that change state with the cookie
//! (sign-out) must carry the session's CSRF token in `X-CSRF-Token` and come from this
//! origin (`Origin`/`Sec-Fetch-Site` checked); sign-in itself refuses cross-site posts.

use std::time::SystemTime;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::http::admin::{self, SESSION_COOKIE};
use crate::http::error::ApiError;
use crate::http::{AppState, body};
use crate::secret;
use crate::time::rfc3339;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");

/// The policy every response carries: only this origin's script, style and API; no frames,
/// no inline script, no plugins.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route(
            "/console/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/console/session", post(sign_in))
        .route("/console/signout", post(sign_out))
        .route("/v1/session", get(session_info))
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// Adds the security headers to every response of the server.
pub async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` on
    // form posts, and the origin check needs the real one.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A state-changing console request must come from this origin.
fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let forbidden = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!("cross-site request refused: {why}"),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(forbidden(&format!("Sec-Fetch-Site is {site}")));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin == "null" || origin_host != host {
            return Err(forbidden(&format!("Origin {origin:?} is not {host:?}")));
        }
    }
    Ok(())
}

fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

fn secure(state: &AppState) -> bool {
    matches!(state.config.transport, crate::config::Transport::Tls { .. })
}

async fn sign_in(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body_stream) = req.into_parts();
    same_origin(&parts.headers)?;
    let bytes = body::read(&parts.headers, body_stream, 8192).await?;
    let text = String::from_utf8_lossy(&bytes);
    let token = form_value(&text, "token").unwrap_or_default();
    let token = token.trim();
    let client = state.pool.get().await?;
    let row = if token.starts_with(secret::ADMIN_PREFIX) {
        client
            .query_opt(
                "SELECT id FROM admin_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                &[&secret::hash(token)],
            )
            .await?
    } else {
        None
    };
    let Some(row) = row else {
        tracing::warn!("console sign-in refused: wrong admin token");
        return Ok(Redirect::to("/console/?signin=refused").into_response());
    };
    let admin_id: i64 = row.get(0);
    let session = secret::generate(secret::SESSION_PREFIX).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the random source failed",
        )
    })?;
    let csrf = secret::generate("").map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the random source failed",
        )
    })?;
    let lifetime = state.config.session_lifetime;
    let expires = SystemTime::now() + lifetime;
    client
        .execute(
            "INSERT INTO admin_sessions (session_hash, admin_token_id, csrf_token, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[&secret::hash(&session), &admin_id, &csrf, &expires],
        )
        .await?;
    client
        .execute("DELETE FROM admin_sessions WHERE expires_at < now()", &[])
        .await?;
    let mut response = Redirect::to("/console/").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&session, lifetime.as_secs(), secure(&state)),
    );
    Ok(response)
}

async fn sign_out(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    same_origin(&parts.headers)?;
    admin::authenticate(&state, &Method::POST, &parts.headers).await?;
    if let Some(session) = admin::cookie(&parts.headers, SESSION_COOKIE) {
        let client = state.pool.get().await?;
        client
            .execute(
                "DELETE FROM admin_sessions WHERE session_hash = $1",
                &[&secret::hash(session)],
            )
            .await?;
    }
    let mut response = (StatusCode::OK, axum::Json(json!({"signed_out": true}))).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie("", 0, secure(&state)));
    Ok(response)
}

/// `GET /v1/session`: who is signed in, the CSRF token for state-changing requests, and when
/// the session ends.
async fn session_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Not signed in at all is an answer, not an error (the console asks on every load).
    if headers.get(header::AUTHORIZATION).is_none()
        && admin::cookie(&headers, SESSION_COOKIE).is_none()
    {
        return Ok(axum::Json(json!({"auth": null})).into_response());
    }
    let admin = match admin::authenticate(&state, &Method::GET, &headers).await {
        Ok(a) => a,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            return Ok(axum::Json(json!({"auth": null, "reason": e.message()})).into_response());
        }
        Err(e) => return Err(e),
    };
    let expires = match admin::cookie(&headers, SESSION_COOKIE) {
        Some(session) => {
            let client = state.pool.get().await?;
            client
                .query_opt(
                    "SELECT expires_at FROM admin_sessions WHERE session_hash = $1",
                    &[&secret::hash(session)],
                )
                .await?
                .map(|r| rfc3339(r.get::<_, SystemTime>(0)))
        }
        None => None,
    };
    Ok(axum::Json(json!({
        "auth": if admin.csrf.is_some() { "session" } else { "bearer" },
        "csrf": admin.csrf,
        "expires_at": expires,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_decoded() {
        assert_eq!(
            form_value("a=1&token=nja_x%2By+z", "token").as_deref(),
            Some("nja_x+y z")
        );
        assert_eq!(form_value("token=%zz%4", "token").as_deref(), Some("%zz%4"));
        assert_eq!(form_value("x=1", "token"), None);
    }
}
