//! `nightjar-agent status`.

use super::{CmdResult, Failure, StatusArgs};

pub fn run(_args: &StatusArgs) -> CmdResult {
    Err(Failure::failed("not built yet"))
}
