//! Shared helpers for the end-to-end tests: locating the built binaries, temporary state,
//! child-process control, and a verifying alert collector.

pub mod collector;
pub mod harness;
