//! Helpers shared by the packaging tests: the repository root, file discovery, CI detection.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;

pub use nightjar_tests::harness::{in_ci, workspace_root as repo_root};

/// Whether `tool` can be run; when it cannot, fails under CI and otherwise tells why the test
/// does nothing.
pub fn tool_available(tool: &str, probe_arg: &str) -> bool {
    let ok = Command::new(tool)
        .arg(probe_arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !in_ci(),
            "{tool} is required when CI=true but cannot be run"
        );
        eprintln!("{tool} not found: check not run (it is mandatory when CI=true)");
    }
    ok
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Files under `dir` whose name ends with one of `extensions` (without the dot).
pub fn files_with_extension(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect()
}
