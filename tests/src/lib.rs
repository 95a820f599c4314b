//! Shared helpers for the end-to-end tests: locating the built binaries, temporary state,
//! child-process control, generated input streams.

pub mod agent_cli;
pub mod harness;
pub mod streams;
