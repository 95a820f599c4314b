//! Exception lists in Kibana's export format: Elastic's entry types, operators, case rules,
//! `os_types`, `expire_time`, endpoint vs detection lists, and clear errors for hostile files.

mod support;

use nightjar_proto::OsType;
use nightjar_rules::ecs::{EcsEvent, NoProcesses};
use nightjar_rules::{RuleSet, SourceText, Sources};
use serde_json::{Value, json};
use support::{event, host, kql_toml};

const NOW: i64 = 1_800_000_000_000_000_000;

fn endpoint_list() -> Value {
    json!({"_version":"WzEsMV0=","created_at":"2026-01-05T10:00:00.000Z","created_by":"elastic",
        "description":"Endpoint Security Exception List","id":"endpoint_list","immutable":false,
        "list_id":"endpoint_list","name":"Endpoint Security Exception List",
        "namespace_type":"agnostic","os_types":[],"tags":[],"tie_breaker_id":"6a7b",
        "type":"endpoint","updated_at":"2026-01-05T10:00:00.000Z","updated_by":"elastic","version":1})
}

fn detection_list(list_id: &str) -> Value {
    json!({"description":"tuning","id":"9b1c","immutable":false,"list_id":list_id,"name":list_id,
        "namespace_type":"single","os_types":[],"tags":[],"type":"detection","version":1})
}

fn item(list_id: &str, item_id: &str, os: &[&str], entries: Value) -> Value {
    let ns = if list_id == "endpoint_list" {
        "agnostic"
    } else {
        "single"
    };
    json!({"_version":"WzIsMV0=","comments":[],"created_at":"2026-01-05T10:00:00.000Z",
        "created_by":"elastic","description":"","entries":entries,"id":format!("id-{item_id}"),
        "item_id":item_id,"list_id":list_id,"name":item_id,"namespace_type":ns,"os_types":os,
        "tags":[],"tie_breaker_id":"x","type":"simple","updated_at":"2026-01-05T10:00:00.000Z",
        "updated_by":"elastic"})
}

fn ndjson(lines: &[Value]) -> String {
    let mut out: String = lines.iter().map(|l| format!("{l}\n")).collect();
    out.push_str(
        "{\"exported_exception_list_count\":1,\"exported_exception_list_item_count\":1,\
         \"missing_exception_list_item_count\":0,\"missing_exception_list_items\":[],\
         \"missing_exception_lists\":[],\"missing_exception_lists_count\":0}\n",
    );
    out
}

/// Two rules: `kcc` (names the `kcc-tuning` detection list) and `any-exec` (names none).
fn rules() -> Vec<SourceText> {
    let kcc = kql_toml("process.name:kcc").replace("test-rule", "kcc")
        + "\n[[rule.exceptions_list]]\nid = \"9b1c\"\nlist_id = \"kcc-tuning\"\n\
           namespace_type = \"single\"\ntype = \"detection\"\n";
    let any = kql_toml("event.category:process").replace("test-rule", "any-exec");
    vec![
        SourceText {
            name: "kcc.toml".into(),
            text: kcc,
        },
        SourceText {
            name: "any.toml".into(),
            text: any,
        },
    ]
}

fn set(exceptions: &str) -> RuleSet {
    let (set, report) = RuleSet::build(Sources {
        rules: rules(),
        exceptions: vec![SourceText {
            name: "exc.ndjson".into(),
            text: exceptions.to_owned(),
        }],
        ..Sources::default()
    });
    assert!(report.problems().is_empty(), "{:?}", report.problems());
    assert_eq!(set.rules().len(), 2);
    set
}

/// Rule ids whose match on `ev` is excepted, and those that alert.
fn outcome(set: &RuleSet, ev: &nightjar_proto::ExecEvent<'_>) -> (Vec<String>, Vec<String>) {
    let host = host();
    let view = EcsEvent::new(ev, &NoProcesses, &host);
    let mut hits = Vec::new();
    set.evaluate(&view, &mut hits);
    let (mut excepted, mut alerts) = (Vec::new(), Vec::new());
    for i in hits {
        let id = set.rules()[i].rule_id.clone();
        if set.excepted(i, &view, NOW).is_some() {
            excepted.push(id);
        } else {
            alerts.push(id);
        }
    }
    (excepted, alerts)
}

fn kcc(args: &[&str]) -> nightjar_proto::ExecEvent<'static> {
    event("/usr/local/bin/kcc", args)
}

#[test]
fn endpoint_items_apply_to_every_rule_detection_items_to_the_rules_naming_them() {
    let text = ndjson(&[
        endpoint_list(),
        item(
            "endpoint_list",
            "trusted-kcc",
            &["macos"],
            json!([{"field":"process.executable","operator":"included","type":"match","value":"/usr/local/bin/kcc"},
                   {"field":"process.args","operator":"included","type":"match","value":"list"}]),
        ),
        detection_list("kcc-tuning"),
        item(
            "kcc-tuning",
            "kcc-copy",
            &[],
            json!([{"field":"process.args","operator":"included","type":"match_any","value":["copy_cred_cache","x"]}]),
        ),
    ]);
    let s = set(&text);
    // Endpoint item: both entries hold -> both rules excepted.
    assert_eq!(outcome(&s, &kcc(&["kcc", "list"])).1, Vec::<String>::new());
    // Detection item: only the rule naming the list.
    assert_eq!(
        outcome(&s, &kcc(&["kcc", "copy_cred_cache"])),
        (vec!["kcc".into()], vec!["any-exec".into()])
    );
    // Neither item: entries are ANDed.
    assert_eq!(outcome(&s, &kcc(&["kcc", "other"])).1.len(), 2);
    let mut linux = kcc(&["kcc", "list"]);
    linux.os = OsType::Linux;
    // The endpoint item is for macOS only.
    assert_eq!(outcome(&s, &linux).1.len(), 2);
}

#[test]
fn case_rules_are_elastics() {
    let entries = |field: &str, ty: &str, value: Value| json!([{"field":field,"operator":"included","type":ty,"value":value}]);
    let text = ndjson(&[
        endpoint_list(),
        // Endpoint, macOS: `.caseless` and `.name` fields compare without case.
        item(
            "endpoint_list",
            "a",
            &["macos"],
            entries(
                "process.executable.caseless",
                "match",
                json!("/USR/LOCAL/BIN/KCC"),
            ),
        ),
        detection_list("kcc-tuning"),
        // Detection: case-sensitive unless `.caseless`.
        item(
            "kcc-tuning",
            "b",
            &[],
            entries("process.working_directory", "match", json!("/users/bob")),
        ),
    ]);
    let s = set(&text);
    assert_eq!(
        outcome(&s, &kcc(&["kcc"])).1.len(),
        0,
        "caseless endpoint match"
    );
    let text = ndjson(&[
        detection_list("kcc-tuning"),
        item(
            "kcc-tuning",
            "b",
            &[],
            entries("process.working_directory", "match", json!("/users/bob")),
        ),
    ]);
    let s = set(&text);
    assert_eq!(
        outcome(&s, &kcc(&["kcc"])).0.len(),
        0,
        "detection match is case-sensitive"
    );
    let text = ndjson(&[
        detection_list("kcc-tuning"),
        item(
            "kcc-tuning",
            "b",
            &[],
            entries(
                "process.working_directory.caseless",
                "match",
                json!("/users/BOB"),
            ),
        ),
    ]);
    let s = set(&text);
    assert_eq!(outcome(&s, &kcc(&["kcc"])).0, vec!["kcc".to_string()]);

    // Endpoint `process.name` on macOS is caseless, on Linux cased.
    let text = ndjson(&[
        endpoint_list(),
        item(
            "endpoint_list",
            "mac",
            &["macos"],
            entries("process.name", "match", json!("KCC")),
        ),
        item(
            "endpoint_list",
            "lin",
            &["linux"],
            entries("process.name", "match", json!("KCC")),
        ),
    ]);
    let s = set(&text);
    assert_eq!(outcome(&s, &kcc(&["kcc"])).1.len(), 0);
    let mut linux = kcc(&["kcc"]);
    linux.os = OsType::Linux;
    assert_eq!(outcome(&s, &linux).1.len(), 2);

    // Wildcards: `?` one character, case-sensitive on a plain field even for endpoint lists.
    let text = ndjson(&[
        endpoint_list(),
        item(
            "endpoint_list",
            "w",
            &["macos"],
            entries("process.executable", "wildcard", json!("/usr/*/bin/kc?")),
        ),
    ]);
    let s = set(&text);
    assert_eq!(outcome(&s, &kcc(&["kcc"])).1.len(), 0);
    assert_eq!(
        outcome(&s, &event("/usr/local/bin/KCC", &["kcc"])).1.len(),
        1
    );
    assert_eq!(
        outcome(&s, &event("/usr/local/bin/kcc2", &["kcc"])).1.len(),
        1
    );
}

#[test]
fn excluded_exists_nested_and_expiry() {
    let text = ndjson(&[
        detection_list("kcc-tuning"),
        // Excepted when not signed by Apple's id and no team id at all.
        item(
            "kcc-tuning",
            "unsigned-elsewhere",
            &[],
            json!([{"field":"process.code_signature.signing_id","operator":"excluded","type":"match","value":"com.apple.kcc"},
                   {"field":"process.code_signature.team_id","operator":"excluded","type":"exists"}]),
        ),
        item(
            "kcc-tuning",
            "nested-signature",
            &[],
            json!([{"field":"process.code_signature","type":"nested","entries":[
                {"field":"signing_id","operator":"included","type":"match","value":"com.example.kcc"},
                {"field":"trusted","operator":"included","type":"match","value":"true"}]}]),
        ),
        item(
            "kcc-tuning",
            "expired",
            &[],
            json!([{"field":"process.name","operator":"included","type":"match","value":"kcc"}]),
        ),
    ]);
    // Give the last item an expire_time before NOW, and a second copy one after.
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut last: Value = serde_json::from_str(&lines[3]).unwrap();
    last["expire_time"] = json!("2026-01-01T00:00:00.000Z");
    lines[3] = last.to_string();
    let s = set(&(lines.join("\n") + "\n"));
    // Apple-signed: neither of the first two items, and the third has expired.
    assert_eq!(outcome(&s, &kcc(&["kcc"])).0, Vec::<String>::new());
    let mut other = kcc(&["kcc"]);
    other.target.signing_id = Some("com.example.kcc".into());
    assert_eq!(outcome(&s, &other).0, vec!["kcc".to_string()]);
    other.target.team_id = Some("TEAM123456".into());
    // Still the nested item: signing id com.example.kcc and trusted.
    assert_eq!(outcome(&s, &other).0, vec!["kcc".to_string()]);
    other.target.cs_flags = Some(0);
    assert_eq!(outcome(&s, &other).0, Vec::<String>::new());

    let mut future: Value = serde_json::from_str(&lines[3]).unwrap();
    future["expire_time"] = json!("2099-01-01T00:00:00.000Z");
    lines[3] = future.to_string();
    let s = set(&(lines.join("\n") + "\n"));
    assert_eq!(outcome(&s, &kcc(&["kcc"])).0, vec!["kcc".to_string()]);
}

fn errors_of(text: &str) -> Vec<String> {
    let (_, report) = RuleSet::build(Sources {
        rules: rules(),
        exceptions: vec![SourceText {
            name: "bad.ndjson".into(),
            text: text.to_owned(),
        }],
        ..Sources::default()
    });
    report.exception_errors
}

#[test]
fn hostile_files_get_errors_naming_file_and_line() {
    let list = detection_list("kcc-tuning").to_string();
    let cases: &[(&str, &str)] = &[
        ("not json at all", "bad.ndjson:2: not JSON"),
        ("[1,2]", "bad.ndjson:2: expected a JSON object"),
        (r#"{"x":1}"#, "bad.ndjson:2: neither an exception_list"),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","entries":[{"field":"a","type":"match","operator":"sometimes","value":"x"}]}"#,
            "bad.ndjson:2: item `i`: entries[0].operator: expected `included` or `excluded`",
        ),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","entries":[{"field":"a","type":"list","operator":"included","list":{"id":"ips","type":"ip"}}]}"#,
            "bad.ndjson:2: item `i`: entries[0].type: `list` entries",
        ),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","entries":[{"field":"process.pid","type":"match","operator":"included","value":"x"}]}"#,
            "bad.ndjson:2: item `i`: entries[0]: `x` is not a number",
        ),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","entries":[{"field":"process.pid","type":"wildcard","operator":"included","value":"1*"}]}"#,
            "bad.ndjson:2: item `i`: entries[0]: a wildcard pattern cannot be compared",
        ),
        (
            r#"{"item_id":"i","list_id":"nowhere","entries":[{"field":"a","type":"exists","operator":"included"}]}"#,
            "bad.ndjson:2: item `i`: its list `nowhere` (single) is not in the exception files",
        ),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","expire_time":"tomorrow","entries":[{"field":"a","type":"exists","operator":"included"}]}"#,
            "bad.ndjson:2: item `i`: expire_time: expected an ISO 8601 time",
        ),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","entries":[{"field":"a","type":"nested","entries":[{"field":"b","type":"nested","entries":[]}]}]}"#,
            "bad.ndjson:2: item `i`: entries[0].entries[0].type: a nested entry holds",
        ),
        (
            r#"{"item_id":"i","list_id":"kcc-tuning","entries":[]}"#,
            "bad.ndjson:2: item `i`: entries: must not be empty",
        ),
        (
            r#"{"list_id":"trusted","type":"endpoint_trusted_apps"}"#,
            "bad.ndjson:2: type: `endpoint_trusted_apps` lists configure Elastic Defend",
        ),
    ];
    for (line, want) in cases {
        let errs = errors_of(&format!("{list}\n{line}\n"));
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{line}: want {want:?}, got {errs:?}"
        );
    }
    // A very long line is refused without being parsed; deep JSON nesting is refused by the
    // JSON parser's own limit, not by the stack.
    let long = format!("{list}\n{}\n", "x".repeat(2 << 20));
    assert!(
        errors_of(&long)[0].contains("bad.ndjson:2: line of"),
        "{:?}",
        errors_of(&long)
    );
    let deep = format!("{list}\n{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    assert!(errors_of(&deep)[0].starts_with("bad.ndjson:2: not JSON"));
    let dup = format!("{list}\n{list}\n");
    assert!(errors_of(&dup)[0].contains("defined twice (also at bad.ndjson:1)"));
}

/// The index that picks the items a match is tested against only ever saves work: a set of
/// many items excepts exactly the events one of its items excepts alone.
#[test]
fn the_item_index_never_changes_an_answer() {
    let m =
        |f: &str, v: &str| json!({"field": f, "operator": "included", "type": "match", "value": v});
    let w = |f: &str, v: &str| json!({"field": f, "operator": "included", "type": "wildcard", "value": v});
    let shapes: Vec<Value> = vec![
        json!([m("process.executable", "/usr/local/bin/kcc")]),
        json!([m("process.executable.caseless", "/USR/LOCAL/BIN/KCC")]),
        json!([m("process.name", "KCC")]),
        json!([w("process.executable", "/usr/*/bin/kc?")]),
        json!([w("process.executable", "/USR/local/*")]),
        json!([w("process.executable.caseless", "/USR/local/*")]),
        json!([{"field": "process.args", "operator": "included", "type": "match_any", "value": ["list", "copy_cred_cache"]}]),
        json!([
            m("process.code_signature.signing_id", "com.apple.kcc"),
            m("process.args", "kcc")
        ]),
        json!([{"field": "process.code_signature", "type": "nested", "entries": [m("signing_id", "com.apple.kcc")]}]),
        json!([{"field": "process.executable", "operator": "excluded", "type": "match", "value": "/bin/ls"}]),
        json!([
            m("process.working_directory", "/Users/bob"),
            m("user.name", "root")
        ]),
        json!([w("process.working_directory", "*bob")]),
        json!([m("process.name", "\u{e9}kcc")]),
    ];
    let mut all = vec![endpoint_list()];
    for (i, entries) in shapes.iter().enumerate() {
        all.push(item(
            "endpoint_list",
            &format!("s{i}"),
            &["macos"],
            entries.clone(),
        ));
    }
    let many = set(&ndjson(&all));
    let singles: Vec<RuleSet> = shapes
        .iter()
        .enumerate()
        .map(|(i, entries)| {
            set(&ndjson(&[
                endpoint_list(),
                item(
                    "endpoint_list",
                    &format!("s{i}"),
                    &["macos"],
                    entries.clone(),
                ),
            ]))
        })
        .collect();
    let exes = [
        "/usr/local/bin/kcc",
        "/USR/LOCAL/BIN/KCC",
        "/usr/bin/kcc",
        "/bin/ls",
        "/opt/\u{e9}kcc",
    ];
    let argvs: [&[&str]; 3] = [&["kcc"], &["kcc", "list"], &["x", "copy_cred_cache"]];
    let mut checked = 0;
    for exe in exes {
        for args in argvs {
            for signed in [true, false] {
                let mut ev = event(exe, args);
                if !signed {
                    ev.target.signing_id = None;
                }
                let (excepted, _) = outcome(&many, &ev);
                let any_single = singles.iter().any(|s| !outcome(s, &ev).0.is_empty());
                assert_eq!(
                    !excepted.is_empty(),
                    any_single,
                    "{exe} {args:?} signed={signed}: {excepted:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 30);
}
