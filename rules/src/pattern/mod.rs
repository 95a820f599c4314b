//! String matchers of the compiled rules: wildcard patterns ([`Glob`]) and Lucene regular
//! expressions ([`Regex`]), and the case-insensitive comparisons both matchers share.
//!
//! Case-insensitive matching follows Lucene: a pattern character matches itself, its lower
//! case or its upper case (simple one-character mappings).

mod glob;
mod lucene;

pub use glob::{BytesGlob, CharTok, Glob};
pub use lucene::{Regex, lucene_literal_prefix, lucene_required_literal, lucene_to_regex};

/// Case-insensitive character equality as Lucene builds it for a pattern character `p`:
/// `v` matches when it is `p`, its lower case or its upper case (simple, one-character mappings).
pub fn ci_char_eq(p: char, v: char) -> bool {
    if p == v {
        return true;
    }
    if p.is_ascii() {
        return v.is_ascii() && p.eq_ignore_ascii_case(&v);
    }
    single(p.to_lowercase()) == Some(v) || single(p.to_uppercase()) == Some(v)
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

/// Leftmost occurrence of `needle` (lowercase ASCII) in `hay`, ignoring ASCII case.
pub fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return Some(0);
    };
    let upper = first.to_ascii_uppercase();
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from + memchr::memchr2(first, upper, &hay[from..=hay.len() - needle.len()])?;
        if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Case-insensitive whole-string equality (pattern `p`, value `v`).
pub fn ci_str_eq(p: &str, v: &str) -> bool {
    if p.is_ascii() {
        return p.len() == v.len() && p.as_bytes().eq_ignore_ascii_case(v.as_bytes());
    }
    let mut vi = v.chars();
    for pc in p.chars() {
        match vi.next() {
            Some(vc) if ci_char_eq(pc, vc) => {}
            _ => return false,
        }
    }
    vi.next().is_none()
}
