//! Queries: the KQL and EQL parsers, the tree they share, and type resolution.
//!
//! [`build`] is the whole path from a rule's query text to the typed tree the matchers
//! evaluate, with a typed [`BuildError`] that locates every failure in the query text. Both
//! parsers keep the bounds of [`limits`] (nesting, size, number of tests), so they are total:
//! any text gives a query or an error, never a panic, a stack overflow or a hang.

pub mod ast;
pub mod eql;
pub mod kql;
pub mod limits;
pub mod typing;

use ast::Query;
use typing::TypedPred;

/// A syntax error inside a query: byte offset in the query text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

/// The query languages rules are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Kql,
    Eql,
}

/// Why a query text did not become a typed query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// Not valid KQL or EQL.
    #[error("at offset {offset}: {message}")]
    Syntax { offset: usize, message: String },
    /// Valid, but a literal does not fit its field's mapping.
    #[error("at offset {offset}: {message}")]
    Type { offset: usize, message: String },
    /// Valid, but asks for something this engine does not evaluate (a rule that loads as
    /// unsupported, not as an error).
    #[error("{0}")]
    Unsupported(String),
}

impl BuildError {
    /// Byte offset in the query text, for errors that have one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            BuildError::Syntax { offset, .. } | BuildError::Type { offset, .. } => Some(*offset),
            BuildError::Unsupported(_) => None,
        }
    }
}

impl From<ParseError> for BuildError {
    fn from(e: ParseError) -> Self {
        BuildError::Syntax {
            offset: e.offset,
            message: e.message,
        }
    }
}

/// Something a rule's author should look at, though the rule loads: at a byte offset in the
/// query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub offset: usize,
    pub message: String,
}

/// A rule's typed program: one event query, a sequence or a sample.
pub type Program = ast::Eql<Query<TypedPred>>;

/// A typed program and what is worth a warning about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub program: Program,
    pub warnings: Vec<Warning>,
}

/// Parses and types `text`.
pub fn build(language: Language, text: &str) -> Result<Built, BuildError> {
    let parsed = match language {
        Language::Kql => ast::Eql::Event(kql::parse(text)?),
        Language::Eql => eql::parse(text).map_err(|e| match e {
            eql::EqlError::Syntax(e) => BuildError::from(e),
            eql::EqlError::Unsupported(why) => BuildError::Unsupported(why),
        })?,
    };
    let program = parsed.try_map(&mut |q: Query<ast::Pred>| {
        q.typed().map_err(|e| BuildError::Type {
            offset: e.at,
            message: e.message,
        })
    })?;
    let mut warnings = Vec::new();
    for q in program.queries() {
        for (name, offset) in q.absent_fields() {
            if warnings
                .iter()
                .any(|w: &Warning| w.message.contains(&format!("`{name}`")))
            {
                continue;
            }
            warnings.push(Warning {
                offset,
                message: absent_warning(name),
            });
        }
    }
    Ok(Built { program, warnings })
}

fn absent_warning(name: &str) -> String {
    match crate::ecs::schema::suggest(name) {
        Some(near) => {
            format!("unknown field `{name}` (did you mean `{near}`?): tests on it are false")
        }
        None => {
            format!("field `{name}` is not produced by this host's events: tests on it are false")
        }
    }
}
