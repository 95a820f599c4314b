//! The file filter is sound: every file event a loaded rule matches — alone or as a stage of
//! a sequence — passes the filter derived from the rules, with the per-process marks computed
//! as the Linux probes compute them (at each exec, from the new image and its parent's name).
//! Random process trees and file activity run through the real engine; each file event of
//! every detection is then put to the filter.

mod support;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use nightjar_proto::event::{Actor, Event, EventMeta, FileAction, FileEvent, basename};
use nightjar_proto::filter::{MARK_CHILDREN, MARK_SELF, Marked, PathFilter};
use nightjar_proto::{Args, ExecEvent, OsType, Source, Target};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo, OwnedProcess, Process, Processes};
use nightjar_rules::engine::{Detection, Engine, Limits};
use proptest::prelude::*;

const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000_000 * MS;

fn hash(host: &str, pid: u32, start: i64) -> [u8; 24] {
    let mut out = [b'A'; 24];
    let s = format!("{host}:{pid}:{start}");
    for (o, b) in out.iter_mut().zip(s.bytes()) {
        *o = if b.is_ascii_alphanumeric() { b } else { b'_' };
    }
    out
}

/// The agent's process table, as far as these rules look: pid → last exec.
#[derive(Default)]
struct Table(HashMap<u32, OwnedProcess>);

impl Processes for Table {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        self.0.get(&pid).map(|p| p as &dyn Process)
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// `pid` (a child of `ppid`) execs `exe`.
    Exec { pid: u32, ppid: u32, exe: usize },
    /// `pid` acts on a file.
    File {
        pid: u32,
        action: FileAction,
        path: usize,
        from: usize,
    },
}

const EXES: [&str; 13] = [
    "/usr/bin/cp",
    "/usr/bin/mv",
    "/bin/bash",
    "/usr/bin/dash",
    "/usr/lib/cups/filter/foomatic-rip",
    "/tmp/payload",
    "/dev/shm/x",
    "/memfd:evil (deleted)",
    "/usr/bin/make",
    "/usr/bin/cc",
    "/var/www/app/run",
    "/usr/bin/python3",
    "/var/tmp/k/x9",
];

const PATHS: [&str; 14] = [
    "/tmp/payload",
    "/home/u/Documents/a.txt",
    "/home/u/Documents/HOW_TO_RESTORE.txt",
    "/usr/lib/libx.so.1",
    "/usr/lib/libx.so",
    "/build/obj/a.o",
    "/build/obj/.a.o.tmp",
    "/etc/ld.so.preload",
    "/root/readme.lock",
    "/var/www/app/run",
    "/dev/shm/x",
    "/etc/cron.d/job",
    "/var/tmp/k/x9",
    "/memfd:evil (deleted)",
];

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let exec = (10u32..16, 1u32..16, 0..EXES.len()).prop_map(|(pid, ppid, exe)| Step::Exec {
        pid,
        ppid,
        exe,
    });
    let file = (
        10u32..16,
        prop::sample::select(vec![
            FileAction::Creation,
            FileAction::Modification,
            FileAction::Rename,
            FileAction::Deletion,
        ]),
        0..PATHS.len(),
        0..PATHS.len(),
    )
        .prop_map(|(pid, action, path, from)| Step::File {
            pid,
            action,
            path,
            from,
        });
    prop::collection::vec(prop_oneof![1 => exec, 2 => file], 1..80)
}

/// Elastic's four Linux sequence rules whose file stages no path bounds, and every other
/// Linux rule that reads file events.
fn linux_rules() -> Arc<RuleSet> {
    static SET: OnceLock<Arc<RuleSet>> = OnceLock::new();
    SET.get_or_init(|| {
        let dir = support::shared("elastic-rules/linux-head-14cf530f");
        let (set, report) = RuleSet::load(&[dir], false, None).expect("the Linux rules load");
        assert!(report.ok() > 200, "{} rules ok", report.ok());
        Arc::new(set)
    })
    .clone()
}

/// The kernel's side: each process's mark bits, set at exec, kept until exit.
struct Kernel<'f> {
    filter: &'f PathFilter,
    bits: HashMap<u32, u8>,
    ppid: HashMap<u32, u32>,
}

impl Kernel<'_> {
    fn marked(&self, pid: u32) -> Marked {
        let own = self.bits.get(&pid).copied().unwrap_or(0) & MARK_SELF != 0;
        let parent = self
            .ppid
            .get(&pid)
            .and_then(|pp| self.bits.get(pp))
            .is_some_and(|b| b & MARK_CHILDREN != 0);
        if own || parent {
            Marked::Yes
        } else {
            Marked::No
        }
    }
}

/// Runs `steps` through the engine; returns the file events of every detection with whether
/// the filter admitted them.
fn run(set: Arc<RuleSet>, filter: &PathFilter, steps: &[Step]) -> Vec<(String, bool)> {
    let host = HostInfo::new("h", "host-1").with_entity_ids(hash);
    let mut engine = Engine::new(set, Limits::default());
    let mut table = Table::default();
    let mut kernel = Kernel {
        filter,
        bits: HashMap::new(),
        ppid: HashMap::new(),
    };
    let mut checked = Vec::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let seq = i as u64 + 1;
        let time_ns = T0 + i as i64 * 10 * MS;
        let ev: Event<'static> = match *step {
            Step::Exec { pid, ppid, exe } => {
                let exe = EXES[exe];
                let start = kernel.ppid.contains_key(&pid).then(|| {
                    table
                        .0
                        .get(&pid)
                        .and_then(|p| p.start_time_ns)
                        .unwrap_or(T0)
                });
                let start = start.unwrap_or(time_ns);
                // A pid keeps its parent once it has one (it exec'd again).
                let ppid = *kernel.ppid.entry(pid).or_insert(ppid);
                let parent_name = table
                    .0
                    .get(&ppid)
                    .map(|p| basename(&p.executable).to_owned());
                let bits = kernel
                    .filter
                    .marks()
                    .bits_at_exec(exe, parent_name.as_deref());
                *kernel.bits.entry(pid).or_default() |= bits;
                let args = [basename(exe), "/etc/ld.so.preload", "/tmp/dst"];
                let ev = ExecEvent {
                    sensor_seq: seq,
                    source: Source::Ebpf,
                    os: OsType::Linux,
                    time_ns,
                    target: Target {
                        pid,
                        ppid: Some(ppid),
                        start_time_ns: Some(start),
                        executable: Cow::Owned(exe.to_owned()),
                        args: Args::from_strs(args).0,
                        ..Target::default()
                    },
                    ..ExecEvent::default()
                };
                table.0.insert(
                    pid,
                    OwnedProcess {
                        pid,
                        executable: exe.to_owned(),
                        args: Args::from_strs(args).0,
                        args_count: 3,
                        start_time_ns: Some(start),
                        ppid: Some(ppid),
                        ..OwnedProcess::default()
                    },
                );
                ev.into()
            }
            Step::File {
                pid,
                action,
                path,
                from,
            } => {
                let ppid = *kernel.ppid.entry(pid).or_insert(1);
                let start = table.0.get(&pid).and_then(|p| p.start_time_ns);
                FileEvent {
                    meta: EventMeta {
                        sensor_seq: seq,
                        source: Source::Ebpf,
                        os: OsType::Linux,
                        time_ns,
                        ..EventMeta::default()
                    },
                    process: Actor {
                        pid,
                        ppid: Some(ppid),
                        start_time_ns: start,
                        ..Actor::default()
                    },
                    action,
                    path: Cow::Borrowed(PATHS[path]),
                    original_path: (action == FileAction::Rename)
                        .then_some(Cow::Borrowed(PATHS[from])),
                    ..FileEvent::default()
                }
                .into()
            }
        };
        engine.on_event(&EcsEvent::of(&ev, &table, &host), &mut out);
        let current = (ev.meta().sensor_seq, pid_of(&ev));
        for d in out.drain(..) {
            check(&d, Some(current), steps, &table, &kernel, &mut checked);
        }
    }
    engine.finish(&mut out);
    for d in out.drain(..) {
        check(&d, None, steps, &table, &kernel, &mut checked);
    }
    checked
}

/// Puts each file event of detection `d` to the filter.
fn check(
    d: &Detection,
    current: Option<(u64, u32)>,
    steps: &[Step],
    table: &Table,
    kernel: &Kernel<'_>,
    checked: &mut Vec<(String, bool)>,
) {
    let events: Vec<(u64, u32)> = match d {
        Detection::Event { .. } => current.into_iter().collect(),
        Detection::Correlated { events, .. } => events
            .iter()
            .map(|e| (e.event().meta().sensor_seq, pid_of(e.event())))
            .collect(),
        _ => Vec::new(),
    };
    for (seq, pid) in events {
        let step = &steps[seq as usize - 1];
        let Step::File {
            path, from, action, ..
        } = *step
        else {
            continue;
        };
        let comm = table
            .0
            .get(&pid)
            .map(|p| basename(&p.executable).to_owned());
        let marked = kernel.marked(pid);
        let admits = |p: &str| kernel.filter.admits_marked(p, comm.as_deref(), marked);
        let ok = admits(PATHS[path]) || (action == FileAction::Rename && admits(PATHS[from]));
        checked.push((format!("{d:?} event {seq}: {step:?}"), ok));
    }
}

fn pid_of(ev: &Event<'_>) -> u32 {
    match ev {
        Event::Exec(e) => e.target.pid,
        Event::Fork(e) => e.parent.pid,
        Event::Exit(e) => e.process.pid,
        Event::File(e) => e.process.pid,
        Event::Cred(e) => e.process.pid,
    }
}

#[test]
fn the_linux_rules_filter_is_bounded_and_says_what_is_open() {
    let set = linux_rules();
    let (filter, open) = set.file_filter_explained();
    assert!(!filter.is_all(), "open: {open:#?}");
    assert!(filter.kernel_can_filter() || !filter.is_all());
    let marks = filter.marks();
    let names: Vec<&str> = marks.names.iter().map(|(n, _)| n.as_str()).collect();
    for n in ["cp", "mv", "rsync"] {
        assert!(names.contains(&n), "{marks:?}");
    }
    assert!(
        marks
            .parents
            .iter()
            .any(|(n, b)| n == "foomatic-rip" && *b == MARK_CHILDREN),
        "{marks:?}"
    );
    assert!(
        marks
            .exe_prefixes
            .iter()
            .any(|(p, b)| p == "/tmp/" && *b & MARK_SELF != 0),
        "{marks:?}"
    );
    assert!(
        marks
            .exe_prefixes_after_one
            .iter()
            .any(|(p, _)| p == "memfd:"),
        "{marks:?}"
    );
    // A build's processes are not marked, and its object files do not pass.
    for exe in ["/usr/bin/make", "/usr/bin/cc", "/usr/bin/ld", "/bin/sh"] {
        assert_eq!(marks.bits_at_exec(exe, Some("make")), 0, "{exe}");
    }
    for p in ["/build/obj/a.o", "/build/obj/.a.o.tmp", "/build/lib/libx.a"] {
        assert!(!filter.admits_marked(p, Some("cc"), Marked::No), "{p}");
    }
}

#[test]
fn a_self_deleting_payload_passes_by_its_mark_only() {
    let set = linux_rules();
    let filter = set.file_filter();
    let steps = [
        Step::Exec {
            pid: 10,
            ppid: 1,
            exe: 7,
        },
        Step::File {
            pid: 10,
            action: FileAction::Deletion,
            path: 13,
            from: 13,
        },
    ];
    let got = run(set, &filter, &steps);
    assert!(
        got.iter().any(|(d, ok)| *ok && d.contains("Deletion")),
        "the self-deletion rule fired and its deletion passed: {got:#?}"
    );
    assert!(
        !filter.admits_marked(
            "/memfd:evil (deleted)",
            Some("memfd:evil (deleted)"),
            Marked::No
        ),
        "without the mark the path alone is filtered"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_file_event_a_rule_matches_passes(steps in steps()) {
        let set = linux_rules();
        let filter = set.file_filter();
        for (what, ok) in run(set, &filter, &steps) {
            prop_assert!(ok, "filtered out although a rule matched it: {}", what);
        }
    }
}
