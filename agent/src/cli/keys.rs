//! `nightjar-agent keys`.

use super::{CmdResult, Failure, KeysShowArgs};

pub fn show(_args: &KeysShowArgs) -> CmdResult {
    Err(Failure::failed("not built yet"))
}
