//! What each Endpoint Security client subscribes to and mutes, through [`EsApi`].
//!
//! Up to three NOTIFY clients, because Endpoint Security delivers each client's messages
//! serially and applies path-muting inversion per client: the process client (`NOTIFY_EXEC`,
//! `FORK`, `EXIT`, and the `SETUID`, `SETGID`, `SETEUID`, `SETEGID`, `SETREUID`, `SETREGID`
//! calls; never path-inverted; and the rare `NOTIFY_DELETEEXTATTR` and
//! `NOTIFY_BTM_LAUNCH_ITEM_ADD` when a rule can match a quarantine removal or a launch
//! item); when a loaded rule reads file events, the file client (`NOTIFY_CREATE`, `CLOSE`,
//! `RENAME`, `UNLINK`); and when a rule that matches opens names paths, the open client
//! (`NOTIFY_OPEN`), selected by its own paths: opens are the busiest event of all, and the
//! paths they are selected by are not those of the other file events. `NOTIFY_WRITE` is not
//! subscribed: no modification rule needs each write, and `CLOSE` with `modified` reports
//! the file once.
//!
//! What the open client costs: when the open paths are literal paths and prefixes only
//! (Elastic's `TimeMachine.plist` and `SystemConfiguration/preferences.plist` checks),
//! target-path muting is inverted and Endpoint Security delivers only those opens. When a
//! rule names files by name wherever they are (`Cookies`, `logins.json`), no prefix can
//! select them: every open on the Mac is delivered to the sensor, which maps and drops all
//! but the named ones before the ring (counted as filtered). That is Endpoint Security's
//! whole open rate through one serial handler, measured in BENCHMARKS.md.
//!
//! Both mute Nightjar itself: the sensor by its audit token and its executable's path, the
//! agent by its executable's canonical path, from the package layout and next to the sensor,
//! each checked to exist (muting a missing path succeeds silently and mutes nothing) and
//! logged. The gate still leaves out Nightjar's events by image name, so an agent installed
//! elsewhere is never published either, only delivered.

use std::path::{Path, PathBuf};

use nightjar_proto::filter::PathFilter;

use super::api::{EsApi, EsCallError, EsEvent, Inversion, MutePath};

/// Where the macOS package installs the agent.
pub const PACKAGED_AGENT: &str = "/Library/Application Support/Nightjar/bin/nightjar-agent";
/// Where the macOS package installs the sensor (inside its app bundle, for the entitlement).
pub const PACKAGED_SENSOR: &str =
    "/Library/Application Support/Nightjar/Nightjar Sensor.app/Contents/MacOS/nightjar-sensor";

/// The process client's subscriptions.
pub const PROCESS_EVENTS: [EsEvent; 9] = [
    EsEvent::NotifyExec,
    EsEvent::NotifyFork,
    EsEvent::NotifyExit,
    EsEvent::NotifySetuid,
    EsEvent::NotifySetgid,
    EsEvent::NotifySeteuid,
    EsEvent::NotifySetegid,
    EsEvent::NotifySetreuid,
    EsEvent::NotifySetregid,
];
/// The file client's subscriptions.
pub const FILE_EVENTS: [EsEvent; 4] = [
    EsEvent::NotifyCreate,
    EsEvent::NotifyClose,
    EsEvent::NotifyRename,
    EsEvent::NotifyUnlink,
];
/// The open client's subscription.
pub const OPEN_EVENTS: [EsEvent; 1] = [EsEvent::NotifyOpen];

/// The rare file actions the process client also subscribes to: quarantine removals when
/// `quarantine`, launch items added when `launch_items`.
pub fn process_extras(quarantine: bool, launch_items: bool) -> Vec<EsEvent> {
    let mut extras = Vec::new();
    if quarantine {
        extras.push(EsEvent::NotifyDeleteExtattr);
    }
    if launch_items {
        extras.push(EsEvent::NotifyBtmLaunchItemAdd);
    }
    extras
}

/// Nightjar's own processes and binaries, muted on every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnProcesses {
    pub pids: Vec<u32>,
    /// Canonical paths of existing executables.
    pub executables: Vec<PathBuf>,
}

impl OwnProcesses {
    /// The sensor (`pid`, `current_exe`) and the agent: the packaged paths and the agent next
    /// to `current_exe`, canonicalized, kept only when they exist. What is missing is logged.
    pub fn find(pid: u32, current_exe: Option<&Path>) -> OwnProcesses {
        let mut candidates: Vec<PathBuf> = vec![
            PathBuf::from(PACKAGED_AGENT),
            PathBuf::from(PACKAGED_SENSOR),
        ];
        if let Some(exe) = current_exe {
            candidates.push(exe.to_path_buf());
            if let Some(dir) = exe.parent() {
                candidates.push(dir.join("nightjar-agent"));
            }
        }
        let mut executables: Vec<PathBuf> = Vec::new();
        for c in candidates {
            match std::fs::canonicalize(&c) {
                Ok(real) if real.is_file() => {
                    if !executables.contains(&real) {
                        executables.push(real);
                    }
                }
                _ => tracing::debug!(path = %c.display(), "no Nightjar binary here to mute"),
            }
        }
        if !executables
            .iter()
            .any(|p| p.file_name().is_some_and(|n| n == "nightjar-agent"))
        {
            tracing::warn!(
                "nightjar-agent found neither at {PACKAGED_AGENT} nor next to the sensor: its \
                 execs are delivered (and left out by name)"
            );
        }
        OwnProcesses {
            pids: vec![pid],
            executables,
        }
    }

    /// Mutes every pid and executable on `api`, logging each path.
    pub fn mute<A: EsApi>(&self, api: &mut A) -> Result<(), EsCallError> {
        for &pid in &self.pids {
            api.mute_process(pid)?;
        }
        for path in &self.executables {
            api.mute_path(path, MutePath::Literal)?;
            tracing::info!(path = %path.display(), "muted Nightjar's executable");
        }
        Ok(())
    }
}

/// How the file client selects paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSelection {
    /// Target-path muting inverted: only these prefixes are delivered.
    Prefixes(Vec<String>),
    /// Every file event is delivered; the gate filters.
    Gate,
}

/// Sets up the process client, with `extras` ([`process_extras`]) besides exec, fork, exit.
pub fn process_client<A: EsApi>(
    api: &mut A,
    own: &OwnProcesses,
    extras: &[EsEvent],
) -> Result<(), EsCallError> {
    own.mute(api)?;
    let mut events = PROCESS_EVENTS.to_vec();
    events.extend_from_slice(extras);
    api.subscribe(&events)
}

/// Sets up the file client for `filter` (not [`PathFilter::is_none`]). When the filter is
/// prefixes only, target-path muting is inverted so Endpoint Security delivers only those
/// prefixes (macOS 13+; on failure every event is delivered and the gate filters, logged).
/// Prefixes are muted as the rules spell them: Endpoint Security compares bytes, and a path
/// is reported with the case it has on disk.
pub fn file_client<A: EsApi>(
    api: &mut A,
    own: &OwnProcesses,
    filter: &PathFilter,
) -> Result<FileSelection, EsCallError> {
    selecting_client(api, own, filter, &FILE_EVENTS)
}

/// Sets up the open client for `opens` (not [`PathFilter::is_none`]) as
/// [`file_client`] does, with its own selection.
pub fn open_client<A: EsApi>(
    api: &mut A,
    own: &OwnProcesses,
    opens: &PathFilter,
) -> Result<FileSelection, EsCallError> {
    selecting_client(api, own, opens, &OPEN_EVENTS)
}

fn selecting_client<A: EsApi>(
    api: &mut A,
    own: &OwnProcesses,
    filter: &PathFilter,
    events: &[EsEvent],
) -> Result<FileSelection, EsCallError> {
    own.mute(api)?;
    let selection = match filter.prefixes_only() {
        Some(prefixes) => match select_prefixes(api, prefixes) {
            Ok(()) => FileSelection::Prefixes(prefixes.to_vec()),
            Err(err) => {
                tracing::warn!("cannot select file paths by prefix ({err}); the gate filters");
                FileSelection::Gate
            }
        },
        None => FileSelection::Gate,
    };
    api.subscribe(events)?;
    Ok(selection)
}

/// Inverts target-path muting and selects `prefixes`. Half done, it would deliver only some
/// prefixes: on any failure the selection is undone (every target delivered again).
fn select_prefixes<A: EsApi>(api: &mut A, prefixes: &[String]) -> Result<(), EsCallError> {
    api.invert_muting(Inversion::TargetPath)?;
    let selected = prefixes
        .iter()
        .try_for_each(|p| api.mute_path(Path::new(p), MutePath::TargetPrefix));
    if let Err(err) = selected {
        api.unmute_all_target_paths()?;
        api.invert_muting(Inversion::TargetPath)?;
        return Err(err);
    }
    Ok(())
}

/// Parses `kern.osproductversion` (`"14.4.1"`, `"15.0"`) into major, minor, patch.
pub fn parse_os_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let patch = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    parts.next().is_none().then_some((major, minor, patch))
}

#[cfg(test)]
mod version_tests {
    use super::parse_os_version;

    #[test]
    fn product_versions_parse() {
        assert_eq!(parse_os_version("14.4.1"), Some((14, 4, 1)));
        assert_eq!(parse_os_version("15.0\n"), Some((15, 0, 0)));
        assert_eq!(parse_os_version("26"), Some((26, 0, 0)));
        assert_eq!(parse_os_version(""), None);
        assert_eq!(parse_os_version("14.x"), None);
        assert_eq!(parse_os_version("1.2.3.4"), None);
    }
}
