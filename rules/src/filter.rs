//! The file events a rule set can match, as a [`PathFilter`] the sensor applies at the source.
//!
//! For each rule that can match a file event, its query is walked for what bounds the paths
//! (or processes) of the events it can match: a `file.path` literal or pattern prefix, a file
//! name, an extension, a directory, a `process.name`. `and` keeps the bound of one conjunct
//! (every match satisfies each of them), `or` joins its branches' bounds, and anything that
//! does not bound (a negation, a regular expression, another field) admits every file event.
//! The result is a superset by construction: no file event a rule could match is filtered.

use nightjar_proto::filter::PathFilter;

use crate::ecs::Field;
use crate::query::ast::{Cmp, Query, Tok};
use crate::query::typing::{Test, TypedPred};

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
                let shortest = f.prefixes().iter().map(String::len).min().unwrap_or(256);
                (f.prefixes().len() + f.names().len() + f.extensions().len() + f.processes().len())
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
    let Some(lit) = toks
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

    #[test]
    fn process_rules_admit_no_file_event() {
        assert!(filter_of(r#"process where process.name == "kcc""#).is_none());
    }
}
