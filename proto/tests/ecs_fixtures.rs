//! The ECS decoder against `tests/fixtures/ecs`, plus property tests.

mod eslogger_support;

use eslogger_support::{fixture, lines, to_shuffled_json};
use nightjar_proto::ecs_json::{DecodeError, EcsDecoder};
use nightjar_proto::{ExecEvent, OsType, Source};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn decode_file(name: &str) -> Vec<Option<ExecEvent<'static>>> {
    let mut d = EcsDecoder::new();
    lines(fixture(name))
        .iter()
        .enumerate()
        .map(|(i, l)| {
            d.decode_line(l)
                .unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1))
                .and_then(|e| e.into_exec())
                .map(ExecEvent::into_owned)
        })
        .collect()
}

fn args(ev: &ExecEvent<'_>) -> Vec<String> {
    ev.target.args.iter().map(str::to_owned).collect()
}

#[test]
fn defend_documents_decode_and_non_process_ones_are_skipped() {
    let events = decode_file("ecs/defend-process.ndjson");
    let decoded: Vec<usize> = (0..events.len())
        .filter(|&i| events[i].is_some())
        .map(|i| i + 1)
        .collect();
    assert_eq!(decoded, [1, 4, 5, 6, 7, 8]);
    let kcc = events[0].as_ref().unwrap();
    assert_eq!(kcc.source, Source::Ecs);
    assert_eq!(kcc.os, OsType::Macos);
    assert_eq!(kcc.time_ns, 1_795_168_801_123_000_000);
    assert_eq!(kcc.target.pid, 8001);
    assert_eq!(kcc.target.ppid, Some(4000));
    assert_eq!(kcc.target.executable, "/usr/bin/kcc");
    assert_eq!(kcc.process_name(), "kcc");
    assert_eq!(args(kcc), ["kcc", "copy_cred_cache"]);
    assert_eq!(kcc.target.cwd.as_deref(), Some("/Users/bob"));
    assert_eq!(kcc.target.signing_id.as_deref(), Some("com.apple.kcc"));
    assert_eq!(kcc.target.team_id, None);
    assert_eq!(kcc.target.cs_flags, Some(0x2000_0001));
    assert_eq!((kcc.target.euid, kcc.target.egid), (Some(501), Some(20)));
    assert_eq!(kcc.target.uid, None);
    assert_eq!(kcc.caller.executable.as_deref(), Some("/bin/zsh"));
    assert_eq!(kcc.caller.pid, Some(8001));
    assert_eq!(kcc.target.pidversion, None);
    assert_eq!(kcc.es_seq_num, None);
    let security = events[3].as_ref().unwrap();
    assert_eq!(security.time_ns, 1_795_168_802_000_000_123);
    let curl = events[4].as_ref().unwrap();
    assert_eq!(curl.os, OsType::Linux);
    assert_eq!((curl.target.euid, curl.target.egid), (Some(0), Some(0)));
    assert_eq!(curl.caller.executable.as_deref(), Some("/usr/sbin/cron"));
    assert_eq!(curl.target.cs_flags, None);
    assert_eq!(curl.target.signing_id, None);
    let unsigned = events[5].as_ref().unwrap();
    assert_eq!(unsigned.target.cs_flags, Some(0));
    assert_eq!(unsigned.target.signing_id, None);
    let dev = events[6].as_ref().unwrap();
    assert_eq!(dev.target.team_id.as_deref(), Some("ABCDE12345"));
    let name_only = events[7].as_ref().unwrap();
    assert_eq!(name_only.target.executable, "kcc");
    assert_eq!(name_only.process_name(), "kcc");
}

#[test]
fn dotted_documents_equal_their_nested_originals() {
    let nested: Vec<ExecEvent<'static>> = decode_file("ecs/defend-process.ndjson")
        .into_iter()
        .flatten()
        .collect();
    let dotted = decode_file("ecs/dotted.ndjson");
    assert_eq!(dotted.len(), 2 * nested.len());
    for (i, ev) in dotted.iter().enumerate() {
        assert_eq!(
            ev.as_ref(),
            Some(&nested[i % nested.len()]),
            "dotted line {}",
            i + 1
        );
    }
}

const MALFORMED: [(usize, &str); 9] = [
    (2, "EOF while parsing"),
    (3, "at `process.pid`: invalid value: string \"eight\""),
    (4, "at `@timestamp`: invalid value: string \"yesterday\""),
    (5, "required field `@timestamp`"),
    (6, "required field `process.pid`"),
    (7, "at `process.args`: invalid type: map"),
    (
        8,
        "invalid type: string \"just a string\", expected an ECS document object",
    ),
    (9, "at `user.id`: invalid value: string \"-5\""),
    (10, "required field `process.executable`"),
];

#[test]
fn malformed_documents_give_errors_that_say_where() {
    let lines = lines(fixture("ecs/malformed.ndjson"));
    assert_eq!(lines.len(), 10);
    let mut d = EcsDecoder::new();
    assert!(d.decode_line(&lines[0]).unwrap().is_some());
    for (n, expected) in MALFORMED {
        let err = d
            .decode_line(&lines[n - 1])
            .err()
            .unwrap_or_else(|| panic!("malformed line {n} decoded"));
        let msg = err.to_string();
        assert!(
            msg.contains(expected),
            "line {n}: {msg:?} lacks {expected:?}"
        );
    }
    let err = d.decode_line(&lines[2]).unwrap_err();
    assert!(matches!(err, DecodeError::Json { .. }));
    assert!(err.column().is_some());
    // The decoder is reusable after errors: the path buffer starts clean.
    assert!(d.decode_line(&lines[0]).unwrap().is_some());
}

#[test]
fn hostile_documents_are_errors() {
    let mut d = EcsDecoder::new();
    let huge = format!(r#"{{"x":"{}"}}"#, "a".repeat(10 << 20));
    assert!(matches!(
        d.decode_line(&huge),
        Err(DecodeError::LineTooLong { .. })
    ));
    let deep = format!("{}{}", r#"{"process":"#.repeat(100_000), "1");
    assert!(d.decode_line(&deep).is_err());
    let deep_unknown = format!(r#"{{"x":{}}}"#, "[".repeat(100_000));
    assert!(d.decode_line(&deep_unknown).is_err());
    for skipped in [
        "{}",
        r#"{"process":null}"#,
        r#"{"event":{"category":"file"}}"#,
    ] {
        assert_eq!(d.decode_line(skipped).unwrap(), None, "{skipped}");
    }
}

/// Rewrites some nested objects as dotted keys of their parent, as exporters do.
fn partially_flatten(value: &Value, seed: &mut u64) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let flatten = (*seed >> 33) & 1 == 0;
        match partially_flatten(v, seed) {
            Value::Object(inner) if flatten => {
                for (ik, iv) in inner {
                    out.insert(format!("{k}.{ik}"), iv);
                }
            }
            other => {
                out.insert(k.clone(), other);
            }
        }
    }
    Value::Object(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dotting_and_key_order_do_not_change_the_event(index in 0usize..100, seed in any::<u64>()) {
        let all = lines(fixture("ecs/defend-process.ndjson"));
        let line = &all[index % all.len()];
        let value: Value = serde_json::from_str(line).unwrap();
        let mut seed = seed;
        let rewritten = to_shuffled_json(&partially_flatten(&value, &mut seed), &mut seed);
        let mut d = EcsDecoder::new();
        let a = d.decode_line(line).unwrap();
        let b = d.decode_line(&rewritten).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn random_and_mutated_documents_never_panic(
        index in 0usize..100,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..8),
        noise in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut d = EcsDecoder::new();
        if let Ok(Some(ev)) = d.decode_line(&String::from_utf8_lossy(&noise)) {
            prop_assert!(ev.validate().is_ok());
        }
        let all = lines(fixture("ecs/dotted.ndjson"));
        let mut bytes = all[index % all.len()].clone().into_bytes();
        for (pos, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = pos % bytes.len();
            match op {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                2 => { bytes.remove(at); }
                _ => bytes.truncate(at),
            }
        }
        if let Ok(Some(ev)) = d.decode_line(&String::from_utf8_lossy(&bytes)) {
            prop_assert!(ev.validate().is_ok());
        }
    }
}
