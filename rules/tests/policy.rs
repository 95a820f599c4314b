//! The policy document: bounds checked before anything compiles, every problem of a policy
//! named with its file, and the `block` list and links carried into the rule set.

mod support;

use nightjar_rules::policy::{FORMAT, Link, MAX_PAYLOAD_BYTES, Policy, PolicyError, PolicyFile};
use support::kql_toml;

fn policy(rules: Vec<PolicyFile>, exceptions: Vec<PolicyFile>) -> Policy {
    Policy {
        format: FORMAT,
        version: 3,
        published_at: "2026-11-20T09:00:00Z".into(),
        builtin: true,
        rules,
        exceptions,
        block: Vec::new(),
        links: Vec::new(),
        new_terms_per_host: false,
    }
}

fn file(name: &str, text: &str) -> PolicyFile {
    PolicyFile {
        name: name.into(),
        text: text.into(),
    }
}

#[test]
fn payloads_round_trip_and_hostile_ones_are_refused_before_compiling() {
    let p = policy(vec![file("a.toml", &kql_toml("process.name:a"))], vec![]);
    assert_eq!(Policy::from_payload(&p.to_payload()).unwrap(), p);

    let too_big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    assert!(matches!(
        Policy::from_payload(&too_big),
        Err(PolicyError::TooLarge(_))
    ));
    let mut v: serde_json::Value = serde_json::from_slice(&p.to_payload()).unwrap();
    v["format"] = 2.into();
    let e = Policy::from_payload(v.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("upgrade the agent"), "{e}");
    v["format"] = 1.into();
    v["version"] = 0.into();
    assert_eq!(
        Policy::from_payload(v.to_string().as_bytes()),
        Err(PolicyError::ZeroVersion)
    );
    v["version"] = 4.into();
    v["disable_everything"] = true.into();
    let e = Policy::from_payload(v.to_string().as_bytes()).unwrap_err();
    assert!(e.to_string().contains("disable_everything"), "{e}");
    let mut odd = p.clone();
    odd.rules[0].name = "a\u{1b}[2J.toml".into();
    assert!(matches!(
        Policy::from_payload(&odd.to_payload()),
        Err(PolicyError::Bounds(_))
    ));
    let mut huge = p.clone();
    huge.rules[0].text = "#".repeat(2 << 20);
    assert!(matches!(
        Policy::from_payload(&huge.to_payload()),
        Err(PolicyError::Bounds(_))
    ));
}

#[test]
fn every_problem_names_its_file_and_nothing_runs_half() {
    let mut p = policy(
        vec![
            file(
                "good.toml",
                &kql_toml("process.name:a").replace("test-rule", "good"),
            ),
            file(
                "bad.toml",
                &kql_toml("process.name:(a or").replace("test-rule", "bad"),
            ),
        ],
        vec![file(
            "exc.ndjson",
            "{\"list_id\":\"l\",\"type\":\"bogus\"}\n",
        )],
    );
    p.block = vec!["nowhere".into()];
    p.links = vec![Link {
        rule_id: "good".into(),
        list_id: "missing".into(),
    }];
    let problems = p.compile("policy v3: ", None).unwrap_err();
    for want in [
        "policy v3: bad.toml:",
        "policy v3: exc.ndjson:1: type: expected `detection`",
        "block: no rule of the set has rule_id `nowhere`",
    ] {
        assert!(
            problems.iter().any(|m| m.contains(want)),
            "{want}: {problems:?}"
        );
    }

    let mut ok = policy(
        vec![file(
            "good.toml",
            &kql_toml("process.name:a").replace("test-rule", "good"),
        )],
        vec![],
    );
    ok.block = vec!["good".into()];
    let (set, _) = ok.compile("", None).unwrap();
    let good = set
        .rules()
        .iter()
        .position(|r| r.rule_id == "good")
        .unwrap();
    assert!(set.is_blocking(good));
    assert_eq!(set.blocking_rules().collect::<Vec<_>>(), vec![good]);
    assert_eq!(set.block_list(), ["good".to_string()]);
}
