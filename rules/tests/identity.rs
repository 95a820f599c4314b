//! Rule identity: `rule_id` is unique in a set, decided where rules are registered.

mod support;

use std::path::PathBuf;

use nightjar_rules::{Identity, RuleSet, RuleStatus, SourceText, Sources, builtin};
use support::{kql_toml, shared};

fn text(name: &str, rule_id: &str, version: Option<u32>, query: &str) -> SourceText {
    let mut t = kql_toml(query).replace("test-rule", rule_id);
    if let Some(v) = version {
        t = t.replace("[rule]\n", &format!("[rule]\nversion = {v}\n"));
    }
    SourceText {
        name: name.into(),
        text: t,
    }
}

#[test]
fn a_file_rule_replaces_the_builtin_one() {
    let v107 = shared("elastic-rules/credential_access_kerberosdump_kcc.v107.toml");
    let (set, report) = RuleSet::load(std::slice::from_ref(&v107), true, None).unwrap();
    assert_eq!(set.rules().len(), 1, "one rule per rule_id");
    assert_eq!(set.rules()[0].source, v107);
    let builtin_entry = &report.entries[0];
    assert_eq!(builtin_entry.path, PathBuf::from(builtin::SOURCE));
    match &builtin_entry.status {
        RuleStatus::Shadowed(why) => {
            assert!(why.contains(&v107.display().to_string()), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.shadowed(), 1);
    assert!(report.problems().is_empty());
}

#[test]
fn two_files_with_one_rule_id_are_an_error_naming_both() {
    let (set, report) = RuleSet::build(Sources {
        rules: vec![
            text("a.toml", "dup", None, "process.name:a"),
            text("b.toml", "other", None, "process.name:b"),
            text("c.toml", "dup", None, "process.name:c"),
        ],
        ..Sources::default()
    });
    assert_eq!(set.rules().len(), 2);
    assert_eq!(set.rules()[0].source, PathBuf::from("a.toml"));
    let RuleStatus::Error(msg) = &report.entries[2].status else {
        panic!("{:?}", report.entries[2]);
    };
    assert!(
        msg.starts_with("c.toml:5:1: duplicate rule_id `dup`"),
        "{msg}"
    );
    assert!(msg.contains("a.toml:5:1 also defines it"), "{msg}");
    assert_eq!(report.problems().len(), 1);
}

#[test]
fn in_a_policy_the_higher_version_wins() {
    let (set, report) = RuleSet::build(Sources {
        rules: vec![
            text("old.toml", "r", Some(3), "process.name:old"),
            text("new.toml", "r", Some(5), "process.name:new"),
            text("older.toml", "r", Some(1), "process.name:older"),
        ],
        identity: Identity::Policy,
        ..Sources::default()
    });
    assert_eq!(set.rules().len(), 1);
    assert_eq!(set.rules()[0].version, Some(5));
    for (i, by) in [(0, "new.toml"), (2, "new.toml")] {
        let RuleStatus::Shadowed(why) = &report.entries[i].status else {
            panic!("{:?}", report.entries[i]);
        };
        assert!(why.contains("superseded") && why.ends_with(by), "{why}");
    }
    assert!(report.problems().is_empty());

    let (_, report) = RuleSet::build(Sources {
        rules: vec![
            text("a.toml", "r", Some(2), "process.name:a"),
            text("b.toml", "r", Some(2), "process.name:b"),
        ],
        identity: Identity::Policy,
        ..Sources::default()
    });
    let problems = report.problems();
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("same version (2)"), "{problems:?}");
}

#[test]
fn the_same_file_reached_twice_loads_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.toml");
    std::fs::write(&file, kql_toml("process.name:x")).unwrap();
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let (set, report) = RuleSet::load(
        &[dir.path().to_path_buf(), file.clone(), link.clone()],
        false,
        None,
    )
    .unwrap();
    assert_eq!(set.rules().len(), 1);
    assert_eq!(report.entries.len(), 1, "{report:?}");
    assert!(report.problems().is_empty());
}
