//! How each rule file fared when a set was loaded: what `rules check` prints.

use std::path::{Path, PathBuf};

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
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        RulesError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
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
    /// `file:line:col: message` for what loads but deserves a look (a field this host's
    /// events never carry, a likely misspelling).
    pub warnings: Vec<String>,
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
    pub fn warnings(&self) -> usize {
        self.entries.iter().map(|e| e.warnings.len()).sum()
    }
    fn count(&self, f: impl Fn(&RuleStatus) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.status)).count()
    }
}
