//! Helpers shared by the rule tests: rule texts, events, and evaluation through both the
//! compiled matcher and the naive interpreter (which must always agree).

#![allow(dead_code)]

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use nightjar_proto::{Args, ExecEvent, Target};
use nightjar_rules::ecs::{
    CS_SIGNED, CS_VALID, EcsEvent, HostInfo, OwnedProcess, Process, Processes,
};
use nightjar_rules::{LoadReport, RuleSet, RuleStatus};

/// Processes by pid, as a process table keeps them: the last exec of each.
#[derive(Debug, Default)]
pub struct Table {
    procs: Vec<OwnedProcess>,
}

impl Table {
    pub fn observe(&mut self, ev: &ExecEvent<'_>) {
        let t = &ev.target;
        self.procs.retain(|p| p.pid != t.pid);
        let args = Args::from_strs(t.args.iter()).0;
        self.procs.push(OwnedProcess {
            pid: t.pid,
            executable: t.executable.to_string(),
            args_count: args.total(),
            args,
            command_line: t.args.iter().collect::<Vec<_>>().join(" "),
            signing_id: t.signing_id.as_deref().map(str::to_owned),
            team_id: t.team_id.as_deref().map(str::to_owned),
            cs_flags: t.cs_flags,
            ..OwnedProcess::default()
        });
    }
}

impl Processes for Table {
    fn get(&self, pid: u32) -> Option<&dyn Process> {
        let p = self.procs.iter().find(|p| p.pid == pid)?;
        Some(p)
    }
}

pub fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

pub fn kql_toml(query: &str) -> String {
    rule_toml("query", "kuery", query)
}

pub fn eql_toml(query: &str) -> String {
    rule_toml("eql", "eql", query)
}

pub fn rule_toml(ty: &str, lang: &str, query: &str) -> String {
    format!(
        "[metadata]\ncreation_date = \"2024/01/01\"\n\n[rule]\nrule_id = \"test-rule\"\nname = \"Test\"\nseverity = \"low\"\nrisk_score = 21\ndescription = \"d\"\ntype = \"{ty}\"\nlanguage = \"{lang}\"\nquery = '''\n{query}\n'''\n"
    )
}

/// Loads one rule text; panics with the report when it is not supported.
pub fn set_of(toml: &str) -> RuleSet {
    let (set, report) = RuleSet::from_texts(&[("t.toml", toml)], None);
    assert_eq!(report.ok(), 1, "{report:?}");
    set
}

/// The load report of one rule text.
pub fn report_of(toml: &str) -> LoadReport {
    RuleSet::from_texts(&[("t.toml", toml)], None).1
}

pub fn error_of(toml: &str) -> String {
    let r = report_of(toml);
    match &r.entries[0].status {
        RuleStatus::Error(m) => m.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A signed, valid exec of `exe` with `args` by root, pid 702, parent pid 700.
pub fn event(exe: &str, args: &[&str]) -> ExecEvent<'static> {
    ExecEvent {
        time_ns: 1_700_000_000_000_000_000,
        target: Target {
            pid: 702,
            ppid: Some(700),
            euid: Some(0),
            egid: Some(0),
            executable: Cow::Owned(exe.to_owned()),
            args: Args::from_strs(args).0,
            cwd: Some(Cow::Borrowed("/Users/bob")),
            signing_id: Some(Cow::Borrowed("com.apple.kcc")),
            cs_flags: Some(CS_VALID | CS_SIGNED),
            ..Target::default()
        },
        ..ExecEvent::default()
    }
}

pub fn host() -> HostInfo {
    let h = HostInfo::new("mac-1", "host-1");
    h.set_user_name(0, Some("root"));
    h.set_user_name(501, Some("bob"));
    h
}

/// Whether `set`'s first rule matches `ev` (with `table` for parents); asserts the compiled
/// matcher and the naive interpreter agree.
pub fn matches_with(set: &RuleSet, ev: &ExecEvent<'_>, table: &Table) -> bool {
    let host = host();
    let view = EcsEvent::new(ev, table, &host);
    let mut fast = Vec::new();
    set.evaluate(&view, &mut fast);
    let mut slow = Vec::new();
    set.naive().evaluate(&view, &mut slow);
    assert_eq!(
        fast,
        slow,
        "compiled and naive disagree on {:?}",
        view.document()
    );
    !fast.is_empty()
}

pub fn matches(set: &RuleSet, ev: &ExecEvent<'_>) -> bool {
    matches_with(set, ev, &Table::default())
}

/// Whether the rule matches `ev`; a rule that loads as never matching this host's events
/// (a constant `false`) matches nothing.
fn rule_matches(toml: &str, ev: &ExecEvent<'_>) -> bool {
    let (set, report) = RuleSet::from_texts(&[("t.toml", toml)], None);
    match &report.entries[0].status {
        RuleStatus::Ok => matches(&set, ev),
        RuleStatus::Unsupported(why) if why.contains("never matches") => false,
        other => panic!("{other:?}"),
    }
}

pub fn kql(query: &str, ev: &ExecEvent<'_>) -> bool {
    rule_matches(&kql_toml(query), ev)
}

pub fn eql(query: &str, ev: &ExecEvent<'_>) -> bool {
    rule_matches(&eql_toml(query), ev)
}
