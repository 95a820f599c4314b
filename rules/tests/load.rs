//! Every rule Elastic ships for macOS loads: supported, or unsupported with a reason; no errors.

use std::path::{Path, PathBuf};

use nightjar_rules::{RuleSet, RuleStatus};

fn shared(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

fn report(dir: &str) -> (RuleSet, nightjar_rules::LoadReport) {
    let (set, report) = RuleSet::load(&[shared(dir)], false, None).expect("readable");
    for e in &report.entries {
        if let RuleStatus::Error(m) = &e.status {
            panic!("{}: {m}", e.path.display());
        }
    }
    (set, report)
}

#[test]
fn kuery_folder_has_29_runnable_query_rules() {
    let (set, r) = report("elastic-rules/macos-kuery-c58d59ee");
    assert_eq!(r.entries.len(), 32);
    // Every KQL query rule runs, the 9 on file events included.
    assert_eq!(r.ok(), 29);
    assert_eq!(r.unsupported(), 3);
    assert!(
        set.rules()
            .iter()
            .all(|m| m.rule_type == "query" && m.language == "kuery")
    );
    for e in &r.entries {
        if let RuleStatus::Unsupported(why) = &e.status {
            assert!(
                why.contains("new_terms") || why.contains("threshold"),
                "{why}"
            );
        }
    }
}

#[test]
fn head_folder_has_61_single_event_rules() {
    let (set, r) = report("elastic-rules/macos-head-14cf530f");
    assert_eq!(r.entries.len(), 97);
    let eql = set.rules().iter().filter(|m| m.rule_type == "eql").count();
    let kql = set
        .rules()
        .iter()
        .filter(|m| m.rule_type == "query")
        .count();
    assert_eq!(eql, 60, "44 on process events, 16 on file events");
    // The one KQL query rule is a file-event rule.
    assert_eq!(kql, 1);
    assert_eq!(r.ok(), 61);
    assert_eq!(r.unsupported(), 36);
    for e in &r.entries {
        if let RuleStatus::Unsupported(why) = &e.status {
            assert!(!why.is_empty());
        }
    }
}

#[test]
fn builtin_seed_rule_matches_the_v107_file() {
    let v107 = shared("elastic-rules/credential_access_kerberosdump_kcc.v107.toml");
    let (alone, r) = RuleSet::load(&[], true, Some(7)).expect("builtin");
    assert_eq!(r.ok(), 1);
    let (file_set, _) = RuleSet::load(&[v107], false, None).expect("readable");
    let (builtin, file) = (&alone.rules()[0], &file_set.rules()[0]);
    assert_eq!(builtin.rule_id, "ad88231f-e2ab-491c-8fc6-64746da26cfe");
    assert_eq!(builtin.version, Some(107));
    assert_eq!(file.version, None);
    assert_eq!(builtin.query, file.query);
    assert_eq!(builtin.severity, "high");
    assert_eq!(builtin.risk_score, 73);
    assert_eq!(builtin.from, "now-9m");
    assert_eq!(builtin.interval.as_secs(), 300);
    assert_eq!(builtin.max_signals, 7);
    assert_eq!(builtin.threat[0]["tactic"]["id"], "TA0006");
    assert_eq!(alone.queries()[0], file_set.queries()[0]);
}

#[test]
fn unreadable_path_names_the_file() {
    let err = RuleSet::load(&[PathBuf::from("/nonexistent/rules")], false, None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/rules"), "{err}");
}
