//! A loopback alert collector for end-to-end tests. Prints one JSON line
//! `{"url": ..., "stats_url": ..., "ca_file": ...}` on stdout, then serves until killed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use nightjar_tests::collector::{Collector, CollectorOptions, FaultPhase, parse_public_key};

#[derive(Parser)]
#[command(about = "Loopback collector that verifies Nightjar's signed alert uploads")]
struct Args {
    /// The agent's public key, base64 of the raw 32 bytes (`nightjar-agent keys show --json`).
    #[arg(long)]
    public_key: String,
    /// Serve HTTPS with a generated CA; its certificate is written to DIR/ca.pem.
    #[arg(long, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// Append each accepted envelope to FILE (NDJSON).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Scripted fault for successive POSTs, in order: KIND[=ARG][:COUNT] with KIND one of
    /// 503, 500, 400, 429[=RETRY_AFTER_SECS], slow=SECS, cut-body, cut-response.
    #[arg(long, value_name = "SPEC")]
    fault: Vec<FaultPhase>,
    /// Answer every POST with 503 for the first SECS seconds.
    #[arg(long, value_name = "SECS")]
    unavailable_for: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let public_key = match parse_public_key(&args.public_key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("nightjar-test-collector: {e}");
            return ExitCode::from(2);
        }
    };
    let options = CollectorOptions {
        public_key,
        tls_dir: args.tls_dir,
        record: args.record,
        faults: args.fault,
        unavailable_for: args.unavailable_for.map(Duration::from_secs),
    };
    let collector = match Collector::start(options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nightjar-test-collector: {e}");
            return ExitCode::from(1);
        }
    };
    let banner = serde_json::json!({
        "url": collector.url(),
        "stats_url": collector.stats_url(),
        "ca_file": collector.ca_file(),
    });
    println!("{banner}");
    collector.join();
    ExitCode::SUCCESS
}
