//! What the NDJSON input decoders ([`crate::eslogger`], [`crate::ecs_json`]) share: the error
//! type, the line-length bound, lossy borrowed strings and ISO-8601 timestamps.
//!
//! Input lines are untrusted (a replayed file, a pipe from a process an attacker may feed).
//! Everything here refuses bad input with an error; nothing panics on it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::event::{Args, MAX_ARGV_BYTES};

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

/// argv, bounded while it is read: arguments past [`crate::event::MAX_ARGS`] or
/// [`crate::event::MAX_ARGV_BYTES`] are skipped without being copied.
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
        let mut args =
            Args::from_joined(Cow::Owned(String::with_capacity(room)), 0).unwrap_or_default();
        let mut truncated = !(args.push(&first) && args.push(&second));
        while !truncated {
            match seq.next_element::<Text<'de>>()? {
                Some(Text(arg)) => truncated = !args.push(&arg),
                None => return Ok(Argv { args, truncated }),
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Argv { args, truncated })
    }
}

/// An ISO-8601 / RFC 3339 timestamp as Unix nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timestamp(pub i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Text(s) = Text::deserialize(deserializer)?;
        parse_rfc3339_ns(&s).map(Timestamp).ok_or_else(|| {
            de::Error::invalid_value(
                de::Unexpected::Str(&s),
                &"an ISO-8601 time like 2026-11-20T09:00:00.122000123Z",
            )
        })
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix nanoseconds.
///
/// Fractions keep up to nanosecond precision (extra digits are dropped, not rounded); years
/// whose nanosecond count does not fit an `i64` (after 2262) are refused.
pub fn parse_rfc3339_ns(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(range)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let year = num(0..4)?;
    let month = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let minute = num(14..16)?;
    let second = num(17..19)?;
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_secs = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let h = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let m = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_unix_nanoseconds() {
        assert_eq!(parse_rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ns("2026-11-20T09:00:00.122000123Z"),
            Some(1_795_165_200_122_000_123)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-20T09:00:00.122Z"),
            Some(1_795_165_200_122_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2026-11-20T10:30:00.5+01:30"),
            Some(1_795_165_200_500_000_000)
        );
        assert_eq!(
            parse_rfc3339_ns("2000-02-29T00:00:00.1234567891Z"),
            Some(951_782_400_123_456_789)
        );
        assert_eq!(
            parse_rfc3339_ns("1969-12-31T23:59:59Z"),
            Some(-1_000_000_000)
        );
    }

    #[test]
    fn bad_timestamps_are_refused() {
        for bad in [
            "",
            "2026-11-20",
            "2026-11-20T09:00:00",
            "2026-13-20T09:00:00Z",
            "2026-02-29T09:00:00Z",
            "2026-11-20T24:00:00Z",
            "2026-11-20T09:00:00.Z",
            "2026-11-20T09:00:00ZZ",
            "2026-11-20T09:00:00+0100",
            "2026-11-2xT09:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-20T09:00:00.12é",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }

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
