//! The long load run behind `scripts/load`: the live pipeline (sensor replay of a generated
//! eslogger stream on stdin -> ring -> agent) at a fixed rate for a number of minutes, with
//! per-second RSS, CPU and drop samples. Progress on stderr; the last stdout line is one JSON
//! summary object.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nightjar_tests::harness::TempState;
use nightjar_tests::load::{LoadOptions, run, write_ticks};

#[derive(Parser)]
#[command(about = "Sustained load through nightjar-sensor and nightjar-agent")]
struct Args {
    /// How long to feed events.
    #[arg(long, default_value_t = 30)]
    minutes: u64,
    /// Events per second offered to the sensor.
    #[arg(long, default_value_t = 50_000)]
    rate: u32,
    /// One event in this many matches the seed rule (alerts give the latency figures).
    #[arg(long, default_value_t = 1_000)]
    match_every: u32,
    /// The agent's `[store] retain_alerts` (default: the agent's own default).
    #[arg(long, value_name = "N")]
    retain_alerts: Option<u64>,
    /// Also write the per-second samples here (NDJSON).
    #[arg(long, value_name = "FILE")]
    ticks: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.minutes == 0 || args.rate < 100 || args.match_every == 0 {
        eprintln!("nightjar-load: --minutes >= 1, --rate >= 100 and --match-every >= 1");
        return ExitCode::from(2);
    }
    let st = TempState::new();
    eprintln!(
        "nightjar-load: {} events/s for {} min, state in {}",
        args.rate,
        args.minutes,
        st.path().display()
    );
    let report = run(
        &st,
        LoadOptions {
            events_per_second: args.rate,
            duration: Duration::from_secs(args.minutes * 60),
            match_every: args.match_every,
            retain_alerts: args.retain_alerts,
        },
    );
    if let Some(path) = &args.ticks
        && let Err(e) = write_ticks(&report, path)
    {
        eprintln!("nightjar-load: {}: {e}", path.display());
        return ExitCode::from(1);
    }
    let summary = report.summary();
    println!("{summary}");
    if report.verify.0 != 0 {
        eprintln!(
            "nightjar-load: verify after the run failed: {}",
            report.verify.1
        );
    }
    let lossless = report.verify.0 == 0
        && report.events_dropped == 0
        && report.events_received == report.events_sent
        && report.alerts_stored == report.matches_sent;
    // The pipe pushes back on a pipeline that cannot keep up: holding the rate means taking
    // in what was offered (2% slack for the pacing's 10 ms slices and start-up).
    let held = report.achieved_rate() >= 0.98 * f64::from(args.rate);
    if !lossless {
        eprintln!("nightjar-load: events lost or alerts missing");
    }
    if !held {
        eprintln!(
            "nightjar-load: the pipeline took {:.0} events/s of the {} offered",
            report.achieved_rate(),
            args.rate
        );
    }
    if lossless && held {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
