//! The straightforward version of [`crate::engine`]: every event becomes a document, every
//! event query of every rule is interpreted over it, and stateful rules keep their state in
//! plain maps keyed by the JSON text of their join values. No index, no snapshots shared,
//! no bounds: the reference the engine is property-tested against, and the baseline of
//! `scripts/bench rules`. Events must come in timestamp order.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::{NaiveRules, lookup};
use crate::RuleSet;
use crate::program::RuleProgram;
use crate::query::ast::{JoinKey, Stage};

/// What the reference found: like [`crate::engine::Detection`], with events named by
/// their capture order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Event { rule: usize, seq: u64 },
    Correlated { rule: usize, seqs: Vec<u64> },
    NewTerms { rule: usize, seq: u64 },
    Threshold { rule: usize, seq: u64, count: u64 },
}

#[derive(Debug, Clone)]
struct Partial {
    start: i64,
    last: (i64, u64),
    seqs: Vec<u64>,
}

#[derive(Debug, Default)]
struct SeqState {
    /// key -> positive stage index -> the partial waiting after it.
    pending: HashMap<String, HashMap<usize, Partial>>,
    leading: HashMap<String, i64>,
    /// (deadline, key, match) waiting for a trailing missing window.
    held: Vec<(i64, String, Partial)>,
}

#[derive(Debug, Default)]
struct SampleState {
    keys: HashMap<String, (i64, Vec<Option<u64>>, bool)>,
}

#[derive(Debug, Default)]
struct TermsState {
    since: Option<i64>,
    seen: HashMap<String, i64>,
}

/// A threshold group: event times, (distinct value, last seen), when it last alerted.
type Group = (Vec<i64>, Vec<(String, i64)>, Option<i64>);

#[derive(Debug, Default)]
struct ThresholdState {
    groups: HashMap<String, Group>,
}

#[derive(Debug)]
enum State {
    None,
    Sequence(SeqState),
    Sample(SampleState),
    Terms(TermsState),
    Threshold(ThresholdState),
}

/// The reference engine over a rule set.
#[derive(Debug)]
pub struct NaiveEngine {
    queries: NaiveRules,
    /// `(rule, index of its query)` of every query, in slot order.
    owners: Vec<(usize, usize)>,
    programs: Vec<RuleProgram>,
    lookbacks: Vec<i64>,
    states: Vec<State>,
    matched: Vec<usize>,
}

impl NaiveEngine {
    pub fn new(set: &RuleSet) -> NaiveEngine {
        let mut owners = Vec::new();
        for (r, p) in set.programs().iter().enumerate() {
            for q in 0..p.queries().len() {
                owners.push((r, q));
            }
        }
        NaiveEngine {
            queries: set.naive(),
            owners,
            programs: set.programs().to_vec(),
            lookbacks: set
                .rules()
                .iter()
                .map(|m| m.lookback.as_nanos().min(i64::MAX as u128) as i64)
                .collect(),
            states: set
                .programs()
                .iter()
                .map(|p| match p {
                    RuleProgram::Event(_) => State::None,
                    RuleProgram::Sequence(_) => State::Sequence(SeqState::default()),
                    RuleProgram::Sample(_) => State::Sample(SampleState::default()),
                    RuleProgram::NewTerms { .. } => State::Terms(TermsState::default()),
                    RuleProgram::Threshold { .. } => State::Threshold(ThresholdState::default()),
                })
                .collect(),
            matched: Vec::new(),
        }
    }

    /// One event's document, its time and capture order.
    pub fn on_document(&mut self, doc: &Map<String, Json>, t: i64, seq: u64, out: &mut Vec<Found>) {
        let mut matched = std::mem::take(&mut self.matched);
        self.queries.evaluate_document(doc, &mut matched);
        // Per rule, which of its queries matched.
        let mut by_rule: HashMap<usize, Vec<usize>> = HashMap::new();
        for &slot in &matched {
            let (rule, q) = self.owners[slot];
            by_rule.entry(rule).or_default().push(q);
        }
        self.matched = matched;
        // Trailing windows that passed before this event.
        for r in 0..self.programs.len() {
            if let State::Sequence(st) = &mut self.states[r] {
                let mut keep = Vec::new();
                for h in st.held.drain(..) {
                    if h.0 < t {
                        out.push(Found::Correlated {
                            rule: r,
                            seqs: h.2.seqs,
                        });
                    } else {
                        keep.push(h);
                    }
                }
                st.held = keep;
            }
        }
        let mut rules: Vec<usize> = by_rule.keys().copied().collect();
        rules.sort_unstable();
        for rule in rules {
            let qs = &by_rule[&rule];
            let program = self.programs[rule].clone();
            let lookback = self.lookbacks[rule];
            match (&program, &mut self.states[rule]) {
                (RuleProgram::Event(_), _) => out.push(Found::Event { rule, seq }),
                (RuleProgram::Sequence(s), State::Sequence(st)) => {
                    let maxspan = s
                        .maxspan
                        .map_or(lookback, |m| m.as_nanos().min(i64::MAX as u128) as i64);
                    let n = s.stages.len();
                    if s.until.is_some() && qs.contains(&n) {
                        let until = s.until.as_ref().map(|u| stage_key(doc, &s.by, u));
                        if let Some(Some(key)) = until
                            && let Some(p) = st.pending.get_mut(&key)
                        {
                            p.retain(|_, part| part.last >= (t, seq));
                        }
                    }
                    let positive: Vec<usize> = (0..n).filter(|&i| !s.stages[i].missing).collect();
                    let trailing = positive.last().is_some_and(|&l| l + 1 < n);
                    for stage in (0..n).rev() {
                        if !qs.contains(&stage) {
                            continue;
                        }
                        let Some(key) = stage_key(doc, &s.by, &s.stages[stage]) else {
                            continue;
                        };
                        if s.stages[stage].missing {
                            match (0..stage).rev().find(|&i| !s.stages[i].missing) {
                                None => {
                                    st.leading.insert(key, t);
                                }
                                Some(p) if Some(&p) == positive.last() && trailing => {
                                    st.held.retain(|(_, k, part)| {
                                        !(k == &key
                                            && part.last < (t, seq)
                                            && t - part.start <= maxspan)
                                    });
                                }
                                Some(p) => {
                                    let pi = positive.iter().position(|&x| x == p).unwrap_or(0);
                                    if let Some(m) = st.pending.get_mut(&key)
                                        && m.get(&pi).is_some_and(|part| part.last < (t, seq))
                                    {
                                        m.remove(&pi);
                                    }
                                }
                            }
                            continue;
                        }
                        let pi = positive.iter().position(|&x| x == stage).unwrap_or(0);
                        let complete = |part: Partial, st: &mut SeqState, out: &mut Vec<Found>| {
                            if trailing {
                                st.held.push((part.start + maxspan, key.clone(), part));
                            } else {
                                out.push(Found::Correlated {
                                    rule,
                                    seqs: part.seqs,
                                });
                            }
                        };
                        if pi == 0 {
                            if st
                                .leading
                                .get(&key)
                                .is_some_and(|&lt| lt <= t && t - lt <= maxspan)
                            {
                                continue;
                            }
                            let part = Partial {
                                start: t,
                                last: (t, seq),
                                seqs: vec![seq],
                            };
                            if positive.len() == 1 {
                                complete(part, st, out);
                            } else {
                                st.pending.entry(key.clone()).or_default().insert(0, part);
                            }
                            continue;
                        }
                        let Some(m) = st.pending.get_mut(&key) else {
                            continue;
                        };
                        if m.get(&(pi - 1)).is_none_or(|p| p.last >= (t, seq)) {
                            continue;
                        }
                        let Some(mut part) = m.remove(&(pi - 1)) else {
                            continue;
                        };
                        if t - part.start > maxspan {
                            continue;
                        }
                        part.seqs.push(seq);
                        part.last = (t, seq);
                        if pi + 1 == positive.len() {
                            complete(part, st, out);
                        } else {
                            m.insert(pi, part);
                        }
                    }
                }
                (RuleProgram::Sample(s), State::Sample(st)) => {
                    st.keys.retain(|_, (first, _, _)| t - *first <= lookback);
                    let mut stages = qs.clone();
                    stages.sort_unstable();
                    for stage in stages {
                        let Some(key) = stage_key(doc, &s.by, &s.stages[stage]) else {
                            continue;
                        };
                        let entry = st
                            .keys
                            .entry(key)
                            .or_insert_with(|| (t, vec![None; s.stages.len()], false));
                        if entry.2 || entry.1[stage].is_some() {
                            continue;
                        }
                        entry.1[stage] = Some(seq);
                        if entry.1.iter().all(Option::is_some) {
                            let seqs = entry.1.iter_mut().filter_map(Option::take).collect();
                            entry.2 = true;
                            out.push(Found::Correlated { rule, seqs });
                        }
                    }
                }
                (
                    RuleProgram::NewTerms {
                        fields, history, ..
                    },
                    State::Terms(st),
                ) => {
                    let history = history.as_nanos().min(i64::MAX as u128) as i64;
                    let since = *st.since.get_or_insert(t);
                    let Some(combos) = combinations(doc, fields) else {
                        continue;
                    };
                    let mut new = false;
                    for c in combos {
                        match st.seen.get(&c) {
                            Some(&last) if t - last <= history => {}
                            _ => new = true,
                        }
                        let e = st.seen.entry(c).or_insert(t);
                        *e = (*e).max(t);
                    }
                    if new && t - since >= history {
                        out.push(Found::NewTerms { rule, seq });
                    }
                }
                (
                    RuleProgram::Threshold {
                        group_by,
                        value,
                        cardinality,
                        window,
                        ..
                    },
                    State::Threshold(st),
                ) => {
                    let window = window.as_nanos().min(i64::MAX as u128) as i64;
                    let mut key = Vec::new();
                    for f in group_by {
                        let v = lookup(doc, f);
                        if v.is_empty() {
                            key.clear();
                            break;
                        }
                        key.push(Json::Array(v.into_iter().cloned().collect()));
                    }
                    if key.is_empty() && !group_by.is_empty() {
                        continue;
                    }
                    let distinct = match cardinality {
                        Some((f, _)) => {
                            let v = lookup(doc, f);
                            if v.is_empty() {
                                continue;
                            }
                            Some(Json::Array(v.into_iter().cloned().collect()).to_string())
                        }
                        None => None,
                    };
                    let g = st.groups.entry(Json::Array(key).to_string()).or_insert((
                        Vec::new(),
                        Vec::new(),
                        None,
                    ));
                    g.0.push(t);
                    g.0.retain(|&x| x >= t - window);
                    if let Some(d) = distinct {
                        g.1.retain(|(v, _)| *v != d);
                        g.1.push((d, t));
                        g.1.retain(|(_, at)| *at >= t - window);
                    }
                    let count = g.0.len() as u64;
                    let card_ok = cardinality
                        .as_ref()
                        .is_none_or(|(_, want)| g.1.len() as u64 >= *want);
                    let quiet = g.2.is_none_or(|a| t - a > window);
                    if count >= *value && card_ok && quiet {
                        g.2 = Some(t);
                        out.push(Found::Threshold {
                            rule,
                            seq,
                            count: count.min(*value),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// The end of the input: held matches complete.
    pub fn finish(&mut self, out: &mut Vec<Found>) {
        for (rule, s) in self.states.iter_mut().enumerate() {
            if let State::Sequence(st) = s {
                for (_, _, part) in st.held.drain(..) {
                    out.push(Found::Correlated {
                        rule,
                        seqs: part.seqs,
                    });
                }
            }
        }
    }
}

/// The JSON text of a stage's join values; `None` when a non-optional one is missing.
fn stage_key<Q>(doc: &Map<String, Json>, by: &[JoinKey], stage: &Stage<Q>) -> Option<String> {
    let mut parts = Vec::new();
    for k in by.iter().chain(stage.keys.iter()) {
        let v = lookup(doc, &k.field);
        if v.is_empty() && !k.optional {
            return None;
        }
        parts.push(match v.as_slice() {
            [] => Json::Null,
            [one] if !k.field.ends_with("args") => (*one).clone(),
            many => Json::Array(many.iter().map(|v| (*v).clone()).collect()),
        });
    }
    Some(Json::Array(parts).to_string())
}

/// Every combination of the fields' values (one per element of an array field), as JSON
/// text; `None` when a field is missing.
fn combinations(doc: &Map<String, Json>, fields: &[String]) -> Option<Vec<String>> {
    let mut combos = vec![Vec::<Json>::new()];
    for f in fields {
        let values = lookup(doc, f);
        if values.is_empty() {
            return None;
        }
        let mut next = Vec::new();
        for c in &combos {
            for v in &values {
                let mut c = c.clone();
                c.push(match v {
                    Json::String(s) => Json::String(s.clone()),
                    other => Json::String(other.to_string()),
                });
                next.push(c);
            }
        }
        combos = next;
    }
    Some(
        combos
            .into_iter()
            .map(|c| Json::Array(c).to_string())
            .collect(),
    )
}
