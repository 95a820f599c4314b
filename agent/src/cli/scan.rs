//! `nightjar-agent scan`.

use super::{CmdResult, Failure, ScanArgs};

pub fn run(_args: &ScanArgs) -> CmdResult {
    Err(Failure::failed("not built yet"))
}
