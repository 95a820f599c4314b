//! Broken rule files are reported at the right `file:line:col`, with what was expected.

mod support;

use nightjar_rules::{RuleSet, RuleStatus};

const HEAD: &str = "[metadata]\ncreation_date = \"2024/01/01\"\n\n[rule]\nrule_id = \"x\"\nname = \"Broken\"\nseverity = \"low\"\nrisk_score = 21\n";

fn error_in_file(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, format!("{HEAD}{body}")).unwrap();
    let (set, report) = RuleSet::load(std::slice::from_ref(&path), false, None).unwrap();
    assert!(set.rules().is_empty());
    match &report.entries[0].status {
        RuleStatus::Error(m) => {
            let prefix = format!("{}:", path.display());
            assert!(m.starts_with(&prefix), "{m}");
            m[prefix.len()..].to_owned()
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn kql_error_points_into_the_multiline_query() {
    // Line 9 holds `query = '''`; the query text starts on line 10.
    let m = error_in_file(
        "type = \"query\"\nquery = '''\nevent.category:process and\n  process.name:(kcc or ) and x:y\n'''\n",
    );
    assert!(m.starts_with("12:24: expected a value"), "{m}");
}

#[test]
fn kql_error_in_a_single_line_query() {
    let m = error_in_file(
        "type = \"query\"\nlanguage = \"kuery\"\nquery = \"process.name:kcc and (\"\n",
    );
    assert!(m.starts_with("11:32: expected a field name"), "{m}");
}

#[test]
fn eql_error_points_into_the_query() {
    let m = error_in_file(
        "type = \"eql\"\nlanguage = \"eql\"\nquery = '''\nprocess where\n  process.name === \"kcc\"\n'''\n",
    );
    assert!(m.starts_with("13:18: "), "{m}");
}

#[test]
fn toml_syntax_and_missing_keys() {
    let m = error_in_file("type = \"query\"\nquery = '''a:b\n");
    assert!(
        m.starts_with("11:1: ") && m.contains("literal string"),
        "{m}"
    );
    let m = error_in_file("language = \"kuery\"\n");
    assert!(m.contains("type"), "{m}");
}

#[test]
fn type_errors_point_at_their_predicate() {
    let m = error_in_file(
        "type = \"eql\"\nquery = '''\nprocess where process.name == \"x\" and\n  process.pid == \"ten\"\n'''\n",
    );
    assert!(
        m.starts_with("12:3: a string cannot be compared with field `process.pid`"),
        "{m}"
    );
    let m = error_in_file(
        "type = \"query\"\nquery = '''\nprocess.name:kcc and\n   process.args_count >= many\n'''\n",
    );
    assert!(m.starts_with("12:4: `many` is not a number"), "{m}");
}

#[test]
fn booleans_are_typed_on_fields_the_view_does_not_produce() {
    // `file.code_signature.exists` is boolean in Elastic Defend's mapping: the rule loads,
    // and as this host's events do not carry the field, it never matches.
    let r = support::report_of(&support::eql_toml(
        "file where file.name == \"x.dylib\" and file.code_signature.exists == true",
    ));
    match &r.entries[0].status {
        RuleStatus::Unsupported(why) => {
            assert!(why.contains("`file.code_signature.exists`"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // `process.interactive` is produced (a controlling terminal).
    let r = support::report_of(&support::eql_toml(
        "process where process.name == \"kubectl\" and process.interactive == true",
    ));
    assert_eq!(r.entries[0].status, RuleStatus::Ok);
    let m = error_in_file(
        "type = \"eql\"\nquery = '''\nprocess where process.interactive == \"yes\"\n'''\n",
    );
    assert!(m.starts_with("11:15: a string cannot be compared"), "{m}");
}

#[test]
fn a_misspelt_field_is_a_warning_where_it_is_named() {
    let r = support::report_of(&support::eql_toml(
        "process where process.name == \"kcc\" or\n  process.nmae == \"kcc\"",
    ));
    assert_eq!(r.entries[0].status, RuleStatus::Ok);
    assert_eq!(r.warnings(), 1);
    let w = &r.entries[0].warnings[0];
    assert!(
        w.starts_with("t.toml:14:3: unknown field `process.nmae` (did you mean `process.name`?)"),
        "{w}"
    );
}
