//! `nightjar-agent run`: the long-running agent (see `pipeline::agent`).

use std::io::IsTerminal;

use super::{CmdResult, ConfigArg, Failure};
use crate::pipeline::agent;
use crate::pipeline::detect::RuleDetector;
use nightjar_rules::{RuleSet, RuleStatus};

pub fn run(args: &ConfigArg) -> CmdResult {
    init_logging();
    let config =
        crate::config::load(args.config.as_deref()).map_err(|e| Failure::usage(e.to_string()))?;
    let host_id = crate::config::host_id(&config).map_err(|e| Failure::usage(e.to_string()))?;
    let (rules, report) = RuleSet::load(
        &config.rules.paths,
        config.rules.builtin,
        config.rules.max_signals,
    )
    .map_err(|e| Failure::usage(format!("[rules] paths: {e}")))?;
    for entry in &report.entries {
        match &entry.status {
            RuleStatus::Ok => {}
            RuleStatus::Unsupported(why) => {
                tracing::warn!(file = %entry.path.display(), "rule not loaded, unsupported: {why}");
            }
            RuleStatus::Error(e) => tracing::error!("rule not loaded: {e}"),
        }
    }
    tracing::info!(
        loaded = report.ok(),
        unsupported = report.unsupported(),
        errors = report.errors(),
        "rules"
    );
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let detector = RuleDetector::new(rules, crate::host::with_accounts(hostname, host_id));
    agent::run(&config, detector).map_err(|e| {
        if e.is_config() {
            Failure::usage(e.to_string())
        } else {
            Failure::failed(e.to_string())
        }
    })
}

/// Logs to stderr; `RUST_LOG` refines the default `info`.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
