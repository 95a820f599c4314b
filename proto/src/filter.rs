//! Which file events are worth publishing: the paths and processes some loaded rule can
//! match. File events outnumber execs a hundredfold, so the sensor drops the rest at the
//! source (in the kernel on Linux, by Endpoint Security path muting on macOS) and counts what
//! it dropped.
//!
//! The filter is a superset by construction: the rule engine derives it from every loaded
//! rule that reads file events, widening (to a shorter prefix, to every path) whenever a
//! rule's constraint is not one of the forms below, so no event a rule could match is ever
//! filtered out. Matching is ASCII case-insensitive, as EQL's `:` and `like~` are.

/// Longest prefix, name or extension kept, in bytes; a longer one is shortened (a shorter
/// prefix admits more, so the filter stays a superset).
pub const MAX_FILTER_ENTRY: usize = 255;
/// Most entries of each list; past it the filter admits every path.
pub const MAX_FILTER_ENTRIES: usize = 1024;

/// The file events to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFilter {
    /// Every file event (a loaded rule constrains neither path nor process).
    all: bool,
    /// Path prefixes (`/etc/`, `/Users/`), lowercase.
    prefixes: Vec<String>,
    /// Exact file names (`authorized_keys`), lowercase.
    names: Vec<String>,
    /// File name extensions without the dot (`plist`), lowercase.
    extensions: Vec<String>,
    /// Names of acting processes whose file events are all kept (a rule on `process.name`
    /// only), lowercase.
    processes: Vec<String>,
}

impl PathFilter {
    /// Admits nothing: no loaded rule reads file events.
    pub fn none() -> PathFilter {
        PathFilter::default()
    }

    /// Admits every file event.
    pub fn all() -> PathFilter {
        PathFilter {
            all: true,
            ..PathFilter::default()
        }
    }

    /// True when nothing is admitted: file capture can be off.
    pub fn is_none(&self) -> bool {
        !self.all
            && self.prefixes.is_empty()
            && self.names.is_empty()
            && self.extensions.is_empty()
            && self.processes.is_empty()
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    pub fn prefixes(&self) -> &[String] {
        &self.prefixes
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    pub fn processes(&self) -> &[String] {
        &self.processes
    }

    /// Admits paths starting with `prefix`. An empty prefix admits every path.
    pub fn add_prefix(&mut self, prefix: &str) {
        if prefix.is_empty() {
            self.all = true;
        } else {
            add(&mut self.prefixes, prefix, &mut self.all);
        }
    }

    /// Admits paths whose last component is `name`.
    pub fn add_name(&mut self, name: &str) {
        if name.is_empty() {
            self.all = true;
        } else {
            add(&mut self.names, name, &mut self.all);
        }
    }

    /// Admits names ending in `.extension`.
    pub fn add_extension(&mut self, extension: &str) {
        let ext = extension.trim_start_matches('.');
        if ext.is_empty() {
            self.all = true;
        } else {
            add(&mut self.extensions, ext, &mut self.all);
        }
    }

    /// Admits every file event of processes named `name`.
    pub fn add_process(&mut self, name: &str) {
        if name.is_empty() {
            self.all = true;
        } else {
            add(&mut self.processes, name, &mut self.all);
        }
    }

    /// Admits everything `other` admits.
    pub fn merge(&mut self, other: &PathFilter) {
        self.all |= other.all;
        for p in &other.prefixes {
            self.add_prefix(p);
        }
        for n in &other.names {
            self.add_name(n);
        }
        for e in &other.extensions {
            self.add_extension(e);
        }
        for p in &other.processes {
            self.add_process(p);
        }
    }

    /// Whether a file event on `path` (or a rename's original path) by a process named
    /// `process` is to be published.
    pub fn admits(&self, path: &str, process: Option<&str>) -> bool {
        if self.all {
            return true;
        }
        if let Some(p) = process
            && self.processes.iter().any(|n| p.eq_ignore_ascii_case(n))
        {
            return true;
        }
        if self
            .prefixes
            .iter()
            .any(|pre| starts_with_ignore_case(path, pre))
        {
            return true;
        }
        let name = crate::event::basename(path);
        if self.names.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return true;
        }
        match crate::event::extension(name) {
            Some(ext) => self.extensions.iter().any(|e| ext.eq_ignore_ascii_case(e)),
            None => false,
        }
    }
}

fn add(list: &mut Vec<String>, entry: &str, all: &mut bool) {
    let (cut, _) = crate::event::cut_str(entry, MAX_FILTER_ENTRY);
    let entry = cut.to_ascii_lowercase();
    if list.contains(&entry) {
        return;
    }
    if list.len() >= MAX_FILTER_ENTRIES {
        *all = true;
        return;
    }
    list.push(entry);
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_prefixes_names_extensions_and_processes() {
        let mut f = PathFilter::none();
        assert!(f.is_none());
        assert!(!f.admits("/etc/passwd", None));
        f.add_prefix("/etc/cron");
        f.add_name("authorized_keys");
        f.add_extension(".plist");
        f.add_process("curl");
        assert!(!f.is_none());
        assert!(f.admits("/etc/cron.d/x", None));
        assert!(f.admits("/ETC/CRON.D/x", None), "case-insensitive");
        assert!(f.admits("/home/a/.ssh/authorized_keys", None));
        assert!(f.admits("/Library/LaunchAgents/x.PLIST", None));
        assert!(f.admits("/tmp/out", Some("curl")));
        assert!(!f.admits("/tmp/out", Some("wget")));
        assert!(!f.admits("/usr/lib/x.so", None));
        assert!(!f.admits("/tmp/plist", None), "a name is not an extension");
    }

    #[test]
    fn empty_entries_and_overflow_widen_to_all() {
        let mut f = PathFilter::none();
        f.add_prefix("");
        assert!(f.is_all() && f.admits("/anything", None));
        let mut f = PathFilter::none();
        for i in 0..=MAX_FILTER_ENTRIES {
            f.add_name(&format!("n{i}"));
        }
        assert!(f.is_all());
    }

    #[test]
    fn long_entries_are_shortened_to_a_superset() {
        let mut f = PathFilter::none();
        let long = format!("/{}", "d".repeat(400));
        f.add_prefix(&long);
        assert_eq!(f.prefixes()[0].len(), MAX_FILTER_ENTRY);
        assert!(f.admits(&format!("{long}/x"), None));
    }
}
