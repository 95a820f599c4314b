//! Lucene regular expressions (Elasticsearch's `regexp` query, EQL's `regex`), translated to
//! the `regex` crate's syntax and compiled once per rule.

/// A compiled, anchored Lucene regular expression; equal when written alike.
#[derive(Debug, Clone)]
pub struct Regex {
    pub pattern: String,
    pub ci: bool,
    re: regex::Regex,
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.ci == other.ci
    }
}

impl Regex {
    /// Translates and compiles `pattern`; `ci`: case-insensitive.
    pub fn new(pattern: &str, ci: bool) -> Result<Regex, String> {
        let translated = lucene_to_regex(pattern, ci)?;
        let anchored = regex::Regex::new(&translated)
            .map_err(|e| format!("invalid regular expression: {e}"))?;
        // `.*X.*` anchored at both ends is an unanchored search for `X`, which the regex
        // engine can start from a literal of `X` instead of running from every byte.
        let search = unwrapped(pattern)
            .and_then(|inner| lucene_to_regex(inner, ci).ok())
            .and_then(|t| {
                let t = t.replacen("^(?:", "(?:", 1);
                regex::Regex::new(t.strip_suffix('$')?).ok()
            });
        let re = search.unwrap_or(anchored);
        Ok(Regex {
            pattern: pattern.to_owned(),
            ci,
            re,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

/// `X` when `pattern` is `.*X.*` (the dots unescaped, no alternation at the top level, the
/// leading star not followed by another quantifier): matching it whole is finding `X`.
fn unwrapped(pattern: &str) -> Option<&str> {
    let inner = pattern.strip_prefix(".*")?.strip_suffix(".*")?;
    if inner.starts_with(['?', '*', '+', '{']) || inner.is_empty() {
        return None;
    }
    // The trailing dot is a wildcard only if no odd run of backslashes escapes it.
    if inner.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1 {
        return None;
    }
    if top_level_alternation(pattern) || pattern.contains('"') {
        return None;
    }
    Some(inner)
}

/// Whether `pattern` has `|` outside brackets and groups.
fn top_level_alternation(pattern: &str) -> bool {
    let mut depth = 0i32;
    let mut escaped = false;
    for c in pattern.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '(' | '[') => depth += 1,
            (false, ')' | ']') => depth -= 1,
            (false, '|') if depth <= 0 => return true,
            _ => {}
        }
    }
    false
}

/// A literal every match of a Lucene regular expression holds somewhere (the longest run of
/// plain characters outside groups, each required: not made optional by `?`, `*` or `{`),
/// for indexing; `None` when there is none or the expression has a top-level alternation.
/// For a case-insensitive expression only a literal without `k` or `s` is given: the regex
/// engine's case folding also matches the Kelvin sign and the long s to those.
pub fn lucene_required_literal(pattern: &str, ci: bool) -> Option<String> {
    // Quoted text and classes opening with `]` are left to the regex engine.
    if top_level_alternation(pattern)
        || pattern.contains('"')
        || pattern.contains("[]")
        || pattern.contains("[^]")
    {
        return None;
    }
    let mut runs: Vec<String> = vec![String::new()];
    let mut depth = 0i32;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let lit = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => Some(e),
                _ => None,
            },
            '(' | '[' => {
                depth += 1;
                None
            }
            ')' | ']' => {
                depth -= 1;
                None
            }
            '{' => {
                // Repetition bounds: not text.
                for b in chars.by_ref() {
                    if b == '}' {
                        break;
                    }
                }
                None
            }
            '.' | '?' | '+' | '*' | '|' | '}' | '"' | '#' | '@' | '&' | '<' | '>' | '~' => None,
            c => Some(c),
        };
        let optional = matches!(chars.peek(), Some('?' | '*' | '{'));
        match lit {
            Some(l) if depth == 0 && !optional => {
                if let Some(run) = runs.last_mut() {
                    run.push(l);
                }
                // One or more: the character is required, what follows need not be next.
                if chars.peek() == Some(&'+') {
                    runs.push(String::new());
                }
            }
            _ => {
                if runs.last().is_some_and(|r| !r.is_empty()) {
                    runs.push(String::new());
                }
            }
        }
    }
    // Longest first; among equals, the one with fewer characters common in command lines
    // and paths.
    let common = |r: &str| {
        r.chars()
            .filter(|c| "./-_= 0123456789".contains(*c))
            .count()
    };
    runs.into_iter()
        .filter(|r| !r.is_empty())
        .filter(|r| !ci || !r.chars().any(|c| matches!(c, 'k' | 'K' | 's' | 'S')))
        .max_by_key(|r| (r.chars().count() * 4).saturating_sub(common(r)))
}

/// The literal text every match of a Lucene regular expression starts with (at least one
/// character), for indexing; `None` when there is none or it is not certain (an
/// alternation anywhere at the top level, an optional first character).
pub fn lucene_literal_prefix(pattern: &str) -> Option<String> {
    if top_level_alternation(pattern) {
        return None;
    }
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let lit = match c {
            '\\' => match chars.next() {
                Some(e) if e.is_ascii_punctuation() => e,
                _ => break,
            },
            '.' | '?' | '+' | '*' | '|' | '{' | '}' | '[' | ']' | '(' | ')' | '"' | '#' | '@'
            | '&' | '<' | '>' | '~' => break,
            c => c,
        };
        // A quantifier makes this character optional or repeated: it is not certain.
        if matches!(chars.peek(), Some('?' | '*' | '{')) {
            break;
        }
        out.push(lit);
    }
    (!out.is_empty()).then_some(out)
}

/// Translates a Lucene regular expression (the syntax Elasticsearch's `regexp` query and EQL's
/// `regex` use) to an anchored `regex` crate pattern.
pub fn lucene_to_regex(pattern: &str, ci: bool) -> Result<String, String> {
    let mut out = String::from(if ci { "(?si)^(?:" } else { "(?s)^(?:" });
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') => out.push_str("[0-9]"),
                Some('D') => out.push_str("[^0-9]"),
                Some('s') => out.push_str("[ \\t\\n\\x0B\\x0C\\r]"),
                Some('S') => out.push_str("[^ \\t\\n\\x0B\\x0C\\r]"),
                Some('w') => out.push_str("[a-zA-Z0-9_]"),
                Some('W') => out.push_str("[^a-zA-Z0-9_]"),
                Some(e) => out.push_str(&regex::escape(&e.to_string())),
                None => return Err("regular expression ends with `\\`".into()),
            },
            '"' => {
                let mut lit = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(x) => lit.push(x),
                        None => return Err("unterminated `\"` in regular expression".into()),
                    }
                }
                out.push_str("(?:");
                out.push_str(&regex::escape(&lit));
                out.push(')');
            }
            '[' => {
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
                let mut empty = true;
                loop {
                    match chars.next() {
                        Some(']') if !empty => break,
                        Some('\\') => match chars.next() {
                            Some(e) => push_class_char(&mut out, e),
                            None => return Err("unterminated `[` in regular expression".into()),
                        },
                        Some('-') if !empty && chars.peek().is_some_and(|n| *n != ']') => {
                            out.push('-')
                        }
                        Some(x) => push_class_char(&mut out, x),
                        None => return Err("unterminated `[` in regular expression".into()),
                    }
                    empty = false;
                }
                out.push(']');
            }
            '@' => out.push_str(".*"),
            '.' | '(' | ')' | '|' | '*' | '+' | '?' | '{' | '}' => out.push(c),
            '#' | '~' | '&' | '<' | '>' => {
                return Err(format!(
                    "Lucene regular expression operator `{c}` is not supported"
                ));
            }
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push_str(")$");
    Ok(out)
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_ascii_punctuation() {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_of_regular_expressions() {
        let p = |s| lucene_literal_prefix(s);
        assert_eq!(p(r"/var/run/\w+\.(pid|lock)").as_deref(), Some("/var/run/"));
        assert_eq!(p(r"\/tmp\/.*").as_deref(), Some("/tmp/"));
        assert_eq!(p("abc|def"), None);
        assert_eq!(p("ab?c").as_deref(), Some("a"));
        assert_eq!(p(".*x"), None);
        assert_eq!(p("(a|b)c"), None);
    }

    #[test]
    fn required_literals_of_regular_expressions() {
        let r = |s| lucene_required_literal(s, false);
        let ip = r".*[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{1,5}:[0-9]{1,3}.*";
        assert_eq!(r(ip).as_deref(), Some(":"));
        assert_eq!(r(r"/var/run/\w+\.(pid|lock)").as_deref(), Some("/var/run/"));
        assert_eq!(r(".*curl.*-o.*").as_deref(), Some("curl"));
        assert!(matches!(r("ab?c").as_deref(), Some("a" | "c")));
        assert_eq!(r("x+yz").as_deref(), Some("yz"));
        assert_eq!(r("abc|def"), None);
        assert_eq!(r("(abc)"), None);
        assert_eq!(r("a{2,3}b").as_deref(), Some("b"));
        assert_eq!(r("[]ab]x"), None);
        assert_eq!(r("\"ab\"?c"), None);
        assert_eq!(lucene_required_literal(".*skill.*", true), None);
        assert_eq!(
            lucene_required_literal(".*curl.*", true).as_deref(),
            Some("curl")
        );
    }

    #[test]
    fn a_pattern_between_any_strings_is_searched_for() {
        for (p, yes, no) in [
            (".*[0-9]+:[0-9]+.*", "x 10:20 y", "x 10 20 y"),
            (".*a\\.b.*", "xa.by", "xaxby"),
            (".*a\\.*", "a...", "b"),
            (".*(a|b)c.*", "zbcz", "zz"),
            (".*a.*|b", "b", "c"),
        ] {
            let re = Regex::new(p, false).unwrap();
            assert!(re.is_match(yes), "{p} on {yes}");
            assert!(!re.is_match(no), "{p} on {no}");
            let anchored = regex::Regex::new(&lucene_to_regex(p, false).unwrap()).unwrap();
            for s in [yes, no, "", "\n", "a\nb.c"] {
                assert_eq!(re.is_match(s), anchored.is_match(s), "{p} on {s:?}");
            }
        }
        assert_eq!(unwrapped(".*a.*"), Some("a"));
        assert_eq!(unwrapped(".*a\\.*"), None);
        assert_eq!(unwrapped(".*a.*|b.*"), None);
        assert_eq!(unwrapped(".*.*"), None);
        assert_eq!(unwrapped(".**x.*"), None);
    }

    #[test]
    fn lucene_regex_translation() {
        let re = Regex::new(r"https?:\/\/[0-9]{1,3}(:[0-9]{1,5})?\/.*", true).unwrap();
        assert!(re.is_match("HTTP://1:80/x"));
        assert!(!re.is_match("xhttp://1/"));
        let re = Regex::new("a^b$", false).unwrap();
        assert!(re.is_match("a^b$"));
        assert!(lucene_to_regex("a~b", false).is_err());
        assert!(Regex::new("[a-", false).is_err());
        assert!(Regex::new("a{2,1}", false).is_err());
    }
}
