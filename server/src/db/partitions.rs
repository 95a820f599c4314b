//! Monthly partitions of `alert_rows` (the table under the `alerts` view), created ahead of
//! time (this month and the next two) at start and daily. Rows outside every monthly partition land in `alerts_default`, so an alert
//! is never refused for its time; a month whose rows already sit in the default partition is
//! left there (PostgreSQL cannot create a partition over rows the default holds). Each keeps
//! rows up to 8 KB whole (`toast_tuple_target`): an alert's envelope stays in its row.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;

use super::DbError;

/// Creates the missing monthly partitions around `now`; returns the names created.
pub async fn ensure(pool: &Pool, now: SystemTime) -> Result<Vec<String>, DbError> {
    let client = pool.get().await?;
    let (mut year, mut month) = year_month(now);
    let mut created = Vec::new();
    for _ in 0..3 {
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        let name = format!("alerts_{year:04}_{month:02}");
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF alert_rows \
             FOR VALUES FROM ('{year:04}-{month:02}-01 00:00:00+00') TO ('{ny:04}-{nm:02}-01 00:00:00+00') \
             WITH (toast_tuple_target = 8160)"
        );
        match client.batch_execute(&sql).await {
            Ok(()) => created.push(name),
            Err(e) => {
                let msg = super::migrate::pg_message(&e);
                // Another replica made it at the same moment, or the default partition holds
                // rows of that month: neither stops the server.
                tracing::warn!(partition = %name, "alert partition not created: {msg}");
            }
        }
        (year, month) = (ny, nm);
    }
    Ok(created)
}

/// Runs [`ensure`] now and then once a day.
pub async fn maintain(pool: Pool) {
    loop {
        if let Err(e) = ensure(&pool, SystemTime::now()).await {
            tracing::warn!("alert partitions: {e}");
        }
        tokio::time::sleep(Duration::from_secs(86_400)).await;
    }
}

/// The UTC (year, month) of a time.
fn year_month(t: SystemTime) -> (i64, u32) {
    let days = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let at = |s: u64| year_month(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), (1970, 1));
        assert_eq!(at(1_709_164_800), (2024, 2)); // 2024-02-29
        assert_eq!(at(1_709_251_200), (2024, 3)); // 2024-03-01
        assert_eq!(at(1_735_689_599), (2024, 12)); // 2024-12-31T23:59:59
    }
}
