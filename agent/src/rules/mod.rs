//! Elastic detection rules: loading TOML, KQL and EQL, and the compiled matcher.
//!
//! - [`loader`]: rule files -> metadata + parsed query, or unsupported (why), or an error at
//!   `file:line:col`;
//! - [`kql`], [`eql`]: the two query languages, parsed into one [`ast::Query`];
//! - [`compile`]: the matcher the agent runs on every event;
//! - [`naive`]: a document-per-event interpreter, the baseline and test reference;
//! - [`builtin`]: the seed rule shipped in the binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ecs::EcsEvent;

pub mod ast;
pub mod builtin;
pub mod compile;
pub mod eql;
pub mod kql;
pub mod loader;
pub mod naive;
pub mod pattern;

use ast::{Query, TypedPred};
use loader::Loaded;

/// A syntax error inside a query: byte offset in the query text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

/// A rules path that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RulesError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        RulesError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What the agent keeps of a rule: everything an alert and the scheduler need.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleMeta {
    pub rule_id: String,
    pub name: String,
    pub version: Option<u32>,
    pub severity: String,
    pub risk_score: u32,
    pub rule_type: String,
    pub language: String,
    /// Look-back of the rule as Elastic schedules it (`now-9m`); kept for the alert.
    pub from: String,
    /// The window `max_signals` applies to.
    pub interval: Duration,
    /// Most alerts per rule per `interval` (0 = no cap).
    pub max_signals: u32,
    /// `[[rule.threat]]` as JSON, copied into alerts.
    pub threat: serde_json::Value,
    pub tags: Vec<String>,
    pub description: String,
    pub query: String,
    /// The file the rule came from.
    pub source: PathBuf,
}

/// How one rule file fared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleStatus {
    Ok,
    Unsupported(String),
    /// `file:line:col: message`.
    Error(String),
}

/// One entry of a [`LoadReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleReport {
    pub path: PathBuf,
    pub rule_id: Option<String>,
    pub name: Option<String>,
    pub status: RuleStatus,
}

/// Every rule file looked at, in load order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub entries: Vec<RuleReport>,
}

impl LoadReport {
    pub fn ok(&self) -> usize {
        self.count(|s| matches!(s, RuleStatus::Ok))
    }
    pub fn unsupported(&self) -> usize {
        self.count(|s| matches!(s, RuleStatus::Unsupported(_)))
    }
    pub fn errors(&self) -> usize {
        self.count(|s| matches!(s, RuleStatus::Error(_)))
    }
    fn count(&self, f: impl Fn(&RuleStatus) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.status)).count()
    }
}

/// Loaded and compiled rules.
#[derive(Debug)]
pub struct RuleSet {
    metas: Vec<RuleMeta>,
    queries: Vec<Query<TypedPred>>,
    matcher: compile::Matcher,
}

impl RuleSet {
    /// Loads every rule under `paths` (files or directory trees), plus the built-in seed rule
    /// when `builtin`. Unsupported rules and rules with errors are left out of the set and
    /// listed in the report; only an unreadable path fails the whole load.
    /// `max_signals_override` replaces every rule's `max_signals`.
    pub fn load(
        paths: &[PathBuf],
        builtin: bool,
        max_signals_override: Option<u32>,
    ) -> Result<(RuleSet, LoadReport), RulesError> {
        let mut sources: Vec<(String, Result<Loaded, loader::FileError>)> = Vec::new();
        if builtin {
            sources.push((builtin::SOURCE.to_owned(), builtin::load()));
        }
        for path in paths {
            for file in loader::rule_files(path)? {
                let text = std::fs::read_to_string(&file).map_err(|e| RulesError::io(&file, e))?;
                let display = file.display().to_string();
                let loaded = loader::load_text(&display, &text);
                sources.push((display, loaded));
            }
        }
        Ok(Self::from_loaded(sources, max_signals_override))
    }

    /// Builds a set from rule texts (`(name, toml)`), as [`RuleSet::load`] does from files.
    pub fn from_texts(
        texts: &[(&str, &str)],
        max_signals_override: Option<u32>,
    ) -> (RuleSet, LoadReport) {
        let sources = texts
            .iter()
            .map(|(name, text)| (name.to_string(), loader::load_text(name, text)))
            .collect();
        Self::from_loaded(sources, max_signals_override)
    }

    fn from_loaded(
        sources: Vec<(String, Result<Loaded, loader::FileError>)>,
        max_signals_override: Option<u32>,
    ) -> (RuleSet, LoadReport) {
        let mut report = LoadReport::default();
        let mut metas = Vec::new();
        let mut queries = Vec::new();
        for (display, loaded) in sources {
            let path = PathBuf::from(&display);
            let entry = match loaded {
                Ok(Loaded::Rule(mut meta, q)) => {
                    if let Some(cap) = max_signals_override {
                        meta.max_signals = cap;
                    }
                    let e = RuleReport {
                        path,
                        rule_id: Some(meta.rule_id.clone()),
                        name: Some(meta.name.clone()),
                        status: RuleStatus::Ok,
                    };
                    metas.push(*meta);
                    queries.push(q);
                    e
                }
                Ok(Loaded::Unsupported(meta, why)) => RuleReport {
                    path,
                    rule_id: Some(meta.rule_id),
                    name: Some(meta.name),
                    status: RuleStatus::Unsupported(why),
                },
                Err(e) => RuleReport {
                    path,
                    rule_id: e.rule_id,
                    name: e.name,
                    status: RuleStatus::Error(e.message),
                },
            };
            report.entries.push(entry);
        }
        // Regexes were validated while typing, so compiling cannot fail; a failure would be a
        // bug, reported against the rule rather than panicking.
        let refs: Vec<&Query<TypedPred>> = queries.iter().collect();
        let matcher = match compile::Matcher::new(&refs) {
            Ok(m) => m,
            Err((i, msg)) => {
                let bad = metas.remove(i);
                queries.remove(i);
                if let Some(e) = report.entries.iter_mut().find(|e| {
                    e.rule_id.as_deref() == Some(bad.rule_id.as_str()) && e.status == RuleStatus::Ok
                }) {
                    e.status = RuleStatus::Error(format!("{}: {msg}", bad.source.display()));
                }
                let refs: Vec<&Query<TypedPred>> = queries.iter().collect();
                compile::Matcher::new(&refs).unwrap_or_default()
            }
        };
        (
            RuleSet {
                metas,
                queries,
                matcher,
            },
            report,
        )
    }

    /// The supported rules; a rule's index here is what [`RuleSet::evaluate`] reports.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
    }

    /// Appends the indices of matching rules to `out` (cleared first), ascending. No
    /// allocation once `out` has capacity.
    pub fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        self.matcher.evaluate(ev, out);
    }

    /// The same rules for the document-per-event interpreter.
    pub fn naive(&self) -> Result<naive::NaiveRules, String> {
        let refs: Vec<&Query<TypedPred>> = self.queries.iter().collect();
        naive::NaiveRules::new(&refs)
    }

    /// The typed queries, index-aligned with [`RuleSet::rules`].
    pub fn queries(&self) -> &[Query<TypedPred>] {
        &self.queries
    }
}
