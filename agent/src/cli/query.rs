//! What the store-reading commands share: config resolution and one control request.

use crate::config::Config;
use crate::control::{self, ClientError, Reply, Request};

use super::{ConfigArg, Failure};

/// Loads the config named by `--config` (or its fallbacks); errors are usage errors (exit 2).
pub fn load_config(arg: &ConfigArg) -> Result<Config, Failure> {
    crate::config::load(arg.config.as_deref()).map_err(|e| Failure::usage(e.to_string()))
}

/// Runs `request` against the running agent or the store; every item reply goes to `sink`.
/// A failure exits 1, except an untrusted state directory or control socket (a
/// configuration problem: 2).
pub fn ask(
    config: &Config,
    request: &Request,
    sink: impl FnMut(Reply) -> Result<(), ClientError>,
) -> Result<(), Failure> {
    ask_or(config, request, sink, 1)
}

/// [`ask`], with the exit code for "the question could not be answered" chosen by the
/// caller: `verify` uses 2, keeping 1 for a check that failed.
pub fn ask_or(
    config: &Config,
    request: &Request,
    mut sink: impl FnMut(Reply) -> Result<(), ClientError>,
    unanswered: u8,
) -> Result<(), Failure> {
    match control::ask(config, request, &mut sink) {
        Ok(_) => Ok(()),
        // The reader went away (`| head`): what it wanted was printed.
        Err(ClientError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e @ (ClientError::StateDir(_) | ClientError::Impostor { .. })) => {
            Err(Failure::usage(e.to_string()))
        }
        Err(e) => Err(Failure {
            code: unanswered,
            message: e.to_string(),
        }),
    }
}

/// Writes one line to stdout.
pub fn out(line: &str) -> Result<(), ClientError> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").map_err(ClientError::Output)
}

/// An unexpected reply kind for the request sent.
pub fn unexpected(reply: &Reply) -> ClientError {
    ClientError::Agent(format!("unexpected reply: {reply:?}"))
}
