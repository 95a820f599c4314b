//! `eslogger` as a source (macOS 13+): Apple's own ES client, which needs no Endpoint Security
//! entitlement for us, prints one JSON message per line on a pipe. It is run as
//! `eslogger exec fork exit setuid setgid seteuid setegid setreuid setregid`, plus
//! `create close rename unlink` when a loaded rule reads file events, `open` when a rule that
//! matches opens names paths, `deleteextattr` and `btm_launch_item_add` when a rule can match
//! a quarantine removal or a launch item.
//!
//! Each line is decoded with the shared reader ([`EventReader`]) and passed through the
//! [`Gate`] (Nightjar's own events out, file events only on paths a rule can match).
//! eslogger's `seq_num` / `global_seq_num` gaps, counted for every message before any
//! filtering, are reported as [`LossSource::EsloggerGap`]. When
//! eslogger exits it is restarted after a capped exponential backoff; what happened in
//! between is unknown and counted as one [`LossSource::EsloggerRestart`] loss per restart.
//!
//! The program run is `eslogger` from `PATH`, or the one named by `$NIGHTJAR_ESLOGGER`
//! (packaging pins `/usr/bin/eslogger`; tests substitute a script).

use std::convert::Infallible;
use std::ffi::OsString;
use std::io::BufReader;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nightjar_proto::LossSource;
use nightjar_proto::eslogger::{EsSeq, SeqGapDetector};
use nightjar_proto::ndjson::{EventReader, InputFormat, Next};

use crate::capture::{CaptureError, Settings};
use crate::gate::{Gate, Verdict};
use crate::publish::Publisher;

/// Environment variable naming the eslogger program.
pub const PROGRAM_ENV: &str = "NIGHTJAR_ESLOGGER";
/// First wait before a restart.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest wait before a restart.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A run that lasted this long was healthy: the next restart waits [`BACKOFF_START`] again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// The event types always asked for, and those asked for when a rule reads file events.
const PROCESS_EVENTS: [&str; 9] = [
    "exec", "fork", "exit", "setuid", "setgid", "seteuid", "setegid", "setreuid", "setregid",
];
const FILE_EVENTS: [&str; 4] = ["create", "close", "rename", "unlink"];
const OPEN_EVENT: &str = "open";
const QUARANTINE_EVENT: &str = "deleteextattr";
const LAUNCH_ITEM_EVENT: &str = "btm_launch_item_add";
/// Pipe buffer: several hundred typical messages.
const READ_BUFFER: usize = 1 << 20;

/// The eslogger program to run.
pub fn program() -> OsString {
    std::env::var_os(PROGRAM_ENV)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| OsString::from("eslogger"))
}

/// The eslogger event names to ask for.
pub fn event_names(settings: &Settings) -> Vec<&'static str> {
    let mut names = PROCESS_EVENTS.to_vec();
    if !settings.files.is_none() {
        names.extend(FILE_EVENTS);
    }
    if !settings.opens.is_none() {
        names.push(OPEN_EVENT);
    }
    if settings.quarantine {
        names.push(QUARANTINE_EVENT);
    }
    if settings.launch_items {
        names.push(LAUNCH_ITEM_EVENT);
    }
    names
}

fn spawn(program: &OsString, events: &[&str]) -> std::io::Result<Child> {
    Command::new(program)
        .args(events)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
}

/// Runs eslogger and publishes its events, restarting it whenever it exits; returns only when
/// it cannot be started at all. eslogger cannot mute processes, so the sensor's, eslogger's
/// and the agent's own events (by pid, or by the image's name) are left out by the gate.
pub fn run(
    publisher: &mut Publisher,
    program: &OsString,
    settings: &Settings,
) -> Result<Infallible, CaptureError> {
    let own_pid = std::process::id();
    let mut gate =
        Gate::new(settings.files.clone(), vec![own_pid]).with_opens(settings.opens.clone());
    let names = event_names(settings);
    let mut child = spawn(program, &names).map_err(|err| {
        CaptureError::Eslogger(format!(
            "cannot start `{}`: {err}",
            program.to_string_lossy()
        ))
    })?;
    let mut backoff = BACKOFF_START;
    let mut events = EventReader::with_env(InputFormat::Eslogger, settings.env.clone());
    loop {
        let started = Instant::now();
        tracing::info!(pid = child.id(), "eslogger started");
        // A new eslogger is a new ES client: its numbering starts over.
        let mut tracker = SeqGapDetector::new();
        if let Some(stdout) = child.stdout.take() {
            let mut reader = BufReader::with_capacity(READ_BUFFER, stdout);
            gate.set_own_pids(vec![own_pid, child.id()]);
            events.restart();
            loop {
                let (line_no, next) = match events.next(&mut reader) {
                    Ok(read) => read,
                    Err(err) => {
                        tracing::warn!("reading eslogger output: {err}");
                        break;
                    }
                };
                match next {
                    Next::End => break,
                    Next::Event(ev, seq) => {
                        observe(&mut tracker, publisher, seq);
                        if gate.judge(&ev) == Verdict::Publish {
                            publisher.publish(ev);
                        }
                    }
                    Next::Skip(seq) => observe(&mut tracker, publisher, seq),
                    Next::Bad(err) => tracing::warn!("eslogger output line {line_no}: {err}"),
                }
                if reader.buffer().is_empty() {
                    for (kind, n) in gate.take_filtered() {
                        publisher.report_filtered(kind, n);
                    }
                    publisher.flush();
                }
            }
        }
        let status = child.wait();
        tracing::warn!(?status, "eslogger exited; restarting it");
        publisher.report_loss(LossSource::EsloggerRestart, None, 1);
        publisher.flush();
        if started.elapsed() >= HEALTHY_RUN {
            backoff = BACKOFF_START;
        }
        child = loop {
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            match spawn(program, &names) {
                Ok(child) => break child,
                Err(err) => tracing::warn!("cannot restart `{}`: {err}", program.to_string_lossy()),
            }
        };
    }
}

/// Counts the messages missing before this one (every message, published or not).
fn observe(tracker: &mut SeqGapDetector, publisher: &mut Publisher, seq: Option<EsSeq>) {
    if let Some(seq) = seq {
        let lost = tracker.observe(seq.event_type, seq.seq_num, seq.global_seq_num);
        publisher.report_loss(LossSource::EsloggerGap, None, lost);
    }
}
