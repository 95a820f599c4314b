//! What a rule computes, beyond its event queries: single events, sequences and samples
//! (EQL), first-seen terms (`new_terms`) and counts per group (`threshold`).

use std::time::Duration;

use crate::query::ast::{Query, Sample, Sequence};
use crate::query::typing::TypedPred;

/// A rule's program, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleProgram {
    /// An alert for every event its query matches (KQL query rules, EQL event queries).
    Event(Query<TypedPred>),
    Sequence(Sequence<Query<TypedPred>>),
    Sample(Sample<Query<TypedPred>>),
    /// An alert when an event matching `query` carries a combination of `fields` values not
    /// seen on this host during the `history` window before it.
    NewTerms {
        query: Query<TypedPred>,
        fields: Vec<String>,
        history: Duration,
    },
    /// An alert when `value` events (or `cardinality` distinct values of a field) matching
    /// `query` fall within `window` for one combination of `group_by` values.
    Threshold {
        query: Query<TypedPred>,
        group_by: Vec<String>,
        value: u64,
        cardinality: Option<(String, u64)>,
        window: Duration,
    },
}

impl RuleProgram {
    /// Every event query, in order (a sequence's stages, then its `until`).
    pub fn queries(&self) -> Vec<&Query<TypedPred>> {
        match self {
            RuleProgram::Event(q)
            | RuleProgram::NewTerms { query: q, .. }
            | RuleProgram::Threshold { query: q, .. } => vec![q],
            RuleProgram::Sequence(s) => s
                .stages
                .iter()
                .chain(s.until.iter())
                .map(|st| &st.query)
                .collect(),
            RuleProgram::Sample(s) => s.stages.iter().map(|st| &st.query).collect(),
        }
    }

    /// Whether state across events is kept for it.
    pub fn is_stateful(&self) -> bool {
        !matches!(self, RuleProgram::Event(_))
    }

    /// Every field it joins, groups or counts on (besides its queries' fields).
    pub fn key_fields(&self) -> Vec<(&str, bool)> {
        match self {
            RuleProgram::Event(_) => Vec::new(),
            RuleProgram::Sequence(s) => {
                s.by.iter()
                    .chain(s.stages.iter().flat_map(|st| st.keys.iter()))
                    .chain(s.until.iter().flat_map(|st| st.keys.iter()))
                    .map(|k| (k.field.as_str(), k.optional))
                    .collect()
            }
            RuleProgram::Sample(s) => {
                s.by.iter()
                    .chain(s.stages.iter().flat_map(|st| st.keys.iter()))
                    .map(|k| (k.field.as_str(), k.optional))
                    .collect()
            }
            RuleProgram::NewTerms { fields, .. } => {
                fields.iter().map(|f| (f.as_str(), false)).collect()
            }
            RuleProgram::Threshold {
                group_by,
                cardinality,
                ..
            } => group_by
                .iter()
                .map(|f| (f.as_str(), false))
                .chain(cardinality.iter().map(|(f, _)| (f.as_str(), false)))
                .collect(),
        }
    }
}
