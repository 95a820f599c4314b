//! The command line (DESIGN "Central server"): every command but `run` opens the database,
//! does one thing and exits. Exit codes: 0 success, 1 a check failed (`verify`), 2 usage,
//! configuration or database error (with a message naming the file, key or cause).

mod admin;
mod policy;
mod query;
mod run;
mod verify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};

#[derive(Debug, Parser)]
#[command(name = "nightjar-server", version, about = "Nightjar's central server")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ConfigArg {
    /// The server config (default: $NIGHTJAR_SERVER_CONFIG, then /etc/nightjar-server/server.toml).
    #[arg(long, value_name = "F")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.config.as_deref())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Applies migrations, then serves.
    Run(ConfigArg),
    /// Applies the schema migrations and exits.
    Migrate(ConfigArg),
    /// Enrolment tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Admin tokens (console and JSON API).
    #[command(name = "admin-token")]
    AdminToken {
        #[command(subcommand)]
        command: AdminTokenCommand,
    },
    /// Fleet policies and the policy signing key.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Enrolled hosts.
    Hosts {
        #[command(subcommand)]
        command: HostsCommand,
    },
    /// Stored alerts.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Integrity events: gaps, forks, rollbacks, bad signatures, resets, silences.
    Integrity {
        #[command(subcommand)]
        command: IntegrityCommand,
    },
    /// Exports alerts for Elasticsearch.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// Re-verifies stored envelopes and chains; exit 1 naming the first bad host and seq.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "H")]
        host: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// `_bulk` NDJSON for the data stream logs-nightjar.alert-<namespace> (docs/elastic.md).
    #[command(name = "elastic-bulk")]
    ElasticBulk {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// The data stream (default logs-nightjar.alert-default).
        #[arg(long, value_name = "NAME")]
        index: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Creates an enrolment token (printed once; only its hash is stored).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        /// How many hosts may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// Lifetime (`30m`, `24h`, `30d`).
        #[arg(long, default_value = "7d", value_name = "DURATION")]
        expires: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminTokenCommand {
    /// Creates an admin token (printed once; only its hash is stored).
    Create {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Prints the policy public key (for `[fleet] policy_public_key`).
    Key {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// Compiles rules and exceptions with the agent's engine, signs them as the next policy
    /// version and publishes it to every host; refuses a policy that does not compile.
    Publish(PublishArgs),
    /// Published policy versions, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Rule TOML file or directory (repeatable).
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Kibana exception-list export (NDJSON), repeatable.
    #[arg(long = "exceptions", value_name = "FILE")]
    exceptions: Vec<PathBuf>,
    /// Leave out the built-in seed rule.
    #[arg(long)]
    no_builtin: bool,
    /// A rule_id whose matching execs are blocked (repeatable).
    #[arg(long = "block", value_name = "RULE_ID")]
    block: Vec<String>,
    /// Ties an exception list to a rule (`RULE_ID=LIST_ID`), besides the rule's own
    /// `exceptions_list` (repeatable).
    #[arg(long = "link", value_name = "RULE_ID=LIST_ID")]
    link: Vec<String>,
    /// Runs fleet-wide new_terms rules (whose fields do not include `host.id`) on each
    /// host's own history; without it they do not run.
    #[arg(long)]
    new_terms_per_host: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum HostsCommand {
    /// Every host with its chain status.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        json: bool,
    },
    /// Unpins a host's key so it can enrol again (a reinstalled host); recorded.
    Reset {
        #[command(flatten)]
        config: ConfigArg,
        host_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AlertsCommand {
    /// Stored alerts, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "H")]
        host: Option<String>,
        #[arg(long, value_name = "RULE_ID")]
        rule: Option<String>,
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum IntegrityCommand {
    /// Integrity events, newest first.
    List {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_name = "H")]
        host: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// A failed command: its message and exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

/// Runs the command line; returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nightjar-server: cannot start the async runtime: {e}");
            return 2;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("nightjar-server: {}", f.message);
            f.code
        }
    }
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run(c) => run::run(c.load()?).await,
        Command::Migrate(c) => run::migrate(c.load()?).await,
        Command::Token {
            command:
                TokenCommand::Create {
                    config,
                    uses,
                    expires,
                    json,
                },
        } => admin::token_create(config.load()?, uses, &expires, json).await,
        Command::AdminToken {
            command: AdminTokenCommand::Create { config, json },
        } => admin::admin_token_create(config.load()?, json).await,
        Command::Policy {
            command: PolicyCommand::Key { config, json },
        } => admin::policy_key(config.load()?, json),
        Command::Policy {
            command: PolicyCommand::Publish(args),
        } => policy::publish(args.config.load()?, &args).await,
        Command::Policy {
            command: PolicyCommand::List { config, json },
        } => policy::list(config.load()?, json).await,
        Command::Hosts {
            command: HostsCommand::List { config, json },
        } => query::hosts_list(config.load()?, json).await,
        Command::Hosts {
            command: HostsCommand::Reset { config, host_id },
        } => admin::hosts_reset(config.load()?, &host_id).await,
        Command::Alerts {
            command:
                AlertsCommand::List {
                    config,
                    host,
                    rule,
                    since,
                    json,
                },
        } => query::alerts_list(config.load()?, host, rule, since, json).await,
        Command::Integrity {
            command: IntegrityCommand::List { config, host, json },
        } => query::integrity_list(config.load()?, host, json).await,
        Command::Verify { config, host } => verify::verify(config.load()?, host).await,
        Command::Export {
            command:
                ExportCommand::ElasticBulk {
                    config,
                    since,
                    index,
                },
        } => query::export_elastic(config.load()?, since, index).await,
    }
}

/// A pool for one command (a few connections).
fn pool(config: &Config) -> Result<deadpool_postgres::Pool, Failure> {
    Ok(crate::db::pool(config, 2)?)
}
