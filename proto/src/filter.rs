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

/// Longest path component the Linux probes look up (bytes).
pub const KERNEL_COMPONENT_MAX: usize = 15;
/// Texts inside the path the Linux probes search, at most, and their longest (bytes).
pub const KERNEL_TEXTS: usize = 4;
pub const KERNEL_TEXT_MAX: usize = 16;
/// Process name prefixes the Linux probes compare, at most, and their longest (bytes; the
/// kernel keeps 15 bytes of a name).
pub const KERNEL_PROCESS_PREFIXES: usize = 8;
pub const KERNEL_PROCESS_PREFIX_MAX: usize = 15;

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
    /// Starts of such process names (`kworker*`), lowercase.
    process_prefixes: Vec<String>,
    /// Directory or file names that appear whole anywhere in the path (`*/wp-content/*`),
    /// lowercase.
    components: Vec<String>,
    /// Text the path holds somewhere (`*GCONV_PATH*`), lowercase.
    contains: Vec<String>,
    /// Ends of process names (`*.cgi`), lowercase.
    process_suffixes: Vec<String>,
    /// The prefixes as the rules spell them (case kept), for sources that compare bytes
    /// (Endpoint Security path muting).
    spelled_prefixes: Vec<String>,
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
            && self.process_prefixes.is_empty()
            && self.components.is_empty()
            && self.contains.is_empty()
            && self.process_suffixes.is_empty()
    }

    /// Whether the Linux probes can apply this filter as it is: prefixes, names, extensions,
    /// whole process names, and within their limits ([`KERNEL_COMPONENT_MAX`],
    /// [`KERNEL_TEXTS`], [`KERNEL_PROCESS_PREFIXES`]) path components, text inside the path
    /// and process name prefixes. Otherwise (process name suffixes, or past those limits)
    /// the kernel admits every file event and the sensor filters them.
    pub fn kernel_can_filter(&self) -> bool {
        !self.all
            && self.process_suffixes.is_empty()
            && self
                .components
                .iter()
                .all(|c| c.len() <= KERNEL_COMPONENT_MAX)
            && self.contains.len() <= KERNEL_TEXTS
            && self.contains.iter().all(|c| c.len() <= KERNEL_TEXT_MAX)
            && self.process_prefixes.len() <= KERNEL_PROCESS_PREFIXES
            && self
                .process_prefixes
                .iter()
                .all(|p| p.len() <= KERNEL_PROCESS_PREFIX_MAX)
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    /// When the filter is made of path prefixes only, those prefixes as the rules spell them:
    /// a source that can only select paths by prefix (Endpoint Security's inverted target
    /// path muting) can then apply it whole. `None` when anything else (names, extensions,
    /// processes, patterns, every path) is admitted too.
    pub fn prefixes_only(&self) -> Option<&[String]> {
        let only = !self.all
            && !self.prefixes.is_empty()
            && self.names.is_empty()
            && self.extensions.is_empty()
            && self.processes.is_empty()
            && self.process_prefixes.is_empty()
            && self.components.is_empty()
            && self.contains.is_empty()
            && self.process_suffixes.is_empty();
        only.then_some(self.spelled_prefixes.as_slice())
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

    pub fn process_prefixes(&self) -> &[String] {
        &self.process_prefixes
    }

    pub fn components(&self) -> &[String] {
        &self.components
    }

    pub fn contains(&self) -> &[String] {
        &self.contains
    }

    pub fn process_suffixes(&self) -> &[String] {
        &self.process_suffixes
    }

    /// Admits paths with a directory or file named `name` anywhere.
    pub fn add_component(&mut self, name: &str) {
        if name.is_empty() {
            self.all = true;
        } else {
            add(&mut self.components, name, &mut self.all);
        }
    }

    /// Admits paths holding `text` anywhere.
    pub fn add_contains(&mut self, text: &str) {
        if text.is_empty() {
            self.all = true;
        } else {
            add(&mut self.contains, text, &mut self.all);
        }
    }

    /// Admits every file event of processes whose name starts with `prefix`.
    pub fn add_process_prefix(&mut self, prefix: &str) {
        if prefix.is_empty() {
            self.all = true;
        } else {
            add(&mut self.process_prefixes, prefix, &mut self.all);
        }
    }

    /// Admits every file event of processes whose name ends with `suffix`.
    pub fn add_process_suffix(&mut self, suffix: &str) {
        if suffix.is_empty() {
            self.all = true;
        } else {
            add(&mut self.process_suffixes, suffix, &mut self.all);
        }
    }

    /// Admits paths starting with `prefix`. An empty prefix admits every path.
    pub fn add_prefix(&mut self, prefix: &str) {
        if prefix.is_empty() {
            self.all = true;
        } else {
            let before = self.prefixes.len();
            add(&mut self.prefixes, prefix, &mut self.all);
            if self.prefixes.len() > before {
                let (cut, _) = crate::event::cut_str(prefix, MAX_FILTER_ENTRY);
                self.spelled_prefixes.push(cut.to_owned());
            }
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

    /// The same filter without its process entries: only what bounds the paths (an
    /// empty result when only processes were admitted).
    pub fn paths_only(&self) -> PathFilter {
        PathFilter {
            processes: Vec::new(),
            process_prefixes: Vec::new(),
            process_suffixes: Vec::new(),
            ..self.clone()
        }
    }

    /// Whether a source that selects only by literal path and path prefix (Endpoint
    /// Security's inverted target-path muting) can apply this filter whole.
    pub fn is_prefixes_only(&self) -> bool {
        self.prefixes_only().is_some()
    }

    /// Admits everything `other` admits.
    pub fn merge(&mut self, other: &PathFilter) {
        self.all |= other.all;
        for p in &other.spelled_prefixes {
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
        for p in &other.process_prefixes {
            self.add_process_prefix(p);
        }
        for c in &other.components {
            self.add_component(c);
        }
        for c in &other.contains {
            self.add_contains(c);
        }
        for p in &other.process_suffixes {
            self.add_process_suffix(p);
        }
    }

    /// As [`PathFilter::admits`], for a process named by the Linux kernel's `comm`: at most
    /// 15 bytes, so a name of 15 bytes may be the start of a longer one (every name that
    /// could be is admitted).
    pub fn admits_comm(&self, path: &str, comm: Option<&str>) -> bool {
        const COMM_MAX: usize = 15;
        if let Some(c) = comm
            && c.len() >= COMM_MAX
        {
            let cut = |n: &str| n.len() > c.len() && starts_with_ignore_case(n, c);
            if self.processes.iter().any(|n| cut(n))
                || self.process_prefixes.iter().any(|p| cut(p))
                || !self.process_suffixes.is_empty()
            {
                return true;
            }
        }
        self.admits(path, comm)
    }

    /// Whether a file event on `path` (or a rename's original path) by a process named
    /// `process` is to be published.
    pub fn admits(&self, path: &str, process: Option<&str>) -> bool {
        if self.all {
            return true;
        }
        if let Some(p) = process
            && (self.processes.iter().any(|n| p.eq_ignore_ascii_case(n))
                || self
                    .process_prefixes
                    .iter()
                    .any(|pre| starts_with_ignore_case(p, pre))
                || self
                    .process_suffixes
                    .iter()
                    .any(|suf| ends_with_ignore_case(p, suf)))
        {
            return true;
        }
        if self.contains.iter().any(|c| contains_ignore_case(path, c)) {
            return true;
        }
        if !self.components.is_empty()
            && path
                .split('/')
                .any(|part| self.components.iter().any(|c| part.eq_ignore_ascii_case(c)))
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

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn contains_ignore_case(s: &str, needle: &str) -> bool {
    let (h, n) = (s.as_bytes(), needle.as_bytes());
    n.len() <= h.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
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
    fn a_kernel_process_name_may_be_cut() {
        let mut f = PathFilter::none();
        f.add_process("systemd-journald");
        f.add_process_prefix("networkmanager-d");
        assert!(
            f.admits_comm("/x", Some("systemd-journal")),
            "15 bytes: cut"
        );
        assert!(f.admits_comm("/x", Some("NetworkManager-")));
        assert!(!f.admits_comm("/x", Some("systemd")));
        assert!(!f.admits("/x", Some("systemd-journal")));
    }

    #[test]
    fn prefixes_only_keeps_the_rules_spelling() {
        let mut f = PathFilter::none();
        assert_eq!(f.prefixes_only(), None, "nothing admitted");
        f.add_prefix("/Library/LaunchAgents/");
        f.add_prefix("/library/launchagents/");
        let mut g = PathFilter::none();
        g.add_prefix("/etc/cron.d/");
        f.merge(&g);
        assert_eq!(
            f.prefixes_only(),
            Some(
                &[
                    "/Library/LaunchAgents/".to_owned(),
                    "/etc/cron.d/".to_owned()
                ][..]
            ),
            "one spelling per prefix, as first written"
        );
        f.add_extension("plist");
        assert_eq!(f.prefixes_only(), None);
        assert_eq!(PathFilter::all().prefixes_only(), None);
    }

    #[test]
    fn components_contains_and_process_patterns() {
        let mut f = PathFilter::none();
        f.add_prefix("/etc/");
        assert!(f.kernel_can_filter());
        f.add_component("wp-content");
        f.add_process_prefix("kworker");
        assert!(f.kernel_can_filter(), "within the probes' limits");
        f.add_component("a-component-too-long-for-the-kernel");
        assert!(!f.kernel_can_filter(), "the sensor tests that one");
        assert!(f.admits("/var/www/wp-content/plugins/x.php", None));
        assert!(!f.admits("/var/www/wp-contents/x.php", None));
        assert!(f.admits("/tmp/x", Some("kworker/u8:2")));
        f.add_contains("gconv_path");
        f.add_process_suffix(".cgi");
        assert!(f.admits("/tmp/GCONV_PATH=./x", None));
        assert!(f.admits("/tmp/y", Some("run.cgi")));
        assert!(!f.admits("/tmp/y", Some("cgi-run")));
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
