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
}

/// `struct file_patterns` (src/bpf/events.h) for `filter`'s texts, process name prefixes and
/// whether it has components; within the limits `kernel_can_filter` checked.
fn file_patterns(filter: &PathFilter) -> Vec<u8> {
    const TEXTS: usize = 4;
    const PREFIXES: usize = 8;
    const TEXT: usize = 16;
    let mut out = Vec::with_capacity(16 + 4 * (TEXTS + PREFIXES) + TEXT * (TEXTS + PREFIXES));
    let contains: Vec<&String> = filter.contains().iter().take(TEXTS).collect();
    let prefixes: Vec<&String> = filter.process_prefixes().iter().take(PREFIXES).collect();
    for v in [
        u32::from(!filter.components().is_empty()),
        contains.len() as u32,
        prefixes.len() as u32,
        0,
    ] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    for i in 0..TEXTS {
        let n = contains.get(i).map_or(0, |c| c.len().min(TEXT));
        out.extend_from_slice(&(n as u32).to_ne_bytes());
    }
    for i in 0..PREFIXES {
        let n = prefixes.get(i).map_or(0, |p| p.len().min(TEXT - 1));
        out.extend_from_slice(&(n as u32).to_ne_bytes());
    }
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
    out
}

/// Fills the kernel's filter maps from `filter` (whose entries are lowercase and at most
/// 255 bytes, see [`nightjar_proto::filter`]).
fn load_filter(maps: &skel::ProbesMaps<'_>, filter: &PathFilter) -> Result<(), CaptureError> {
    let err = |what: &str, e: libbpf_rs::Error| CaptureError::Ebpf(format!("{what}: {e}"));
    for prefix in filter.prefixes() {
        let data = key::<NAME_CAP>(prefix);
        let bits = (prefix.len().min(NAME_CAP - 1) * 8) as u32;
        let mut k = Vec::with_capacity(4 + NAME_CAP);
        k.extend_from_slice(&bits.to_ne_bytes());
        k.extend_from_slice(&data);
        maps.prefixes
            .update(&k, &[1u8], MapFlags::ANY)
            .map_err(|e| err("loading a path prefix", e))?;
    }
    for name in filter.names() {
        maps.names
            .update(&key::<NAME_CAP>(name), &[1u8], MapFlags::ANY)
            .map_err(|e| err("loading a file name", e))?;
    }
    for ext in filter.extensions() {
        // Longer extensions are admitted by the probe itself (it never misses them).
        if ext.len() < COMM_CAP {
            maps.extensions
                .update(&key::<COMM_CAP>(ext), &[1u8], MapFlags::ANY)
                .map_err(|e| err("loading a file extension", e))?;
        }
    }
    for comm in filter.processes() {
        // The kernel keeps 15 bytes of a process name: a longer name matches by its start.
        maps.comms
            .update(&key::<COMM_CAP>(comm), &[1u8], MapFlags::ANY)
            .map_err(|e| err("loading a process name", e))?;
    }
    for component in filter.components() {
        maps.components
            .update(&key::<COMM_CAP>(component), &[1u8], MapFlags::ANY)
            .map_err(|e| err("loading a path component", e))?;
    }
    if has_patterns(filter) {
        maps.patterns
            .update(&0u32.to_ne_bytes(), &file_patterns(filter), MapFlags::ANY)
            .map_err(|e| err("loading the path texts and process name prefixes", e))?;
    }
    Ok(())
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
    let files = !settings.files.is_none();

    let mut object = MaybeUninit::uninit();
    let mut open = ProbesSkelBuilder::default()
        .open(&mut object)
        .map_err(|e| bpf("opening the probes", e))?;
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.env_cap = if settings.env.is_empty() { 0 } else { ENV_CAP };
        // What the kernel cannot test (components, text inside a path, process name
        // patterns), the gate tests in user space: the kernel then admits every file event.
        rodata.files_all = u32::from(!settings.files.kernel_can_filter());
        rodata.file_patterns_on = u32::from(has_patterns(&settings.files));
    }
    for prog in [
        &mut open.progs.nightjar_sys_enter,
        &mut open.progs.nightjar_sys_exit,
    ] {
        prog.set_autoload(files);
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
    if files && settings.files.kernel_can_filter() {
        load_filter(&skel.maps, &settings.files)?;
    }
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
    if files {
        for (prog, at) in [
            (&progs.nightjar_sys_enter, "tp_btf/sys_enter"),
            (&progs.nightjar_sys_exit, "tp_btf/sys_exit"),
        ] {
            links.push(
                prog.attach()
                    .map_err(|e| bpf(&format!("attaching to {at}"), e))?,
            );
        }
    }

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
            match sample::decode_sample(data, &mut scratch, ctx) {
                Ok(ev) => {
                    // The kernel already left out our own processes and, where it could,
                    // the paths no rule matches; the gate applies the rest of the filter.
                    if !matches!(ev, Event::File(_))
                        || gate.borrow_mut().judge_as(&ev, sample::file_comm(data))
                            == Verdict::Publish
                    {
                        publisher.borrow_mut().publish(ev);
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
        if let Some(block) = watch.as_deref_mut().and_then(PolicyWatch::poll) {
            // A failed swap leaves the old set live (the new one was loaded into the idle
            // generation only); the next policy tries again.
            if let Err(err) = blocking.swap(&skel.maps, &block) {
                tracing::error!("the new blocking set was not loaded, the old one stays: {err}");
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
