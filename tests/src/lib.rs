//! Shared helpers for the end-to-end tests: locating the built binaries, temporary state,
//! child-process control, generated input streams, a verifying alert collector, running the
//! sensor and agent side by side, `/proc` sampling, and the sustained-load driver.

pub mod agent_cli;
pub mod collector;
pub mod harness;
pub mod load;
pub mod pipeline;
pub mod procstat;
pub mod streams;
