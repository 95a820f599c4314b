//! Lines to events for a chosen input format: the one loop behind `replay`, the eslogger
//! source and `scan`, so a line is kept, skipped or refused the same way everywhere.

use std::io::{self, BufRead};

use super::{DecodeError, Line, LineReader, MAX_LINE_BYTES};
use crate::ecs_json::EcsDecoder;
use crate::eslogger::{EsSeq, EsloggerDecoder};
use crate::event::{EnvFilter, Event};

/// The recorded-event formats (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// `eslogger` JSON, one message per line, any message version.
    Eslogger,
    /// ECS documents (Elastic Defend's process events), one per line.
    Ecs,
}

enum Decoder {
    Eslogger(EsloggerDecoder),
    Ecs(EcsDecoder),
}

/// What the next line held.
// The event is moved out by value: boxing it would allocate for every line read.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next<'a> {
    /// An event, borrowing from the reader's line buffer, and the Endpoint Security numbers
    /// of its message (eslogger input).
    Event(Event<'a>, Option<EsSeq>),
    /// A blank line, or a well-formed message that maps to no event; its Endpoint Security
    /// numbers still count for loss detection.
    Skip(Option<EsSeq>),
    /// A line that could not be decoded (too long, bad JSON, missing fields); report it with
    /// its line number and go on.
    Bad(DecodeError),
    /// End of input.
    End,
}

/// Reads events from NDJSON input: bounded lines, invalid UTF-8 replaced (the event is kept,
/// see the module docs of [`crate::ndjson`]), one reused buffer, no allocation per line for
/// the common event.
pub struct EventReader {
    decoder: Decoder,
    lines: LineReader,
    line_no: u64,
}

impl EventReader {
    pub fn new(format: InputFormat) -> EventReader {
        EventReader::with_env(format, EnvFilter::default())
    }

    /// A reader that keeps the environment variables `env` names (`process.env_vars`).
    pub fn with_env(format: InputFormat, env: EnvFilter) -> EventReader {
        EventReader {
            decoder: match format {
                InputFormat::Eslogger => Decoder::Eslogger(EsloggerDecoder::with_env(env)),
                InputFormat::Ecs => Decoder::Ecs(EcsDecoder::new()),
            },
            lines: LineReader::default(),
            line_no: 0,
        }
    }

    /// The 1-based number of the last line read (0 before the first).
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// Starts numbering lines from 1 again (a new file or a restarted producer).
    pub fn restart(&mut self) {
        self.line_no = 0;
    }

    /// Reads and decodes the next line; returns it with its 1-based line number. I/O errors
    /// end the input; everything wrong with a line's content is [`Next::Bad`].
    pub fn next<R: BufRead>(&mut self, input: &mut R) -> io::Result<(u64, Next<'_>)> {
        let line = self.lines.next_line(input, MAX_LINE_BYTES)?;
        let text = match line {
            Line::End => return Ok((self.line_no, Next::End)),
            Line::TooLong(len) => {
                self.line_no += 1;
                let bad = DecodeError::LineTooLong {
                    len,
                    max: MAX_LINE_BYTES,
                };
                return Ok((self.line_no, Next::Bad(bad)));
            }
            Line::Text(text) => text,
        };
        self.line_no += 1;
        if text.trim().is_empty() {
            return Ok((self.line_no, Next::Skip(None)));
        }
        let decoded = match &mut self.decoder {
            Decoder::Eslogger(d) => d.decode(text).map(|d| (d.event, d.seq)),
            Decoder::Ecs(d) => d.decode_line(text).map(|e| (e, None)),
        };
        let next = match decoded {
            Ok((Some(event), seq)) => Next::Event(event, seq),
            Ok((None, seq)) => Next::Skip(seq),
            Err(e) => Next::Bad(e),
        };
        Ok((self.line_no, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three exec messages; the second has the bytes FF FE inside an argument.
    const FIXTURE: &[u8] = include_bytes!("../../../tests/fixtures/eslogger/invalid-utf8.ndjson");

    fn first_line() -> &'static str {
        let end = FIXTURE.iter().position(|&b| b == b'\n').unwrap();
        std::str::from_utf8(&FIXTURE[..end]).unwrap()
    }

    #[test]
    fn bad_lines_are_numbered_and_the_rest_read() {
        let first = first_line();
        let long = "x".repeat(MAX_LINE_BYTES + 1);
        let input = format!("{first}\n\n{{\"nope\": 1}}\n{long}\n{first}\n");
        let mut input = io::BufReader::new(input.as_bytes());
        let mut reader = EventReader::new(InputFormat::Eslogger);
        let mut seen = Vec::new();
        loop {
            let (line, next) = reader.next(&mut input).unwrap();
            let what = match next {
                Next::End => break,
                Next::Event(..) => "event",
                Next::Skip(_) => "skip",
                Next::Bad(DecodeError::LineTooLong { .. }) => "long",
                Next::Bad(_) => "bad",
            };
            seen.push((line, what));
        }
        assert_eq!(
            seen,
            [
                (1, "event"),
                (2, "skip"),
                (3, "bad"),
                (4, "long"),
                (5, "event")
            ]
        );
    }

    #[test]
    fn invalid_utf8_keeps_the_event() {
        let mut input = io::BufReader::new(FIXTURE);
        let mut reader = EventReader::new(InputFormat::Eslogger);
        let mut args = Vec::new();
        loop {
            match reader.next(&mut input).unwrap().1 {
                Next::Event(Event::Exec(ev), _) => {
                    args.push(ev.target.args.iter().map(str::to_owned).collect::<Vec<_>>())
                }
                Next::End => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(args.len(), 3);
        assert_eq!(args[1], ["kcc", "copy_cred_cache\u{FFFD}\u{FFFD}"]);
    }
}
