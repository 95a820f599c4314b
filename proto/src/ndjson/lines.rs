//! Bounded line splitting: one reused buffer, over-long lines skipped whole (reported, never
//! buffered without bound), invalid UTF-8 converted lossily instead of losing the line.

use std::io::{self, BufRead};

use crate::text::lossy_into;

/// Reads NDJSON lines of untrusted input without allocating per line.
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
    /// A line over the bound; its length is given, its bytes were dropped.
    TooLong(usize),
    /// End of input.
    End,
}

impl LineReader {
    /// Reads the next line, of at most `max` bytes (its line ending not counted).
    pub fn next_line<R: BufRead>(&mut self, input: &mut R, max: usize) -> io::Result<Line<'_>> {
        self.bytes.clear();
        let mut skipped = 0usize;
        loop {
            let chunk = match input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if self.bytes.is_empty() && skipped == 0 {
                    return Ok(Line::End);
                }
                break;
            }
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if skipped == 0 && self.bytes.len() + take <= max + 2 {
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
        let mut end = self.bytes.len();
        while end > 0 && matches!(self.bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        if skipped > 0 || end > max {
            return Ok(Line::TooLong(skipped.max(end)));
        }
        Ok(Line::Text(lossy_into(&self.bytes[..end], &mut self.lossy)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_bounded_and_converted() {
        let input = b"one\r\ntoo long line\n\xffx\nlast".to_vec();
        let mut input = io::BufReader::with_capacity(4, &input[..]);
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

    #[test]
    fn the_bound_excludes_the_line_ending() {
        let input = b"12345678\r\n123456789\n12345678".to_vec();
        let mut input = io::BufReader::with_capacity(3, &input[..]);
        let mut lines = LineReader::default();
        assert_eq!(
            lines.next_line(&mut input, 8).unwrap(),
            Line::Text("12345678")
        );
        assert_eq!(lines.next_line(&mut input, 8).unwrap(), Line::TooLong(9));
        assert_eq!(
            lines.next_line(&mut input, 8).unwrap(),
            Line::Text("12345678")
        );
    }
}
