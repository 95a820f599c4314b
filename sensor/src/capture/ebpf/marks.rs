//! Marks for the processes that were running before the rules were loaded.
//!
//! The probes mark a process when it execs ([`ProcessMarks`]); one that exec'd before the
//! rules were loaded (before the sensor started, or before a new policy) was never judged.
//! A rule stage that reads `process.executable` or `process.name` at a file event still
//! matches it, so it is marked here from `/proc` by the same test the probes run
//! ([`ProcessMarks::bits_at_exec`]), into `proc_marks_snap` (the probes' own map stays
//! theirs: user space never overwrites a bit they set). The new marks are live in the kernel
//! before `/proc` is read, so a process that execs meanwhile is judged by one or the other.

use std::path::Path;

use libbpf_rs::{MapCore, MapFlags};
use nightjar_proto::event::basename;
use nightjar_proto::filter::ProcessMarks;

/// Marks every process under `proc` that `marks` marks; returns how many. A process that
/// exits while it is read is skipped.
pub fn mark_running(proc: &Path, marks: &ProcessMarks, map: &impl MapCore) -> usize {
    let Ok(dir) = std::fs::read_dir(proc) else {
        return 0;
    };
    let mut marked = 0;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(bits) = bits_of(proc, pid, marks) else {
            continue;
        };
        if bits == 0 {
            continue;
        }
        let key = pid.to_ne_bytes();
        let old = map
            .lookup(&key, MapFlags::ANY)
            .ok()
            .flatten()
            .and_then(|v| v.get(..4).and_then(|b| b.try_into().ok()))
            .map_or(0, u32::from_ne_bytes);
        let value = old | u32::from(bits);
        if map
            .update(&key, &value.to_ne_bytes(), MapFlags::ANY)
            .is_ok()
        {
            marked += 1;
        }
    }
    marked
}

/// The bits process `pid` gets, from its executable and its parent's; `None` for a kernel
/// thread or a process gone.
fn bits_of(proc: &Path, pid: u32, marks: &ProcessMarks) -> Option<u8> {
    let exe = executable(proc, pid)?;
    let ppid = parent_pid(proc, pid);
    let parent = ppid.and_then(|pp| executable(proc, pp));
    Some(marks.bits_at_exec(&exe, parent.as_deref().map(basename)))
}

/// The canonical path of `pid`'s image, as the probes read it (without the ` (deleted)` that
/// `/proc` adds for an unlinked one).
fn executable(proc: &Path, pid: u32) -> Option<String> {
    let link = std::fs::read_link(proc.join(pid.to_string()).join("exe")).ok()?;
    let s = link.to_string_lossy();
    Some(s.strip_suffix(" (deleted)").unwrap_or(&s).to_owned())
}

/// The parent pid, from `/proc/PID/stat` (the field after the command's closing paren).
fn parent_pid(proc: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_parent() {
        let me = std::process::id();
        let proc = Path::new("/proc");
        let exe = executable(proc, me).expect("our own image");
        assert!(exe.starts_with('/'), "{exe}");
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() } as u32;
        assert_eq!(parent_pid(proc, me), Some(ppid));
        let mut marks = ProcessMarks::default();
        marks.add_name(basename(&exe), 1);
        assert_eq!(bits_of(proc, me, &marks), Some(1));
        assert_eq!(bits_of(proc, me, &ProcessMarks::default()), Some(0));
    }
}
