//! The server's packaging: the default config is one the server accepts, the systemd unit
//! runs it unprivileged and sandboxed, and the built .deb (`$NIGHTJAR_SERVER_DEB`, from
//! `scripts/build-deb --server`) carries the binary, the unit and the config as a conffile.

mod packaging_common;

use std::path::PathBuf;
use std::process::Command;

use packaging_common::repo_root;

fn server_dir() -> PathBuf {
    repo_root().join("packaging/server")
}

#[test]
fn the_default_config_is_accepted_by_the_server() {
    let path = server_dir().join("server.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = nightjar_server::config::Config::parse(&path, &text).expect("default config");
    assert_eq!(config.listen.port(), 8443);
    assert!(matches!(
        config.transport,
        nightjar_server::config::Transport::Tls { .. }
    ));
}

#[test]
fn the_unit_runs_the_server_unprivileged_and_sandboxed() {
    let unit = std::fs::read_to_string(server_dir().join("nightjar-server.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/nightjar-server run --config /etc/nightjar-server/server.toml",
        "User=nightjar-server",
        "StateDirectory=nightjar-server",
        "StateDirectoryMode=0700",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
}

fn deb() -> Option<PathBuf> {
    let Some(path) = std::env::var_os("NIGHTJAR_SERVER_DEB") else {
        assert!(
            !packaging_common::in_ci(),
            "CI must build the server package (scripts/test sets NIGHTJAR_SERVER_DEB)"
        );
        eprintln!("NIGHTJAR_SERVER_DEB is not set: no package to inspect");
        return None;
    };
    Some(PathBuf::from(path))
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
fn the_package_carries_binary_unit_config_and_scripts() {
    let Some(deb) = deb() else { return };
    let listing = dpkg_deb(&["-c"], &deb);
    for path in [
        "./usr/bin/nightjar-server",
        "./lib/systemd/system/nightjar-server.service",
        "./etc/nightjar-server/server.toml",
        "./usr/share/doc/nightjar-server/deploy-server.md",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} missing:\n{listing}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
    let conffiles = std::fs::read_to_string(tmp.path().join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/nightjar-server/server.toml"),
        "{conffiles}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let packaged = std::fs::read(tmp.path().join(script)).unwrap();
        let repo = std::fs::read(server_dir().join("debian").join(script)).unwrap();
        assert_eq!(packaged, repo, "{script} differs from the repository's");
    }
    let x = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tmp.path().join("root"))
        .status()
        .unwrap();
    assert!(x.success());
    let unit = std::fs::read(
        tmp.path()
            .join("root/lib/systemd/system/nightjar-server.service"),
    )
    .unwrap();
    assert_eq!(
        unit,
        std::fs::read(server_dir().join("nightjar-server.service")).unwrap()
    );
}
