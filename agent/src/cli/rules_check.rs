//! `nightjar-agent rules_check`.

use super::{CmdResult, Failure, RulesCheckArgs};

pub fn run(_args: &RulesCheckArgs) -> CmdResult {
    Err(Failure::failed("not built yet"))
}
