//! Broken rule files are reported at the right `file:line:col`, with what was expected.

mod rules_support;

use nightjar_agent::rules::{RuleSet, RuleStatus};

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
