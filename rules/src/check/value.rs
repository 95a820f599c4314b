//! Values of EQL expressions, with Elasticsearch's comparisons and conversions.

use std::borrow::Cow;
use std::cmp::Ordering;

/// A computed value. Strings borrow from the event where they can.
#[derive(Debug, Clone, PartialEq)]
pub enum V<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl V<'_> {
    pub fn is_null(&self) -> bool {
        matches!(self, V::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            V::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            V::Int(n) => Some(*n as f64),
            V::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The text `string()` and `concat()` give: numbers as Java prints them.
    pub fn to_text(&self) -> Option<String> {
        Some(match self {
            V::Null => return None,
            V::Str(s) => s.to_string(),
            V::Int(n) => n.to_string(),
            V::Float(f) => java_double(*f),
            V::Bool(b) => b.to_string(),
        })
    }

    /// Equality as `==` has it (`ci`: strings compared ignoring case); `None` when either side
    /// is null or the types differ.
    pub fn equals(&self, other: &V<'_>, ci: bool) -> Option<bool> {
        match (self, other) {
            (V::Null, _) | (_, V::Null) => None,
            (V::Str(a), V::Str(b)) => Some(if ci {
                crate::pattern::ci_str_eq(a, b)
            } else {
                a == b
            }),
            (V::Bool(a), V::Bool(b)) => Some(a == b),
            (V::Int(a), V::Int(b)) => Some(a == b),
            (a, b) => Some(a.as_f64()? == b.as_f64()?),
        }
    }

    /// Ordering for `<`, `<=`, `>`, `>=`; `None` for nulls and mixed types.
    pub fn order(&self, other: &V<'_>) -> Option<Ordering> {
        match (self, other) {
            (V::Str(a), V::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
            (V::Int(a), V::Int(b)) => Some(a.cmp(b)),
            (V::Bool(a), V::Bool(b)) => Some(a.cmp(b)),
            (a, b) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        }
    }
}

/// `Double.toString` for the values rules use: `42.5`, `1.0`, `-0.25`.
fn java_double(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e7 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_follow_types() {
        let s = |x: &'static str| V::Str(Cow::Borrowed(x));
        assert_eq!(s("a").equals(&s("A"), false), Some(false));
        assert_eq!(s("a").equals(&s("A"), true), Some(true));
        assert_eq!(V::Int(4).equals(&V::Float(4.0), false), Some(true));
        assert_eq!(V::Int(4).equals(&s("4"), false), None);
        assert_eq!(V::Null.equals(&V::Null, false), None);
        assert_eq!(V::Int(3).order(&V::Float(3.5)), Some(Ordering::Less));
        assert_eq!(V::Float(42.5).to_text().unwrap(), "42.5");
        assert_eq!(V::Float(2.0).to_text().unwrap(), "2.0");
    }
}
