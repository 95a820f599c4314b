//! `nightjar-agent enroll`: enrols with `[fleet]` now (the running agent also does it on first
//! start) and prints the enrolment record. Exit 0 enrolled, 1 refused or unreachable, 2 no
//! `[fleet]` section, no token or another configuration error.

use super::query::load_config;
use super::{CmdResult, ConfigArg, Failure};
use crate::fleet::client::FleetClient;
use crate::fleet::{EnrolError, FleetSettings, RequestSigner, enroll};
use crate::sign::HostKey;

pub fn run(args: &ConfigArg) -> CmdResult {
    let config = load_config(args)?;
    let host_id = crate::config::host_id(&config).map_err(|e| Failure::usage(e.to_string()))?;
    let settings = FleetSettings::from_config(&config, &host_id).ok_or_else(|| {
        Failure::usage(format!(
            "{}: no [fleet] section (or no fleet server): nothing to enrol with",
            config.source_name()
        ))
    })?;
    let key = HostKey::load_or_create(&config).map_err(|e| Failure::usage(e.to_string()))?;
    let signer = RequestSigner::new(key, host_id);
    let client = FleetClient::new(&settings).map_err(|e| Failure::usage(e.to_string()))?;
    match enroll(&client, &settings, &signer) {
        Ok(record) => {
            // What the server answered, made safe for a terminal.
            let line = nightjar_proto::terminal::to_json_line(&record)
                .map_err(|e| Failure::failed(e.to_string()))?;
            println!("{line}");
            Ok(())
        }
        Err(e @ EnrolError::NoToken) => Err(Failure::usage(e.to_string())),
        Err(e) => Err(Failure::failed(e.to_string())),
    }
}
