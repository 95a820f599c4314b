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
pub const KERNEL_PROCESS_PREFIXES: usize = 16;
pub const KERNEL_PROCESS_PREFIX_MAX: usize = 15;
/// Process name ends (`*.cgi`) the Linux probes compare, at most, and their longest (bytes).
pub const KERNEL_PROCESS_SUFFIXES: usize = 4;
pub const KERNEL_PROCESS_SUFFIX_MAX: usize = 15;

/// A process's mark bit: its own file events pass (a sequence joins a file stage to an
/// earlier stage on `process.entity_id`).
pub const MARK_SELF: u8 = 1;
/// A process's mark bit: its children's file events pass (the join is on the file event's
/// `process.parent.entity_id`).
pub const MARK_CHILDREN: u8 = 2;
/// Most entries of each list of [`ProcessMarks`]; past it every process is marked.
pub const MAX_MARK_ENTRIES: usize = 256;
/// Bytes of a process name the marks compare (the Linux probes key names by 15 bytes); a
/// longer name is compared by its start, so marks stay a superset.
pub const MARK_NAME_MAX: usize = 15;

/// Which processes are marked when they exec, and with which bits ([`MARK_SELF`],
/// [`MARK_CHILDREN`]): the per-process half of the filter. A sequence whose file stage is
/// joined by the process's (or its parent's) entity id to an earlier stage can only match a
/// file event of a process that satisfied that stage, so its file events need not pass the
/// path filter; the earlier stage's constraints on `process.name`, `process.executable` and
/// `process.parent.name` say which processes those are. A process keeps its bits until it
/// exits (a later exec keeps its entity id) and hands them to the children it forks (a
/// forked child shows its parent's image until it execs).
///
/// Every comparison is ASCII case-insensitive and every entry lowercase, so a mark admits at
/// least what the rule's `==`, `:`, `like` or `like~` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessMarks {
    /// Every process gets these bits (a list overflowed, or a bound was lost).
    pub every: u8,
    /// `process.name` (the executable's base name) → bits; at most [`MARK_NAME_MAX`] bytes.
    pub names: Vec<(String, u8)>,
    /// `process.parent.name` → bits; at most [`MARK_NAME_MAX`] bytes.
    pub parents: Vec<(String, u8)>,
    /// `process.executable` prefixes → bits.
    pub exe_prefixes: Vec<(String, u8)>,
    /// Prefixes of `process.executable` after its first byte (`?memfd:*`) → bits.
    pub exe_prefixes_after_one: Vec<(String, u8)>,
}

impl ProcessMarks {
    /// True when no process is ever marked.
    pub fn is_empty(&self) -> bool {
        self.every == 0
            && self.names.is_empty()
            && self.parents.is_empty()
            && self.exe_prefixes.is_empty()
            && self.exe_prefixes_after_one.is_empty()
    }

    /// The bits a mark of any entry can give.
    pub fn bits(&self) -> u8 {
        self.every
            | [
                &self.names,
                &self.parents,
                &self.exe_prefixes,
                &self.exe_prefixes_after_one,
            ]
            .iter()
            .flat_map(|l| l.iter())
            .fold(0, |b, (_, v)| b | v)
    }

    pub fn add_name(&mut self, name: &str, bits: u8) {
        let (cut, _) = crate::event::cut_str(name, MARK_NAME_MAX);
        add_mark(&mut self.names, cut, bits, &mut self.every);
    }

    pub fn add_parent(&mut self, name: &str, bits: u8) {
        let (cut, _) = crate::event::cut_str(name, MARK_NAME_MAX);
        add_mark(&mut self.parents, cut, bits, &mut self.every);
    }

    /// An empty prefix marks every process.
    pub fn add_exe_prefix(&mut self, prefix: &str, bits: u8) {
        add_mark(&mut self.exe_prefixes, prefix, bits, &mut self.every);
    }

    pub fn add_exe_prefix_after_one(&mut self, prefix: &str, bits: u8) {
        add_mark(
            &mut self.exe_prefixes_after_one,
            prefix,
            bits,
            &mut self.every,
        );
    }

    pub fn merge(&mut self, other: &ProcessMarks) {
        self.every |= other.every;
        for (n, b) in &other.names {
            self.add_name(n, *b);
        }
        for (n, b) in &other.parents {
            self.add_parent(n, *b);
        }
        for (p, b) in &other.exe_prefixes {
            self.add_exe_prefix(p, *b);
        }
        for (p, b) in &other.exe_prefixes_after_one {
            self.add_exe_prefix_after_one(p, *b);
        }
    }

    /// The bits a process gets at exec: its executable, its name (the executable's base
    /// name) and its parent's name. What the Linux probes compute in the kernel.
    pub fn bits_at_exec(&self, executable: &str, parent_name: Option<&str>) -> u8 {
        let cut = |s: &str| crate::event::cut_str(s, MARK_NAME_MAX).0.to_owned();
        let name = cut(crate::event::basename(executable));
        let mut bits = self.every;
        for (n, b) in &self.names {
            if name.eq_ignore_ascii_case(n) {
                bits |= b;
            }
        }
        if let Some(p) = parent_name {
            let p = cut(p);
            for (n, b) in &self.parents {
                if p.eq_ignore_ascii_case(n) {
                    bits |= b;
                }
            }
        }
        for (pre, b) in &self.exe_prefixes {
            if starts_with_ignore_case(executable, pre) {
                bits |= b;
            }
        }
        if let Some(rest) = executable.get(1..).or_else(|| {
            // A first byte that is not a whole character: compare the bytes after it.
            executable
                .char_indices()
                .nth(1)
                .and_then(|(i, _)| executable.get(i..))
        }) {
            for (pre, b) in &self.exe_prefixes_after_one {
                if starts_with_ignore_case(rest, pre) {
                    bits |= b;
                }
            }
        }
        bits
    }
}

fn add_mark(list: &mut Vec<(String, u8)>, entry: &str, bits: u8, every: &mut u8) {
    if entry.is_empty() {
        *every |= bits;
        return;
    }
    let (cut, _) = crate::event::cut_str(entry, MAX_FILTER_ENTRY);
    let entry = cut.to_ascii_lowercase();
    if let Some((_, b)) = list.iter_mut().find(|(e, _)| *e == entry) {
        *b |= bits;
        return;
    }
    if list.len() >= MAX_MARK_ENTRIES {
        *every |= bits;
        return;
    }
    list.push((entry, bits));
}

/// Whether a file event's acting process is marked: its own bits, and its parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    /// The source does not track marks (Endpoint Security, eslogger): a filter with marks
    /// then admits every event.
    Unknown,
    /// The kernel found a [`MARK_SELF`] bit on the process or [`MARK_CHILDREN`] on its parent.
    Yes,
    No,
}

/// The file events to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFilter {
    /// Every file event (a loaded rule constrains neither path nor process).
    all: bool,
    /// Processes whose file events pass whatever their path (see [`ProcessMarks`]).
    marks: ProcessMarks,
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
            && self.marks.is_empty()
    }

    /// The processes whose file events pass whatever their path.
    pub fn marks(&self) -> &ProcessMarks {
        &self.marks
    }

    /// Admits the file events of processes marked by `marks` (see [`ProcessMarks`]).
    pub fn add_marks(&mut self, marks: &ProcessMarks) {
        self.marks.merge(marks);
    }

    /// Whether the Linux probes can apply this filter as it is: prefixes, names, extensions,
    /// whole process names, marks, and within their limits ([`KERNEL_COMPONENT_MAX`],
    /// [`KERNEL_TEXTS`], [`KERNEL_PROCESS_PREFIXES`], [`KERNEL_PROCESS_SUFFIXES`]) path
    /// components, text inside the path and process name prefixes and ends. Otherwise the
    /// kernel admits every file event and the sensor filters them.
    pub fn kernel_can_filter(&self) -> bool {
        !self.all
            && self.process_suffixes.len() <= KERNEL_PROCESS_SUFFIXES
            && self
                .process_suffixes
                .iter()
                .all(|p| p.len() <= KERNEL_PROCESS_SUFFIX_MAX)
            && self
                .components
                .iter()
                .all(|c| c.len() <= KERNEL_COMPONENT_MAX)
            && self.contains.len() <= KERNEL_TEXTS
            && self.contains.iter().all(|c| c.len() <= KERNEL_TEXT_MAX)
            // A longer prefix is compared by its first KERNEL_PROCESS_PREFIX_MAX bytes: the
            // kernel's name of such a process is cut there too.
            && self.process_prefixes.len() <= KERNEL_PROCESS_PREFIXES
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
            && self.process_suffixes.is_empty()
            && self.marks.is_empty();
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
        self.marks.merge(&other.marks);
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
        self.admits_comm_marked(path, comm, Marked::Unknown)
    }

    /// As [`PathFilter::admits_comm`], knowing whether the acting process is marked.
    pub fn admits_comm_marked(&self, path: &str, comm: Option<&str>, marked: Marked) -> bool {
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
        self.admits_marked(path, comm, marked)
    }

    /// Whether a file event on `path` (or a rename's original path) by a process named
    /// `process` is to be published, by a source that does not know which processes are
    /// marked: a filter with marks then admits every event.
    pub fn admits(&self, path: &str, process: Option<&str>) -> bool {
        self.admits_marked(path, process, Marked::Unknown)
    }

    /// As [`PathFilter::admits`], knowing whether the acting process is marked.
    pub fn admits_marked(&self, path: &str, process: Option<&str>, marked: Marked) -> bool {
        if self.all {
            return true;
        }
        match marked {
            Marked::Yes => return true,
            Marked::Unknown if !self.marks.is_empty() => return true,
            Marked::Unknown | Marked::No => {}
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
