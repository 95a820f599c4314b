//! `nightjar-agent scan`: evaluates rules over recorded events and prints one alert JSON per
//! line. No store, no signing, and no `max_signals` cap: scan reports every match, since it
//! answers "what in this recording matches" rather than rate-limiting a live feed.
//!
//! Files are streamed line by line through one reusable buffer (bounded by the decoders'
//! line limit), so memory stays flat whatever the file size. A malformed line is reported on
//! stderr as `FILE:LINE: reason` and skipped.
//!
//! Exit codes, as `nightjar-sensor replay`'s: 0 every line decoded (whether or not anything
//! matched); 1 the scan went through but some lines did not decode (the alerts of the lines
//! that did are printed all the same, and a summary names the count); 2 bad usage, bad
//! rules, or an input file that cannot be read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::ExecEvent;
use nightjar_proto::ecs_json::EcsDecoder;
use nightjar_proto::eslogger::EsloggerDecoder;
use nightjar_proto::ndjson::{DecodeError, MAX_LINE_BYTES};

use super::text::terminal_safe;
use super::{CmdResult, Failure, InputFormat, ScanArgs};
use crate::alert::build_alert;
use crate::ecs::{EcsEvent, HostInfo};
use crate::process_table::{DEFAULT_CAPACITY, ProcessTable};
use crate::rules::{RuleSet, RuleStatus};

/// One decoder for the chosen input format.
enum Decoder {
    Eslogger(EsloggerDecoder),
    Ecs(EcsDecoder),
}

impl Decoder {
    fn decode<'a>(&mut self, line: &'a str) -> Result<Option<ExecEvent<'a>>, DecodeError> {
        match self {
            Decoder::Eslogger(d) => d.decode_line(line),
            Decoder::Ecs(d) => d.decode_line(line),
        }
    }
}

/// State shared across every input file.
struct Scanner<'r, W: Write> {
    rules: &'r RuleSet,
    host: HostInfo,
    table: ProcessTable,
    decoder: Decoder,
    matches: Vec<usize>,
    events: u64,
    /// Lines that did not decode (reported on stderr as they come).
    bad_lines: u64,
    out: W,
}

pub fn run(args: &ScanArgs) -> CmdResult {
    let (rules, report) = RuleSet::load(&args.rules, !args.no_builtin, None)
        .map_err(|e| Failure::usage(format!("rules: {e}")))?;
    let bad: Vec<&str> = report
        .entries
        .iter()
        .filter_map(|e| match &e.status {
            RuleStatus::Error(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    if !bad.is_empty() {
        return Err(Failure::usage(format!(
            "bad rules:\n  {}",
            bad.join("\n  ")
        )));
    }
    let decoder = match args.format {
        InputFormat::Eslogger => Decoder::Eslogger(EsloggerDecoder::new()),
        InputFormat::Ecs => Decoder::Ecs(EcsDecoder::new()),
    };
    let stdout = io::stdout();
    let mut scanner = Scanner {
        rules: &rules,
        host: HostInfo::local(),
        table: ProcessTable::new(DEFAULT_CAPACITY),
        decoder,
        matches: Vec::with_capacity(rules.rules().len()),
        events: 0,
        bad_lines: 0,
        out: BufWriter::with_capacity(1 << 16, stdout.lock()),
    };
    let mut unreadable = Vec::new();
    for file in &args.files {
        let result = if file.as_os_str() == "-" {
            scanner.scan("<stdin>", io::stdin().lock())
        } else {
            match File::open(file) {
                Ok(f) => scanner.scan(
                    &file.display().to_string(),
                    BufReader::with_capacity(1 << 16, f),
                ),
                Err(e) => Err(ScanError::Input(e)),
            }
        };
        match result {
            Ok(()) => {}
            Err(ScanError::Input(e)) => {
                eprintln!("nightjar-agent: {}: {e}", display(file));
                unreadable.push(display(file));
            }
            Err(ScanError::Output(e)) => {
                return Err(Failure::failed(format!("writing alerts to stdout: {e}")));
            }
        }
    }
    scanner
        .out
        .flush()
        .map_err(|e| Failure::failed(format!("writing alerts to stdout: {e}")))?;
    if !unreadable.is_empty() {
        return Err(Failure::usage(format!(
            "unreadable input: {}",
            unreadable.join(", ")
        )));
    }
    if scanner.bad_lines > 0 {
        return Err(Failure::failed(format!(
            "{} events scanned, {} lines did not decode",
            scanner.events, scanner.bad_lines
        )));
    }
    Ok(())
}

fn display(p: &Path) -> String {
    if p.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        p.display().to_string()
    }
}

enum ScanError {
    Input(io::Error),
    Output(io::Error),
}

impl<W: Write> Scanner<'_, W> {
    fn scan(&mut self, name: &str, mut input: impl BufRead) -> Result<(), ScanError> {
        let mut buf = Vec::new();
        let mut line_no = 0u64;
        loop {
            let line = read_line_bounded(&mut input, &mut buf, MAX_LINE_BYTES)
                .map_err(ScanError::Input)?;
            line_no += 1;
            let text = match line {
                Line::Eof => return Ok(()),
                Line::TooLong(len) => {
                    self.bad_lines += 1;
                    eprintln!(
                        "{name}:{line_no}: line of {len} bytes or more is over the {MAX_LINE_BYTES}-byte limit"
                    );
                    continue;
                }
                Line::Ok => match std::str::from_utf8(&buf) {
                    Ok(t) => t.trim_end_matches(['\n', '\r']),
                    Err(e) => {
                        self.bad_lines += 1;
                        eprintln!(
                            "{name}:{line_no}: invalid UTF-8 at byte {}",
                            e.valid_up_to() + 1
                        );
                        continue;
                    }
                },
            };
            if text.trim().is_empty() {
                continue;
            }
            match self.decoder.decode(text) {
                Ok(Some(mut ev)) => {
                    self.events += 1;
                    ev.sensor_seq = self.events;
                    self.process(&ev).map_err(ScanError::Output)?;
                }
                Ok(None) => {}
                Err(e) => {
                    self.bad_lines += 1;
                    eprintln!(
                        "{}:{line_no}: {}",
                        terminal_safe(name),
                        terminal_safe(&e.to_string())
                    );
                }
            }
        }
    }

    fn process(&mut self, ev: &ExecEvent<'_>) -> io::Result<()> {
        {
            let view = EcsEvent::new(ev, &self.table, &self.host);
            self.rules.evaluate(&view, &mut self.matches);
            if !self.matches.is_empty() {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64);
                for &i in &self.matches {
                    let alert = build_alert(&self.rules.rules()[i], &view, &self.host.id, now, 0);
                    let line = super::text::to_json_line(&alert).map_err(io::Error::other)?;
                    self.out.write_all(line.as_bytes())?;
                    self.out.write_all(b"\n")?;
                }
            }
        }
        self.table.observe(ev);
        Ok(())
    }
}

enum Line {
    Ok,
    /// Over the limit: the rest of the line was skipped. Holds the bytes seen.
    TooLong(usize),
    Eof,
}

/// Reads one line (with its newline) into `buf`, keeping at most `max` bytes of it.
fn read_line_bounded(input: &mut impl BufRead, buf: &mut Vec<u8>, max: usize) -> io::Result<Line> {
    buf.clear();
    let mut seen = 0usize;
    loop {
        let chunk = match input.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if seen == 0 {
                Line::Eof
            } else if seen > max {
                Line::TooLong(seen)
            } else {
                Line::Ok
            });
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if seen + take <= max + 1 {
            buf.extend_from_slice(&chunk[..take]);
        }
        seen += take;
        input.consume(take);
        if done {
            return Ok(if seen > max + 1 {
                Line::TooLong(seen)
            } else {
                Line::Ok
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines() {
        let data = b"abc\nxxxxxxxxxx\nlast";
        let mut r = io::BufReader::with_capacity(3, &data[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line_bounded(&mut r, &mut buf, 5).unwrap(),
            Line::Ok
        ));
        assert_eq!(buf, b"abc\n");
        assert!(matches!(
            read_line_bounded(&mut r, &mut buf, 5).unwrap(),
            Line::TooLong(11)
        ));
        assert!(buf.len() <= 6);
        assert!(matches!(
            read_line_bounded(&mut r, &mut buf, 5).unwrap(),
            Line::Ok
        ));
        assert_eq!(buf, b"last");
        assert!(matches!(
            read_line_bounded(&mut r, &mut buf, 5).unwrap(),
            Line::Eof
        ));
    }
}
