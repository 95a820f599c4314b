//! Exception items compiled into the rule engine's own trees: an item becomes one query
//! (its entries ANDed, its `os_types` as a `host.os.type` test, as Kibana's detection engine
//! builds it), typed against the ECS schema and compiled by [`crate::matcher`], so a match is
//! checked against exceptions without interpreting anything per event.
//!
//! A match is tested only against the items its event's values select ([`ItemIndex`]).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::ecs::{EcsEvent, FieldKind, kind_of};
use crate::matcher::CompiledRule;
use crate::query::ast::{Cmp, Lit, Op, Pred, Query, Tok};
use crate::query::typing::TypedPred;

use super::index::ItemIndex;

use super::ExceptionError;
use super::kibana::{Entry, ExceptionSource, ItemDef, ListDef, ListKind, OsType};

/// Every exception item of a rule set, compiled and indexed.
#[derive(Debug, Default)]
pub struct CompiledExceptions {
    items: Vec<CompiledItem>,
    index: ItemIndex,
    lists: Vec<CompiledList>,
    by_id: HashMap<(String, String), u32>,
}

#[derive(Debug)]
struct CompiledItem {
    tree: CompiledRule,
    expire_ns: Option<i64>,
    item_id: String,
    /// Its list, an index into `lists`.
    list: u32,
}

/// One list of a rule set.
#[derive(Debug)]
pub struct CompiledList {
    pub list_id: String,
    pub namespace_type: String,
    pub kind: ListKind,
}

/// Reused from one check to the next: candidate items, a folded-case buffer.
#[derive(Debug, Default)]
struct Scratch {
    candidates: Vec<u32>,
    fold: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// What compiling a source gave besides the lists: warnings (`file:line: message`).
#[derive(Debug, Default)]
pub struct CompileNotes {
    pub warnings: Vec<String>,
    pub items: usize,
}

impl CompiledExceptions {
    /// Compiles every item of `source`. Errors name `file:line` and the entry; an item whose
    /// list is missing from the source is an error (`endpoint_list` excepted: Kibana's
    /// endpoint list exists in every space, so items may come without it).
    pub fn compile(
        source: &ExceptionSource,
    ) -> Result<(CompiledExceptions, CompileNotes), Vec<ExceptionError>> {
        let mut out = CompiledExceptions::default();
        let mut notes = CompileNotes::default();
        let mut errors = Vec::new();
        let mut defined: HashMap<(String, String), String> = HashMap::new();
        for l in &source.lists {
            let key = (l.namespace_type.clone(), l.list_id.clone());
            if let Some(first) = defined.get(&key) {
                errors.push(ExceptionError::at(
                    &l.origin,
                    format!(
                        "exception list `{}` ({}) is defined twice (also at {first})",
                        l.list_id, l.namespace_type
                    ),
                ));
                continue;
            }
            defined.insert(key, l.origin.to_string());
            out.add_list(l);
        }
        let mut seen: HashMap<(String, String, String), String> = HashMap::new();
        for item in &source.items {
            let key = (item.namespace_type.clone(), item.list_id.clone());
            let list = match out.by_id.get(&key) {
                Some(&i) => i,
                None if item.list_id == "endpoint_list" => out.add_list(&ListDef {
                    list_id: item.list_id.clone(),
                    namespace_type: item.namespace_type.clone(),
                    kind: ListKind::Endpoint,
                    name: "Endpoint Security Exception List".into(),
                    origin: item.origin.clone(),
                }),
                None => {
                    errors.push(ExceptionError::at(
                        &item.origin,
                        format!(
                            "item `{}`: its list `{}` ({}) is not in the exception files \
                             (export the list with its items)",
                            item.item_id, item.list_id, item.namespace_type
                        ),
                    ));
                    continue;
                }
            };
            let dup = (
                item.namespace_type.clone(),
                item.list_id.clone(),
                item.item_id.clone(),
            );
            if let Some(first) = seen.get(&dup) {
                errors.push(ExceptionError::at(
                    &item.origin,
                    format!(
                        "item `{}` of list `{}` is defined twice (also at {first})",
                        item.item_id, item.list_id
                    ),
                ));
                continue;
            }
            seen.insert(dup, item.origin.to_string());
            let kind = out.lists[list as usize].kind;
            match compile_item(item, kind) {
                Ok((typed, warnings)) => {
                    notes.warnings.extend(warnings);
                    out.index.add(&typed, out.items.len() as u32);
                    out.items.push(CompiledItem {
                        tree: CompiledRule::new(&typed),
                        expire_ns: item.expire_ns,
                        item_id: item.item_id.clone(),
                        list,
                    });
                    notes.items += 1;
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok((out, notes))
        } else {
            Err(errors)
        }
    }

    fn add_list(&mut self, l: &ListDef) -> u32 {
        let idx = self.lists.len() as u32;
        self.lists.push(CompiledList {
            list_id: l.list_id.clone(),
            namespace_type: l.namespace_type.clone(),
            kind: l.kind,
        });
        self.by_id
            .insert((l.namespace_type.clone(), l.list_id.clone()), idx);
        idx
    }

    /// The lists, indexed as [`CompiledExceptions::excepting`] takes them.
    pub fn lists(&self) -> &[CompiledList] {
        self.lists.iter().as_slice()
    }

    /// The list `list_id` in `namespace_type`, if any.
    pub fn list_index(&self, list_id: &str, namespace_type: &str) -> Option<u32> {
        self.by_id
            .get(&(namespace_type.to_owned(), list_id.to_owned()))
            .copied()
    }

    /// The first item of `lists` that excepts `ev` at `now_ns` (items past their
    /// `expire_time` no longer apply); its `item_id`. Allocation-free once warm.
    pub fn excepting(&self, lists: &[u32], ev: &EcsEvent<'_>, now_ns: i64) -> Option<&str> {
        if lists.is_empty() || self.items.is_empty() {
            return None;
        }
        let check = |sc: &mut Scratch| {
            self.index.candidates(ev, &mut sc.fold, &mut sc.candidates);
            sc.candidates
                .iter()
                .map(|&i| &self.items[i as usize])
                .find(|item| {
                    lists.contains(&item.list)
                        && item.expire_ns.is_none_or(|t| now_ns < t)
                        && item.tree.matches(ev)
                })
        };
        let found = SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut sc) => check(&mut sc),
            Err(_) => check(&mut Scratch::default()),
        });
        found.map(|item| item.item_id.as_str())
    }
}

/// Whether an entry on `field` compares case-insensitively, and the field it really tests.
///
/// Elastic's two evaluators differ, and each list kind follows its own:
/// - detection and rule-default lists run in the detection engine as Elasticsearch queries:
///   `match` is `match_phrase` and `wildcard` a `wildcard` query, both case-sensitive on
///   keyword fields; a `.caseless` field is Elastic Defend's lowercase-normalised multi-field
///   of the field before it, so it compares without case;
/// - endpoint lists are translated for Elastic Defend (Kibana's `translateEntry`): `match` and
///   `match_any` on a field ending in `.caseless`, `.name` or `.text`, and `wildcard` on one
///   ending in `.caseless` or `.text`, compare without case, except on Linux items (where
///   paths are case-sensitive); the `.caseless` and `.text` suffixes are dropped.
fn case_rule(kind: ListKind, field: &str, wildcard: bool, os: Option<OsType>) -> (String, bool) {
    let suffixed = |s: &str| field.strip_suffix(s).filter(|f| !f.is_empty());
    match kind {
        ListKind::Detection | ListKind::RuleDefault => match suffixed(".caseless") {
            Some(f) => (f.to_owned(), true),
            None => (field.to_owned(), false),
        },
        ListKind::Endpoint => {
            let stripped = suffixed(".caseless").or_else(|| suffixed(".text"));
            let marked = stripped.is_some() || (!wildcard && field.ends_with(".name"));
            let caseless = marked && os != Some(OsType::Linux);
            (stripped.unwrap_or(field).to_owned(), caseless)
        }
    }
}

/// An item as one query: its entries ANDed, with its operating systems.
fn compile_item(
    item: &ItemDef,
    kind: ListKind,
) -> Result<(Query<TypedPred>, Vec<String>), ExceptionError> {
    let os = item.os_types.first().copied();
    let mut parts = Vec::with_capacity(item.entries.len() + 1);
    if !item.os_types.is_empty() {
        let leaves = item
            .os_types
            .iter()
            .map(|o| {
                Query::Leaf(Pred {
                    field: "host.os.type".into(),
                    op: Op::Compare(Cmp::Eq, Lit::Str(o.as_str().into())),
                    at: usize::MAX,
                })
            })
            .collect();
        parts.push(Query::Or(leaves));
    }
    for (i, e) in item.entries.iter().enumerate() {
        parts.push(entry_query(e, "", kind, os, i));
    }
    let typed = Query::And(parts).typed().map_err(|e| {
        ExceptionError::at(
            &item.origin,
            format!("item `{}`: entries[{}]: {}", item.item_id, e.at, e.message),
        )
    })?;
    let warnings = typed
        .absent_fields()
        .into_iter()
        .map(|(name, _)| {
            format!(
                "{}: item `{}`: field `{name}` is not produced by this host's events: \
                 tests on it are false",
                item.origin, item.item_id
            )
        })
        .collect();
    Ok((typed, warnings))
}

fn entry_query(
    e: &Entry,
    parent: &str,
    kind: ListKind,
    os: Option<OsType>,
    at: usize,
) -> Query<Pred> {
    let full = |f: &str| {
        if parent.is_empty() {
            f.to_owned()
        } else {
            format!("{parent}.{f}")
        }
    };
    let negate = |q: Query<Pred>, excluded: bool| {
        if excluded { Query::Not(Box::new(q)) } else { q }
    };
    match e {
        Entry::Match {
            field,
            value,
            excluded,
        } => {
            let (name, ci) = case_rule(kind, &full(field), false, os);
            negate(Query::Leaf(equals(name, value, ci, at)), *excluded)
        }
        Entry::MatchAny {
            field,
            values,
            excluded,
        } => {
            let (name, ci) = case_rule(kind, &full(field), false, os);
            let leaves = values
                .iter()
                .map(|v| Query::Leaf(equals(name.clone(), v, ci, at)))
                .collect();
            negate(Query::Or(leaves), *excluded)
        }
        Entry::Wildcard {
            field,
            value,
            excluded,
        } => {
            let (name, ci) = case_rule(kind, &full(field), true, os);
            let leaf = Query::Leaf(Pred {
                field: name,
                op: Op::Pattern {
                    toks: wildcard_toks(value),
                    ci,
                },
                at,
            });
            negate(leaf, *excluded)
        }
        Entry::Exists { field, excluded } => {
            let (name, _) = case_rule(kind, &full(field), false, os);
            negate(
                Query::Leaf(Pred {
                    field: name,
                    op: Op::Exists,
                    at,
                }),
                *excluded,
            )
        }
        Entry::Nested { field, entries } => {
            // The view holds at most one object under any path, so "every sub-entry on the
            // same object" is every sub-entry on the fields under `field`.
            let base = full(field);
            Query::And(
                entries
                    .iter()
                    .map(|sub| entry_query(sub, &base, kind, os, at))
                    .collect(),
            )
        }
    }
}

/// `field` equals `value`: exactly (typed by the field's mapping), or without case on string
/// fields.
fn equals(field: String, value: &str, ci: bool, at: usize) -> Pred {
    let op = match kind_of(&field) {
        FieldKind::Keyword | FieldKind::Wildcard if ci => Op::Pattern {
            toks: vec![Tok::Lit(value.to_owned())],
            ci: true,
        },
        _ => Op::Compare(Cmp::Eq, Lit::Text(value.to_owned())),
    };
    Pred { field, op, at }
}

/// An Elasticsearch wildcard value: `*` any characters, `?` exactly one, `\` escapes the
/// next character (a trailing `\` is itself).
fn wildcard_toks(value: &str) -> Vec<Tok> {
    let mut toks = Vec::new();
    let mut lit = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => lit.push(chars.next().unwrap_or('\\')),
            '*' | '?' => {
                if !lit.is_empty() {
                    toks.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                toks.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        toks.push(Tok::Lit(lit));
    }
    toks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_rules_follow_each_evaluator() {
        let d = ListKind::Detection;
        let e = ListKind::Endpoint;
        let mac = Some(OsType::Macos);
        let linux = Some(OsType::Linux);
        assert_eq!(
            case_rule(d, "process.name", false, mac),
            ("process.name".into(), false)
        );
        assert_eq!(
            case_rule(d, "process.executable.caseless", true, mac),
            ("process.executable".into(), true)
        );
        assert_eq!(
            case_rule(e, "process.name", false, mac),
            ("process.name".into(), true)
        );
        assert_eq!(
            case_rule(e, "process.name", true, mac),
            ("process.name".into(), false)
        );
        assert_eq!(
            case_rule(e, "process.name", false, linux),
            ("process.name".into(), false)
        );
        assert_eq!(
            case_rule(e, "file.path.caseless", true, linux),
            ("file.path".into(), false)
        );
        assert_eq!(
            case_rule(e, "process.executable", false, mac),
            ("process.executable".into(), false)
        );
        assert_eq!(
            case_rule(e, ".caseless", false, mac),
            (".caseless".into(), false)
        );
    }

    #[test]
    fn wildcard_escapes() {
        assert_eq!(
            wildcard_toks(r"a\*b*c?\\"),
            vec![
                Tok::Lit("a*b".into()),
                Tok::Star,
                Tok::Lit("c".into()),
                Tok::One,
                Tok::Lit("\\".into())
            ]
        );
        assert_eq!(wildcard_toks("x\\"), vec![Tok::Lit("x\\".into())]);
    }
}
