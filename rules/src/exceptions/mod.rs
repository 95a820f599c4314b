//! Exceptions: Kibana exception lists, evaluated after a rule matches and before an alert is
//! made. An excepted match makes no alert (the agent counts it per rule).
//!
//! Semantics are Elastic's:
//! - a list's items are ORed; an item's entries are ANDed;
//! - entry types `match`, `match_any`, `wildcard`, `exists`, `nested` (one level, its
//!   entries on fields under the nested path), operators `included` / `excluded` (`excluded`
//!   negates the entry: on a field the event lacks it holds, as Elasticsearch's `must_not`);
//! - case: see [`compile`]'s `case_rule` (detection lists compare case-sensitively except on
//!   `.caseless` fields; endpoint lists as Kibana translates them for Elastic Defend);
//! - `os_types`: the item applies only to events whose `host.os.type` is one of them;
//! - `expire_time`: the item no longer applies from that time on (checked against the clock
//!   when the rule matches, as Kibana checks it when a rule runs);
//! - `endpoint` lists apply to every rule; `detection` and `rule_default` lists to the rules
//!   whose `exceptions_list` names them (or a policy's own links).
//!
//! `list` entries (value lists kept in Elasticsearch) and Elastic Defend's artifact lists
//! (trusted applications, event filters, blocklists) are refused with the reason.
//!
//! - [`kibana`]: reading the NDJSON export, bounded;
//! - [`compile`]: items as compiled trees of the rule engine;
//! - `index`: which items a match must be tested against.

pub mod compile;
mod index;
pub mod kibana;

pub use compile::{CompileNotes, CompiledExceptions, CompiledList};
pub use kibana::{Entry, ExceptionSource, ItemDef, ListDef, ListKind, Origin, OsType};

/// Longest line of an export (a `match_any` of many values is one line).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most items in one rule set.
pub const MAX_ITEMS: usize = 100_000;
/// Most entries in one item, nested entries included.
pub const MAX_ENTRIES: usize = 256;
/// Most values of one `match_any` entry.
pub const MAX_VALUES: usize = 10_000;
/// Longest value (Elastic's keyword fields never match past 1,024 characters).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;
/// Longest field name or id.
pub const MAX_FIELD_BYTES: usize = 256;

/// One problem of an exception file: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExceptionError(pub String);

impl ExceptionError {
    pub(crate) fn at(origin: &Origin, message: impl std::fmt::Display) -> ExceptionError {
        ExceptionError(format!("{origin}: {message}"))
    }
}
