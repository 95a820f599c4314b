//! The sensor's hot path allocates nothing per event once warmed up: BPF samples of every
//! kind (typical and cut argv, invalid UTF-8, configured environment variables, file events
//! the gate admits and filters) decoded, judged, published into a real ring and read back by
//! its consumer and the codec, under a counting global allocator.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use nightjar_proto::codec;
use nightjar_proto::event::EnvFilter;
use nightjar_proto::filter::PathFilter;
use nightjar_proto::shm_ring::{Consumer, Producer};
use nightjar_sensor::capture::ebpf::sample::{
    BootClock, DecodeContext, ExecSample, F_ARGS_TRUNCATED, F_CWD, F_EXE_RESOLVED, KIND_EXIT,
    KIND_FORK, SampleScratch, decode_sample, encode_cred_sample, encode_exec_sample,
    encode_file_sample, encode_lifecycle_sample, file_comm, file_marked,
};
use nightjar_sensor::gate::{Gate, Verdict};
use nightjar_sensor::publish::Publisher;

struct Counting;

thread_local! {
    /// Counted only on the thread under test: the test harness's own threads allocate.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: the thread-locals may be gone while a thread exits.
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = ALLOCS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Samples of every kind the probes write, `i` varying pids, paths and arguments.
fn samples(i: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let argv = format!("/usr/local/bin/kcc\0copy_cred_cache\0--cache\0/tmp/krb5cc_{i}\0");
    let kcc = ExecSample {
        time_boot_ns: 1_000_000 + u64::from(i),
        start_boot_ns: 500_000 + u64::from(i),
        pid: 10_000 + i,
        ppid: 1234,
        ids: [501, 501, 20, 20],
        auid: 501,
        audit_session: 7,
        sid: 1234,
        pgid: 10_000 + i,
        argc: 4,
        flags: F_EXE_RESOLVED | F_CWD,
        exe: b"/usr/local/bin/kcc",
        cwd: b"/home/bob",
        head: argv.as_bytes(),
        env: b"PATH=/bin\0LD_PRELOAD=/tmp/x.so\0HOME=/home/bob\0",
        tty: b"pts/1",
        cgroup: b"session-3.scope",
        ..ExecSample::default()
    };
    let mut s = Vec::new();
    encode_exec_sample(&mut s, &kcc);
    out.push(s);
    // Invalid UTF-8 in the executable, an argument and the working directory.
    let mut s = Vec::new();
    encode_exec_sample(
        &mut s,
        &ExecSample {
            exe: b"/tmp/\xffx",
            cwd: b"/home/\xfe",
            head: b"x\xff\0-c\0",
            argc: 2,
            ..kcc.clone()
        },
    );
    out.push(s);
    // An argv longer than the probe reads: head, tail and the true count.
    let mut head = b"kcc\0".to_vec();
    while head.len() < 12_000 {
        head.extend_from_slice(format!("--cache={i}\0").as_bytes());
    }
    let tail = b"=x\0--cache=x\0copy_cred_cache\0";
    let mut s = Vec::new();
    encode_exec_sample(
        &mut s,
        &ExecSample {
            head: &head,
            tail,
            argc: 5000,
            flags: F_ARGS_TRUNCATED | F_EXE_RESOLVED,
            ..kcc.clone()
        },
    );
    out.push(s);
    // More arguments than the model keeps, all read: cut by the builder.
    let many = "a\0".repeat(1500);
    let mut s = Vec::new();
    encode_exec_sample(
        &mut s,
        &ExecSample {
            head: many.as_bytes(),
            argc: 1500,
            ..kcc.clone()
        },
    );
    out.push(s);
    for (action, path, original) in [
        (1, format!("/home/bob/.config/autostart/x{i}.desktop"), ""),
        (3, format!("/etc/cron.d/job{i}"), "/tmp/job"),
        (1, format!("/home/bob/build/unit{i}.o"), ""),
    ] {
        let mut s = Vec::new();
        encode_file_sample(
            &mut s,
            2_000 + u64::from(i),
            20_000 + i,
            action,
            0,
            path.as_bytes(),
            original.as_bytes(),
        );
        out.push(s);
    }
    let mut s = Vec::new();
    encode_lifecycle_sample(&mut s, KIND_FORK, 10_000 + i, 10_001 + i);
    out.push(s);
    let mut s = Vec::new();
    encode_lifecycle_sample(&mut s, KIND_EXIT, 10_000 + i, 9 << 8);
    out.push(s);
    let mut s = Vec::new();
    encode_cred_sample(&mut s, 10_000 + i, 1, [1000; 6], [0; 6], 10_000 + i);
    out.push(s);
    out
}

#[test]
fn decode_judge_publish_and_read_back_allocate_nothing_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alloc.ring");
    let capacity = 4 * 1024 * 1024;
    let mut publisher = Publisher::new(Producer::open(&path, capacity).unwrap());
    let mut consumer = Consumer::open(&path, capacity).unwrap();
    let mut files = PathFilter::none();
    files.add_prefix("/home/bob/.config/autostart/");
    files.add_prefix("/etc/cron.d/");
    let mut gate = Gate::new(files, vec![1]);
    let env = EnvFilter::new(["LD_PRELOAD"]);
    let ctx = DecodeContext {
        clock: BootClock {
            offset_ns: 1,
            boot_unix_ns: 0,
            tick_ns: 10_000_000,
        },
        env: &env,
    };
    let mut scratch = SampleScratch::default();
    let rounds: Vec<Vec<Vec<u8>>> = (0..64).map(samples).collect();
    let mut run = |rounds: &[Vec<Vec<u8>>]| {
        let (mut published, mut read, mut filtered) = (0u64, 0u64, 0u64);
        for round in rounds {
            for s in round {
                let mut ev = decode_sample(s, &mut scratch, ctx).unwrap();
                let verdict = match ev {
                    nightjar_proto::event::Event::File(_) => {
                        gate.judge_as(&ev, file_comm(s), file_marked(s))
                    }
                    _ => Verdict::Publish,
                };
                if verdict == Verdict::Publish {
                    assert!(
                        publisher.publish_event(&mut ev),
                        "the ring is drained: never full"
                    );
                    published += 1;
                } else {
                    filtered += 1;
                }
            }
            publisher.flush();
            let mut end = None;
            while let Some(entry) = consumer.next().unwrap() {
                end = Some(entry.end);
                codec::decode(entry.bytes).unwrap();
                read += 1;
            }
            if let Some(end) = end {
                consumer.commit(end);
            }
        }
        (published, read, filtered)
    };
    // Warm-up: every scratch buffer grows to what these samples need.
    run(&rounds);
    ALLOCS.with(|n| n.set(0));
    COUNTING.with(|on| on.set(true));
    let mut totals = (0, 0, 0);
    for _ in 0..20 {
        let (p, r, f) = run(&rounds);
        totals = (totals.0 + p, totals.1 + r, totals.2 + f);
    }
    COUNTING.with(|on| on.set(false));
    let allocs = ALLOCS.with(Cell::get);
    let (published, read, filtered) = totals;
    assert_eq!(published, read, "every published record read back");
    assert!(published > 10_000 && filtered > 1_000, "{totals:?}");
    assert_eq!(
        allocs, 0,
        "{allocs} allocations over {published} events published and {filtered} filtered"
    );
}
