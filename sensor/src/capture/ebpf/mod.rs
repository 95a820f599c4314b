//! Linux capture: the eBPF probes of `src/bpf/probes.bpf.c` (exec, fork, exit, file,
//! credential and session change events).
//!
//! The probes write variable-size samples into one BPF ring buffer, so events reach the
//! sensor in the order they happened; this side polls it, decodes each sample in place
//! ([`sample::decode_sample`]) and publishes it. Before the first poll, the processes already
//! running are published from `/proc` ([`proc_list`]) so that they are known parents.
//!
//! The file probes are loaded only when some rule reads file events, with the path filter
//! compiled from the rules ([`PathFilter`]) in the kernel's maps; what the filters drop and
//! what the BPF ring buffer had no room for are counted per kind and reported after every poll.

mod agent;
mod marks;
pub mod proc_list;
pub mod sample;
mod skel;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::mem::MaybeUninit;
use std::path::Path;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, RingBufferBuilder};
use nightjar_proto::LossSource;
use nightjar_proto::event::{Event, EventKind};
use nightjar_proto::filter::PathFilter;

use crate::block::{Blocking, kernel_maps};
use crate::capture::{CaptureError, Settings};
use crate::gate::{Gate, Verdict};
use crate::kept_policy::PolicyWatch;
use crate::publish::Publisher;
use agent::AgentWatch;
use sample::{BootClock, DecodeContext, SampleScratch};
use skel::ProbesSkelBuilder;

/// How long one poll of the BPF ring buffer waits for data before checking the stop flag,
/// the counters and the agent's pids: an idle sensor wakes this often and no more (a flush
/// that publishes nothing new wakes nobody else), so idle costs half a wake-up a second
/// (`scripts/bench idle`). Events are handled as they come, whatever this says.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Bytes of the environment the probe reads when variables are to be captured (its bound).
const ENV_CAP: u32 = 4096;
/// Longest key of the kernel's `names` map, and of `prefixes` (bytes).
const NAME_CAP: usize = 256;
/// Key length of the `extensions` and `comms` maps (15 bytes and a NUL).
const COMM_CAP: usize = 16;

/// The sample kinds of `events.h`, in the order of the per-kind counters.
const KINDS: [(u32, EventKind); 5] = [
    (sample::KIND_EXEC, EventKind::Exec),
    (sample::KIND_FORK, EventKind::Fork),
    (sample::KIND_EXIT, EventKind::Exit),
    (sample::KIND_FILE, EventKind::File),
    (sample::KIND_CRED, EventKind::Cred),
];

/// Refuses to go on without the capabilities that loading and attaching the probes need:
/// CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN (which implies both on older kernels).
pub fn check_privileges() -> Result<(), CaptureError> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|err| {
        CaptureError::Privileges(format!(
            "cannot read /proc/self/status to check capabilities: {err}"
        ))
    })?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| CaptureError::Privileges("no CapEff line in /proc/self/status".into()))?;
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        Ok(())
    } else {
        Err(CaptureError::Privileges(format!(
            "the eBPF source needs root, or CAP_BPF and CAP_PERFMON (effective capabilities are {cap_eff:#x})"
        )))
    }
}

/// The clocks of this boot: the realtime-minus-boottime offset (read now) for event times,
/// the kernel's boot second (`btime` in `/proc/stat`) and the `/proc` clock tick for start
/// times.
pub fn boot_clock() -> BootClock {
    let mut boot = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut real = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are to live, writable timespecs; the clock ids are valid on Linux.
    let ok = unsafe {
        libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut boot) == 0
            && libc::clock_gettime(libc::CLOCK_REALTIME, &mut real) == 0
    };
    let ns = |t: libc::timespec| t.tv_sec * 1_000_000_000 + t.tv_nsec;
    let offset_ns = if ok { ns(real) - ns(boot) } else { 0 };
    let btime = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<i64>().ok())
    });
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    BootClock {
        offset_ns,
        boot_unix_ns: btime.map_or(offset_ns - offset_ns % 1_000_000_000, |s| s * 1_000_000_000),
        tick_ns: if hz > 0 {
            1_000_000_000 / hz
        } else {
            10_000_000
        },
    }
}

/// Copies `text` into a NUL-padded key of `N` bytes (cut to `N - 1`).
fn key<const N: usize>(text: &str) -> [u8; N] {
    let mut k = [0u8; N];
    let n = text.len().min(N - 1);
    k[..n].copy_from_slice(&text.as_bytes()[..n]);
    k
}

/// Whether `filter` has entries the probes test in `patterns_admit`.
fn has_patterns(filter: &PathFilter) -> bool {
    !filter.components().is_empty()
        || !filter.contains().is_empty()
        || !filter.process_prefixes().is_empty()
        || !filter.process_suffixes().is_empty()
}

/// `struct file_patterns` (src/bpf/events.h) for `filter`'s texts, process name prefixes and
/// ends, and whether it has components; within the limits `kernel_can_filter` checked.
fn file_patterns(filter: &PathFilter) -> Vec<u8> {
    const TEXTS: usize = 4;
    const PREFIXES: usize = 16;
    const SUFFIXES: usize = 4;
    const TEXT: usize = 16;
    let mut out = Vec::with_capacity(
        16 + 4 * (TEXTS + PREFIXES + SUFFIXES) + TEXT * (TEXTS + PREFIXES + SUFFIXES),
    );
    let contains: Vec<&String> = filter.contains().iter().take(TEXTS).collect();
    let prefixes: Vec<&String> = filter.process_prefixes().iter().take(PREFIXES).collect();
    let suffixes: Vec<&String> = filter.process_suffixes().iter().take(SUFFIXES).collect();
    for v in [
        u32::from(!filter.components().is_empty()),
        contains.len() as u32,
        prefixes.len() as u32,
        suffixes.len() as u32,
    ] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    let lens = |list: &[&String], slots: usize, max: usize, out: &mut Vec<u8>| {
        for i in 0..slots {
            let n = list.get(i).map_or(0, |c| c.len().min(max));
            out.extend_from_slice(&(n as u32).to_ne_bytes());
        }
    };
    lens(&contains, TEXTS, TEXT, &mut out);
    lens(&prefixes, PREFIXES, TEXT - 1, &mut out);
    lens(&suffixes, SUFFIXES, TEXT - 1, &mut out);
    let cells = |list: &[&String], slots: usize, out: &mut Vec<u8>| {
        for i in 0..slots {
            let mut cell = [0u8; TEXT];
            if let Some(v) = list.get(i) {
                let n = v.len().min(TEXT);
                cell[..n].copy_from_slice(&v.as_bytes()[..n]);
            }
            out.extend_from_slice(&cell);
        }
    };
    cells(&contains, TEXTS, &mut out);
    cells(&prefixes, PREFIXES, &mut out);
    cells(&suffixes, SUFFIXES, &mut out);
    out
}

/// `struct file_conf` (src/bpf/events.h).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FileConf {
    all: bool,
    patterns_on: bool,
    marks_on: bool,
    after_one: bool,
    every: u8,
}

impl FileConf {
    fn of(filter: &PathFilter) -> FileConf {
        let marks = filter.marks();
        FileConf {
            all: !filter.kernel_can_filter(),
            patterns_on: has_patterns(filter),
            marks_on: !marks.is_empty(),
            after_one: !marks.exe_prefixes_after_one.is_empty(),
            every: marks.every,
        }
    }

    /// What both admit: the conf while one filter is swapped for another.
    fn union(self, other: FileConf) -> FileConf {
        FileConf {
            all: self.all || other.all,
            patterns_on: self.patterns_on || other.patterns_on,
            marks_on: self.marks_on || other.marks_on,
            after_one: self.after_one || other.after_one,
            every: self.every | other.every,
        }
    }

    /// The map value; `overflow` is the probes' (kept as they set it).
    fn bytes(self, overflow: u32) -> [u8; 32] {
        let mut out = [0u8; 32];
        let fields = [
            u32::from(self.all),
            u32::from(self.patterns_on),
            u32::from(self.marks_on),
            u32::from(self.after_one),
            u32::from(self.every),
            overflow,
        ];
        for (i, v) in fields.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        out
    }
}

/// `struct lpm_key` for `text` (lowercase, cut to what the key holds) after `tag` bytes.
fn lpm_key(tag: Option<u8>, text: &str) -> Vec<u8> {
    let mut data = [0u8; NAME_CAP];
    let at = usize::from(tag.is_some());
    if let Some(t) = tag {
        data[0] = t;
    }
    let n = text.len().min(NAME_CAP - 1 - at);
    data[at..at + n].copy_from_slice(&text.as_bytes()[..n]);
    let bits = ((at + n) * 8) as u32;
    let mut k = Vec::with_capacity(4 + NAME_CAP);
    k.extend_from_slice(&bits.to_ne_bytes());
    k.extend_from_slice(&data);
    k
}

/// `mark_exes`' first key byte (`MARK_TAG_*` in src/bpf/events.h).
const MARK_TAG_START: u8 = 0;
const MARK_TAG_AFTER_ONE: u8 = 1;

/// Every key and value of the filter maps for `filter`, by map.
#[derive(Debug, Default, PartialEq, Eq)]
struct FilterKeys {
    prefixes: Vec<(Vec<u8>, Vec<u8>)>,
    names: Vec<(Vec<u8>, Vec<u8>)>,
    extensions: Vec<(Vec<u8>, Vec<u8>)>,
    comms: Vec<(Vec<u8>, Vec<u8>)>,
    components: Vec<(Vec<u8>, Vec<u8>)>,
    mark_names: Vec<(Vec<u8>, Vec<u8>)>,
    mark_parents: Vec<(Vec<u8>, Vec<u8>)>,
    mark_exes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl FilterKeys {
    /// The keys of `filter` (whose entries are lowercase and at most 255 bytes, see
    /// [`nightjar_proto::filter`]); none when the kernel cannot apply it.
    fn of(filter: &PathFilter) -> FilterKeys {
        let one = || vec![1u8];
        let mut k = FilterKeys::default();
        let marks = filter.marks();
        for (name, bits) in &marks.names {
            k.mark_names.push((
                key::<COMM_CAP>(name).to_vec(),
                u32::from(*bits).to_ne_bytes().to_vec(),
            ));
        }
        for (name, bits) in &marks.parents {
            k.mark_parents.push((
                key::<COMM_CAP>(name).to_vec(),
                u32::from(*bits).to_ne_bytes().to_vec(),
            ));
        }
        // The trie answers with the longest prefix only: each entry carries the bits of the
        // shorter ones it extends.
        for (tag, list) in [
            (MARK_TAG_START, &marks.exe_prefixes),
            (MARK_TAG_AFTER_ONE, &marks.exe_prefixes_after_one),
        ] {
            for (prefix, _) in list {
                let bits = list
                    .iter()
                    .filter(|(p, _)| prefix.starts_with(p.as_str()))
                    .fold(0u8, |b, (_, v)| b | v);
                k.mark_exes.push((
                    lpm_key(Some(tag), prefix),
                    u32::from(bits).to_ne_bytes().to_vec(),
                ));
            }
        }
        if !filter.kernel_can_filter() {
            return k;
        }
        for prefix in filter.prefixes() {
            k.prefixes.push((lpm_key(None, prefix), one()));
        }
        for name in filter.names() {
            k.names.push((key::<NAME_CAP>(name).to_vec(), one()));
        }
        for ext in filter.extensions() {
            // Longer extensions are admitted by the probe itself (it never misses them).
            if ext.len() < COMM_CAP {
                k.extensions.push((key::<COMM_CAP>(ext).to_vec(), one()));
            }
        }
        for comm in filter.processes() {
            // The kernel keeps 15 bytes of a process name: a longer name matches by its start.
            k.comms.push((key::<COMM_CAP>(comm).to_vec(), one()));
        }
        for component in filter.components() {
            k.components
                .push((key::<COMM_CAP>(component).to_vec(), one()));
        }
        k
    }
}

/// The file filter in the kernel's maps, swapped live for a new rule set's without ever
/// admitting less than either: `file_conf.all` is set (and the marks of both are on) while
/// the maps change; the new entries go in before the old ones go out; then the new conf is
/// written. Processes already running are then marked from /proc by the new marks.
#[derive(Default)]
struct FilterLoader {
    keys: FilterKeys,
    conf: FileConf,
}

impl FilterLoader {
    fn swap(
        &mut self,
        maps: &skel::ProbesMaps<'_>,
        filter: &PathFilter,
    ) -> Result<(), CaptureError> {
        let err = |what: &str, e: libbpf_rs::Error| CaptureError::Ebpf(format!("{what}: {e}"));
        let next = FilterKeys::of(filter);
        let conf = FileConf::of(filter);
        let zero = 0u32.to_ne_bytes();
        let overflow = || -> Result<u32, CaptureError> {
            let v = maps
                .file_conf
                .lookup(&zero, MapFlags::ANY)
                .map_err(|e| err("reading the file filter's state", e))?;
            Ok(
                v.and_then(|v| v.get(20..24).and_then(|b| b.try_into().ok()))
                    .map_or(0, u32::from_ne_bytes),
            )
        };
        let mut during = self.conf.union(conf);
        during.all = true;
        maps.file_conf
            .update(&zero, &during.bytes(overflow()?), MapFlags::ANY)
            .map_err(|e| err("opening the file filter for a change", e))?;
        let pairs = [
            (
                &maps.prefixes,
                &self.keys.prefixes,
                &next.prefixes,
                "a path prefix",
            ),
            (&maps.names, &self.keys.names, &next.names, "a file name"),
            (
                &maps.extensions,
                &self.keys.extensions,
                &next.extensions,
                "a file extension",
            ),
            (&maps.comms, &self.keys.comms, &next.comms, "a process name"),
            (
                &maps.components,
                &self.keys.components,
                &next.components,
                "a path component",
            ),
            (
                &maps.mark_names,
                &self.keys.mark_names,
                &next.mark_names,
                "a marked name",
            ),
            (
                &maps.mark_parents,
                &self.keys.mark_parents,
                &next.mark_parents,
                "a marked parent name",
            ),
            (
                &maps.mark_exes,
                &self.keys.mark_exes,
                &next.mark_exes,
                "a marked executable",
            ),
        ];
        for (map, old, new, what) in &pairs {
            for (k, v) in new.iter() {
                // A key in both keeps the union of its values until the new conf is live.
                let v = match old.iter().find(|(ok, _)| ok == k) {
                    Some((_, ov)) if ov.len() == v.len() => {
                        v.iter().zip(ov).map(|(a, b)| a | b).collect()
                    }
                    _ => v.clone(),
                };
                map.update(k, &v, MapFlags::ANY)
                    .map_err(|e| err(&format!("loading {what}"), e))?;
            }
            for (k, _) in old.iter() {
                if !new.iter().any(|(nk, _)| nk == k) {
                    // Gone already or not: either way it no longer admits.
                    let _ = map.delete(k);
                }
            }
        }
        for (map, _, new, what) in &pairs {
            for (k, v) in new.iter() {
                map.update(k, v, MapFlags::ANY)
                    .map_err(|e| err(&format!("loading {what}"), e))?;
            }
        }
        if conf.patterns_on && !conf.all {
            maps.patterns
                .update(&zero, &file_patterns(filter), MapFlags::ANY)
                .map_err(|e| err("loading the path texts and process name patterns", e))?;
        }
        maps.file_conf
            .update(&zero, &conf.bytes(overflow()?), MapFlags::ANY)
            .map_err(|e| err("making the file filter live", e))?;
        self.keys = next;
        self.conf = conf;
        if conf.marks_on {
            let n = marks::mark_running(Path::new("/proc"), filter.marks(), &maps.proc_marks_snap);
            tracing::info!(processes = n, "running processes marked from /proc");
        }
        Ok(())
    }
}

/// Loads and attaches the probes, then publishes every event; returns only on failure. The
/// sensor's own events and the agent's (found in /proc, see [`agent`]) are not reported.
/// After every poll, a new kept policy (`watch`) swaps the blocking set in the kernel.
pub fn run(
    publisher: &mut Publisher,
    settings: &Settings,
    mut watch: Option<&mut PolicyWatch>,
) -> Result<Infallible, CaptureError> {
    check_privileges()?;
    let bpf = |what: &str, err: libbpf_rs::Error| CaptureError::Ebpf(format!("{what}: {err}"));
    // Under a fleet policy the file probes are loaded from the start, attached only while
    // the rules read file events (a program on sys_enter/sys_exit costs every system call of
    // the host): a later policy may bring such rules, or take them away.
    let files = !settings.files.is_none();
    let load_files = files || settings.follow_policy;

    let mut object = MaybeUninit::uninit();
    let mut open = ProbesSkelBuilder::default()
        .open(&mut object)
        .map_err(|e| bpf("opening the probes", e))?;
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.env_cap = if settings.env.is_empty() { 0 } else { ENV_CAP };
    }
    for prog in [
        &mut open.progs.nightjar_sys_enter,
        &mut open.progs.nightjar_sys_exit,
    ] {
        prog.set_autoload(load_files);
    }
    for prog in [
        &mut open.progs.nightjar_cred_enter,
        &mut open.progs.nightjar_cred_exit,
    ] {
        prog.set_autoload(settings.creds);
    }
    let skel = open
        .load()
        .map_err(|e| bpf("loading the probes (verifier or BTF)", e))?;
    skel.maps
        .muted
        .update(&std::process::id().to_ne_bytes(), &[1u8], MapFlags::ANY)
        .map_err(|e| bpf("muting the sensor", e))?;
    // What the kernel cannot test, the gate tests in user space: the kernel then admits every
    // file event (still flagging the marked ones).
    let mut filters = FilterLoader::default();
    filters.swap(&skel.maps, &settings.files)?;
    let mut blocking = BlockLoader::default();
    blocking.swap(&skel.maps, &settings.block)?;
    let gate = RefCell::new(Gate::new(settings.files.clone(), vec![std::process::id()]));
    let mut agent = AgentWatch::default();
    let mut links: Vec<Link> = Vec::new();
    let progs = &skel.progs;
    for (prog, at) in [
        (&progs.nightjar_exec, "tp_btf/sched_process_exec"),
        (&progs.nightjar_fork, "tp_btf/sched_process_fork"),
        (&progs.nightjar_exit, "tp_btf/sched_process_exit"),
    ] {
        links.push(
            prog.attach()
                .map_err(|e| bpf(&format!("attaching to {at}"), e))?,
        );
    }
    if settings.creds {
        for (prog, at) in [
            (&progs.nightjar_cred_enter, "tp_btf/sys_enter (credentials)"),
            (&progs.nightjar_cred_exit, "tp_btf/sys_exit (credentials)"),
        ] {
            links.push(
                prog.attach()
                    .map_err(|e| bpf(&format!("attaching to {at}"), e))?,
            );
        }
    }
    let attach_files = || -> Result<Vec<Link>, CaptureError> {
        let mut links = Vec::new();
        for (prog, at) in [
            (&progs.nightjar_sys_enter, "tp_btf/sys_enter"),
            (&progs.nightjar_sys_exit, "tp_btf/sys_exit"),
        ] {
            links.push(
                prog.attach()
                    .map_err(|e| bpf(&format!("attaching to {at}"), e))?,
            );
        }
        Ok(links)
    };
    let mut file_links = if files { Some(attach_files()?) } else { None };

    let clock = boot_clock();
    let snapshot = proc_list::snapshot(
        Path::new("/proc"),
        clock,
        &settings.env,
        &[std::process::id()],
        |ev| {
            publisher.publish(ev);
        },
    );
    publisher.flush();
    tracing::info!(
        processes = snapshot,
        files,
        creds = settings.creds,
        "eBPF probes attached; running processes published from /proc"
    );

    // The callback and the loop below both need the publisher; one thread uses it, so a
    // RefCell (a flag check, not a lock) lets them take turns.
    let publisher = RefCell::new(publisher);
    let mut scratch = SampleScratch::default();
    let bad_samples = Cell::new(0u64);
    let ctx = DecodeContext {
        clock,
        env: &settings.env,
    };
    let mut builder = RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, |data: &[u8]| {
            // Matched by reference: the event is published where it was decoded, not copied.
            match &mut sample::decode_sample(data, &mut scratch, ctx) {
                Ok(ev) => {
                    // The kernel already left out our own processes and, where it could,
                    // the paths no rule matches; the gate applies the rest of the filter.
                    if !matches!(ev, Event::File(_))
                        || gate.borrow_mut().judge_as(
                            ev,
                            sample::file_comm(data),
                            sample::file_marked(data),
                        ) == Verdict::Publish
                    {
                        publisher.borrow_mut().publish_event(ev);
                    }
                }
                Err(err) => {
                    if bad_samples.get() == 0 {
                        tracing::warn!("dropping a malformed BPF sample: {err}");
                    }
                    bad_samples.set(bad_samples.get() + 1);
                }
            }
            0
        })
        .map_err(|e| bpf("reading the BPF ring buffer", e))?;
    let ring = builder
        .build()
        .map_err(|e| bpf("reading the BPF ring buffer", e))?;

    let mut reported_drops = [0u64; KINDS.len()];
    let mut reported_filtered = [0u64; KINDS.len()];
    let mut reported_failed_open = 0u64;
    loop {
        match ring.poll(POLL_INTERVAL) {
            Ok(()) => {}
            // A signal interrupted the wait (e.g. a debugger attaching); wait again.
            Err(err) if err.kind() == libbpf_rs::ErrorKind::Interrupted => {}
            Err(err) => return Err(bpf("polling the BPF ring buffer", err)),
        }
        let change = agent.refresh();
        for pid in change.gone {
            // The entry may already be gone; either way the pid is no longer muted.
            let _ = skel.maps.muted.delete(&pid.to_ne_bytes());
        }
        for pid in change.found {
            match skel
                .maps
                .muted
                .update(&pid.to_ne_bytes(), &[1u8], MapFlags::ANY)
            {
                Ok(()) => tracing::info!(pid, "muted the agent"),
                Err(err) => tracing::warn!(pid, "cannot mute the agent: {err}"),
            }
        }
        let mut publisher = publisher.borrow_mut();
        for (i, (slot, kind)) in KINDS.iter().enumerate() {
            let drops = read_counter(&skel.maps.drops, *slot)?;
            publisher.report_loss(
                LossSource::BpfRingbuf,
                Some(*kind),
                drops.saturating_sub(reported_drops[i]),
            );
            reported_drops[i] = reported_drops[i].max(drops);
            let filtered = read_counter(&skel.maps.filtered, *slot)?;
            publisher.report_filtered(*kind, filtered.saturating_sub(reported_filtered[i]));
            reported_filtered[i] = reported_filtered[i].max(filtered);
        }
        for (kind, n) in gate.borrow_mut().take_filtered() {
            publisher.report_filtered(kind, n);
        }
        let failed = read_counter(&skel.maps.block_stats, BLOCK_STAT_FAILED_OPEN)?;
        publisher.report_block(failed.saturating_sub(reported_failed_open), 0);
        reported_failed_open = reported_failed_open.max(failed);
        publisher.flush();
        drop(publisher);
        if let Some(applied) = watch.as_deref_mut().and_then(PolicyWatch::poll_applied) {
            // A failed swap leaves the old set live (the new one was loaded into the idle
            // generation only); the next policy tries again.
            if let Err(err) = blocking.swap(&skel.maps, &applied.block) {
                tracing::error!("the new blocking set was not loaded, the old one stays: {err}");
            }
            if applied.files.is_none() {
                // Dropping the links detaches the file probes.
                if file_links.take().is_some() {
                    tracing::info!("no rule reads file events: the file probes are detached");
                }
            } else if file_links.is_none() {
                if !load_files {
                    tracing::warn!(
                        "the policy's rules read file events but the file probes are not loaded"
                    );
                } else {
                    match attach_files() {
                        Ok(l) => {
                            tracing::info!(
                                "the policy's rules read file events: file probes attached"
                            );
                            file_links = Some(l);
                        }
                        Err(err) => tracing::error!("{err}"),
                    }
                }
            }
            // A failed swap leaves the kernel admitting every file event (`all` stays set):
            // more than either filter, never less.
            match filters.swap(&skel.maps, &applied.files) {
                Ok(()) => gate.borrow_mut().set_files(applied.files),
                Err(err) => {
                    tracing::error!("the new file filter was not loaded: {err}");
                    gate.borrow_mut().set_files(PathFilter::all());
                }
            }
        }
    }
}

/// `block_stats` slot of the execs let through (fail open).
const BLOCK_STAT_FAILED_OPEN: u32 = 1;

/// `BK_GEN_SHIFT` in `src/bpf/events.h`: a key's generation, in its `kind`.
const BK_GEN_SHIFT: u32 = 8;

/// The blocking set in the kernel, double-buffered (see `src/bpf/events.h`): a new set is
/// loaded whole into the idle generation, then `block_live`'s epoch is bumped to make it
/// live in one write. An exec checked across the bump is let through (fail open), so none is
/// judged half by the old set and half by the new.
#[derive(Default)]
struct BlockLoader {
    /// The live epoch; its low bit is the live generation (0 at load: nothing live yet).
    epoch: u32,
    /// The keys each generation holds in `block_keys` and `block_exes`.
    keys: [Vec<Vec<u8>>; 2],
    exes: [Vec<Vec<u8>>; 2],
}

impl BlockLoader {
    fn swap(&mut self, maps: &skel::ProbesMaps<'_>, block: &Blocking) -> Result<(), CaptureError> {
        let err = |what: &str, e: libbpf_rs::Error| CaptureError::Ebpf(format!("{what}: {e}"));
        let (plan, left_out) = block.kernel_plan();
        for why in &left_out {
            tracing::warn!("{why}");
        }
        let m = kernel_maps(&plan);
        let next = self.epoch.wrapping_add(1);
        let g = (next & 1) as usize;
        // The idle generation's keys are the set before the live one: nothing reads them.
        for k in self.keys[g].drain(..) {
            let _ = maps.block_keys.delete(&k);
        }
        for k in self.exes[g].drain(..) {
            let _ = maps.block_exes.delete(&k);
        }
        let tag = |k: &[u8]| {
            let mut k = k.to_vec();
            let kind = u32::from_ne_bytes([k[0], k[1], k[2], k[3]]) | (g as u32) << BK_GEN_SHIFT;
            k[..4].copy_from_slice(&kind.to_ne_bytes());
            k
        };
        for (k, v) in &m.keys {
            let k = tag(k);
            maps.block_keys
                .update(&k, v, MapFlags::ANY)
                .map_err(|e| err("loading a blocking rule", e))?;
            self.keys[g].push(k);
        }
        for (k, v) in &m.exes {
            let k = tag(k);
            maps.block_exes
                .update(&k, v, MapFlags::ANY)
                .map_err(|e| err("loading a blocking rule", e))?;
            self.exes[g].push(k);
        }
        maps.block_conf
            .update(&(g as u32).to_ne_bytes(), &m.conf, MapFlags::ANY)
            .map_err(|e| err("loading the blocking rules", e))?;
        maps.block_live
            .update(&0u32.to_ne_bytes(), &next.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| err("making the blocking rules live", e))?;
        self.epoch = next;
        if !plan.is_empty() || next > 1 {
            tracing::info!(
                blockers = plan.len(),
                epoch = next,
                "blocking rules loaded into the exec probe"
            );
        }
        Ok(())
    }
}

/// One of the probes' per-kind counters, since load.
fn read_counter(map: &impl MapCore, slot: u32) -> Result<u64, CaptureError> {
    let value = map
        .lookup(&slot.to_ne_bytes(), MapFlags::ANY)
        .map_err(|e| CaptureError::Ebpf(format!("reading a counter: {e}")))?;
    Ok(value
        .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
        .map_or(0, u64::from_ne_bytes))
}
