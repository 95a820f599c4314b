//! Stateful rules, semantic point by semantic point, each with hand-checked expected
//! matches: sequences (order, maxspan edges, overwrite of pending matches, `until`, `runs`,
//! missing events, joins across fields, out-of-order arrival, bounded state), samples,
//! thresholds and new_terms (learning, windows, history across restarts).

mod support;

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use nightjar_proto::{Args, ExecEvent, Target};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::engine::{Detection, Engine, Limits, TermStore};
use support::*;

const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000_000 * MS;

/// An exec of `name` by `user` at `t_ms` after T0, capture order `seq`, pid `pid`, parent
/// `ppid`.
fn ev(seq: u64, t_ms: i64, pid: u32, ppid: u32, name: &str, user: u32) -> ExecEvent<'static> {
    ExecEvent {
        sensor_seq: seq,
        time_ns: T0 + t_ms * MS,
        target: Target {
            pid,
            ppid: Some(ppid),
            euid: Some(user),
            executable: Cow::Owned(format!("/usr/bin/{name}")),
            args: Args::from_strs([name]).0,
            ..Target::default()
        },
        ..ExecEvent::default()
    }
}

fn rule(ty: &str, query: &str, extra: &str) -> String {
    format!(
        "[rule]\nrule_id = \"r\"\nname = \"R\"\nseverity = \"low\"\nrisk_score = 21\ntype = \"{ty}\"\nfrom = \"now-9m\"\n{extra}query = '''\n{query}\n'''\n"
    )
}

fn engine_of(toml: &str, limits: Limits) -> Engine {
    let (set, report) = RuleSet::from_texts(&[("t.toml", toml)], None);
    assert_eq!(report.ok(), 1, "{report:?}");
    Engine::new(set, limits)
}

fn limits() -> Limits {
    Limits {
        reorder_window: Duration::ZERO,
        ..Limits::default()
    }
}

/// Runs the events through the engine, in the order given, then ends the input; the
/// sensor sequence numbers of each correlated match.
fn run(engine: &mut Engine, events: &[ExecEvent<'static>]) -> Vec<Vec<u64>> {
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    for e in events {
        engine.on_event(&EcsEvent::new(e, &table, &host), &mut out);
    }
    engine.finish(&mut out);
    correlated(&out)
}

fn correlated(out: &[Detection]) -> Vec<Vec<u64>> {
    out.iter()
        .filter_map(|d| match d {
            Detection::Correlated { events, .. } => {
                Some(events.iter().map(|e| e.event().meta().sensor_seq).collect())
            }
            _ => None,
        })
        .collect()
}

fn seq(query: &str) -> Engine {
    engine_of(&rule("eql", query, ""), limits())
}

#[test]
fn elasticsearch_state_machine_example() {
    // The example of Elasticsearch's "How sequence queries handle matches".
    let mut e = seq(
        "sequence by user.id\n [process where process.name == \"attrib\"]\n [process where process.name == \"bash\"]\n [process where process.name == \"cat\"]",
    );
    let (root, elkbee) = (0, 1000);
    let names = [
        (root, "attrib"),
        (root, "attrib"),
        (elkbee, "bash"),
        (root, "bash"),
        (root, "bash"),
        (elkbee, "attrib"),
        (root, "attrib"),
        (elkbee, "bash"),
        (root, "cat"),
        (elkbee, "cat"),
        (root, "cat"),
    ];
    let events: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, (u, n))| ev(i as u64 + 1, i as i64, 100 + i as u32, 1, n, *u))
        .collect();
    assert_eq!(run(&mut e, &events), vec![vec![2, 4, 9], vec![6, 8, 10]]);
}

#[test]
fn order_matters() {
    let q = "sequence by user.id [process where process.name == \"a\"] [process where process.name == \"b\"]";
    assert_eq!(
        run(
            &mut seq(q),
            &[ev(1, 0, 10, 1, "a", 5), ev(2, 1, 11, 1, "b", 5)]
        ),
        vec![vec![1, 2]]
    );
    assert!(
        run(
            &mut seq(q),
            &[ev(1, 0, 10, 1, "b", 5), ev(2, 1, 11, 1, "a", 5)]
        )
        .is_empty()
    );
    // Another key does not join.
    assert!(
        run(
            &mut seq(q),
            &[ev(1, 0, 10, 1, "a", 5), ev(2, 1, 11, 1, "b", 6)]
        )
        .is_empty()
    );
}

#[test]
fn one_event_matching_two_stages_is_in_two_matches() {
    // Both stages match every `x`: 1-2, then 2 starts the next, 2-3? No: 3 completes the
    // partial 2 started, so the matches are [1,2] and [2,3].
    let q = "sequence by user.id [process where process.name == \"x\"] [process where process.name == \"x\"]";
    let events = [
        ev(1, 0, 10, 1, "x", 5),
        ev(2, 1, 11, 1, "x", 5),
        ev(3, 2, 12, 1, "x", 5),
    ];
    assert_eq!(run(&mut seq(q), &events), vec![vec![1, 2], vec![2, 3]]);
}

#[test]
fn maxspan_edges_are_inclusive() {
    let q = "sequence by user.id with maxspan=10s [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let at = |t_ms| vec![ev(1, 0, 10, 1, "a", 5), ev(2, t_ms, 11, 1, "b", 5)];
    assert_eq!(run(&mut seq(q), &at(10_000)), vec![vec![1, 2]]);
    assert!(run(&mut seq(q), &at(10_001)).is_empty());
    // Every stage within maxspan of the first, not of the previous.
    let q3 = "sequence by user.id with maxspan=10s [process where process.name == \"a\"] [process where process.name == \"b\"] [process where process.name == \"c\"]";
    let events = [
        ev(1, 0, 10, 1, "a", 5),
        ev(2, 6_000, 11, 1, "b", 5),
        ev(3, 12_000, 12, 1, "c", 5),
    ];
    assert!(run(&mut seq(q3), &events).is_empty());
}

#[test]
fn a_newer_pending_match_replaces_the_older() {
    let q = "sequence by user.id with maxspan=10s [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let events = [
        ev(1, 0, 10, 1, "a", 5),
        ev(2, 5_000, 11, 1, "a", 5),
        ev(3, 12_000, 12, 1, "b", 5),
    ];
    // The pending [1] was replaced by [2], which is within maxspan of 3.
    assert_eq!(run(&mut seq(q), &events), vec![vec![2, 3]]);
}

#[test]
fn until_ends_pending_matches_of_its_key() {
    let q = "sequence by user.id [process where process.name == \"a\"] [process where process.name == \"b\"] until [process where process.name == \"stop\"]";
    let abc = |third: &str| {
        vec![
            ev(1, 0, 10, 1, "a", 5),
            ev(2, 1, 11, 1, third, 5),
            ev(3, 2, 12, 1, "b", 5),
        ]
    };
    assert!(run(&mut seq(q), &abc("stop")).is_empty());
    assert_eq!(run(&mut seq(q), &abc("other")), vec![vec![1, 3]]);
    // After the match, `until` changes nothing; for another key, nothing either.
    let events = [
        ev(1, 0, 10, 1, "a", 5),
        ev(2, 1, 11, 1, "stop", 6),
        ev(3, 2, 12, 1, "b", 5),
        ev(4, 3, 13, 1, "stop", 5),
    ];
    assert_eq!(run(&mut seq(q), &events), vec![vec![1, 3]]);
}

#[test]
fn runs_repeat_a_stage() {
    let q = "sequence by user.id with maxspan=1m [process where process.name == \"pbpaste\"] with runs = 3";
    let n = |k: u64| -> Vec<_> {
        (1..=k)
            .map(|i| ev(i, i as i64, 10 + i as u32, 1, "pbpaste", 5))
            .collect()
    };
    assert!(run(&mut seq(q), &n(2)).is_empty());
    assert_eq!(run(&mut seq(q), &n(3)), vec![vec![1, 2, 3]]);
    // The fourth starts over: [2,3,4] shares events with [1,2,3], as Elasticsearch's
    // state machine does.
    assert_eq!(run(&mut seq(q), &n(4)), vec![vec![1, 2, 3], vec![2, 3, 4]]);
}

#[test]
fn missing_event_between_stages() {
    let q = "sequence by user.id with maxspan=10s [process where process.name == \"a\"] ![process where process.name == \"m\"] [process where process.name == \"b\"]";
    let with = |names: &[&str]| -> Vec<_> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ev(i as u64 + 1, i as i64 * 100, 10 + i as u32, 1, n, 5))
            .collect()
    };
    assert_eq!(run(&mut seq(q), &with(&["a", "b"])), vec![vec![1, 2]]);
    assert!(run(&mut seq(q), &with(&["a", "m", "b"])).is_empty());
    assert_eq!(
        run(&mut seq(q), &with(&["a", "m", "a", "b"])),
        vec![vec![3, 4]]
    );
    // A missing event of another key does not count.
    let events = [
        ev(1, 0, 10, 1, "a", 5),
        ev(2, 1, 11, 1, "m", 6),
        ev(3, 2, 12, 1, "b", 5),
    ];
    assert_eq!(run(&mut seq(q), &events), vec![vec![1, 3]]);
}

#[test]
fn leading_and_trailing_missing_events() {
    let lead = "sequence by user.id with maxspan=1s ![process where process.name == \"m\"] [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let events = |t_a: i64| {
        vec![
            ev(1, 0, 10, 1, "m", 5),
            ev(2, t_a, 11, 1, "a", 5),
            ev(3, t_a + 1, 12, 1, "b", 5),
        ]
    };
    assert!(run(&mut seq(lead), &events(500)).is_empty());
    assert_eq!(run(&mut seq(lead), &events(1_500)), vec![vec![2, 3]]);

    let trail = "sequence by user.id with maxspan=1s [process where process.name == \"a\"] ![process where process.name == \"m\"]";
    // Held until maxspan passed: complete at the end of input, or when time moves on.
    assert_eq!(
        run(&mut seq(trail), &[ev(1, 0, 10, 1, "a", 5)]),
        vec![vec![1]]
    );
    let mut e = seq(trail);
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    e.on_event(
        &EcsEvent::new(&ev(1, 0, 10, 1, "a", 5), &table, &host),
        &mut out,
    );
    e.advance(T0 + 900 * MS, &mut out);
    assert!(correlated(&out).is_empty(), "held within the window");
    e.advance(T0 + 1_100 * MS, &mut out);
    assert_eq!(correlated(&out), vec![vec![1]]);
    // The missing event within the window drops it.
    let events = [ev(1, 0, 10, 1, "a", 5), ev(2, 700, 11, 1, "m", 5)];
    assert!(run(&mut seq(trail), &events).is_empty());
    let events = [ev(1, 0, 10, 1, "a", 5), ev(2, 1_200, 11, 1, "m", 5)];
    assert_eq!(run(&mut seq(trail), &events), vec![vec![1]]);
}

#[test]
fn stages_join_on_different_fields() {
    // A shell, then a child of it: the child's parent pid is the shell's pid.
    let q = "sequence with maxspan=1m [process where process.name == \"sh\"] by process.pid [process where process.name == \"curl\"] by process.parent.pid";
    let events = [
        ev(1, 0, 10, 1, "sh", 5),
        ev(2, 1, 20, 99, "curl", 5),
        ev(3, 2, 21, 10, "curl", 5),
    ];
    assert_eq!(run(&mut seq(q), &events), vec![vec![1, 3]]);
}

#[test]
fn a_missing_join_field_keeps_the_event_out_but_an_optional_one_does_not() {
    let q = "sequence by process.parent.pid [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let mut a = ev(1, 0, 10, 1, "a", 5);
    let mut b = ev(2, 1, 11, 1, "b", 5);
    a.target.ppid = None;
    b.target.ppid = None;
    assert!(run(&mut seq(q), &[a.clone(), b.clone()]).is_empty());
    let optional = "sequence by ?process.parent.pid [process where process.name == \"a\"] [process where process.name == \"b\"]";
    assert_eq!(run(&mut seq(optional), &[a, b]), vec![vec![1, 2]]);
}

#[test]
fn out_of_order_arrival_within_the_reorder_window() {
    let q = "sequence by user.id with maxspan=1m [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let window = Limits {
        reorder_window: Duration::from_secs(2),
        ..Limits::default()
    };
    // b (t=1.0s) arrives before a (t=0.5s): in timestamp order it is a, b.
    let late_a = [ev(2, 1_000, 11, 1, "b", 5), ev(1, 500, 10, 1, "a", 5)];
    let mut e = engine_of(&rule("eql", q, ""), window);
    assert_eq!(run(&mut e, &late_a), vec![vec![1, 2]]);
    assert_eq!(e.stats().late, 0);
    // Without a window, the same arrival order is no match (and `a` is late).
    let mut e = seq(q);
    assert!(run(&mut e, &late_a).is_empty());
    assert_eq!(e.stats().late, 1);
    // Later than the window: taken as it comes, counted.
    let very_late = [
        ev(2, 5_000, 11, 1, "b", 5),
        ev(3, 8_000, 12, 1, "x", 5),
        ev(1, 500, 10, 1, "a", 5),
    ];
    let mut e = engine_of(&rule("eql", q, ""), window);
    assert!(run(&mut e, &very_late).is_empty());
    assert_eq!(e.stats().late, 1);
}

#[test]
fn state_is_bounded_and_evictions_are_counted() {
    let q = "sequence by process.pid with maxspan=1h [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let limits = Limits {
        per_rule: 100,
        reorder_window: Duration::ZERO,
        ..Limits::default()
    };
    let mut e = engine_of(&rule("eql", q, ""), limits);
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    // 10,000 keys that never complete.
    for i in 0..10_000u32 {
        let x = ev(u64::from(i) + 1, i64::from(i), 1000 + i, 1, "a", 5);
        e.on_event(&EcsEvent::new(&x, &table, &host), &mut out);
        assert!(e.stats().held <= 100);
    }
    let s = e.stats();
    assert_eq!(s.held, 100);
    assert_eq!(s.evicted, 9_900);
    // The newest survive: the last key still completes, the first does not.
    for (i, pid) in [(20_001u64, 1000 + 9_999u32), (20_002, 1000)] {
        let b = ev(i, 10_001 + i as i64, pid, 1, "b", 5);
        e.on_event(&EcsEvent::new(&b, &table, &host), &mut out);
    }
    assert_eq!(correlated(&out), vec![vec![10_000, 20_001]]);
    // A byte budget bounds the total too.
    let tiny = Limits {
        total_bytes: 64 << 10,
        reorder_window: Duration::ZERO,
        ..Limits::default()
    };
    let mut e = engine_of(&rule("eql", q, ""), tiny);
    for i in 0..10_000u32 {
        let x = ev(u64::from(i) + 1, i64::from(i), 1000 + i, 1, "a", 5);
        e.on_event(&EcsEvent::new(&x, &table, &host), &mut out);
        assert!(e.stats().bytes <= 64 << 10, "{:?}", e.stats());
    }
    assert!(e.stats().evicted > 9_000);
    // So does it a flood of hits within one reorder window (all at one instant): the
    // window gives up its oldest hits early instead of growing.
    let flood = Limits {
        total_bytes: 64 << 10,
        reorder_window: Duration::from_secs(2),
        ..Limits::default()
    };
    let mut e = engine_of(&rule("eql", q, ""), flood);
    for i in 0..10_000u32 {
        let x = ev(u64::from(i) + 1, 0, 1000 + i, 1, "a", 5);
        e.on_event(&EcsEvent::new(&x, &table, &host), &mut out);
        assert!(e.stats().bytes <= 64 << 10, "{:?}", e.stats());
    }
    assert!(e.stats().evicted > 9_000);
    // Hits taken early still match: the newest key completes.
    out.clear();
    let b = ev(20_001, 1, 1000 + 9_999, 1, "b", 5);
    e.on_event(&EcsEvent::new(&b, &table, &host), &mut out);
    e.finish(&mut out);
    assert_eq!(correlated(&out), vec![vec![10_000, 20_001]]);
}

#[test]
fn partials_expire_with_maxspan_or_the_look_back() {
    let q = "sequence by process.pid with maxspan=10s [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let mut e = seq(q);
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    for i in 0..50u32 {
        let x = ev(u64::from(i) + 1, i64::from(i), 1000 + i, 1, "a", 5);
        e.on_event(&EcsEvent::new(&x, &table, &host), &mut out);
    }
    assert_eq!(e.stats().held, 50);
    e.advance(T0 + 11_000 * MS, &mut out);
    assert_eq!(e.stats().held, 0);
    // Without maxspan: the rule's look-back (now-9m).
    let q = "sequence by process.pid [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let mut e = seq(q);
    e.on_event(
        &EcsEvent::new(&ev(1, 0, 10, 1, "a", 5), &table, &host),
        &mut out,
    );
    e.advance(T0 + 8 * 60_000 * MS, &mut out);
    assert_eq!(e.stats().held, 1);
    e.advance(T0 + 9 * 60_000 * MS + MS, &mut out);
    assert_eq!(e.stats().held, 0);
}

#[test]
fn samples_take_one_event_per_item_in_any_order() {
    let q = "sample by user.id [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let mut e = seq(q);
    let events = [
        ev(1, 0, 10, 1, "b", 5),
        ev(2, 1, 11, 1, "b", 5),
        ev(3, 2, 12, 1, "a", 6),
        ev(4, 3, 13, 1, "a", 5),
        // One sample per key within the look-back.
        ev(5, 4, 14, 1, "a", 5),
        ev(6, 5, 15, 1, "b", 5),
    ];
    assert_eq!(run(&mut e, &events), vec![vec![4, 1]]);
}

fn threshold(value: u64, cardinality: &str) -> Engine {
    let toml = format!(
        "{}[rule.threshold]\nfield = [\"user.id\"]\nvalue = {value}\n{cardinality}",
        rule("threshold", "process.name:ssh*", "language = \"kuery\"\n")
    );
    engine_of(&toml, limits())
}

fn thresholds(out: &[Detection]) -> Vec<(u64, Option<u64>)> {
    out.iter()
        .filter_map(|d| match d {
            Detection::Threshold {
                count, cardinality, ..
            } => Some((*count, *cardinality)),
            _ => None,
        })
        .collect()
}

#[test]
fn thresholds_count_per_group_within_the_window_once_per_window() {
    let mut e = threshold(3, "");
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    let feed = |e: &mut Engine, out: &mut Vec<Detection>, seq: u64, t_ms: i64, user: u32| {
        let x = ev(seq, t_ms, 10, 1, "sshd", user);
        e.on_event(&EcsEvent::new(&x, &table, &host), out);
    };
    feed(&mut e, &mut out, 1, 0, 5);
    feed(&mut e, &mut out, 2, 1_000, 5);
    feed(&mut e, &mut out, 3, 2_000, 6);
    assert!(thresholds(&out).is_empty());
    feed(&mut e, &mut out, 4, 3_000, 5);
    assert_eq!(thresholds(&out), vec![(3, None)]);
    // More in the same window: no second alert.
    feed(&mut e, &mut out, 5, 4_000, 5);
    feed(&mut e, &mut out, 6, 5_000, 5);
    assert_eq!(thresholds(&out).len(), 1);
    // Past the window (9m) the group can alert again, but only with 3 events in it.
    let later = 10 * 60_000;
    feed(&mut e, &mut out, 7, later, 5);
    feed(&mut e, &mut out, 8, later + 1, 5);
    assert_eq!(thresholds(&out).len(), 1);
    feed(&mut e, &mut out, 9, later + 2, 5);
    assert_eq!(thresholds(&out), vec![(3, None), (3, None)]);
    // Events spread wider than the window never reach it.
    let mut e = threshold(3, "");
    for (i, t) in [0, 5 * 60_000, 10 * 60_000, 15 * 60_000]
        .into_iter()
        .enumerate()
    {
        feed(&mut e, &mut out, 100 + i as u64, t, 7);
    }
    assert_eq!(thresholds(&out).len(), 2);
}

#[test]
fn threshold_cardinality_counts_distinct_values() {
    let mut e = threshold(
        1,
        "[[rule.threshold.cardinality]]\nfield = \"process.pid\"\nvalue = 3\n",
    );
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    for (i, pid) in [10u32, 10, 11, 11, 12].into_iter().enumerate() {
        let x = ev(i as u64 + 1, i as i64, pid, 1, "ssh", 5);
        e.on_event(&EcsEvent::new(&x, &table, &host), &mut out);
        let expect = if i == 4 { 1 } else { 0 };
        assert_eq!(thresholds(&out).len(), expect, "after event {i}");
    }
    assert_eq!(thresholds(&out)[0].1, Some(3));
}

/// A term store in memory that survives engines, as the agent's store survives restarts.
#[derive(Default)]
struct Memory(HashMap<String, (i64, HashMap<u128, i64>)>);

impl TermStore for Memory {
    fn load(&mut self, rule: &str) -> (Option<i64>, Vec<(u128, i64)>) {
        match self.0.get(rule) {
            Some((since, terms)) => (Some(*since), terms.iter().map(|(h, t)| (*h, *t)).collect()),
            None => (None, Vec::new()),
        }
    }
    fn save(&mut self, rule: &str, since: i64, seen: &[(u128, i64)], removed: &[u128]) {
        let e = self
            .0
            .entry(rule.to_owned())
            .or_insert((since, HashMap::new()));
        e.0 = since;
        e.1.extend(seen.iter().copied());
        for h in removed {
            e.1.remove(h);
        }
    }
}

fn new_terms_rule() -> String {
    "[rule]\nrule_id = \"nt\"\nname = \"NT\"\nseverity = \"low\"\nrisk_score = 21\ntype = \"new_terms\"\nlanguage = \"kuery\"\nfrom = \"now-9m\"\nquery = '''\nevent.category:process and user.id:*\n'''\n[rule.new_terms]\nfield = \"new_terms_fields\"\nvalue = [\"host.id\", \"process.executable\"]\n[[rule.new_terms.history_window_start]]\nfield = \"history_window_start\"\nvalue = \"now-1d\"\n".to_owned()
}

fn new_terms(out: &[Detection]) -> Vec<Vec<String>> {
    out.iter()
        .filter_map(|d| match d {
            Detection::NewTerms { terms, .. } => Some(terms.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn new_terms_learn_a_window_then_alert_on_the_unseen() {
    const DAY: i64 = 86_400_000;
    let mut store = Memory::default();
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    let mut e = engine_of(&new_terms_rule(), limits());
    e.load_terms(&mut store);
    let feed = |e: &mut Engine, out: &mut Vec<Detection>, seq: u64, t_ms: i64, name: &str| {
        let x = ev(seq, t_ms, 10, 1, name, 5);
        e.on_event(&EcsEvent::new(&x, &table, &host), out);
    };
    // Learning for the first day: nothing, however new.
    feed(&mut e, &mut out, 1, 0, "sh");
    feed(&mut e, &mut out, 2, DAY / 4, "ls");
    feed(&mut e, &mut out, 7, DAY / 2, "curl");
    assert!(new_terms(&out).is_empty());
    assert_eq!(e.stats().learning, 1);
    // A restart: history comes back from the store.
    e.save_terms(&mut store);
    let mut e = engine_of(&new_terms_rule(), limits());
    e.load_terms(&mut store);
    feed(&mut e, &mut out, 3, DAY + 1, "ls");
    feed(&mut e, &mut out, 4, DAY + 2, "nc");
    assert_eq!(
        new_terms(&out),
        vec![vec!["host-1".to_owned(), "/usr/bin/nc".to_owned()]]
    );
    assert_eq!(e.stats().learning, 0);
    // Seen within the window: not new. Unseen for longer than the window: new again.
    feed(&mut e, &mut out, 5, DAY + 3, "nc");
    assert_eq!(new_terms(&out).len(), 1);
    feed(&mut e, &mut out, 6, 3 * DAY, "nc");
    assert_eq!(new_terms(&out).len(), 2);
}

#[test]
fn fleet_wide_new_terms_need_the_option() {
    let toml = new_terms_rule().replace(
        "[\"host.id\", \"process.executable\"]",
        "[\"process.executable\"]",
    );
    let (_, report) = RuleSet::from_texts(&[("t.toml", &toml)], None);
    assert_eq!(report.ok(), 0);
    let (_, report) = RuleSet::build(nightjar_rules::Sources {
        rules: vec![nightjar_rules::SourceText {
            name: "t.toml".into(),
            text: toml.clone(),
        }],
        new_terms_per_host: true,
        ..Default::default()
    });
    assert_eq!(report.ok(), 1);
}

#[test]
fn an_exception_on_any_event_of_a_sequence_suppresses_it() {
    // DESIGN: for sequences, an exception that matches any event of the match suppresses
    // it. The item excepts user 501's `b`: the match of user 501 is excepted (by its second
    // event), user 502's is not; a new term or threshold is judged on its own event.
    let q = "sequence by user.id [process where process.name == \"a\"] [process where process.name == \"b\"]";
    let list = serde_json::json!({"description":"Endpoint Security Exception List",
        "id":"endpoint_list","immutable":false,"list_id":"endpoint_list",
        "name":"Endpoint Security Exception List","namespace_type":"agnostic","os_types":[],
        "tags":[],"type":"endpoint","version":1});
    let item = serde_json::json!({"comments":[],"description":"","entries":[
            {"field":"user.id","operator":"included","type":"match","value":"501"},
            {"field":"process.name","operator":"included","type":"match","value":"b"}],
        "id":"i1","item_id":"tuned-b","list_id":"endpoint_list","name":"tuned-b",
        "namespace_type":"agnostic","os_types":[],"tags":[],"type":"simple"});
    let (set, report) = RuleSet::build(nightjar_rules::Sources {
        rules: vec![nightjar_rules::SourceText {
            name: "t.toml".into(),
            text: rule("eql", q, ""),
        }],
        exceptions: vec![nightjar_rules::SourceText {
            name: "e.ndjson".into(),
            text: format!("{list}\n{item}\n"),
        }],
        ..Default::default()
    });
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    let mut engine = Engine::new(set, limits());
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let events = [
        ev(1, 0, 10, 1, "a", 501),
        ev(2, 10, 11, 1, "a", 502),
        ev(3, 20, 12, 1, "b", 501),
        ev(4, 30, 13, 1, "b", 502),
    ];
    let mut out = Vec::new();
    for e in &events {
        engine.on_event(&EcsEvent::new(e, &table, &host), &mut out);
    }
    engine.finish(&mut out);
    assert_eq!(correlated(&out), [vec![1, 3], vec![2, 4]]);
    let excepted: Vec<Option<&str>> = out
        .iter()
        .map(|d| engine.excepted(d, None, &host, T0))
        .collect();
    assert_eq!(excepted, [Some("tuned-b"), None]);
}

#[test]
fn runs_share_one_compiled_stage_and_report_every_slot() {
    // Stages 0 and 1 are one query (`runs=2`), compiled and tested once; a hit reports both
    // slots, and the stage after them keeps its own slot.
    let q = "sequence by user.id with maxspan=1m [process where process.name == \"pbpaste\"] with runs = 2 [process where process.name == \"curl\"]";
    let (set, report) = RuleSet::from_texts(&[("t.toml", &rule("eql", q, ""))], None);
    assert_eq!(report.ok(), 1, "{report:?}");
    assert_eq!(set.slots(), 3);
    let host = HostInfo::new("h", "h");
    let mut out = Vec::new();
    for (name, want) in [("pbpaste", vec![0, 1]), ("curl", vec![2]), ("ls", vec![])] {
        let e = ev(1, 0, 10, 1, name, 5);
        set.evaluate_slots(
            &EcsEvent::new(&e, &nightjar_rules::ecs::NoProcesses, &host),
            &mut out,
        );
        assert_eq!(out, want, "{name}");
    }
    let events: Vec<_> = (1..=3)
        .map(|i| {
            ev(
                i,
                i as i64,
                10,
                1,
                ["pbpaste", "pbpaste", "curl"][i as usize - 1],
                5,
            )
        })
        .collect();
    assert_eq!(run(&mut seq(q), &events), vec![vec![1, 2, 3]]);
}

#[test]
fn rules_on_environment_variables_run_only_on_events_that_carry_some() {
    let q = "process where process.env_vars like~ (\"HISTSIZE=0\", \"HISTFILE=/dev/null\")";
    let (set, report) = RuleSet::from_texts(&[("t.toml", &rule("eql", q, ""))], None);
    assert_eq!(report.ok(), 1, "{report:?}");
    let host = HostInfo::new("h", "h");
    let mut out = Vec::new();
    let mut e = ev(1, 0, 10, 1, "bash", 5);
    for (vars, want) in [
        (vec![], vec![]),
        (vec!["LD_PRELOAD=/x.so"], vec![]),
        (vec!["LD_PRELOAD=/x.so", "histfile=/dev/null"], vec![0]),
    ] {
        e.target.env_vars = Args::from_strs(vars.iter().copied()).0;
        set.evaluate_slots(
            &EcsEvent::new(&e, &nightjar_rules::ecs::NoProcesses, &host),
            &mut out,
        );
        assert_eq!(out, want, "{vars:?}");
    }
}
