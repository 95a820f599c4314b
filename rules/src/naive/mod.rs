//! The simple interpreter: each event becomes a serde_json ECS document and every rule's tree
//! is walked over it, looking fields up by path. It is what a straightforward implementation
//! would do; it serves as the baseline of `scripts/bench rules` and as the reference the
//! compiled matcher is property-tested against. [`stateful`] does the same for the
//! stateful rules, event by event over documents.

pub mod stateful;

use serde_json::{Map, Value as Json};

use crate::check::{CompiledCheck, Fields, V};
use crate::ecs::{EcsEvent, FieldKind, within_ignore_above};
use crate::pattern::ci_char_eq;
use crate::query::ast::{Query, Tok};
use crate::query::typing::{Test, TypedPred};

/// A leaf with its computed-value condition (if any) ready to evaluate.
type Leaf = (TypedPred, Option<CompiledCheck>);

/// Typed queries, evaluated one by one.
#[derive(Debug)]
pub struct NaiveRules {
    rules: Vec<Query<Leaf>>,
}

impl NaiveRules {
    pub fn new(queries: &[&Query<TypedPred>]) -> NaiveRules {
        let rules = queries
            .iter()
            .map(|q| {
                (*q).clone().try_map(&mut |p: TypedPred| {
                    let check = match &p.test {
                        Test::Check(c) => CompiledCheck::new(c).ok(),
                        _ => None,
                    };
                    Ok::<Leaf, ()>((p, check))
                })
            })
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        NaiveRules { rules }
    }

    /// Builds the event's document and evaluates every rule on it.
    pub fn evaluate(&self, ev: &EcsEvent<'_>, out: &mut Vec<usize>) {
        let doc = ev.document();
        self.evaluate_document(&doc, out);
    }

    pub fn evaluate_document(&self, doc: &Map<String, Json>, out: &mut Vec<usize>) {
        out.clear();
        for (i, q) in self.rules.iter().enumerate() {
            if eval(q, doc) {
                out.push(i);
            }
        }
    }
}

fn eval(q: &Query<Leaf>, doc: &Map<String, Json>) -> bool {
    match q {
        Query::And(v) => v.iter().all(|k| eval(k, doc)),
        Query::Or(v) => v.iter().any(|k| eval(k, doc)),
        Query::Not(k) => match negated_check(k, true) {
            // `not` of a computed condition is three-valued: null stays false.
            Some((check, negated)) => check_value(check, doc).is_some_and(|b| b != negated),
            None => !eval(k, doc),
        },
        Query::Const(b) => *b,
        Query::Leaf((_, Some(check))) => check_value(check, doc) == Some(true),
        Query::Leaf((p, None)) => lookup(doc, &p.name).iter().any(|v| test(p, v)),
    }
}

/// The check under a chain of `not`s, and whether they negate it.
fn negated_check(q: &Query<Leaf>, negated: bool) -> Option<(&CompiledCheck, bool)> {
    match q {
        Query::Not(inner) => negated_check(inner, !negated),
        Query::Leaf((_, Some(check))) => Some((check, negated)),
        _ => None,
    }
}

fn check_value(check: &CompiledCheck, doc: &Map<String, Json>) -> Option<bool> {
    let values = check
        .fields()
        .iter()
        .map(|f| {
            lookup(doc, &f.name)
                .into_iter()
                .filter(|v| match v {
                    // No doc value past `ignore_above`.
                    Json::String(s) => f.kind != FieldKind::Keyword || within_ignore_above(s),
                    _ => true,
                })
                .collect()
        })
        .collect();
    check.eval(&DocFields { values })
}

/// A check's field values, looked up in a document.
struct DocFields<'d> {
    values: Vec<Vec<&'d Json>>,
}

impl Fields for DocFields<'_> {
    fn count(&self, i: usize) -> usize {
        self.values[i].len()
    }

    fn get(&self, i: usize, k: usize) -> V<'_> {
        match self.values[i].get(k) {
            Some(Json::String(s)) => V::Str(std::borrow::Cow::Borrowed(s)),
            Some(Json::Bool(b)) => V::Bool(*b),
            Some(Json::Number(n)) => match n.as_i64() {
                Some(i) => V::Int(i),
                None => n.as_f64().map_or(V::Null, V::Float),
            },
            _ => V::Null,
        }
    }
}

/// The values at a dotted path, arrays flattened; keyword strings over `ignore_above` dropped.
fn lookup<'d>(doc: &'d Map<String, Json>, path: &str) -> Vec<&'d Json> {
    let mut node: Option<&Json> = None;
    let mut map = doc;
    for part in path.split('.') {
        match map.get(part) {
            Some(Json::Object(m)) => {
                map = m;
                node = None;
            }
            Some(v) => node = Some(v),
            None => return Vec::new(),
        }
    }
    let mut out = Vec::new();
    match node {
        Some(Json::Array(items)) => out.extend(items.iter()),
        Some(v) => out.push(v),
        None => {}
    }
    out
}

fn test(p: &TypedPred, v: &Json) -> bool {
    if let Json::String(s) = v
        && p.kind == FieldKind::Keyword
        && !within_ignore_above(s)
    {
        return false;
    }
    match (&p.test, v) {
        (Test::Exists, _) => true,
        (Test::Str(cmp, want), Json::String(s)) => cmp.holds(s.as_bytes().cmp(want.as_bytes())),
        (Test::Pattern { toks, ci }, Json::String(s)) => glob(toks, s, *ci),
        (Test::Regex(re), Json::String(s)) => re.is_match(s),
        (Test::Num(cmp, want), Json::Number(n)) => n
            .as_f64()
            .and_then(|n| n.partial_cmp(want))
            .is_some_and(|o| cmp.holds(o)),
        (Test::Bool(want), Json::Bool(b)) => want == b,
        _ => false,
    }
}

/// Wildcard matching by dynamic programming over characters.
fn glob(toks: &[Tok], s: &str, ci: bool) -> bool {
    #[derive(Clone, Copy)]
    enum P {
        C(char),
        Star,
        One,
    }
    let pat: Vec<P> = toks
        .iter()
        .flat_map(|t| match t {
            Tok::Lit(l) => l.chars().map(P::C).collect::<Vec<_>>(),
            Tok::Star => vec![P::Star],
            Tok::One => vec![P::One],
        })
        .collect();
    let text: Vec<char> = s.chars().collect();
    // m[i][j]: pat[..i] matches text[..j]
    let mut m = vec![vec![false; text.len() + 1]; pat.len() + 1];
    m[0][0] = true;
    for i in 1..=pat.len() {
        for j in 0..=text.len() {
            m[i][j] = match pat[i - 1] {
                P::Star => m[i - 1][j] || (j > 0 && m[i][j - 1]),
                P::One => j > 0 && m[i - 1][j - 1],
                P::C(c) => {
                    j > 0
                        && m[i - 1][j - 1]
                        && (c == text[j - 1] || (ci && ci_char_eq(c, text[j - 1])))
                }
            };
        }
    }
    m[pat.len()][text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_by_dynamic_programming() {
        let t = |s: &str| crate::query::eql::like_toks(s);
        assert!(glob(&t("a*b?c"), "axxbyc", false));
        assert!(!glob(&t("a*b?c"), "axxbc", false));
        assert!(glob(&t("A*"), "abc", true));
        assert!(!glob(&t("A*"), "abc", false));
    }
}
