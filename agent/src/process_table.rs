//! A bounded pid -> last exec table, so `process.parent.*` and effective-parent fields can be resolved.
//!
//! Slots are indexed by `pid % capacity`: a fixed number of entries, no growth, and a newer
//! process simply takes the slot of an older one with a colliding pid. Each slot keeps its
//! string buffers between uses, so recording an exec allocates nothing once the buffers have
//! grown to the sizes the host produces.

use nightjar_proto::event::basename;
use nightjar_proto::{Args, ExecEvent};

/// Default number of slots: enough for every live pid of a busy macOS host.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Most argv bytes kept for a parent (a bound on the table's memory: 64 Ki entries of
/// unbounded argv would be gigabytes). A longer argv is kept up to this bound.
pub const MAX_PARENT_ARGV_BYTES: usize = 4096;

/// The last exec seen for one pid: what a child reads as `process.parent.*`.
#[derive(Debug, Default)]
pub struct ProcessEntry {
    pid: u32,
    executable: String,
    /// Where the basename starts in `executable`.
    name_at: usize,
    args: Args<'static>,
    command_line: String,
    signing_id: Option<String>,
    team_id: Option<String>,
    cs_flags: Option<u32>,
}

impl ProcessEntry {
    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn executable(&self) -> &str {
        &self.executable
    }
    /// `name`: basename of the executable.
    pub fn name(&self) -> &str {
        self.executable.get(self.name_at..).unwrap_or_default()
    }
    pub fn args(&self) -> &Args<'static> {
        &self.args
    }
    /// argv joined by single spaces.
    pub fn command_line(&self) -> &str {
        &self.command_line
    }
    pub fn signing_id(&self) -> Option<&str> {
        self.signing_id.as_deref()
    }
    pub fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }
    pub fn cs_flags(&self) -> Option<u32> {
        self.cs_flags
    }

    fn record(&mut self, ev: &ExecEvent<'_>) {
        let t = &ev.target;
        self.pid = t.pid;
        self.executable.clear();
        self.executable.push_str(&t.executable);
        self.name_at = self.executable.len() - basename(&self.executable).len();
        self.args.clear();
        self.command_line.clear();
        let mut used = 0usize;
        for arg in t.args.iter() {
            used += arg.len() + 1;
            if used > MAX_PARENT_ARGV_BYTES || !self.args.push(arg) {
                break;
            }
            if self.args.len() > 1 {
                self.command_line.push(' ');
            }
            self.command_line.push_str(arg);
        }
        set_opt(&mut self.signing_id, t.signing_id.as_deref());
        set_opt(&mut self.team_id, t.team_id.as_deref());
        self.cs_flags = t.cs_flags;
    }
}

fn set_opt(slot: &mut Option<String>, value: Option<&str>) {
    match (slot.as_mut(), value) {
        (Some(s), Some(v)) => {
            s.clear();
            s.push_str(v);
        }
        (None, Some(v)) => *slot = Some(v.to_owned()),
        (_, None) => *slot = None,
    }
}

/// pid -> last exec, fixed capacity.
#[derive(Debug)]
pub struct ProcessTable {
    slots: Vec<Option<Box<ProcessEntry>>>,
}

impl ProcessTable {
    /// A table of `capacity` slots (at least one).
    pub fn new(capacity: usize) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(capacity.max(1), || None);
        ProcessTable { slots }
    }

    /// Records the event (after evaluation) so later children find their parent.
    pub fn observe(&mut self, ev: &ExecEvent<'_>) {
        let i = ev.target.pid as usize % self.slots.len();
        self.slots[i].get_or_insert_with(Box::default).record(ev);
    }

    /// The last exec recorded for `pid`.
    pub fn get(&self, pid: u32) -> Option<&ProcessEntry> {
        let entry = self.slots[pid as usize % self.slots.len()].as_deref()?;
        (entry.pid == pid).then_some(entry)
    }
}

impl Default for ProcessTable {
    fn default() -> Self {
        ProcessTable::new(DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn exec(pid: u32, exe: &'static str, args: &[&str]) -> ExecEvent<'static> {
        let mut ev = ExecEvent::default();
        ev.target.pid = pid;
        ev.target.executable = Cow::Borrowed(exe);
        ev.target.args = Args::from_strs(args).0;
        ev
    }

    #[test]
    fn keeps_the_last_exec_per_pid_and_evicts_on_collision() {
        let mut t = ProcessTable::new(8);
        t.observe(&exec(3, "/bin/sh", &["sh", "-c", "x"]));
        assert_eq!(t.get(3).map(|e| e.name()), Some("sh"));
        assert_eq!(t.get(3).map(|e| e.command_line()), Some("sh -c x"));
        t.observe(&exec(3, "/usr/bin/kcc", &["kcc"]));
        assert_eq!(t.get(3).map(|e| e.executable()), Some("/usr/bin/kcc"));
        t.observe(&exec(11, "/bin/ls", &["ls"]));
        assert!(t.get(3).is_none());
        assert_eq!(t.get(11).map(|e| e.name()), Some("ls"));
        assert!(t.get(19).is_none());
    }

    #[test]
    fn parent_argv_is_bounded() {
        let mut t = ProcessTable::new(4);
        let big = "a".repeat(1000);
        let args: Vec<&str> = std::iter::repeat_n(big.as_str(), 10).collect();
        t.observe(&exec(1, "/bin/x", &args));
        let e = t.get(1).unwrap();
        assert_eq!(e.args().len(), 4);
        assert!(e.command_line().len() <= MAX_PARENT_ARGV_BYTES);
    }
}
