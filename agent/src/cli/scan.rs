//! `nightjar-agent scan`: evaluates rules over recorded events and prints one alert JSON per
//! line. No store, no signing, and no `max_signals` cap: scan reports every match, since it
//! answers "what in this recording matches" rather than rate-limiting a live feed. Matches
//! an exception (`--exceptions FILE`) excepts make no alert; their count per rule goes to
//! stderr. `expire_time` is checked against the clock, as the live agent checks it.
//!
//! Files are streamed line by line through [`nightjar_proto::ndjson::EventReader`] (the
//! reader `nightjar-sensor replay` uses): one reusable buffer bounded by the line limit, so
//! memory stays flat whatever the file size. A malformed line is reported on stderr as
//! `FILE:LINE: reason` and skipped; invalid UTF-8 is replaced (U+FFFD) and the event kept.
//!
//! Exit codes, as `nightjar-sensor replay`'s: 0 every line decoded (whether or not anything
//! matched); 1 the scan went through but some lines did not decode (the alerts of the lines
//! that did are printed all the same, and a summary names the count); 2 bad usage, bad
//! rules, or an input file that cannot be read.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use nightjar_proto::event::Event;
use nightjar_proto::ndjson::{self, EventReader, Next};

use super::{CmdResult, Failure, InputFormat, ScanArgs};
use crate::alert::{MatchKind, build_alert};
use crate::process_table::{DEFAULT_CAPACITY, ProcessTable};
use nightjar_proto::terminal::{terminal_safe, to_json_line};
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::{RuleSet, Sources, read_exception_files, read_rule_files};

/// State shared across every input file.
struct Scanner<'r, W: Write> {
    rules: &'r RuleSet,
    host: HostInfo,
    table: ProcessTable,
    events: EventReader,
    matches: Vec<usize>,
    decoded: u64,
    /// Matches an exception excepted, per rule index.
    excepted: Vec<u64>,
    /// Lines that did not decode (reported on stderr as they come).
    bad_lines: u64,
    out: W,
}

pub fn run(args: &ScanArgs) -> CmdResult {
    let sources = Sources {
        builtin: !args.no_builtin,
        rules: read_rule_files(&args.rules).map_err(|e| Failure::usage(format!("rules: {e}")))?,
        exceptions: read_exception_files(&args.exceptions)
            .map_err(|e| Failure::usage(format!("exceptions: {e}")))?,
        ..Sources::default()
    };
    let (rules, report) = RuleSet::build(sources);
    let bad = report.problems();
    if !bad.is_empty() {
        return Err(Failure::usage(format!(
            "bad rules or exceptions:\n  {}",
            bad.join("\n  ")
        )));
    }
    let format = match args.format {
        InputFormat::Eslogger => ndjson::InputFormat::Eslogger,
        InputFormat::Ecs => ndjson::InputFormat::Ecs,
    };
    let stdout = io::stdout();
    let mut scanner = Scanner {
        rules: &rules,
        host: crate::host::local(),
        table: ProcessTable::new(DEFAULT_CAPACITY),
        events: EventReader::new(format),
        matches: Vec::with_capacity(rules.rules().len()),
        decoded: 0,
        excepted: vec![0; rules.rules().len()],
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
    for (i, n) in scanner.excepted.iter().enumerate() {
        if *n > 0 {
            eprintln!(
                "nightjar-agent: {n} match(es) of rule {} excepted",
                terminal_safe(&rules.rules()[i].rule_id)
            );
        }
    }
    if !unreadable.is_empty() {
        return Err(Failure::usage(format!(
            "unreadable input: {}",
            unreadable.join(", ")
        )));
    }
    if scanner.bad_lines > 0 {
        return Err(Failure::failed(format!(
            "{} events scanned, {} lines did not decode",
            scanner.decoded, scanner.bad_lines
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
        self.events.restart();
        loop {
            let (line_no, next) = self.events.next(&mut input).map_err(ScanError::Input)?;
            match next {
                Next::End => return Ok(()),
                Next::Skip(_) => {}
                Next::Bad(e) => {
                    self.bad_lines += 1;
                    eprintln!(
                        "{}:{line_no}: {}",
                        terminal_safe(name),
                        terminal_safe(&e.to_string())
                    );
                }
                Next::Event(mut ev, _) => {
                    self.decoded += 1;
                    let mut meta = ev.meta();
                    meta.sensor_seq = self.decoded;
                    ev.set_meta(meta);
                    process(
                        self.rules,
                        &self.host,
                        &mut self.table,
                        &mut self.matches,
                        &mut self.excepted,
                        &mut self.out,
                        &ev,
                    )
                    .map_err(ScanError::Output)?;
                }
            }
        }
    }
}

/// Evaluates one event, writes its alerts, then records it in the process table.
fn process(
    rules: &RuleSet,
    host: &HostInfo,
    table: &mut ProcessTable,
    matches: &mut Vec<usize>,
    excepted: &mut [u64],
    out: &mut impl Write,
    ev: &Event<'_>,
) -> io::Result<()> {
    {
        let view = EcsEvent::of(ev, table, host);
        rules.evaluate(&view, matches);
        if !matches.is_empty() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64);
            for &i in matches.iter() {
                if rules.excepted(i, &view, now).is_some() {
                    excepted[i] += 1;
                    continue;
                }
                let how = if rules.is_certain(i, &view) {
                    MatchKind::Exact
                } else {
                    MatchKind::ArgvTruncated
                };
                let alert = build_alert(&rules.rules()[i], ev, &view, &host.id, now, 0, how);
                let line = to_json_line(&alert).map_err(io::Error::other)?;
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
        }
    }
    table.observe_event(ev);
    Ok(())
}
