//! `RuleSet::evaluate` allocates nothing per event: a counting global allocator watches every
//! supported macOS rule (KQL and EQL, command lines, regexes, user names, parents) run over a
//! varied stream once warmed up.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nightjar_proto::{Args, ExecEvent, Target};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use support::Table;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn exec(pid: u32, ppid: u32, exe: &'static str, args: &[&str], euid: u32) -> ExecEvent<'static> {
    ExecEvent {
        target: Target {
            pid,
            ppid: Some(ppid),
            euid: Some(euid),
            executable: Cow::Borrowed(exe),
            args: Args::from_strs(args).0,
            cs_flags: Some(if pid.is_multiple_of(2) {
                0x2000_0001
            } else {
                0
            }),
            ..Target::default()
        },
        responsible_pid: Some(ppid),
        ..ExecEvent::default()
    }
}

#[test]
fn evaluate_allocates_nothing() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/elastic-rules");
    let (set, _) = RuleSet::load(
        &[
            shared.join("macos-kuery-c58d59ee"),
            shared.join("macos-head-14cf530f"),
        ],
        true,
        None,
    )
    .unwrap();
    let host = HostInfo::new("mac-1", "host-1");
    let mut table = Table::default();
    let events = vec![
        exec(10, 1, "/bin/zsh", &["-zsh"], 501),
        exec(
            11,
            10,
            "/usr/bin/curl",
            &["curl", "-o", "x", "http://10.1.2.3:80/p"],
            501,
        ),
        exec(
            12,
            10,
            "/usr/bin/osascript",
            &["osascript", "-e", "display dialog \"password\""],
            501,
        ),
        exec(13, 10, "/usr/bin/kcc", &["kcc", "copy_cred_cache"], 0),
        exec(
            14,
            1,
            "/usr/bin/com.adobe.ARMDC.SMJobBlessHelper",
            &["x"],
            0,
        ),
        exec(
            15,
            14,
            "/bin/sh",
            &["sh", "-c", "csrutil status | grep enabled"],
            0,
        ),
        exec(
            16,
            10,
            "/usr/bin/security",
            &["security", "find-generic-password", "-wa", "Chrome"],
            501,
        ),
        exec(
            17,
            10,
            "/usr/sbin/networksetup",
            &["networksetup", "-setwebproxy", "Wi-Fi"],
            501,
        ),
    ];
    for ev in &events {
        table.observe(ev);
    }
    let mut out = Vec::with_capacity(set.rules().len());
    let mut hits = 0;
    // Warm up: user-name cache, regex caches, the command-line scratch buffer.
    for ev in &events {
        set.evaluate(&EcsEvent::new(ev, &table, &host), &mut out);
    }
    COUNTING.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        for ev in &events {
            set.evaluate(&EcsEvent::new(ev, &table, &host), &mut out);
            hits += out.len();
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    assert!(hits > 0, "the stream should hit some rules");
    assert_eq!(ALLOCS.load(Ordering::SeqCst), 0);
}
