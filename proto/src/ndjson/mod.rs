//! NDJSON input: the one reader every consumer of recorded or piped events uses
//! (`nightjar-sensor replay`, the eslogger source, `nightjar-agent scan`), and what the
//! decoders ([`crate::eslogger`], [`crate::ecs_json`]) share: the error type, the line-length
//! bound, lossy borrowed strings and ISO-8601 timestamps.
//!
//! Input lines are untrusted (a replayed file, a pipe from a process an attacker may feed).
//! Everything here refuses bad input with an error; nothing panics on it.
//!
//! **Invalid UTF-8 keeps the event.** Bytes that are not UTF-8 (in a line, or as a lone
//! surrogate escape inside a JSON string) become U+FFFD and the event is decoded and
//! evaluated like any other, exactly as live capture treats a non-UTF-8 argv. Dropping the
//! line instead would let anyone hide an exec from every rule by putting one odd byte in an
//! argument; a rule that matches the readable rest still fires.
//!
//! - [`lines`]: bounded line splitting with lossy UTF-8;
//! - [`input`]: lines -> decoded events for a chosen [`InputFormat`];
//! - [`time`]: RFC 3339 timestamps.

mod input;
mod lines;
mod time;

pub use input::{EventReader, InputFormat, Next};
pub use lines::{Line, LineReader};
pub(crate) use time::Timestamp;
pub use time::parse_rfc3339_ns;

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};

use crate::event::{Args, ArgsBuilder, MAX_ARGV_BYTES};

/// Longest input line accepted, in bytes. A real exec line is bounded by `ARG_MAX` (1 MiB of
/// argv plus environment on macOS) times JSON's escaping overhead; anything longer is refused
/// before parsing so one hostile line cannot make the decoder chew on gigabytes.
pub const MAX_LINE_BYTES: usize = 4 << 20;

/// Why one input line could not be decoded. The caller adds the file name and line number.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("line of {len} bytes is over the {max}-byte limit")]
    LineTooLong { len: usize, max: usize },
    /// Syntax errors, wrong types, bad values: `path` names the key (`event.exec.target.pid`),
    /// `source` carries serde_json's message and the line/column within the line.
    #[error("at `{path}`: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("required field `{field}` is missing or null")]
    Missing { field: &'static str },
}

impl DecodeError {
    /// The 1-based column within the line where JSON decoding failed, when known.
    pub fn column(&self) -> Option<usize> {
        match self {
            DecodeError::Json { source, .. } if source.line() > 0 => Some(source.column()),
            _ => None,
        }
    }

    /// Wraps a serde_json error with the key path it happened at (`""` = the whole line).
    pub(crate) fn json(path: String, source: serde_json::Error) -> Self {
        let path = if path.is_empty() || path == "." {
            "(line)".to_owned()
        } else {
            path
        };
        DecodeError::Json { path, source }
    }
}

/// Refuses over-long lines before any parsing.
pub(crate) fn check_line_len(line: &str) -> Result<(), DecodeError> {
    if line.len() > MAX_LINE_BYTES {
        return Err(DecodeError::LineTooLong {
            len: line.len(),
            max: MAX_LINE_BYTES,
        });
    }
    Ok(())
}

/// A JSON string that borrows from the input line when it has no escapes.
///
/// Decoded through serde_json's byte-string path so that a lone UTF-16 surrogate escape
/// (`"\ud800"`, which an attacker can put in argv to make a line undecodable as `str`) becomes
/// U+FFFD instead of failing the whole event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

impl<'a> Text<'a> {
    /// `None` for the empty string: a value the source did not know is absent, not empty.
    pub(crate) fn non_empty(self) -> Option<Cow<'a, str>> {
        (!self.0.is_empty()).then_some(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bytes(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(v)))
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Text(match std::str::from_utf8(v) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(String::from_utf8_lossy(v).into_owned()),
        }))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(String::from_utf8_lossy(v).into_owned())))
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        Ok(Text(match String::from_utf8(v) {
            Ok(s) => Cow::Owned(s),
            Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }))
    }
}

/// Bytes reserved past the first two arguments when argv is copied.
const ARGV_SLACK: usize = 64;

/// argv, bounded while it is read: a long argv keeps its head and its tail (see
/// [`crate::event::Args`]) and its true count; arguments in the dropped middle are skipped
/// without being kept.
#[derive(Debug, Default)]
pub(crate) struct Argv<'a> {
    pub args: Args<'a>,
    pub truncated: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Argv<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(ArgvVisitor)
    }
}

struct ArgvVisitor;

impl<'de> Visitor<'de> for ArgvVisitor {
    type Value = Argv<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of argument strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(Text(first)) = seq.next_element::<Text<'de>>()? else {
            return Ok(Argv::default());
        };
        let Some(Text(second)) = seq.next_element::<Text<'de>>()? else {
            // One argument borrows from the line as is (the common `-bash`, `ls` case).
            let (args, truncated) = match first {
                f if f.len() <= MAX_ARGV_BYTES && !f.contains('\0') => {
                    (Args::from_joined(f, 1).unwrap_or_default(), false)
                }
                f => Args::from_strs([f]),
            };
            return Ok(Argv { args, truncated });
        };
        // One allocation for the usual argv: room for the first two arguments and a few more.
        let room = (first.len() + second.len() + ARGV_SLACK).min(MAX_ARGV_BYTES);
        let mut args = ArgsBuilder::with_capacity(room);
        args.push(&first);
        args.push(&second);
        while let Some(Text(arg)) = seq.next_element::<Text<'de>>()? {
            args.push(&arg);
        }
        let truncated = args.is_cut();
        Ok(Argv {
            args: args.into_args(),
            truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_borrows_unescaped_and_repairs_lone_surrogates() {
        let Text(plain) = serde_json::from_str::<Text<'_>>(r#""/usr/bin/kcc""#).unwrap();
        assert!(matches!(plain, Cow::Borrowed("/usr/bin/kcc")));
        let Text(escaped) = serde_json::from_str::<Text<'_>>(r#""\/usr\/bin""#).unwrap();
        assert_eq!(escaped, "/usr/bin");
        let Text(lone) = serde_json::from_str::<Text<'_>>(r#""a\ud800b""#).unwrap();
        assert_eq!(lone, "a\u{FFFD}\u{FFFD}\u{FFFD}b");
        let Text(pair) = serde_json::from_str::<Text<'_>>(r#""\ud83d\ude00""#).unwrap();
        assert_eq!(pair, "😀");
        assert!(serde_json::from_str::<Text<'_>>("12").is_err());
    }
}
