//! Which captured events are published: never Nightjar's own, and file events only on paths
//! (or by processes) some loaded rule can match. Sources that filter at the source (eBPF maps,
//! Endpoint Security muting) still pass their events through here, so the decision is one
//! implementation whatever the source; what is left out on purpose is counted per kind.

use nightjar_proto::event::{Event, EventKind, FileAction, basename};
use nightjar_proto::filter::{Marked, PathFilter};

/// Executable names whose events are never published: ours.
pub const OWN_IMAGES: [&str; 2] = ["nightjar-sensor", "nightjar-agent"];

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Publish,
    /// Done by Nightjar itself (or the eslogger it runs): never published, not counted.
    Own,
    /// A file event no loaded rule can match: counted as filtered.
    Filtered,
}

/// The publishing decision for one source.
#[derive(Debug, Clone)]
pub struct Gate {
    files: PathFilter,
    /// The opens to publish (macOS): a filter of their own, derived from the rules that
    /// match opens only (`RuleSet::open_filter`).
    opens: PathFilter,
    own_pids: Vec<u32>,
    filtered: [u64; 4],
}

impl Gate {
    /// Events of `own_pids` and of [`OWN_IMAGES`] are left out; file events pass `files`.
    pub fn new(files: PathFilter, own_pids: Vec<u32>) -> Gate {
        Gate {
            files,
            opens: PathFilter::none(),
            own_pids,
            filtered: [0; 4],
        }
    }

    /// The same gate, publishing the opens `opens` admits (none by default). Quarantine
    /// removals and launch items are published whenever a source delivers them: a source
    /// subscribes to them only when a rule can match them, and they are rare.
    pub fn with_opens(mut self, opens: PathFilter) -> Gate {
        self.opens = opens;
        self
    }

    pub fn opens(&self) -> &PathFilter {
        &self.opens
    }

    /// Whether file events are wanted at all (a source can then leave them unsubscribed).
    pub fn wants_files(&self) -> bool {
        !self.files.is_none()
    }

    pub fn files(&self) -> &PathFilter {
        &self.files
    }

    /// Follows a new rule set's file filter (a new fleet policy).
    pub fn set_files(&mut self, files: PathFilter) {
        self.files = files;
    }

    /// Adds a pid whose events are Nightjar's (a restarted eslogger).
    pub fn set_own_pids(&mut self, pids: Vec<u32>) {
        self.own_pids = pids;
    }

    /// Judges `ev`, counting what it filters.
    pub fn judge(&mut self, ev: &Event<'_>) -> Verdict {
        self.judge_as(ev, None, Marked::Unknown)
    }

    /// Judges `ev`, whose acting process is named `process` when its event does not carry
    /// the executable (a Linux file event has the kernel's process name, `comm`), and is
    /// `marked` as the source found it (see [`nightjar_proto::filter::ProcessMarks`]).
    pub fn judge_as(&mut self, ev: &Event<'_>, process: Option<&str>, marked: Marked) -> Verdict {
        let (pid, image) = match ev {
            Event::Exec(e) => (e.target.pid, e.caller.executable.as_deref()),
            Event::Fork(e) => (e.parent.pid, e.parent.executable.as_deref()),
            Event::Exit(e) => (e.process.pid, e.process.executable.as_deref()),
            Event::File(e) => (e.process.pid, e.process.executable.as_deref()),
            Event::Cred(e) => (e.process.pid, e.process.executable.as_deref()),
        };
        let own_image = |p: Option<&str>| p.is_some_and(|p| OWN_IMAGES.contains(&basename(p)));
        if self.own_pids.contains(&pid) || own_image(image) {
            return Verdict::Own;
        }
        if let Event::Exec(e) = ev
            && own_image(Some(&e.target.executable))
        {
            return Verdict::Own;
        }
        if let Event::File(f) = ev {
            let filter = match f.action {
                FileAction::ExtendedAttributesDelete | FileAction::LaunchDaemon => {
                    return Verdict::Publish;
                }
                FileAction::Open => &self.opens,
                _ => &self.files,
            };
            let admits = |path: &str| match f.process.executable.as_deref() {
                Some(exe) => filter.admits_marked(path, Some(basename(exe)), marked),
                None => filter.admits_comm_marked(path, process, marked),
            };
            let admitted = admits(&f.path) || f.original_path.as_deref().is_some_and(admits);
            if !admitted {
                self.filtered[EventKind::File as usize - 1] += 1;
                return Verdict::Filtered;
            }
        }
        Verdict::Publish
    }

    /// The counts filtered since the last call, per kind, and resets them.
    pub fn take_filtered(&mut self) -> impl Iterator<Item = (EventKind, u64)> {
        let counts = std::mem::take(&mut self.filtered);
        EventKind::ALL.into_iter().zip(counts)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use nightjar_proto::event::{Actor, FileAction, FileEvent};
    use nightjar_proto::{ExecEvent, Target};

    use super::*;

    fn file(pid: u32, exe: &str, path: &str, original: Option<&str>) -> Event<'static> {
        Event::File(FileEvent {
            process: Actor {
                pid,
                executable: Some(Cow::Owned(exe.to_owned())),
                ..Actor::default()
            },
            action: if original.is_some() {
                FileAction::Rename
            } else {
                FileAction::Creation
            },
            path: Cow::Owned(path.to_owned()),
            original_path: original.map(|o| Cow::Owned(o.to_owned())),
            ..FileEvent::default()
        })
    }

    #[test]
    fn own_events_are_left_out_and_files_filtered_and_counted() {
        let mut files = PathFilter::none();
        files.add_prefix("/etc/");
        let mut gate = Gate::new(files, vec![1]);
        assert_eq!(
            gate.judge(&file(5, "/bin/touch", "/etc/x", None)),
            Verdict::Publish
        );
        assert_eq!(
            gate.judge(&file(5, "/bin/touch", "/tmp/x", None)),
            Verdict::Filtered
        );
        assert_eq!(
            gate.judge(&file(5, "/bin/mv", "/tmp/x", Some("/etc/x"))),
            Verdict::Publish,
            "a rename passes on either path"
        );
        assert_eq!(
            gate.judge(&file(1, "/bin/touch", "/etc/x", None)),
            Verdict::Own
        );
        assert_eq!(
            gate.judge(&file(9, "/usr/bin/nightjar-agent", "/etc/x", None)),
            Verdict::Own
        );
        let agent_exec = Event::Exec(ExecEvent {
            target: Target {
                pid: 77,
                executable: Cow::Borrowed("/usr/bin/nightjar-agent"),
                ..Target::default()
            },
            ..ExecEvent::default()
        });
        assert_eq!(gate.judge(&agent_exec), Verdict::Own);
        let counts: Vec<_> = gate.take_filtered().collect();
        assert!(counts.contains(&(EventKind::File, 1)), "{counts:?}");
        assert!(gate.take_filtered().all(|(_, n)| n == 0));
    }

    fn with_action(mut ev: Event<'static>, action: FileAction) -> Event<'static> {
        if let Event::File(f) = &mut ev {
            f.action = action;
        }
        ev
    }

    #[test]
    fn opens_pass_their_own_filter_and_macos_actions_pass() {
        let mut files = PathFilter::none();
        files.add_prefix("/Library/Preferences/");
        let mut opens = PathFilter::none();
        opens.add_name("Cookies.binarycookies");
        let mut gate = Gate::new(files, vec![1]).with_opens(opens);
        let cookies = "/Users/bob/Library/Cookies/Cookies.binarycookies";
        let open = |path| with_action(file(5, "/tmp/stealer", path, None), FileAction::Open);
        assert_eq!(gate.judge(&open(cookies)), Verdict::Publish);
        assert_eq!(
            gate.judge(&open("/Library/Preferences/x.plist")),
            Verdict::Filtered,
            "the change filter does not admit opens"
        );
        assert_eq!(
            gate.judge(&file(5, "/bin/cp", cookies, None)),
            Verdict::Filtered,
            "nor the open filter changes"
        );
        for action in [
            FileAction::ExtendedAttributesDelete,
            FileAction::LaunchDaemon,
        ] {
            assert_eq!(
                gate.judge(&with_action(file(5, "/tmp/x", "/tmp/y", None), action)),
                Verdict::Publish
            );
            assert_eq!(
                gate.judge(&with_action(file(1, "/tmp/x", "/tmp/y", None), action)),
                Verdict::Own
            );
        }
    }
}
