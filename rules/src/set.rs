//! A set of rules loaded from files and compiled into one matcher.

use std::path::PathBuf;

use nightjar_proto::filter::PathFilter;

use crate::ecs::{EcsEvent, Field, Shape};
use crate::loader::{self, Loaded};
use crate::matcher::{CompiledRule, Matcher};
use crate::naive;
use crate::query::ast::Query;
use crate::query::typing::{Test, TypedPred};
use crate::{LoadReport, RuleMeta, RuleReport, RuleStatus, RulesError, builtin};

/// Loaded and compiled rules.
#[derive(Debug)]
pub struct RuleSet {
    metas: Vec<RuleMeta>,
    queries: Vec<Query<TypedPred>>,
    matcher: Matcher,
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
        let mut compiled = Vec::new();
        for (display, loaded) in sources {
            let path = PathBuf::from(&display);
            let entry = match loaded {
                Ok(Loaded::Rule {
                    mut meta,
                    query,
                    warnings,
                }) => {
                    let rule = CompiledRule::new(&query);
                    let status = if rule.never_matches() {
                        RuleStatus::Unsupported(never_matches_why(&query))
                    } else {
                        RuleStatus::Ok
                    };
                    let e = RuleReport {
                        path,
                        rule_id: Some(meta.rule_id.clone()),
                        name: Some(meta.name.clone()),
                        warnings: if status == RuleStatus::Ok {
                            warnings
                        } else {
                            Vec::new()
                        },
                        status,
                    };
                    if e.status == RuleStatus::Ok {
                        if let Some(cap) = max_signals_override {
                            meta.max_signals = cap;
                        }
                        metas.push(*meta);
                        queries.push(query);
                        compiled.push(rule);
                    }
                    e
                }
                Ok(Loaded::Unsupported(meta, why)) => RuleReport {
                    path,
                    rule_id: Some(meta.rule_id),
                    name: Some(meta.name),
                    status: RuleStatus::Unsupported(why),
                    warnings: Vec::new(),
                },
                Err(e) => RuleReport {
                    path,
                    rule_id: e.rule_id,
                    name: e.name,
                    status: RuleStatus::Error(e.message),
                    warnings: Vec::new(),
                },
            };
            report.entries.push(entry);
        }
        (
            RuleSet {
                metas,
                queries,
                matcher: Matcher::from_rules(compiled),
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
    ///
    /// On an event whose argv was cut, the rules that could match on the dropped arguments
    /// are reported too (see [`Matcher::evaluate`]); [`RuleSet::is_certain`] tells them apart.
    pub fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        self.matcher.evaluate(ev, out);
    }

    /// Whether rule `rule` matches on what `ev` holds, not only because its argv was cut.
    pub fn is_certain(&self, rule: usize, ev: &EcsEvent<'_>) -> bool {
        self.matcher.is_certain(rule, ev)
    }

    /// The same rules for the document-per-event interpreter.
    pub fn naive(&self) -> naive::NaiveRules {
        let refs: Vec<&Query<TypedPred>> = self.queries.iter().collect();
        naive::NaiveRules::new(&refs)
    }

    /// The file events these rules can match: what the sensor publishes (see [`crate::filter`]).
    pub fn file_filter(&self) -> PathFilter {
        let mut filter = PathFilter::none();
        for q in &self.queries {
            let rule = CompiledRule::new(q);
            if Shape::ALL.iter().any(|s| s.is_file() && rule.can_match(*s)) {
                filter.merge(&crate::filter::admitted_by(q));
            }
        }
        filter
    }

    /// Whether some rule can match events of `shape` (a source may leave the rest out).
    pub fn wants(&self, shape: Shape) -> bool {
        self.matcher.wants(shape)
    }

    /// The typed queries, index-aligned with [`RuleSet::rules`].
    pub fn queries(&self) -> &[Query<TypedPred>] {
        &self.queries
    }
}

/// Why a rule whose query compiles to `false` is unsupported here: the event kinds (category,
/// action or type values) it names that no source produces, else the fields it names that no
/// event carries.
fn never_matches_why(query: &Query<TypedPred>) -> String {
    const EVENTS: &str = "this host's events are process exec, fork and end, and file creation, \
                          modification, rename and deletion";
    let mut kinds: Vec<String> = Vec::new();
    for leaf in query.leaves() {
        let produced: Vec<&str> = match leaf.field {
            Some(Field::EventCategory) => Shape::ALL.iter().map(|s| s.category()).collect(),
            Some(Field::EventAction) => Shape::ALL.iter().map(|s| s.action()).collect(),
            Some(Field::EventType) => Shape::ALL.iter().map(|s| s.event_type()).collect(),
            _ => continue,
        };
        if let Test::Str(_, value) = &leaf.test
            && !produced.iter().any(|p| p.eq_ignore_ascii_case(value))
        {
            let named = format!("{} `{value}`", leaf.name);
            if !kinds.contains(&named) {
                kinds.push(named);
            }
        }
    }
    let absent: Vec<String> = query
        .absent_fields()
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    match (kinds.is_empty(), absent.is_empty()) {
        (false, _) => format!(
            "the query never matches this host's events: no source produces {} ({EVENTS})",
            kinds.join(", ")
        ),
        (true, false) => format!(
            "the query never matches this host's events; fields it names that they do not carry: {}",
            absent.join(", ")
        ),
        (true, true) => format!("the query never matches this host's events ({EVENTS})"),
    }
}
