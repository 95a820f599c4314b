//! Join and group keys: the values of a rule's `by` (or `group_by`) fields in one event,
//! encoded as bytes so equal values make equal keys whatever field they came from.

use crate::ecs::{EcsEvent, Field, Value};

/// A key field: its id (`None`: never produced) and whether it may be null (`?field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct KeyField {
    pub(super) field: Option<Field>,
    pub(super) optional: bool,
}

impl KeyField {
    pub(super) fn new(name: &str, optional: bool) -> KeyField {
        KeyField {
            field: Field::from_name(name),
            optional,
        }
    }
}

/// Writes the key of `ev` for `fields` into `buf` (cleared first). False when a field that
/// may not be null is missing: the event takes no part in a match then, as in
/// Elasticsearch.
pub(super) fn key_of(ev: &EcsEvent<'_>, fields: &[KeyField], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    for f in fields {
        let value = f.field.map_or(Value::Missing, |id| ev.value(id));
        if !push_value(&value, buf) && !f.optional {
            return false;
        }
    }
    true
}

/// Appends one value: a tag, then its bytes, length-prefixed. False for a missing value
/// (a null tag is written).
fn push_value(v: &Value<'_>, buf: &mut Vec<u8>) -> bool {
    let text = |tag: u8, s: &[u8], buf: &mut Vec<u8>| {
        buf.push(tag);
        buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
        buf.extend_from_slice(s);
    };
    match v {
        Value::Missing => {
            buf.push(0);
            return false;
        }
        Value::Str(s) => text(1, s.as_bytes(), buf),
        Value::Shared(s) => text(1, s.as_bytes(), buf),
        Value::Entity(e) => text(1, e.as_str().as_bytes(), buf),
        Value::Id(n) => {
            let mut d = [0u8; 10];
            let mut i = d.len();
            let mut n = *n;
            loop {
                i -= 1;
                d[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            text(1, &d[i..], buf)
        }
        Value::Args(a) => text(2, a.joined().as_bytes(), buf),
        // The command line: argv, whose NUL-joined form is as unique as the spaced one.
        Value::Joined(a) => text(3, a.joined().as_bytes(), buf),
        Value::Long(n) => {
            buf.push(4);
            buf.extend_from_slice(&n.to_le_bytes());
        }
        Value::Bool(b) => {
            buf.push(5);
            buf.push(u8::from(*b));
        }
    }
    true
}
