//! Byte strings from the platform (kernel argv, Endpoint Security tokens) as `str` without
//! allocating: valid UTF-8 is borrowed as is, anything else is converted lossily (U+FFFD)
//! into a caller-owned buffer that is reused from one event to the next.

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

/// Reads NDJSON lines of untrusted input without allocating per line: bytes go into a reused
/// buffer, over-long lines are skipped whole (reported, never buffered without bound), and
/// invalid UTF-8 is converted lossily instead of losing the line or the stream.
#[derive(Debug, Default)]
pub struct LineReader {
    bytes: Vec<u8>,
    lossy: String,
}

/// One line from [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line's text, without its line ending.
    Text(&'a str),
    /// A line over the bound; its length so far is given, its bytes were dropped.
    TooLong(usize),
    /// End of input.
    End,
}

impl LineReader {
    /// Reads the next line, of at most `max` bytes.
    pub fn next_line<R: std::io::BufRead>(
        &mut self,
        input: &mut R,
        max: usize,
    ) -> std::io::Result<Line<'_>> {
        self.bytes.clear();
        let mut skipped = 0usize;
        loop {
            let chunk = input.fill_buf()?;
            if chunk.is_empty() {
                if self.bytes.is_empty() && skipped == 0 {
                    return Ok(Line::End);
                }
                break;
            }
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if skipped == 0 && self.bytes.len() + take <= max + 1 {
                self.bytes.extend_from_slice(&chunk[..take]);
            } else {
                skipped += self.bytes.len() + take;
                self.bytes.clear();
            }
            input.consume(take);
            if done {
                break;
            }
        }
        if skipped > 0 {
            return Ok(Line::TooLong(skipped));
        }
        let mut end = self.bytes.len();
        while end > 0 && matches!(self.bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        Ok(Line::Text(lossy_into(&self.bytes[..end], &mut self.lossy)))
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

    #[test]
    fn lines_are_split_bounded_and_converted() {
        let input = b"one\r\ntoo long line\n\xffx\nlast".to_vec();
        let mut input = std::io::BufReader::with_capacity(4, &input[..]);
        let mut lines = LineReader::default();
        assert_eq!(lines.next_line(&mut input, 8).unwrap(), Line::Text("one"));
        assert_eq!(lines.next_line(&mut input, 8).unwrap(), Line::TooLong(14));
        assert_eq!(
            lines.next_line(&mut input, 8).unwrap(),
            Line::Text("\u{FFFD}x")
        );
        assert_eq!(lines.next_line(&mut input, 8).unwrap(), Line::Text("last"));
        assert_eq!(lines.next_line(&mut input, 8).unwrap(), Line::End);
        assert_eq!(lines.next_line(&mut input, 8).unwrap(), Line::End);
    }
}
