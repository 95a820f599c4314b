//! Reading an upload batch: NDJSON lines of DSSE envelopes, each decoded, its signature by the
//! host's pinned key found, its chain link and the fields the console indexes read. Nothing
//! here touches the database; a refusal names the line (from 1) and the reason.

use std::borrow::Cow;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use nightjar_proto::verify::{AlertKey, EnvelopeError, LinkFields};
use serde::Deserialize;

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
    /// The envelope bytes exactly as received (a slice of the request body, not a copy).
    pub envelope: Bytes,
    pub alert_time: SystemTime,
    pub uuid: String,
    pub rule_id: String,
    pub rule_name: String,
    pub severity: String,
}

/// What ingest reads from a payload, in one pass: the chain link and the fields the console
/// indexes (the rest of the document is skipped, never built).
#[derive(Deserialize)]
struct PayloadFields<'a> {
    #[serde(rename = "@timestamp", borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    kibana: Option<SummaryKibana<'a>>,
    #[serde(borrow, default)]
    nightjar: Option<LinkFields<'a>>,
}

/// The indexed fields alone, for a payload whose fields do not all have the expected types:
/// the link is then read strictly on its own, and indexed fields of the wrong shape are
/// left empty (they are a convenience for queries; the envelope keeps everything).
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

/// Reads a batch: splits it into lines, opens every envelope (its signature by the host's
/// pinned key found), verifies all the signatures as one Ed25519 batch before anything in a
/// payload is trusted, then reads each payload once for its chain link (strictly ascending
/// seqs, every payload naming `host_id`) and the fields the console indexes.
pub fn read_batch(
    body: &Bytes,
    key: &AlertKey,
    host_id: &str,
    received_at: SystemTime,
) -> Result<Vec<IncomingAlert>, BatchError> {
    if body.is_empty() {
        return Err(BatchError::Malformed {
            line: 1,
            reason: "empty batch".into(),
        });
    }
    let lines = split_lines(body)?;
    let mut opened = Vec::with_capacity(lines.len());
    for &(line, ref range) in &lines {
        let alert = key.open(&body[range.clone()]).map_err(|e| match e {
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
        opened.push(alert);
    }
    if let Err(i) = key.verify_batch(&opened) {
        return Err(BatchError::BadSignature {
            line: lines[i].0,
            seq: opened[i].link().ok().map(|l| l.seq),
            reason: "signature does not verify".into(),
        });
    }
    let malformed = |line: usize, reason: String| BatchError::Malformed { line, reason };
    let mut alerts = Vec::with_capacity(opened.len());
    let mut last_seq = 0u64;
    for ((line, range), alert) in lines.into_iter().zip(&opened) {
        // Queries read the payload back out of the stored envelope as text: it must be UTF-8
        // without NUL bytes (a raw NUL is never valid JSON anyway).
        std::str::from_utf8(&alert.payload)
            .map_err(|e| malformed(line, format!("payload is not UTF-8: {e}")))?;
        if alert.payload.contains(&0) {
            return Err(malformed(line, "payload holds a NUL byte".into()));
        }
        let (link, fields) = match serde_json::from_slice::<PayloadFields>(&alert.payload) {
            Ok(f) => (
                LinkFields::into_link(f.nightjar),
                Summary {
                    timestamp: f.timestamp,
                    kibana: f.kibana,
                },
            ),
            Err(_) => (
                alert.link(),
                serde_json::from_slice(&alert.payload).unwrap_or_default(),
            ),
        };
        let link = link.map_err(|e| malformed(line, e.to_string()))?;
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
        let summary = fields.kibana.unwrap_or_default().alert.unwrap_or_default();
        let rule = summary.rule.unwrap_or_default();
        alerts.push(IncomingAlert {
            line,
            seq: link.seq,
            prev: link.prev,
            hash: alert.payload_hash(),
            envelope: body.slice(range),
            alert_time: fields
                .timestamp
                .as_deref()
                .and_then(crate::time::parse_rfc3339)
                .unwrap_or(received_at),
            uuid: indexed(summary.uuid),
            rule_id: indexed(rule.rule_id),
            rule_name: indexed(rule.name),
            severity: indexed(summary.severity),
        });
    }
    Ok(alerts)
}

/// The byte range of every line (from 1), without its `\r\n` or `\n`; an empty or
/// blank line is refused.
fn split_lines(body: &[u8]) -> Result<Vec<(usize, Range<usize>)>, BatchError> {
    let text_len = body.strip_suffix(b"\n").unwrap_or(body).len();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, raw) in body[..text_len].split(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        let end = start + raw.strip_suffix(b"\r").unwrap_or(raw).len();
        if body[start..end].iter().all(u8::is_ascii_whitespace) {
            return Err(BatchError::Malformed {
                line,
                reason: "empty line".into(),
            });
        }
        out.push((line, start..end));
        start += raw.len() + 1;
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_without_their_line_ends_and_blank_lines_refused() {
        let ranges = |b: &[u8]| {
            split_lines(b).map(|v| {
                v.into_iter()
                    .map(|(l, r)| (l, r.start, r.end))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            ranges(b"ab\ncd\r\ne"),
            Ok(vec![(1, 0, 2), (2, 3, 5), (3, 7, 8)])
        );
        assert_eq!(ranges(b"ab\n"), Ok(vec![(1, 0, 2)]));
        assert!(matches!(
            split_lines(b"ab\n\ncd"),
            Err(BatchError::Malformed { line: 2, .. })
        ));
        assert!(matches!(
            split_lines(b"ab\n \r\n"),
            Err(BatchError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn indexed_text_is_bounded_and_nul_free() {
        assert_eq!(indexed(Some("a\0b".into())), "ab");
        assert_eq!(indexed(Some("é".repeat(600).into())).len(), 1024);
        assert_eq!(indexed(None), "");
    }
}
