//! Linux capture: the eBPF probe at `tp_btf/sched_process_exec` (see `src/bpf/exec.bpf.c`).
//!
//! The probe writes one variable-size sample per exec into a BPF ring buffer; this side polls
//! it, decodes each sample in place ([`sample::decode_sample`]) and publishes it. Drops inside
//! the kernel (BPF ring buffer full) are counted by the probe and reported as
//! [`LossSource::BpfRingbuf`] loss after every poll.

mod agent;
pub mod sample;
mod skel;

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::mem::MaybeUninit;
use std::time::Duration;

use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, RingBufferBuilder};
use nightjar_proto::LossSource;
use nightjar_proto::event::EventKind;

use crate::capture::CaptureError;
use crate::publish::Publisher;
use agent::AgentWatch;
use sample::{BootClock, SampleScratch};
use skel::ExecSkelBuilder;

/// How long one poll of the BPF ring buffer waits for data before checking the stop flag and
/// the drop counter: an idle sensor wakes this often and no more (a flush that publishes
/// nothing new wakes nobody else), so idle costs half a wake-up a second (`scripts/bench
/// idle`). Events are handled as they come, whatever this says.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Refuses to go on without the capabilities that loading and attaching the probe need:
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

/// The Unix-minus-boot clock offset, read now.
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
    BootClock {
        offset_ns: if ok { ns(real) - ns(boot) } else { 0 },
    }
}

/// Loads and attaches the probe, then publishes every exec; returns only on failure.
/// The sensor's own execs and the agent's (found in /proc, see [`agent`]) are not reported.
pub fn run(publisher: &mut Publisher) -> Result<Infallible, CaptureError> {
    check_privileges()?;
    let bpf = |what: &str, err: libbpf_rs::Error| CaptureError::Ebpf(format!("{what}: {err}"));

    let mut object = MaybeUninit::uninit();
    let open = ExecSkelBuilder::default()
        .open(&mut object)
        .map_err(|e| bpf("opening the exec probe", e))?;
    let mut skel = open
        .load()
        .map_err(|e| bpf("loading the exec probe (verifier or BTF)", e))?;
    skel.maps
        .muted
        .update(&std::process::id().to_ne_bytes(), &[1u8], MapFlags::ANY)
        .map_err(|e| bpf("muting the sensor", e))?;
    let mut agent = AgentWatch::default();
    skel.attach()
        .map_err(|e| bpf("attaching to tp_btf/sched_process_exec", e))?;

    let clock = boot_clock();
    // The callback and the loop below both need the publisher; one thread uses it, so a
    // RefCell (a flag check, not a lock) lets them take turns.
    let publisher = RefCell::new(publisher);
    let mut scratch = SampleScratch::default();
    let bad_samples = Cell::new(0u64);
    let mut builder = RingBufferBuilder::new();
    builder
        .add(&skel.maps.events, |data: &[u8]| {
            match sample::decode_sample(data, &mut scratch, clock) {
                Ok(ev) => {
                    publisher.borrow_mut().publish(ev);
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

    tracing::info!("eBPF exec probe attached");
    let mut reported_drops = 0u64;
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
        let drops = read_drops(&skel.maps.drops)?;
        let mut publisher = publisher.borrow_mut();
        publisher.report_loss(
            LossSource::BpfRingbuf,
            Some(EventKind::Exec),
            drops.saturating_sub(reported_drops),
        );
        reported_drops = reported_drops.max(drops);
        publisher.flush();
    }
}

/// The probe's count of samples the BPF ring buffer had no room for, since load.
fn read_drops(map: &impl MapCore) -> Result<u64, CaptureError> {
    let value = map
        .lookup(&0u32.to_ne_bytes(), MapFlags::ANY)
        .map_err(|e| CaptureError::Ebpf(format!("reading the drop counter: {e}")))?;
    Ok(value
        .and_then(|v| v.get(..8).and_then(|b| b.try_into().ok()))
        .map_or(0, u64::from_ne_bytes))
}
