//! A set of rules loaded from files and compiled into one matcher.
//!
//! Every event query of every rule is one *slot* of the matcher: a query rule's query, or a
//! stage (or `until`, or filter query) of a stateful rule. Event-query rules come first, so
//! for them the slot is the rule's index, and [`RuleSet::evaluate`] reports alerts with no
//! mapping step; the stateful rules' slots follow, for [`crate::engine::Engine`].

use std::path::PathBuf;

use crate::ecs::EcsEvent;
use crate::loader::{self, Loaded};
use crate::matcher::{CompiledRule, Matcher};
use crate::naive;
use crate::program::RuleProgram;
use crate::query::ast::Query;
use crate::query::typing::TypedPred;
use crate::{LoadReport, RuleMeta, RuleReport, RuleStatus, RulesError, builtin};

/// How rule files are loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The built-in seed rule.
    pub builtin: bool,
    /// Replaces every rule's `max_signals`.
    pub max_signals: Option<u32>,
    /// Fleet-wide `new_terms` rules (whose fields do not include `host.id`) run on this
    /// host's own history; otherwise they are unsupported.
    pub new_terms_per_host: bool,
}

/// What an event query (a matcher slot) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// An event-query rule: a match is an alert.
    Event(usize),
    /// Stage `stage` of a sequence or sample rule.
    Stage { rule: usize, stage: usize },
    /// The `until` query of a sequence rule.
    Until(usize),
    /// The query of a new_terms or threshold rule.
    Filter(usize),
}

/// Loaded and compiled rules.
#[derive(Debug)]
pub struct RuleSet {
    /// Event-query rules first.
    metas: Vec<RuleMeta>,
    programs: Vec<RuleProgram>,
    /// Rules `0..event_rules` are event-query rules, and their slot is their index.
    event_rules: usize,
    /// Every slot's owner.
    slots: Vec<Slot>,
    matcher: Matcher,
}

/// A rule that loaded, before the set is assembled.
struct Ready {
    meta: RuleMeta,
    program: RuleProgram,
    compiled: Vec<CompiledRule>,
    /// Index of its entry in the report.
    entry: usize,
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
        Self::load_with(
            paths,
            &LoadOptions {
                builtin,
                max_signals: max_signals_override,
                ..LoadOptions::default()
            },
        )
    }

    /// [`RuleSet::load`] with every option.
    pub fn load_with(
        paths: &[PathBuf],
        options: &LoadOptions,
    ) -> Result<(RuleSet, LoadReport), RulesError> {
        let mut sources: Vec<(String, Result<Loaded, loader::FileError>)> = Vec::new();
        if options.builtin {
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
        Ok(Self::from_loaded(sources, options))
    }

    /// Builds a set from rule texts (`(name, toml)`), as [`RuleSet::load`] does from files.
    pub fn from_texts(
        texts: &[(&str, &str)],
        max_signals_override: Option<u32>,
    ) -> (RuleSet, LoadReport) {
        Self::from_texts_with(
            texts,
            &LoadOptions {
                max_signals: max_signals_override,
                ..LoadOptions::default()
            },
        )
    }

    /// [`RuleSet::from_texts`] with every option (`builtin` is ignored).
    pub fn from_texts_with(texts: &[(&str, &str)], options: &LoadOptions) -> (RuleSet, LoadReport) {
        let sources = texts
            .iter()
            .map(|(name, text)| (name.to_string(), loader::load_text(name, text)))
            .collect();
        Self::from_loaded(sources, options)
    }

    fn from_loaded(
        sources: Vec<(String, Result<Loaded, loader::FileError>)>,
        options: &LoadOptions,
    ) -> (RuleSet, LoadReport) {
        let mut report = LoadReport::default();
        let mut ready = Vec::new();
        for (display, loaded) in sources {
            let path = PathBuf::from(&display);
            let entry = match loaded {
                Ok(Loaded::Rule {
                    mut meta,
                    program,
                    warnings,
                }) => {
                    let compiled: Vec<CompiledRule> = program
                        .queries()
                        .into_iter()
                        .map(CompiledRule::new)
                        .collect();
                    let why = unsupported_here(&program, &compiled, options);
                    let status = match why {
                        Some(why) => RuleStatus::Unsupported(why),
                        None => RuleStatus::Ok,
                    };
                    if status == RuleStatus::Ok {
                        if let Some(cap) = options.max_signals {
                            meta.max_signals = cap;
                        }
                        ready.push(Ready {
                            meta: (*meta).clone(),
                            program: *program,
                            compiled,
                            entry: report.entries.len(),
                        });
                    }
                    RuleReport {
                        path,
                        rule_id: Some(meta.rule_id.clone()),
                        name: Some(meta.name.clone()),
                        warnings: if status == RuleStatus::Ok {
                            warnings
                        } else {
                            Vec::new()
                        },
                        status,
                    }
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
        // Event-query rules first (load order kept within each kind).
        ready.sort_by_key(|r| (r.program.is_stateful(), r.entry));
        let event_rules = ready.iter().filter(|r| !r.program.is_stateful()).count();
        let mut metas = Vec::new();
        let mut programs = Vec::new();
        let mut slots = Vec::new();
        let mut compiled = Vec::new();
        for (rule, r) in ready.into_iter().enumerate() {
            let n = r.compiled.len();
            for (i, c) in r.compiled.into_iter().enumerate() {
                slots.push(match &r.program {
                    RuleProgram::Event(_) => Slot::Event(rule),
                    RuleProgram::NewTerms { .. } | RuleProgram::Threshold { .. } => {
                        Slot::Filter(rule)
                    }
                    RuleProgram::Sequence(s) if s.until.is_some() && i == n - 1 => {
                        Slot::Until(rule)
                    }
                    RuleProgram::Sequence(_) | RuleProgram::Sample(_) => {
                        Slot::Stage { rule, stage: i }
                    }
                });
                compiled.push(c);
            }
            metas.push(r.meta);
            programs.push(r.program);
        }
        (
            RuleSet {
                metas,
                programs,
                event_rules,
                slots,
                matcher: Matcher::from_rules(compiled),
            },
            report,
        )
    }

    /// The supported rules; a rule's index here is what [`RuleSet::evaluate`] reports and
    /// what [`Slot`]s name. Event-query rules come first.
    pub fn rules(&self) -> &[RuleMeta] {
        &self.metas
    }

    /// The rules' programs, index-aligned with [`RuleSet::rules`].
    pub fn programs(&self) -> &[RuleProgram] {
        &self.programs
    }

    /// How many rules are event-query rules (the first ones).
    pub fn event_rules(&self) -> usize {
        self.event_rules
    }

    /// Appends the indices of the event-query rules that match to `out` (cleared first),
    /// ascending: each is an alert. No allocation once `out` has capacity. Stateful rules
    /// are not reported here (see [`crate::engine::Engine`]).
    pub fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        self.matcher.evaluate(ev, out);
        if self.slots.len() > self.event_rules {
            let keep = out.partition_point(|&i| i < self.event_rules);
            out.truncate(keep);
        }
    }

    /// Appends every matching slot to `out` (cleared first), ascending.
    pub fn evaluate_slots(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        self.matcher.evaluate(ev, out);
    }

    /// The matcher, for reports on its index.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// What a slot belongs to.
    pub fn slot(&self, i: usize) -> Slot {
        self.slots[i]
    }

    /// How many slots (event queries) the set has.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The same event queries (every slot) for the document-per-event interpreter.
    pub fn naive(&self) -> naive::NaiveRules {
        let refs: Vec<&Query<TypedPred>> = self
            .programs
            .iter()
            .flat_map(RuleProgram::queries)
            .collect();
        naive::NaiveRules::new(&refs)
    }
}

/// Why a rule that loaded cannot run here: its query (or a stage it needs) never matches
/// this host's events, a join or group field is never carried, or it is a fleet-wide
/// new_terms rule and the options do not allow it.
fn unsupported_here(
    program: &RuleProgram,
    compiled: &[CompiledRule],
    options: &LoadOptions,
) -> Option<String> {
    let queries = program.queries();
    let needed: Vec<usize> = match program {
        RuleProgram::Sequence(s) => s
            .stages
            .iter()
            .enumerate()
            .filter(|(_, st)| !st.missing)
            .map(|(i, _)| i)
            .collect(),
        _ => (0..queries.len()).collect(),
    };
    if let Some(&i) = needed.iter().find(|&&i| compiled[i].never_matches()) {
        return Some(never_matches_why(queries[i]));
    }
    let absent: Vec<String> = program
        .key_fields()
        .into_iter()
        .filter(|(f, optional)| !optional && crate::ecs::Field::from_name(f).is_none())
        .map(|(f, _)| format!("`{f}`"))
        .collect();
    if !absent.is_empty() {
        let mut absent = absent;
        absent.dedup();
        return Some(format!(
            "it joins or groups on fields this host's events do not carry: {}",
            absent.join(", ")
        ));
    }
    if let RuleProgram::NewTerms { fields, .. } = program
        && !fields.iter().any(|f| f == "host.id")
        && !options.new_terms_per_host
    {
        return Some(
            "fleet-wide new_terms rule (its fields do not include `host.id`): runs on this \
             host's own history only with `[rules] new_terms_per_host = true`"
                .into(),
        );
    }
    None
}

/// Why a rule whose query compiles to `false` is unsupported here.
fn never_matches_why(query: &Query<TypedPred>) -> String {
    let absent: Vec<String> = query
        .absent_fields()
        .iter()
        .map(|(name, _)| format!("`{name}`"))
        .collect();
    if absent.is_empty() {
        "the query never matches this host's events (exec events: event.category `process`, \
         event.type `start`, event.action `exec`)"
            .to_owned()
    } else {
        format!(
            "the query never matches this host's events; fields it names that they do not carry: {}",
            absent.join(", ")
        )
    }
}
