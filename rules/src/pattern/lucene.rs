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
        let re = regex::Regex::new(&translated)
            .map_err(|e| format!("invalid regular expression: {e}"))?;
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

/// The literal text every match of a Lucene regular expression starts with (at least one
/// character), for indexing; `None` when there is none or it is not certain (an
/// alternation anywhere at the top level, an optional first character).
pub fn lucene_literal_prefix(pattern: &str) -> Option<String> {
    let mut depth = 0i32;
    let mut escaped = false;
    for c in pattern.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '(' | '[') => depth += 1,
            (false, ')' | ']') => depth -= 1,
            (false, '|') if depth <= 0 => return None,
            _ => {}
        }
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
