//! Which exception items a match must be tested against: an index over the values items
//! require.
//!
//! Exception items are mostly "this program" — an exact executable, signing id, team id or
//! name, or a path prefix — so each item is filed under one string field its query requires
//! (a conjunct that is an equality, a `match_any` of equalities, or a pattern with a literal
//! prefix). A match reads each indexed field of its event once and tests only the items its
//! values select, plus the few items that require no such value. The index is a filter: every
//! candidate is confirmed by its compiled tree, so it can only make checks cheaper, never
//! change an answer.

use std::collections::HashMap;

use crate::ecs::{EcsEvent, Field, FieldKind, Value};
use crate::query::ast::{Cmp, Query, Tok};
use crate::query::typing::{Test, TypedPred};

/// A value an item requires of one field.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// The whole value, byte for byte.
    Exact(Vec<u8>),
    /// The whole value, ASCII case folded (the key is lowercase ASCII).
    Folded(Vec<u8>),
    /// A start of the value; `folded`: ASCII case folded (lowercase ASCII).
    Prefix { bytes: Vec<u8>, folded: bool },
}

/// The items filed under one field.
#[derive(Debug, Default)]
struct FieldKeys {
    exact: HashMap<Box<[u8]>, Vec<u32>>,
    folded: HashMap<Box<[u8]>, Vec<u32>>,
    prefixes: Vec<(Box<[u8]>, bool, Vec<u32>)>,
}

impl FieldKeys {
    fn add(&mut self, key: Key, item: u32) {
        match key {
            Key::Exact(b) => self.exact.entry(b.into()).or_default().push(item),
            Key::Folded(b) => self.folded.entry(b.into()).or_default().push(item),
            Key::Prefix { bytes, folded } => {
                match self
                    .prefixes
                    .iter_mut()
                    .find(|(p, f, _)| **p == bytes[..] && *f == folded)
                {
                    Some((_, _, items)) => items.push(item),
                    None => self.prefixes.push((bytes.into(), folded, vec![item])),
                }
            }
        }
    }

    /// Appends the items `value` selects to `out`.
    fn probe(&self, value: &str, fold: &mut Vec<u8>, out: &mut Vec<u32>) {
        let bytes = value.as_bytes();
        if let Some(items) = self.exact.get(bytes) {
            out.extend_from_slice(items);
        }
        if !self.folded.is_empty() && value.is_ascii() {
            fold.clear();
            fold.extend(bytes.iter().map(u8::to_ascii_lowercase));
            if let Some(items) = self.folded.get(&fold[..]) {
                out.extend_from_slice(items);
            }
        }
        for (prefix, folded, items) in &self.prefixes {
            let Some(head) = bytes.get(..prefix.len()) else {
                continue;
            };
            let hit = if *folded {
                head.eq_ignore_ascii_case(prefix)
            } else {
                head == &prefix[..]
            };
            if hit {
                out.extend_from_slice(items);
            }
        }
    }
}

/// Items by the values they require, and the items that require none.
#[derive(Debug, Default)]
pub(super) struct ItemIndex {
    fields: Vec<(Field, FieldKeys)>,
    always: Vec<u32>,
}

/// The fields items are filed under when they require several: the most selective first.
const PREFERENCE: &[Field] = &[
    Field::Executable,
    Field::SigningId,
    Field::TeamId,
    Field::Name,
    Field::ParentExecutable,
    Field::ParentName,
    Field::Args,
];

impl ItemIndex {
    /// Files item `item`, whose typed query is `query`.
    pub(super) fn add(&mut self, query: &Query<TypedPred>, item: u32) {
        let mut conjuncts = Vec::new();
        flatten_and(query, &mut conjuncts);
        // `host.os.type` holds one value for every event of a host: never worth filing under.
        let best = conjuncts
            .iter()
            .filter_map(|q| required(q))
            .filter(|(field, _)| *field != Field::HostOsType)
            .min_by_key(|(field, keys)| {
                let rank = PREFERENCE
                    .iter()
                    .position(|f| f == field)
                    .unwrap_or(PREFERENCE.len());
                let prefix = keys.iter().any(|k| matches!(k, Key::Prefix { .. }));
                (rank, prefix, keys.len())
            });
        let Some((field, keys)) = best else {
            self.always.push(item);
            return;
        };
        let slot = match self.fields.iter().position(|(f, _)| *f == field) {
            Some(i) => i,
            None => {
                self.fields.push((field, FieldKeys::default()));
                self.fields.len() - 1
            }
        };
        for k in keys {
            self.fields[slot].1.add(k, item);
        }
    }

    /// The items `ev` may match, ascending, without repeats, into `out` (cleared first).
    pub(super) fn candidates(&self, ev: &EcsEvent<'_>, fold: &mut Vec<u8>, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.always);
        for (field, keys) in &self.fields {
            match ev.value(*field) {
                Value::Str(s) => keys.probe(s, fold, out),
                Value::Shared(s) => keys.probe(&s, fold, out),
                Value::Args(args) => {
                    for a in args.iter() {
                        keys.probe(a, fold, out);
                    }
                }
                _ => {}
            }
        }
        out.sort_unstable();
        out.dedup();
    }
}

fn flatten_and<'q>(q: &'q Query<TypedPred>, out: &mut Vec<&'q Query<TypedPred>>) {
    match q {
        Query::And(parts) => parts.iter().for_each(|p| flatten_and(p, out)),
        q => out.push(q),
    }
}

/// The field a conjunct requires a value of, and the values it accepts (any one of them).
fn required(q: &Query<TypedPred>) -> Option<(Field, Vec<Key>)> {
    match q {
        Query::Leaf(p) => Some((p.field?, vec![key_of(p)?])),
        Query::Or(parts) => {
            let mut field = None;
            let mut keys = Vec::new();
            for part in parts {
                let (f, k) = required(part)?;
                if *field.get_or_insert(f) != f {
                    return None;
                }
                keys.extend(k);
            }
            Some((field?, keys))
        }
        _ => None,
    }
}

fn key_of(p: &TypedPred) -> Option<Key> {
    if p.kind != FieldKind::Keyword {
        return None;
    }
    match &p.test {
        Test::Str(Cmp::Eq, v) => Some(Key::Exact(v.as_bytes().to_vec())),
        Test::Pattern { toks, ci } => {
            let (literal, rest) = match toks.split_first() {
                Some((Tok::Lit(l), rest)) => (l, rest),
                _ => return None,
            };
            if *ci && !literal.is_ascii() {
                return None;
            }
            let bytes = if *ci {
                literal.to_ascii_lowercase().into_bytes()
            } else {
                literal.as_bytes().to_vec()
            };
            Some(match (rest.is_empty(), *ci) {
                (true, false) => Key::Exact(bytes),
                (true, true) => Key::Folded(bytes),
                (false, folded) => Key::Prefix { bytes, folded },
            })
        }
        _ => None,
    }
}
