//! What is kept of a rule besides its query.

use std::path::PathBuf;
use std::time::Duration;

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
    /// `from` as a duration: how long stateful rules keep state without a `maxspan`, and a
    /// threshold rule's window.
    pub lookback: Duration,
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
    /// `[[rule.exceptions_list]]`: the exception lists this rule names (Kibana ties detection
    /// and rule-default lists to rules this way).
    pub exceptions_list: Vec<ListRef>,
}

/// One `[[rule.exceptions_list]]` entry: a list by its `list_id` and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRef {
    pub list_id: String,
    /// `single` (one Kibana space) or `agnostic` (every space).
    pub namespace_type: String,
}
