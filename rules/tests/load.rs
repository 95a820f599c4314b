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
    // 44 event queries on process events, 16 on file events, the KQL one on file events, 5 on
    // the macOS file actions (3 on opens, a quarantine removal, a launch item); 7 sequences
    // over process and file events (one from an open, one from a launch item); new_terms on
    // a python open and a python launch item besides the first one.
    assert_eq!(kinds(&set), (66, 7, 0, 3, 1));
    assert_eq!(r.ok(), 77);
    assert_eq!(r.unsupported(), 20);
    for e in &r.entries {
        if let RuleStatus::Unsupported(why) = &e.status {
            assert!(!why.is_empty());
        }
    }
}

/// Opens are selected by the rules that match opens only, from the paths they name: Elastic's
/// browser-credential names and the two preference files; neither the python rule (bounded by
/// the process) nor the compression sequence (unbounded opens) widens the selection, and the
/// filter of the other file events is not widened by any open.
#[test]
fn head_folder_selects_opens_by_the_paths_its_open_rules_name() {
    let (set, _) = report("elastic-rules/macos-head-14cf530f");
    let opens = set.open_filter();
    assert!(!opens.is_all() && !opens.is_none());
    let mut names = opens.names().to_vec();
    names.sort();
    assert_eq!(
        names,
        [
            "cookies",
            "cookies.binarycookies",
            "cookies.sqlite",
            "login data",
            "logins.json"
        ]
    );
    assert_eq!(opens.extensions(), ["db"], "key?.db");
    let mut prefixes = opens.prefixes().to_vec();
    prefixes.sort();
    assert_eq!(
        prefixes,
        [
            "/library/preferences/com.apple.timemachine.plist",
            "/library/preferences/systemconfiguration/preferences.plist"
        ]
    );
    assert!(opens.processes().is_empty() && opens.process_prefixes().is_empty());
    assert!(
        !opens.admits("/usr/lib/python3.12/os.py", Some("python3.12")),
        "python's own opens are not all selected"
    );
    let open_rules: Vec<PathBuf> = [
        "credential_access_suspicious_web_browser_sensitive_file_access.toml",
        "discovery_full_disk_access_check.toml",
        "discovery_system_and_network_configuration_check.toml",
        "credential_access_python_sensitive_file_access_first_occurrence.toml",
    ]
    .iter()
    .map(|f| shared(&format!("elastic-rules/macos-head-14cf530f/{f}")))
    .collect();
    let (only_opens, r) = RuleSet::load(&open_rules, false, None).expect("readable");
    assert_eq!(r.ok(), 4);
    assert!(
        only_opens.file_filter().is_none(),
        "rules on opens select no other file event"
    );
    assert!(set.wants(nightjar_rules::ecs::Shape::FileLaunchDaemon));
    assert!(set.wants(nightjar_rules::ecs::Shape::FileExtendedAttributesDelete));
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
