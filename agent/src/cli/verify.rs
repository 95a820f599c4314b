//! `nightjar-agent verify`: every signature and the hash chain; exit 1 naming the first bad seq.

use super::query::{ask, load_config, out, unexpected};
use super::{CmdResult, ConfigArg, Failure};
use crate::control::{Reply, Request, VerifyOutcome};

pub fn run(args: &ConfigArg) -> CmdResult {
    let config = load_config(args)?;
    let mut outcome: Option<VerifyOutcome> = None;
    ask(&config, &Request::Verify, |reply| match reply {
        Reply::Verify(v) => {
            outcome = Some(v);
            Ok(())
        }
        other => Err(unexpected(&other)),
    })?;
    match outcome {
        Some(VerifyOutcome {
            ok: true, alerts, ..
        }) => {
            let n = alerts.unwrap_or(0);
            out(&format!(
                "ok: {n} alerts, every signature and the chain verify"
            ))
            .map_err(|e| Failure::failed(e.to_string()))
        }
        Some(VerifyOutcome { seq, reason, .. }) => Err(Failure::failed(format!(
            "verification failed at alert seq {}: {}",
            seq.map_or_else(|| "?".into(), |s| s.to_string()),
            reason.unwrap_or_default()
        ))),
        None => Err(Failure::failed("no verification result in the reply")),
    }
}
