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

/// Longest key held in place.
const INLINE: usize = 86;

/// A join or group key a machine holds: short keys (a host and entity id, a pid, a user)
/// in place, so a partial match on a new key allocates none; longer ones on the heap,
/// shared by the key's map entry and its queue entries.
#[derive(Clone)]
pub(super) enum HeldKey {
    /// Length, bytes.
    Inline(u8, [u8; INLINE]),
    Shared(std::sync::Arc<[u8]>),
}

impl HeldKey {
    pub(super) fn new(key: &[u8]) -> HeldKey {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            HeldKey::Inline(key.len() as u8, bytes)
        } else {
            HeldKey::Shared(key.into())
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            HeldKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            HeldKey::Shared(k) => k,
        }
    }
}

/// Hashes and compares as its bytes, so maps keyed by it are looked up by `&[u8]`.
impl std::borrow::Borrow<[u8]> for HeldKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl std::hash::Hash for HeldKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for HeldKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for HeldKey {}

impl std::fmt::Debug for HeldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::{HeldKey, INLINE};
    use std::collections::HashMap;

    /// Keys in place and on the heap hash and compare as their bytes.
    #[test]
    fn held_keys_are_their_bytes() {
        let mut map: HashMap<HeldKey, usize> = HashMap::new();
        let keys: Vec<Vec<u8>> = [0, 1, INLINE - 1, INLINE, INLINE + 1, 300]
            .iter()
            .map(|&n| (0..n).map(|i| i as u8).collect())
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let held = HeldKey::new(k);
            assert_eq!(held.as_bytes(), &k[..]);
            assert_eq!(matches!(held, HeldKey::Inline(..)), k.len() <= INLINE);
            map.insert(held, i);
        }
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(map.get(&k[..]), Some(&i));
        }
        assert_eq!(map.get(&[9u8][..]), None);
    }
}
