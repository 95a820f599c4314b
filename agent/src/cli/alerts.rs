//! `nightjar-agent alerts`.

use super::{AlertsListArgs, AlertsShowArgs, CmdResult, ConfigArg, Failure};

pub fn list(_args: &AlertsListArgs) -> CmdResult {
    Err(Failure::failed("not built yet"))
}

pub fn show(_args: &AlertsShowArgs) -> CmdResult {
    Err(Failure::failed("not built yet"))
}

pub fn export(_args: &ConfigArg) -> CmdResult {
    Err(Failure::failed("not built yet"))
}
