//! Every rule Elastic ships for macOS loads: supported, or unsupported with a reason; no errors.

use std::path::{Path, PathBuf};

use nightjar_rules::program::RuleProgram;
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

/// How many rules of each program kind: (event queries, sequences, samples, new_terms,
/// thresholds).
fn kinds(set: &RuleSet) -> (usize, usize, usize, usize, usize) {
    let mut k = (0, 0, 0, 0, 0);
    for p in set.programs() {
        match p {
            RuleProgram::Event(_) => k.0 += 1,
            RuleProgram::Sequence(_) => k.1 += 1,
            RuleProgram::Sample(_) => k.2 += 1,
            RuleProgram::NewTerms { .. } => k.3 += 1,
            RuleProgram::Threshold { .. } => k.4 += 1,
        }
    }
    k
}

#[test]
fn kuery_folder_runs_its_query_and_threshold_rules() {
    let (set, r) = report("elastic-rules/macos-kuery-c58d59ee");
    assert_eq!(r.entries.len(), 32);
    // Every KQL query rule runs, the 9 on file events included; so does the threshold rule
    // (SSH brute force, by host.id). The new_terms rule needs network events.
    assert_eq!(kinds(&set), (29, 0, 0, 0, 1));
    assert_eq!(r.ok(), 30);
    assert_eq!(r.unsupported(), 2);
    for e in &r.entries {
        if let RuleStatus::Unsupported(why) = &e.status {
            assert!(
                why.contains("`destination.domain`") || why.contains("network"),
                "{why}"
            );
        }
    }
}

#[test]
fn head_folder_runs_event_queries_sequences_and_stateful_rules() {
    let (set, r) = report("elastic-rules/macos-head-14cf530f");
    assert_eq!(r.entries.len(), 97);
    // 44 event queries on process events, 16 on file events, the KQL one on file events;
    // 5 sequences over process and file events.
    assert_eq!(kinds(&set), (61, 5, 0, 1, 1));
    assert_eq!(r.ok(), 68);
    assert_eq!(r.unsupported(), 29);
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
    assert_eq!(alone.programs()[0], file_set.programs()[0]);
}

#[test]
fn unreadable_path_names_the_file() {
    let err = RuleSet::load(&[PathBuf::from("/nonexistent/rules")], false, None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/rules"), "{err}");
}
