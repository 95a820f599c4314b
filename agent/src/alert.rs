//! The alert document (Elastic alert fields + ECS objects) built from a rule match.
//!
//! The shape follows Elastic's alerts index with nested objects: `@timestamp` (alert time),
//! `event.kind = "signal"`, `kibana.alert.{uuid, original_time, severity, risk_score, reason,
//! rule.*, original_event.*}` and the event's `process`, `host`, `user` (and `group`) objects.
//! Matches a rule's `max_signals` held back are counted in
//! `kibana.alert.suppression.docs_count` (present only when non-zero), the field Elastic uses
//! for alerts that stand for several suppressed matches. The agent adds the `nightjar` chain
//! object.
//!
//! A sequence or sample match makes alerts as Kibana does: one *building block* per event of
//! the match (`kibana.alert.building_block_type = "default"`, `kibana.alert.group.index` its
//! position) and one *shell* alert holding the fields all its events share, all with the same
//! `kibana.alert.group.id`. A new_terms alert names the new values
//! (`kibana.alert.new_terms`); a threshold alert its group and count
//! (`kibana.alert.threshold_result`).

use std::sync::Arc;

use nightjar_proto::event::{Event, FLAG_BLOCKED};
use ring::digest::{SHA256, digest};
use serde_json::{Map, Value, json};

use nightjar_rules::RuleMeta;
use nightjar_rules::ecs::{EcsEvent, EventSnapshot, HostInfo};

/// Deterministic alert uuid: host id + rule id + event identity (os, pid, pidversion or start
/// time, event time, executable) -> SHA-256 -> RFC 4122 version-5-style UUID text.
///
/// The same event replayed after a crash gives the same uuid, so it is recognised, not stored
/// twice.
pub fn alert_uuid(host_id: &str, rule_id: &str, ev: &Event<'_>) -> String {
    let meta = ev.meta();
    // An exec's identity is as it always was, so stored alerts keep their uuids; the other
    // kinds add what tells their events apart.
    let identity = match ev {
        Event::Exec(e) => {
            let t = &e.target;
            format!(
                "{}\0{}\0{}\0{}\0{}\0{}\0{}\0{}",
                host_id,
                rule_id,
                e.os.as_str(),
                t.pid,
                t.pidversion.map_or_else(String::new, |v| v.to_string()),
                t.start_time_ns.map_or_else(String::new, |v| v.to_string()),
                e.time_ns,
                t.executable,
            )
        }
        other => {
            let (kind, pid, pidversion, start, what) = match other {
                Event::Fork(f) => (
                    "fork",
                    f.parent.pid,
                    f.parent.pidversion,
                    f.parent.start_time_ns,
                    f.child_pid.to_string(),
                ),
                Event::Exit(x) => (
                    "exit",
                    x.process.pid,
                    x.process.pidversion,
                    x.process.start_time_ns,
                    String::new(),
                ),
                Event::File(f) => (
                    f.action.as_str(),
                    f.process.pid,
                    f.process.pidversion,
                    f.process.start_time_ns,
                    format!("{}\0{}", f.path, f.original_path.as_deref().unwrap_or("")),
                ),
                Event::Cred(c) => (
                    c.change.as_str(),
                    c.process.pid,
                    c.process.pidversion,
                    c.process.start_time_ns,
                    format!(
                        "{}\0{}\0{}\0{}\0{}",
                        opt(c.after.uid),
                        opt(c.after.euid),
                        opt(c.after.gid),
                        opt(c.after.egid),
                        opt(c.after.sid)
                    ),
                ),
                Event::Exec(_) => unreachable!("handled above"),
            };
            format!(
                "{host_id}\0{rule_id}\0{}\0{kind}\0{pid}\0{}\0{}\0{}\0{what}",
                meta.os.as_str(),
                pidversion.map_or_else(String::new, |v| v.to_string()),
                start.map_or_else(String::new, |v| v.to_string()),
                meta.time_ns,
            )
        }
    };
    uuid_of(&identity)
}

fn opt(id: Option<u32>) -> String {
    id.map_or_else(String::new, |v| v.to_string())
}

/// The id a sequence or sample match's alerts share (`kibana.alert.group.id`): host, rule
/// and the identity of every event of the match, so a match read again has the same one.
pub fn group_id(host_id: &str, rule_id: &str, events: &[Arc<EventSnapshot>]) -> String {
    let mut parts = format!("{host_id}\0{rule_id}\0group");
    for e in events {
        parts.push('\0');
        parts.push_str(&alert_uuid(host_id, rule_id, e.event()));
    }
    uuid_of(&parts)
}

/// The uuids of a match's alerts: its building blocks in order, then the shell.
pub fn group_uuids(host_id: &str, rule_id: &str, group: &str, events: usize) -> Vec<String> {
    (0..events)
        .map(|i| uuid_of(&format!("{host_id}\0{rule_id}\0{group}\0{i}")))
        .chain(std::iter::once(uuid_of(&format!(
            "{host_id}\0{rule_id}\0{group}\0shell"
        ))))
        .collect()
}

/// SHA-256 of `text` as an RFC 4122 version-5-style UUID.
fn uuid_of(text: &str) -> String {
    let hash = digest(&SHA256, text.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// How a rule matched, as the alert says it in `nightjar.match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The rule holds on the event as captured.
    Exact,
    /// The event's argv was cut (`process.Ext.args_truncated`) and the rule could hold on
    /// the dropped arguments: alerted on, conservatively, and said so.
    ArgvTruncated,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::ArgvTruncated => "argv_truncated",
        }
    }
}

/// DESIGN's alert JSON. Its `nightjar` object holds `action` (`"blocked"` when the sensor
/// stopped the exec, else `"detected"`) and `match` ([`MatchKind`]); the agent adds the chain
/// fields `nightjar.{seq,prev,event_seq,host_id}` when it seals it.
pub fn build_alert(
    rule: &RuleMeta,
    event: &Event<'_>,
    ev: &EcsEvent<'_>,
    host_id: &str,
    alert_time_ns: i64,
    suppressed: u64,
    how: MatchKind,
) -> Map<String, Value> {
    let meta = event.meta();
    let shape = ev.shape();
    let doc = ev.document();
    let get = |k: &str| doc.get(k).cloned().unwrap_or_else(|| json!({}));
    let process = get("process");
    let host = get("host");
    let user = get("user");

    let mut rule_obj = Map::new();
    rule_obj.insert("rule_id".into(), json!(rule.rule_id));
    rule_obj.insert("name".into(), json!(rule.name));
    if let Some(v) = rule.version {
        rule_obj.insert("version".into(), json!(v));
    }
    rule_obj.insert("type".into(), json!(rule.rule_type));
    rule_obj.insert("language".into(), json!(rule.language));
    rule_obj.insert("threat".into(), rule.threat.clone());
    rule_obj.insert("severity".into(), json!(rule.severity));
    rule_obj.insert("risk_score".into(), json!(rule.risk_score));
    rule_obj.insert("tags".into(), json!(rule.tags));
    rule_obj.insert("from".into(), json!(rule.from));
    rule_obj.insert(
        "interval".into(),
        json!(format!("{}s", rule.interval.as_secs())),
    );
    rule_obj.insert("max_signals".into(), json!(rule.max_signals));
    rule_obj.insert("description".into(), json!(rule.description));

    let mut alert = Map::new();
    alert.insert(
        "uuid".into(),
        json!(alert_uuid(host_id, &rule.rule_id, event)),
    );
    alert.insert("original_time".into(), json!(rfc3339(meta.time_ns)));
    alert.insert("severity".into(), json!(rule.severity));
    alert.insert("risk_score".into(), json!(rule.risk_score));
    let mut why = reason(rule, shape.category(), &doc);
    if how == MatchKind::ArgvTruncated {
        why.push_str(
            " (argv was truncated; the rule may match on the arguments dropped, so it is \
             reported)",
        );
    }
    alert.insert("reason".into(), json!(why));
    alert.insert("status".into(), json!("active"));
    alert.insert("workflow_status".into(), json!("open"));
    alert.insert("rule".into(), Value::Object(rule_obj));
    alert.insert(
        "original_event".into(),
        json!({
            "kind": "event",
            "category": [shape.category()],
            "type": [shape.event_type()],
            "action": shape.action(),
            "module": "nightjar",
            "dataset": format!("nightjar.{}", meta.source.as_str()),
            "sequence": meta.sensor_seq,
            "created": rfc3339(meta.time_ns),
        }),
    );
    if suppressed > 0 {
        alert.insert("suppression".into(), json!({ "docs_count": suppressed }));
    }

    let mut out = Map::new();
    out.insert("@timestamp".into(), json!(rfc3339(alert_time_ns)));
    out.insert("event".into(), json!({ "kind": "signal" }));
    out.insert("kibana".into(), json!({ "alert": Value::Object(alert) }));
    out.insert("process".into(), process);
    out.insert("host".into(), host);
    out.insert("user".into(), user);
    if let Some(g) = doc.get("group") {
        out.insert("group".into(), g.clone());
    }
    // `Effective_process` (the responsible process, macOS) and `Persistence` (a launch item
    // added) as Elastic Defend's events carry them.
    for key in ["file", "Effective_process", "Persistence"] {
        if let Some(v) = doc.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let blocked = meta.flags & FLAG_BLOCKED != 0;
    out.insert(
        "nightjar".into(),
        json!({
            "action": if blocked { "blocked" } else { "detected" },
            "match": how.as_str(),
        }),
    );
    out
}

/// The alerts of a sequence or sample match, aligned with [`group_uuids`]: a building block
/// per event, then the shell.
pub fn build_group_alerts(
    rule: &RuleMeta,
    events: &[Arc<EventSnapshot>],
    host: &HostInfo,
    alert_time_ns: i64,
    suppressed: u64,
) -> Vec<Map<String, Value>> {
    let group = group_id(&host.id, &rule.rule_id, events);
    let uuids = group_uuids(&host.id, &rule.rule_id, &group, events.len());
    let mut out = Vec::with_capacity(events.len() + 1);
    let mut docs = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let view = e.view(host);
        docs.push(view.document());
        let mut a = build_alert(
            rule,
            e.event(),
            &view,
            &host.id,
            alert_time_ns,
            0,
            MatchKind::Exact,
        );
        let k = kibana_alert(&mut a);
        k.insert("uuid".into(), json!(uuids[i]));
        k.insert("building_block_type".into(), json!("default"));
        k.insert("group".into(), json!({ "id": group, "index": i }));
        out.push(a);
    }
    // The shell: the first event's alert with only what every event shares.
    if let Some(first) = events.first() {
        let mut shell = build_alert(
            rule,
            first.event(),
            &first.view(host),
            &host.id,
            alert_time_ns,
            suppressed,
            MatchKind::Exact,
        );
        let common = common_fields(&docs);
        for key in [
            "process",
            "host",
            "user",
            "group",
            "file",
            "Effective_process",
            "Persistence",
        ] {
            match common.get(key) {
                Some(v) => shell.insert(key.into(), v.clone()),
                None => shell.remove(key),
            };
        }
        let kind = if rule.query.trim_start().starts_with("sample") {
            "sample"
        } else {
            "sequence"
        };
        let k = kibana_alert(&mut shell);
        k.insert("uuid".into(), json!(uuids[events.len()]));
        k.insert("group".into(), json!({ "id": group }));
        k.insert(
            "reason".into(),
            json!(format!(
                "{kind} of {} events created {} alert {}.",
                events.len(),
                rule.severity,
                rule.name
            )),
        );
        out.push(shell);
    }
    out
}

/// A new_terms alert: the event's alert with the values that were new.
pub fn build_new_terms_alert(
    rule: &RuleMeta,
    event: &Event<'_>,
    ev: &EcsEvent<'_>,
    host_id: &str,
    alert_time_ns: i64,
    suppressed: u64,
    terms: &[String],
) -> Map<String, Value> {
    let mut a = build_alert(
        rule,
        event,
        ev,
        host_id,
        alert_time_ns,
        suppressed,
        MatchKind::Exact,
    );
    kibana_alert(&mut a).insert("new_terms".into(), json!(terms));
    a
}

/// What a threshold rule counted for one group.
#[derive(Debug, Clone, Copy)]
pub struct ThresholdResult<'a> {
    /// `(field, value)` of the group.
    pub group: &'a [(String, String)],
    pub count: u64,
    pub cardinality: Option<u64>,
}

/// A threshold alert: the event that reached the threshold, with the group and its count.
pub fn build_threshold_alert(
    rule: &RuleMeta,
    event: &Event<'_>,
    ev: &EcsEvent<'_>,
    host_id: &str,
    alert_time_ns: i64,
    suppressed: u64,
    result: ThresholdResult<'_>,
) -> Map<String, Value> {
    let ThresholdResult {
        group,
        count,
        cardinality,
    } = result;
    let mut a = build_alert(
        rule,
        event,
        ev,
        host_id,
        alert_time_ns,
        suppressed,
        MatchKind::Exact,
    );
    let terms: Vec<Value> = group
        .iter()
        .map(|(f, v)| json!({ "field": f, "value": v }))
        .collect();
    let mut result = json!({ "count": count, "terms": terms });
    if let Some(n) = cardinality {
        result["cardinality"] = json!([{ "value": n }]);
    }
    kibana_alert(&mut a).insert("threshold_result".into(), result);
    a
}

/// The `kibana.alert` object of an alert built by [`build_alert`].
fn kibana_alert(a: &mut Map<String, Value>) -> &mut Map<String, Value> {
    let kibana = a.entry("kibana").or_insert_with(|| json!({ "alert": {} }));
    if !kibana.get("alert").is_some_and(Value::is_object) {
        kibana["alert"] = json!({});
    }
    match kibana.get_mut("alert") {
        Some(Value::Object(m)) => m,
        // Made an object just above.
        _ => unreachable!("kibana.alert is an object"),
    }
}

/// The fields every document has with the same value (objects compared field by field).
fn common_fields(docs: &[Map<String, Value>]) -> Map<String, Value> {
    let Some((first, rest)) = docs.split_first() else {
        return Map::new();
    };
    let mut out = Map::new();
    for (k, v) in first {
        let others: Vec<&Value> = rest.iter().filter_map(|d| d.get(k)).collect();
        if others.len() != rest.len() {
            continue;
        }
        match v {
            Value::Object(m) => {
                let subs: Vec<Map<String, Value>> = std::iter::once(m.clone())
                    .chain(others.iter().filter_map(|o| o.as_object().cloned()))
                    .collect();
                if subs.len() == docs.len() {
                    let c = common_fields(&subs);
                    if !c.is_empty() {
                        out.insert(k.clone(), Value::Object(c));
                    }
                }
            }
            v if others.iter().all(|o| *o == v) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    out
}

/// Elastic's reason sentence: "process event with process kcc, parent process zsh, by root on
/// host-1 created high alert Kerberos Cached Credentials Dumping."
fn reason(rule: &RuleMeta, category: &str, doc: &Map<String, Value>) -> String {
    let s = |path: &[&str]| -> Option<String> {
        let mut v = doc.get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        v.as_str().map(str::to_owned)
    };
    let mut text = format!("{category} event");
    if let Some(n) = s(&["process", "name"]) {
        text.push_str(&format!(" with process {n}"));
    }
    if let Some(f) = s(&["file", "name"]) {
        text.push_str(&format!(", file {f}"));
    }
    if let Some(p) = s(&["process", "parent", "name"]) {
        text.push_str(&format!(", parent process {p}"));
    }
    if let Some(u) = s(&["user", "name"]).or_else(|| s(&["user", "id"])) {
        text.push_str(&format!(", by {u}"));
    }
    if let Some(h) = s(&["host", "hostname"]) {
        text.push_str(&format!(" on {h}"));
    }
    text.push_str(&format!(" created {} alert {}.", rule.severity, rule.name));
    text
}

/// Unix nanoseconds as RFC 3339 UTC with nanoseconds (`2026-11-28T02:50:39.123456789Z`).
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn uuid_is_deterministic_and_v5_shaped() {
        let mut ev = nightjar_proto::ExecEvent::default();
        ev.target.pid = 702;
        ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
        let exec = Event::Exec(ev.clone());
        let a = alert_uuid("h", "r", &exec);
        assert_eq!(a, alert_uuid("h", "r", &exec));
        assert_ne!(a, alert_uuid("h", "r2", &exec));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        ev.time_ns += 1;
        assert_ne!(a, alert_uuid("h", "r", &Event::Exec(ev)));
        let file = Event::File(nightjar_proto::event::FileEvent {
            path: Cow::Borrowed("/etc/cron.d/x"),
            ..Default::default()
        });
        let f = alert_uuid("h", "r", &file);
        assert_ne!(f, a);
        assert_eq!(f, alert_uuid("h", "r", &file));
    }
}
