//! Elasticsearch `_bulk` export (DESIGN "Console and API"): `create` actions into the data
//! stream `logs-nightjar.alert-<namespace>` with `_id` = the alert uuid (a repeated export is a
//! 409 per document, never a duplicate), each document an ECS alert event — `event.kind:
//! alert`, not a Kibana alert (ECS forbids `event.kind: signal` at ingest) — with the rule as
//! `rule.*`, MITRE as `threat.*`, the process, user and host, and the signed envelope in
//! `event.original`. docs/elastic.md shows how Kibana promotes them to alerts.

use serde_json::{Map, Value, json};

use crate::alerts::AlertRow;
use crate::time::rfc3339;

/// The ECS version the documents follow.
pub const ECS_VERSION: &str = "8.11.0";
/// The default data stream.
pub const DEFAULT_INDEX: &str = "logs-nightjar.alert-default";

/// ECS `event.severity` for a Kibana severity (the risk scores Elastic's rules use).
pub fn severity_number(severity: &str) -> i64 {
    match severity {
        "low" => 21,
        "medium" => 47,
        "high" => 73,
        "critical" => 99,
        _ => 21,
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value.filter(|v| !v.is_null()) {
        map.insert(key.into(), v);
    }
}

/// The MITRE mapping of a rule's `threat` list as ECS `threat.*` (arrays of ids, names and
/// references per level).
fn threat(rule: &Value) -> Option<Value> {
    let list = rule.get("threat")?.as_array()?;
    let mut tactic = (Vec::new(), Vec::new(), Vec::new());
    let mut technique = (Vec::new(), Vec::new(), Vec::new());
    let mut sub = (Vec::new(), Vec::new(), Vec::new());
    let push = |acc: &mut (Vec<Value>, Vec<Value>, Vec<Value>), v: &Value| {
        if let Some(id) = v.get("id") {
            acc.0.push(id.clone());
        }
        if let Some(n) = v.get("name") {
            acc.1.push(n.clone());
        }
        if let Some(r) = v.get("reference") {
            acc.2.push(r.clone());
        }
    };
    for t in list {
        if let Some(ta) = t.get("tactic") {
            push(&mut tactic, ta);
        }
        for te in t
            .get("technique")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(&mut technique, te);
            for st in te
                .get("subtechnique")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                push(&mut sub, st);
            }
        }
    }
    let level = |(id, name, reference): (Vec<Value>, Vec<Value>, Vec<Value>)| json!({"id": id, "name": name, "reference": reference});
    let mut technique_v = level(technique);
    if !sub.0.is_empty() {
        technique_v["subtechnique"] = level(sub);
    }
    Some(json!({
        "framework": "MITRE ATT&CK",
        "tactic": level(tactic),
        "technique": technique_v,
    }))
}

/// Moves Elastic Defend's `Ext` extension objects (`process.Ext.*`, `user.Ext.real.*`: not
/// ECS fields) out of `value` into `ext`, keyed by the dotted path of their parent, so the
/// document holds ECS fields only and nothing is lost (`nightjar.ext.process.args_truncated`).
fn lift_ext(path: &str, value: &mut Value, ext: &mut Map<String, Value>) {
    let Value::Object(map) = value else {
        return;
    };
    if let Some(found) = map.remove("Ext") {
        ext.insert(path.to_string(), found);
    }
    for (k, v) in map.iter_mut() {
        lift_ext(&format!("{path}.{k}"), v, ext);
    }
}

/// The ECS document of one stored alert.
pub fn document(row: &AlertRow) -> Result<Value, String> {
    let payload = row.verified_payload()?;
    let alert = get(&payload, &["kibana", "alert"])
        .cloned()
        .unwrap_or(Value::Null);
    let rule = alert.get("rule").cloned().unwrap_or(Value::Null);
    let original = alert.get("original_event").cloned().unwrap_or(Value::Null);
    let severity = alert
        .get("severity")
        .and_then(Value::as_str)
        .unwrap_or(row.severity.as_str())
        .to_string();
    let mut event = Map::new();
    event.insert("kind".into(), json!("alert"));
    event.insert("module".into(), json!("nightjar"));
    event.insert("dataset".into(), json!("nightjar.alert"));
    put(&mut event, "category", original.get("category").cloned());
    put(&mut event, "type", original.get("type").cloned());
    put(&mut event, "action", original.get("action").cloned());
    event.insert("severity".into(), json!(severity_number(&severity)));
    let risk = alert
        .get("risk_score")
        .and_then(Value::as_f64)
        .unwrap_or(severity_number(&severity) as f64);
    event.insert("risk_score".into(), json!(risk));
    event.insert("id".into(), json!(row.uuid));
    event.insert("created".into(), json!(rfc3339(row.received_at)));
    put(&mut event, "reason", alert.get("reason").cloned());
    event.insert(
        "original".into(),
        json!(String::from_utf8_lossy(&row.envelope)),
    );
    let mut rule_doc = Map::new();
    put(&mut rule_doc, "id", rule.get("rule_id").cloned());
    put(&mut rule_doc, "uuid", rule.get("rule_id").cloned());
    put(&mut rule_doc, "name", rule.get("name").cloned());
    put(
        &mut rule_doc,
        "description",
        rule.get("description").cloned(),
    );
    put(
        &mut rule_doc,
        "version",
        rule.get("version")
            .map(|v| json!(v.to_string().trim_matches('"'))),
    );
    rule_doc.insert("ruleset".into(), json!("nightjar"));
    let mut doc = Map::new();
    doc.insert(
        "@timestamp".into(),
        payload
            .get("@timestamp")
            .cloned()
            .unwrap_or_else(|| json!(rfc3339(row.alert_time))),
    );
    doc.insert("ecs".into(), json!({"version": ECS_VERSION}));
    put(&mut doc, "message", rule.get("name").cloned());
    doc.insert("event".into(), Value::Object(event));
    doc.insert("rule".into(), Value::Object(rule_doc));
    put(&mut doc, "threat", threat(&rule));
    put(&mut doc, "host", payload.get("host").cloned());
    doc.insert(
        "agent".into(),
        json!({"type": "nightjar", "id": row.host_id}),
    );
    put(&mut doc, "process", payload.get("process").cloned());
    put(&mut doc, "user", payload.get("user").cloned());
    put(&mut doc, "group", payload.get("group").cloned());
    put(&mut doc, "file", payload.get("file").cloned());
    doc.insert(
        "data_stream".into(),
        json!({"type": "logs", "dataset": "nightjar.alert"}),
    );
    let mut ext = Map::new();
    for field in ["host", "process", "user", "group", "file"] {
        if let Some(v) = doc.get_mut(field) {
            lift_ext(field, v, &mut ext);
        }
    }
    doc.insert(
        "nightjar".into(),
        json!({
            "host_id": row.host_id,
            "epoch": row.epoch,
            "seq": row.seq,
            "key_id": row.key_id,
            "verified": true,
            "rule_severity": severity,
        }),
    );
    if !ext.is_empty() {
        doc["nightjar"]["ext"] = Value::Object(ext);
    }
    Ok(Value::Object(doc))
}

/// Data stream names Elasticsearch accepts: lowercase, no spaces or `\/*?"<>|,#:`, not
/// starting with `-`, `_` or `+`, at most 255 bytes.
pub fn check_index(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 255
        || name.starts_with(['-', '_', '+'])
        || name
            .chars()
            .any(|c| c.is_uppercase() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(c));
    if bad {
        return Err(format!("index {name:?} is not a valid data stream name"));
    }
    Ok(())
}

/// The two `_bulk` lines of one alert.
pub fn bulk_lines(row: &AlertRow, index: &str) -> Result<(String, String), String> {
    let mut doc = document(row)?;
    if let Some(namespace) = index.strip_prefix("logs-nightjar.alert-") {
        doc["data_stream"]["namespace"] = json!(namespace);
    }
    let action = json!({"create": {"_index": index, "_id": row.uuid}});
    Ok((action.to_string(), doc.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_objects_move_under_nightjar_ext() {
        let mut v =
            json!({"pid": 1, "Ext": {"args_truncated": false}, "parent": {"Ext": {"x": 1}}});
        let mut ext = Map::new();
        lift_ext("process", &mut v, &mut ext);
        assert_eq!(v, json!({"pid": 1, "parent": {}}));
        assert_eq!(ext["process"], json!({"args_truncated": false}));
        assert_eq!(ext["process.parent"], json!({"x": 1}));
    }

    #[test]
    fn mitre_levels_become_parallel_arrays() {
        let rule = json!({"threat": [{"framework": "MITRE ATT&CK",
            "tactic": {"id": "TA0006", "name": "Credential Access", "reference": "r1"},
            "technique": [{"id": "T1558", "name": "Steal or Forge Kerberos Tickets", "reference": "r2",
                "subtechnique": [{"id": "T1558.003", "name": "Kerberoasting", "reference": "r3"}]}]}]});
        let t = threat(&rule).unwrap();
        assert_eq!(t["tactic"]["id"], json!(["TA0006"]));
        assert_eq!(
            t["technique"]["name"],
            json!(["Steal or Forge Kerberos Tickets"])
        );
        assert_eq!(t["technique"]["subtechnique"]["id"], json!(["T1558.003"]));
        assert_eq!(severity_number("high"), 73);
    }
}
