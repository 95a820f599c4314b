//! `nightjar-agent`: see `nightjar_agent::cli` for the command-line contract.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = nightjar_agent::cli::Cli::parse();
    nightjar_agent::cli::dispatch(cli)
}
