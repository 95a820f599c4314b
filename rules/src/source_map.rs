//! From a position in a TOML string's decoded value back to the file: a query's errors are
//! found at byte offsets of the decoded query, and reported as `file:line:col` of the file.
//!
//! Basic strings (`"…"`, `"""…"""`) decode escapes (`\t` is two bytes in the file and one in
//! the value, `\u00e9` six and two) and, in multi-line ones, drop a line-ending backslash with
//! the whitespace after it; literal strings (`'…'`, `'''…'''`) are the file's bytes. Walking
//! the literal with those rules gives the exact file position of any decoded offset, and that
//! position is always a character boundary of the file (an offset inside an escape maps to the
//! escape's start).

use std::ops::Range;

/// One string literal of a TOML file.
#[derive(Debug, Clone)]
pub struct LiteralMap<'t> {
    text: &'t str,
    /// Where the value's first byte comes from (after the quotes and a first newline).
    body: usize,
    /// Where the closing quotes start.
    end: usize,
    basic: bool,
    multiline: bool,
}

impl<'t> LiteralMap<'t> {
    /// The literal at `span` of `text` (as the TOML parser reported it).
    pub fn new(text: &'t str, span: Range<usize>) -> LiteralMap<'t> {
        let span = span.start.min(text.len())..span.end.min(text.len());
        let raw = text.get(span.clone()).unwrap_or("");
        let delim = ["'''", "\"\"\"", "'", "\""]
            .into_iter()
            .find(|d| raw.starts_with(d))
            .unwrap_or("");
        let multiline = delim.len() == 3;
        let mut body = span.start + delim.len();
        if multiline {
            if text[body..].starts_with("\r\n") {
                body += 2;
            } else if text[body..].starts_with('\n') {
                body += 1;
            }
        }
        let end = span.end.saturating_sub(delim.len()).max(body);
        LiteralMap {
            text,
            body,
            end,
            basic: delim.starts_with('"'),
            multiline,
        }
    }

    /// The file offset of byte `decoded` of the value (the closing quote for an offset past
    /// the end).
    pub fn file_offset(&self, decoded: usize) -> usize {
        let raw = &self.text[self.body..self.end];
        if !self.basic {
            return floor_boundary(self.text, self.body + decoded.min(raw.len()));
        }
        let bytes = raw.as_bytes();
        let (mut i, mut value) = (0usize, 0usize);
        while i < bytes.len() && value < decoded {
            if bytes[i] != b'\\' {
                let len = raw[i..].chars().next().map_or(1, char::len_utf8);
                if value + len > decoded {
                    break;
                }
                i += len;
                value += len;
                continue;
            }
            let (raw_len, value_len) = match bytes.get(i + 1) {
                Some(b'u') => (6, hex_char_len(raw.get(i + 2..i + 6))),
                Some(b'U') => (10, hex_char_len(raw.get(i + 2..i + 10))),
                Some(b' ' | b'\t' | b'\r' | b'\n') if self.multiline => {
                    // A line-ending backslash: it and the whitespace after it decode to nothing.
                    let rest = &raw[i + 1..];
                    let kept = rest.trim_start_matches([' ', '\t', '\r', '\n']);
                    (1 + rest.len() - kept.len(), 0)
                }
                Some(_) => (2, 1),
                None => (1, 1),
            };
            if value + value_len > decoded {
                break;
            }
            i = (i + raw_len).min(bytes.len());
            value += value_len;
        }
        // A line-ending backslash right here decodes to nothing: the byte is after it.
        while self.multiline && value == decoded && bytes.get(i) == Some(&b'\\') {
            let rest = &raw[i + 1..];
            let kept = rest.trim_start_matches([' ', '\t', '\r', '\n']);
            if kept.len() == rest.len() {
                break;
            }
            i += 1 + rest.len() - kept.len();
        }
        floor_boundary(self.text, self.body + i)
    }
}

/// The length in UTF-8 of the character `hex` names (1 when it names none: the TOML parser
/// refused such a string already).
fn hex_char_len(hex: Option<&str>) -> usize {
    hex.and_then(|h| u32::from_str_radix(h, 16).ok())
        .and_then(char::from_u32)
        .map_or(1, char::len_utf8)
}

/// `at`, or the start of the character it falls inside.
pub fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> LiteralMap<'_> {
        let start = text.find(['"', '\'']).unwrap();
        LiteralMap::new(text, start..text.trim_end().len())
    }

    #[test]
    fn escapes_map_back_to_the_file() {
        // Value: TAB TAB TAB é é é SPACE x
        let text = "q = \"\\t\\t\\t\u{e9}\u{e9}\u{e9} x\"";
        let m = map(text);
        let body = text.find('"').unwrap() + 1;
        assert_eq!(m.file_offset(0), body);
        assert_eq!(m.file_offset(1), body + 2);
        assert_eq!(m.file_offset(3), body + 6);
        assert_eq!(m.file_offset(5), body + 8);
        // Past the end: the closing quote.
        assert_eq!(m.file_offset(99), text.len() - 1);
        // `\u00e9` is six bytes in the file, two in the value; inside it maps to its start.
        let text = "q = \"a\\u00e9b\"";
        let m = map(text);
        assert_eq!(m.file_offset(1), 6);
        assert_eq!(m.file_offset(2), 6);
        assert_eq!(m.file_offset(3), 12);
    }

    #[test]
    fn literal_and_multiline_strings() {
        let text = "q = '''\n\u{e9}x\\t'''";
        let m = map(text);
        assert_eq!(m.file_offset(2), 10);
        assert_eq!(m.file_offset(1), 8, "inside é: its start");
        let text = "q = \"\"\"\na \\\n   b\"\"\"";
        let m = map(text);
        // Value "a b": `b` is after the line-ending backslash and its whitespace.
        assert_eq!(&text[m.file_offset(2)..m.file_offset(2) + 1], "b");
    }
}
