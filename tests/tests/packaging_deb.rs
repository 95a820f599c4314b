//! Inspects a built .deb (the file named by `$NIGHTJAR_DEB`, e.g. from `scripts/build-deb`):
//! both daemons, both units identical to the repository's, the default config as a conffile,
//! and the maintainer scripts.

mod packaging_common;

use std::path::PathBuf;
use std::process::Command;

use packaging_common::repo_root;

/// The package under test; `None` when `$NIGHTJAR_DEB` is unset (building one is the job of
/// `scripts/build-deb`, which CI runs before setting the variable).
fn deb() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("NIGHTJAR_DEB") else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true" && v != "1"),
            "CI must build the package (scripts/test runs scripts/build-deb and sets NIGHTJAR_DEB)"
        );
        eprintln!("NIGHTJAR_DEB is not set: no package to inspect");
        return None;
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "NIGHTJAR_DEB={} is not a file",
        path.display()
    );
    Some(path)
}

fn dpkg_deb(args: &[&str], deb: &PathBuf) -> String {
    let out = Command::new("dpkg-deb")
        .args(args)
        .arg(deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn package_contains_binaries_units_and_config() {
    let Some(deb) = deb() else { return };
    let listing = dpkg_deb(&["-c"], &deb);
    // `dpkg-deb -c` lines: mode owner size date time path
    let entries: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let mode = f.next()?;
            Some((mode, f.nth(4)?))
        })
        .collect();
    let mode_of = |path: &str| {
        entries
            .iter()
            .find(|(_, p)| *p == path)
            .map(|(m, _)| *m)
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"))
    };
    assert_eq!(mode_of("./usr/bin/nightjar-agent"), "-rwxr-xr-x");
    assert_eq!(mode_of("./usr/bin/nightjar-sensor"), "-rwxr-xr-x");
    assert_eq!(
        mode_of("./lib/systemd/system/nightjar-agent.service"),
        "-rw-r--r--"
    );
    assert_eq!(
        mode_of("./lib/systemd/system/nightjar-sensor.service"),
        "-rw-r--r--"
    );
    assert_eq!(mode_of("./etc/nightjar/nightjar.toml"), "-rw-r--r--");
    mode_of("./usr/share/nightjar/rules/kcc-linux.toml");
}

#[test]
fn package_files_match_the_repository() {
    let Some(deb) = deb() else { return };
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let repo = repo_root();
    for (packaged, source) in [
        (
            "lib/systemd/system/nightjar-agent.service",
            "packaging/linux/nightjar-agent.service",
        ),
        (
            "lib/systemd/system/nightjar-sensor.service",
            "packaging/linux/nightjar-sensor.service",
        ),
        (
            "etc/nightjar/nightjar.toml",
            "packaging/linux/nightjar.toml",
        ),
    ] {
        assert_eq!(
            std::fs::read(dir.path().join(packaged)).unwrap(),
            std::fs::read(repo.join(source)).unwrap(),
            "{packaged} differs from {source}"
        );
    }
    // The binaries are real executables for this machine.
    for bin in ["nightjar-agent", "nightjar-sensor"] {
        let out = Command::new(dir.path().join("usr/bin").join(bin))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin} --help failed");
    }
}

#[test]
fn package_declares_conffile_and_maintainer_scripts() {
    let Some(deb) = deb() else { return };
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let conffiles = std::fs::read_to_string(dir.path().join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/nightjar/nightjar.toml"),
        "{conffiles}"
    );
    let repo = repo_root();
    for script in ["postinst", "prerm", "postrm"] {
        assert_eq!(
            std::fs::read(dir.path().join(script)).unwrap(),
            std::fs::read(repo.join("packaging/linux/debian").join(script)).unwrap(),
            "{script}"
        );
    }
    let control = dpkg_deb(&["-f"], &deb);
    assert!(control.contains("Package: nightjar\n"), "{control}");
    assert!(control.contains("systemd"), "{control}");
}
