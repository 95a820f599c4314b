//! Evasion by argv padding (issue 12, item 3): the head and tail of a long argv are kept and
//! its true count reported; a rule whose outcome could depend on the dropped middle matches,
//! conservatively, and is told apart by `is_certain`.

mod support;

use nightjar_rules::ecs::EcsEvent;
use support::*;

const KCC_EQL: &str =
    "process where process.name == \"kcc\" and process.args like~ \"copy_cred_cache\"";

fn padded(before: usize, after: usize) -> nightjar_proto::ExecEvent<'static> {
    let mut args: Vec<String> = vec!["kcc".into()];
    args.extend((0..before).map(|_| "--cache=x".to_owned()));
    args.push("copy_cred_cache".into());
    args.extend((0..after).map(|_| "--cache=x".to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    event("/usr/bin/kcc", &refs)
}

/// (matches, certain) for the set's first rule.
fn outcome(query: &str, ev: &nightjar_proto::ExecEvent<'_>) -> (bool, bool) {
    let set = set_of(&eql_toml(query));
    let host = host();
    let table = Table::default();
    let view = EcsEvent::new(ev, &table, &host);
    let mut out = Vec::new();
    set.evaluate(&view, &mut out);
    (out == [0], set.is_certain(0, &view))
}

#[test]
fn the_reported_padding_attack_alerts_exactly_with_the_true_count() {
    // kcc --cache=x ×1023 copy_cred_cache: the last argument is in the kept tail.
    let ev = padded(1023, 0);
    assert_eq!(ev.target.args.total(), 1025, "true args_count");
    assert!(ev.args_truncated());
    assert_eq!(outcome(KCC_EQL, &ev), (true, true));
    let set = set_of(&eql_toml(
        "process where process.args_count == 1025 and process.Ext.args_truncated == true",
    ));
    let host = host();
    let table = Table::default();
    let mut out = Vec::new();
    set.evaluate(&EcsEvent::new(&ev, &table, &host), &mut out);
    assert_eq!(
        out,
        [0],
        "truncation and the true count are visible to rules"
    );
}

#[test]
fn an_argument_hidden_in_the_dropped_middle_still_alerts_flagged() {
    let ev = padded(1000, 1000);
    assert!(ev.target.args.elided() > 0);
    assert!(
        !ev.target.args.iter().any(|a| a == "copy_cred_cache"),
        "the argument really is gone"
    );
    assert_eq!(outcome(KCC_EQL, &ev), (true, false), "uncertain: alerted");
    // The same through process.command_line.
    assert_eq!(
        outcome(
            "process where process.name == \"kcc\" and process.command_line : \"*copy_cred_cache*\"",
            &ev
        ),
        (true, false)
    );
    // A negated argument test is unknown too.
    assert_eq!(
        outcome(
            "process where process.name == \"kcc\" and not process.args : \"list\"",
            &ev
        ),
        (true, false)
    );
}

#[test]
fn what_the_kept_fields_rule_out_stays_out() {
    let ev = padded(1000, 1000);
    // Another process name: false whatever the dropped arguments hold.
    assert_eq!(
        outcome(
            "process where process.name == \"curl\" and process.args : \"copy_cred_cache\"",
            &ev
        ),
        (false, false)
    );
    // An argument that is in the kept head: exact.
    assert_eq!(
        outcome(
            "process where process.name == \"kcc\" and process.args : \"--cache=x\"",
            &ev
        ),
        (true, true)
    );
    // A short argv is never uncertain.
    let short = event("/usr/bin/kcc", &["kcc", "list"]);
    assert_eq!(outcome(KCC_EQL, &short), (false, false));
}
