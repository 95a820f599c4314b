//! `nightjar-agent keys show`: the host public key the collector verifies alerts with.

use super::query::{ask, load_config, out, unexpected};
use super::{CmdResult, KeysShowArgs};
use crate::control::{ClientError, Reply, Request};
use nightjar_proto::terminal::{terminal_safe, to_json_line};

pub fn show(args: &KeysShowArgs) -> CmdResult {
    let config = load_config(&args.config)?;
    let json = args.json;
    ask(&config, &Request::KeysShow, |reply| match reply {
        Reply::Key(k) => {
            if json {
                let line = to_json_line(&k).map_err(|e| ClientError::Agent(e.to_string()))?;
                return out(&line);
            }
            out(&format!("key_id:     {}", terminal_safe(&k.key_id)))?;
            out(&format!("public_key: {}", terminal_safe(&k.public_key)))?;
            out(&format!("algorithm:  {}", terminal_safe(&k.algorithm)))
        }
        other => Err(unexpected(&other)),
    })
}
