//! The measurement programs behind `scripts/bench`.
