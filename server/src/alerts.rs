//! Reading stored alerts: filtered pages newest first with a keyset cursor (index-using on a
//! million rows), one alert with its chain neighbours, and counts for the console.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deadpool_postgres::GenericClient;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;

use crate::db::DbError;
use crate::time::rfc3339;

/// Which alerts. Every filter given narrows; SQL is built from the filters present only, so
/// each shape gets a plan that uses its index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub host: Option<String>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// Case-insensitive substring of the payload JSON as signed (read out of the envelope).
    pub text: Option<String>,
}

/// A position in the newest-first order: (alert time, host, epoch, seq) of the last row seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time_us: i64,
    pub host_id: String,
    pub epoch: i32,
    pub seq: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD
            .encode(json!([self.time_us, self.host_id, self.epoch, self.seq]).to_string())
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let raw = URL_SAFE_NO_PAD.decode(text).ok()?;
        let v: Value = serde_json::from_slice(&raw).ok()?;
        Some(Cursor {
            time_us: v.get(0)?.as_i64()?,
            host_id: v.get(1)?.as_str()?.to_string(),
            epoch: i32::try_from(v.get(2)?.as_i64()?).ok()?,
            seq: v.get(3)?.as_i64()?,
        })
    }
}

/// One stored alert (the envelope only when asked for).
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub host_id: String,
    pub epoch: i32,
    pub seq: i64,
    pub received_at: SystemTime,
    pub alert_time: SystemTime,
    pub uuid: String,
    pub rule_id: String,
    pub rule_name: String,
    pub severity: String,
    pub key_id: String,
    pub envelope: Vec<u8>,
}

impl AlertRow {
    fn from_row(r: &tokio_postgres::Row) -> AlertRow {
        AlertRow {
            host_id: r.get(0),
            epoch: r.get(1),
            seq: r.get(2),
            received_at: r.get(3),
            alert_time: r.get(4),
            uuid: r.get(5),
            rule_id: r.get(6),
            rule_name: r.get(7),
            severity: r.get(8),
            key_id: r.get(9),
            envelope: r.get(10),
        }
    }

    pub fn cursor(&self) -> Cursor {
        Cursor {
            time_us: micros(self.alert_time),
            host_id: self.host_id.clone(),
            epoch: self.epoch,
            seq: self.seq,
        }
    }

    /// The payload as uploaded, with `nightjar.verified = true` (it was verified at ingest
    /// against the host's pinned key and chain).
    pub fn verified_payload(&self) -> Result<Value, String> {
        let (_, payload) =
            nightjar_proto::verify::open_envelope(&self.envelope).map_err(|e| e.to_string())?;
        let mut doc: Value =
            serde_json::from_slice(&payload).map_err(|e| format!("payload: {e}"))?;
        if let Some(nj) = doc.get_mut("nightjar").and_then(Value::as_object_mut) {
            nj.insert("verified".into(), Value::Bool(true));
        }
        Ok(doc)
    }

    /// The summary the API lists.
    pub fn summary_json(&self) -> Value {
        json!({
            "host_id": self.host_id,
            "epoch": self.epoch,
            "seq": self.seq,
            "uuid": self.uuid,
            "alert_time": rfc3339(self.alert_time),
            "received_at": rfc3339(self.received_at),
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "severity": self.severity,
            "key_id": self.key_id,
        })
    }
}

const COLUMNS: &str = "host_id, epoch, seq, received_at, alert_time, uuid, rule_id, rule_name, severity, key_id, envelope";

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

fn from_micros(us: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us.max(0) as u64)
}

/// Escapes `%`, `_` and `\` for LIKE.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// A WHERE clause and its parameters for `filter` (and `cursor`).
struct Where {
    sql: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    fn new(filter: &Filter, cursor: Option<&Cursor>) -> Where {
        let mut w = Where {
            sql: String::new(),
            params: Vec::new(),
        };
        if let Some(h) = &filter.host {
            w.push("host_id = $", Box::new(h.clone()));
        }
        if let Some(r) = &filter.rule {
            w.push("rule_id = $", Box::new(r.clone()));
        }
        if let Some(s) = &filter.severity {
            w.push("severity = $", Box::new(s.clone()));
        }
        if let Some(t) = filter.since {
            w.push("alert_time >= $", Box::new(t));
        }
        if let Some(t) = filter.until {
            w.push("alert_time < $", Box::new(t));
        }
        if let Some(t) = &filter.text {
            w.push(
                "alert_payload_text(envelope) ILIKE $",
                Box::new(like_pattern(t)),
            );
        }
        if let Some(c) = cursor {
            let n = w.params.len();
            w.clause(&format!(
                "(alert_time, host_id, epoch, seq) < (${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4
            ));
            w.params.push(Box::new(from_micros(c.time_us)));
            w.params.push(Box::new(c.host_id.clone()));
            w.params.push(Box::new(c.epoch));
            w.params.push(Box::new(c.seq));
        }
        w
    }

    fn clause(&mut self, sql: &str) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(sql);
    }

    fn push(&mut self, prefix: &str, value: Box<dyn ToSql + Sync + Send>) {
        self.params.push(value);
        let sql = format!("{prefix}{}", self.params.len());
        self.clause(&sql);
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// The SQL of a page (exposed so the bench can EXPLAIN it).
pub fn page_sql(filter: &Filter, cursor: Option<&Cursor>, limit: i64) -> (String, usize) {
    let w = Where::new(filter, cursor);
    (
        format!(
            "SELECT {COLUMNS} FROM alert_rows{} ORDER BY alert_time DESC, host_id DESC, epoch DESC, seq DESC LIMIT {}",
            w.sql,
            limit.clamp(1, 1000)
        ),
        w.params.len(),
    )
}

/// A page of alerts newest first and the cursor of the next page (None at the end).
pub async fn page(
    client: &impl GenericClient,
    filter: &Filter,
    cursor: Option<&Cursor>,
    limit: i64,
) -> Result<(Vec<AlertRow>, Option<Cursor>), DbError> {
    let limit = limit.clamp(1, 1000);
    let w = Where::new(filter, cursor);
    let sql = format!(
        "SELECT {COLUMNS} FROM alert_rows{} ORDER BY alert_time DESC, host_id DESC, epoch DESC, seq DESC LIMIT {}",
        w.sql,
        limit + 1
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &w.refs()).await?;
    let mut out: Vec<AlertRow> = rows.iter().map(AlertRow::from_row).collect();
    let next = if out.len() as i64 > limit {
        out.truncate(limit as usize);
        out.last().map(AlertRow::cursor)
    } else {
        None
    };
    Ok((out, next))
}

/// Alerts per `column` (`rule_id` or `host_id` or `severity`) under `filter`, largest first.
pub async fn counts(
    client: &impl GenericClient,
    filter: &Filter,
    column: &str,
    limit: i64,
) -> Result<Vec<(String, i64)>, DbError> {
    let column = match column {
        "rule_id" => "rule_id",
        "host_id" => "host_id",
        _ => "severity",
    };
    let w = Where::new(filter, None);
    let sql = format!(
        "SELECT {column}, count(*) FROM alert_rows{} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT {}",
        w.sql,
        limit.clamp(1, 1000)
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &w.refs()).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Alerts per day and severity under `filter` (the console's chart).
pub async fn per_day(
    client: &impl GenericClient,
    filter: &Filter,
) -> Result<Vec<(String, String, i64)>, DbError> {
    let w = Where::new(filter, None);
    let sql = format!(
        "SELECT to_char(date_trunc('day', alert_time AT TIME ZONE 'UTC'), 'YYYY-MM-DD'), severity,
                count(*)
         FROM alert_rows{} GROUP BY 1, 2 ORDER BY 1, 2",
        w.sql
    );
    let stmt = client.prepare_cached(&sql).await?;
    let rows = client.query(&stmt, &w.refs()).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// One alert by host, epoch and seq.
pub async fn get(
    client: &impl GenericClient,
    host_id: &str,
    epoch: i32,
    seq: i64,
) -> Result<Option<AlertRow>, DbError> {
    let sql =
        format!("SELECT {COLUMNS} FROM alert_rows WHERE host_id = $1 AND epoch = $2 AND seq = $3");
    let stmt = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&stmt, &[&host_id, &epoch, &seq]).await?;
    Ok(row.as_ref().map(AlertRow::from_row))
}

/// The stored seqs just before and after `seq` in its chain (the console's neighbours).
pub async fn neighbours(
    client: &impl GenericClient,
    host_id: &str,
    epoch: i32,
    seq: i64,
) -> Result<(Option<i64>, Option<i64>), DbError> {
    let stmt = client
        .prepare_cached(
            "SELECT (SELECT max(seq) FROM chain_index WHERE host_id = $1 AND epoch = $2 AND seq < $3),
                    (SELECT min(seq) FROM chain_index WHERE host_id = $1 AND epoch = $2 AND seq > $3)",
        )
        .await?;
    let row = client.query_one(&stmt, &[&host_id, &epoch, &seq]).await?;
    Ok((row.get(0), row.get(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_none() {
        let c = Cursor {
            time_us: 1_700_000_000_000_000,
            host_id: "h\"1".into(),
            epoch: 2,
            seq: 9,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("[1]")), None);
    }

    #[test]
    fn sql_has_only_the_filters_given() {
        let (sql, n) = page_sql(&Filter::default(), None, 50);
        assert!(!sql.contains("WHERE") && n == 0, "{sql}");
        let f = Filter {
            rule: Some("r".into()),
            text: Some("50%_off".into()),
            ..Filter::default()
        };
        let (sql, n) = page_sql(&f, None, 50);
        assert!(
            sql.contains("rule_id = $1 AND alert_payload_text(envelope) ILIKE $2"),
            "{sql}"
        );
        assert_eq!(n, 2);
        assert_eq!(like_pattern("50%_off"), "%50\\%\\_off%");
    }
}
