//! A set of rules loaded from files (or a policy) and compiled into one matcher, with the
//! exceptions that apply to each rule and the rules that block.
//!
//! This is the one place rules are registered, so rule identity is decided here:
//! - `rule_id` is unique in a set. A file rule with the built-in rule's `rule_id` replaces the
//!   built-in one (which is reported as shadowed);
//! - two files with the same `rule_id` are an error naming both (the first keeps running);
//!   in a policy ([`Identity::Policy`]) the higher `version` wins and the other is reported
//!   as shadowed (equal versions are the error above);
//! - the same file reached twice through `paths` (a directory and a file in it, a symbolic
//!   link) is loaded once.
//!
//! Every event query of every rule is one *slot* of the matcher: a query rule's query, or a
//! stage (or `until`, or filter query) of a stateful rule. Event-query rules come first, so
//! for them the slot is the rule's index, and [`RuleSet::evaluate`] reports alerts with no
//! mapping step; the stateful rules' slots follow, for [`crate::engine::Engine`].

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use nightjar_proto::filter::PathFilter;

use crate::ecs::{EcsEvent, Field, Shape};
use crate::exceptions::{CompiledExceptions, ExceptionSource, ListKind};
use crate::loader::{self, FileError, Loaded};
use crate::matcher::{CompiledRule, Matcher};
use crate::naive;
use crate::program::RuleProgram;
use crate::query::ast::Query;
use crate::query::typing::{Test, TypedPred};
use crate::{LoadReport, RuleMeta, RuleReport, RuleStatus, RulesError, builtin};

/// Largest rule file read (Elastic's largest is a few KiB).
pub const MAX_RULE_FILE_BYTES: u64 = 1 << 20;
/// Largest exception file read.
pub const MAX_EXCEPTION_FILE_BYTES: u64 = 64 << 20;

/// A file's text and the name messages give it (`file:line:col`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceText {
    pub name: String,
    pub text: String,
}

/// How two rules with the same `rule_id` are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Identity {
    /// Local rule files: a duplicate is an error.
    #[default]
    Files,
    /// A fleet policy: the higher `version` wins.
    Policy,
}

/// Everything a rule set is built from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The built-in seed rule.
    pub builtin: bool,
    /// Rule files, in load order.
    pub rules: Vec<SourceText>,
    /// Kibana exception-list exports.
    pub exceptions: Vec<SourceText>,
    /// Rule ids that block (prevention).
    pub block: Vec<String>,
    /// `(rule_id, list_id)`: lists tied to rules by the policy rather than by the rules'
    /// `exceptions_list`.
    pub links: Vec<(String, String)>,
    /// Replaces every rule's `max_signals`.
    pub max_signals: Option<u32>,
    pub identity: Identity,
    /// The platform whose blocking path the `block` rules are checked for (`"linux"`,
    /// `"macos"`); `None`: the one this build runs on.
    pub block_platform: Option<&'static str>,
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
    exceptions: CompiledExceptions,
    /// Per rule (index-aligned with `metas`): the exception lists that apply to it.
    applies: Vec<Box<[u32]>>,
    /// Per rule: named in `block`.
    blocking: Vec<bool>,
    block: Vec<String>,
}

/// A rule that loaded and runs here, before the set is assembled.
struct Ready {
    meta: RuleMeta,
    program: RuleProgram,
    compiled: Vec<CompiledRule>,
    /// Index of its entry in the report.
    entry: usize,
}

/// One rule file as loaded, before identity is decided.
struct Candidate {
    display: String,
    loaded: Result<Loaded, FileError>,
    /// `file:line:col` of its `rule_id` key, for messages about it.
    id_at: String,
    builtin: bool,
    status: Option<RuleStatus>,
}

impl Candidate {
    fn meta(&self) -> Option<&RuleMeta> {
        match &self.loaded {
            Ok(Loaded::Rule { meta, .. } | Loaded::Unsupported(meta, _)) => Some(meta),
            Err(_) => None,
        }
    }
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
        let sources = Sources {
            builtin,
            rules: read_rule_files(paths)?,
            max_signals: max_signals_override,
            ..Sources::default()
        };
        Ok(Self::build(sources))
    }

    /// Loads what `[rules]` names: rule paths, the built-in rule, exception files and the
    /// `block` list.
    pub fn load_config(
        config: &nightjar_proto::config::RulesConfig,
    ) -> Result<(RuleSet, LoadReport), RulesError> {
        let sources = Sources {
            builtin: config.builtin,
            rules: read_rule_files(&config.paths)?,
            exceptions: read_exception_files(&config.exceptions)?,
            block: config.block.clone(),
            max_signals: config.max_signals,
            new_terms_per_host: config.new_terms_per_host,
            ..Sources::default()
        };
        Ok(Self::build(sources))
    }

    /// Builds a set from rule texts (`(name, toml)`), as [`RuleSet::load`] does from files.
    pub fn from_texts(
        texts: &[(&str, &str)],
        max_signals_override: Option<u32>,
    ) -> (RuleSet, LoadReport) {
        Self::build(Sources {
            rules: texts
                .iter()
                .map(|(name, text)| SourceText {
                    name: name.to_string(),
                    text: text.to_string(),
                })
                .collect(),
            max_signals: max_signals_override,
            ..Sources::default()
        })
    }

    /// Builds a set from its sources. Nothing here fails: every problem is in the report
    /// ([`LoadReport::problems`]), and what has none is in the set.
    pub fn build(sources: Sources) -> (RuleSet, LoadReport) {
        let mut candidates = Vec::with_capacity(sources.rules.len() + 1);
        if sources.builtin {
            candidates.push(Candidate {
                display: builtin::SOURCE.to_owned(),
                loaded: builtin::load(),
                id_at: loader::locate(
                    builtin::SOURCE,
                    builtin::TOML,
                    key_offset(builtin::TOML, "rule_id"),
                ),
                builtin: true,
                status: None,
            });
        }
        for s in &sources.rules {
            candidates.push(Candidate {
                loaded: loader::load_text(&s.name, &s.text),
                id_at: loader::locate(&s.name, &s.text, key_offset(&s.text, "rule_id")),
                display: s.name.clone(),
                builtin: false,
                status: None,
            });
        }
        decide_identity(&mut candidates, sources.identity);

        let mut report = LoadReport::default();
        let mut ready = Vec::new();
        // Ids of every rule that loaded, supported or not (a `block` of an unsupported one
        // is refused with its reason).
        let mut unsupported_ids: HashMap<String, String> = HashMap::new();
        for c in candidates {
            let path = PathBuf::from(&c.display);
            let entry = match (c.loaded, c.status) {
                (Ok(Loaded::Rule { meta, .. } | Loaded::Unsupported(meta, _)), Some(status)) => {
                    RuleReport {
                        path,
                        rule_id: Some(meta.rule_id.clone()),
                        name: Some(meta.name.clone()),
                        status,
                        warnings: Vec::new(),
                    }
                }
                (
                    Ok(Loaded::Rule {
                        mut meta,
                        program,
                        warnings,
                    }),
                    None,
                ) => {
                    let compiled: Vec<CompiledRule> = program
                        .queries()
                        .into_iter()
                        .map(CompiledRule::new)
                        .collect();
                    let status = match unsupported_here(&program, &compiled, &sources) {
                        Some(why) => RuleStatus::Unsupported(why),
                        None => RuleStatus::Ok,
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
                    match &e.status {
                        RuleStatus::Ok => {
                            if let Some(cap) = sources.max_signals {
                                meta.max_signals = cap;
                            }
                            ready.push(Ready {
                                meta: *meta,
                                program: *program,
                                compiled,
                                entry: report.entries.len(),
                            });
                        }
                        RuleStatus::Unsupported(why) => {
                            unsupported_ids.insert(meta.rule_id.clone(), why.clone());
                        }
                        _ => {}
                    }
                    e
                }
                (Ok(Loaded::Unsupported(meta, why)), None) => {
                    unsupported_ids.insert(meta.rule_id.clone(), why.clone());
                    RuleReport {
                        path,
                        rule_id: Some(meta.rule_id),
                        name: Some(meta.name),
                        status: RuleStatus::Unsupported(why),
                        warnings: Vec::new(),
                    }
                }
                (Err(e), _) => RuleReport {
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
            let queries = r.program.queries();
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
                // A `runs=N` stage repeats the query before it: one tree for both slots.
                match compiled.last_mut() {
                    Some((_, n)) if i > 0 && queries[i] == queries[i - 1] => *n += 1,
                    _ => compiled.push((c, 1)),
                }
            }
            metas.push(r.meta);
            programs.push(r.program);
        }

        let exceptions = compile_exceptions(&sources.exceptions, &mut report);
        let applies = bind_exceptions(&exceptions, &metas, &sources.links, &mut report);
        let mut blocking = bind_block(
            &sources.block,
            &metas,
            event_rules,
            &unsupported_ids,
            &mut report,
        );
        let matcher = Matcher::from_runs(compiled);
        let platform = sources.block_platform.unwrap_or(HOST_OS);
        // Only event-query rules block (bind_block), and their matcher slot is their index.
        for (i, b) in blocking.iter_mut().enumerate().filter(|(_, b)| **b) {
            let refusal = if applies.get(i).is_some_and(|l| !l.is_empty()) {
                Some("exceptions apply to it, and the blocking path does not test them".to_owned())
            } else {
                block_refusal(&matcher, i, platform)
            };
            if let Some(why) = refusal {
                report.block_refused.push(format!(
                    "block: rule `{}` ({}) cannot block on {platform}: {why}; it still detects",
                    metas[i].rule_id, metas[i].name
                ));
                *b = false;
            }
        }
        (
            RuleSet {
                matcher,
                metas,
                programs,
                event_rules,
                slots,
                exceptions,
                applies,
                blocking,
                block: sources.block,
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
    ///
    /// On an event whose argv was cut, the rules that could match on the dropped arguments
    /// are reported too (see [`Matcher::evaluate`]); [`RuleSet::is_certain`] tells them apart.
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

    /// Whether slot `slot` (for an event-query rule, the rule) matches on what `ev` holds,
    /// not only because its argv was cut.
    pub fn is_certain(&self, slot: usize, ev: &EcsEvent<'_>) -> bool {
        self.matcher.is_certain(slot, ev)
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

    /// The exception item that excepts a match of rule `rule` on `ev` at `now_ns` (Unix
    /// nanoseconds, for `expire_time`), if one does: its `item_id`. Called once a rule has
    /// matched, before its alert is made; allocation-free.
    pub fn excepted(&self, rule: usize, ev: &EcsEvent<'_>, now_ns: i64) -> Option<&str> {
        let lists = self.applies.get(rule)?;
        if lists.is_empty() {
            return None;
        }
        self.exceptions.excepting(lists, ev, now_ns)
    }

    /// Why rule `rule` could not block on a host of `os` (`"linux"`, `"macos"`), or `None`
    /// when it can.
    pub fn block_refusal(&self, rule: usize, os: &str) -> Option<String> {
        block_refusal(&self.matcher, rule, os)
    }

    /// Rule `rule` as the Linux exec probe tests it (see [`Matcher::kernel_block`]).
    pub fn kernel_block(
        &self,
        rule: usize,
    ) -> Result<Vec<crate::matcher::block::KernelConj>, String> {
        self.matcher.kernel_block(rule, "linux")
    }

    /// Rule `rule` alone on `ev`: `Some(true)` when it matches whatever arguments a cut argv
    /// lost, `Some(false)` when it does not, `None` when the lost arguments decide.
    pub fn outcome(&self, rule: usize, ev: &EcsEvent<'_>) -> Option<bool> {
        self.matcher.outcome(rule, ev)
    }

    /// Whether rule `rule` could match an exec of `ev`'s target by `ev`'s caller with other
    /// arguments (see [`Matcher::could_match_target`]).
    pub fn could_match_target(&self, rule: usize, ev: &EcsEvent<'_>) -> bool {
        self.matcher.could_match_target(rule, ev)
    }

    /// Whether rule `rule` blocks (it is named in `block`).
    pub fn is_blocking(&self, rule: usize) -> bool {
        self.blocking.get(rule).copied().unwrap_or(false)
    }

    /// The rules that block, by index.
    pub fn blocking_rules(&self) -> impl Iterator<Item = usize> + '_ {
        self.blocking
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.then_some(i))
    }

    /// The `block` list as given.
    pub fn block_list(&self) -> &[String] {
        &self.block
    }

    /// The same event queries (every slot) for the document-per-event interpreter.
    pub fn naive(&self) -> naive::NaiveRules {
        naive::NaiveRules::new(&self.all_queries())
    }

    fn all_queries(&self) -> Vec<&Query<TypedPred>> {
        self.programs
            .iter()
            .flat_map(RuleProgram::queries)
            .collect()
    }

    /// The file creations, modifications, renames and deletions these rules can match: what
    /// the sensor publishes of them (see [`crate::filter`]). A query that can match only the
    /// macOS actions (open, quarantine removal, launch item) does not widen it.
    pub fn file_filter(&self) -> PathFilter {
        self.file_filter_explained().0
    }

    /// [`RuleSet::file_filter`], and for every rule part that admits every file event, the
    /// rule and why (`rule_id (name) stage 2: ...`), for the sensor to log.
    pub fn file_filter_explained(&self) -> (PathFilter, Vec<String>) {
        let mut filter = PathFilter::none();
        let mut open = Vec::new();
        for (meta, program) in self.metas.iter().zip(&self.programs) {
            let part = crate::filter::program_filter(program);
            filter.merge(&part.filter);
            for why in part.open {
                open.push(format!("{} ({}) {why}", meta.rule_id, meta.name));
            }
        }
        (filter, open)
    }

    /// The file opens to publish (macOS): the paths named by the rules that match opens
    /// only (`event.action == "open"`). Opens are the busiest file event by far, so like
    /// Elastic Defend, which reports opens of the sensitive files it watches, Nightjar
    /// reports opens of the files its rules name: a rule that bounds its opens by the process
    /// only (`process.name : python*`), or by nothing (`not file.name in (...)`), sees the
    /// opens the others select instead of making every open reach the ring. Rules that do
    /// not require opens select none either (they see the selected ones).
    pub fn open_filter(&self) -> PathFilter {
        let mut filter = PathFilter::none();
        for q in self.all_queries() {
            let rule = CompiledRule::new(q);
            let opens_only = rule.can_match(Shape::FileOpen)
                && !Shape::ALL
                    .iter()
                    .any(|s| *s != Shape::FileOpen && rule.can_match(*s));
            if opens_only {
                let admitted = crate::filter::admitted_by(q);
                if !admitted.is_all() {
                    filter.merge(&admitted.paths_only());
                }
            }
        }
        filter
    }

    /// Whether some rule can match events of `shape` (a source may leave the rest out).
    pub fn wants(&self, shape: Shape) -> bool {
        self.matcher.wants(shape)
    }

    /// The event-query rules' queries, index-aligned with the first
    /// [`RuleSet::event_rules`] of [`RuleSet::rules`].
    pub fn queries(&self) -> Vec<&Query<TypedPred>> {
        self.programs[..self.event_rules]
            .iter()
            .flat_map(RuleProgram::queries)
            .collect()
    }
}

/// Decides, for every candidate sharing a `rule_id` with another, which one runs; the others
/// get their status here.
fn decide_identity(candidates: &mut [Candidate], identity: Identity) {
    let mut holder: HashMap<String, usize> = HashMap::new();
    for i in 0..candidates.len() {
        let Some(id) = candidates[i].meta().map(|m| m.rule_id.clone()) else {
            continue;
        };
        let Some(&j) = holder.get(&id) else {
            holder.insert(id, i);
            continue;
        };
        let (prev, cur) = (&candidates[j], &candidates[i]);
        let replace =
            |by: &Candidate, why: String| RuleStatus::Shadowed(format!("{why} {}", by.display));
        if prev.builtin {
            let status = replace(cur, "replaced by".into());
            candidates[j].status = Some(status);
            holder.insert(id, i);
            continue;
        }
        let (pv, cv) = (
            prev.meta().and_then(|m| m.version),
            cur.meta().and_then(|m| m.version),
        );
        let version = |v: Option<u32>| v.map_or_else(|| "none".to_owned(), |v| v.to_string());
        if identity == Identity::Policy && pv != cv {
            let why = |a, b| format!("superseded (version {} over {}) by", version(a), version(b));
            if cv > pv {
                let status = replace(cur, why(cv, pv));
                candidates[j].status = Some(status);
                holder.insert(id, i);
            } else {
                let status = replace(prev, why(pv, cv));
                candidates[i].status = Some(status);
            }
            continue;
        }
        let message = format!(
            "{}: duplicate rule_id `{id}`: {} also defines it{}; rule ids must be unique in a \
             rule set (remove one of the files or give it its own rule_id)",
            cur.id_at,
            prev.id_at,
            if identity == Identity::Policy {
                format!(", with the same version ({})", version(cv))
            } else {
                String::new()
            }
        );
        candidates[i].status = Some(RuleStatus::Error(message));
    }
}

/// Byte offset of the line where `key` is assigned (`key =`), else 0.
fn key_offset(text: &str, key: &str) -> usize {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return at + (line.len() - t.len());
        }
        at += line.len();
    }
    0
}

fn compile_exceptions(texts: &[SourceText], report: &mut LoadReport) -> CompiledExceptions {
    let mut source = ExceptionSource::default();
    for t in texts {
        match ExceptionSource::parse(&t.name, &t.text) {
            Ok(s) => source.extend(s),
            Err(errors) => report
                .exception_errors
                .extend(errors.into_iter().map(|e| e.0)),
        }
    }
    if !report.exception_errors.is_empty() {
        return CompiledExceptions::default();
    }
    match CompiledExceptions::compile(&source) {
        Ok((compiled, notes)) => {
            report.exception_items = notes.items;
            report.exception_warnings = notes.warnings;
            compiled
        }
        Err(errors) => {
            report
                .exception_errors
                .extend(errors.into_iter().map(|e| e.0));
            CompiledExceptions::default()
        }
    }
}

/// Which lists apply to each rule: every endpoint list, and the lists a rule names (or the
/// policy links to it).
fn bind_exceptions(
    exceptions: &CompiledExceptions,
    metas: &[RuleMeta],
    links: &[(String, String)],
    report: &mut LoadReport,
) -> Vec<Box<[u32]>> {
    let endpoint: Vec<u32> = exceptions
        .lists()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind == ListKind::Endpoint)
        .map(|(i, _)| i as u32)
        .collect();
    let mut used: HashSet<u32> = endpoint.iter().copied().collect();
    let known: HashSet<&str> = metas.iter().map(|m| m.rule_id.as_str()).collect();
    for (rule_id, list_id) in links {
        if !known.contains(rule_id.as_str()) {
            report.exception_errors.push(format!(
                "link {rule_id}={list_id}: no rule of the set has rule_id `{rule_id}`"
            ));
        }
        if !exceptions.lists().iter().any(|l| l.list_id == *list_id) {
            report.exception_errors.push(format!(
                "link {rule_id}={list_id}: no exception file has a list `{list_id}`"
            ));
        }
    }
    let applies = metas
        .iter()
        .map(|m| {
            let mut lists = endpoint.clone();
            let mut add = |i: u32| {
                if !lists.contains(&i) {
                    lists.push(i);
                }
            };
            for r in &m.exceptions_list {
                match exceptions.list_index(&r.list_id, &r.namespace_type) {
                    Some(i) => add(i),
                    None if r.list_id == "endpoint_list" => {}
                    None => report.exception_warnings.push(format!(
                        "{}: rule `{}` names exception list `{}` ({}), which no exception \
                         file provides",
                        m.source.display(),
                        m.rule_id,
                        r.list_id,
                        r.namespace_type
                    )),
                }
            }
            for (rule_id, list_id) in links {
                if *rule_id == m.rule_id {
                    for (i, l) in exceptions.lists().iter().enumerate() {
                        if l.list_id == *list_id {
                            add(i as u32);
                        }
                    }
                }
            }
            used.extend(lists.iter().copied());
            lists.into_boxed_slice()
        })
        .collect();
    for (i, l) in exceptions.lists().iter().enumerate() {
        if !used.contains(&(i as u32)) {
            report.exception_warnings.push(format!(
                "exception list `{}` ({}) is tied to no rule of the set: its items apply nowhere",
                l.list_id, l.namespace_type
            ));
        }
    }
    applies
}

/// The platform this build runs on, as `host.os.type` says it.
const HOST_OS: &str = if cfg!(target_os = "macos") {
    "macos"
} else {
    "linux"
};

fn block_refusal(matcher: &Matcher, rule: usize, os: &str) -> Option<String> {
    let verdict = if os == "macos" {
        matcher.auth_block_check(rule)
    } else {
        matcher.kernel_block(rule, os).map(|_| ())
    };
    verdict.err()
}

fn bind_block(
    block: &[String],
    metas: &[RuleMeta],
    event_rules: usize,
    unsupported: &HashMap<String, String>,
    report: &mut LoadReport,
) -> Vec<bool> {
    let mut blocking = vec![false; metas.len()];
    let mut seen = HashSet::new();
    for id in block {
        if !seen.insert(id.as_str()) {
            report
                .block_errors
                .push(format!("block: rule_id `{id}` is listed twice"));
            continue;
        }
        match metas.iter().position(|m| m.rule_id == *id) {
            Some(i) if i >= event_rules => report.block_errors.push(format!(
                "block: rule `{id}` correlates several events (sequence, sample, new_terms or \
                 threshold), so it cannot block one exec: only event-query rules block"
            )),
            Some(i) => blocking[i] = true,
            None => report.block_errors.push(match unsupported.get(id) {
                Some(why) => {
                    format!("block: rule `{id}` cannot run here ({why}), so it cannot block")
                }
                None => format!("block: no rule of the set has rule_id `{id}`"),
            }),
        }
    }
    blocking
}

/// Every rule file under `paths`, each read once however many paths reach it.
pub fn read_rule_files(paths: &[PathBuf]) -> Result<Vec<SourceText>, RulesError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for path in paths {
        for file in loader::rule_files(path)? {
            let identity = std::fs::canonicalize(&file).map_err(|e| RulesError::io(&file, e))?;
            if !seen.insert(identity) {
                continue;
            }
            out.push(SourceText {
                name: file.display().to_string(),
                text: read_bounded(&file, MAX_RULE_FILE_BYTES, "rule file")?,
            });
        }
    }
    Ok(out)
}

/// The exception files `paths`, each read once.
pub fn read_exception_files(paths: &[PathBuf]) -> Result<Vec<SourceText>, RulesError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for file in paths {
        let identity = std::fs::canonicalize(file).map_err(|e| RulesError::io(file, e))?;
        if !seen.insert(identity) {
            continue;
        }
        out.push(SourceText {
            name: file.display().to_string(),
            text: read_bounded(file, MAX_EXCEPTION_FILE_BYTES, "exception file")?,
        });
    }
    Ok(out)
}

/// A file's text, refused past `max` bytes; invalid UTF-8 becomes U+FFFD (and then fails
/// to parse where it matters, with a position).
pub fn read_bounded(path: &Path, max: u64, what: &'static str) -> Result<String, RulesError> {
    let file = std::fs::File::open(path).map_err(|e| RulesError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| RulesError::io(path, e))?;
    if bytes.len() as u64 > max {
        let size = std::fs::metadata(path).map_or(max + 1, |m| m.len());
        return Err(RulesError::TooLarge {
            path: path.to_path_buf(),
            size,
            max,
            what,
        });
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Why a rule that loaded cannot run here: its query (or a stage it needs) never matches
/// this host's events, a join or group field is never carried, or it is a fleet-wide
/// new_terms rule and the sources do not allow it.
fn unsupported_here(
    program: &RuleProgram,
    compiled: &[CompiledRule],
    sources: &Sources,
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
    let mut absent: Vec<String> = program
        .key_fields()
        .into_iter()
        .filter(|(f, optional)| !optional && Field::from_name(f).is_none())
        .map(|(f, _)| format!("`{f}`"))
        .collect();
    if !absent.is_empty() {
        absent.dedup();
        return Some(format!(
            "it joins or groups on fields this host's events do not carry: {}",
            absent.join(", ")
        ));
    }
    if let RuleProgram::NewTerms { fields, .. } = program
        && !fields.iter().any(|f| f == "host.id")
        && !sources.new_terms_per_host
    {
        return Some(
            "fleet-wide new_terms rule (its fields do not include `host.id`): runs on this \
             host's own history only with `[rules] new_terms_per_host = true`"
                .into(),
        );
    }
    None
}

/// Why a rule whose query compiles to `false` is unsupported here: the event kinds (category,
/// action or type values) it names that no source produces, else the fields it names that no
/// event carries.
fn never_matches_why(query: &Query<TypedPred>) -> String {
    const EVENTS: &str = "this host's events are process exec, fork and end, user id, group id \
                          and session changes, file creation, modification, rename and \
                          deletion, and on macOS file open, quarantine removal \
                          (extended_attributes_delete) and launch_daemon";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_offset_finds_the_assignment_line() {
        let text = "[rule]\n# rule_id is below\n  rule_id = \"x\"\n";
        assert_eq!(&text[key_offset(text, "rule_id")..][..7], "rule_id");
        assert_eq!(key_offset("nothing", "rule_id"), 0);
    }
}
