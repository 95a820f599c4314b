//! The file events a rule set can match, as a [`PathFilter`] the sensor applies at the source.
//!
//! For each rule that can match a file event, its query is walked for what bounds the paths
//! (or processes) of the events it can match: a `file.path` literal or pattern prefix, a file
//! name, an extension, a directory, a `process.name`. `and` keeps the bound of one conjunct
//! (every match satisfies each of them), `or` joins its branches' bounds, and anything that
//! does not bound (a negation, a regular expression, another field) admits every file event.
//! The result is a superset by construction: no file event a rule could match is filtered.
//!
//! A sequence's file stage that admits every path may still be bounded by the process: when
//! it is joined to an earlier stage on `process.entity_id` (or on the file event's
//! `process.parent.entity_id`), only a process (or a parent) that satisfied that earlier
//! stage can take part, and that stage's constraints on `process.name`,
//! `process.executable` and `process.parent.name` become [`ProcessMarks`] the sensor applies
//! when a process execs ([`program_filter`]). What neither bounds is named in
//! [`ProgramFilter::open`], so the sensor can say which rule keeps file events open.

use nightjar_proto::filter::{MARK_CHILDREN, MARK_SELF, PathFilter, ProcessMarks};

use crate::ecs::{Field, Shape};
use crate::matcher::CompiledRule;
use crate::program::RuleProgram;
use crate::query::ast::{Cmp, Query, Sequence, Tok};
use crate::query::typing::{Test, TypedPred};

/// What one rule's program admits of the file events.
#[derive(Debug, Clone, Default)]
pub struct ProgramFilter {
    pub filter: PathFilter,
    /// For each part that admits every file event, why (`stage 2: ...`).
    pub open: Vec<String>,
}

/// Which shapes a query can match.
fn shapes(q: &Query<TypedPred>) -> (bool, bool) {
    let rule = CompiledRule::new(q);
    let file = Shape::ALL
        .iter()
        .any(|s| s.is_file_change() && rule.can_match(*s));
    let process = [Shape::Exec, Shape::Fork]
        .iter()
        .any(|s| rule.can_match(*s));
    (file, process)
}

/// The file events `program` can match (see the module's doc).
pub fn program_filter(program: &RuleProgram) -> ProgramFilter {
    let mut out = ProgramFilter::default();
    let plain = |q: &Query<TypedPred>, what: &str, out: &mut ProgramFilter| {
        if !shapes(q).0 {
            return;
        }
        let f = admitted_by(q);
        if f.is_all() {
            out.open.push(format!(
                "{what}: bounded by no path, file name, extension or process"
            ));
        }
        out.filter.merge(&f);
    };
    match program {
        RuleProgram::Sequence(seq) => {
            for (k, stage) in seq.stages.iter().enumerate() {
                let what = format!("stage {}", k + 1);
                if stage.missing || !shapes(&stage.query).0 {
                    plain(&stage.query, &what, &mut out);
                    continue;
                }
                let own = admitted_by(&stage.query);
                if !own.is_all() {
                    out.filter.merge(&own);
                    continue;
                }
                match joined_marks(seq, k) {
                    Some(marks) => out.filter.add_marks(&marks),
                    None => {
                        out.open.push(format!(
                            "{what}: bounded by no path, file name, extension or process, \
                             and joined on the process to no earlier stage that bounds its \
                             name, executable or parent name"
                        ));
                        out.filter.merge(&own);
                    }
                }
            }
            if let Some(until) = &seq.until {
                plain(&until.query, "until", &mut out);
            }
        }
        other => {
            for (i, q) in other.queries().into_iter().enumerate() {
                let what = match other {
                    RuleProgram::Sample(_) => format!("sample item {}", i + 1),
                    _ => "query".to_owned(),
                };
                plain(q, &what, &mut out);
            }
        }
    }
    out
}

/// The marks that bound sequence stage `k`'s events by their process: the most selective of
/// the earlier stages joined to it on the process (or its parent) whose own constraints bound
/// the process. `None` when there is none.
fn joined_marks(seq: &Sequence<Query<TypedPred>>, k: usize) -> Option<ProcessMarks> {
    let mut best: Option<(usize, ProcessMarks)> = None;
    for j in 0..k {
        let earlier = &seq.stages[j];
        if earlier.missing {
            continue;
        }
        let Some(bits) = join_bits(seq, j, k) else {
            continue;
        };
        let (file, _) = shapes(&earlier.query);
        // A parent's name read at a file event may be of an image the parent exec'd after
        // the process did: only an exec or fork stage bounds it.
        if let Bound::Some(marks) = process_bound(&earlier.query, bits, !file) {
            let rank = marks_rank(&marks);
            if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                best = Some((rank, marks));
            }
        }
    }
    best.map(|(_, m)| m)
}

/// How stage `k` joins stage `j < k` by process: [`MARK_SELF`] when on the same
/// `process.entity_id`, [`MARK_CHILDREN`] when stage `k`'s `process.parent.entity_id` is stage
/// `j`'s `process.entity_id`. Optional keys (which may join on a missing value) bound
/// nothing.
fn join_bits(seq: &Sequence<Query<TypedPred>>, j: usize, k: usize) -> Option<u8> {
    const ENTITY: &str = "process.entity_id";
    const PARENT: &str = "process.parent.entity_id";
    let mut bits = 0;
    if seq
        .by
        .iter()
        .any(|key| key.field == ENTITY && !key.optional)
    {
        bits |= MARK_SELF;
    }
    let (a, b) = (&seq.stages[j].keys, &seq.stages[k].keys);
    for (x, y) in a.iter().zip(b.iter()) {
        if x.optional || y.optional || x.field != ENTITY {
            continue;
        }
        if y.field == ENTITY {
            bits |= MARK_SELF;
        } else if y.field == PARENT {
            bits |= MARK_CHILDREN;
        }
    }
    // Joined both ways at once: marking itself is enough (its children pass as well).
    (bits != 0).then_some(bits)
}

/// What a query's constraints say of the process an event of it is by.
#[derive(Debug, Clone)]
enum Bound {
    Nothing,
    Everything,
    Some(ProcessMarks),
}

fn marks_rank(m: &ProcessMarks) -> usize {
    if m.every != 0 {
        return usize::MAX;
    }
    let shortest = m
        .exe_prefixes
        .iter()
        .chain(&m.exe_prefixes_after_one)
        .map(|(p, _)| p.len())
        .min()
        .unwrap_or(256);
    (m.names.len() + m.parents.len() + m.exe_prefixes.len() + m.exe_prefixes_after_one.len()) * 1000
        + (256 - shortest.min(256))
}

/// The processes an event matching `q` can be by, marked with `bits`: its name, executable
/// or (when `parent_ok`) parent name, from the most selective conjunct. Anything else
/// (another field, a negation, a regular expression) bounds nothing.
fn process_bound(q: &Query<TypedPred>, bits: u8, parent_ok: bool) -> Bound {
    match q {
        Query::Const(false) => Bound::Nothing,
        Query::Const(true) | Query::Not(_) => Bound::Everything,
        Query::Leaf(p) => process_leaf(p, bits, parent_ok),
        Query::And(children) => {
            let mut best = Bound::Everything;
            let mut best_rank = usize::MAX;
            for c in children {
                match process_bound(c, bits, parent_ok) {
                    Bound::Nothing => return Bound::Nothing,
                    Bound::Everything => {}
                    Bound::Some(m) => {
                        let r = marks_rank(&m);
                        if r < best_rank {
                            best_rank = r;
                            best = Bound::Some(m);
                        }
                    }
                }
            }
            best
        }
        Query::Or(children) => {
            let mut union = ProcessMarks::default();
            for c in children {
                match process_bound(c, bits, parent_ok) {
                    Bound::Nothing => {}
                    Bound::Everything => return Bound::Everything,
                    Bound::Some(m) => union.merge(&m),
                }
            }
            if union.every != 0 {
                Bound::Everything
            } else {
                Bound::Some(union)
            }
        }
    }
}

fn process_leaf(p: &TypedPred, bits: u8, parent_ok: bool) -> Bound {
    let Some(field) = p.field else {
        return Bound::Nothing;
    };
    let one = |f: &dyn Fn(&mut ProcessMarks)| {
        let mut m = ProcessMarks::default();
        f(&mut m);
        if m.every != 0 {
            Bound::Everything
        } else {
            Bound::Some(m)
        }
    };
    // The whole value a test requires, if it requires one.
    let exact = |test: &Test| match test {
        Test::Str(Cmp::Eq, s) => Some(s.clone()),
        Test::Pattern { toks, .. } => match pattern_ends(toks) {
            (_, tail, true) => Some(tail),
            _ => None,
        },
        _ => None,
    };
    match field {
        Field::Name => match exact(&p.test) {
            Some(name) => one(&|m| m.add_name(&name, bits)),
            None => Bound::Everything,
        },
        Field::ParentName if parent_ok => match exact(&p.test) {
            Some(name) => one(&|m| m.add_parent(&name, bits)),
            None => Bound::Everything,
        },
        Field::Executable => match &p.test {
            Test::Str(Cmp::Eq, s) => one(&|m| m.add_exe_prefix(s, bits)),
            Test::Pattern { toks, .. } => match toks.as_slice() {
                [Tok::Lit(head), ..] => one(&|m| m.add_exe_prefix(head, bits)),
                [Tok::One, Tok::Lit(head), ..] => one(&|m| m.add_exe_prefix_after_one(head, bits)),
                _ => Bound::Everything,
            },
            _ => Bound::Everything,
        },
        _ => Bound::Everything,
    }
}

/// What a query admits.
#[derive(Debug, Clone)]
enum Admits {
    /// No file event (the query cannot match one).
    Nothing,
    /// Every file event.
    Everything,
    /// The events a filter admits.
    Some(Box<PathFilter>),
}

impl Admits {
    fn into_filter(self) -> PathFilter {
        match self {
            Admits::Nothing => PathFilter::none(),
            Admits::Everything => PathFilter::all(),
            Admits::Some(f) => *f,
        }
    }

    fn one(f: impl FnOnce(&mut PathFilter)) -> Admits {
        let mut filter = PathFilter::none();
        f(&mut filter);
        Admits::Some(Box::new(filter))
    }

    /// How selective it is: fewer admitted paths first (prefixes by their length).
    fn rank(&self) -> usize {
        match self {
            Admits::Nothing => 0,
            Admits::Everything => usize::MAX,
            Admits::Some(f) if f.is_all() => usize::MAX,
            Admits::Some(f) => {
                // Weighed by how much of a typical file stream each kind of entry lets
                // through: a process name admits one program's events, a name or an
                // extension one kind of file, a deep prefix one tree, a shallow prefix
                // (`/home/`) or a component or text found anywhere a great deal more.
                let shallow = f
                    .prefixes()
                    .iter()
                    .filter(|p| p.split('/').filter(|c| !c.is_empty()).count() < 2)
                    .count();
                let shortest = f.prefixes().iter().map(String::len).min().unwrap_or(256);
                (f.processes().len()
                    + 2 * f.process_prefixes().len()
                    + 4 * f.process_suffixes().len()
                    + 2 * (f.names().len() + f.extensions().len() + f.prefixes().len())
                    + 20 * shallow
                    + 10 * (f.components().len() + f.contains().len()))
                    * 1000
                    + (256 - shortest.min(256))
            }
        }
    }
}

/// The file events a query that reads file events can match.
pub fn admitted_by(query: &Query<TypedPred>) -> PathFilter {
    admits(query).into_filter()
}

fn admits(q: &Query<TypedPred>) -> Admits {
    match q {
        Query::Const(false) => Admits::Nothing,
        Query::Const(true) | Query::Not(_) => Admits::Everything,
        Query::Leaf(p) => leaf(p),
        Query::And(children) => {
            let mut best = Admits::Everything;
            for c in children {
                let a = admits(c);
                if matches!(a, Admits::Nothing) {
                    return Admits::Nothing;
                }
                if a.rank() < best.rank() {
                    best = a;
                }
            }
            best
        }
        Query::Or(children) => {
            let mut union = PathFilter::none();
            for c in children {
                match admits(c) {
                    Admits::Nothing => {}
                    Admits::Everything => return Admits::Everything,
                    Admits::Some(f) => union.merge(&f),
                }
            }
            Admits::Some(Box::new(union))
        }
    }
}

/// The literal text a pattern starts with, the one it ends with, and whether it is all
/// literal.
fn pattern_ends(toks: &[Tok]) -> (String, String, bool) {
    let mut head = String::new();
    for t in toks {
        match t {
            Tok::Lit(s) => head.push_str(s),
            _ => break,
        }
    }
    let mut tail = String::new();
    for t in toks.iter().rev() {
        match t {
            Tok::Lit(s) => tail.insert_str(0, s),
            _ => break,
        }
    }
    let exact = toks.iter().all(|t| matches!(t, Tok::Lit(_)));
    (head, tail, exact)
}

/// What a test on `file.path` (or the original path) admits: of the forms a pattern allows
/// (its literal head as a prefix, its literal last component as a name, its extension, a
/// whole inner component, inner text), the most selective. A shallow prefix (`/home/` of
/// `/home/*/.ssh/*`) admits a whole tree, builds included, so an inner component (`.ssh`)
/// is preferred to it.
fn path_test(test: &Test) -> Admits {
    match test {
        Test::Str(Cmp::Eq, s) => Admits::one(|f| f.add_prefix(s)),
        Test::Pattern { toks, .. } => {
            let (head, tail, exact) = pattern_ends(toks);
            if exact {
                return Admits::one(|f| f.add_prefix(&head));
            }
            let mut best: Option<(u8, Admits)> = None;
            let mut offer = |rank: u8, a: Admits| {
                if !matches!(a, Admits::Everything) && best.as_ref().is_none_or(|(r, _)| rank < *r)
                {
                    best = Some((rank, a));
                }
            };
            if head.starts_with('/') && head.len() > 1 {
                let depth = head.split('/').filter(|p| !p.is_empty()).count();
                offer(
                    if depth >= 2 { 2 } else { 5 },
                    Admits::one(|f| f.add_prefix(&head)),
                );
            }
            if let Some((_, name)) = tail.rsplit_once('/')
                && !name.is_empty()
            {
                offer(1, Admits::one(|f| f.add_name(name)));
            }
            offer(3, extension_tail(&tail));
            let (rank, inner) = inner_literal(toks);
            offer(rank, inner);
            best.map_or(Admits::Everything, |(_, a)| a)
        }
        _ => Admits::Everything,
    }
}

/// A pattern's longest inner literal: a whole path component when it has one (`*/.ssh/*`:
/// the longest such, rank 3), else text the path must hold (rank 4; the sensor tests it, the
/// kernel cannot).
fn inner_literal(toks: &[Tok]) -> (u8, Admits) {
    // A literal the pattern starts with is where the path starts (a prefix, offered by the
    // caller), not a component anywhere: `/root/*` is not `*/root/*`.
    let skip = usize::from(matches!(toks.first(), Some(Tok::Lit(_))));
    let Some(lit) = toks[skip..]
        .iter()
        .filter_map(|t| match t {
            Tok::Lit(s) => Some(s.as_str()),
            _ => None,
        })
        .max_by_key(|s| s.len())
    else {
        return (u8::MAX, Admits::Everything);
    };
    // `…/name/…` inside the literal: `name` is a component, delimited on both sides.
    let parts: Vec<&str> = lit.split('/').collect();
    if parts.len() >= 3
        && let Some(component) = parts[1..parts.len() - 1]
            .iter()
            .filter(|p| !p.is_empty())
            .max_by_key(|p| p.len())
    {
        return (3, Admits::one(|f| f.add_component(component)));
    }
    if lit.len() >= 4 {
        return (4, Admits::one(|f| f.add_contains(lit)));
    }
    (u8::MAX, Admits::Everything)
}

/// A pattern's literal end like `.plist`: the extension; anything else admits every path.
fn extension_tail(tail: &str) -> Admits {
    match tail.strip_prefix('.') {
        Some(ext) if !ext.is_empty() && !ext.contains(['.', '/']) => {
            Admits::one(|f| f.add_extension(ext))
        }
        _ => Admits::Everything,
    }
}

/// What a test on `file.name` admits.
fn name_test(test: &Test) -> Admits {
    match test {
        Test::Str(Cmp::Eq, s) => Admits::one(|f| f.add_name(s)),
        Test::Pattern { toks, .. } => {
            let (_, tail, exact) = pattern_ends(toks);
            if exact {
                Admits::one(|f| f.add_name(&tail))
            } else {
                extension_tail(&tail)
            }
        }
        _ => Admits::Everything,
    }
}

fn leaf(p: &TypedPred) -> Admits {
    let Some(field) = p.field else {
        // A field no event carries: a test on it never holds.
        return Admits::Nothing;
    };
    match field {
        Field::FilePath | Field::FileOriginalPath => path_test(&p.test),
        Field::FileName | Field::FileOriginalName => name_test(&p.test),
        Field::FileExtension | Field::FileOriginalExtension => match &p.test {
            Test::Str(Cmp::Eq, s) => Admits::one(|f| f.add_extension(s)),
            Test::Pattern { toks, .. } => match pattern_ends(toks) {
                (_, tail, true) => Admits::one(|f| f.add_extension(&tail)),
                _ => Admits::Everything,
            },
            _ => Admits::Everything,
        },
        Field::FileDirectory => match &p.test {
            Test::Str(Cmp::Eq, s) => Admits::one(|f| f.add_prefix(&format!("{s}/"))),
            Test::Pattern { toks, .. } => {
                let (head, _, exact) = pattern_ends(toks);
                if exact {
                    Admits::one(|f| f.add_prefix(&format!("{head}/")))
                } else if head.starts_with('/') && head.len() > 1 {
                    Admits::one(|f| f.add_prefix(&head))
                } else {
                    Admits::Everything
                }
            }
            _ => Admits::Everything,
        },
        Field::Name => match &p.test {
            Test::Str(Cmp::Eq, s) => Admits::one(|f| f.add_process(s)),
            Test::Pattern { toks, .. } => match pattern_ends(toks) {
                (_, tail, true) => Admits::one(|f| f.add_process(&tail)),
                (head, _, false) if !head.is_empty() => {
                    Admits::one(|f| f.add_process_prefix(&head))
                }
                (_, tail, false) if matches!(toks.first(), Some(Tok::Star)) && !tail.is_empty() => {
                    Admits::one(|f| f.add_process_suffix(&tail))
                }
                _ => Admits::Everything,
            },
            _ => Admits::Everything,
        },
        _ => Admits::Everything,
    }
}

#[cfg(test)]
mod tests {
    use crate::RuleSet;

    fn filter_of(query: &str) -> nightjar_proto::filter::PathFilter {
        let toml = format!(
            "[metadata]\ncreation_date = \"2024/01/01\"\n[rule]\nrule_id = \"r\"\nname = \"n\"\n\
             severity = \"low\"\nrisk_score = 21\ndescription = \"d\"\ntype = \"eql\"\n\
             language = \"eql\"\nquery = '''\n{query}\n'''\n"
        );
        let (set, report) = RuleSet::from_texts(&[("t.toml", &toml)], None);
        assert_eq!(report.ok(), 1, "{report:?}");
        set.file_filter()
    }

    #[test]
    fn paths_names_extensions_and_processes_bound_the_filter() {
        let f = filter_of(r#"file where file.path : "/etc/cron.d/*""#);
        assert_eq!(f.prefixes(), ["/etc/cron.d/"]);
        assert!(f.admits("/etc/cron.d/x", None) && !f.admits("/tmp/x", None));
        let f = filter_of(r#"file where file.path : ("*/.ssh/authorized_keys", "/root/.bashrc")"#);
        assert_eq!(f.names(), ["authorized_keys"]);
        assert_eq!(f.prefixes(), ["/root/.bashrc"]);
        let f = filter_of(r#"file where file.extension : "plist" and process.name : "curl""#);
        assert!(f.extensions() == ["plist"] || f.processes() == ["curl"]);
        let f = filter_of(r#"file where file.name like~ "*.dylib""#);
        assert_eq!(f.extensions(), ["dylib"]);
    }

    #[test]
    fn what_does_not_bound_admits_everything() {
        assert!(filter_of(r#"file where not file.path : "/tmp/*""#).is_all());
        assert!(filter_of(r#"file where file.path : "*/t*""#).is_all());
        let f = filter_of(r#"file where file.path : "*/wp-content/plugins/*""#);
        assert_eq!(f.components(), ["wp-content"]);
        let f = filter_of(r#"file where file.path : "/*GCONV_PATH*""#);
        assert_eq!(f.contains(), ["gconv_path"]);
        let f = filter_of(r#"file where process.name : "kworker*""#);
        assert_eq!(f.process_prefixes(), ["kworker"]);
        assert!(filter_of(r#"file where event.type == "creation""#).is_all());
        assert!(filter_of(r#"file where file.path regex~ "/etc/.*""#).is_all());
    }

    fn program_of(query: &str) -> super::ProgramFilter {
        let toml = format!(
            "[metadata]\ncreation_date = \"2024/01/01\"\n[rule]\nrule_id = \"r\"\nname = \"n\"\n\
             severity = \"low\"\nrisk_score = 21\ndescription = \"d\"\ntype = \"eql\"\n\
             language = \"eql\"\nquery = '''\n{query}\n'''\n"
        );
        let (set, report) = RuleSet::from_texts(&[("t.toml", &toml)], None);
        assert_eq!(report.ok(), 1, "{report:?}");
        super::program_filter(&set.programs()[0])
    }

    #[test]
    fn a_file_stage_joined_to_an_exec_stage_is_bounded_by_marks() {
        use nightjar_proto::filter::{MARK_CHILDREN, MARK_SELF};
        let p = program_of(
            "sequence by process.entity_id\n [process where process.name in (\"cp\", \"mv\")]\n \
             [file where event.type == \"creation\"]",
        );
        assert!(p.open.is_empty() && !p.filter.is_all(), "{p:?}");
        let m = p.filter.marks();
        assert_eq!(
            m.names,
            [("cp".to_owned(), MARK_SELF), ("mv".to_owned(), MARK_SELF)]
        );
        let p = program_of(
            "sequence\n [process where process.parent.name == \"foomatic-rip\" and \
             process.name : \"sh\"] by process.entity_id\n \
             [file where true] by process.parent.entity_id",
        );
        let m = p.filter.marks();
        assert!(
            m.parents == [("foomatic-rip".to_owned(), MARK_CHILDREN)]
                || m.names == [("sh".to_owned(), MARK_CHILDREN)],
            "{m:?}"
        );
        let p = program_of(
            "sequence by process.entity_id\n [process where process.executable like \
             (\"/tmp/*\", \"?memfd:*\")]\n [file where event.action == \"deletion\"]",
        );
        let m = p.filter.marks();
        assert_eq!(m.exe_prefixes, [("/tmp/".to_owned(), MARK_SELF)]);
        assert_eq!(m.exe_prefixes_after_one, [("memfd:".to_owned(), MARK_SELF)]);
        assert_eq!(m.bits_at_exec("/memfd:x (deleted)", None), MARK_SELF);
        assert_eq!(m.bits_at_exec("/usr/bin/cc", None), 0);
    }

    #[test]
    fn what_marks_cannot_bound_stays_open_and_says_why() {
        // Joined on something else than the process.
        let p = program_of(
            "sequence by host.id\n [process where process.name == \"cp\"]\n [file where true]",
        );
        assert!(p.filter.is_all() && p.open.len() == 1, "{p:?}");
        assert!(p.open[0].starts_with("stage 2"), "{:?}", p.open);
        // The earlier stage bounds no process field.
        let p = program_of(
            "sequence by process.entity_id\n [process where user.id == \"0\"]\n [file where true]",
        );
        assert!(p.filter.is_all() && !p.open.is_empty(), "{p:?}");
        // The file stage comes first: nothing earlier bounds it.
        let p = program_of(
            "sequence by process.entity_id\n [file where true]\n [process where process.name == \"cp\"]",
        );
        assert!(p.filter.is_all(), "{p:?}");
        // A sample's items come in any order.
        let p = program_of(
            "sample by process.entity_id\n [process where process.name == \"cp\"]\n [file where true]",
        );
        assert!(p.filter.is_all(), "{p:?}");
        // A negated name bounds nothing.
        let p = program_of(
            "sequence by process.entity_id\n [process where not process.name == \"cp\"]\n \
             [file where true]",
        );
        assert!(p.filter.is_all(), "{p:?}");
    }

    #[test]
    fn process_rules_admit_no_file_event() {
        assert!(filter_of(r#"process where process.name == "kcc""#).is_none());
    }
}
