//! `nightjar-agent run`: the long-running agent (see `pipeline::agent`).

use std::io::IsTerminal;
use std::sync::Arc;

use nightjar_proto::config::RulesConfig;
use nightjar_proto::verify::AlertKey;
use nightjar_rules::engine::{Limits, NoTermStore};

use super::{CmdResult, ConfigArg, Failure};
use crate::pipeline::agent;
use crate::pipeline::detect::RuleDetector;
use crate::pipeline::swap::{ActiveRules, RulesSlot};
use crate::policy::Policies;
use nightjar_rules::{LoadReport, RuleSet, RuleStatus};

/// The `[rules]` bounds on stateful rules' state.
pub fn state_limits(rules: &RulesConfig) -> Limits {
    Limits {
        per_rule: rules.state_max_per_rule as usize,
        total_bytes: usize::try_from(rules.state_max_bytes).unwrap_or(usize::MAX),
        new_terms_per_rule: rules.new_terms_max_per_rule as usize,
        reorder_window: std::time::Duration::from_millis(rules.reorder_window_ms.into()),
    }
}

pub fn run(args: &ConfigArg) -> CmdResult {
    init_logging();
    let config =
        crate::config::load(args.config.as_deref()).map_err(|e| Failure::usage(e.to_string()))?;
    let host_id = crate::config::host_id(&config).map_err(|e| Failure::usage(e.to_string()))?;
    let (rules, report) =
        RuleSet::load_config(&config.rules).map_err(|e| Failure::usage(format!("[rules]: {e}")))?;
    log_report(&report);
    let slot = Arc::new(RulesSlot::new(ActiveRules {
        rules: Arc::new(rules),
        policy_version: 0,
    }));
    let policies = match config
        .fleet
        .as_ref()
        .and_then(|f| f.policy_public_key.as_deref())
    {
        Some(b64) => {
            let key = AlertKey::from_base64(b64.trim()).map_err(|e| {
                Failure::usage(format!(
                    "{}: key `fleet.policy_public_key`: {e}",
                    config.source_name()
                ))
            })?;
            Some(Policies::new(
                key,
                config.state_dir.clone(),
                config.rules.max_signals,
                Arc::clone(&slot),
            ))
        }
        None => None,
    };
    let hostname = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    // new_terms history is opened from the store once the agent has it open.
    let detector = RuleDetector::with_state(
        slot,
        crate::host::with_accounts(hostname, host_id),
        state_limits(&config.rules),
        Box::new(NoTermStore),
    );
    agent::run(&config, detector, policies).map_err(|e| {
        if e.is_config() {
            Failure::usage(e.to_string())
        } else {
            Failure::failed(e.to_string())
        }
    })
}

/// Logs what the local rule set left out and why.
fn log_report(report: &LoadReport) {
    for entry in &report.entries {
        match &entry.status {
            RuleStatus::Ok => {}
            RuleStatus::Unsupported(why) => {
                tracing::warn!(file = %entry.path.display(), "rule not loaded, unsupported: {why}");
            }
            RuleStatus::Shadowed(why) => {
                tracing::info!(file = %entry.path.display(), "rule not loaded: {why}");
            }
            RuleStatus::Error(e) => tracing::error!("rule not loaded: {e}"),
        }
    }
    for e in report.exception_errors.iter().chain(&report.block_errors) {
        tracing::error!("{e}");
    }
    for w in report
        .exception_warnings
        .iter()
        .chain(&report.block_refused)
    {
        tracing::warn!("{w}");
    }
    tracing::info!(
        loaded = report.ok(),
        unsupported = report.unsupported(),
        errors = report.errors(),
        exception_items = report.exception_items,
        "rules"
    );
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
