//! The bounds every query parser keeps, in one place: rules arrive over the network (fleet
//! policies) and from any file an admin points at, so no query may crash, hang or exhaust a
//! parser, the compiler or the evaluator.
//!
//! - [`MAX_DEPTH`]: nesting of parentheses, `not` and value lists. The parsers descend
//!   recursively, and so do typing, compiling and evaluating the tree they build: past this
//!   depth a query is refused with a clear error instead of overflowing a thread's stack.
//!   Elastic's rules nest 7 levels at most.
//! - [`MAX_QUERY_BYTES`]: Elastic's longest query is about 10 KiB.
//! - [`MAX_LEAVES`]: field tests in one query (each `in` / `:` list value counts); Elastic's
//!   largest has about 300. Compile time grows with the number of tests.

use super::ParseError;

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 100;
/// Longest query accepted.
pub const MAX_QUERY_BYTES: usize = 128 * 1024;
/// Most field tests in one query.
pub const MAX_LEAVES: usize = 10_000;

/// Refuses an over-long query before any parsing.
pub fn check_size(src: &str) -> Result<(), ParseError> {
    if src.len() > MAX_QUERY_BYTES {
        return Err(ParseError {
            offset: 0,
            message: format!(
                "the query is {} bytes, over the limit of {MAX_QUERY_BYTES}",
                src.len()
            ),
        });
    }
    Ok(())
}

/// A parser's current nesting and test count.
#[derive(Debug, Default, Clone, Copy)]
pub struct Budget {
    depth: usize,
    leaves: usize,
}

impl Budget {
    /// One level deeper, at byte `offset`; refused past [`MAX_DEPTH`]. Pair with
    /// [`Budget::leave`].
    pub fn enter(&mut self, offset: usize) -> Result<(), ParseError> {
        if self.depth >= MAX_DEPTH {
            return Err(ParseError {
                offset,
                message: format!(
                    "the query nests deeper than {MAX_DEPTH} levels (parentheses, `not` and \
                     value lists)"
                ),
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// Back out of a level [`Budget::enter`] entered.
    pub fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// One more field test at byte `offset`; refused past [`MAX_LEAVES`].
    pub fn leaf(&mut self, offset: usize) -> Result<(), ParseError> {
        self.leaves += 1;
        if self.leaves > MAX_LEAVES {
            return Err(ParseError {
                offset,
                message: format!("the query has more than {MAX_LEAVES} field tests"),
            });
        }
        Ok(())
    }
}
