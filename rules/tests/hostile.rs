//! Hostile rule files: none may crash, hang or exhaust the loader, the parsers or the
//! compiler. Deep nesting is refused with a clear error at the right place; positions are
//! mapped through escapes to the file exactly (never inside a character); long inputs stay
//! linear.

mod support;

use nightjar_rules::query::limits::{MAX_DEPTH, MAX_LEAVES, MAX_QUERY_BYTES};
use nightjar_rules::{RuleSet, RuleStatus};
use support::{eql_toml, kql_toml};

fn status_of(text: &str) -> RuleStatus {
    let (_, report) = RuleSet::from_texts(&[("h.toml", text)], None);
    report.entries[0].status.clone()
}

fn error_of(text: &str) -> String {
    match status_of(text) {
        RuleStatus::Error(m) => m,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A rule whose query is the TOML basic string `quoted` (escapes as written).
fn basic(quoted: &str) -> String {
    kql_toml("x").replace("query = '''\nx\n'''", &format!("query = \"{quoted}\""))
}

#[test]
fn deep_kql_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    for query in [
        format!("{}process.name:a{}", "(".repeat(depth), ")".repeat(depth)),
        format!("{}process.name:a", "not ".repeat(depth)),
        format!("process.name:{}a{}", "(".repeat(depth), ")".repeat(depth)),
        format!("process.name:({}a)", "not ".repeat(depth)),
    ] {
        let m = error_of(&kql_toml(&query[..query.len().min(MAX_QUERY_BYTES - 16)]));
        assert!(
            m.contains(&format!("deeper than {MAX_DEPTH} levels")),
            "{m}"
        );
        assert!(m.starts_with("h.toml:"), "{m}");
    }
    // Nesting up to the limit is fine.
    let ok = format!(
        "{}process.name:a{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(status_of(&kql_toml(&ok)), RuleStatus::Ok);
    // The error points at the level that went too deep.
    let m = error_of(&kql_toml(&format!("{}a:b", "(".repeat(MAX_DEPTH + 5))));
    assert!(
        m.starts_with(&format!("h.toml:13:{}:", MAX_DEPTH + 1)),
        "{m}"
    );
}

#[test]
fn deep_eql_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 10_000;
    for query in [
        format!(
            "process where {}process.name == \"a\"{}",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
        format!(
            "process where {}process.name == \"a\"",
            "not ".repeat(depth)
        ),
        format!(
            "process where process.pid == {}1{}",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
        format!(
            "process where length({}\"a\"{}) > 0",
            "concat(".repeat(depth),
            ")".repeat(depth)
        ),
        format!(
            "sequence [process where {}true{}] [process where true]",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
    ] {
        let m = error_of(&eql_toml(&query));
        assert!(
            m.contains(&format!("deeper than {MAX_DEPTH} levels")),
            "{m}"
        );
        assert!(m.starts_with("h.toml:"), "{m}");
    }
    let ok = format!(
        "process where {}process.name == \"a\"{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(status_of(&eql_toml(&ok)), RuleStatus::Ok);
    let long = format!(
        "process where process.name == \"{}\"",
        "a".repeat(MAX_QUERY_BYTES)
    );
    assert!(error_of(&eql_toml(&long)).contains("over the limit"));
}

#[test]
fn sizes_are_bounded() {
    let long = format!("process.name:{}", "a".repeat(MAX_QUERY_BYTES));
    assert!(error_of(&kql_toml(&long)).contains("over the limit"));
    let many = (0..=MAX_LEAVES)
        .map(|i| format!("f{i}:v"))
        .collect::<Vec<_>>()
        .join(" or ");
    let m = error_of(&kql_toml(&many[..many.len().min(MAX_QUERY_BYTES - 1)]));
    assert!(
        m.contains("field tests") || m.contains("over the limit"),
        "{m}"
    );
    // A long run of whitespace inside a value is linear (this would take minutes if each
    // position rescanned the run).
    let spaces = format!("process.name:a{}b", " ".repeat(MAX_QUERY_BYTES - 64));
    assert_eq!(status_of(&kql_toml(&spaces)), RuleStatus::Ok);
}

#[test]
fn positions_are_mapped_through_escapes_and_never_split_a_character() {
    // Value: 3 tabs, "ééé x" — the error is at the end of the value (offset 11), which in the
    // file is past the escapes and the three two-byte characters: the closing quote.
    let text = basic("\\t\\t\\t\u{e9}\u{e9}\u{e9} x");
    let m = error_of(&text);
    let line = text.lines().nth(11).unwrap();
    let col = line.chars().count();
    assert!(m.starts_with(&format!("h.toml:12:{col}:")), "{m}");
    // An error right after a `\u` escape points after the escape in the file.
    let text = basic("\\u00e9\\u00e9:(");
    let m = error_of(&text);
    let line = text.lines().nth(11).unwrap();
    assert!(
        m.starts_with(&format!("h.toml:12:{}:", line.chars().count())),
        "{m}"
    );
    // Every position of a query full of multi-byte text and escapes maps somewhere sane.
    for q in [
        "\u{e9}\u{e9} \\u00e9:\\u00e9 and (",
        "\\U0001F600\u{e9}:(a or",
        "\u{663}\u{664} : \\\"\u{e9} and",
        "process.name:\\\\\u{e9}\\t and x <",
    ] {
        let m = error_of(&basic(q));
        assert!(m.starts_with("h.toml:12:"), "{q}: {m}");
    }
    // EQL's own escapes inside a TOML literal string.
    let m = error_of(&eql_toml(
        "process where process.name == \"\\u{e9}\u{e9}\" and \u{e9} ==",
    ));
    assert!(m.starts_with("h.toml:"), "{m}");
}
