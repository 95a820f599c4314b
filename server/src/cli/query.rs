//! `hosts list`, `alerts list`, `integrity list`: the whole result, page by page, so a big
//! fleet never sits in memory at once.

use std::io::Write as _;

use super::Failure;
use crate::alerts::{self, Filter};
use crate::config::{Config, duration};
use crate::time::rfc3339;
use crate::{hosts, integrity};

const PAGE: i64 = 1000;

fn out() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::new(std::io::stdout().lock())
}

pub async fn hosts_list(config: Config, json: bool) -> Result<(), Failure> {
    let pool = super::pool(&config)?;
    let client = pool.get().await?;
    let mut w = out();
    if !json {
        writeln!(
            w,
            "{:<36} {:<20} {:<9} {:>8} {:>8} {:<27}",
            "HOST", "HOSTNAME", "STATUS", "HEAD", "DROPPED", "LAST SEEN"
        )?;
    }
    let mut after: Option<String> = None;
    loop {
        let page = hosts::list(&client, config.silent_after, after.as_deref(), PAGE).await?;
        for h in &page {
            if json {
                writeln!(w, "{}", h.to_json())?;
            } else {
                writeln!(
                    w,
                    "{:<36} {:<20} {:<9} {:>8} {:>8} {:<27}",
                    h.host_id,
                    h.hostname,
                    h.status,
                    h.chain_head_seq,
                    h.events_dropped.map_or("-".into(), |n| n.to_string()),
                    h.last_seen.map_or("never".into(), rfc3339)
                )?;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
        after = page.last().map(|h| h.host_id.clone());
    }
    w.flush()?;
    Ok(())
}

pub async fn alerts_list(
    config: Config,
    host: Option<String>,
    rule: Option<String>,
    since: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let since = since
        .map(|s| duration(&s).map(|d| std::time::SystemTime::now() - d))
        .transpose()
        .map_err(|m| Failure {
            code: 2,
            message: format!("--since: {m}"),
        })?;
    let filter = Filter {
        host,
        rule,
        since,
        ..Filter::default()
    };
    let pool = super::pool(&config)?;
    let client = pool.get().await?;
    let mut w = out();
    if !json {
        writeln!(
            w,
            "{:<27} {:<30} {:>6} {:<8} RULE",
            "TIME", "HOST", "SEQ", "SEVERITY"
        )?;
    }
    let mut cursor = None;
    loop {
        let (rows, next) = alerts::page(&client, &filter, cursor.as_ref(), PAGE).await?;
        for a in &rows {
            if json {
                let doc = a.verified_payload().map_err(|e| {
                    format!("host {} seq {}: stored envelope: {e}", a.host_id, a.seq)
                })?;
                writeln!(w, "{doc}")?;
            } else {
                writeln!(
                    w,
                    "{:<27} {:<30} {:>6} {:<8} {}",
                    rfc3339(a.alert_time),
                    a.host_id,
                    a.seq,
                    a.severity,
                    a.rule_name
                )?;
            }
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    w.flush()?;
    Ok(())
}

pub async fn integrity_list(
    config: Config,
    host: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    let pool = super::pool(&config)?;
    let client = pool.get().await?;
    let mut w = out();
    if !json {
        writeln!(
            w,
            "{:<27} {:<30} {:<14} {:<15} DETAIL",
            "AT", "HOST", "KIND", "SEQS"
        )?;
    }
    let mut before = None;
    loop {
        let page = integrity::list(&client, host.as_deref(), before, PAGE).await?;
        for e in &page {
            if json {
                writeln!(w, "{}", e.to_json())?;
            } else {
                let seqs = match (e.seq_from, e.seq_to) {
                    (Some(a), Some(b)) if a == b => a.to_string(),
                    (Some(a), Some(b)) => format!("{a}..{b}"),
                    _ => "-".into(),
                };
                writeln!(
                    w,
                    "{:<27} {:<30} {:<14} {:<15} {}{}",
                    rfc3339(e.at),
                    e.host_id,
                    e.kind,
                    seqs,
                    e.detail,
                    if e.closed_at.is_some() {
                        " (closed)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        if (page.len() as i64) < PAGE {
            break;
        }
        before = page.last().map(|e| e.id);
    }
    w.flush()?;
    Ok(())
}

pub async fn export_elastic(
    config: Config,
    since: Option<String>,
    index: Option<String>,
) -> Result<(), Failure> {
    let index = index.unwrap_or_else(|| crate::export::DEFAULT_INDEX.to_string());
    crate::export::check_index(&index).map_err(|m| Failure {
        code: 2,
        message: format!("--index: {m}"),
    })?;
    let since = since
        .map(|s| duration(&s).map(|d| std::time::SystemTime::now() - d))
        .transpose()
        .map_err(|m| Failure {
            code: 2,
            message: format!("--since: {m}"),
        })?;
    let filter = Filter {
        since,
        ..Filter::default()
    };
    let pool = super::pool(&config)?;
    let client = pool.get().await?;
    let mut w = out();
    let mut cursor = None;
    loop {
        let (rows, next) = alerts::page(&client, &filter, cursor.as_ref(), PAGE).await?;
        for a in &rows {
            let (action, doc) = crate::export::bulk_lines(a, &index)
                .map_err(|e| format!("host {} seq {}: stored envelope: {e}", a.host_id, a.seq))?;
            writeln!(w, "{action}")?;
            writeln!(w, "{doc}")?;
        }
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    w.flush()?;
    Ok(())
}
