//! Every shell script the project ships (packaging/ and scripts/) is executable, parses, and is
//! clean under shellcheck.

mod packaging_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use packaging_common::{files_under, repo_root, tool_available};

/// Files whose first line is a `sh` or `bash` shebang.
fn shell_scripts() -> Vec<PathBuf> {
    let root = repo_root();
    let mut scripts: Vec<PathBuf> = ["packaging", "scripts"]
        .iter()
        .flat_map(|d| files_under(&root.join(d)))
        .filter(|p| shell_of(p).is_some())
        .collect();
    scripts.sort();
    scripts
}

fn shell_of(path: &Path) -> Option<&'static str> {
    let text = std::fs::read(path).ok()?;
    let first = text.split(|&b| b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?;
    if !first.starts_with("#!") {
        return None;
    }
    if first.contains("bash") {
        Some("bash")
    } else if first.ends_with("/sh") || first.ends_with(" sh") {
        Some("sh")
    } else {
        None
    }
}

#[test]
fn the_expected_scripts_are_found() {
    let root = repo_root();
    let found = shell_scripts();
    for expected in [
        "scripts/live",
        "scripts/build-deb",
        "scripts/bench",
        "packaging/macos/build-pkg.sh",
        "packaging/macos/fill-profiles.sh",
        "packaging/macos/uninstall.sh",
        "packaging/macos/scripts/preinstall",
        "packaging/macos/scripts/postinstall",
        "packaging/linux/debian/postinst",
        "packaging/linux/debian/prerm",
        "packaging/linux/debian/postrm",
        "packaging/server/debian/postinst",
        "packaging/server/debian/prerm",
        "packaging/server/debian/postrm",
    ] {
        assert!(
            found.contains(&root.join(expected)),
            "{expected} not found as a shell script"
        );
    }
}

#[test]
fn scripts_are_executable() {
    for script in shell_scripts() {
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o111,
            0o111,
            "{} is not executable",
            script.display()
        );
    }
}

#[test]
fn scripts_parse() {
    for script in shell_scripts() {
        let shell = shell_of(&script).unwrap();
        let out = Command::new(shell).arg("-n").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "{shell} -n {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn scripts_pass_shellcheck() {
    if !tool_available("shellcheck", "--version") {
        return;
    }
    let scripts = shell_scripts();
    // Every severity counts (SC2086 unquoted expansions are "info"), except SC2012: listing a
    // directory of our own file names with ls is fine.
    let out = Command::new("shellcheck")
        .args(["--severity=style", "--exclude=SC2012"])
        .args(&scripts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "shellcheck:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
