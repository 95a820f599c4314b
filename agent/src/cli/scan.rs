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
//! Stateful rules run as in the agent, on event time: a sequence spanning files completes;
//! what waits for late events or a trailing window completes at the end of the input; a
//! new_terms rule learns for a whole window of the recording before it alerts.
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
use crate::alert::{
    MatchKind, ThresholdResult, build_alert, build_group_alerts, build_new_terms_alert,
    build_threshold_alert,
};
use crate::process_table::{DEFAULT_CAPACITY, ProcessTable};
use nightjar_proto::terminal::{terminal_safe, to_json_line};
use nightjar_rules::ecs::{EcsEvent, HostInfo};
use nightjar_rules::engine::{Detection, Engine, Limits};
use nightjar_rules::{RuleSet, Sources, read_exception_files, read_rule_files};

/// State shared across every input file.
struct Scanner<W: Write> {
    events: EventReader,
    sink: Sink<W>,
    decoded: u64,
    /// Lines that did not decode (reported on stderr as they come).
    bad_lines: u64,
}

/// The rules, their state and where alerts go.
struct Sink<W: Write> {
    engine: Engine,
    host: HostInfo,
    table: ProcessTable,
    found: Vec<Detection>,
    /// Matches (and correlations) an exception excepted, per rule index.
    excepted: Vec<u64>,
    out: W,
}

pub fn run(args: &ScanArgs) -> CmdResult {
    let sources = Sources {
        builtin: !args.no_builtin,
        rules: read_rule_files(&args.rules).map_err(|e| Failure::usage(format!("rules: {e}")))?,
        exceptions: read_exception_files(&args.exceptions)
            .map_err(|e| Failure::usage(format!("exceptions: {e}")))?,
        new_terms_per_host: args.new_terms_per_host,
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
    let rule_count = rules.rules().len();
    let mut scanner = Scanner {
        events: EventReader::new(format),
        sink: Sink {
            engine: Engine::new(rules, Limits::default()),
            host: crate::host::local(),
            table: ProcessTable::new(DEFAULT_CAPACITY),
            found: Vec::new(),
            excepted: vec![0; rule_count],
            out: BufWriter::with_capacity(1 << 16, stdout.lock()),
        },
        decoded: 0,
        bad_lines: 0,
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
        .sink
        .finish()
        .and_then(|()| scanner.sink.out.flush())
        .map_err(|e| Failure::failed(format!("writing alerts to stdout: {e}")))?;
    let rules = scanner.sink.engine.rules();
    for (i, n) in scanner.sink.excepted.iter().enumerate() {
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

impl<W: Write> Scanner<W> {
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
                    self.sink.process(&ev).map_err(ScanError::Output)?;
                }
            }
        }
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl<W: Write> Sink<W> {
    /// Evaluates one event, writes its alerts, then records it in the process table.
    fn process(&mut self, ev: &Event<'_>) -> io::Result<()> {
        {
            let view = EcsEvent::of(ev, &self.table, &self.host);
            self.found.clear();
            self.engine.on_event(&view, &mut self.found);
            let rules = self.engine.rules();
            for d in &self.found {
                if self
                    .engine
                    .excepted(d, Some(&view), &self.host, now())
                    .is_some()
                {
                    self.excepted[d.rule()] += 1;
                    continue;
                }
                write(rules, &self.host, &mut self.out, d, Some((ev, &view)))?;
            }
        }
        self.table.observe_event(ev);
        Ok(())
    }

    /// The end of the input: what waited for late events or a trailing window.
    fn finish(&mut self) -> io::Result<()> {
        let mut found = Vec::new();
        self.engine.finish(&mut found);
        for d in &found {
            if self.engine.excepted(d, None, &self.host, now()).is_some() {
                self.excepted[d.rule()] += 1;
                continue;
            }
            write(self.engine.rules(), &self.host, &mut self.out, d, None)?;
        }
        Ok(())
    }
}

/// Writes the alerts of one detection (`view`: the event being handled, if any).
fn write(
    rules: &RuleSet,
    host: &HostInfo,
    out: &mut impl Write,
    d: &Detection,
    view: Option<(&Event<'_>, &EcsEvent<'_>)>,
) -> io::Result<()> {
    let rule = &rules.rules()[d.rule()];
    let alerts = match (d, view) {
        (Detection::Event { rule: i }, Some((ev, v))) => {
            let how = if rules.is_certain(*i, v) {
                MatchKind::Exact
            } else {
                MatchKind::ArgvTruncated
            };
            vec![build_alert(rule, ev, v, &host.id, now(), 0, how)]
        }
        (Detection::Correlated { events, .. }, _) => {
            build_group_alerts(rule, events, host, now(), 0)
        }
        (Detection::NewTerms { terms, .. }, Some((ev, v))) => {
            vec![build_new_terms_alert(
                rule,
                ev,
                v,
                &host.id,
                now(),
                0,
                terms,
            )]
        }
        (
            Detection::Threshold {
                group,
                count,
                cardinality,
                ..
            },
            Some((ev, v)),
        ) => vec![build_threshold_alert(
            rule,
            ev,
            v,
            &host.id,
            now(),
            0,
            ThresholdResult {
                group,
                count: *count,
                cardinality: *cardinality,
            },
        )],
        _ => Vec::new(),
    };
    for alert in alerts {
        let line = to_json_line(&alert).map_err(io::Error::other)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
