//! Equality with one of many strings (`in (...)` lists, fused `or`s of equalities): a filter
//! over the length and end bytes turns most values away with one bit test, a hash lookup
//! decides the rest. Rules list up to a few hundred names (GTFOBins lists), and such a list
//! is tested on every argument of many events.

use super::index::{FastMap, KeyFilter};

#[derive(Debug)]
pub(super) struct StrSet {
    /// Sorted, without duplicates (ASCII-lowercased when `folded`).
    values: Box<[Box<str>]>,
    /// The keys of `map`.
    filter: KeyFilter,
    map: FastMap<()>,
    /// Values compare ASCII case-insensitively: they are ASCII, at most [`FOLD_MAX`] bytes.
    folded: bool,
}

/// Longest value of a case-insensitive set (values are folded on the stack).
pub(super) const FOLD_MAX: usize = 128;

impl StrSet {
    pub(super) fn new(values: Vec<Box<str>>) -> StrSet {
        StrSet::build(values, false)
    }

    /// A set equal ASCII case-insensitively to `values` (ASCII, each at most [`FOLD_MAX`]
    /// bytes: see [`StrSet::can_fold`]).
    pub(super) fn folded(values: Vec<Box<str>>) -> StrSet {
        let values = values
            .into_iter()
            .map(|v| v.to_ascii_lowercase().into_boxed_str())
            .collect();
        StrSet::build(values, true)
    }

    /// Whether `value` can be in a case-insensitive set.
    pub(super) fn can_fold(value: &str) -> bool {
        value.is_ascii() && value.len() <= FOLD_MAX
    }

    pub(super) fn is_folded(&self) -> bool {
        self.folded
    }

    fn build(mut values: Vec<Box<str>>, folded: bool) -> StrSet {
        values.sort_unstable();
        values.dedup();
        let mut filter = KeyFilter::default();
        let mut map = FastMap::default();
        for v in &values {
            filter.insert(v.as_bytes());
            map.insert(v.as_bytes().into(), ());
        }
        StrSet {
            values: values.into(),
            filter,
            map,
            folded,
        }
    }

    #[inline]
    pub(super) fn contains(&self, s: &str) -> bool {
        // The filter folds ASCII case itself.
        if !self.filter.may_hold(s.as_bytes()) {
            return false;
        }
        if !self.folded {
            return self.map.contains_key(s.as_bytes());
        }
        let mut buf = [0u8; FOLD_MAX];
        match buf.get_mut(..s.len()) {
            Some(b) => {
                b.copy_from_slice(s.as_bytes());
                b.make_ascii_lowercase();
                self.map.contains_key(&*b)
            }
            None => false,
        }
    }

    pub(super) fn iter(&self) -> std::slice::Iter<'_, Box<str>> {
        self.values.iter()
    }

    pub(super) fn into_vec(self) -> Vec<Box<str>> {
        self.values.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_its_values() {
        let names = ["bash", "sh", "zsh", "python3", "perl", "a", "", "é", "BASH"];
        let set = StrSet::new(names.iter().map(|n| Box::from(*n)).collect());
        for n in names {
            assert!(set.contains(n), "{n:?}");
        }
        for n in ["Bash", "bas", "bashh", "s", "É", "python", "zsh ", " sh"] {
            assert!(!set.contains(n), "{n:?}");
        }
        assert_eq!(set.iter().count(), names.len());
    }

    #[test]
    fn a_folded_set_ignores_ascii_case_only() {
        let set = StrSet::folded(["Bash", "sh", "ZSH"].map(Box::from).to_vec());
        for n in ["bash", "BASH", "Sh", "zsh", "zSh"] {
            assert!(set.contains(n), "{n:?}");
        }
        let long = "x".repeat(FOLD_MAX + 1);
        for n in ["bas", "shh", "\u{212A}sh", long.as_str()] {
            assert!(!set.contains(n), "{n:?}");
        }
        assert!(!StrSet::can_fold("é") && !StrSet::can_fold(&long) && StrSet::can_fold("k"));
    }
}
