//! Text from alerts, rules and the agent made safe to print on a terminal.
//!
//! Alert fields are whatever a process put in its argv, path or environment, and rule files
//! and server answers are input too: printed raw, `ESC[2K`, `\r` and newlines forge table
//! rows, OSC sequences retitle the terminal or write the clipboard, and bidirectional
//! overrides reorder what is shown. Every human-readable output therefore goes through
//! [`terminal_safe`] (or [`terminal_safe_lines`] for our own multi-line messages), which
//! writes each such character as a visible escape: `\n`, `\r`, `\t`, `\x1b`, `\u{9b}`,
//! `\u{202e}`. JSON output goes through [`to_json_line`] / [`to_json_pretty`]: C0 controls
//! are already escaped by JSON itself, and DEL, C1 controls and the other characters above
//! are written as `\u` escapes too, which leaves the JSON's meaning unchanged.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;

/// Characters a terminal may act on or that change how neighbouring text is shown.
fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c, '\u{2028}' | '\u{2029}') // line and paragraph separators
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}') // bidi
}

/// `text` with every control or formatting character written as a visible escape.
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Like [`terminal_safe`], keeping line breaks: for messages we format ourselves over
/// several lines (each piece of outside text in them is escaped all the same).
pub fn terminal_safe_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| is_unsafe(c) && !(keep_newlines && c == '\n'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' if keep_newlines => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A JSON formatter that also writes DEL, C1 controls and the characters of [`is_unsafe`]
/// as `\u` escapes.
struct SafeStrings<F> {
    inner: F,
}

impl<F: serde_json::ser::Formatter> serde_json::ser::Formatter for SafeStrings<F> {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    // Everything else is the wrapped formatter's (compact or pretty).
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.inner.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)
    }
}

fn to_json_with<T: serde::Serialize + ?Sized, F: serde_json::ser::Formatter>(
    value: &T,
    formatter: F,
) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, SafeStrings { inner: formatter });
    value.serialize(&mut ser)?;
    // The serializer writes only UTF-8 (escapes are ASCII).
    String::from_utf8(out).map_err(|e| serde_json::Error::io(io::Error::other(e)))
}

/// `value` as one line of JSON, safe to print on a terminal.
pub fn to_json_line<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    to_json_with(value, serde_json::ser::CompactFormatter)
}

/// `value` as indented JSON, safe to print on a terminal.
pub fn to_json_pretty<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<String, serde_json::Error> {
    to_json_with(value, serde_json::ser::PrettyFormatter::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_are_escaped() {
        assert_eq!(terminal_safe("kcc copy_cred_cache"), "kcc copy_cred_cache");
        assert_eq!(
            terminal_safe("a\u{1b}[2K\rb\nc\u{9b}31m\u{202e}d\u{7}"),
            "a\\x1b[2K\\rb\\nc\\u{9b}31m\\u{202e}d\\x07"
        );
        assert_eq!(terminal_safe_lines("one\ntwo\r"), "one\ntwo\\r");
        assert_eq!(terminal_safe("é ✓ 中"), "é ✓ 中");
    }

    #[test]
    fn json_stays_json_and_carries_no_raw_control() {
        let v = serde_json::json!({"args": ["kcc", "\u{1b}]0;owned\u{7}", "\u{9b}2J", "\u{7f}", "\u{202e}x"]});
        for text in [to_json_line(&v).unwrap(), to_json_pretty(&v).unwrap()] {
            assert!(!text.chars().any(is_unsafe_outside_layout), "{text:?}");
            let back: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(
            to_json_line(&v).unwrap(),
            r#"{"args":["kcc","\u001b]0;owned\u0007","\u009b2J","\u007f","\u202ex"]}"#
        );
    }

    /// Pretty JSON's own newlines and indentation are fine.
    fn is_unsafe_outside_layout(c: char) -> bool {
        c != '\n' && is_unsafe(c)
    }
}
