//! The macOS-only file actions against the recording mock: which client subscribes to opens,
//! quarantine removals and launch items, how opens are selected, and how realistic messages
//! map and pass the gate.

use std::iter::Empty;

use nightjar_proto::eslogger::event_type;
use nightjar_proto::event::{EnvFilter, Event, EventKind, FileAction};
use nightjar_proto::filter::PathFilter;

use super::api::{EsEvent, Inversion, MutePath};
use super::fields::{EsMessage, EsPath, EsProcessFields, EsScratch};
use super::handler::NotifyHandler;
use super::mock::{Call, RecordingEs};
use super::setup::{self, FileSelection};
use super::tests::{Recorder, header, own, process};
use crate::gate::Gate;

type Msg = EsMessage<'static, Empty<&'static [u8]>, Empty<&'static [u8]>>;

const CHROME_COOKIES: &[u8] =
    b"/Users/bob/Library/Application Support/Google/Chrome/Default/Cookies";
const TIME_MACHINE: &str = "/Library/Preferences/com.apple.TimeMachine.plist";

fn open(global: u64, by: EsProcessFields<'static>, path: &'static [u8]) -> Msg {
    EsMessage::File {
        header: header(event_type::NOTIFY_OPEN, global, global),
        process: by,
        action: FileAction::Open,
        path: EsPath::File {
            path,
            truncated: false,
        },
        original: None,
    }
}

/// An unsigned binary hidden in `/Users/Shared` (no signing id, flags 0).
fn stealer() -> EsProcessFields<'static> {
    EsProcessFields {
        codesigning_flags: 0,
        ..process(5200, b"/Users/Shared/.x/stealer")
    }
}

#[test]
fn the_process_client_takes_the_rare_actions_only_when_rules_want_them() {
    assert!(setup::process_extras(false, false).is_empty());
    let mut es = RecordingEs::default();
    setup::process_client(&mut es, &own(), &setup::process_extras(true, true)).unwrap();
    let mut want = setup::PROCESS_EVENTS.to_vec();
    want.extend([
        EsEvent::NotifyDeleteExtattr,
        EsEvent::NotifyBtmLaunchItemAdd,
    ]);
    assert_eq!(es.calls.last(), Some(&Call::Subscribe(want)));
    assert_eq!(EsEvent::NotifyDeleteExtattr.raw(), 70);
    assert_eq!(EsEvent::NotifyBtmLaunchItemAdd.raw(), 124);
    assert_eq!(EsEvent::NotifyOpen.raw(), 10);
}

#[test]
fn opens_of_literal_paths_are_selected_by_inverted_target_muting() {
    let mut opens = PathFilter::none();
    opens.add_prefix(TIME_MACHINE);
    opens.add_prefix("/Library/Preferences/SystemConfiguration/preferences.plist");
    let mut es = RecordingEs::default();
    let sel = setup::open_client(&mut es, &own(), &opens).unwrap();
    assert!(
        matches!(sel, FileSelection::Prefixes(ref p) if p.len() == 2),
        "{sel:?}"
    );
    assert_eq!(
        es.calls[2..],
        [
            Call::Invert(Inversion::TargetPath),
            Call::MutePath(TIME_MACHINE.into(), MutePath::TargetPrefix),
            Call::MutePath(
                "/Library/Preferences/SystemConfiguration/preferences.plist".into(),
                MutePath::TargetPrefix
            ),
            Call::Subscribe(vec![EsEvent::NotifyOpen]),
        ]
    );
}

#[test]
fn opens_named_by_file_name_reach_the_gate_which_keeps_only_those() {
    let mut opens = PathFilter::none();
    opens.add_prefix(TIME_MACHINE);
    opens.add_name("Cookies");
    let mut es = RecordingEs::default();
    assert_eq!(
        setup::open_client(&mut es, &own(), &opens).unwrap(),
        FileSelection::Gate,
        "a name anywhere cannot be a prefix"
    );
    assert!(!es.calls.iter().any(|c| matches!(c, Call::Invert(_))));

    let gate = Gate::new(PathFilter::none(), vec![4242]).with_opens(opens);
    let mut h = NotifyHandler::new(Recorder::default(), gate, EnvFilter::default());
    h.handle(open(1, stealer(), CHROME_COOKIES));
    h.handle(open(2, stealer(), b"/usr/lib/libobjc.A.dylib"));
    h.handle(open(3, stealer(), b"/Users/bob/Library/Cookies.txt"));
    h.handle(open(
        4,
        process(4242, b"/usr/local/bin/nightjar-sensor"),
        CHROME_COOKIES,
    ));
    h.handle(open(
        5_000_000_000,
        process(311, b"/usr/libexec/backupd"),
        TIME_MACHINE.as_bytes(),
    ));
    let r = h.sink_mut();
    let paths: Vec<&str> = r
        .events
        .iter()
        .map(|e| match e {
            Event::File(f) => f.path.as_ref(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        paths,
        [std::str::from_utf8(CHROME_COOKIES).unwrap(), TIME_MACHINE]
    );
    let filtered: u64 = r
        .filtered
        .iter()
        .map(|(kind, n)| {
            assert_eq!(*kind, EventKind::File);
            n
        })
        .sum();
    assert_eq!(filtered, 2, "counted, not hidden");
}

#[test]
fn a_launch_daemon_maps_from_its_url_with_its_instigator_as_the_actor() {
    let python = EsProcessFields {
        team_id: b"DJ6BZV8MFV",
        signing_id: b"org.python.python",
        ..process(5300, b"/opt/homebrew/bin/python3.12")
    };
    let msg: Msg = EsMessage::LaunchItem {
        header: header(event_type::NOTIFY_BTM_LAUNCH_ITEM_ADD, 7, 90),
        process: python,
        item_url: b"file:///Library/LaunchDaemons/.com.apple.softwareupdate%20helper.plist",
        app_url: b"",
        executable: b"/Users/Shared/.local/.updater",
    };
    let mut scratch = EsScratch::default();
    let Event::File(f) = msg.to_event(&mut scratch, &EnvFilter::default()) else {
        panic!("not a file event")
    };
    assert_eq!(f.action, FileAction::LaunchDaemon);
    assert_eq!(
        f.path,
        "/Library/LaunchDaemons/.com.apple.softwareupdate helper.plist"
    );
    assert_eq!(
        f.launch_executable.as_deref(),
        Some("/Users/Shared/.local/.updater")
    );
    assert_eq!(
        (f.process.pid, f.process.team_id.as_deref()),
        (5300, Some("DJ6BZV8MFV"))
    );
    assert_eq!(f.meta.es_seq_num, Some(7));
    assert!(f.validate().is_ok());

    // Inside an app bundle: relative to the app's URL; no program named: absent.
    let bundled: Msg = EsMessage::LaunchItem {
        header: header(event_type::NOTIFY_BTM_LAUNCH_ITEM_ADD, 8, 91),
        process: process(150, b"/usr/libexec/backgroundtaskmanagementd"),
        item_url: b"Contents/Library/LaunchAgents/com.vendor.agent.plist",
        app_url: b"file:///Applications/Vendor%20App.app/",
        executable: b"",
    };
    let Event::File(f) = bundled.to_event(&mut scratch, &EnvFilter::default()) else {
        panic!("not a file event")
    };
    assert_eq!(
        f.path,
        "/Applications/Vendor App.app/Contents/Library/LaunchAgents/com.vendor.agent.plist"
    );
    assert_eq!(f.launch_executable, None);

    // A URL that names no local file (and bytes that are not UTF-8) is kept as given.
    let odd: Msg = EsMessage::LaunchItem {
        header: header(event_type::NOTIFY_BTM_LAUNCH_ITEM_ADD, 9, 92),
        process: process(150, b"/usr/libexec/backgroundtaskmanagementd"),
        item_url: b"x-apple:\xff/item",
        app_url: b"",
        executable: b"\xfe",
    };
    let Event::File(f) = odd.to_event(&mut scratch, &EnvFilter::default()) else {
        panic!("not a file event")
    };
    assert_eq!(f.path, "x-apple:\u{fffd}/item");
    assert_eq!(f.launch_executable.as_deref(), Some("\u{fffd}"));
    assert!(f.validate().is_ok());
}

#[test]
fn quarantine_removals_and_launch_items_pass_the_gate_whatever_the_path() {
    let mut files = PathFilter::none();
    files.add_prefix("/etc/");
    let gate = Gate::new(files, vec![4242]);
    let mut h = NotifyHandler::new(Recorder::default(), gate, EnvFilter::default());
    h.handle(Msg::File {
        header: header(event_type::NOTIFY_DELETEEXTATTR, 0, 0),
        process: stealer(),
        action: FileAction::ExtendedAttributesDelete,
        path: EsPath::File {
            path: b"/Users/bob/Downloads/Invoice 2026.app",
            truncated: false,
        },
        original: None,
    });
    h.handle(Msg::LaunchItem {
        header: header(event_type::NOTIFY_BTM_LAUNCH_ITEM_ADD, 0, 1),
        process: stealer(),
        item_url: b"file:///Users/bob/Library/LaunchAgents/.a.plist",
        app_url: b"",
        executable: b"/Users/Shared/.x/stealer",
    });
    let r = h.sink_mut();
    let actions: Vec<FileAction> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::File(f) => Some(f.action),
            _ => None,
        })
        .collect();
    assert_eq!(
        actions,
        [
            FileAction::ExtendedAttributesDelete,
            FileAction::LaunchDaemon
        ]
    );
    assert!(r.filtered.is_empty(), "{:?}", r.filtered);
    assert!(r.losses.is_empty(), "{:?}", r.losses);
}
