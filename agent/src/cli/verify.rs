//! `nightjar-agent verify`: every signature and the hash chain.
//!
//! Exit codes: 0 every signature, the chain and the signed head mark verify; 1 a check
//! failed (the message names the first bad seq); 2 the store could not be checked at all
//! (configuration, permissions, an agent that did not answer, a store that cannot be read:
//! the message says why). A script can therefore tell "tampered" from "could not look".

use super::query::{ask_or, load_config, out, unexpected};
use super::{CmdResult, ConfigArg, Failure};
use crate::control::{Reply, Request, VerifyOutcome};

/// `verify`'s exit code when it could not check.
pub const COULD_NOT_CHECK: u8 = 2;

pub fn run(args: &ConfigArg) -> CmdResult {
    let config = load_config(args)?;
    let mut outcome: Option<VerifyOutcome> = None;
    ask_or(
        &config,
        &Request::Verify,
        |reply| match reply {
            Reply::Verify(v) => {
                outcome = Some(v);
                Ok(())
            }
            other => Err(unexpected(&other)),
        },
        COULD_NOT_CHECK,
    )
    .map_err(|f| Failure {
        code: f.code,
        message: format!("could not verify: {}", f.message),
    })?;
    match outcome {
        Some(VerifyOutcome {
            ok: true,
            alerts,
            reason,
            ..
        }) => {
            let n = alerts.unwrap_or(0);
            let mut line = format!(
                "ok: {n} alerts, every signature, the chain and the signed head mark verify"
            );
            if let Some(note) = reason {
                line.push_str(&format!("\nnote: {note}"));
            }
            out(&nightjar_proto::terminal::terminal_safe_lines(&line))
                .map_err(|e| Failure::failed(e.to_string()))
        }
        Some(VerifyOutcome { seq, reason, .. }) => Err(Failure::failed(format!(
            "verification failed at alert seq {}: {}",
            seq.map_or_else(|| "?".into(), |s| s.to_string()),
            reason.unwrap_or_default()
        ))),
        None => Err(Failure {
            code: COULD_NOT_CHECK,
            message: "could not verify: no verification result in the reply".into(),
        }),
    }
}
