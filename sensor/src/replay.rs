//! `nightjar-sensor replay`: recorded events (eslogger NDJSON or ECS NDJSON) through the ring,
//! exactly as live capture would publish them, marked [`FLAG_REPLAYED`].
//!
//! Lines are read by [`nightjar_proto::ndjson::EventReader`], the reader `nightjar-agent scan`
//! uses too. A line that does not decode (or is over the line limit) is reported with its file
//! and line number and skipped; the replay goes on and exits 1 at the end. Invalid UTF-8 is
//! replaced (U+FFFD) and the event kept, so one odd argument never hides an exec.

use nightjar_proto::terminal::terminal_safe;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nightjar_proto::event::FLAG_REPLAYED;
pub use nightjar_proto::ndjson::InputFormat as ReplayFormat;
use nightjar_proto::ndjson::{EventReader, Next};

use crate::capture::Settings;
use crate::publish::Publisher;

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
    settings: &Settings,
) -> Result<ReplaySummary, ReplayError> {
    let pacer = rate.filter(|&r| r > 0).map(|r| Pacer {
        start: Instant::now(),
        interval: Duration::from_nanos(1_000_000_000 / r),
    });
    let mut summary = ReplaySummary::default();
    let mut events = EventReader::with_env(format, settings.env.clone());
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
        events.restart();
        loop {
            // The next read may block (a pipe, stdin): publish what is pending first, so a
            // live feed is not held back until the ring fills or the input ends.
            if reader.buffer().is_empty() {
                publisher.flush();
            }
            let line_no = events.line_no() + 1;
            let (line_no, next) = events
                .next(&mut reader)
                .map_err(|source| ReplayError::Read {
                    file: file.clone(),
                    line: line_no,
                    source,
                })?;
            match next {
                Next::End => break,
                Next::Skip(_) => {}
                Next::Event(mut ev, _) => {
                    if let Some(p) = &pacer {
                        p.wait_for(summary.events);
                    }
                    *ev.flags_mut() |= FLAG_REPLAYED;
                    publisher.publish(ev);
                    summary.events += 1;
                    if pacer.is_some() {
                        publisher.flush();
                    }
                }
                Next::Bad(reason) => {
                    summary.bad_lines += 1;
                    // The reason may quote the line: hostile input must not drive the
                    // terminal that reads this.
                    eprintln!(
                        "{}:{line_no}: {}",
                        terminal_safe(&file.display().to_string()),
                        terminal_safe(&reason.to_string())
                    );
                }
            }
        }
        publisher.flush();
    }
    Ok(summary)
}
