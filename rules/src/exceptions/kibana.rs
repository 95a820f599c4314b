//! Kibana's exception-list export (NDJSON): one `exception_list` or `exception_list_item`
//! object per line, and the export summary Kibana appends (skipped).
//!
//! Every line is untrusted: lines, items, entries, values and field names are bounded, and
//! each refusal names the file, the line and the key (`entries[1].operator`). Unknown keys
//! are ignored (Kibana adds bookkeeping such as `_version`, `tie_breaker_id`, `comments`);
//! unknown values of the keys that decide what an item means are errors, never guesses.

use std::io::BufRead;

use nightjar_proto::ndjson::{Line, LineReader, parse_rfc3339_ns};
use serde_json::{Map, Value};

use super::{
    ExceptionError, MAX_ENTRIES, MAX_FIELD_BYTES, MAX_ITEMS, MAX_LINE_BYTES, MAX_VALUE_BYTES,
    MAX_VALUES,
};

/// What a list is for, which decides the rules its items apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `endpoint` (the Endpoint Security exception list): every rule.
    Endpoint,
    /// `detection`: the rules whose `exceptions_list` names it.
    Detection,
    /// `rule_default`: a rule's own list, tied to it by its `exceptions_list` too.
    RuleDefault,
}

/// An operating system as `os_types` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsType {
    Linux,
    Macos,
    Windows,
}

impl OsType {
    /// The `host.os.type` value of events from this system.
    pub fn as_str(self) -> &'static str {
        match self {
            OsType::Linux => "linux",
            OsType::Macos => "macos",
            OsType::Windows => "windows",
        }
    }
}

/// Where something was read: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// An `exception_list` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDef {
    pub list_id: String,
    /// `single` or `agnostic`.
    pub namespace_type: String,
    pub kind: ListKind,
    pub name: String,
    pub origin: Origin,
}

/// One entry of an item: a condition on one field. An item's entries are ANDed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `match`: the field holds this value (`excluded`: it does not).
    Match {
        field: String,
        value: String,
        excluded: bool,
    },
    /// `match_any`: the field holds one of these values.
    MatchAny {
        field: String,
        values: Vec<String>,
        excluded: bool,
    },
    /// `wildcard` (`matches` in Kibana): `*` any characters, `?` one, `\` escapes.
    Wildcard {
        field: String,
        value: String,
        excluded: bool,
    },
    /// `exists`: the field has a value.
    Exists { field: String, excluded: bool },
    /// `nested`: every sub-entry holds on the same object under `field`.
    Nested { field: String, entries: Vec<Entry> },
}

/// An `exception_list_item` object. Its entries are ANDed; a list's items are ORed.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemDef {
    pub item_id: String,
    pub name: String,
    pub list_id: String,
    pub namespace_type: String,
    /// Empty: every system.
    pub os_types: Vec<OsType>,
    /// Unix nanoseconds after which the item no longer applies.
    pub expire_ns: Option<i64>,
    pub entries: Vec<Entry>,
    pub origin: Origin,
}

/// The lists and items of one or more export files, as read (not yet tied to rules).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExceptionSource {
    pub lists: Vec<ListDef>,
    pub items: Vec<ItemDef>,
}

impl ExceptionSource {
    /// Reads one export file's text; `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<ExceptionSource, Vec<ExceptionError>> {
        Self::read(file, text.as_bytes())
    }

    /// Reads one export from `input`, line by line with a bounded buffer. Every problem of
    /// the file is returned (up to a bound), each naming `file:line`.
    pub fn read(
        file: &str,
        mut input: impl BufRead,
    ) -> Result<ExceptionSource, Vec<ExceptionError>> {
        const MAX_ERRORS: usize = 50;
        let mut out = ExceptionSource::default();
        let mut errors = Vec::new();
        let mut lines = LineReader::default();
        let mut line_no = 0usize;
        loop {
            line_no += 1;
            let origin = Origin {
                file: file.to_owned(),
                line: line_no,
            };
            let text = match lines.next_line(&mut input, MAX_LINE_BYTES) {
                Ok(Line::End) => break,
                Ok(Line::TooLong(n)) => {
                    errors.push(ExceptionError::at(
                        &origin,
                        format!("line of {n} bytes is over the {MAX_LINE_BYTES}-byte limit"),
                    ));
                    continue;
                }
                Ok(Line::Text(t)) => t,
                Err(e) => {
                    errors.push(ExceptionError::at(&origin, format!("read: {e}")));
                    break;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            if let Err(e) = out.line(text, origin) {
                errors.push(e);
                if errors.len() >= MAX_ERRORS {
                    break;
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Adds another file's lists and items.
    pub fn extend(&mut self, other: ExceptionSource) {
        self.lists.extend(other.lists);
        self.items.extend(other.items);
    }

    fn line(&mut self, text: &str, origin: Origin) -> Result<(), ExceptionError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| ExceptionError::at(&origin, format!("not JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(ExceptionError::at(&origin, "expected a JSON object"));
        };
        if obj.keys().any(|k| k.starts_with("exported_")) {
            // Kibana's export summary: counts only.
            return Ok(());
        }
        let fields = Fields {
            obj: &obj,
            origin: &origin,
            prefix: String::new(),
        };
        if obj.contains_key("entries") || obj.contains_key("item_id") {
            if self.items.len() >= MAX_ITEMS {
                return Err(ExceptionError::at(
                    &origin,
                    format!("more than {MAX_ITEMS} exception items"),
                ));
            }
            let item = item(&fields)?;
            self.items.push(item);
        } else if obj.contains_key("list_id") {
            let list = list(&fields)?;
            self.lists.push(list);
        } else {
            return Err(ExceptionError::at(
                &origin,
                "neither an exception_list (`list_id`, `type`) nor an exception_list_item \
                 (`item_id`, `entries`)",
            ));
        }
        Ok(())
    }
}

/// An object being read, and where, for messages.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    origin: &'a Origin,
    /// Key path of this object inside the line (`entries[2].`).
    prefix: String,
}

impl Fields<'_> {
    fn err(&self, key: &str, message: impl std::fmt::Display) -> ExceptionError {
        ExceptionError::at(self.origin, format!("{}{key}: {message}", self.prefix))
    }

    fn str_opt(&self, key: &str, max: usize) -> Result<Option<&str>, ExceptionError> {
        match self.obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() > max => {
                Err(self.err(key, format!("longer than {max} bytes")))
            }
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(key, format!("expected a string, found {}", kind(other)))),
        }
    }

    fn str_req(&self, key: &str, max: usize) -> Result<&str, ExceptionError> {
        match self.str_opt(key, max)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => Err(self.err(key, "must not be empty")),
            None => Err(self.err(key, "missing")),
        }
    }

    fn namespace(&self) -> Result<String, ExceptionError> {
        match self.str_opt("namespace_type", 32)? {
            None | Some("single") => Ok("single".to_owned()),
            Some("agnostic") => Ok("agnostic".to_owned()),
            Some(other) => Err(self.err(
                "namespace_type",
                format!("expected `single` or `agnostic`, found {other:?}"),
            )),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn list(f: &Fields<'_>) -> Result<ListDef, ExceptionError> {
    let list_id = f.str_req("list_id", MAX_FIELD_BYTES)?.to_owned();
    let kind = match f.str_req("type", 64)? {
        "endpoint" => ListKind::Endpoint,
        "detection" => ListKind::Detection,
        "rule_default" => ListKind::RuleDefault,
        t @ ("endpoint_trusted_apps"
        | "endpoint_trusted_devices"
        | "endpoint_events"
        | "endpoint_host_isolation_exceptions"
        | "endpoint_blocklists") => {
            return Err(f.err(
                "type",
                format!(
                    "`{t}` lists configure Elastic Defend itself (trusted applications, event \
                     filters, host isolation, blocklists), not alert exceptions"
                ),
            ));
        }
        other => {
            return Err(f.err(
                "type",
                format!("expected `detection`, `endpoint` or `rule_default`, found {other:?}"),
            ));
        }
    };
    Ok(ListDef {
        namespace_type: f.namespace()?,
        name: f
            .str_opt("name", MAX_VALUE_BYTES)?
            .unwrap_or(&list_id)
            .to_owned(),
        list_id,
        kind,
        origin: f.origin.clone(),
    })
}

fn item(f: &Fields<'_>) -> Result<ItemDef, ExceptionError> {
    let item_id = f.str_req("item_id", MAX_FIELD_BYTES)?.to_owned();
    let named = Fields {
        obj: f.obj,
        origin: f.origin,
        prefix: format!("item `{item_id}`: "),
    };
    let f = &named;
    let list_id = f.str_req("list_id", MAX_FIELD_BYTES)?.to_owned();
    match f.str_opt("type", 64)? {
        None | Some("simple") => {}
        Some(other) => {
            return Err(f.err("type", format!("expected `simple`, found {other:?}")));
        }
    }
    let os_types = match f.obj.get("os_types") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(v)) => {
            let mut out = Vec::new();
            for (i, os) in v.iter().enumerate() {
                let os = match os.as_str() {
                    Some("linux") => OsType::Linux,
                    Some("macos") => OsType::Macos,
                    Some("windows") => OsType::Windows,
                    _ => {
                        return Err(f.err(
                            &format!("os_types[{i}]"),
                            format!("expected `linux`, `macos` or `windows`, found {os}"),
                        ));
                    }
                };
                if !out.contains(&os) {
                    out.push(os);
                }
            }
            out
        }
        Some(other) => {
            return Err(f.err(
                "os_types",
                format!("expected an array, found {}", kind(other)),
            ));
        }
    };
    let expire_ns = match f.str_opt("expire_time", 64)? {
        None => None,
        Some(t) => Some(parse_rfc3339_ns(t).ok_or_else(|| {
            f.err(
                "expire_time",
                format!("expected an ISO 8601 time such as 2026-01-31T00:00:00.000Z, found {t:?}"),
            )
        })?),
    };
    let entries = match f.obj.get("entries") {
        Some(Value::Array(v)) if v.is_empty() => return Err(f.err("entries", "must not be empty")),
        Some(Value::Array(v)) => v,
        Some(other) => {
            return Err(f.err(
                "entries",
                format!("expected an array, found {}", kind(other)),
            ));
        }
        None => return Err(f.err("entries", "missing")),
    };
    let mut budget = MAX_ENTRIES;
    let entries = entries_of(f, "entries", entries, true, &mut budget)?;
    Ok(ItemDef {
        name: f
            .str_opt("name", MAX_VALUE_BYTES)?
            .unwrap_or(&item_id)
            .to_owned(),
        item_id,
        namespace_type: f.namespace()?,
        list_id,
        os_types,
        expire_ns,
        entries,
        origin: f.origin.clone(),
    })
}

/// The entries array at `key`; `top` allows `nested` (Kibana allows one level).
fn entries_of(
    f: &Fields<'_>,
    key: &str,
    values: &[Value],
    top: bool,
    budget: &mut usize,
) -> Result<Vec<Entry>, ExceptionError> {
    let mut out = Vec::with_capacity(values.len().min(MAX_ENTRIES));
    for (i, v) in values.iter().enumerate() {
        if *budget == 0 {
            return Err(f.err(key, format!("more than {MAX_ENTRIES} entries in one item")));
        }
        *budget -= 1;
        let Value::Object(obj) = v else {
            return Err(f.err(
                &format!("{key}[{i}]"),
                format!("expected an object, found {}", kind(v)),
            ));
        };
        let e = Fields {
            obj,
            origin: f.origin,
            prefix: format!("{}{key}[{i}].", f.prefix),
        };
        out.push(entry(&e, top, budget)?);
    }
    Ok(out)
}

fn entry(e: &Fields<'_>, top: bool, budget: &mut usize) -> Result<Entry, ExceptionError> {
    let field = e.str_req("field", MAX_FIELD_BYTES)?.to_owned();
    if field.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(e.err("field", format!("{field:?} is not a field name")));
    }
    let ty = e.str_req("type", 32)?;
    let excluded = || match e.str_opt("operator", 32)? {
        Some("included") => Ok(false),
        Some("excluded") => Ok(true),
        Some(other) => Err(e.err(
            "operator",
            format!("expected `included` or `excluded`, found {other:?}"),
        )),
        None => Err(e.err("operator", "missing")),
    };
    let value = || {
        e.str_opt("value", MAX_VALUE_BYTES)?
            .ok_or_else(|| e.err("value", "missing"))
    };
    Ok(match ty {
        "match" => Entry::Match {
            value: value()?.to_owned(),
            excluded: excluded()?,
            field,
        },
        "wildcard" if top => Entry::Wildcard {
            value: value()?.to_owned(),
            excluded: excluded()?,
            field,
        },
        "match_any" => {
            let values = match e.obj.get("value") {
                Some(Value::Array(v)) if v.is_empty() => {
                    return Err(e.err("value", "must not be empty"));
                }
                Some(Value::Array(v)) if v.len() > MAX_VALUES => {
                    return Err(e.err("value", format!("more than {MAX_VALUES} values")));
                }
                Some(Value::Array(v)) => v
                    .iter()
                    .enumerate()
                    .map(|(i, s)| match s {
                        Value::String(s) if s.len() <= MAX_VALUE_BYTES => Ok(s.clone()),
                        Value::String(_) => Err(e.err(
                            &format!("value[{i}]"),
                            format!("longer than {MAX_VALUE_BYTES} bytes"),
                        )),
                        other => Err(e.err(
                            &format!("value[{i}]"),
                            format!("expected a string, found {}", kind(other)),
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Some(other) => {
                    return Err(e.err(
                        "value",
                        format!("expected an array of strings, found {}", kind(other)),
                    ));
                }
                None => return Err(e.err("value", "missing")),
            };
            Entry::MatchAny {
                values,
                excluded: excluded()?,
                field,
            }
        }
        "exists" => Entry::Exists {
            excluded: excluded()?,
            field,
        },
        "nested" if top => {
            let entries = match e.obj.get("entries") {
                Some(Value::Array(v)) if !v.is_empty() => v,
                Some(Value::Array(_)) => return Err(e.err("entries", "must not be empty")),
                Some(other) => {
                    return Err(e.err(
                        "entries",
                        format!("expected an array, found {}", kind(other)),
                    ));
                }
                None => return Err(e.err("entries", "missing")),
            };
            Entry::Nested {
                entries: entries_of(e, "entries", entries, false, budget)?,
                field,
            }
        }
        "nested" | "wildcard" => {
            return Err(e.err(
                "type",
                format!(
                    "a nested entry holds `match`, `match_any` or `exists` entries, not `{ty}`"
                ),
            ));
        }
        "list" => {
            return Err(e.err(
                "type",
                "`list` entries test Kibana value lists, which live in Elasticsearch; \
                 write the values as a `match_any` entry instead",
            ));
        }
        other => {
            return Err(e.err(
                "type",
                format!(
                    "expected `match`, `match_any`, `wildcard`, `exists` or `nested`, found {other:?}"
                ),
            ));
        }
    })
}
