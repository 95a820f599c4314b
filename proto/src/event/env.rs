//! `process.env_vars`: the environment variables an admin names (`[sensor] env_vars`), and
//! never the rest of the environment.

use super::{Args, ArgsBuilder, MAX_ENV_BYTES, MAX_ENV_VARS};

/// Which environment entries to keep. Empty: none (the default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFilter {
    names: Vec<String>,
}

impl EnvFilter {
    /// Keeps the entries whose name is one of `names` (case-sensitive, as the environment is);
    /// at most [`MAX_ENV_VARS`] names are used.
    pub fn new<I, S>(names: I) -> EnvFilter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EnvFilter {
            names: names
                .into_iter()
                .map(Into::into)
                .take(MAX_ENV_VARS)
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the `NAME=value` entry is one to keep.
    pub fn wants(&self, entry: &str) -> bool {
        self.wants_bytes(entry.as_bytes())
    }

    /// [`Self::wants`] of an entry as the platform gives it, before any UTF-8 check (names
    /// are compared byte for byte, so only the wanted entries need checking).
    pub fn wants_bytes(&self, entry: &[u8]) -> bool {
        let name = entry
            .iter()
            .position(|&b| b == b'=')
            .map_or(entry, |i| &entry[..i]);
        self.names.iter().any(|n| n.as_bytes() == name)
    }

    /// Appends the wanted entries of `entries` to `out` (environment order), within the
    /// bounds; returns `true` when a wanted entry did not fit.
    pub fn collect<'e>(
        &self,
        entries: impl Iterator<Item = &'e str>,
        out: &mut ArgsBuilder,
    ) -> bool {
        let mut bytes = 0usize;
        let mut cut = false;
        for entry in entries.filter(|e| self.wants(e)) {
            if out.total() as usize >= MAX_ENV_VARS || bytes + entry.len() + 1 > MAX_ENV_BYTES {
                cut = true;
                break;
            }
            bytes += entry.len() + 1;
            out.push(entry);
        }
        cut
    }

    /// The wanted entries of `entries` as an owned list (decoders without reusable buffers).
    pub fn collect_owned<'e>(
        &self,
        entries: impl Iterator<Item = &'e str>,
    ) -> (Args<'static>, bool) {
        if self.is_empty() {
            return (Args::default(), false);
        }
        let mut builder = ArgsBuilder::default();
        let cut = self.collect(entries, &mut builder);
        (builder.into_args(), cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_named_entries() {
        let f = EnvFilter::new(["LD_PRELOAD", "HISTFILE"]);
        let env = [
            "PATH=/bin",
            "LD_PRELOAD=/tmp/x.so",
            "HISTFILE=/dev/null",
            "LD_PRELOADX=1",
        ];
        let (kept, cut) = f.collect_owned(env.into_iter());
        assert!(!cut);
        assert_eq!(
            kept.iter().collect::<Vec<_>>(),
            ["LD_PRELOAD=/tmp/x.so", "HISTFILE=/dev/null"]
        );
        let (none, _) = EnvFilter::default().collect_owned(env.into_iter());
        assert!(none.is_empty());
    }

    #[test]
    fn bounds_hold() {
        let f = EnvFilter::new(["X"]);
        let big = format!("X={}", "v".repeat(MAX_ENV_BYTES));
        let (kept, cut) = f.collect_owned([big.as_str()].into_iter());
        assert!(cut && kept.is_empty());
    }
}
