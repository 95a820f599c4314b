//! `nightjar-agent keys show`: the host public key the collector verifies alerts with.

use super::query::{ask, load_config, out, unexpected};
use super::{CmdResult, KeysShowArgs};
use crate::control::{ClientError, Reply, Request};

pub fn show(args: &KeysShowArgs) -> CmdResult {
    let config = load_config(&args.config)?;
    let json = args.json;
    ask(&config, &Request::KeysShow, |reply| match reply {
        Reply::Key(k) => {
            if json {
                let line =
                    serde_json::to_string(&k).map_err(|e| ClientError::Agent(e.to_string()))?;
                return out(&line);
            }
            out(&format!("key_id:     {}", k.key_id))?;
            out(&format!("public_key: {}", k.public_key))?;
            out(&format!("algorithm:  {}", k.algorithm))
        }
        other => Err(unexpected(&other)),
    })
}
