//! Rule shapes the index selects by values other than names, arguments and executables:
//! user and group ids, the user's name, patterns with `?`, `*literal*` lists and regular
//! expressions (through a literal they require). Each rule is indexed (not tested on every
//! event), an event that should match through that path does, and a near miss does not;
//! every evaluation also checks the compiled matcher against the interpreter.

mod support;

use std::borrow::Cow;

use nightjar_proto::OsType;
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::Shape;
use support::*;

fn linux(exe: &str, args: &[&str]) -> nightjar_proto::ExecEvent<'static> {
    let mut ev = event(exe, args);
    ev.os = OsType::Linux;
    ev
}

/// The set of one EQL rule, asserting the index holds it and never tests it on every event.
fn indexed(query: &str) -> RuleSet {
    let set = set_of(&eql_toml(query));
    let summary = set.matcher().index_summary(Shape::Exec);
    assert!(
        summary.iter().all(|s| s.0 == 0),
        "tested on every event: {summary:?}"
    );
    assert!(
        summary.iter().any(|s| s != &Default::default()),
        "not indexed at all: {summary:?}"
    );
    set
}

#[test]
fn by_user_and_group_ids() {
    let set = indexed(
        r#"process where host.os.type == "linux" and (
            (process.user.id == "0" and not process.real_user.id == "0") or
            (process.group.id == "0" and not process.real_group.id == "0"))"#,
    );
    let mut setuid = linux("/usr/bin/passwd", &["passwd"]);
    setuid.target.uid = Some(1000);
    assert!(matches(&set, &setuid));
    // Group 0 alone.
    let mut setgid = setuid.clone();
    setgid.target.euid = Some(1000);
    setgid.target.gid = Some(1000);
    assert!(matches(&set, &setgid));
    // Near misses: real uid 0 too; neither effective id 0; macOS.
    let mut root = setuid.clone();
    root.target.uid = Some(0);
    root.target.egid = Some(20);
    assert!(!matches(&set, &root));
    let mut user = setuid.clone();
    user.target.euid = Some(1000);
    user.target.egid = Some(1000);
    assert!(!matches(&set, &user));
    let mut mac = setuid.clone();
    mac.os = OsType::Macos;
    assert!(!matches(&set, &mac));
}

#[test]
fn by_user_name() {
    let set = indexed(
        r#"process where host.os.type == "linux" and user.name == "root" and process.args : "*sh""#,
    );
    assert!(matches(&set, &linux("/bin/bash", &["bash"])));
    let mut bob = linux("/bin/bash", &["bash"]);
    bob.target.euid = Some(501);
    assert!(!matches(&set, &bob));
    let mut unknown = linux("/bin/bash", &["bash"]);
    unknown.target.euid = Some(4242);
    assert!(!matches(&set, &unknown));
}

#[test]
fn by_the_literal_of_a_pattern_with_a_question_mark() {
    let set = indexed(
        r#"process where host.os.type == "linux" and process.executable : ("/tmp/*", "?memfd:*")"#,
    );
    assert!(matches(&set, &linux("/memfd:x (deleted)", &["x"])));
    assert!(matches(&set, &linux("/tmp/a", &["a"])));
    // `?` is one character: two before `memfd:`, or none, is no match.
    assert!(!matches(&set, &linux("//memfd:x", &["x"])));
    assert!(!matches(&set, &linux("memfd:x", &["x"])));
    assert!(!matches(&set, &linux("/usr/bin/memfd", &["memfd"])));
    // A non-ASCII first character is still one character.
    assert!(matches(&set, &linux("émemfd:x", &["x"])));
}

#[test]
fn by_literals_of_contains_patterns() {
    let set = indexed(
        r#"process where host.os.type == "macos" and process.name : ("*curl*", "*wget*", "*fetch*") and process.args == "-o""#,
    );
    assert!(matches(&set, &event("/usr/bin/CURL", &["curl", "-o", "x"])));
    assert!(matches(&set, &event("/opt/bin/xwgetx", &["w", "-o"])));
    assert!(!matches(&set, &event("/usr/bin/cur", &["cur", "-o"])));
    assert!(!matches(&set, &event("/usr/bin/curl", &["curl", "-O"])));
}

#[test]
fn by_a_literal_a_regular_expression_requires() {
    let set = indexed(
        r#"process where host.os.type == "linux" and process.command_line regex ".*[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}.*""#,
    );
    assert!(matches(
        &set,
        &linux("/usr/bin/nc", &["nc", "-e", "10.1:4444"])
    ));
    assert!(matches(
        &set,
        &linux("/usr/bin/nc", &["nc", "a\nx1.2:3\ny"])
    ));
    assert!(!matches(
        &set,
        &linux("/usr/bin/nc", &["nc", "10.1", "4444"])
    ));
    assert!(!matches(&set, &linux("/usr/bin/nc", &["nc", "host:4444"])));
}

#[test]
fn a_cut_argv_still_reaches_rules_indexed_by_ids() {
    let set = indexed(
        r#"process where host.os.type == "linux" and user.id == "0" and process.args == "-x""#,
    );
    let mut ev = linux("/bin/tool", &["tool", "-y"]);
    ev.flags |= nightjar_proto::event::TRUNC_ARGS;
    // The dropped arguments could hold `-x`: reported as a match.
    let (host, table) = (host(), Table::default());
    let view = nightjar_rules::ecs::EcsEvent::new(&ev, &table, &host);
    let mut out = Vec::new();
    set.evaluate(&view, &mut out);
    assert_eq!(out, vec![0]);
    ev.target.executable = Cow::Borrowed("/bin/other");
    ev.target.euid = Some(501);
    let view = nightjar_rules::ecs::EcsEvent::new(&ev, &table, &host);
    set.evaluate(&view, &mut out);
    assert!(out.is_empty());
}

#[test]
fn by_the_parent_executable() {
    let set = indexed(
        r#"process where host.os.type == "linux" and user.id != "0" and
           (process.executable like ("/tmp/*", "/home/*/*") or process.parent.executable like ("/tmp/*", "/home/*/*"))"#,
    );
    let mut table = Table::default();
    let mut parent = linux("/home/bob/run", &["run"]);
    parent.target.pid = 700;
    table.observe(&parent);
    let mut child = linux("/usr/bin/id", &["id"]);
    child.target.euid = Some(1000);
    assert!(matches_with(&set, &child, &table));
    assert!(!matches(&set, &linux("/tmp/x", &["x"])), "root");
    let mut other = Table::default();
    let mut usual = linux("/usr/bin/bash", &["bash"]);
    usual.target.pid = 700;
    other.observe(&usual);
    assert!(!matches_with(&set, &child, &other));
}
