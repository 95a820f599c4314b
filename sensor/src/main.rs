//! `nightjar-sensor`: capture exec events into the shared-memory ring.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use nightjar_proto::config::Config;
use nightjar_proto::event::EnvFilter;
use nightjar_proto::filter::PathFilter;
use nightjar_proto::shm_ring::Producer;
use nightjar_proto::terminal::terminal_safe_lines;
use nightjar_rules::RuleSet;
use nightjar_rules::ecs::Shape;
use nightjar_sensor::block::Blocking;
use nightjar_sensor::capture::{self, Settings, SourceKind};
use nightjar_sensor::kept_policy::PolicyWatch;
use nightjar_sensor::publish::Publisher;
use nightjar_sensor::replay::{self, ReplayFormat};

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
    ///
    /// Exit 0: every line decoded and was published. Exit 1: some lines did not decode; each
    /// is reported on stderr as FILE:LINE and the rest is published (as `nightjar-agent
    /// scan`), or publishing failed. Exit 2: bad usage or config, an unreadable input file,
    /// or a ring directory that fails its ownership checks.
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

const USAGE_ERROR: u8 = 2;
const RUNTIME_FAILURE: u8 = 1;

/// Reports a failure on stderr: messages may quote paths and input, so they are printed
/// terminal-safe.
fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!(
        "nightjar-sensor: {}",
        terminal_safe_lines(&message.to_string())
    );
    ExitCode::from(code)
}

/// The config file, with the MDM's managed preferences over it (macOS), as the agent reads it:
/// the pinned policy key may come from there.
fn load_config(config: Option<&Path>) -> Result<Config, ExitCode> {
    let mut config = Config::locate(config).map_err(|err| fail(USAGE_ERROR, err))?;
    if let Some(managed) =
        nightjar_proto::managed_prefs::load().map_err(|err| fail(USAGE_ERROR, err))?
    {
        managed.apply(&mut config);
        config
            .revalidate("managed preferences")
            .map_err(|err| fail(USAGE_ERROR, err))?;
    }
    Ok(config)
}

fn publisher(config: &Config) -> Result<Publisher, ExitCode> {
    let ring = Producer::open(&config.ring_path, config.ring_capacity_bytes).map_err(|err| {
        // A ring directory others could change is the deployment's to fix: exit 2.
        let code = match err {
            nightjar_proto::shm_ring::RingError::Untrusted { .. } => USAGE_ERROR,
            _ => RUNTIME_FAILURE,
        };
        fail(code, format_args!("cannot open the ring: {err}"))
    })?;
    Ok(Publisher::new(ring))
}

/// What capture collects, from the config: the environment variables named, and the file
/// events the loaded rules can match (the same rule files the agent loads; a rule the agent
/// refuses is left out here too). The blocking rules are the kept policy's when there is one
/// that verifies (`watch`, which then follows it), else `[rules] block`.
fn settings(config: &Config, watch: Option<&mut PolicyWatch>) -> Result<Settings, ExitCode> {
    let (rules, report) = RuleSet::load_config(&config.rules)
        .map_err(|err| fail(USAGE_ERROR, format_args!("[rules]: {err}")))?;
    for e in &report.block_errors {
        tracing::error!("{e}");
    }
    for r in &report.block_refused {
        tracing::warn!("{r}");
    }
    let (files, open) = rules.file_filter_explained();
    nightjar_sensor::kept_policy::log_filter(&files, &open);
    let opens = rules.open_filter();
    let quarantine = rules.wants(Shape::FileExtendedAttributesDelete);
    let launch_items = rules.wants(Shape::FileLaunchDaemon);
    tracing::info!(
        opens = !opens.is_none(),
        open_prefixes_only = opens.is_prefixes_only(),
        quarantine,
        launch_items,
        "macOS file actions the rules can match"
    );
    let creds = [Shape::UidChange, Shape::GidChange, Shape::SessionIdChange]
        .into_iter()
        .any(|s| rules.wants(s));
    tracing::info!(creds, "credential and session changes the rules can match");
    let mut block = Blocking::of(rules);
    let mut files = files;
    let mut follow_policy = false;
    if let Some(watch) = watch {
        follow_policy = true;
        if let Some(kept) = watch.poll_applied() {
            tracing::info!("the kept policy's rules replace `[rules]`");
            block = kept.block;
            files = kept.files;
        }
    }
    if !block.is_empty() {
        tracing::info!(rules = block.indices.len(), "blocking rules loaded");
    }
    Ok(Settings {
        env: EnvFilter::new(config.sensor.env_vars.iter().cloned()),
        files,
        opens,
        quarantine,
        launch_items,
        block,
        follow_policy,
        creds,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Run { config, source } => {
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut watch = match PolicyWatch::new(&config) {
                Ok(w) => w,
                Err(why) => return fail(USAGE_ERROR, why),
            };
            let settings = match settings(&config, watch.as_mut()) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let mut publisher = match publisher(&config) {
                Ok(p) => p,
                Err(code) => return code,
            };
            let kind = match source {
                SourceArg::Auto => SourceKind::Auto,
                SourceArg::EndpointSecurity => SourceKind::EndpointSecurity,
                SourceArg::Eslogger => SourceKind::Eslogger,
                SourceArg::Ebpf => SourceKind::Ebpf,
            };
            match capture::run(kind, &mut publisher, &settings, watch.as_mut()) {
                Ok(never) => match never {},
                Err(err) => fail(RUNTIME_FAILURE, err),
            }
        }
        Command::Replay {
            config,
            format,
            rate,
            files,
        } => {
            let format = match format {
                FormatArg::Eslogger => ReplayFormat::Eslogger,
                FormatArg::Ecs => ReplayFormat::Ecs,
            };
            let config = match load_config(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Err(err) = replay::check_inputs(&files) {
                return fail(USAGE_ERROR, err);
            }
            let settings = Settings {
                env: EnvFilter::new(config.sensor.env_vars.iter().cloned()),
                files: PathFilter::all(),
                opens: PathFilter::all(),
                quarantine: true,
                launch_items: true,
                block: Blocking::default(),
                follow_policy: false,
                creds: true,
            };
            let mut publisher = match publisher(&config) {
                Ok(p) => p,
                Err(code) => return code,
            };
            match replay::replay(&mut publisher, format, rate, &files, &settings) {
                Ok(summary) if summary.bad_lines > 0 => fail(
                    RUNTIME_FAILURE,
                    format_args!(
                        "{} events replayed, {} lines did not decode",
                        summary.events, summary.bad_lines
                    ),
                ),
                Ok(summary) => {
                    tracing::info!(events = summary.events, "replay done");
                    ExitCode::SUCCESS
                }
                Err(err) => fail(RUNTIME_FAILURE, err),
            }
        }
    }
}
