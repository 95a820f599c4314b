//! A bounded pid -> last exec table, so `process.parent.*`, the leaders, the effective
//! parent, and the acting process of fork, exit and file events can be resolved.
//!
//! An exec records the process's image and context; a fork gives the child its parent's image
//! (it runs it until it execs) with its own pid and start time; an exit marks the entry, which
//! stays for the events still in flight and is replaced by the next process with that pid; a
//! credential or session change updates the entry's ids or session, so the process's later
//! events and its children see what it became.
//! Processes that predate the sensor arrive as exec records flagged `SNAPSHOT`.
//!
//! Slots are indexed by `pid % capacity`: a fixed number of entries, no growth, and a newer
//! process simply takes the slot of an older one with a colliding pid. Each slot keeps its
//! string buffers between uses, so recording an exec allocates nothing once the buffers have
//! grown to the sizes the host produces.
//!
//! Entries are shared ([`Processes::get_shared`]): a detection engine's snapshot of an
//! event (a sequence's earlier stage) holds the entries of the processes it reads instead
//! of copying them. A shared entry is never changed in place: writing it makes a new one
//! (allocating), the snapshot keeps what it saw; an entry nobody else holds is written in
//! place as before.
//!
//! The table also keeps to a byte budget ([`DEFAULT_BYTE_BUDGET`]). A slot may hold ~13 KB
//! (a 4 KiB path, 4 KiB of argv twice: as argv and as command line, signing and team ids), so
//! a local user exec'ing long command lines under many pids could otherwise make the agent
//! hold hundreds of megabytes. Past the budget, entries are dropped clock-wise (a hand that
//! goes round the slots) until the table fits again: their children then see no parent, as
//! after a pid collision. A host with ordinary command lines (a few hundred bytes per exec)
//! stays far below the budget and never loses an entry this way.

use std::sync::Arc;

use nightjar_proto::ExecEvent;
use nightjar_proto::event::{Event, ForkEvent};
use nightjar_rules::ecs::{EntryFacts, EntryLeader, Ids, OwnedProcess, entry_leader};
use nightjar_rules::ecs::{Process, Processes};

/// Default number of slots: enough for every live pid of a busy macOS host.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// Heap the table's entries may hold, in bytes, before old entries are dropped.
pub const DEFAULT_BYTE_BUDGET: usize = 16 << 20;

/// Most argv bytes kept for a parent (a bound on the table's memory: 64 Ki entries of
/// unbounded argv would be gigabytes). A longer argv is kept up to this bound.
pub const MAX_PARENT_ARGV_BYTES: usize = 4096;

/// The last exec seen for one pid (or the fork it came from): what a child reads as
/// `process.parent.*`.
#[derive(Debug, Default)]
pub struct ProcessEntry {
    /// What a child or a later event reads of this process; shared with snapshots, so
    /// written only through [`ProcessEntry::rewrite`] or [`Arc::make_mut`].
    process: Arc<OwnedProcess>,
    /// The process has exited.
    exited: bool,
}

impl ProcessEntry {
    /// The process as rules read it.
    pub fn process(&self) -> &OwnedProcess {
        &self.process
    }
    pub fn exited(&self) -> bool {
        self.exited
    }

    /// Heap held by this entry: the slot, the shared value's counts and every buffer's
    /// capacity.
    fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + 2 * std::mem::size_of::<usize>() + self.process.heap_bytes()
    }

    /// The process, to be written whole: in place when nothing else holds it, else a new
    /// value (the holders keep the old one).
    fn rewrite(&mut self) -> &mut OwnedProcess {
        if Arc::get_mut(&mut self.process).is_none() {
            self.process = Arc::default();
        }
        Arc::make_mut(&mut self.process)
    }

    fn record(&mut self, ev: &ExecEvent<'_>, entry: Option<EntryLeader>) {
        let t = &ev.target;
        let p = self.rewrite();
        p.pid = t.pid;
        p.start_time_ns = t.start_time_ns;
        p.ppid = t.ppid;
        p.args_count = t.args.total();
        set_opt(&mut p.working_directory, t.cwd.as_deref());
        p.ids = Ids {
            uid: t.uid,
            euid: t.euid,
            gid: t.gid,
            egid: t.egid,
        };
        p.interactive = match ev.source {
            nightjar_proto::Source::Ecs => None,
            _ => Some(t.tty.is_some()),
        };
        p.session_leader_pid = t.session_leader_pid;
        p.group_leader_pid = t.group_leader_pid;
        p.container = t.container;
        p.entry_leader = entry;
        p.executable.clear();
        p.executable.push_str(&t.executable);
        p.args.clear();
        p.command_line.clear();
        let mut used = 0usize;
        for arg in t.args.iter() {
            used += arg.len() + 1;
            if used > MAX_PARENT_ARGV_BYTES || !p.args.push(arg) {
                break;
            }
            if p.args.len() > 1 {
                p.command_line.push(' ');
            }
            p.command_line.push_str(arg);
        }
        set_opt(&mut p.signing_id, t.signing_id.as_deref());
        set_opt(&mut p.team_id, t.team_id.as_deref());
        p.cs_flags = t.cs_flags;
        self.exited = false;
    }

    /// Becomes the fork child of `parent`: the same image and context, its own identity
    /// (`clone_from` keeps this slot's buffers).
    fn record_fork(&mut self, parent: &ProcessEntry, fork: &ForkEvent<'_>) {
        let p = self.rewrite();
        p.clone_from(&parent.process);
        p.pid = fork.child_pid;
        p.start_time_ns = fork.child_start_time_ns;
        p.ppid = Some(parent.process.pid);
        self.exited = false;
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

/// pid -> last exec, fixed capacity and a byte budget.
#[derive(Debug)]
pub struct ProcessTable {
    slots: Vec<Option<ProcessEntry>>,
    /// Heap held by all entries (sum of [`ProcessEntry::heap_bytes`]).
    bytes: usize,
    budget: usize,
    /// The next slot to drop when over budget.
    hand: usize,
    /// Entries dropped to keep to the budget, since the table was made.
    evicted: u64,
}

impl ProcessTable {
    /// A table of `capacity` slots (at least one) within [`DEFAULT_BYTE_BUDGET`].
    pub fn new(capacity: usize) -> Self {
        Self::with_budget(capacity, DEFAULT_BYTE_BUDGET)
    }

    /// A table of `capacity` slots whose entries hold at most about `budget` bytes of heap
    /// (the entry being recorded is always kept, so one entry may go past it).
    pub fn with_budget(capacity: usize, budget: usize) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(capacity.max(1), || None);
        ProcessTable {
            slots,
            bytes: 0,
            budget,
            hand: 0,
            evicted: 0,
        }
    }

    /// Records an exec (after its rules were evaluated) so later events find it.
    pub fn observe(&mut self, ev: &ExecEvent<'_>) {
        let t = &ev.target;
        let parent = t
            .ppid
            .and_then(|p| self.get(p))
            .map(|p| &*p.process as &dyn Process);
        let interactive = match ev.source {
            nightjar_proto::Source::Ecs => None,
            _ => Some(t.tty.is_some()),
        };
        let entry = entry_leader(
            EntryFacts {
                pid: t.pid,
                start_time_ns: t.start_time_ns,
                sid: t.session_leader_pid,
                container: t.container,
                interactive,
            },
            parent,
        );
        self.update(t.pid, |e| e.record(ev, entry));
    }

    /// Records any event: execs as [`ProcessTable::observe`], forks give the child its
    /// parent's entry, exits mark the entry.
    pub fn observe_event(&mut self, ev: &Event<'_>) {
        match ev {
            Event::Exec(e) => self.observe(e),
            Event::Fork(f) => {
                let parent_slot = f.parent.pid as usize % self.slots.len();
                let known = self.get(f.parent.pid).is_some_and(|p| {
                    same_instance(p.process.start_time_ns, f.parent.start_time_ns)
                });
                let child_slot = f.child_pid as usize % self.slots.len();
                if !known || parent_slot == child_slot {
                    return;
                }
                // Take the parent out for the copy, so both slots can be borrowed.
                let Some(parent) = self.slots[parent_slot].take() else {
                    return;
                };
                self.update(f.child_pid, |e| e.record_fork(&parent, f));
                self.slots[parent_slot] = Some(parent);
            }
            Event::Exit(x) => {
                let i = x.process.pid as usize % self.slots.len();
                if let Some(e) = self.slots[i].as_mut()
                    && e.process.pid == x.process.pid
                    && same_instance(e.process.start_time_ns, x.process.start_time_ns)
                {
                    e.exited = true;
                }
            }
            Event::Cred(c) => {
                let i = c.process.pid as usize % self.slots.len();
                if let Some(e) = self.slots[i].as_mut()
                    && e.process.pid == c.process.pid
                    && same_instance(e.process.start_time_ns, c.process.start_time_ns)
                {
                    // A change of some fields: the rest is kept (copied when shared).
                    let p = Arc::make_mut(&mut e.process);
                    let ids = &mut p.ids;
                    let after = &c.after;
                    ids.uid = after.uid.or(c.process.uid).or(ids.uid);
                    ids.euid = after.euid.or(c.process.euid).or(ids.euid);
                    ids.gid = after.gid.or(c.process.gid).or(ids.gid);
                    ids.egid = after.egid.or(c.process.egid).or(ids.egid);
                    if after.sid.is_some() {
                        p.session_leader_pid = after.sid;
                    }
                }
            }
            Event::File(_) => {}
        }
    }

    /// Writes `pid`'s slot with `write`, keeping the byte budget.
    fn update(&mut self, pid: u32, write: impl FnOnce(&mut ProcessEntry)) {
        let i = pid as usize % self.slots.len();
        let slot = &mut self.slots[i];
        let before = slot.as_ref().map_or(0, |e| e.heap_bytes());
        let entry = slot.get_or_insert_with(ProcessEntry::default);
        write(entry);
        self.bytes = self.bytes - before + entry.heap_bytes();
        if self.bytes > self.budget {
            self.evict_except(i);
        }
    }

    /// Drops entries clock-wise, never `keep`, until the table is within its budget.
    fn evict_except(&mut self, keep: usize) {
        let first = self.evicted;
        for _ in 0..self.slots.len() {
            if self.bytes <= self.budget {
                break;
            }
            self.hand = (self.hand + 1) % self.slots.len();
            if self.hand == keep {
                continue;
            }
            if let Some(entry) = self.slots[self.hand].take() {
                self.bytes -= entry.heap_bytes();
                self.evicted += 1;
            }
        }
        if first == 0 && self.evicted > 0 {
            tracing::warn!(
                budget = self.budget,
                "process table: over its memory budget (very long command lines?); \
                 dropping old entries, whose children will show no parent"
            );
        }
    }

    /// Heap held by the entries, bytes.
    pub fn heap_bytes(&self) -> usize {
        self.bytes
    }

    /// Entries dropped to keep to the byte budget.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The last exec recorded for `pid`.
    pub fn get(&self, pid: u32) -> Option<&ProcessEntry> {
        let entry = self.slots[pid as usize % self.slots.len()].as_ref()?;
        (entry.process.pid == pid).then_some(entry)
    }
}

/// Two start times name the same process instance (or one of them is unknown).
fn same_instance(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

impl Processes for ProcessTable {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        ProcessTable::get(self, pid).map(|e| &*e.process as &dyn Process)
    }

    fn get_shared(&self, pid: u32) -> Option<Arc<OwnedProcess>> {
        ProcessTable::get(self, pid).map(|e| e.process.clone())
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
    use nightjar_proto::Args;
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
        assert_eq!(t.get(3).map(|e| e.process().name()), Some("sh"));
        assert_eq!(
            t.get(3).map(|e| e.process().command_line()),
            Some("sh -c x")
        );
        t.observe(&exec(3, "/usr/bin/kcc", &["kcc"]));
        assert_eq!(
            t.get(3).map(|e| e.process().executable()),
            Some("/usr/bin/kcc")
        );
        t.observe(&exec(11, "/bin/ls", &["ls"]));
        assert!(t.get(3).is_none());
        assert_eq!(t.get(11).map(|e| e.process().name()), Some("ls"));
        assert!(t.get(19).is_none());
    }

    fn long(pid: u32, len: usize) -> ExecEvent<'static> {
        let mut ev = ExecEvent::default();
        ev.target.pid = pid;
        ev.target.executable = Cow::Owned(format!("/usr/bin/{}", "x".repeat(len)));
        let arg = "a".repeat(len);
        ev.target.args = Args::from_strs(["x", arg.as_str()]).0;
        ev
    }

    #[test]
    fn keeps_to_its_byte_budget_and_keeps_the_newest_entry() {
        let budget = 64 << 10;
        let mut t = ProcessTable::with_budget(1024, budget);
        for pid in 0..1024 {
            t.observe(&long(pid, 3000));
            assert!(
                t.heap_bytes() <= budget + (12 << 10),
                "pid {pid}: {} bytes",
                t.heap_bytes()
            );
            assert_eq!(
                t.get(pid).map(|e| e.process().pid()),
                Some(pid),
                "newest kept"
            );
        }
        assert!(t.evicted() > 900, "{} evicted", t.evicted());
        // The bookkeeping matches the entries actually held.
        let held: usize = t.slots.iter().flatten().map(|e| e.heap_bytes()).sum();
        assert_eq!(held, t.heap_bytes());
    }

    #[test]
    fn ordinary_command_lines_stay_within_the_default_budget() {
        // 16,384 slots (the agent's table) of typical exec sizes, twice round: nothing dropped.
        let mut t = ProcessTable::new(16_384);
        for pid in 0..32_768u32 {
            let mut ev = exec(
                pid,
                "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                &[],
            );
            let arg = format!("--type=renderer --field-trial-handle={pid}");
            ev.target.args =
                Args::from_strs(["Google Chrome Helper", arg.as_str(), "--lang=en-US"]).0;
            t.observe(&ev);
        }
        assert_eq!(t.evicted(), 0, "{} bytes", t.heap_bytes());
        let held: usize = t.slots.iter().flatten().map(|e| e.heap_bytes()).sum();
        assert_eq!(held, t.heap_bytes());
    }

    #[test]
    fn parent_argv_is_bounded() {
        let mut t = ProcessTable::new(4);
        let big = "a".repeat(1000);
        let args: Vec<&str> = std::iter::repeat_n(big.as_str(), 10).collect();
        t.observe(&exec(1, "/bin/x", &args));
        let e = t.get(1).unwrap().process();
        assert_eq!(e.args().len(), 4);
        assert!(e.command_line().len() <= MAX_PARENT_ARGV_BYTES);
    }

    #[test]
    fn a_credential_or_session_change_updates_the_process() {
        use nightjar_proto::event::{Actor, CredChange, CredEvent, CredIds};
        let mut t = ProcessTable::new(8);
        let mut ev = exec(5, "/tmp/x", &["x"]);
        ev.target.start_time_ns = Some(77);
        ev.target.uid = Some(1000);
        ev.target.euid = Some(1000);
        ev.target.session_leader_pid = Some(2);
        t.observe(&ev);
        let change = |pid, start, change, after: CredIds| {
            Event::Cred(CredEvent {
                process: Actor {
                    pid,
                    start_time_ns: Some(start),
                    uid: after.uid,
                    euid: after.euid,
                    ..Actor::default()
                },
                change,
                after,
                ..CredEvent::default()
            })
        };
        let root = CredIds {
            uid: Some(0),
            euid: Some(0),
            ..CredIds::default()
        };
        // Another instance of pid 5 changes nothing here.
        t.observe_event(&change(5, 99, CredChange::Uid, root));
        assert_eq!(t.get(5).unwrap().process().ids().euid, Some(1000));
        t.observe_event(&change(5, 77, CredChange::Uid, root));
        let ids = t.get(5).unwrap().process().ids();
        assert_eq!((ids.uid, ids.euid), (Some(0), Some(0)));
        assert_eq!(t.get(5).unwrap().process().session_leader_pid(), Some(2));
        let session = CredIds {
            sid: Some(5),
            ..root
        };
        t.observe_event(&change(5, 77, CredChange::SessionId, session));
        assert_eq!(t.get(5).unwrap().process().session_leader_pid(), Some(5));
    }

    /// A snapshot holds the table's entries, not copies; whatever the table records
    /// afterwards (a new exec of the parent's pid, a fork over the child's, a credential
    /// change), the snapshot still shows what the event saw.
    #[test]
    fn a_snapshot_shares_entries_and_keeps_what_it_saw() {
        use nightjar_proto::event::{Actor, CredChange, CredEvent, CredIds, ForkEvent};
        use nightjar_rules::ecs::{EcsEvent, Field, HostInfo, Value};
        let host = HostInfo::new("h", "id");
        let mut t = ProcessTable::new(64);
        let mut parent = exec(5, "/bin/zsh", &["zsh"]);
        parent.target.start_time_ns = Some(50);
        parent.target.euid = Some(1000);
        t.observe(&parent);
        let mut child = exec(10, "/usr/bin/id", &["id"]);
        child.target.ppid = Some(5);
        child.target.start_time_ns = Some(100);
        t.observe(&child);
        let ev = Event::Exec(child.clone());
        let snap = EcsEvent::of(&ev, &t, &host).snapshot();
        let shared = t.get_shared(5).unwrap();
        assert!(std::ptr::eq(
            snap.get(5).unwrap() as *const dyn Process as *const u8,
            &*shared as *const OwnedProcess as *const u8
        ));
        drop(shared);
        let before = snap.view(&host).document();

        // The parent's euid changes, then its pid execs something else; a fork takes the
        // child's pid.
        t.observe_event(&Event::Cred(CredEvent {
            process: Actor {
                pid: 5,
                start_time_ns: Some(50),
                ..Actor::default()
            },
            change: CredChange::Uid,
            after: CredIds {
                uid: Some(0),
                euid: Some(0),
                ..CredIds::default()
            },
            ..CredEvent::default()
        }));
        assert_eq!(t.get(5).unwrap().process().ids().euid, Some(0));
        t.observe(&exec(5, "/usr/bin/other", &["other", "-x"]));
        t.observe_event(&Event::Fork(ForkEvent {
            parent: Actor {
                pid: 5,
                ..Actor::default()
            },
            child_pid: 10,
            child_start_time_ns: Some(200),
            ..ForkEvent::default()
        }));
        assert_eq!(t.get(10).unwrap().process().executable(), "/usr/bin/other");

        let view = snap.view(&host);
        assert!(matches!(view.value(Field::ParentName), Value::Str("zsh")));
        assert_eq!(view.document(), before);
        assert_eq!(snap.get(5).unwrap().ids().euid, Some(1000));
        // The table's own entries are what it recorded last.
        let live = Event::Exec(child);
        let now = EcsEvent::of(&live, &t, &host);
        assert!(matches!(now.value(Field::ParentName), Value::Str("other")));
    }
}
