//! `nightjar-sensor replay`: recorded events (eslogger NDJSON or ECS NDJSON) through the ring,
//! exactly as live capture would publish them, marked [`FLAG_REPLAYED`].
//!
//! A line that does not decode (or is over the decoders' line limit) is reported with its
//! file and line number and skipped; the replay goes on and exits 1 at the end. Invalid
//! UTF-8 is replaced (U+FFFD), so one odd argument never costs the rest of a file.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nightjar_proto::ExecEvent;
use nightjar_proto::ecs_json::EcsDecoder;
use nightjar_proto::eslogger::EsloggerDecoder;
use nightjar_proto::event::FLAG_REPLAYED;
use nightjar_proto::ndjson::MAX_LINE_BYTES;

use crate::publish::Publisher;
use crate::text::{Line, LineReader};

/// The input formats `--format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFormat {
    Eslogger,
    Ecs,
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Exec events published (or dropped by a full ring; see the publisher's stats).
    pub events: u64,
    /// Lines that did not decode.
    pub bad_lines: u64,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{file}: cannot open: {source}")]
    Open { file: PathBuf, source: io::Error },
    #[error("{file}:{line}: cannot read: {source}")]
    Read {
        file: PathBuf,
        line: u64,
        source: io::Error,
    },
}

enum Decoder {
    Eslogger(EsloggerDecoder),
    Ecs(EcsDecoder),
}

impl Decoder {
    fn new(format: ReplayFormat) -> Decoder {
        match format {
            ReplayFormat::Eslogger => Decoder::Eslogger(EsloggerDecoder::new()),
            ReplayFormat::Ecs => Decoder::Ecs(EcsDecoder::new()),
        }
    }

    fn decode<'a>(&mut self, line: &'a str) -> Result<Option<ExecEvent<'a>>, String> {
        match self {
            Decoder::Eslogger(d) => d.decode_line(line).map_err(|e| e.to_string()),
            Decoder::Ecs(d) => d.decode_line(line).map_err(|e| e.to_string()),
        }
    }
}

/// Paces publishing to a fixed rate (events per second).
struct Pacer {
    start: Instant,
    interval: Duration,
}

impl Pacer {
    fn wait_for(&self, n: u64) {
        let due = self
            .interval
            .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        let elapsed = self.start.elapsed();
        if due > elapsed {
            std::thread::sleep(due - elapsed);
        }
    }
}

/// Checks that every named file can be opened before anything is published.
pub fn check_inputs(files: &[PathBuf]) -> Result<(), ReplayError> {
    for file in files.iter().filter(|f| f.as_os_str() != "-") {
        File::open(file).map_err(|source| ReplayError::Open {
            file: file.clone(),
            source,
        })?;
    }
    Ok(())
}

/// Replays `files` in order (`-` is standard input) at `rate` events per second (`None`: as
/// fast as the ring takes them).
pub fn replay(
    publisher: &mut Publisher,
    format: ReplayFormat,
    rate: Option<u64>,
    files: &[PathBuf],
) -> Result<ReplaySummary, ReplayError> {
    let mut decoder = Decoder::new(format);
    let pacer = rate.filter(|&r| r > 0).map(|r| Pacer {
        start: Instant::now(),
        interval: Duration::from_nanos(1_000_000_000 / r),
    });
    let mut summary = ReplaySummary::default();
    let mut lines = LineReader::default();
    for file in files {
        let input: Box<dyn Read> = if file.as_os_str() == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(file).map_err(|source| ReplayError::Open {
                file: file.clone(),
                source,
            })?)
        };
        let mut reader = BufReader::new(input);
        let mut line_no = 0u64;
        loop {
            line_no += 1;
            // The next read may block (a pipe, stdin): publish what is pending first, so a
            // live feed is not held back until the ring fills or the input ends.
            if reader.buffer().is_empty() {
                publisher.flush();
            }
            let line = lines
                .next_line(&mut reader, MAX_LINE_BYTES)
                .map_err(|source| ReplayError::Read {
                    file: file.clone(),
                    line: line_no,
                    source,
                })?;
            let text = match line {
                Line::End => break,
                Line::Text(text) => text,
                Line::TooLong(len) => {
                    summary.bad_lines += 1;
                    eprintln!(
                        "{}:{line_no}: line of {len} bytes, over the {MAX_LINE_BYTES}-byte limit",
                        file.display()
                    );
                    continue;
                }
            };
            if text.trim().is_empty() {
                continue;
            }
            match decoder.decode(text) {
                Ok(Some(mut ev)) => {
                    if let Some(p) = &pacer {
                        p.wait_for(summary.events);
                    }
                    ev.flags |= FLAG_REPLAYED;
                    publisher.publish(ev);
                    summary.events += 1;
                    if pacer.is_some() {
                        publisher.flush();
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    summary.bad_lines += 1;
                    eprintln!("{}:{line_no}: {reason}", file.display());
                }
            }
        }
        publisher.flush();
    }
    Ok(summary)
}
