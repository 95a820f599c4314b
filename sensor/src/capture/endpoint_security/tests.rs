//! The NOTIFY clients' logic against the recording mock: setup, gaps, filters, mapping,
//! panics.

use std::iter::Empty;
use std::path::PathBuf;

use nightjar_proto::LossSource;
use nightjar_proto::eslogger::event_type;
use nightjar_proto::event::{EnvFilter, Event, EventKind, FileAction};
use nightjar_proto::filter::PathFilter;

use super::api::{EsEvent, Inversion, MutePath};
use super::fields::{EsAuditToken, EsExecFields, EsHeader, EsMessage, EsPath, EsProcessFields};
use super::handler::{NotifyHandler, Sink};
use super::mock::{Call, RecordingEs};
use super::setup::{self, FileSelection, OwnProcesses};
use crate::gate::Gate;

type Msg = EsMessage<'static, std::vec::IntoIter<&'static [u8]>, Empty<&'static [u8]>>;

/// Keeps what a handler sends; can be told to panic on one publish.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) events: Vec<Event<'static>>,
    pub(super) losses: Vec<(LossSource, Option<EventKind>, u64)>,
    pub(super) filtered: Vec<(EventKind, u64)>,
    flushes: u64,
    panic_on_publish: Option<usize>,
}

impl Sink for Recorder {
    fn publish(&mut self, ev: Event<'_>) -> bool {
        if self.panic_on_publish == Some(self.events.len()) {
            self.panic_on_publish = None;
            panic!("publish failed (test)");
        }
        self.events.push(ev.into_owned());
        true
    }
    fn report_loss(&mut self, source: LossSource, kind: Option<EventKind>, count: u64) {
        self.losses.push((source, kind, count));
    }
    fn report_filtered(&mut self, kind: EventKind, count: u64) {
        if count > 0 {
            self.filtered.push((kind, count));
        }
    }
    fn flush(&mut self) {
        self.flushes += 1;
    }
}

pub(super) fn process(pid: u32, exe: &'static [u8]) -> EsProcessFields<'static> {
    EsProcessFields {
        audit_token: EsAuditToken {
            auid: 501,
            euid: 501,
            egid: 20,
            ruid: 501,
            rgid: 20,
            pid,
            asid: 100_013,
            pidversion: pid * 10,
        },
        ppid: 1,
        original_ppid: 1,
        executable: exe,
        start_time: Some((1_795_000_000, 0)),
        ..EsProcessFields::default()
    }
}

pub(super) fn header(event_type: u32, seq: u64, global: u64) -> EsHeader {
    EsHeader {
        event_type,
        version: 7,
        time_ns: 1_795_000_001_000_000_000 + i64::try_from(global).unwrap(),
        seq_num: Some(seq),
        global_seq_num: Some(global),
    }
}

fn exec(seq: u64, global: u64, exe: &'static [u8], args: Vec<&'static [u8]>) -> Msg {
    EsMessage::Exec(EsExecFields {
        version: 7,
        time_ns: 1_795_000_001_000_000_000,
        seq_num: Some(seq),
        global_seq_num: Some(global),
        process: process(700, b"/bin/zsh"),
        target: process(700, exe),
        args: args.into_iter(),
        env: std::iter::empty(),
        cwd: Some(b"/Users/bob"),
        cwd_truncated: false,
    })
}

fn create(seq: u64, global: u64, dir: &'static [u8], name: &'static [u8]) -> Msg {
    EsMessage::File {
        header: header(event_type::NOTIFY_CREATE, seq, global),
        process: process(701, b"/usr/bin/touch"),
        action: FileAction::Creation,
        path: EsPath::New {
            dir,
            dir_truncated: false,
            name,
        },
        original: None,
    }
}

fn launch_agents_filter() -> PathFilter {
    let mut f = PathFilter::none();
    f.add_prefix("/Library/LaunchAgents/");
    f.add_prefix("/Users/bob/Library/LaunchAgents/");
    f
}

pub(super) fn own() -> OwnProcesses {
    OwnProcesses {
        pids: vec![4242],
        executables: vec![PathBuf::from(setup::PACKAGED_AGENT)],
    }
}

#[test]
fn process_client_mutes_nightjar_then_subscribes_to_exec_fork_exit_and_setids() {
    let mut es = RecordingEs::default();
    setup::process_client(&mut es, &own(), &[]).unwrap();
    assert_eq!(
        es.calls,
        [
            Call::MuteProcess(4242),
            Call::MutePath(PathBuf::from(setup::PACKAGED_AGENT), MutePath::Literal),
            Call::Subscribe(vec![
                EsEvent::NotifyExec,
                EsEvent::NotifyFork,
                EsEvent::NotifyExit,
                EsEvent::NotifySetuid,
                EsEvent::NotifySetgid,
                EsEvent::NotifySeteuid,
                EsEvent::NotifySetegid,
                EsEvent::NotifySetreuid,
                EsEvent::NotifySetregid,
            ]),
        ]
    );
}

#[test]
fn file_client_selects_prefix_only_filters_by_inverted_target_muting() {
    let mut es = RecordingEs::default();
    let sel = setup::file_client(&mut es, &own(), &launch_agents_filter()).unwrap();
    assert_eq!(
        sel,
        FileSelection::Prefixes(vec![
            "/Library/LaunchAgents/".into(),
            "/Users/bob/Library/LaunchAgents/".into()
        ])
    );
    assert_eq!(
        es.calls[2..],
        [
            Call::Invert(Inversion::TargetPath),
            Call::MutePath("/Library/LaunchAgents/".into(), MutePath::TargetPrefix),
            Call::MutePath(
                "/Users/bob/Library/LaunchAgents/".into(),
                MutePath::TargetPrefix
            ),
            Call::Subscribe(setup::FILE_EVENTS.to_vec()),
        ]
    );
    assert!(
        !es.calls
            .contains(&Call::Subscribe(vec![EsEvent::NotifyWrite])),
        "no rule needs each write"
    );
}

#[test]
fn file_client_lets_the_gate_filter_what_prefixes_cannot_say() {
    let mut f = launch_agents_filter();
    f.add_extension("plist");
    let mut es = RecordingEs::default();
    assert_eq!(
        setup::file_client(&mut es, &own(), &f).unwrap(),
        FileSelection::Gate
    );
    assert!(!es.calls.iter().any(|c| matches!(c, Call::Invert(_))));
}

#[test]
fn a_failed_prefix_selection_is_undone_not_left_half_inverted() {
    let mut es = RecordingEs::failing(&[]);
    // Muting the first target prefix fails: the own-process literal mute comes first.
    es.fail.insert("mute_path");
    let own = OwnProcesses {
        pids: vec![1],
        executables: vec![],
    };
    let sel = setup::file_client(&mut es, &own, &launch_agents_filter()).unwrap();
    assert_eq!(sel, FileSelection::Gate);
    assert_eq!(
        es.calls[1..],
        [
            Call::Invert(Inversion::TargetPath),
            Call::MutePath("/Library/LaunchAgents/".into(), MutePath::TargetPrefix),
            Call::UnmuteAllTargetPaths,
            Call::Invert(Inversion::TargetPath),
            Call::Subscribe(setup::FILE_EVENTS.to_vec()),
        ]
    );
}

#[test]
fn own_processes_are_found_canonical_and_only_when_they_exist() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let sensor = bin.join("nightjar-sensor");
    std::fs::write(&sensor, b"").unwrap();
    // The agent is reached through a symlink: the canonical target is muted.
    let real_agent = dir.path().join("real-agent");
    std::fs::write(&real_agent, b"").unwrap();
    std::os::unix::fs::symlink(&real_agent, bin.join("nightjar-agent")).unwrap();
    let own = OwnProcesses::find(77, Some(&sensor));
    assert_eq!(own.pids, [77]);
    let real_agent = std::fs::canonicalize(real_agent).unwrap();
    let sensor = std::fs::canonicalize(sensor).unwrap();
    assert!(own.executables.contains(&sensor));
    assert!(own.executables.contains(&real_agent));
    assert!(
        !own.executables
            .iter()
            .any(|p| p.starts_with("/Library/Application Support")),
        "the packaged paths do not exist here and are not muted"
    );
    let lonely = OwnProcesses::find(77, Some(&dir.path().join("missing")));
    assert!(lonely.executables.is_empty());
}

fn handler(filter: PathFilter) -> NotifyHandler<Recorder> {
    NotifyHandler::new(
        Recorder::default(),
        Gate::new(filter, vec![4242]),
        EnvFilter::default(),
    )
}

#[test]
fn gaps_are_counted_per_type_and_globally_before_filtering() {
    let mut h = handler(launch_agents_filter());
    // Two messages were lost before the first one this client saw.
    h.handle(exec(2, 2, b"/usr/bin/kcc", vec![b"kcc", b"list"]));
    // A filtered file event still advances the numbers.
    h.handle(create(0, 3, b"/tmp", b"x"));
    h.handle(create(1, 4, b"/Library/LaunchAgents", b"evil.plist"));
    // Global 5 and 6 are missing.
    h.handle(exec(4, 7, b"/usr/bin/true", vec![b"true"]));
    let r = h.sink_mut();
    assert_eq!(
        r.losses,
        [
            (LossSource::EndpointSecurityGap, None, 2),
            (LossSource::EndpointSecurityGap, None, 2)
        ]
    );
    assert_eq!(r.events.len(), 3);
    assert!(matches!(&r.events[1], Event::File(f)
        if f.path == "/Library/LaunchAgents/evil.plist" && f.action == FileAction::Creation));
    assert_eq!(r.filtered, [(EventKind::File, 1)]);
    assert_eq!(h.stats().lost, 4);
}

#[test]
fn without_global_numbers_each_type_has_its_own_sequence() {
    let mut h = handler(PathFilter::all());
    let mut m = exec(0, 0, b"/bin/a", vec![b"a"]);
    let strip = |m: &mut Msg| match m {
        EsMessage::Exec(e) => {
            e.version = 3;
        }
        EsMessage::File { header, .. } => header.version = 3,
        _ => {}
    };
    strip(&mut m);
    h.handle(m);
    let mut f = create(0, 0, b"/tmp", b"a");
    strip(&mut f);
    h.handle(f);
    let mut m = exec(1, 0, b"/bin/b", vec![b"b"]);
    strip(&mut m);
    h.handle(m);
    let mut f = create(3, 0, b"/tmp", b"b");
    strip(&mut f);
    h.handle(f);
    assert_eq!(
        h.sink_mut().losses,
        [(LossSource::EndpointSecurityGap, None, 2)],
        "create 1 and 2 are missing; exec's numbering is its own"
    );
}

#[test]
fn nightjar_own_events_are_not_published() {
    let mut h = handler(PathFilter::all());
    h.handle(exec(
        0,
        0,
        b"/Library/Application Support/Nightjar/bin/nightjar-agent",
        vec![],
    ));
    let mut by_sensor = create(0, 1, b"/tmp", b"x");
    if let EsMessage::File { process, .. } = &mut by_sensor {
        process.audit_token.pid = 4242;
    }
    h.handle(by_sensor);
    assert!(h.sink_mut().events.is_empty());
    assert!(
        h.sink_mut().filtered.is_empty(),
        "own events are not 'filtered'"
    );
}

#[test]
fn a_panic_in_the_handler_is_a_counted_loss_and_the_next_message_goes_through() {
    let mut h = handler(PathFilter::all());
    h.sink_mut().panic_on_publish = Some(0);
    h.handle(exec(0, 0, b"/usr/bin/kcc", vec![b"kcc"]));
    h.handle(exec(1, 1, b"/usr/bin/kcc", vec![b"kcc", b"list"]));
    let r = h.sink_mut();
    assert_eq!(r.losses, [(LossSource::Unmapped, Some(EventKind::Exec), 1)]);
    assert_eq!(r.events.len(), 1);
    assert_eq!(h.stats().panics, 1);
}

#[test]
fn every_message_is_flushed_and_filtered_counts_are_batched() {
    let mut h = handler(launch_agents_filter());
    for i in 0..100 {
        h.handle(create(i, i, b"/tmp", b"noise"));
    }
    let r = h.sink_mut();
    assert_eq!(r.flushes, 100);
    assert_eq!(
        r.filtered,
        [(EventKind::File, 1)],
        "the first reports at once"
    );
    // A second later (message time), the rest are reported.
    let mut late = create(100, 100, b"/tmp", b"noise");
    if let EsMessage::File { header, .. } = &mut late {
        header.time_ns += 2_000_000_000;
    }
    h.handle(late);
    assert_eq!(h.sink_mut().filtered[1], (EventKind::File, 100));
}

// ---- AUTH_EXEC (blocking) -------------------------------------------------------------

mod auth {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use nightjar_proto::event::{Event, FLAG_BLOCKED};
    use nightjar_rules::ecs::HostInfo;
    use nightjar_rules::{RuleSet, Sources};

    use super::super::api::{AuthResult, EsEvent, MutePath};
    use super::super::auth::{AllowGuard, AuthHandler, AuthStats, Decision, Handoff};
    use super::super::fields::EsExecFields;
    use super::super::mock::{Call, RecordingEs};
    use super::super::setup::{self, OwnProcesses};
    use super::process;

    const SEED: &str = "ad88231f-e2ab-491c-8fc6-64746da26cfe";

    type Fields =
        EsExecFields<'static, std::vec::IntoIter<&'static [u8]>, std::iter::Empty<&'static [u8]>>;

    fn exec(exe: &'static [u8], args: Vec<&'static [u8]>) -> Fields {
        EsExecFields {
            version: 8,
            time_ns: 1_795_000_001_000_000_000,
            seq_num: Some(1),
            global_seq_num: Some(1),
            process: process(700, b"/bin/zsh"),
            target: process(700, exe),
            args: args.into_iter(),
            env: std::iter::empty(),
            cwd: Some(b"/Users/bob"),
            cwd_truncated: false,
        }
    }

    /// The built-in seed rule (kcc copy_cred_cache, macOS) as a blocking rule, checked for
    /// macOS whatever this build runs on.
    fn handler() -> (AuthHandler, std::sync::mpsc::Receiver<Event<'static>>) {
        let (set, report) = RuleSet::build(Sources {
            builtin: true,
            block: vec![SEED.into()],
            block_platform: Some("macos"),
            ..Sources::default()
        });
        assert!(
            report.block_errors.is_empty() && report.block_refused.is_empty(),
            "{report:?}"
        );
        let blocking: Vec<usize> = set.blocking_rules().collect();
        assert_eq!(blocking.len(), 1);
        let own = OwnProcesses {
            pids: vec![4242],
            executables: vec![setup::PACKAGED_AGENT.into()],
        };
        let (handoff, rx) = Handoff::new();
        let h = AuthHandler::new(
            Some(Arc::new(set)),
            blocking,
            HostInfo::new("mac-1", "host-1"),
            &own,
            Arc::new(AuthStats::default()),
            handoff,
        );
        (h, rx)
    }

    const PLENTY: Option<Duration> = Some(Duration::from_secs(10));

    /// The seed rule's blocking set, as a kept policy brings it.
    fn seed_block() -> crate::block::Blocking {
        let (set, _) = RuleSet::build(Sources {
            builtin: true,
            block: vec![SEED.into()],
            block_platform: Some("macos"),
            ..Sources::default()
        });
        crate::block::Blocking::of(set)
    }

    #[test]
    fn a_new_blocking_set_is_followed_live_subscription_matcher_and_cache() {
        use crate::capture::endpoint_security::auth::AuthFollow;
        use std::sync::Mutex;
        let own = OwnProcesses {
            pids: vec![4242],
            executables: vec![setup::PACKAGED_AGENT.into()],
        };
        let (h, _rx) = handler();
        let state = Mutex::new(h);
        let mut follow = AuthFollow::new(&state.lock().unwrap());
        let mut es = RecordingEs::default();
        let sub = Call::Subscribe(vec![EsEvent::AuthExec]);
        let unsub = Call::Unsubscribe(vec![EsEvent::AuthExec]);
        let kcc = || exec(b"/usr/bin/kcc", vec![b"kcc", b"copy_cred_cache"]);
        let decide = |es: &mut RecordingEs, id: u64, m: Fields| {
            state.lock().unwrap().handle(es, &id, PLENTY, m)
        };

        // No blocking rule yet (the kept policy has none): nothing subscribed, kcc runs.
        follow
            .apply(&mut es, &state, &own, &crate::block::Blocking::default())
            .unwrap();
        assert!(
            !follow.subscribed() && !es.calls.contains(&sub),
            "{:?}",
            es.calls
        );
        assert_eq!(decide(&mut es, 1, kcc()), Decision::Allow { cache: false });

        // A policy adds the rule: targets muted, AUTH_EXEC subscribed, then the cache
        // cleared; kcc copy_cred_cache is denied from the next message on.
        es.calls.clear();
        follow.apply(&mut es, &state, &own, &seed_block()).unwrap();
        assert!(follow.subscribed());
        let at = |c: &Call| es.calls.iter().position(|x| x == c);
        let mute = at(&Call::MutePath(
            "/sbin/launchd".into(),
            MutePath::TargetLiteral,
        ));
        assert!(mute.is_some() && mute < at(&sub), "{:?}", es.calls);
        assert!(at(&Call::ClearCache) > at(&sub), "{:?}", es.calls);
        assert!(matches!(decide(&mut es, 2, kcc()), Decision::Deny { .. }));

        // A change whose cache clear is throttled: answers stay uncached until a retry on
        // a later tick succeeds.
        es.fail.insert("clear_cache");
        follow.apply(&mut es, &state, &own, &seed_block()).unwrap();
        decide(&mut es, 3, exec(b"/bin/ls", vec![b"ls"]));
        assert!(!follow.retry_clear(&mut es), "still throttled");
        es.fail.clear();
        assert!(follow.retry_clear(&mut es));
        decide(&mut es, 4, exec(b"/bin/ls", vec![b"ls"]));
        let r = es.responses();
        assert_eq!(
            r[r.len() - 2..],
            [(3, AuthResult::Allow, false), (4, AuthResult::Allow, true)]
        );

        // A policy removes it: unsubscribed, the cache cleared, kcc copy_cred_cache runs.
        es.calls.clear();
        follow
            .apply(&mut es, &state, &own, &crate::block::Blocking::default())
            .unwrap();
        assert!(!follow.subscribed());
        assert!(at_of(&es.calls, &unsub) < at_of(&es.calls, &Call::ClearCache));
        assert!(!matches!(decide(&mut es, 5, kcc()), Decision::Deny { .. }));
        assert!(!state.lock().unwrap().is_blocking());
    }

    fn at_of(calls: &[Call], c: &Call) -> Option<usize> {
        calls.iter().position(|x| x == c)
    }

    #[test]
    fn setup_mutes_nightjar_and_protected_targets_subscribes_and_clears_the_cache() {
        let (h, _rx) = handler();
        let own = OwnProcesses {
            pids: vec![4242],
            executables: vec![setup::PACKAGED_AGENT.into()],
        };
        let mut es = RecordingEs::default();
        h.setup(&mut es, &own).unwrap();
        assert!(es.calls.contains(&Call::MuteProcess(4242)));
        assert!(es.calls.contains(&Call::MutePath(
            setup::PACKAGED_AGENT.into(),
            MutePath::TargetLiteral
        )));
        assert!(es.calls.contains(&Call::MutePath(
            "/sbin/launchd".into(),
            MutePath::TargetLiteral
        )));
        let sub = es
            .calls
            .iter()
            .position(|c| *c == Call::Subscribe(vec![EsEvent::AuthExec]))
            .expect("subscribed");
        let clear = es
            .calls
            .iter()
            .position(|c| *c == Call::ClearCache)
            .expect("cache cleared");
        assert!(clear > sub, "the cache is cleared after subscribing");
    }

    #[test]
    fn kcc_copy_cred_cache_is_denied_uncached_and_its_record_handed_over() {
        let (mut h, rx) = handler();
        let mut es = RecordingEs::default();
        h.clear_cache(&mut es);
        let d = h.handle(
            &mut es,
            &1,
            PLENTY,
            exec(b"/usr/bin/kcc", vec![b"kcc", b"copy_cred_cache"]),
        );
        assert!(matches!(d, Decision::Deny { .. }));
        assert_eq!(
            es.responses(),
            [(1, AuthResult::Deny, false)],
            "DENY is never cached"
        );
        let Ok(Event::Exec(ev)) = rx.try_recv() else {
            panic!("no blocked record")
        };
        assert_eq!(ev.flags & FLAG_BLOCKED, FLAG_BLOCKED);
        assert_eq!(ev.target.executable, "/usr/bin/kcc");
        assert_eq!(h.stats().denied.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn allow_is_cached_only_for_targets_no_blocking_rule_can_match() {
        let (mut h, rx) = handler();
        let mut es = RecordingEs::default();
        h.clear_cache(&mut es);
        // kcc with other arguments: allowed, but a later kcc copy_cred_cache by the same
        // caller must be asked about again: not cached.
        h.handle(
            &mut es,
            &2,
            PLENTY,
            exec(b"/usr/bin/kcc", vec![b"kcc", b"list"]),
        );
        // ls can never match: cached.
        h.handle(&mut es, &3, PLENTY, exec(b"/bin/ls", vec![b"ls", b"-l"]));
        assert_eq!(
            es.responses()[..],
            [(2, AuthResult::Allow, false), (3, AuthResult::Allow, true)]
        );
        assert!(
            rx.try_recv().is_err(),
            "nothing blocked, nothing handed over"
        );
    }

    #[test]
    fn until_the_cache_is_cleared_nothing_is_cached() {
        let (mut h, _rx) = handler();
        let mut es = RecordingEs::failing(&["clear_cache"]);
        assert!(!h.clear_cache(&mut es), "throttled");
        h.handle(&mut es, &4, PLENTY, exec(b"/bin/ls", vec![b"ls"]));
        es.fail.clear();
        assert!(h.clear_cache(&mut es));
        h.handle(&mut es, &5, PLENTY, exec(b"/bin/ls", vec![b"ls"]));
        assert_eq!(
            es.responses()[..],
            [(4, AuthResult::Allow, false), (5, AuthResult::Allow, true)]
        );
    }

    #[test]
    fn a_close_deadline_allows_at_once_and_counts_it() {
        let (mut h, _rx) = handler();
        let mut es = RecordingEs::default();
        for (id, left) in [(6, Some(Duration::from_millis(100))), (7, None)] {
            let d = h.handle(
                &mut es,
                &id,
                left,
                exec(b"/usr/bin/kcc", vec![b"kcc", b"copy_cred_cache"]),
            );
            assert_eq!(d, Decision::FailOpen);
        }
        assert_eq!(
            es.responses()[..],
            [(6, AuthResult::Allow, false), (7, AuthResult::Allow, false)]
        );
        assert_eq!(h.stats().failed_open.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn protected_targets_and_nightjar_are_never_blocked() {
        let (mut h, _rx) = handler();
        let mut es = RecordingEs::default();
        h.clear_cache(&mut es);
        // Even named kcc-like arguments: launchd and the agent are allowed.
        h.handle(
            &mut es,
            &8,
            PLENTY,
            exec(b"/sbin/launchd", vec![b"launchd", b"copy_cred_cache"]),
        );
        h.handle(
            &mut es,
            &9,
            PLENTY,
            exec(setup::PACKAGED_AGENT.as_bytes(), vec![b"nightjar-agent"]),
        );
        assert!(
            es.responses()
                .iter()
                .all(|(_, r, _)| *r == AuthResult::Allow)
        );
    }

    #[test]
    fn a_cut_argv_that_may_hide_the_argument_is_let_through_and_counted() {
        let (mut h, _rx) = handler();
        let mut es = RecordingEs::default();
        let mut args: Vec<&'static [u8]> = vec![b"kcc"];
        args.extend(std::iter::repeat_n(&b"--cache=x"[..], 1500));
        args.push(b"copy_cred_cache");
        args.extend(std::iter::repeat_n(&b"--cache=x"[..], 1500));
        let d = h.handle(&mut es, &10, PLENTY, exec(b"/usr/bin/kcc", args));
        assert_eq!(d, Decision::FailOpen, "blocking is never conservative");
        assert_eq!(es.responses(), [(10, AuthResult::Allow, false)]);
        assert_eq!(h.stats().failed_open.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn an_unanswered_message_is_allowed_by_the_guard_even_through_a_panic() {
        let stats = AuthStats::default();
        let mut es = RecordingEs::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = AllowGuard::new(&mut es, &11, &stats);
            panic!("the decision failed (test)");
        }));
        assert!(caught.is_err());
        assert_eq!(es.responses(), [(11, AuthResult::Allow, false)]);
        assert_eq!(stats.failed_open.load(Ordering::Relaxed), 1);
    }

    /// The handler's decision time (the unit harness's figure for macOS; run
    /// `cargo test --release -p nightjar-sensor auth_decision_time -- --nocapture`).
    #[test]
    fn auth_decision_time() {
        let (mut h, rx) = handler();
        let mut es = RecordingEs::default();
        h.clear_cache(&mut es);
        let mut lat = Vec::with_capacity(20_000);
        for i in 0..20_000u64 {
            let m = if i % 100 == 0 {
                exec(b"/usr/bin/kcc", vec![b"kcc", b"copy_cred_cache"])
            } else {
                exec(b"/usr/bin/git", vec![b"git", b"status", b"--short"])
            };
            let t = Instant::now();
            h.handle(&mut es, &i, PLENTY, m);
            lat.push(t.elapsed().as_nanos() as u64);
            es.calls.clear();
            while rx.try_recv().is_ok() {}
        }
        lat.sort_unstable();
        eprintln!(
            "AUTH_EXEC decision: p50 {} ns, p99 {} ns, max {} ns",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
            lat[lat.len() - 1]
        );
        assert!(lat[lat.len() / 2] < 1_000_000, "well inside any deadline");
    }
}
