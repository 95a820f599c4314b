//! Byte strings from the platform (kernel argv, Endpoint Security tokens, input lines) as
//! `str` without allocating: valid UTF-8 is borrowed as is, anything else is converted lossily
//! (U+FFFD) into a caller-owned buffer that is reused from one event to the next.

/// `bytes` as text: borrowed when valid UTF-8, else a lossy copy in `buf`.
pub fn lossy_into<'s>(bytes: &'s [u8], buf: &'s mut String) -> &'s str {
    match std::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => {
            buf.clear();
            push_lossy(bytes, buf);
            buf.as_str()
        }
    }
}

/// Appends `bytes` to `buf`, replacing invalid UTF-8 with U+FFFD.
pub fn push_lossy(bytes: &[u8], buf: &mut String) {
    for chunk in bytes.utf8_chunks() {
        buf.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            buf.push('\u{FFFD}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_is_borrowed_and_invalid_replaced() {
        let mut buf = String::new();
        let s = lossy_into(b"/bin/ls", &mut buf);
        assert_eq!(s, "/bin/ls");
        assert!(buf.is_empty(), "valid text is not copied");
        let s = lossy_into(b"a\xffb\xc3", &mut buf);
        assert_eq!(s, "a\u{FFFD}b\u{FFFD}");
    }
}
