//! Property tests: key order does not matter, and no input makes the decoder panic or emit
//! an event that breaks the bounds.

mod eslogger_support;

use std::sync::LazyLock;

use eslogger_support::{fixture, lines, shared, to_shuffled_json};
use nightjar_proto::codec::{self, Record};
use nightjar_proto::eslogger::EsloggerDecoder;
use proptest::prelude::*;

static CORPUS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut all = lines(shared("fixtures/eslogger/kcc-sample.ndjson"));
    for f in ["credential-access", "versions", "nasty"] {
        all.extend(lines(fixture(&format!("eslogger/{f}.ndjson"))));
    }
    all
});

/// A decoded event must satisfy the bounds and survive the ring codec unchanged.
fn check_event(line: &str) {
    if let Ok(Some(ev)) = EsloggerDecoder::new().decode_line(line) {
        ev.validate().expect("decoded event breaks a bound");
        let bytes = codec::encode_to_vec(&Record::from(ev.clone())).expect("encodes");
        assert_eq!(codec::decode(&bytes).expect("decodes"), Record::from(ev));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn key_order_does_not_change_the_event(index in 0usize..1000, seed in any::<u64>()) {
        let line = &CORPUS[index % CORPUS.len()];
        let value: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            // Lines with a lone surrogate do not survive serde_json::Value; others cover them.
            Err(_) => return Ok(()),
        };
        let mut seed = seed;
        let shuffled = to_shuffled_json(&value, &mut seed);
        let mut d = EsloggerDecoder::new();
        let a = d.decode_line(line).unwrap();
        let b = d.decode_line(&shuffled).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_event(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn mutated_lines_never_panic(
        index in 0usize..1000,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 1..8),
    ) {
        let mut bytes = CORPUS[index % CORPUS.len()].clone().into_bytes();
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
        check_event(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn structural_bytes_never_panic(
        picks in proptest::collection::vec(0usize..14, 0..400),
    ) {
        // Biased towards JSON punctuation so the parser gets deep, not just to the first byte.
        const TOKENS: [&str; 14] = [
            "{", "}", "[", "]", ",", ":", "\"event\"", "\"exec\"", "\"target\"",
            "\"audit_token\"", "\"args\"", "1", "\"x\"", "null",
        ];
        let line: String = picks.into_iter().map(|i| TOKENS[i]).collect();
        check_event(&line);
    }
}
