//! Shared helpers for the end-to-end tests: locating the built binaries, temporary state,
//! child-process control.

pub mod harness;
