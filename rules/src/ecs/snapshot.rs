//! Owned copies of events, for rules that alert on events already gone (a sequence's
//! earlier stages): the event and every process its view can look up (its own last exec,
//! parent, responsible process, leaders), so the same view can be made again later, with
//! the same values, after the process table has moved on.

use std::borrow::Cow;
use std::sync::Arc;

use nightjar_proto::event::Event;
use nightjar_proto::{Args, Caller, ExecEvent, Target};

use super::{EcsEvent, EntryLeader, HostInfo, Ids, Process, Processes, Subject};

/// A process as a snapshot keeps it: every value [`Process`] answers. The agent's process
/// table keeps its entries in this form too (reusing the buffers from one exec to the next).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct OwnedProcess {
    pub pid: u32,
    pub executable: String,
    pub args: Args<'static>,
    pub command_line: String,
    pub signing_id: Option<String>,
    pub team_id: Option<String>,
    pub cs_flags: Option<u32>,
    pub args_count: usize,
    pub start_time_ns: Option<i64>,
    pub ppid: Option<u32>,
    pub working_directory: Option<String>,
    pub ids: Ids,
    pub interactive: Option<bool>,
    pub session_leader_pid: Option<u32>,
    pub group_leader_pid: Option<u32>,
    pub container: Option<bool>,
    pub entry_leader: Option<EntryLeader>,
}

/// `clone_from` reuses every buffer of the target, so a table slot written over and over
/// stops allocating once its buffers have grown.
impl Clone for OwnedProcess {
    fn clone(&self) -> OwnedProcess {
        let mut p = OwnedProcess::default();
        p.clone_from(self);
        p
    }

    fn clone_from(&mut self, source: &OwnedProcess) {
        self.pid = source.pid;
        self.executable.clone_from(&source.executable);
        self.args.clone_from_args(&source.args);
        self.command_line.clone_from(&source.command_line);
        self.signing_id.clone_from(&source.signing_id);
        self.team_id.clone_from(&source.team_id);
        self.cs_flags = source.cs_flags;
        self.args_count = source.args_count;
        self.start_time_ns = source.start_time_ns;
        self.ppid = source.ppid;
        self.working_directory.clone_from(&source.working_directory);
        self.ids = source.ids;
        self.interactive = source.interactive;
        self.session_leader_pid = source.session_leader_pid;
        self.group_leader_pid = source.group_leader_pid;
        self.container = source.container;
        self.entry_leader = source.entry_leader;
    }
}

impl OwnedProcess {
    /// A copy of what `p` answers.
    pub fn of(p: &dyn Process) -> OwnedProcess {
        OwnedProcess {
            pid: p.pid(),
            executable: p.executable().to_owned(),
            args: p.args().clone().into_owned(),
            command_line: p.command_line().to_owned(),
            signing_id: p.signing_id().map(str::to_owned),
            team_id: p.team_id().map(str::to_owned),
            cs_flags: p.cs_flags(),
            args_count: p.args_count(),
            start_time_ns: p.start_time_ns(),
            ppid: p.ppid(),
            working_directory: p.working_directory().map(str::to_owned),
            ids: p.ids(),
            interactive: p.interactive(),
            session_leader_pid: p.session_leader_pid(),
            group_leader_pid: p.group_leader_pid(),
            container: p.container(),
            entry_leader: p.entry_leader(),
        }
    }

    /// Makes this a copy of what `p` answers, reusing this value's buffers (a recycled
    /// snapshot's processes stop allocating once their buffers have grown).
    pub fn assign(&mut self, p: &dyn Process) {
        self.pid = p.pid();
        set_string(&mut self.executable, p.executable());
        self.args.clone_from_args(p.args());
        set_string(&mut self.command_line, p.command_line());
        set_opt_string(&mut self.signing_id, p.signing_id());
        set_opt_string(&mut self.team_id, p.team_id());
        self.cs_flags = p.cs_flags();
        self.args_count = p.args_count();
        self.start_time_ns = p.start_time_ns();
        self.ppid = p.ppid();
        set_opt_string(&mut self.working_directory, p.working_directory());
        self.ids = p.ids();
        self.interactive = p.interactive();
        self.session_leader_pid = p.session_leader_pid();
        self.group_leader_pid = p.group_leader_pid();
        self.container = p.container();
        self.entry_leader = p.entry_leader();
    }

    /// Heap held: the value itself and every buffer's capacity.
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.executable.capacity()
            + self.args.heap_bytes()
            + self.command_line.capacity()
            + self.signing_id.as_ref().map_or(0, String::capacity)
            + self.team_id.as_ref().map_or(0, String::capacity)
            + self.working_directory.as_ref().map_or(0, String::capacity)
    }
}

impl Process for OwnedProcess {
    fn pid(&self) -> u32 {
        self.pid
    }
    fn executable(&self) -> &str {
        &self.executable
    }
    fn name(&self) -> &str {
        nightjar_proto::event::basename(&self.executable)
    }
    fn args(&self) -> &Args<'_> {
        &self.args
    }
    fn command_line(&self) -> &str {
        &self.command_line
    }
    fn signing_id(&self) -> Option<&str> {
        self.signing_id.as_deref()
    }
    fn team_id(&self) -> Option<&str> {
        self.team_id.as_deref()
    }
    fn cs_flags(&self) -> Option<u32> {
        self.cs_flags
    }
    fn args_count(&self) -> usize {
        self.args_count
    }
    fn start_time_ns(&self) -> Option<i64> {
        self.start_time_ns
    }
    fn ppid(&self) -> Option<u32> {
        self.ppid
    }
    fn working_directory(&self) -> Option<&str> {
        self.working_directory.as_deref()
    }
    fn ids(&self) -> Ids {
        self.ids
    }
    fn interactive(&self) -> Option<bool> {
        self.interactive
    }
    fn session_leader_pid(&self) -> Option<u32> {
        self.session_leader_pid
    }
    fn group_leader_pid(&self) -> Option<u32> {
        self.group_leader_pid
    }
    fn container(&self) -> Option<bool> {
        self.container
    }
    fn entry_leader(&self) -> Option<EntryLeader> {
        self.entry_leader
    }
}

/// An event with the processes its view can read, owned.
#[derive(Debug, Clone)]
pub struct EventSnapshot {
    event: Event<'static>,
    /// By pid; a handful at most. Shared with the process table when it shares its
    /// entries ([`Processes::get_shared`]), else copies.
    processes: Vec<Arc<OwnedProcess>>,
    /// [`EventSnapshot::heap_bytes`], counted when the snapshot was made (it does not
    /// change after).
    heap: usize,
}

/// Equal snapshots hold equal events and processes, whatever their buffers' capacities.
impl PartialEq for EventSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event && self.processes == other.processes
    }
}
impl Eq for EventSnapshot {}

impl EventSnapshot {
    /// The event.
    pub fn event(&self) -> &Event<'static> {
        &self.event
    }

    /// The view of the event as it was seen.
    pub fn view<'a>(&'a self, host: &'a HostInfo) -> EcsEvent<'a> {
        EcsEvent::of(&self.event, self, host)
    }

    /// Heap held, bytes (for the state budget).
    pub fn heap_bytes(&self) -> usize {
        self.heap
    }

    fn count_heap_bytes(&self) -> usize {
        let event = match &self.event {
            Event::Exec(e) => e.string_bytes(),
            Event::Fork(e) => e.parent.string_bytes(),
            Event::Exit(e) => e.process.string_bytes(),
            Event::File(e) => e.string_bytes(),
            Event::Cred(e) => e.process.string_bytes(),
        };
        std::mem::size_of::<Self>()
            + event
            + self.processes.iter().map(|p| p.heap_bytes()).sum::<usize>()
    }
}

impl EventSnapshot {
    /// Lets go of the processes shared with the process table (a snapshot kept for reuse
    /// must not hold the table's entries: the table would have to copy them to write
    /// them); its own copies stay, for their buffers.
    pub fn release_shared(&mut self) {
        self.processes.retain(|p| Arc::strong_count(p) == 1);
    }
}

impl Processes for EventSnapshot {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        self.processes
            .iter()
            .find(|p| p.pid == pid)
            .map(|p| &**p as &dyn Process)
    }

    fn get_shared(&self, pid: u32) -> Option<Arc<OwnedProcess>> {
        self.processes.iter().find(|p| p.pid == pid).cloned()
    }
}

impl EcsEvent<'_> {
    /// An owned copy of the event and of every process its view can look up.
    pub fn snapshot(&self) -> EventSnapshot {
        let mut snap = EventSnapshot {
            event: self.owned_event(),
            processes: Vec::new(),
            heap: 0,
        };
        self.snapshot_processes(&mut snap.processes);
        snap.heap = snap.count_heap_bytes();
        snap
    }

    /// Makes `snap` a copy of this event, as [`EcsEvent::snapshot`] would, reusing its
    /// buffers: the detection engine recycles the snapshots of stage hits it no longer
    /// holds, so a stage hit allocates nothing in steady state.
    pub fn snapshot_into(&self, snap: &mut EventSnapshot) {
        match (self.subject, &mut snap.event) {
            (Subject::Exec(e), Event::Exec(owned)) => assign_exec(owned, e),
            _ => snap.event = self.owned_event(),
        }
        self.snapshot_processes(&mut snap.processes);
        snap.heap = snap.count_heap_bytes();
    }

    fn owned_event(&self) -> Event<'static> {
        match self.subject {
            Subject::Exec(e) => Event::Exec(e.clone().into_owned()),
            Subject::Fork(e) => Event::Fork(e.clone().into_owned()),
            Subject::Exit(e) => Event::Exit(e.clone().into_owned()),
            Subject::File(e) => Event::File(e.clone().into_owned()),
            Subject::Cred(e) => Event::Cred(e.clone().into_owned()),
        }
    }

    /// Fills `processes` (the buffers of its own copies reused) with every process the
    /// view can look up.
    fn snapshot_processes(&self, processes: &mut Vec<Arc<OwnedProcess>>) {
        // Every pid the view passes to `Processes::get`: the process itself (an exec's
        // fork-child test, the leaders' "is it this one"), its actor, parent, responsible
        // process and leaders.
        let pids = [
            Some(self.pid()),
            self.actor().map(|a| a.pid),
            self.ppid(),
            self.responsible_pid(),
            self.session_leader_pid(),
            self.group_leader_pid(),
            self.entry_leader().map(|e| e.pid),
        ];
        let mut used = 0;
        for pid in pids.into_iter().flatten() {
            if processes[..used].iter().any(|p| p.pid == pid) {
                continue;
            }
            if let Some(shared) = self.processes.get_shared(pid) {
                put_at(processes, used, shared);
            } else if let Some(p) = self.processes.get(pid) {
                match processes.get_mut(used).and_then(Arc::get_mut) {
                    Some(copy) => copy.assign(p),
                    None => put_at(processes, used, Arc::new(OwnedProcess::of(p))),
                }
            } else {
                continue;
            }
            used += 1;
        }
        processes.truncate(used);
    }

    /// When the event happened, Unix nanoseconds (`@timestamp`).
    pub fn time_ns(&self) -> i64 {
        self.meta().time_ns
    }

    /// The order the sensor captured it in.
    pub fn sequence(&self) -> u64 {
        self.meta().sensor_seq
    }
}

fn put_at<T>(v: &mut Vec<T>, i: usize, x: T) {
    match v.get_mut(i) {
        Some(slot) => *slot = x,
        None => v.push(x),
    }
}

/// `dst = src`, reusing `dst`'s buffer.
fn set_string(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

fn set_opt_string(dst: &mut Option<String>, src: Option<&str>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => set_string(d, s),
        (None, Some(s)) => *dst = Some(s.to_owned()),
        (_, None) => *dst = None,
    }
}

fn set_cow(dst: &mut Cow<'static, str>, src: &str) {
    match dst {
        Cow::Owned(d) => set_string(d, src),
        Cow::Borrowed(_) => *dst = Cow::Owned(src.to_owned()),
    }
}

fn set_opt_cow(dst: &mut Option<Cow<'static, str>>, src: Option<&Cow<'_, str>>) {
    match (dst.as_mut(), src) {
        (Some(d), Some(s)) => set_cow(d, s),
        (None, Some(s)) => *dst = Some(Cow::Owned(s.to_string())),
        (_, None) => *dst = None,
    }
}

/// `dst = src.into_owned()`, reusing `dst`'s buffers. Every field is named, so a field
/// added to the event cannot be forgotten here.
fn assign_exec(dst: &mut ExecEvent<'static>, src: &ExecEvent<'_>) {
    let ExecEvent {
        sensor_seq,
        source,
        os,
        flags,
        time_ns,
        captured_ns,
        es_seq_num,
        es_global_seq_num,
        target,
        caller,
        responsible_pid,
    } = src;
    dst.sensor_seq = *sensor_seq;
    dst.source = *source;
    dst.os = *os;
    dst.flags = *flags;
    dst.time_ns = *time_ns;
    dst.captured_ns = *captured_ns;
    dst.es_seq_num = *es_seq_num;
    dst.es_global_seq_num = *es_global_seq_num;
    dst.responsible_pid = *responsible_pid;
    let Target {
        pid,
        pidversion,
        ppid,
        original_ppid,
        uid,
        euid,
        gid,
        egid,
        auid,
        session_id,
        executable,
        args,
        cwd,
        signing_id,
        team_id,
        cdhash,
        platform_binary,
        cs_flags,
        tty,
        start_time_ns,
        session_leader_pid,
        group_leader_pid,
        container,
        env_vars,
    } = target;
    let t = &mut dst.target;
    t.pid = *pid;
    t.pidversion = *pidversion;
    t.ppid = *ppid;
    t.original_ppid = *original_ppid;
    t.uid = *uid;
    t.euid = *euid;
    t.gid = *gid;
    t.egid = *egid;
    t.auid = *auid;
    t.session_id = *session_id;
    set_cow(&mut t.executable, executable);
    t.args.clone_from_args(args);
    set_opt_cow(&mut t.cwd, cwd.as_ref());
    set_opt_cow(&mut t.signing_id, signing_id.as_ref());
    set_opt_cow(&mut t.team_id, team_id.as_ref());
    set_opt_cow(&mut t.cdhash, cdhash.as_ref());
    t.platform_binary = *platform_binary;
    t.cs_flags = *cs_flags;
    set_opt_cow(&mut t.tty, tty.as_ref());
    t.start_time_ns = *start_time_ns;
    t.session_leader_pid = *session_leader_pid;
    t.group_leader_pid = *group_leader_pid;
    t.container = *container;
    t.env_vars.clone_from_args(env_vars);
    let Caller {
        pid,
        ppid,
        executable,
        signing_id,
        team_id,
        platform_binary,
        cs_flags,
    } = caller;
    let c = &mut dst.caller;
    c.pid = *pid;
    c.ppid = *ppid;
    set_opt_cow(&mut c.executable, executable.as_ref());
    set_opt_cow(&mut c.signing_id, signing_id.as_ref());
    set_opt_cow(&mut c.team_id, team_id.as_ref());
    c.platform_binary = *platform_binary;
    c.cs_flags = *cs_flags;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::{Field, Value};
    use nightjar_proto::ExecEvent;
    use nightjar_proto::event::{Actor, FileAction, FileEvent};
    use std::borrow::Cow;

    struct Table(Vec<OwnedProcess>);

    impl Processes for Table {
        fn get(&self, pid: u32) -> Option<&dyn Process> {
            self.0
                .iter()
                .find(|p| p.pid == pid)
                .map(|p| p as &dyn Process)
        }
    }

    /// A table that shares its entries.
    struct Shared(Vec<Arc<OwnedProcess>>);

    impl Processes for Shared {
        fn get(&self, pid: u32) -> Option<&dyn Process> {
            self.0
                .iter()
                .find(|p| p.pid == pid)
                .map(|p| &**p as &dyn Process)
        }
        fn get_shared(&self, pid: u32) -> Option<Arc<OwnedProcess>> {
            self.0.iter().find(|p| p.pid == pid).cloned()
        }
    }

    fn process(pid: u32, ppid: u32, exe: &str, args: &[&str]) -> OwnedProcess {
        OwnedProcess {
            pid,
            executable: exe.into(),
            args: Args::from_strs(args.iter().copied()).0,
            command_line: args.join(" "),
            signing_id: None,
            team_id: None,
            cs_flags: Some(1),
            args_count: args.len(),
            start_time_ns: Some(1_000 + i64::from(pid)),
            ppid: Some(ppid),
            working_directory: Some("/tmp".into()),
            ids: Ids {
                uid: Some(501),
                euid: Some(501),
                gid: Some(20),
                egid: Some(20),
            },
            interactive: Some(true),
            session_leader_pid: Some(3),
            group_leader_pid: Some(pid),
            container: Some(false),
            entry_leader: None,
        }
    }

    #[test]
    fn a_snapshot_views_like_the_event() {
        let table = Table(vec![
            process(3, 1, "/usr/sbin/sshd", &["sshd"]),
            process(5, 3, "/bin/zsh", &["zsh", "-c", "x"]),
        ]);
        let host = HostInfo::new("h", "id");
        let mut ev = ExecEvent::default();
        ev.target.pid = 10;
        ev.target.ppid = Some(5);
        ev.target.session_leader_pid = Some(3);
        ev.target.executable = Cow::Borrowed("/usr/bin/kcc");
        ev.target.args = Args::from_strs(["kcc", "list"]).0;
        ev.responsible_pid = Some(5);
        let ev = Event::Exec(ev);
        let live = EcsEvent::of(&ev, &table, &host);
        let snap = live.snapshot();
        drop(table);
        let again = snap.view(&host);
        assert_eq!(live_document(&ev), again.document());
        assert!(matches!(again.value(Field::ParentName), Value::Str("zsh")));
        assert!(matches!(
            again.value(Field::SessionLeaderName),
            Value::Str("sshd")
        ));
        assert!(snap.heap_bytes() > 40);
    }

    /// A recycled snapshot, refilled from events of other shapes and with fewer, more or
    /// other processes, equals a fresh one every time.
    #[test]
    fn a_refilled_snapshot_equals_a_fresh_one() {
        let table = Table(vec![
            process(3, 1, "/usr/sbin/sshd", &["sshd", "-D"]),
            process(5, 3, "/bin/zsh", &["zsh", "-c", "a long command line"]),
            process(9, 5, "/usr/bin/touch", &["touch", "/tmp/x"]),
        ]);
        let host = HostInfo::new("h", "id");
        let mut full = ExecEvent {
            sensor_seq: 7,
            ..ExecEvent::default()
        };
        full.target.pid = 10;
        full.target.ppid = Some(5);
        full.target.session_leader_pid = Some(3);
        full.target.executable = Cow::Borrowed("/usr/bin/kcc");
        full.target.args = Args::from_strs(["kcc", "list", "--all"]).0;
        full.target.cwd = Some(Cow::Borrowed("/Users/x"));
        full.target.signing_id = Some(Cow::Borrowed("com.apple.kcc"));
        full.target.tty = Some(Cow::Borrowed("/dev/ttys001"));
        full.target.env_vars = Args::from_strs(["LD_PRELOAD=/tmp/x.so"]).0;
        full.caller.executable = Some(Cow::Borrowed("/bin/zsh"));
        full.responsible_pid = Some(5);
        let mut bare = ExecEvent {
            sensor_seq: 8,
            ..ExecEvent::default()
        };
        bare.target.pid = 11;
        bare.target.executable = Cow::Borrowed("/x");
        let file = Event::File(FileEvent {
            process: Actor {
                pid: 9,
                ..Actor::default()
            },
            action: FileAction::Creation,
            path: Cow::Borrowed("/tmp/y"),
            ..FileEvent::default()
        });
        let events = [
            Event::Exec(full.clone()),
            Event::Exec(bare),
            Event::Exec(full),
            file.clone(),
            Event::Exec(ExecEvent::default()),
            file,
        ];
        let shared = Shared(table.0.iter().cloned().map(Arc::new).collect());
        let mut recycled = EcsEvent::of(&events[0], &table, &host).snapshot();
        for (i, ev) in events.iter().cycle().take(24).enumerate() {
            // Copying and sharing tables in turn, a pooled snapshot released or not.
            let processes: &dyn Processes = if i % 3 == 0 { &shared } else { &table };
            if i % 4 == 0 {
                recycled.release_shared();
            }
            let live = EcsEvent::of(ev, processes, &host);
            live.snapshot_into(&mut recycled);
            assert_eq!(recycled, live.snapshot());
            assert_eq!(recycled, EcsEvent::of(ev, &table, &host).snapshot());
            assert_eq!(recycled.heap_bytes(), recycled.count_heap_bytes());
        }
    }

    /// The document of `ev` with the table it was seen with (rebuilt: the table is gone).
    fn live_document(ev: &Event<'_>) -> serde_json::Map<String, serde_json::Value> {
        let table = Table(vec![
            process(3, 1, "/usr/sbin/sshd", &["sshd"]),
            process(5, 3, "/bin/zsh", &["zsh", "-c", "x"]),
        ]);
        let host = HostInfo::new("h", "id");
        EcsEvent::of(ev, &table, &host).document()
    }

    #[test]
    fn a_file_event_snapshot_keeps_its_acting_process() {
        let table = Table(vec![
            process(5, 1, "/bin/zsh", &["zsh"]),
            process(9, 5, "/usr/bin/touch", &["touch", "/tmp/x"]),
        ]);
        let host = HostInfo::new("h", "id");
        let ev = Event::File(FileEvent {
            process: Actor {
                pid: 9,
                start_time_ns: Some(1_009),
                ..Actor::default()
            },
            action: FileAction::Creation,
            path: Cow::Borrowed("/tmp/x"),
            ..FileEvent::default()
        });
        let live = EcsEvent::of(&ev, &table, &host);
        let doc = live.document();
        let snap = live.snapshot();
        drop(table);
        let again = snap.view(&host);
        assert_eq!(doc, again.document());
        assert!(matches!(again.value(Field::Name), Value::Str("touch")));
        assert!(matches!(again.value(Field::ParentName), Value::Str("zsh")));
    }
}
