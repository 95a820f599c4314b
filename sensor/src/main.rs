//! `nightjar-sensor`: capture exec events into the shared-memory ring.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "nightjar-sensor",
    version,
    about = "Nightjar sensor: exec capture into the shared-memory ring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture live exec events.
    Run {
        #[arg(long, value_name = "F")]
        config: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "auto")]
        source: SourceArg,
    },
    /// Feed recorded events through the ring.
    Replay {
        #[arg(long, value_name = "F")]
        config: Option<PathBuf>,
        #[arg(long, value_enum)]
        format: FormatArg,
        #[arg(long, value_name = "EVENTS_PER_S")]
        rate: Option<u64>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SourceArg {
    Auto,
    EndpointSecurity,
    Eslogger,
    Ebpf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Eslogger,
    Ecs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!("nightjar-sensor: {:?} is not built yet", cli.command);
    ExitCode::from(1)
}
