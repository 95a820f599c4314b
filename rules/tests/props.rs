//! Property tests: the compiled matcher (indexes, folding, byte-level globs) agrees with the
//! naive interpreter on random queries and random events.

mod support;

use std::borrow::Cow;

use nightjar_proto::{Args, ExecEvent, OsType, Target};
use nightjar_rules::ecs::{EcsEvent, FieldKind, HostInfo, kind_of};
use nightjar_rules::matcher::Matcher;
use nightjar_rules::naive::NaiveRules;
use nightjar_rules::query::ast::{Cmp, Lit, Op, Pred, Query, Tok};
use nightjar_rules::query::typing::TypedPred;
use proptest::prelude::*;
use support::Table;

const FIELDS: &[&str] = &[
    "process.name",
    "process.args",
    "process.command_line",
    "process.executable",
    "process.working_directory",
    "process.parent.name",
    "process.parent.args",
    "process.parent.command_line",
    "process.parent.executable",
    "process.Ext.effective_parent.executable",
    "process.Ext.effective_parent.name",
    "user.id",
    "user.name",
    "group.id",
    "process.user.id",
    "process.real_user.id",
    "process.pid",
    "process.args_count",
    "process.parent.pid",
    "process.code_signature.trusted",
    "process.code_signature.exists",
    "process.parent.code_signature.trusted",
    "event.category",
    "event.type",
    "event.action",
    "host.os.type",
    "file.path",
];

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "a", "b", "A", "B", "ab", "é", "É", "ß", "\u{212A}", "k", " ", "/", "?", "0", "501"
        ])
        .prop_map(str::to_owned),
        Just("process".to_owned()),
        Just("start".to_owned()),
        Just("macos".to_owned()),
        Just("root".to_owned()),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        9 => prop::collection::vec(piece(), 0..4).prop_map(|v| v.concat()),
        1 => Just("a".repeat(1025)),
        1 => Just("é".repeat(600)),
    ]
}

fn toks() -> impl Strategy<Value = Vec<Tok>> {
    prop::collection::vec(
        prop_oneof![
            3 => piece().prop_map(Tok::Lit),
            2 => Just(Tok::Star),
            1 => Just(Tok::One),
        ],
        0..5,
    )
}

fn regex_src() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "a", "b", ".", "a*", "(a|b)", "[ab]", "[^a]", ".*", "é", "\\/", "/", "b+", "x?",
        ]),
        0..5,
    )
    .prop_map(|v| v.concat())
}

fn cmp() -> impl Strategy<Value = Cmp> {
    prop::sample::select(vec![Cmp::Eq, Cmp::Eq, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge])
}

fn leaf() -> impl Strategy<Value = Query<Pred>> {
    prop::sample::select(FIELDS).prop_flat_map(|field| {
        let op = match kind_of(field) {
            FieldKind::Keyword | FieldKind::Wildcard => prop_oneof![
                Just(Op::Exists),
                (cmp(), text()).prop_map(|(c, s)| Op::Compare(c, Lit::Str(s))),
                (toks(), any::<bool>()).prop_map(|(toks, ci)| Op::Pattern { toks, ci }),
                (regex_src(), any::<bool>()).prop_map(|(pattern, ci)| Op::Regex { pattern, ci }),
            ]
            .boxed(),
            FieldKind::Long => prop_oneof![
                Just(Op::Exists),
                (cmp(), 0..800i32).prop_map(|(c, n)| Op::Compare(c, Lit::Num(f64::from(n)))),
            ]
            .boxed(),
            FieldKind::Bool => prop_oneof![
                Just(Op::Exists),
                any::<bool>().prop_map(|b| Op::Compare(Cmp::Eq, Lit::Bool(b))),
            ]
            .boxed(),
        };
        op.prop_map(move |op| {
            Query::Leaf(Pred {
                field: field.to_owned(),
                op,
                at: 0,
            })
        })
    })
}

fn query() -> impl Strategy<Value = Query<Pred>> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(Query::And),
            prop::collection::vec(inner.clone(), 1..4).prop_map(Query::Or),
            inner.prop_map(|q| Query::Not(Box::new(q))),
        ]
    })
}

/// A query likely to be indexed: `process.name == X and ...`, `process.parent.name in~ (...)`,
/// `process.args : X*`, `process.command_line : *X*`, `process.executable : ?X*`,
/// `user.id == X`, `process.args : (*X*, *Y*, *Z*)`.
fn indexed_query() -> impl Strategy<Value = Query<Pred>> {
    (
        prop::sample::select(vec![
            "process.name",
            "process.parent.name",
            "process.args",
            "process.command_line",
            "process.executable",
            "user.id",
            "group.id",
            "process.user.id",
            "user.name",
            "process.parent.executable",
        ]),
        prop::collection::vec((piece(), any::<bool>(), 0..5u8), 1..5),
        query(),
    )
        .prop_map(|(field, names, rest)| {
            let any_of = Query::Or(
                names
                    .into_iter()
                    .map(|(n, ci, shape)| {
                        let op = match shape {
                            0 if !ci => Op::Compare(Cmp::Eq, Lit::Str(n)),
                            0 => Op::Pattern {
                                toks: vec![Tok::Lit(n)],
                                ci: true,
                            },
                            1 => Op::Pattern {
                                toks: vec![Tok::Lit(n), Tok::Star],
                                ci,
                            },
                            3 => Op::Pattern {
                                toks: vec![Tok::One, Tok::Lit(n), Tok::Star],
                                ci,
                            },
                            4 => Op::Pattern {
                                toks: vec![Tok::Lit(n), Tok::One, Tok::Star],
                                ci,
                            },
                            _ => Op::Pattern {
                                toks: vec![Tok::Star, Tok::Lit(n), Tok::Star],
                                ci,
                            },
                        };
                        Query::Leaf(Pred {
                            field: field.to_owned(),
                            op,
                            at: 0,
                        })
                    })
                    .collect(),
            );
            Query::And(vec![any_of, rest])
        })
}

#[derive(Debug, Clone)]
struct Proc {
    exe: String,
    args: Vec<String>,
    cs_flags: Option<u32>,
}

fn proc_() -> impl Strategy<Value = Proc> {
    (
        prop::collection::vec(piece(), 0..3).prop_map(|v| format!("/{}", v.join("/"))),
        prop::collection::vec(text(), 0..4),
        prop::option::of(prop::sample::select(vec![
            0u32,
            1,
            0x2000_0000,
            0x2000_0001,
        ])),
    )
        .prop_map(|(exe, args, cs_flags)| Proc {
            exe,
            args,
            cs_flags,
        })
}

#[derive(Debug, Clone)]
struct Scenario {
    me: Proc,
    cwd: Option<String>,
    euid: Option<u32>,
    egid: Option<u32>,
    linux: bool,
    parent: Option<Option<Proc>>,
    caller: Option<Proc>,
    responsible: Option<Proc>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        proc_(),
        prop::option::of(text()),
        prop::option::of(prop::sample::select(vec![0u32, 501, 7])),
        prop::option::of(prop::sample::select(vec![0u32, 20, 501])),
        any::<bool>(),
        prop::option::of(prop::option::of(proc_())),
        prop::option::of(proc_()),
        prop::option::of(proc_()),
    )
        .prop_map(
            |(me, cwd, euid, egid, linux, parent, caller, responsible)| Scenario {
                me,
                cwd,
                euid,
                egid,
                linux,
                parent,
                caller,
                responsible,
            },
        )
}

fn exec(pid: u32, p: &Proc) -> ExecEvent<'static> {
    ExecEvent {
        target: Target {
            pid,
            executable: Cow::Owned(p.exe.clone()),
            args: Args::from_strs(&p.args).0,
            cs_flags: p.cs_flags,
            ..Target::default()
        },
        ..ExecEvent::default()
    }
}

fn check(queries: Vec<Query<Pred>>, s: &Scenario) -> Result<(), TestCaseError> {
    check_events(queries, std::slice::from_ref(s))
}

/// One matcher, one event after another: nothing one event's evaluation remembers (the
/// outcomes of tests rules share) may leak into the next one's.
fn check_events(queries: Vec<Query<Pred>>, events: &[Scenario]) -> Result<(), TestCaseError> {
    let typed: Vec<Query<TypedPred>> = queries.into_iter().filter_map(|q| q.typed().ok()).collect();
    let refs: Vec<&Query<TypedPred>> = typed.iter().collect();
    let fast = Matcher::new(&refs);
    let slow = NaiveRules::new(&refs);
    for s in events {
        check_one(&fast, &slow, s)?;
    }
    Ok(())
}

fn check_one(fast: &Matcher, slow: &NaiveRules, s: &Scenario) -> Result<(), TestCaseError> {
    let host = HostInfo::new("mac-1", "host-1");
    host.set_user_name(0, Some("root"));
    host.set_user_name(501, Some("bob"));
    host.set_user_name(7, None);
    let mut table = Table::default();
    let mut ev = exec(100, &s.me);
    ev.os = if s.linux {
        OsType::Linux
    } else {
        OsType::Macos
    };
    ev.target.cwd = s.cwd.clone().map(Cow::Owned);
    ev.target.euid = s.euid;
    ev.target.egid = s.egid;
    if let Some(parent) = &s.parent {
        ev.target.ppid = Some(50);
        if let Some(p) = parent {
            table.observe(&exec(50, p));
        }
    }
    if let Some(c) = &s.caller {
        ev.caller.pid = Some(100);
        ev.caller.ppid = ev.target.ppid;
        ev.caller.executable = Some(Cow::Owned(c.exe.clone()));
        ev.caller.cs_flags = c.cs_flags;
    }
    if let Some(r) = &s.responsible {
        table.observe(&exec(60, r));
        ev.responsible_pid = Some(60);
    }
    let view = EcsEvent::new(&ev, &table, &host);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    fast.evaluate(&view, &mut a);
    slow.evaluate(&view, &mut b);
    prop_assert_eq!(a, b, "document: {:?}", view.document());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_rule(q in query(), s in scenario()) {
        check(vec![q], &s)?;
    }

}

/// Rules built around a few shared tests, each in different surrounding logic (alone,
/// `and`-ed, `or`-ed, negated, negated inside an `and`), so that several trees hold the same
/// test: the matcher evaluates such a test once per event for all of them.
fn sharing_rules() -> impl Strategy<Value = Vec<Query<Pred>>> {
    (
        prop::collection::vec(prop_oneof![shared_leaf(), leaf()], 1..4),
        prop::collection::vec((0..4usize, 0..4usize, 0..6u8, query()), 3..9),
    )
        .prop_map(|(shared, shapes)| {
            let pick = |i: usize| shared[i % shared.len()].clone();
            shapes
                .into_iter()
                .map(|(i, j, shape, rest)| match shape {
                    0 => pick(i),
                    1 => Query::And(vec![pick(i), rest]),
                    2 => Query::Or(vec![Query::Not(Box::new(pick(i))), rest]),
                    3 => Query::And(vec![rest, Query::Not(Box::new(pick(i)))]),
                    4 => Query::Not(Box::new(Query::And(vec![pick(i), pick(j)]))),
                    _ => Query::And(vec![
                        Query::Or(vec![pick(j), rest]),
                        Query::Not(Box::new(pick(i))),
                    ]),
                })
                .collect()
        })
}

/// A test costly enough to be shared: on arguments, the command line or the parent.
fn shared_leaf() -> impl Strategy<Value = Query<Pred>> {
    (
        prop::sample::select(vec![
            "process.args",
            "process.command_line",
            "process.parent.name",
            "process.parent.executable",
            "process.parent.args",
            "process.parent.command_line",
        ]),
        prop::collection::vec((piece(), any::<bool>()), 1..8),
    )
        .prop_map(|(field, values)| {
            Query::Or(
                values
                    .into_iter()
                    .map(|(v, star)| {
                        let toks = if star {
                            vec![Tok::Star, Tok::Lit(v), Tok::Star]
                        } else {
                            vec![Tok::Lit(v)]
                        };
                        Query::Leaf(Pred {
                            field: field.to_owned(),
                            op: Op::Pattern { toks, ci: star },
                            at: 0,
                        })
                    })
                    .collect(),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn rules_sharing_tests(qs in sharing_rules(), events in prop::collection::vec(scenario(), 1..5)) {
        check_events(qs, &events)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn many_indexed_rules(qs in prop::collection::vec(prop_oneof![indexed_query(), query()], 4..10), s in scenario()) {
        check(qs, &s)?;
    }
}
