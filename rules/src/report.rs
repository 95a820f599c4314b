//! How each rule file fared when a set was loaded: what `rules check` prints.

use std::path::{Path, PathBuf};

/// A rules or exceptions path that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes is over the {max}-byte limit of a {what}")]
    TooLarge {
        path: PathBuf,
        size: u64,
        max: u64,
        what: &'static str,
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
    /// Loaded, but another rule with the same `rule_id` took its place (a file rule replaces
    /// the built-in one; in a policy the higher `version` wins): says which and why.
    Shadowed(String),
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

/// Every rule file looked at, in load order, and how the exceptions and the `block` list
/// fared.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub entries: Vec<RuleReport>,
    /// Exception files that cannot be used: `file:line: message`.
    pub exception_errors: Vec<String>,
    /// What loads but deserves a look: `file:line: message`.
    pub exception_warnings: Vec<String>,
    /// Exception items compiled.
    pub exception_items: usize,
    /// `block` entries that name no rule that can run here.
    pub block_errors: Vec<String>,
    /// Rules named in `block` that cannot block on this platform, with the reason: they
    /// still detect (not an error).
    pub block_refused: Vec<String>,
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
    pub fn shadowed(&self) -> usize {
        self.count(|s| matches!(s, RuleStatus::Shadowed(_)))
    }
    pub fn warnings(&self) -> usize {
        self.entries.iter().map(|e| e.warnings.len()).sum()
    }
    /// Every error of the load, rules first: what makes a policy or a scan refuse the set.
    pub fn problems(&self) -> Vec<&str> {
        let rules = self.entries.iter().filter_map(|e| match &e.status {
            RuleStatus::Error(m) => Some(m.as_str()),
            _ => None,
        });
        rules
            .chain(self.exception_errors.iter().map(String::as_str))
            .chain(self.block_errors.iter().map(String::as_str))
            .collect()
    }
    fn count(&self, f: impl Fn(&RuleStatus) -> bool) -> usize {
        self.entries.iter().filter(|e| f(&e.status)).count()
    }
}
