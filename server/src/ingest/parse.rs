//! Reading an upload batch: NDJSON lines of DSSE envelopes, each decoded, its signature by the
//! host's pinned key found, its chain link and the fields the console indexes read. Nothing
//! here touches the database; a refusal names the line (from 1) and the reason.

use std::borrow::Cow;
use std::time::SystemTime;

use nightjar_proto::verify::{AlertKey, EnvelopeError, SignedAlert};
use serde::Deserialize;
use serde_json::Value;

/// Why a batch is refused before it reaches the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Not a well-formed batch of this host's alerts (400, nothing stored).
    Malformed { line: usize, reason: String },
    /// A signature by the pinned key is missing or does not verify (400, recorded as
    /// `bad_signature`, nothing stored).
    BadSignature {
        line: usize,
        seq: Option<u64>,
        reason: String,
    },
}

/// One alert of the batch, ready to store.
#[derive(Debug, Clone)]
pub struct IncomingAlert {
    pub line: usize,
    pub seq: u64,
    pub prev: [u8; 32],
    pub hash: [u8; 32],
    /// The envelope bytes exactly as received.
    pub envelope: Vec<u8>,
    /// The payload as JSON text for the `jsonb` column (NUL characters, which `jsonb` cannot
    /// hold, replaced by U+FFFD; the envelope keeps the original).
    pub payload_json: String,
    pub alert_time: SystemTime,
    pub uuid: String,
    pub rule_id: String,
    pub rule_name: String,
    pub severity: String,
}

#[derive(Deserialize, Default)]
struct Summary<'a> {
    #[serde(rename = "@timestamp", borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kibana: Option<SummaryKibana<'a>>,
}

#[derive(Deserialize, Default)]
struct SummaryKibana<'a> {
    #[serde(borrow, default)]
    alert: Option<SummaryAlert<'a>>,
}

#[derive(Deserialize, Default)]
struct SummaryAlert<'a> {
    #[serde(borrow, default)]
    uuid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    severity: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    rule: Option<SummaryRule<'a>>,
}

#[derive(Deserialize, Default)]
struct SummaryRule<'a> {
    #[serde(borrow, default)]
    rule_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
}

/// The longest indexed text field kept (longer values are cut; the payload keeps them whole).
const MAX_INDEXED_TEXT: usize = 1024;

/// Splits a batch into lines and opens each envelope, finding the signature by the host's
/// pinned key (not checked yet: the caller verifies them as one batch, before anything in a
/// payload is trusted).
pub fn open_batch(body: &[u8], key: &AlertKey) -> Result<Vec<(usize, SignedAlert)>, BatchError> {
    if body.is_empty() {
        return Err(BatchError::Malformed {
            line: 1,
            reason: "empty batch".into(),
        });
    }
    let text = body.strip_suffix(b"\n").unwrap_or(body);
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(BatchError::Malformed {
                line,
                reason: "empty line".into(),
            });
        }
        let alert = key.open(raw).map_err(|e| match e {
            EnvelopeError::NoSignature(_) | EnvelopeError::SignatureEncoding(_) => {
                BatchError::BadSignature {
                    line,
                    seq: None,
                    reason: e.to_string(),
                }
            }
            other => BatchError::Malformed {
                line,
                reason: other.to_string(),
            },
        })?;
        out.push((line, alert));
    }
    Ok(out)
}

/// Decodes verified envelopes: their chain links (strictly ascending seqs, every payload
/// naming `host_id`) and the fields the console indexes.
pub fn decode_batch(
    body: &[u8],
    opened: Vec<(usize, SignedAlert)>,
    host_id: &str,
    received_at: SystemTime,
) -> Result<Vec<IncomingAlert>, BatchError> {
    let malformed = |line: usize, reason: String| BatchError::Malformed { line, reason };
    let text = body.strip_suffix(b"\n").unwrap_or(body);
    let mut raws = text.split(|b| *b == b'\n');
    let mut alerts = Vec::with_capacity(opened.len());
    let mut last_seq = 0u64;
    for (line, alert) in opened {
        let raw = raws.next().unwrap_or_default();
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let link = alert.link().map_err(|e| malformed(line, e.to_string()))?;
        if link.host_id != host_id {
            return Err(malformed(
                line,
                format!(
                    "seq {}: nightjar.host_id {:?} is not the signing host {host_id:?}",
                    link.seq, link.host_id
                ),
            ));
        }
        if link.seq <= last_seq {
            return Err(malformed(
                line,
                format!(
                    "seq {} after seq {last_seq}: a batch is in ascending seq order",
                    link.seq
                ),
            ));
        }
        last_seq = link.seq;
        let summary: Summary = serde_json::from_slice(&alert.payload).unwrap_or_default();
        let alert_ = summary.kibana.unwrap_or_default().alert.unwrap_or_default();
        let rule = alert_.rule.unwrap_or_default();
        let payload_json = jsonb_text(&alert.payload)
            .map_err(|e| malformed(line, format!("seq {}: payload: {e}", link.seq)))?;
        alerts.push(IncomingAlert {
            line,
            seq: link.seq,
            prev: link.prev,
            hash: alert.payload_hash(),
            envelope: raw.to_vec(),
            payload_json,
            alert_time: summary
                .timestamp
                .as_deref()
                .and_then(crate::time::parse_rfc3339)
                .unwrap_or(received_at),
            uuid: indexed(alert_.uuid),
            rule_id: indexed(rule.rule_id),
            rule_name: indexed(rule.name),
            severity: indexed(alert_.severity),
        });
    }
    Ok(alerts)
}

/// A text column value: bounded, without NUL (PostgreSQL text cannot hold it).
fn indexed(value: Option<Cow<'_, str>>) -> String {
    let mut s: String = value
        .as_deref()
        .unwrap_or("")
        .chars()
        .filter(|c| *c != '\0')
        .collect();
    if s.len() > MAX_INDEXED_TEXT {
        let mut end = MAX_INDEXED_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The payload as text `jsonb` accepts. Only a payload with a `\u0000` escape is rebuilt.
fn jsonb_text(payload: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("not UTF-8: {e}"))?;
    if !text.contains("\\u0000") {
        return Ok(text.to_string());
    }
    let mut doc: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    fn scrub(v: &mut Value) {
        match v {
            Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
            Value::Array(a) => a.iter_mut().for_each(scrub),
            Value::Object(o) => {
                let keys: Vec<String> = o.keys().filter(|k| k.contains('\0')).cloned().collect();
                for k in keys {
                    if let Some(val) = o.remove(&k) {
                        o.insert(k.replace('\0', "\u{fffd}"), val);
                    }
                }
                o.values_mut().for_each(scrub);
            }
            _ => {}
        }
    }
    scrub(&mut doc);
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_scrubbed_for_jsonb_only() {
        assert_eq!(jsonb_text(br#"{"a":"b"}"#).unwrap(), r#"{"a":"b"}"#);
        let t = jsonb_text(br#"{"a":"x\u0000y","k\u0000":1}"#).unwrap();
        assert!(!t.contains("\\u0000") && t.contains('\u{fffd}'), "{t}");
        assert!(jsonb_text(b"\xff").is_err());
    }

    #[test]
    fn indexed_text_is_bounded_and_nul_free() {
        assert_eq!(indexed(Some("a\0b".into())), "ab");
        assert_eq!(indexed(Some("é".repeat(600).into())).len(), 1024);
        assert_eq!(indexed(None), "");
    }
}
