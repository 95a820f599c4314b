//! `nightjar-agent alerts`: list, show and export stored alerts.

use std::time::Duration;

use serde_json::Value;

use super::query::{ask, load_config, out, unexpected};
use super::{AlertsListArgs, AlertsShowArgs, CmdResult, ConfigArg, Failure};
use crate::control::{ClientError, Reply, Request, lookup};
use crate::pipeline::status::now_ns;
use nightjar_proto::terminal::{terminal_safe, to_json_line, to_json_pretty};

/// Longest args column in the human table; the rest is elided.
const ARGS_WIDTH: usize = 80;

pub fn list(args: &AlertsListArgs) -> CmdResult {
    let config = load_config(&args.config)?;
    let since_ns = args
        .since
        .as_deref()
        .map(|s| {
            parse_duration(s)
                .map(|d| now_ns().saturating_sub(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
                .map_err(|e| Failure::usage(format!("--since {s:?}: {e}")))
        })
        .transpose()?;
    let request = Request::AlertsList {
        since_ns,
        rule: args.rule.clone(),
    };
    let query = args.query.as_deref().map(KqlFilter::new).transpose()?;
    let keep = |doc: &Value| query.as_ref().is_none_or(|q| q.matches(doc));
    if args.json {
        return ask(&config, &request, |reply| match reply {
            Reply::Alert(doc) if !keep(&doc) => Ok(()),
            Reply::Alert(doc) => {
                out(&to_json_line(&doc).map_err(|e| ClientError::Agent(e.to_string()))?)
            }
            other => Err(unexpected(&other)),
        });
    }
    let mut rows = vec![[
        "SEQ".to_string(),
        "TIME".into(),
        "RULE".into(),
        "HOST".into(),
        "PROCESS".into(),
        "ARGS".into(),
    ]];
    ask(&config, &request, |reply| match reply {
        Reply::Alert(doc) if !keep(&doc) => Ok(()),
        Reply::Alert(doc) => {
            rows.push(row(&doc));
            Ok(())
        }
        other => Err(unexpected(&other)),
    })?;
    if rows.len() == 1 {
        eprintln!("no alerts");
        return Ok(());
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for r in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in r.iter().zip(widths).enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        match out(line.trim_end()) {
            Ok(()) => {}
            Err(ClientError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(Failure::failed(e.to_string())),
        }
    }
    Ok(())
}

/// `--query KQL`: the rule engine's KQL (parsed and typed as a rule's query is) evaluated on
/// each stored alert's ECS fields (`process.*`, `host.*`, `user.*`, ...).
struct KqlFilter {
    rules: nightjar_rules::naive::NaiveRules,
}

impl KqlFilter {
    fn new(text: &str) -> Result<KqlFilter, Failure> {
        let built = nightjar_rules::query::build(nightjar_rules::query::Language::Kql, text)
            .map_err(|e| Failure::usage(format!("--query {text:?}: {e}")))?;
        for w in &built.warnings {
            eprintln!("nightjar-agent: --query: at {}: {}", w.offset, w.message);
        }
        Ok(KqlFilter {
            rules: nightjar_rules::naive::NaiveRules::new(&built.program.queries()),
        })
    }

    fn matches(&self, doc: &Value) -> bool {
        let Value::Object(map) = doc else {
            return false;
        };
        let mut out = Vec::new();
        self.rules.evaluate_document(map, &mut out);
        !out.is_empty()
    }
}

pub fn show(args: &AlertsShowArgs) -> CmdResult {
    let config = load_config(&args.config)?;
    let request = Request::AlertsShow {
        uuid: args.uuid.clone(),
    };
    ask(&config, &request, |reply| match reply {
        Reply::Alert(doc) => {
            let text = to_json_pretty(&doc).map_err(|e| ClientError::Agent(e.to_string()))?;
            out(&text)
        }
        other => Err(unexpected(&other)),
    })
}

pub fn export(args: &ConfigArg) -> CmdResult {
    let config = load_config(args)?;
    ask(&config, &Request::AlertsExport, |reply| match reply {
        Reply::Envelope(env) => {
            let line = to_json_line(&env).map_err(|e| ClientError::Agent(e.to_string()))?;
            out(&line)
        }
        other => Err(unexpected(&other)),
    })
}

/// One table row: seq, time, rule, host, process, args; every cell terminal-safe (an argv
/// may carry escape sequences, carriage returns or newlines meant to forge rows).
fn row(doc: &Value) -> [String; 6] {
    raw_row(doc).map(|cell| terminal_safe(&cell).into_owned())
}

fn raw_row(doc: &Value) -> [String; 6] {
    let text = |path: &str| match lookup(doc, path) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let rule = match text("kibana.alert.rule.name") {
        name if name.is_empty() => text("kibana.alert.rule.rule_id"),
        name => name,
    };
    let host = match text("host.hostname") {
        h if h.is_empty() => text("host.id"),
        h => h,
    };
    let process = format!("{} [{}]", text("process.executable"), text("process.pid"));
    let args = match lookup(doc, "process.args") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    let args = if args.chars().count() > ARGS_WIDTH {
        let cut: String = args.chars().take(ARGS_WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        args
    };
    [
        text("nightjar.seq"),
        text("@timestamp"),
        rule,
        host,
        process,
        args,
    ]
}

/// `30s`, `15m`, `2h`, `7d` (a number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or("missing unit (s, m, h or d)")?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| "expected a number followed by s, m, h or d".to_string())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown unit {other:?} (s, m, h or d)")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| "duration is too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn hostile_argv_cannot_forge_rows_or_escape_sequences() {
        let doc = serde_json::json!({
            "process": {"executable": "/tmp/kcc\r", "pid": 1, "args": ["kcc", "\u{1b}[2K\r7  forged row\n", "\u{1b}]0;title\u{7}", "\u{9b}2J"]},
            "nightjar": {"seq": 1}
        });
        let r = row(&doc);
        for cell in &r {
            assert!(!cell.chars().any(char::is_control), "{cell:?}");
        }
        assert!(r[5].contains("\\x1b[2K\\r7  forged row\\n"), "{}", r[5]);
    }

    #[test]
    fn table_row_reads_nested_alert_fields() {
        let doc = serde_json::json!({
            "@timestamp": "2026-11-20T09:00:01Z",
            "kibana": {"alert": {"rule": {"name": "Kerberos", "rule_id": "r"}}},
            "host": {"hostname": "mac-1"},
            "process": {"executable": "/usr/bin/kcc", "pid": 702, "args": ["kcc", "copy_cred_cache"]},
            "nightjar": {"seq": 3}
        });
        assert_eq!(
            row(&doc),
            [
                "3".to_string(),
                "2026-11-20T09:00:01Z".into(),
                "Kerberos".into(),
                "mac-1".into(),
                "/usr/bin/kcc [702]".into(),
                "kcc copy_cred_cache".into()
            ]
        );
    }
}
