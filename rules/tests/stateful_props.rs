//! The engine against the reference interpreter ([`nightjar_rules::naive::stateful`]) on
//! random sequences and samples over random streams: the same matches, made of the same
//! events, whether the stream arrives in order or shuffled within the reorder window. The
//! engine recycles the copies it keeps of events: every event of a match must still be
//! the event it was, whole.

mod support;

use std::borrow::Cow;
use std::time::Duration;

use nightjar_proto::event::Event;
use nightjar_proto::{Args, ExecEvent, Target};
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::engine::{Detection, Engine, Limits};
use nightjar_rules::naive::stateful::{Found, NaiveEngine};
use proptest::prelude::*;
use support::Table;

const MS: i64 = 1_000_000;
const T0: i64 = 1_700_000_000_000 * MS;

#[derive(Debug, Clone)]
struct Ev {
    name: &'static str,
    user: u32,
    pid: u32,
    ppid: u32,
    /// Milliseconds after T0.
    t: i64,
}

fn exec(seq: u64, e: &Ev) -> ExecEvent<'static> {
    ExecEvent {
        sensor_seq: seq,
        time_ns: T0 + e.t * MS,
        target: Target {
            pid: e.pid,
            ppid: Some(e.ppid),
            euid: Some(e.user),
            executable: Cow::Owned(format!("/usr/bin/{}", e.name)),
            args: Args::from_strs([e.name]).0,
            ..Target::default()
        },
        ..ExecEvent::default()
    }
}

fn stream() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "c", "m", "u", "x"]),
            1u32..3,
            10u32..14,
            10u32..14,
            0i64..700,
        ),
        1..60,
    )
    .prop_map(|raw| {
        let mut t = 0;
        raw.into_iter()
            .map(|(name, user, pid, ppid, gap)| {
                // Some events share a timestamp.
                t += if gap < 100 { 0 } else { gap };
                Ev {
                    name,
                    user,
                    pid,
                    ppid,
                    t,
                }
            })
            .collect()
    })
}

fn stage(name: &str) -> String {
    format!("[process where process.name == \"{name}\"]")
}

/// A random sequence or sample query.
fn query() -> impl Strategy<Value = String> {
    let seq = (
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4),
        prop::option::of(prop::sample::select(vec!["500ms", "2s"])),
        0usize..4,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![0usize, 1, 2]),
    )
        .prop_map(|(names, maxspan, missing_at, until, runs, keys)| {
            let mut items: Vec<String> = names.iter().map(|n| stage(n)).collect();
            if runs {
                items[0].push_str(" with runs=2");
            }
            let maxspan = if missing_at < items.len() {
                Some(maxspan.unwrap_or("2s"))
            } else {
                maxspan
            };
            let mut by = "sequence by user.id".to_owned();
            if keys == 1 {
                by = "sequence by process.parent.pid".to_owned();
            }
            if keys == 2 {
                // Stage-level keys: each stage's parent is the previous stage's process.
                by = "sequence".to_owned();
                items = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        if i == 0 {
                            format!("{s} by process.pid")
                        } else {
                            format!("{s} by process.parent.pid")
                        }
                    })
                    .collect();
            }
            if missing_at <= items.len() && missing_at < 3 {
                let m = if keys == 2 {
                    format!("!{} by process.pid", stage("m"))
                } else {
                    format!("!{}", stage("m"))
                };
                items.insert(missing_at, m);
            }
            if items.iter().filter(|s| !s.starts_with('!')).count() + usize::from(runs) < 2 {
                items.push(stage("b"));
            }
            let mut q = by;
            if let Some(m) = maxspan {
                q.push_str(&format!(" with maxspan={m}"));
            }
            for i in items {
                q.push_str("\n  ");
                q.push_str(&i);
            }
            if until {
                q.push_str("\nuntil ");
                q.push_str(&stage("u"));
                if keys == 2 {
                    q.push_str(" by process.pid");
                }
            }
            q
        });
    let sample = (prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 2..4)).prop_map(
        |names| {
            let mut q = "sample by user.id".to_owned();
            for n in names {
                q.push(' ');
                q.push_str(&stage(n));
            }
            q
        },
    );
    prop_oneof![4 => seq, 1 => sample]
}

fn rule(query: &str) -> String {
    format!(
        "[rule]\nrule_id = \"r\"\nname = \"R\"\nseverity = \"low\"\nrisk_score = 21\ntype = \"eql\"\nfrom = \"now-9m\"\nquery = '''\n{query}\n'''\n"
    )
}

fn engine_matches(set: RuleSet, arrivals: &[(u64, Ev)], window: Duration) -> Vec<Vec<u64>> {
    let mut engine = Engine::new(
        set,
        Limits {
            reorder_window: window,
            ..Limits::default()
        },
    );
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut out = Vec::new();
    for (seq, e) in arrivals {
        let ev = exec(*seq, e);
        engine.on_event(&EcsEvent::new(&ev, &table, &host), &mut out);
    }
    engine.finish(&mut out);
    let mut m: Vec<Vec<u64>> = out
        .into_iter()
        .filter_map(|d| match d {
            Detection::Correlated { events, .. } => Some(
                events
                    .iter()
                    .map(|e| {
                        let seq = e.event().meta().sensor_seq;
                        let (_, original) = arrivals
                            .iter()
                            .find(|(s, _)| *s == seq)
                            .expect("a match's event is one of the stream's");
                        assert_eq!(e.event(), &Event::Exec(exec(seq, original)));
                        seq
                    })
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    m.sort();
    m
}

fn reference_matches(set: &RuleSet, events: &[(u64, Ev)]) -> Vec<Vec<u64>> {
    let mut naive = NaiveEngine::new(set);
    let host = HostInfo::new("h", "host-1");
    let table = Table::default();
    let mut sorted = events.to_vec();
    sorted.sort_by_key(|(seq, e)| (e.t, *seq));
    let mut out = Vec::new();
    for (seq, e) in &sorted {
        let ev = exec(*seq, e);
        let doc = EcsEvent::new(&ev, &table, &host).document();
        naive.on_document(&doc, ev.time_ns, *seq, &mut out);
    }
    naive.finish(&mut out);
    let mut m: Vec<Vec<u64>> = out
        .into_iter()
        .filter_map(|f| match f {
            Found::Correlated { seqs, .. } => Some(seqs),
            _ => None,
        })
        .collect();
    m.sort();
    m
}

fn load(query: &str) -> Option<RuleSet> {
    let (set, report) = RuleSet::from_texts(&[("t.toml", &rule(query))], None);
    (report.ok() == 1).then_some(set)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn in_order_streams(q in query(), events in stream()) {
        let Some(set) = load(&q) else {
            return Err(TestCaseError::reject("query did not load"));
        };
        let numbered: Vec<(u64, Ev)> =
            events.into_iter().enumerate().map(|(i, e)| (i as u64 + 1, e)).collect();
        let reference = reference_matches(&set, &numbered);
        let got = engine_matches(set, &numbered, Duration::ZERO);
        prop_assert_eq!(got, reference, "query:\n{}", q);
    }

    /// In order through a reorder window: every hit waits, then leaves by the in-order
    /// path of the buffer.
    #[test]
    fn in_order_through_the_window(q in query(), events in stream()) {
        let Some(set) = load(&q) else {
            return Err(TestCaseError::reject("query did not load"));
        };
        let numbered: Vec<(u64, Ev)> =
            events.into_iter().enumerate().map(|(i, e)| (i as u64 + 1, e)).collect();
        let reference = reference_matches(&set, &numbered);
        let got = engine_matches(set, &numbered, Duration::from_secs(2));
        prop_assert_eq!(got, reference, "query:\n{}", q);
    }

    #[test]
    fn shuffled_within_the_window(q in query(), events in stream(), swaps in prop::collection::vec(0usize..60, 0..20)) {
        let Some(set) = load(&q) else {
            return Err(TestCaseError::reject("query did not load"));
        };
        let numbered: Vec<(u64, Ev)> =
            events.into_iter().enumerate().map(|(i, e)| (i as u64 + 1, e)).collect();
        // Arrival order: neighbours swapped, at most 1s apart in event time.
        let mut arrivals = numbered.clone();
        for s in swaps {
            if s + 1 < arrivals.len() && arrivals[s + 1].1.t - arrivals[s].1.t <= 1_000 {
                arrivals.swap(s, s + 1);
            }
        }
        let reference = reference_matches(&set, &numbered);
        let got = engine_matches(set, &arrivals, Duration::from_secs(2));
        prop_assert_eq!(got, reference, "query:\n{}", q);
    }
}
