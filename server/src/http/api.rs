//! The admin JSON API under `/v1/` (docs/api.md): hosts, alerts, an alert's detail with its
//! verification, integrity events, counts for charts. Paginated with opaque cursors.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::admin;
use super::error::ApiError;
use crate::alerts::{self, Cursor, Filter};
use crate::{hosts, integrity};

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

fn limit(n: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match n.unwrap_or(default) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::bad_request(format!(
            "limit: {n} is outside 1..=1000"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsQuery {
    after: Option<String>,
    limit: Option<i64>,
}

pub async fn list_hosts(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<HostsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let limit = limit(q.limit, 100)?;
    let client = state.pool.get().await?;
    let hosts = hosts::list(
        &client,
        state.config.silent_after,
        q.after.as_deref(),
        limit,
    )
    .await?;
    let next = (hosts.len() as i64 == limit)
        .then(|| hosts.last().map(|h| h.host_id.clone()))
        .flatten();
    Ok(Json(json!({
        "hosts": hosts.iter().map(hosts::Host::to_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

pub async fn get_host(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(host_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let client = state.pool.get().await?;
    let host = hosts::get(&client, state.config.silent_after, &host_id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no host {host_id:?}")))?;
    let mut v = host.to_json();
    v["last_status"] = host.last_status.clone().unwrap_or(Value::Null);
    Ok(Json(v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    pub host: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    /// A duration back from now (`24h`) or an RFC 3339 time.
    pub since: Option<String>,
    pub until: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub by: Option<String>,
}

/// A time parameter: RFC 3339, or a duration back from now.
pub fn time_param(name: &str, text: &str) -> Result<SystemTime, ApiError> {
    if let Some(t) = crate::time::parse_rfc3339(text) {
        return Ok(t);
    }
    crate::config::duration(text)
        .map(|d| SystemTime::now() - d.min(Duration::from_secs(100 * 365 * 86_400)))
        .map_err(|e| {
            ApiError::bad_request(format!("{name}: not an RFC 3339 time or a duration: {e}"))
        })
}

impl AlertsQuery {
    pub fn filter(&self) -> Result<Filter, ApiError> {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(Filter {
            host: nonempty(&self.host),
            rule: nonempty(&self.rule),
            severity: nonempty(&self.severity),
            since: nonempty(&self.since)
                .map(|s| time_param("since", &s))
                .transpose()?,
            until: nonempty(&self.until)
                .map(|s| time_param("until", &s))
                .transpose()?,
            text: nonempty(&self.q),
        })
    }

    pub fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        self.cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| {
                Cursor::decode(c)
                    .ok_or_else(|| ApiError::bad_request("cursor: not a cursor this server issued"))
            })
            .transpose()
    }
}

pub async fn list_alerts(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let filter = q.filter()?;
    let cursor = q.cursor()?;
    let limit = limit(q.limit, 50)?;
    let client = state.pool.get().await?;
    let (rows, next) = alerts::page(&client, &filter, cursor.as_ref(), limit).await?;
    Ok(Json(json!({
        "alerts": rows.iter().map(alerts::AlertRow::summary_json).collect::<Vec<_>>(),
        "next": next.map(|c| c.encode()),
    })))
}

pub async fn alert_counts(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let filter = q.filter()?;
    let by = q.by.as_deref().unwrap_or("rule_id");
    if !matches!(by, "rule_id" | "host_id" | "severity") {
        return Err(ApiError::bad_request(
            "by: one of rule_id, host_id, severity",
        ));
    }
    let client = state.pool.get().await?;
    let counts = alerts::counts(&client, &filter, by, limit(q.limit, 20)?).await?;
    Ok(Json(json!({
        "by": by,
        "counts": counts.iter().map(|(k, n)| json!({"key": k, "count": n})).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetailQuery {
    epoch: Option<i32>,
}

/// Re-verifies a stored alert now: the signature by the key pinned for its epoch, its seq,
/// and its link to the stored alert before it.
pub async fn verification(
    client: &impl deadpool_postgres::GenericClient,
    row: &alerts::AlertRow,
) -> Result<Value, crate::db::DbError> {
    let key_row = client
        .query_opt(
            "SELECT public_key FROM host_keys WHERE host_id = $1 AND epoch = $2",
            &[&row.host_id, &row.epoch],
        )
        .await?;
    let prev_row = client
        .query_opt(
            "SELECT payload_hash FROM chain_index WHERE host_id = $1 AND epoch = $2 AND seq = $3",
            &[&row.host_id, &row.epoch, &(row.seq - 1)],
        )
        .await?;
    let key = key_row
        .map(|r| r.get::<_, Vec<u8>>(0))
        .ok_or_else(|| "no key recorded for this epoch".to_string())
        .and_then(|k| nightjar_proto::verify::AlertKey::from_raw(&k).map_err(|e| e.to_string()));
    let result = key.and_then(|key| {
        let signed = key.open(&row.envelope).map_err(|e| e.to_string())?;
        key.verify(&signed).map_err(|e| e.to_string())?;
        let link = signed.link().map_err(|e| e.to_string())?;
        if link.seq as i64 != row.seq {
            return Err(format!(
                "nightjar.seq is {}, stored as seq {}",
                link.seq, row.seq
            ));
        }
        let prev_ok = match &prev_row {
            Some(r) => r.get::<_, Vec<u8>>(0) == link.prev,
            None if row.seq == 1 => link.prev == [0; 32],
            None => true,
        };
        if !prev_ok {
            return Err("nightjar.prev does not match the stored previous alert".into());
        }
        Ok((key.key_id().to_string(), prev_row.is_some() || row.seq == 1))
    });
    Ok(match result {
        Ok((key_id, linked)) => json!({
            "verified": true,
            "signature": "ok",
            "key_id": key_id,
            "chain": if linked { "linked to the previous alert" } else { "previous alert missing (gap)" },
        }),
        Err(reason) => json!({"verified": false, "reason": reason}),
    })
}

pub async fn get_alert(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path((host_id, seq)): Path<(String, i64)>,
    q: Result<Query<DetailQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let client = state.pool.get().await?;
    let epoch = match q.epoch {
        Some(e) => e,
        None => client
            .query_opt("SELECT epoch FROM hosts WHERE host_id = $1", &[&host_id])
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no host {host_id:?}")))?,
    };
    let row = alerts::get(&client, &host_id, epoch, seq)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no alert {host_id:?} seq {seq} (epoch {epoch})"),
            )
        })?;
    let (before, after) = alerts::neighbours(&client, &host_id, epoch, seq).await?;
    let verification = verification(&client, &row).await?;
    let payload = row.verified_payload().unwrap_or(Value::Null);
    let mut v = row.summary_json();
    v["payload"] = payload;
    v["envelope"] = Value::String(String::from_utf8_lossy(&row.envelope).into_owned());
    v["verification"] = verification;
    v["neighbours"] = json!({"previous": before, "next": after});
    Ok(Json(v))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityQuery {
    host: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn list_integrity(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<IntegrityQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let limit = limit(q.limit, 100)?;
    let client = state.pool.get().await?;
    let events = integrity::list(&client, q.host.as_deref(), q.before, limit).await?;
    let next = (events.len() as i64 == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(integrity::Event::to_json).collect::<Vec<_>>(),
        "next": next,
    })))
}

pub async fn stats(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<AlertsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let filter = q.filter()?;
    let client = state.pool.get().await?;
    let per_day = alerts::per_day(&client, &filter).await?;
    let top_rules = alerts::counts(&client, &filter, "rule_id", 10).await?;
    let statuses = hosts::status_counts(&client, state.config.silent_after).await?;
    Ok(Json(json!({
        "alerts_per_day": per_day.iter().map(|(d, s, n)| json!({"day": d, "severity": s, "count": n})).collect::<Vec<_>>(),
        "top_rules": top_rules.iter().map(|(k, n)| json!({"key": k, "count": n})).collect::<Vec<_>>(),
        "hosts_by_status": statuses.iter().map(|(k, n)| json!({"status": k, "count": n})).collect::<Vec<_>>(),
    })))
}

pub async fn policy(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let (parts, _) = req.into_parts();
    let auth =
        super::host_auth::authenticate(&state, &parts, b"", super::host_auth::Replay::Refuse)
            .await?;
    let have: Option<i64> = parts
        .uri
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("have=")))
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::bad_request("have: not a version number"))
        })
        .transpose()?;
    let client = state.pool.get().await?;
    let latest = crate::policy::latest(&client).await?;
    tracing::debug!(host = %auth.host_id, ?have, "policy request");
    match latest {
        None => Err(ApiError::new(StatusCode::NOT_FOUND, "no policy published")),
        Some((version, _)) if have == Some(version) => Ok(StatusCode::NO_CONTENT.into_response()),
        Some((_, envelope)) => Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            envelope,
        )
            .into_response()),
    }
}

/// `GET /v1/policies`: the published policy versions, newest first.
pub async fn list_policies(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    admin::authenticate(&state, &method, &headers).await?;
    let client = state.pool.get().await?;
    let list: Vec<Value> = crate::policy::list(&client, None, 1000)
        .await?
        .iter()
        .map(crate::policy::PolicyVersion::to_json)
        .collect();
    Ok(Json(json!({ "policies": list })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    since: Option<String>,
    index: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/export/elastic-bulk`: one page of `_bulk` NDJSON (the `X-Next-Cursor` header names
/// the next page), the API side of `export elastic-bulk`.
pub async fn export_elastic(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    admin::authenticate(&state, &method, &headers).await?;
    let q = query(q)?;
    let index = q
        .index
        .unwrap_or_else(|| crate::export::DEFAULT_INDEX.to_string());
    crate::export::check_index(&index).map_err(ApiError::bad_request)?;
    let filter = Filter {
        since: q
            .since
            .as_deref()
            .map(|s| time_param("since", s))
            .transpose()?,
        ..Filter::default()
    };
    let cursor = AlertsQuery {
        cursor: q.cursor,
        ..AlertsQuery::default()
    }
    .cursor()?;
    let client = state.pool.get().await?;
    let (rows, next) =
        alerts::page(&client, &filter, cursor.as_ref(), limit(q.limit, 500)?).await?;
    let mut body = String::new();
    for row in &rows {
        let (action, doc) = crate::export::bulk_lines(row, &index).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("host {} seq {}: {e}", row.host_id, row.seq),
            )
        })?;
        body.push_str(&action);
        body.push('\n');
        body.push_str(&doc);
        body.push('\n');
    }
    let mut response = (
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response();
    if let Some(c) = next.and_then(|c| axum::http::HeaderValue::from_str(&c.encode()).ok()) {
        response.headers_mut().insert("x-next-cursor", c);
    }
    Ok(response)
}
