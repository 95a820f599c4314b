//! Wildcard patterns, anchored at both ends.
//!
//! A pattern without `?` (and, when case-insensitive, made of ASCII only) is matched on bytes:
//! anchored prefix and suffix compares, `memchr::memmem` for the pieces between stars.
//! Anything else falls back to a character-wise matcher with one backtracking point. Neither
//! allocates.

use memchr::memmem;

use super::{ci_char_eq, ci_str_eq, find_ascii_ci};
use crate::query::ast::Tok;

/// A compiled wildcard pattern (anchored at both ends).
#[derive(Debug, Clone)]
pub enum Glob {
    /// No wildcard at all.
    Exact {
        text: Box<str>,
        ci: bool,
        /// `text` is ASCII: a case-insensitive match is a length check and a byte compare.
        ascii: bool,
    },
    Bytes(BytesGlob),
    Chars {
        toks: Box<[CharTok]>,
        ci: bool,
    },
}

#[derive(Debug, Clone)]
pub struct BytesGlob {
    prefix: Box<[u8]>,
    middles: Box<[Piece]>,
    suffix: Box<[u8]>,
    ci: bool,
}

#[derive(Debug, Clone)]
struct Piece {
    /// Lowercased when case-insensitive.
    bytes: Box<[u8]>,
    finder: memmem::Finder<'static>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharTok {
    Char(char),
    Star,
    One,
}

impl Glob {
    pub fn new(toks: &[Tok], ci: bool) -> Glob {
        // Normalise: merge literals, collapse star runs.
        let mut norm: Vec<Tok> = Vec::new();
        for t in toks {
            match (norm.last_mut(), t) {
                (_, Tok::Lit(s)) if s.is_empty() => {}
                (Some(Tok::Lit(prev)), Tok::Lit(s)) => prev.push_str(s),
                (Some(Tok::Star), Tok::Star) => {}
                _ => norm.push(t.clone()),
            }
        }
        let has_one = norm.contains(&Tok::One);
        let ascii = norm.iter().all(|t| match t {
            Tok::Lit(s) => s.is_ascii(),
            _ => true,
        });
        if !norm
            .iter()
            .any(|t| *t != Tok::Star && !matches!(t, Tok::Lit(_)))
            && !has_one
        {
            if !norm.contains(&Tok::Star) {
                let text = match norm.first() {
                    Some(Tok::Lit(s)) => s.clone(),
                    _ => String::new(),
                };
                return Glob::Exact {
                    ascii: text.is_ascii(),
                    text: text.into(),
                    ci,
                };
            }
            if !ci || ascii {
                return Glob::Bytes(BytesGlob::new(&norm, ci));
            }
        }
        let toks = norm
            .iter()
            .flat_map(|t| match t {
                Tok::Lit(s) => s.chars().map(CharTok::Char).collect::<Vec<_>>(),
                Tok::Star => vec![CharTok::Star],
                Tok::One => vec![CharTok::One],
            })
            .collect();
        Glob::Chars { toks, ci }
    }

    pub fn matches(&self, s: &str) -> bool {
        match self {
            Glob::Exact {
                text, ci: false, ..
            } => **text == *s,
            Glob::Exact {
                text,
                ci: true,
                ascii: true,
            } => text.len() == s.len() && text.as_bytes().eq_ignore_ascii_case(s.as_bytes()),
            Glob::Exact { text, ci: true, .. } => ci_str_eq(text, s),
            Glob::Bytes(g) => g.matches(s.as_bytes()),
            Glob::Chars { toks, ci } => chars_match(toks, s, *ci),
        }
    }

    /// Whether a literal part holds a space or NUL. Without either, matching argv joined by
    /// NUL gives the same answer as matching it joined by spaces (`process.command_line`).
    pub fn has_space_or_nul(&self) -> bool {
        let bad = |b: &[u8]| b.iter().any(|c| *c == b' ' || *c == 0);
        match self {
            Glob::Exact { text, .. } => bad(text.as_bytes()),
            Glob::Bytes(g) => {
                bad(&g.prefix) || bad(&g.suffix) || g.middles.iter().any(|m| bad(&m.bytes))
            }
            Glob::Chars { toks, .. } => toks
                .iter()
                .any(|t| matches!(t, CharTok::Char(' ') | CharTok::Char('\0'))),
        }
    }

    /// The exact, case-sensitive value this pattern requires, if it is one (for indexing).
    pub fn exact(&self) -> Option<&str> {
        match self {
            Glob::Exact {
                text, ci: false, ..
            } => Some(text),
            _ => None,
        }
    }
}

impl BytesGlob {
    /// The literal every match starts with, if any (for indexing).
    pub fn literal_prefix(&self) -> Option<&[u8]> {
        (!self.prefix.is_empty()).then_some(&self.prefix[..])
    }

    /// The literal every match ends with, if any.
    pub fn literal_suffix(&self) -> Option<&[u8]> {
        (!self.suffix.is_empty()).then_some(&self.suffix[..])
    }

    /// The literal of a pattern `*literal*` (lowercased when case-insensitive), with
    /// whether it is case-insensitive (ASCII only).
    pub fn contained(&self) -> Option<(&[u8], bool)> {
        match &self.middles[..] {
            [only] if self.prefix.is_empty() && self.suffix.is_empty() => {
                Some((&only.bytes, self.ci))
            }
            _ => None,
        }
    }

    /// The longest literal piece: every match holds it somewhere (for prefiltering).
    pub fn longest_literal(&self) -> &[u8] {
        self.middles
            .iter()
            .map(|m| &m.bytes[..])
            .chain([&self.prefix[..], &self.suffix[..]])
            .max_by_key(|b| b.len())
            .unwrap_or_default()
    }

    fn new(norm: &[Tok], ci: bool) -> BytesGlob {
        let lit = |t: &Tok| match t {
            Tok::Lit(s) => Some(s.as_bytes().to_vec()),
            _ => None,
        };
        let prefix = norm.first().and_then(lit).unwrap_or_default();
        let suffix = if norm.len() > 1 {
            norm.last().and_then(lit).unwrap_or_default()
        } else {
            Vec::new()
        };
        let start = usize::from(!prefix.is_empty());
        let end = norm.len() - usize::from(!suffix.is_empty());
        let middles = norm[start..end.max(start)]
            .iter()
            .filter_map(lit)
            .map(|b| {
                let bytes: Box<[u8]> = if ci {
                    b.to_ascii_lowercase().into()
                } else {
                    b.into()
                };
                Piece {
                    finder: memmem::Finder::new(&bytes[..]).into_owned(),
                    bytes,
                }
            })
            .collect();
        BytesGlob {
            prefix: prefix.into(),
            middles,
            suffix: suffix.into(),
            ci,
        }
    }

    fn matches(&self, hay: &[u8]) -> bool {
        let (p, s) = (self.prefix.len(), self.suffix.len());
        if hay.len() < p + s {
            return false;
        }
        let eq = |a: &[u8], b: &[u8]| {
            if self.ci {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        if !eq(&hay[..p], &self.prefix) || !eq(&hay[hay.len() - s..], &self.suffix) {
            return false;
        }
        let mut rest = &hay[p..hay.len() - s];
        for piece in self.middles.iter() {
            let found = if self.ci {
                find_ascii_ci(rest, &piece.bytes)
            } else {
                piece.finder.find(rest)
            };
            match found {
                Some(i) => rest = &rest[i + piece.bytes.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Glob matching on characters with a single backtracking point (the last star).
fn chars_match(toks: &[CharTok], s: &str, ci: bool) -> bool {
    let (mut p, mut i) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or('\0');
        let step = c.len_utf8();
        match toks.get(p) {
            Some(CharTok::Star) => {
                back = Some((p + 1, i));
                p += 1;
                continue;
            }
            Some(CharTok::One) => {
                p += 1;
                i += step;
                continue;
            }
            Some(CharTok::Char(pc)) if (*pc == c) || (ci && ci_char_eq(*pc, c)) => {
                p += 1;
                i += step;
                continue;
            }
            _ => {}
        }
        match back {
            Some((bp, bi)) => {
                let skip = s[bi..].chars().next().map_or(1, char::len_utf8);
                p = bp;
                i = bi + skip;
                back = Some((bp, i));
            }
            None => return false,
        }
    }
    toks[p..].iter().all(|t| *t == CharTok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, ci: bool) -> Glob {
        let mut toks = Vec::new();
        for c in p.chars() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                c => Tok::Lit(c.to_string()),
            });
        }
        Glob::new(&toks, ci)
    }

    #[test]
    fn bytes_path_anchors_both_ends() {
        let g = glob("/Users/*/Library/*", false);
        assert!(matches!(g, Glob::Bytes(_)));
        assert!(g.matches("/Users/a/Library/x"));
        assert!(g.matches("/Users//Library/"));
        assert!(!g.matches("/Users/a/Librar"));
        assert!(!g.matches("x/Users/a/Library/x"));
        let g = glob("*abc*abc", false);
        assert!(g.matches("abcabc"));
        assert!(!g.matches("abc"));
        let g = glob("ab*ba", false);
        assert!(!g.matches("aba"));
        assert!(g.matches("abba"));
    }

    #[test]
    fn case_insensitive_and_question_mark() {
        let g = glob("*COPY_cred*", true);
        assert!(g.matches("x copy_CRED_cache"));
        assert!(!glob("*COPY_cred*", false).matches("x copy_CRED_cache"));
        let g = glob("key?.db", false);
        assert!(matches!(g, Glob::Chars { .. }));
        assert!(g.matches("key3.db"));
        assert!(g.matches("keyé.db"));
        assert!(!g.matches("key.db"));
        assert!(glob("ÉTÉ*", true).matches("été!"));
        assert!(glob("*", false).matches(""));
        assert!(glob("", false).matches(""));
    }
}
