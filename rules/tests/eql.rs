//! EQL operators and their case rules, on single `process where` events. Every evaluation also
//! checks the compiled matcher against the interpreter.

mod support;

use nightjar_rules::RuleStatus;
use support::*;

fn kcc() -> nightjar_proto::ExecEvent<'static> {
    event("/usr/bin/kcc", &["kcc", "Copy_Cred_Cache", "-v"])
}

fn pw(q: &str) -> String {
    format!("process where {q}")
}

#[test]
fn seed_rule_eql_version() {
    let q = "process where host.os.type == \"macos\" and event.type in (\"start\", \"process_started\") and\n  process.name == \"kcc\" and\n  process.args like~ \"copy_cred_cache\"";
    assert!(eql(q, &kcc()));
    assert!(!eql(q, &event("/usr/bin/kcc", &["kcc", "list"])));
}

#[test]
fn event_fields_as_elastic_defend_emits_them() {
    assert!(eql(
        &pw(
            "event.type == \"start\" and event.action == \"exec\" and event.category == \"process\" and event.kind == \"event\""
        ),
        &kcc()
    ));
    assert!(!eql(&pw("event.type == \"Start\""), &kcc()));
    assert!(eql(&pw("event.type : \"Start\""), &kcc()));
    assert!(!eql(&pw("event.action == \"fork\""), &kcc()));
    assert!(eql("any where process.name == \"kcc\"", &kcc()));
}

#[test]
fn equality_is_case_sensitive_colon_is_not() {
    assert!(eql(&pw("process.name == \"kcc\""), &kcc()));
    assert!(!eql(&pw("process.name == \"KCC\""), &kcc()));
    assert!(eql(&pw("process.name : \"KCC\""), &kcc()));
    assert!(eql(&pw("process.name : (\"x\", \"K*\")"), &kcc()));
    assert!(!eql(&pw("process.name : \"x*\""), &kcc()));
    // `==` has no wildcards.
    assert!(!eql(&pw("process.name == \"k*\""), &kcc()));
}

#[test]
fn like_and_like_tilde() {
    assert!(eql(&pw("process.args like \"Copy_*\""), &kcc()));
    assert!(!eql(&pw("process.args like \"copy_*\""), &kcc()));
    assert!(eql(&pw("process.args like~ \"copy_*\""), &kcc()));
    assert!(eql(&pw("process.name like \"k?c\""), &kcc()));
    assert!(!eql(&pw("process.name like \"k?\""), &kcc()));
    assert!(eql(&pw("process.args like (\"x\", \"-?\")"), &kcc()));
    assert!(eql(&pw("process.executable like \"/usr/*/kcc\""), &kcc()));
    assert!(!eql(&pw("process.executable like \"/usr/*/kc\""), &kcc()));
    assert!(eql(
        &pw("process.args like \"a\\\\*b\""),
        &event("/bin/x", &["a*b"])
    ));
    assert!(!eql(
        &pw("process.args like \"a\\\\*b\""),
        &event("/bin/x", &["axxb"])
    ));
}

#[test]
fn in_and_in_tilde() {
    assert!(eql(&pw("process.name in (\"ls\", \"kcc\")"), &kcc()));
    assert!(!eql(&pw("process.name in (\"ls\", \"KCC\")"), &kcc()));
    assert!(eql(&pw("process.name in~ (\"ls\", \"KCC\")"), &kcc()));
    assert!(!eql(&pw("process.name in~ (\"ls\", \"K*\")"), &kcc()));
    assert!(eql(&pw("process.name not in (\"ls\", \"sh\")"), &kcc()));
    assert!(!eql(&pw("process.name not in (\"ls\", \"kcc\")"), &kcc()));
    assert!(eql(&pw("process.pid in (1, 702)"), &kcc()));
}

#[test]
fn regex_and_regex_tilde() {
    let ev = event(
        "/usr/bin/curl",
        &["curl", "-o", "x", "http://10.0.0.1:8080/p"],
    );
    let re = "\"\"\"https?:\\/\\/[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(:[0-9]{1,5})?\\/.*\"\"\"";
    assert!(eql(&pw(&format!("process.args regex {re}")), &ev));
    assert!(!eql(
        &pw(&format!("process.args regex {re}")),
        &event("/usr/bin/curl", &["curl", "HTTP://10.0.0.1/"])
    ));
    assert!(eql(
        &pw(&format!("process.args regex~ {re}")),
        &event("/usr/bin/curl", &["curl", "HTTP://10.0.0.1/"])
    ));
    // Anchored at both ends.
    assert!(!eql(&pw("process.name regex \"k\""), &kcc()));
    assert!(eql(&pw("process.name regex \"k.*\""), &kcc()));
}

#[test]
fn not_equal_null_and_not_over_arrays() {
    assert!(eql(&pw("process.name != \"ls\""), &kcc()));
    assert!(!eql(&pw("process.args != \"-v\""), &kcc()));
    assert!(eql(&pw("not process.args == \"-x\""), &kcc()));
    assert!(eql(&pw("process.command_line != null"), &kcc()));
    assert!(!eql(&pw("process.command_line == null"), &kcc()));
    assert!(eql(&pw("process.parent.executable == null"), &kcc()));
    assert!(!eql(&pw("process.parent.executable != null"), &kcc()));
    assert!(eql(
        &pw("not process.parent.executable like \"/Applications/*\""),
        &kcc()
    ));
}

#[test]
fn numbers_booleans_and_functions() {
    assert!(eql(
        &pw("process.args_count == 3 and process.args_count <= 10 and process.pid > 1"),
        &kcc()
    ));
    assert!(!eql(&pw("process.args_count < 3"), &kcc()));
    assert!(eql(
        &pw("process.code_signature.trusted == true and process.code_signature.exists != false"),
        &kcc()
    ));
    assert!(eql(
        &pw("user.id like \"0\" and user.name == \"root\""),
        &kcc()
    ));
    assert!(eql(
        &pw("startsWith~(process.executable, \"/USR/\")"),
        &kcc()
    ));
    assert!(!eql(
        &pw("startsWith(process.executable, \"/USR/\")"),
        &kcc()
    ));
    assert!(eql(
        &pw("endsWith(process.name, \"cc\") and stringContains(process.command_line, \"Cred\")"),
        &kcc()
    ));
    assert!(eql(
        &pw("process.command_line : \"kcc copy_cred_cache *\""),
        &kcc()
    ));
    assert!(!eql(
        &pw("process.command_line like \"kcc copy_cred_cache *\""),
        &kcc()
    ));
}

#[test]
fn strings_escapes_comments_and_optional_fields() {
    let ev = event("/bin/x", &["x", "a\"b", "tab\there", "ü"]);
    assert!(eql(&pw("process.args == \"a\\\"b\""), &ev));
    assert!(eql(
        &pw("process.args == \"tab\\there\" // trailing comment"),
        &ev
    ));
    assert!(eql(&pw("/* block */ process.args == \"\\u{fc}\""), &ev));
    assert!(eql(&pw("?process.not_in_view == null"), &ev));
    assert!(eql(&pw("process.args : \"Ü\""), &ev));
}

#[test]
fn unsupported_and_errors() {
    let r = report_of(&eql_toml(
        "sequence by process.entity_id [process where true] [network where true]",
    ));
    assert!(matches!(&r.entries[0].status, RuleStatus::Unsupported(w) if w.contains("`network`")));
    let r = report_of(&eql_toml("network where destination.port == 22"));
    assert!(matches!(&r.entries[0].status, RuleStatus::Unsupported(w) if w.contains("network")));
    let r = report_of(&eql_toml("file where file.path == \"/x\""));
    assert_eq!(
        r.entries[0].status,
        RuleStatus::Ok,
        "file events are evaluated"
    );
    let r = report_of(&eql_toml(
        "process where cidrmatch(destination.ip, \"10.0.0.0/8\")",
    ));
    assert!(
        matches!(&r.entries[0].status, RuleStatus::Unsupported(w) if w.contains("`destination.ip`"))
    );
    let e = error_of(&eql_toml("process where process.name == 'kcc'"));
    assert!(e.contains("double quotes"), "{e}");
    let e = error_of(&eql_toml("process where process.pid == \"1\""));
    assert!(e.contains("cannot be compared"), "{e}");
}
