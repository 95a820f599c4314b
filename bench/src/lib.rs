//! The measurement programs behind `scripts/bench`.

pub mod fleet;
pub mod load;
