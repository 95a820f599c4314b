//! Helpers shared by the eslogger and ECS decoder tests: fixture paths and JSON rewriting.

#![allow(dead_code)] // each test crate uses a different subset

use std::path::PathBuf;

use serde_json::Value;

/// A file under the repository's `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

/// A file under the shared data next to the repository (`../shared/`).
pub fn shared(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared")
        .join(rel)
}

/// The lines of a fixture, as text (the file must be UTF-8).
pub fn lines(path: PathBuf) -> Vec<String> {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines().map(str::to_owned).collect()
}

/// Serialises `value` with the keys of every object in an order drawn from `seed`.
pub fn to_shuffled_json(value: &Value, seed: &mut u64) -> String {
    let mut out = String::new();
    write_shuffled(value, seed, &mut out);
    out
}

fn next(seed: &mut u64) -> u64 {
    // SplitMix64: small, deterministic, good enough to permute keys.
    *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn write_shuffled(value: &Value, seed: &mut u64, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            for i in (1..keys.len()).rev() {
                let j = (next(seed) % (i as u64 + 1)) as usize;
                keys.swap(i, j);
            }
            out.push('{');
            for (n, k) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_shuffled(&map[k], seed, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (n, v) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                write_shuffled(v, seed, out);
            }
            out.push(']');
        }
        leaf => out.push_str(&serde_json::to_string(leaf).unwrap()),
    }
}

/// Rewrites every `*audit_token` in an eslogger message to the other form: objects become
/// `[auid, euid, egid, ruid, rgid, pid, asid, pidversion]` arrays and arrays become objects.
pub fn flip_audit_tokens(value: &mut Value) {
    const ORDER: [&str; 8] = [
        "auid",
        "euid",
        "egid",
        "ruid",
        "rgid",
        "pid",
        "asid",
        "pidversion",
    ];
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k.ends_with("audit_token") {
                    let flipped = match &*v {
                        Value::Object(t) => {
                            Value::Array(ORDER.iter().map(|f| t[*f].clone()).collect())
                        }
                        Value::Array(a) => Value::Object(
                            ORDER
                                .iter()
                                .zip(a.iter())
                                .map(|(f, x)| ((*f).to_owned(), x.clone()))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    *v = flipped;
                } else {
                    flip_audit_tokens(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(flip_audit_tokens),
        _ => {}
    }
}
