//! The build-like load's rounds (`scripts/bench sensor load`, `scripts/bench e2e`): each
//! suite measures its own figures per round; which round stands for a side, and how all of
//! them are reported, is decided here once.

use serde_json::{Value, json};

/// One round of the build-like load.
pub trait LoadRound {
    /// File events made per second: how much of the shared machine the round got.
    fn rate(&self) -> f64;
    /// The round's figures.
    fn json(&self) -> Value;
}

/// The round with the highest load rate (the one least held back by other work on the
/// machine), as JSON; `None` without rounds.
pub fn best<R: LoadRound>(rounds: &[R]) -> Option<Value> {
    rounds
        .iter()
        .max_by(|a, b| a.rate().total_cmp(&b.rate()))
        .map(R::json)
}

/// Every round of both sides, filter on and off.
pub fn all<R: LoadRound>(on: &[R], off: &[R]) -> Value {
    json!({
        "on": on.iter().map(R::json).collect::<Vec<_>>(),
        "off": off.iter().map(R::json).collect::<Vec<_>>(),
    })
}
