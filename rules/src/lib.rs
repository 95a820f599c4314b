//! Nightjar's rule engine: Elastic detection rules evaluated on an ECS view of each event.
//!
//! One library for every program that decides on events: the agent (detection), the sensor
//! (blocking rules, on what an Endpoint Security message carries) and the server (compiling a
//! policy before it signs it) link the same compiled matcher.
//!
//! Modules, by concern:
//! - [`ecs`]: the ECS field schema and the view of an event through it (parents through the
//!   [`ecs::Processes`] trait, so no process table is needed);
//! - [`query`]: KQL and EQL parsers, the query tree and its typing, with a typed
//!   [`query::BuildError`];
//! - [`pattern`]: wildcard patterns and Lucene regular expressions;
//! - [`matcher`]: the compiled matcher (trees, index, evaluation);
//! - [`check`]: EQL conditions over computed values (functions, field-to-field);
//! - [`program`], [`engine`]: what each rule computes (event queries, sequences, samples,
//!   new_terms, thresholds) and the engine that runs them over a stream, with bounded state;
//! - [`naive`]: a document-per-event interpreter, the baseline and test reference;
//! - [`loader`], [`builtin`]: rule files and the seed rule shipped in the binary;
//! - [`exceptions`]: Kibana exception lists, compiled, checked after a rule matches;
//! - [`filter`]: the file events a rule set can match, for the sensor's source filters;
//! - [`policy`]: the fleet policy document (rules, exceptions, `block`) the server signs;
//! - [`RuleSet`]: all of the above for a set of rule files (or a policy), with rule identity
//!   decided and the report `rules check` prints.

pub mod builtin;
pub mod check;
pub mod ecs;
pub mod engine;
pub mod exceptions;
pub mod filter;
pub mod loader;
pub mod matcher;
pub mod naive;
pub mod pattern;
pub mod policy;
pub mod program;
pub mod query;

mod report;
mod rule;
mod set;
mod source_map;

pub use report::{LoadReport, RuleReport, RuleStatus, RulesError};
pub use rule::{ListRef, RuleMeta};
pub use set::{
    Identity, MAX_EXCEPTION_FILE_BYTES, MAX_RULE_FILE_BYTES, RuleSet, Slot, SourceText, Sources,
    read_bounded, read_exception_files, read_rule_files,
};
