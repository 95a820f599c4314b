//! A private PostgreSQL cluster for the tests: one per test binary, started on first use,
//! a fresh database per test.
//!
//! The cluster is `initdb`'d into a temporary directory owned by the `postgres` user (when
//! the tests run as root, as CI does) with trust authentication, listening only on a free
//! loopback port and a socket inside its own directory, with durability off (a test
//! cluster needs none, and it starts in about a second). A watchdog process stops it and
//! removes its directory when the test binary exits, however it exits.
//!
//! PostgreSQL missing is a failure with a hint (`scripts/setup-deps` installs it), never a
//! skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::harness::is_root;

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The OS user the server runs as (`postgres` under root, else ourselves).
    run_as: Option<String>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// The PostgreSQL server binaries: the newest `/usr/lib/postgresql/N/bin`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((v, bin)) if v >= 15 => bin,
        _ => panic!(
            "PostgreSQL 15 or later is not installed (/usr/lib/postgresql/N/bin/initdb); \
             run scripts/setup-deps (it installs Debian's postgresql)"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Cluster {
    /// The cluster of this test binary, started on first call.
    pub fn shared() -> &'static Cluster {
        CLUSTER.get_or_init(|| Cluster::start(false))
    }

    /// A cluster of its own with PostgreSQL's durability on (fsync, synchronous commit):
    /// what a benchmark of committed alerts must measure.
    pub fn durable() -> Cluster {
        Cluster::start(true)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.arg("-u").arg(user).arg("--").arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn start(durable: bool) -> Cluster {
        let bin = bin_dir();
        let run_as = is_root().then(|| "postgres".to_string());
        let base = tempfile::Builder::new()
            .prefix("nightjar-pg-")
            .tempdir()
            .expect("temp dir for the test cluster")
            .keep();
        let dir = base.join("data");
        if let Some(user) = &run_as {
            let out = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&base)
                .output()
                .expect("run chown");
            assert!(
                out.status.success(),
                "chown {} to {user}: {}",
                base.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            run_as,
        };
        let out = cluster
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&cluster.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb {}: {}",
            cluster.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        spawn_watchdog(&cluster, &base);
        // A port picked free can be taken before the postmaster binds it: try a few.
        for _ in 0..5 {
            cluster.port = free_port();
            let durability = if durable {
                // Durable, with the WAL settings docs/deploy-server.md recommends.
                "-c fsync=on -c synchronous_commit=on -c full_page_writes=on \
                 -c max_wal_size=4GB -c wal_compression=lz4 -c checkpoint_timeout=15min"
            } else {
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            };
            let options = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
                 {durability} -c max_connections=300 -c shared_buffers=256MB",
                cluster.port,
                cluster.dir.display()
            );
            let log = cluster.dir.join("server.log");
            let out = cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(&cluster.dir)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(&options)
                .args(["-w", "-t", "60", "start"])
                .stdin(Stdio::null())
                .output()
                .expect("run pg_ctl start");
            if out.status.success() {
                return cluster;
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            if !log_text.contains("Address already in use") {
                panic!(
                    "pg_ctl start: {}\n{log_text}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        panic!("the test cluster found no free port in 5 tries");
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs SQL as the superuser in database `db` with `psql`; panics naming the SQL on error.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
            ])
            .arg(self.port.to_string())
            .arg("-d")
            .arg(db)
            .arg("-c")
            .arg(sql)
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A new empty database; returns its URL (`postgresql://postgres@127.0.0.1:PORT/NAME`).
    pub fn fresh_db(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// The URL of database `name`.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

/// Stops the cluster and removes its directory once this test process is gone.
fn spawn_watchdog(cluster: &Cluster, base: &Path) {
    let stop = cluster.bin.join("pg_ctl");
    let as_user = match &cluster.run_as {
        Some(u) => format!("runuser -u {u} -- "),
        None => String::new(),
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {as_user}{stop} -D '{dir}' -m immediate stop >/dev/null 2>&1; rm -rf '{base}'",
        pid = std::process::id(),
        stop = stop.display(),
        dir = cluster.dir.display(),
        base = base.display(),
    );
    // `setsid -f` forks the watchdog into its own session and returns at once.
    let status = Command::new("setsid")
        .arg("-f")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn the test cluster's watchdog");
    assert!(
        status.success(),
        "setsid -f for the test cluster's watchdog: {status}"
    );
}
