//! The processes that were running when the sensor started, read from `/proc`, so that their
//! children and their file events have a known parent and image.
//!
//! Each process becomes one exec record marked [`FLAG_SNAPSHOT`] (source
//! [`Source::ProcessList`]): the agent records it in its process table and evaluates no rule
//! on it. Its start time is computed exactly as the probe's ([`BootClock`]), so it has the
//! same `process.entity_id` as the events that follow. A process that exits while it is read
//! is skipped; nothing here fails the sensor.

use std::borrow::Cow;
use std::path::Path;

use nightjar_proto::event::{ArgsBuilder, EnvFilter, FLAG_SNAPSHOT, TRUNC_ARGS, TRUNC_ENV};
use nightjar_proto::text::lossy_into;
use nightjar_proto::{Caller, ExecEvent, OsType, Source, Target};

use super::sample::{BootClock, is_container_cgroup};

/// What `/proc/PID/stat` says (fields after the command name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub ppid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub tty_nr: u32,
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`; the command name may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3 of the file); start time is field 22.
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Stat {
        ppid: field(4)?.parse().ok()?,
        pgid: field(5)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        tty_nr: field(7)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// Real and effective uid and gid from `/proc/PID/status`.
pub fn parse_ids(status: &str) -> Option<([u32; 2], [u32; 2])> {
    let ids = |key: &str| -> Option<[u32; 2]> {
        let line = status.lines().find_map(|l| l.strip_prefix(key))?;
        let mut it = line.split_whitespace().map(|v| v.parse::<u32>().ok());
        Some([it.next()??, it.next()??])
    };
    Some((ids("Uid:")?, ids("Gid:")?))
}

/// The pid namespace nesting level of `/proc/PID/status` (`NSpid:` lists one pid per level).
fn pidns_level(status: &str) -> u32 {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map_or(0, |l| l.split_whitespace().count().saturating_sub(1) as u32)
}

/// The leaf of the process's cgroup v2 path (`0::/system.slice/docker-….scope`).
fn cgroup_leaf(cgroup: &str) -> &str {
    cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .and_then(|p| p.trim().rsplit('/').next())
        .unwrap_or("")
}

/// The name of a tty device number, as the probe reports it (`pts/3`, `tty1`), for the
/// common majors; other terminals are named by their numbers.
fn tty_name(tty_nr: u32) -> Option<String> {
    if tty_nr == 0 {
        return None;
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    Some(match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("tty{major}:{minor}"),
    })
}

/// Reusable buffers for reading one process after another.
#[derive(Default)]
struct Buffers {
    args: ArgsBuilder,
    env: ArgsBuilder,
    arg: String,
    exe: String,
    cwd: String,
}

/// Reads every process in `proc_root` (normally `/proc`) and hands each to `publish`; returns
/// how many were read. `skip` pids (the sensor) are left out.
pub fn snapshot(
    proc_root: &Path,
    clock: BootClock,
    env: &EnvFilter,
    skip: &[u32],
    mut publish: impl FnMut(ExecEvent<'_>),
) -> usize {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return 0;
    };
    let mut buffers = Buffers::default();
    let mut read = 0;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if skip.contains(&pid) {
            continue;
        }
        if let Some(ev) = read_process(&entry.path(), pid, clock, env, &mut buffers) {
            publish(ev);
            read += 1;
        }
    }
    read
}

fn read_process<'b>(
    dir: &Path,
    pid: u32,
    clock: BootClock,
    env: &EnvFilter,
    b: &'b mut Buffers,
) -> Option<ExecEvent<'b>> {
    let stat = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let ([uid, euid], [gid, egid]) = parse_ids(&status)?;
    // Kernel threads have no executable: nothing ever names them as a parent image.
    let exe = std::fs::read_link(dir.join("exe")).ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let cwd = std::fs::read_link(dir.join("cwd")).ok();
    let cgroup = std::fs::read_to_string(dir.join("cgroup")).unwrap_or_default();
    let mut flags = FLAG_SNAPSHOT;

    b.args.clear();
    let body = cmdline.strip_suffix(b"\0").unwrap_or(&cmdline);
    if !cmdline.is_empty() {
        for piece in body.split(|&c| c == 0) {
            b.args.push(lossy_into(piece, &mut b.arg));
        }
    }
    if b.args.is_cut() {
        flags |= TRUNC_ARGS;
    }
    b.env.clear();
    if !env.is_empty()
        && let Ok(environ) = std::fs::read(dir.join("environ"))
    {
        let entries = environ
            .split(|&c| c == 0)
            .filter_map(|e| std::str::from_utf8(e).ok());
        if env.collect(entries, &mut b.env) {
            flags |= TRUNC_ENV;
        }
    }
    b.exe.clear();
    b.exe.push_str(&exe.to_string_lossy());
    let exe_deleted = b.exe.ends_with(" (deleted)");
    if exe_deleted {
        let keep = b.exe.len() - " (deleted)".len();
        b.exe.truncate(keep);
    }
    b.cwd.clear();
    if let Some(cwd) = &cwd {
        b.cwd.push_str(&cwd.to_string_lossy());
    }
    let start = clock.start_unix_ns_from_ticks(stat.start_ticks);
    let container = pidns_level(&status) > 0 || is_container_cgroup(cgroup_leaf(&cgroup));
    Some(ExecEvent {
        source: Source::ProcessList,
        os: OsType::Linux,
        flags,
        time_ns: start,
        target: Target {
            pid,
            ppid: Some(stat.ppid),
            uid: Some(uid),
            euid: Some(euid),
            gid: Some(gid),
            egid: Some(egid),
            executable: Cow::Borrowed(&b.exe),
            args: b.args.args(),
            cwd: cwd.map(|_| Cow::Borrowed(b.cwd.as_str())),
            tty: tty_name(stat.tty_nr).map(Cow::Owned),
            start_time_ns: Some(start),
            session_leader_pid: (stat.sid != 0).then_some(stat.sid),
            group_leader_pid: (stat.pgid != 0).then_some(stat.pgid),
            container: Some(container),
            env_vars: b.env.args(),
            ..Target::default()
        },
        caller: Caller {
            pid: Some(pid),
            ppid: Some(stat.ppid),
            ..Caller::default()
        },
        ..ExecEvent::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_past_odd_command_names() {
        let line = "4242 (a (weird) name) S 1 4242 4242 34817 4242 4194560 1 0 0 0 0 0 0 0 20 0 \
                    1 0 987654 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                ppid: 1,
                pgid: 4242,
                sid: 4242,
                tty_nr: 34817,
                start_ticks: 987654
            }
        );
        assert_eq!(tty_name(34817).as_deref(), Some("pts/1"));
        assert_eq!(tty_name(0), None);
        assert_eq!(tty_name(0x401).as_deref(), Some("tty1"));
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn ids_levels_and_cgroups_are_read() {
        let status = "Name:\tbash\nUid:\t1000\t0\t0\t0\nGid:\t100\t101\t101\t101\nNSpid:\t77\t1\n";
        assert_eq!(parse_ids(status), Some(([1000, 0], [100, 101])));
        assert_eq!(pidns_level(status), 1);
        assert_eq!(pidns_level("NSpid:\t77\n"), 0);
        assert_eq!(
            cgroup_leaf("0::/system.slice/docker-abc.scope\n"),
            "docker-abc.scope"
        );
    }

    /// This process is in the live `/proc` with its own argv and start time.
    #[test]
    fn this_process_is_found_in_proc() {
        let clock = BootClock {
            offset_ns: 0,
            boot_unix_ns: 0,
            tick_ns: 10_000_000,
        };
        let me = std::process::id();
        let mut found = None;
        snapshot(
            Path::new("/proc"),
            clock,
            &EnvFilter::new(["PATH"]),
            &[],
            |ev| {
                if ev.target.pid == me {
                    found = Some(ev.into_owned());
                }
            },
        );
        let ev = found.expect("this test process is in /proc");
        assert_eq!(ev.flags & FLAG_SNAPSHOT, FLAG_SNAPSHOT);
        assert_eq!(ev.source, Source::ProcessList);
        let exe = std::env::current_exe().unwrap();
        assert_eq!(ev.target.executable, exe.to_string_lossy());
        assert_eq!(
            ev.target.args.iter().next().map(str::to_owned),
            std::env::args().next()
        );
        assert!(ev.target.env_vars.iter().all(|e| e.starts_with("PATH=")));
        assert!(ev.validate().is_ok());
    }
}
