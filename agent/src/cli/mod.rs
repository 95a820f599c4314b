//! The command-line contract (DESIGN.md, "Command-line contract"). Programs outside the
//! project depend on these names, flags and exit codes: change them only compatibly.
//!
//! Exit codes: 0 success; 1 a check failed (`verify`) or the operation failed; 2 usage or
//! configuration error (an untrusted state directory included), and for `verify`, a store
//! it could not check. `scan` exits 1 when input lines could not be decoded (see its help).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod alerts;
pub mod enroll;
pub mod keys;
mod query;
pub mod rules_check;
pub mod run;
pub mod scan;
pub mod status;
pub mod verify;

/// A command that did not succeed: the message for stderr and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// A check failed or the operation could not be completed (exit 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }

    /// Bad usage or configuration (exit 2); the message names the file, key and reason.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

/// What every command returns.
pub type CmdResult = Result<(), Failure>;

#[derive(Debug, Parser)]
#[command(
    name = "nightjar-agent",
    version,
    about = "Nightjar agent: detection rules, durable signed alerts, upload, analyst queries"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the ring, evaluate rules, store, sign and upload alerts.
    Run(ConfigArg),
    /// Evaluate rules over recorded events; one alert JSON per line on stdout.
    ///
    /// Exit 0: every line decoded (matches or not). Exit 1: some lines did not decode; each
    /// is reported on stderr as FILE:LINE, the rest is scanned and its alerts printed (as
    /// `nightjar-sensor replay`). Exit 2: bad usage or rules, or an unreadable input file.
    Scan(ScanArgs),
    /// Query stored alerts.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Check every signature, the hash chain and the signed head mark.
    ///
    /// Exit 0: everything verifies. Exit 1: a check failed; the message names the first bad
    /// seq. Exit 2: it could not check (bad configuration, permission denied, no answer from
    /// the agent, an unreadable store); the message says why.
    Verify(ConfigArg),
    /// Enrols with [fleet] now (also done on first start).
    Enroll(ConfigArg),
    /// Counters of the running agent (or of the store when none runs).
    Status(StatusArgs),
    /// The host signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Config file; falls back to $NIGHTJAR_CONFIG, then the platform path.
    #[arg(long, value_name = "F")]
    pub config: Option<PathBuf>,
}

/// Recorded-event formats understood by `scan` (and the sensor's `replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    Eslogger,
    Ecs,
}

#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    #[arg(long, value_enum)]
    pub format: InputFormat,
    /// Rule TOML file or directory (repeatable).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in seed rule.
    #[arg(long)]
    pub no_builtin: bool,
    /// Kibana exception-list export (NDJSON) to apply (repeatable).
    #[arg(long = "exceptions", value_name = "FILE")]
    pub exceptions: Vec<PathBuf>,
    /// Run fleet-wide new_terms rules (whose fields do not include `host.id`) on the
    /// recording's own history, as `[rules] new_terms_per_host = true` does.
    #[arg(long)]
    pub new_terms_per_host: bool,
    /// Input files; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List stored alerts.
    List(AlertsListArgs),
    /// Show one alert.
    Show(AlertsShowArgs),
    /// Print every DSSE envelope, one per line, in seq order.
    Export(ConfigArg),
}

#[derive(Debug, Clone, Args)]
pub struct AlertsListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only alerts newer than this (e.g. 30s, 15m, 2h, 7d).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only alerts of this rule_id.
    #[arg(long = "rule", value_name = "RULE_ID")]
    pub rule: Option<String>,
    /// Only alerts whose event matches this KQL query (the agent's own KQL engine, on the
    /// alert's ECS fields: `process.args:*cred*`).
    #[arg(long = "query", value_name = "KQL")]
    pub query: Option<String>,
    /// One alert payload JSON per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct AlertsShowArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(value_name = "ALERT_UUID")]
    pub uuid: String,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the host public key and its key id.
    Show(KeysShowArgs),
}

#[derive(Debug, Clone, Args)]
pub struct KeysShowArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load rule files and report each rule: ok, unsupported (why) or error (file:line:col).
    Check(RulesCheckArgs),
}

#[derive(Debug, Clone, Args)]
pub struct RulesCheckArgs {
    /// Check the files alone, without the built-in seed rule (which a file rule with its
    /// rule_id would replace).
    #[arg(long)]
    pub no_builtin: bool,
    /// Kibana exception-list export (NDJSON) to check with the rules (repeatable).
    #[arg(long = "exceptions", value_name = "FILE")]
    pub exceptions: Vec<PathBuf>,
    /// A rule_id to check as a blocking rule on this platform (repeatable), as `[rules]
    /// block` would name it: says whether it can block, or why not.
    #[arg(long = "block", value_name = "RULE_ID")]
    pub block: Vec<String>,
    /// Check as `[rules] new_terms_per_host = true` runs them: fleet-wide new_terms rules
    /// on this host's own history.
    #[arg(long)]
    pub new_terms_per_host: bool,
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs the parsed command and maps its outcome to the process exit code.
pub fn dispatch(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Run(a) => run::run(&a),
        Command::Scan(a) => scan::run(&a),
        Command::Alerts(AlertsCommand::List(a)) => alerts::list(&a),
        Command::Alerts(AlertsCommand::Show(a)) => alerts::show(&a),
        Command::Alerts(AlertsCommand::Export(a)) => alerts::export(&a),
        Command::Verify(a) => verify::run(&a),
        Command::Enroll(a) => enroll::run(&a),
        Command::Status(a) => status::run(&a),
        Command::Keys(KeysCommand::Show(a)) => keys::show(&a),
        Command::Rules(RulesCommand::Check(a)) => rules_check::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!(
                "nightjar-agent: {}",
                nightjar_proto::terminal::terminal_safe_lines(&f.message)
            );
            ExitCode::from(f.code)
        }
    }
}
