//! A build's file activity at the rate of a large build: what `scripts/bench sensor` and
//! `scripts/bench e2e` put the live sensor under (`make -j4` of a small project makes only a
//! few hundred file events a second; a large build makes tens of thousands).
//!
//! Each step of a worker does what a compiler and a linker do for one translation unit, in a
//! build tree: the compiler's temporary assembly file is created, written and closed, the
//! object file is written under a temporary name and renamed into place (an atomic rename),
//! the temporary file is deleted, and the object of an older step is deleted (a rebuild
//! replacing it). Every step is [`EVENTS_PER_STEP`] file events as the Linux probes see them:
//! two creations, two modifications (the first write to each file), one rename and two
//! deletions (the first steps delete no old object: see [`events_of`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::bin;

/// File events of one step, its object's deletion included.
pub const EVENTS_PER_STEP: u64 = 7;
/// Objects kept before the oldest is deleted.
const KEEP: u64 = 64;
/// Bytes written to each file.
const FILE_BYTES: usize = 2048;

/// The file events `steps` steps of one worker make.
pub fn events_of(steps: u64) -> u64 {
    steps * EVENTS_PER_STEP
}

/// Runs `steps` steps in `dir` (created, and left empty); returns the file events made.
pub fn work(dir: &Path, steps: u64) -> std::io::Result<u64> {
    let tmp = dir.join("tmp");
    let obj = dir.join("obj");
    std::fs::create_dir_all(&tmp)?;
    std::fs::create_dir_all(&obj)?;
    let data = vec![b'x'; FILE_BYTES];
    let write = |path: &Path| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.write_all(&data)
    };
    let object = |i: u64| obj.join(format!("unit{i}.o"));
    for i in 0..steps {
        let asm = tmp.join(format!("cc{i}.s"));
        write(&asm)?;
        let partial = obj.join(format!("unit{i}.o.tmp"));
        write(&partial)?;
        std::fs::rename(&partial, object(i))?;
        std::fs::remove_file(&asm)?;
        if i >= KEEP {
            std::fs::remove_file(object(i - KEEP))?;
        }
    }
    for i in steps.saturating_sub(KEEP)..steps {
        std::fs::remove_file(object(i))?;
    }
    Ok(events_of(steps))
}

/// What one load run gave.
#[derive(Debug, Clone, Copy)]
pub struct LoadRun {
    /// File events the workers made under the tree.
    pub events: u64,
    pub secs: f64,
}

impl LoadRun {
    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.secs.max(1e-9)
    }
}

/// Runs `workers` worker processes (`nightjar-build-load`) of `steps` steps each under
/// `root` (one directory each), and waits for them.
pub fn run(root: &Path, workers: u32, steps: u64) -> Result<LoadRun, String> {
    let t0 = Instant::now();
    let mut children: Vec<(PathBuf, Child)> = Vec::new();
    for w in 0..workers {
        let dir = root.join(format!("w{w}"));
        let child = Command::new(bin("nightjar-build-load"))
            .arg(&dir)
            .arg(steps.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("nightjar-build-load: {e}"))?;
        children.push((dir, child));
    }
    let mut failed = None;
    for (dir, mut child) in children {
        match child.wait() {
            Ok(s) if s.success() => {}
            Ok(s) => failed = Some(format!("worker in {}: {s}", dir.display())),
            Err(e) => failed = Some(format!("worker in {}: {e}", dir.display())),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    if let Some(f) = failed {
        return Err(f);
    }
    Ok(LoadRun {
        events: u64::from(workers) * events_of(steps),
        secs: secs.max(Duration::from_micros(1).as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_leaves_an_empty_tree_and_counts_its_events() {
        let dir = tempfile::tempdir().unwrap();
        let n = work(dir.path(), 100).unwrap();
        assert_eq!(n, 700);
        for sub in ["tmp", "obj"] {
            let left = std::fs::read_dir(dir.path().join(sub)).unwrap().count();
            assert_eq!(left, 0, "{sub}");
        }
    }
}
