//! `nightjar-agent status`: counters of the running agent, or of the store when none runs.

use super::query::{ask, load_config, out, unexpected};
use super::{CmdResult, StatusArgs};
use crate::control::{ClientError, Reply, Request, StatusReport};
use nightjar_proto::terminal::{terminal_safe, to_json_line};

pub fn run(args: &StatusArgs) -> CmdResult {
    let config = load_config(&args.config)?;
    let json = args.json;
    ask(&config, &Request::Status, |reply| match reply {
        Reply::Status(s) if json => {
            let line = to_json_line(&s).map_err(|e| ClientError::Agent(e.to_string()))?;
            out(&line)
        }
        Reply::Status(s) => human(&s),
        other => Err(unexpected(&other)),
    })
}

fn human(s: &StatusReport) -> Result<(), ClientError> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<u64>| v.map_or_else(|| "-".into(), |n| n.to_string());
    let lines = [
        ("events_received", s.events_received.to_string()),
        ("events_dropped", s.events_dropped.to_string()),
        ("alerts_stored", s.alerts_stored.to_string()),
        ("alerts_suppressed", s.alerts_suppressed.to_string()),
        ("events_filtered", s.events_filtered.to_string()),
        ("exec_blocked", s.exec_blocked.to_string()),
        ("block_failed_open", s.block_failed_open.to_string()),
        ("alerts_pending_upload", s.alerts_pending_upload.to_string()),
        ("sensor_connected", s.sensor_connected.to_string()),
        ("last_upload_ok", opt(&s.last_upload_ok)),
        ("last_upload_error", opt(&s.last_upload_error)),
        ("agent_running", s.agent_running.to_string()),
        ("chain_ok", s.chain_ok.to_string()),
        ("chain_error", opt(&s.chain_error)),
        (
            "ring_generation",
            s.ring_generation
                .map_or_else(|| "-".into(), |g| g.to_string()),
        ),
        (
            "ring_resyncs",
            s.ring_resyncs.map_or_else(|| "-".into(), |n| n.to_string()),
        ),
        ("upload_enabled", s.upload_enabled.to_string()),
        ("upload_blocked_batch", opt(&s.upload_blocked_batch)),
        ("alerting_stalled", opt(&s.alerting_stalled)),
        (
            "chain_head",
            s.chain_head.as_ref().map_or_else(
                || "-".into(),
                |h| format!("seq {} hash {} (signed)", h.seq, h.hash),
            ),
        ),
        ("store_recovery", opt(&s.store_recovery)),
        ("rules_state_evicted", num(s.rules_state_evicted)),
        ("rules_state_held", num(s.rules_state_held)),
        ("rules_state_bytes", num(s.rules_state_bytes)),
        ("rules_events_late", num(s.rules_events_late)),
        ("rules_learning", num(s.rules_learning)),
        ("enrolled", s.enrolled.to_string()),
        ("last_heartbeat_ok", opt(&s.last_heartbeat_ok)),
        ("last_heartbeat_error", opt(&s.last_heartbeat_error)),
        ("enrol_error", opt(&s.enrol_error)),
        ("alerts_excepted", s.alerts_excepted.to_string()),
        (
            "policy_version",
            s.policy_version
                .map_or_else(|| "-".into(), |v| v.to_string()),
        ),
        ("policy_applied_at", opt(&s.policy_applied_at)),
        ("policy_error", opt(&s.policy_error)),
        ("policy_fetch_error", opt(&s.policy_fetch_error)),
    ];
    for (k, v) in lines {
        out(&format!("{k:<22} {}", terminal_safe(&v)))?;
    }
    for (rule, n) in &s.alerts_excepted_by_rule {
        out(&format!("  excepted {n:>10} {rule}"))?;
    }
    Ok(())
}
