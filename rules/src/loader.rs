//! Elastic detection-rules TOML: one file, or every `*.toml` under a directory (sorted).
//!
//! A file yields a rule that is supported (its query parsed and typed), unsupported (with the
//! reason: rule type, EQL sequence, event category...), or an error located at
//! `file:line:col` — for a query error, the position inside the TOML file, found by mapping
//! the offset in the query string back through the string literal that holds it
//! ([`crate::source_map`], escapes included).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::program::RuleProgram;
use crate::query::ast::Eql;
use crate::query::{self, BuildError, Language};
use crate::{RuleMeta, RulesError};

/// What loading one file produced.
#[derive(Debug)]
pub enum Loaded {
    Rule {
        meta: Box<RuleMeta>,
        program: Box<RuleProgram>,
        /// `file:line:col: message`, for what loads but deserves a look.
        warnings: Vec<String>,
    },
    Unsupported(Box<RuleMeta>, String),
}

/// A rule file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub rule_id: Option<String>,
    pub name: Option<String>,
    /// `file:line:col: message`.
    pub message: String,
}

#[derive(Debug, Deserialize)]
struct RuleFile {
    rule: RuleSection,
}

#[derive(Debug, Deserialize)]
struct RuleSection {
    rule_id: String,
    name: String,
    #[serde(default)]
    version: Option<u32>,
    severity: String,
    risk_score: u32,
    #[serde(rename = "type")]
    rule_type: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    from: Option<toml::Spanned<String>>,
    #[serde(default)]
    interval: Option<toml::Spanned<String>>,
    #[serde(default)]
    max_signals: Option<u32>,
    #[serde(default)]
    threat: Option<toml::Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    query: Option<toml::Spanned<String>>,
    #[serde(default)]
    new_terms: Option<toml::Spanned<NewTermsSection>>,
    #[serde(default)]
    threshold: Option<toml::Spanned<ThresholdSection>>,
    #[serde(default)]
    exceptions_list: Vec<ExceptionListRef>,
}

/// `[rule.new_terms]`: `field = "new_terms_fields"`, `value = [...]`, and
/// `[[rule.new_terms.history_window_start]]` with `value = "now-5d"`.
#[derive(Debug, Deserialize)]
struct NewTermsSection {
    #[serde(default)]
    value: Vec<String>,
    #[serde(default)]
    history_window_start: Vec<NamedValue>,
}

#[derive(Debug, Deserialize)]
struct NamedValue {
    value: String,
}

/// `[rule.threshold]`: `field = [...]`, `value = N`, `[[rule.threshold.cardinality]]`.
#[derive(Debug, Deserialize)]
struct ThresholdSection {
    #[serde(default)]
    field: FieldList,
    value: u64,
    #[serde(default)]
    cardinality: Vec<CardinalitySection>,
}

#[derive(Debug, Deserialize)]
struct CardinalitySection {
    field: String,
    value: u64,
}

/// One field name or a list of them (Elastic writes both).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum FieldList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl FieldList {
    fn into_vec(self) -> Vec<String> {
        match self {
            FieldList::None => Vec::new(),
            FieldList::One(f) if f.is_empty() => Vec::new(),
            FieldList::One(f) => vec![f],
            FieldList::Many(v) => v.into_iter().filter(|f| !f.is_empty()).collect(),
        }
    }
}

/// `[[rule.exceptions_list]]` as Kibana exports it (`id`, `list_id`, `namespace_type`, `type`);
/// lists are matched by `list_id` and namespace, since `id` changes on every import.
#[derive(Debug, Deserialize)]
struct ExceptionListRef {
    list_id: String,
    #[serde(default = "single_namespace")]
    namespace_type: String,
}

fn single_namespace() -> String {
    "single".to_owned()
}

/// Every rule file under `path`: itself when it is a file, else its `*.toml` files, recursively
/// and sorted.
pub fn rule_files(path: &Path) -> Result<Vec<PathBuf>, RulesError> {
    let meta = std::fs::metadata(path).map_err(|e| RulesError::io(path, e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| RulesError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RulesError::io(&dir, e))?;
            let p = entry.path();
            let ft = entry.file_type().map_err(|e| RulesError::io(&p, e))?;
            if ft.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses one rule file's text; `display` names it in messages.
pub fn load_text(display: &str, text: &str) -> Result<Loaded, FileError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        FileError {
            rule_id: None,
            name: None,
            message: format!("{}: {}", locate(display, text, at), e.message().trim()),
        }
    })?;
    let r = file.rule;
    let fail = |at: usize, msg: String| FileError {
        rule_id: Some(r.rule_id.clone()),
        name: Some(r.name.clone()),
        message: format!("{}: {msg}", locate(display, text, at)),
    };
    let interval = match &r.interval {
        None => Duration::from_secs(300),
        Some(s) => parse_duration(s.get_ref()).ok_or_else(|| {
            fail(
                s.span().start,
                format!(
                    "expected an interval like `5m`, `30s` or `1h`, found `{}`",
                    s.get_ref()
                ),
            )
        })?,
    };
    let language = r
        .language
        .clone()
        .unwrap_or_else(|| match r.rule_type.as_str() {
            "eql" => "eql".to_owned(),
            "esql" => "esql".to_owned(),
            _ => "kuery".to_owned(),
        });
    let threat = match &r.threat {
        Some(t) => serde_json::to_value(t).map_err(|e| fail(0, format!("threat: {e}")))?,
        None => serde_json::Value::Array(Vec::new()),
    };
    let query_text = r
        .query
        .as_ref()
        .map(|q| q.get_ref().clone())
        .unwrap_or_default();
    let lookback = match &r.from {
        None => Duration::from_secs(360),
        Some(f) => parse_relative(f.get_ref()).ok_or_else(|| {
            fail(
                f.span().start,
                format!(
                    "expected a look-back like `now-9m`, found `{}`",
                    f.get_ref()
                ),
            )
        })?,
    };
    let meta = Box::new(RuleMeta {
        rule_id: r.rule_id.clone(),
        name: r.name.clone(),
        version: r.version,
        severity: r.severity.clone(),
        risk_score: r.risk_score,
        rule_type: r.rule_type.clone(),
        language: language.clone(),
        from: r
            .from
            .as_ref()
            .map_or_else(|| "now-6m".to_owned(), |f| f.get_ref().clone()),
        lookback,
        interval,
        max_signals: r.max_signals.unwrap_or(100),
        threat,
        tags: r.tags.clone(),
        description: r.description.trim().to_owned(),
        query: query_text.trim().to_owned(),
        source: PathBuf::from(display),
        exceptions_list: r
            .exceptions_list
            .iter()
            .map(|l| crate::rule::ListRef {
                list_id: l.list_id.clone(),
                namespace_type: l.namespace_type.clone(),
            })
            .collect(),
    });
    let supported = matches!(
        (r.rule_type.as_str(), language.as_str()),
        ("query" | "new_terms" | "threshold", "kuery") | ("eql", "eql")
    );
    if !supported {
        let why = match r.rule_type.as_str() {
            "query" | "new_terms" | "threshold" => {
                format!("query language `{language}` is not supported (KQL only)")
            }
            "esql" => "ES|QL rules need an Elasticsearch engine".into(),
            "machine_learning" => "machine learning rules need Elastic's anomaly jobs".into(),
            t => format!("rule type `{t}` is not supported"),
        };
        return Ok(Loaded::Unsupported(meta, why));
    }
    let Some(query) = &r.query else {
        return Err(fail(0, "missing key `query` in [rule]".into()));
    };
    let literal = crate::source_map::LiteralMap::new(text, query.span());
    let language = if r.rule_type == "eql" {
        Language::Eql
    } else {
        Language::Kql
    };
    let built = match query::build(language, query.get_ref()) {
        Ok(built) => built,
        Err(BuildError::Unsupported(why)) => return Ok(Loaded::Unsupported(meta, why)),
        Err(BuildError::Syntax { offset, message } | BuildError::Type { offset, message }) => {
            return Err(fail(literal.file_offset(offset), message));
        }
    };
    let warnings = built
        .warnings
        .into_iter()
        .map(|w| {
            format!(
                "{}: {}",
                locate(display, text, literal.file_offset(w.offset)),
                w.message
            )
        })
        .collect();
    let program = match (r.rule_type.as_str(), built.program) {
        (_, Eql::Sequence(s)) => RuleProgram::Sequence(s),
        (_, Eql::Sample(s)) => RuleProgram::Sample(s),
        ("new_terms", Eql::Event(query)) => {
            let Some(nt) = &r.new_terms else {
                return Err(fail(
                    0,
                    "missing `[rule.new_terms]` in a new_terms rule".into(),
                ));
            };
            let at = nt.span().start;
            let nt = nt.get_ref();
            if nt.value.is_empty() || nt.value.len() > 3 {
                return Err(fail(
                    at,
                    format!("new_terms takes 1 to 3 fields, found {}", nt.value.len()),
                ));
            }
            let history = match nt.history_window_start.first() {
                Some(h) => parse_relative(&h.value).ok_or_else(|| {
                    fail(
                        at,
                        format!(
                            "expected a history window start like `now-7d`, found `{}`",
                            h.value
                        ),
                    )
                })?,
                None => return Err(fail(at, "missing `history_window_start`".into())),
            };
            RuleProgram::NewTerms {
                query,
                fields: nt.value.clone(),
                history,
            }
        }
        ("threshold", Eql::Event(query)) => {
            let Some(th) = r.threshold else {
                return Err(fail(
                    0,
                    "missing `[rule.threshold]` in a threshold rule".into(),
                ));
            };
            let at = th.span().start;
            let th = th.into_inner();
            if th.value == 0 {
                return Err(fail(at, "threshold `value` must be at least 1".into()));
            }
            let cardinality = match th.cardinality.as_slice() {
                [] => None,
                [c] if c.value > 0 => Some((c.field.clone(), c.value)),
                [_] => return Err(fail(at, "cardinality `value` must be at least 1".into())),
                _ => return Err(fail(at, "at most one `cardinality` is supported".into())),
            };
            RuleProgram::Threshold {
                query,
                group_by: th.field.into_vec(),
                value: th.value,
                cardinality,
                window: lookback,
            }
        }
        (_, Eql::Event(query)) => RuleProgram::Event(query),
    };
    Ok(Loaded::Rule {
        meta,
        program: Box::new(program),
        warnings,
    })
}

/// `file:line:col` (1-based; columns count characters) of byte offset `at`.
pub fn locate(display: &str, text: &str, at: usize) -> String {
    let at = crate::source_map::floor_boundary(text, at);
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text[line_start..at].chars().count() + 1;
    format!("{display}:{line}:{col}")
}

/// `now-9m`, `now-5d`: how far back from now.
pub fn parse_relative(s: &str) -> Option<Duration> {
    parse_duration(s.trim().strip_prefix("now-")?)
}

/// `30s`, `5m`, `1h`, `1d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..split].parse().ok()?;
    let unit = match &s[split..] {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}
