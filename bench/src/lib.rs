//! The measurement programs behind `scripts/bench`.

pub mod fleet;
