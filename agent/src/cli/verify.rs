//! `nightjar-agent verify`.

use super::{CmdResult, ConfigArg, Failure};

pub fn run(_args: &ConfigArg) -> CmdResult {
    Err(Failure::failed("not built yet"))
}
